//! Approvals (`/console/approvals`): the requests the visitor may decide, one request's page
//! (the link in the approval email, `public_url`/console/requests/ID), the decision, and the
//! requester's extension of their own active activation from that page.

use portcullis_core::api::{ActivationRequestView, DecisionRequest, ExtendActivationRequest};

use super::*;
use crate::services::roles as svc;

#[derive(askama::Template)]
#[template(path = "console/approvals.html")]
struct ApprovalsPage<'a> {
    title: &'a str,
    error: Option<&'a str>,
    done: Option<&'a str>,
    nav: &'a Nav,
    requests: Vec<ActivationRequestView>,
}

#[derive(askama::Template)]
#[template(path = "console/request.html")]
struct RequestPage<'a> {
    title: &'a str,
    error: Option<&'a str>,
    done: Option<&'a str>,
    nav: &'a Nav,
    r: ActivationRequestView,
    duration: String,
    can_decide: bool,
    /// The visitor's own active activation (not itself an extension): the extend form shows.
    can_extend: bool,
}

/// `GET /console/approvals`.
pub async fn console_approvals(
    state: &AppState,
    headers: &HeaderMap,
    raw: Option<&str>,
) -> Response {
    let q = query(raw);
    let v = match visit(state, headers, "/console/approvals", "/console/approvals").await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match svc::list_requests(state, &v.caller, "to_approve", None).await {
        Ok(requests) => render(
            &v,
            &ApprovalsPage {
                title: "Approvals",
                error: None,
                done: done_message(q.get("done")),
                nav: &v.nav,
                requests,
            },
            StatusCode::OK,
        ),
        Err(e) => error_page(e.status(), &e.message),
    }
}

/// Whether `id` is among the requests the visitor may decide now.
async fn decidable(state: &AppState, v: &Visit, id: &str) -> bool {
    svc::list_requests(state, &v.caller, "to_approve", None)
        .await
        .is_ok_and(|all| all.iter().any(|r| r.id == id))
}

async fn request_page(
    state: &AppState,
    v: &Visit,
    id: &str,
    done: Option<&str>,
    error: Option<&ApiError>,
) -> Response {
    let r = match svc::get_request(state, &v.caller, id).await {
        Ok(r) => r,
        Err(e) => return error_page(e.status(), &e.message),
    };
    let me = v.principal().map(|p| p.name.clone()).unwrap_or_default();
    let can_decide = r.state == "pending_approval"
        && !r.approvals.iter().any(|a| a == &me)
        && decidable(state, v, id).await;
    let can_extend = r.state == "active" && r.requester == me && r.extends.is_none();
    render(
        v,
        &RequestPage {
            title: "Request",
            error: error.map(|e| e.message.as_str()),
            done,
            nav: &v.nav,
            duration: duration_words(r.duration_seconds),
            r,
            can_decide,
            can_extend,
        },
        error.map_or(StatusCode::OK, ApiError::status),
    )
}

/// `GET /console/requests/{id}`.
pub async fn console_request_page(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    raw: Option<&str>,
) -> Response {
    let q = query(raw);
    let Some(id) = record_id(id) else {
        return error_page(StatusCode::NOT_FOUND, "no such request");
    };
    let path = format!("/console/requests/{id}");
    match visit(state, headers, &path, "/console/approvals").await {
        Ok(v) => request_page(state, &v, id, done_message(q.get("done")), None).await,
        Err(r) => r,
    }
}

/// `POST /console/requests/{id}/decide`: approve or deny with a reason.
pub async fn console_decide(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    body: &str,
) -> Response {
    let Some(id) = record_id(id) else {
        return error_page(StatusCode::NOT_FOUND, "no such request");
    };
    let path = format!("/console/requests/{id}");
    let (v, f) = match posted(state, headers, body, &path, "/console/approvals").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let approve = match f.get("decision").map(String::as_str) {
        Some("approve") => true,
        Some("deny") => false,
        _ => {
            let e = ApiError::bad_request("choose approve or deny");
            return request_page(state, &v, id, None, Some(&e)).await;
        }
    };
    let d = DecisionRequest {
        reason: f
            .get("reason")
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty()),
    };
    match svc::decide(state, &v.caller, id, approve, d).await {
        Ok(_) => {
            let done = if approve { "approved" } else { "denied" };
            see_other(&format!("{path}?done={done}"), Vec::new())
        }
        Err(e) if needs_step_up(&e) => step_up(&path, &e),
        Err(e) => {
            audit_refusal(state, &v, "POST", "/console/requests/{id}/decide", &e).await;
            request_page(state, &v, id, None, Some(&e)).await
        }
    }
}

/// `POST /console/requests/{id}/extend`: the requester asks for more time on their own active
/// activation (minutes, justification, ticket).
pub async fn console_extend(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    body: &str,
) -> Response {
    let Some(id) = record_id(id) else {
        return error_page(StatusCode::NOT_FOUND, "no such request");
    };
    let path = format!("/console/requests/{id}");
    let (v, f) = match posted(state, headers, body, &path, "/console").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let field = |k: &str| {
        f.get(k)
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let Some(minutes) = field("minutes")
        .and_then(|m| m.parse::<i64>().ok())
        .filter(|m| *m > 0)
    else {
        let e = ApiError::bad_request("the extension must be a whole number of minutes");
        return request_page(state, &v, id, None, Some(&e)).await;
    };
    let req = ExtendActivationRequest {
        duration_seconds: minutes.saturating_mul(60),
        justification: field("justification"),
        ticket: field("ticket"),
    };
    match svc::extend(state, &v.caller, id, req).await {
        Ok(ext) => {
            let done = if ext.state == "applied" {
                "extended"
            } else {
                "extension_requested"
            };
            see_other(&format!("{path}?done={done}"), Vec::new())
        }
        Err(e) if needs_step_up(&e) => step_up(&path, &e),
        Err(e) => {
            audit_refusal(state, &v, "POST", "/console/requests/{id}/extend", &e).await;
            request_page(state, &v, id, None, Some(&e)).await
        }
    }
}
