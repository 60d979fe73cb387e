//! The console's axum handlers (routes in crate::http; each is `Public` in the authorisation
//! table because the session is a cookie, checked by the page with CSRF).

use axum::extract::Path;

use super::*;

/// My access: roles held now, the request form, my requests.
#[utoipa::path(get, path = "/console", tag = "console",
    responses((status = 200, description = "page", content_type = "text/html"), (status = 303, description = "to sign-in first")))]
pub async fn console_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    console_access(&state, &headers, q.as_deref()).await
}

/// Request an activation (form).
#[utoipa::path(post, path = "/console/requests", tag = "console",
    responses((status = 303, description = "requested: back to My access"), (status = 400, description = "refused, with the reason on the page", content_type = "text/html"), (status = 403, description = "CSRF check failed or refused", content_type = "text/html")))]
pub async fn console_requests_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: String,
) -> Response {
    console_request(&state, &headers, &body).await
}

/// One request: its facts, and the decision form for an approver.
#[utoipa::path(get, path = "/console/requests/{id}", tag = "console",
    params(("id" = String, Path, description = "request id")),
    responses((status = 200, description = "page", content_type = "text/html"), (status = 303, description = "to sign-in first"), (status = 404, description = "no such request", content_type = "text/html")))]
pub async fn console_request_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    console_request_page(&state, &headers, &id, q.as_deref()).await
}

/// Approve or deny a request (form).
#[utoipa::path(post, path = "/console/requests/{id}/decide", tag = "console",
    params(("id" = String, Path, description = "request id")),
    responses((status = 303, description = "decided: back to the request"), (status = 403, description = "CSRF check failed or refused", content_type = "text/html"), (status = 404, description = "no such request", content_type = "text/html")))]
pub async fn console_decide_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: String,
) -> Response {
    console_decide(&state, &headers, &id, &body).await
}

/// Deactivate one's own active role (form).
#[utoipa::path(post, path = "/console/requests/{id}/deactivate", tag = "console",
    params(("id" = String, Path, description = "request id")),
    responses((status = 303, description = "deactivated: back to My access"), (status = 403, description = "CSRF check failed or refused", content_type = "text/html")))]
pub async fn console_deactivate_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: String,
) -> Response {
    console_close(&state, &headers, &id, true, &body).await
}

/// Ask for more time on one's own active activation (form on its page).
#[utoipa::path(post, path = "/console/requests/{id}/extend", tag = "console",
    params(("id" = String, Path, description = "the active request to extend")),
    responses((status = 303, description = "extended or asked: back to the request's page"), (status = 400, description = "bad input", content_type = "text/html"),
        (status = 403, description = "CSRF check failed or refused", content_type = "text/html"), (status = 404, description = "no such request", content_type = "text/html"),
        (status = 409, description = "not active any more, or an extension is waiting", content_type = "text/html")))]
pub async fn console_extend_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: String,
) -> Response {
    console_extend(&state, &headers, &id, &body).await
}

/// Cancel one's own pending request (form).
#[utoipa::path(post, path = "/console/requests/{id}/cancel", tag = "console",
    params(("id" = String, Path, description = "request id")),
    responses((status = 303, description = "cancelled: back to My access"), (status = 403, description = "CSRF check failed or refused", content_type = "text/html")))]
pub async fn console_cancel_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: String,
) -> Response {
    console_close(&state, &headers, &id, false, &body).await
}

/// The requests the visitor may decide.
#[utoipa::path(get, path = "/console/approvals", tag = "console",
    responses((status = 200, description = "page", content_type = "text/html"), (status = 303, description = "to sign-in first")))]
pub async fn console_approvals_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    console_approvals(&state, &headers, q.as_deref()).await
}

/// The step-up form.
#[utoipa::path(get, path = "/console/reauth", tag = "console",
    responses((status = 200, description = "page", content_type = "text/html"), (status = 303, description = "to sign-in first")))]
pub async fn console_reauth_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    console_reauth_page(&state, &headers, q.as_deref()).await
}

/// Step up with password and code (form).
#[utoipa::path(post, path = "/console/reauth", tag = "console",
    responses((status = 303, description = "confirmed: back to the page"), (status = 401, description = "not accepted", content_type = "text/html")))]
pub async fn console_reauth_post(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    body: String,
) -> Response {
    console_reauth(&state, &client, &headers, &body).await
}

/// Sign out (form).
#[utoipa::path(post, path = "/console/signout", tag = "console",
    responses((status = 303, description = "signed out: to the sign-in page")))]
pub async fn console_signout_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: String,
) -> Response {
    console_signout(&state, &headers, &body).await
}

/// The audit log with filters and paging (`audit.read`).
#[utoipa::path(get, path = "/console/audit", tag = "console",
    responses((status = 200, description = "page", content_type = "text/html"), (status = 303, description = "to sign-in first"), (status = 403, description = "no audit.read", content_type = "text/html")))]
pub async fn console_audit_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    console_audit(&state, &headers, q.as_deref()).await
}

/// One audit event.
#[utoipa::path(get, path = "/console/audit/{seq}", tag = "console",
    params(("seq" = String, Path, description = "sequence number")),
    responses((status = 200, description = "page", content_type = "text/html"), (status = 404, description = "no such event", content_type = "text/html")))]
pub async fn console_audit_event_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(seq): Path<String>,
) -> Response {
    console_audit_event(&state, &headers, &seq).await
}

/// Verify the whole chain now.
#[utoipa::path(get, path = "/console/audit/verify", tag = "console",
    responses((status = 200, description = "page", content_type = "text/html")))]
pub async fn console_audit_verify_get(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Response {
    console_audit_verify(&state, &headers).await
}

/// The filtered events as JSON lines.
#[utoipa::path(get, path = "/console/audit/export", tag = "console",
    responses((status = 200, description = "JSON lines", content_type = "application/x-ndjson")))]
pub async fn console_audit_export_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    console_audit_export(&state, &headers, q.as_deref()).await
}

/// Administration: users and groups.
#[utoipa::path(get, path = "/console/admin/users", tag = "console",
    responses((status = 200, description = "page", content_type = "text/html"), (status = 403, description = "no users.read", content_type = "text/html")))]
pub async fn console_admin_users_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    console_admin_users(&state, &headers, q.as_deref()).await
}

/// Disable or enable a user (form).
#[utoipa::path(post, path = "/console/admin/users/{name}/enabled", tag = "console",
    params(("name" = String, Path, description = "user name")),
    responses((status = 303, description = "done"), (status = 403, description = "refused", content_type = "text/html")))]
pub async fn console_admin_user_enabled_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: String,
) -> Response {
    console_admin_user_enabled(&state, &headers, &name, &body).await
}

/// Add or remove a group member (form).
#[utoipa::path(post, path = "/console/admin/groups/{name}/members", tag = "console",
    params(("name" = String, Path, description = "group name")),
    responses((status = 303, description = "done"), (status = 403, description = "refused", content_type = "text/html")))]
pub async fn console_admin_group_member_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: String,
) -> Response {
    console_admin_group_member(&state, &headers, &name, &body).await
}

/// Administration: assignments.
#[utoipa::path(get, path = "/console/admin/assignments", tag = "console",
    responses((status = 200, description = "page", content_type = "text/html"), (status = 403, description = "no assignments.read", content_type = "text/html")))]
pub async fn console_admin_assignments_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    console_admin_assignments(&state, &headers, q.as_deref()).await
}

/// Assign a role (form).
#[utoipa::path(post, path = "/console/admin/assignments", tag = "console",
    responses((status = 303, description = "assigned"), (status = 400, description = "refused", content_type = "text/html")))]
pub async fn console_admin_assign_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: String,
) -> Response {
    console_admin_assign(&state, &headers, &body).await
}

/// End an assignment (form).
#[utoipa::path(post, path = "/console/admin/assignments/{id}/end", tag = "console",
    params(("id" = String, Path, description = "assignment id")),
    responses((status = 303, description = "ended"), (status = 403, description = "refused", content_type = "text/html")))]
pub async fn console_admin_end_assignment_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: String,
) -> Response {
    console_admin_end_assignment(&state, &headers, &id, &body).await
}

/// Administration: role settings.
#[utoipa::path(get, path = "/console/admin/roles", tag = "console",
    responses((status = 200, description = "page", content_type = "text/html")))]
pub async fn console_admin_roles_get(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Response {
    console_admin_roles(&state, &headers).await
}

/// One role's settings.
#[utoipa::path(get, path = "/console/admin/roles/{role}", tag = "console",
    params(("role" = String, Path, description = "role")),
    responses((status = 200, description = "page", content_type = "text/html"), (status = 404, description = "no such role", content_type = "text/html")))]
pub async fn console_admin_role_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    console_admin_role(&state, &headers, &slug, q.as_deref()).await
}

/// Change a role's settings (form).
#[utoipa::path(post, path = "/console/admin/roles/{role}", tag = "console",
    params(("role" = String, Path, description = "role")),
    responses((status = 303, description = "saved"), (status = 403, description = "refused", content_type = "text/html"), (status = 404, description = "no such role", content_type = "text/html")))]
pub async fn console_admin_role_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    body: String,
) -> Response {
    console_admin_role_save(&state, &headers, &slug, &body).await
}

/// Administration: conditional-access policies and what-if.
#[utoipa::path(get, path = "/console/admin/policies", tag = "console",
    responses((status = 200, description = "page", content_type = "text/html"), (status = 403, description = "no ca.read", content_type = "text/html")))]
pub async fn console_admin_policies_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    console_admin_policies(&state, &headers, q.as_deref()).await
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// The pages' stylesheet.
#[utoipa::path(get, path = "/assets/console.css", tag = "console",
    responses((status = 200, description = "CSS", content_type = "text/css")))]
pub async fn console_css() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../../../../assets/console.css"),
    )
}

/// The console's script (time left, counting down).
#[utoipa::path(get, path = "/assets/console.js", tag = "console",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript")))]
pub async fn console_js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../../../assets/console.js"),
    )
}
