//! Administration basics in the console (`/console/admin/…`): users and groups, assignments,
//! role settings, and conditional-access policies with their what-if. Each page and form
//! calls the service the API calls, which checks the permission and the privilege model
//! (self-escalation, the last Global Administrator, protected people, role-assignable
//! groups) exactly as for the API; a refusal is shown with the service's reason and audited.

use portcullis_core::api::{
    AssignmentView, CaPolicyView, CreateAssignmentRequest, GroupView, RoleSettingsUpdate,
    RoleSettingsView, UserView, WhatIfRequest,
};
use portcullis_core::roles::perm;

use super::*;
use crate::services::{accounts, conditional_access, roles};

/// The strengths a form offers.
const STRENGTHS: [&str; 3] = ["password", "mfa", "phishing_resistant"];

/// Whether the caller may see any administration page (the navigation item).
pub(super) fn administers(caller: &Caller) -> bool {
    [
        perm::USERS_READ,
        perm::ASSIGNMENTS_READ,
        perm::ROLES_SETTINGS_UPDATE,
        perm::CA_READ,
    ]
    .iter()
    .any(|p| caller.holds(p))
}

/// The answer to a refused page or form: the service's reason, audited when it is a 403.
async fn refused(state: &AppState, v: &Visit, method: &str, route: &str, e: &ApiError) -> Response {
    audit_refusal(state, v, method, route, e).await;
    error_page(e.status(), &e.message)
}

// ----- users and groups -----

#[derive(askama::Template)]
#[template(path = "console/admin_users.html")]
struct UsersPage<'a> {
    title: &'a str,
    error: Option<&'a str>,
    done: Option<&'a str>,
    nav: &'a Nav,
    sub: &'a str,
    users: Vec<UserView>,
    groups: Vec<GroupView>,
}

async fn users_page(
    state: &AppState,
    v: &Visit,
    done: Option<&str>,
    error: Option<&ApiError>,
) -> Response {
    let users = match accounts::list_users(state, &v.caller).await {
        Ok(u) => u,
        Err(e) => return refused(state, v, "GET", "/console/admin/users", &e).await,
    };
    // Groups are shown to those who may read them.
    let groups = accounts::list_groups(state, &v.caller)
        .await
        .unwrap_or_default();
    render(
        v,
        &UsersPage {
            title: "Administration",
            error: error.map(|e| e.message.as_str()),
            done,
            nav: &v.nav,
            sub: "users",
            users,
            groups,
        },
        error.map_or(StatusCode::OK, ApiError::status),
    )
}

/// `GET /console/admin/users`.
pub async fn console_admin_users(
    state: &AppState,
    headers: &HeaderMap,
    raw: Option<&str>,
) -> Response {
    let q = query(raw);
    match visit(
        state,
        headers,
        "/console/admin/users",
        "/console/admin/users",
    )
    .await
    {
        Ok(v) => users_page(state, &v, done_message(q.get("done")), None).await,
        Err(r) => r,
    }
}

/// `POST /console/admin/users/{name}/enabled`: disable or enable a user.
pub async fn console_admin_user_enabled(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
    body: &str,
) -> Response {
    let here = "/console/admin/users";
    let (v, f) = match posted(state, headers, body, here, here).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let enabled = f.get("enabled").map(String::as_str) == Some("true");
    match accounts::set_user_enabled(state, &v.caller, name, enabled).await {
        Ok(_) => see_other(
            if enabled {
                "/console/admin/users?done=enabled"
            } else {
                "/console/admin/users?done=disabled"
            },
            Vec::new(),
        ),
        Err(e) if needs_step_up(&e) => step_up(here, &e),
        Err(e) => {
            audit_refusal(state, &v, "POST", "/console/admin/users/{name}/enabled", &e).await;
            users_page(state, &v, None, Some(&e)).await
        }
    }
}

/// `POST /console/admin/groups/{name}/members`: add or remove a member.
pub async fn console_admin_group_member(
    state: &AppState,
    headers: &HeaderMap,
    group: &str,
    body: &str,
) -> Response {
    let here = "/console/admin/users";
    let (v, f) = match posted(state, headers, body, here, here).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let member = f.get("member").map(|m| m.trim()).unwrap_or_default();
    let add = f.get("action").map(String::as_str) != Some("remove");
    match accounts::change_membership(state, &v.caller, group, member, add).await {
        Ok(_) => see_other("/console/admin/users?done=saved", Vec::new()),
        Err(e) if needs_step_up(&e) => step_up(here, &e),
        Err(e) => {
            audit_refusal(
                state,
                &v,
                "POST",
                "/console/admin/groups/{name}/members",
                &e,
            )
            .await;
            users_page(state, &v, None, Some(&e)).await
        }
    }
}

// ----- assignments -----

/// The assignment form's values, kept when it is shown again with an error.
#[derive(Default)]
struct AssignForm {
    principal: String,
    role: String,
    scope: String,
    kind: String,
    days: String,
}

#[derive(askama::Template)]
#[template(path = "console/admin_assignments.html")]
struct AssignmentsPage<'a> {
    title: &'a str,
    error: Option<&'a str>,
    done: Option<&'a str>,
    nav: &'a Nav,
    sub: &'a str,
    roles: Vec<String>,
    assignments: Vec<AssignmentView>,
    form: AssignForm,
    filter_principal: String,
    filter_role: String,
}

async fn assignments_page(
    state: &AppState,
    v: &Visit,
    q: &HashMap<String, String>,
    error: Option<(&ApiError, AssignForm)>,
) -> Response {
    let principal = q
        .get("principal")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty());
    let role = q.get("role").map(|s| s.trim()).filter(|s| !s.is_empty());
    let assignments = match roles::list_assignments(state, &v.caller, principal, role).await {
        Ok(a) => a,
        Err(e) => return refused(state, v, "GET", "/console/admin/assignments", &e).await,
    };
    let all_roles = match roles::list_roles(state).await {
        Ok(r) => r.into_iter().map(|r| r.slug).collect(),
        Err(e) => return error_page(e.status(), &e.message),
    };
    let (status, message, form) = match error {
        Some((e, f)) => (e.status(), Some(e.message.as_str()), f),
        None => (StatusCode::OK, None, AssignForm::default()),
    };
    render(
        v,
        &AssignmentsPage {
            title: "Administration",
            error: message,
            done: done_message(q.get("done")),
            nav: &v.nav,
            sub: "assignments",
            roles: all_roles,
            assignments,
            form,
            filter_principal: principal.unwrap_or_default().to_owned(),
            filter_role: role.unwrap_or_default().to_owned(),
        },
        status,
    )
}

/// `GET /console/admin/assignments`.
pub async fn console_admin_assignments(
    state: &AppState,
    headers: &HeaderMap,
    raw: Option<&str>,
) -> Response {
    let q = query(raw);
    let here = "/console/admin/assignments";
    match visit(state, headers, here, here).await {
        Ok(v) => assignments_page(state, &v, &q, None).await,
        Err(r) => r,
    }
}

/// `POST /console/admin/assignments`: assign a role.
pub async fn console_admin_assign(state: &AppState, headers: &HeaderMap, body: &str) -> Response {
    let here = "/console/admin/assignments";
    let (v, f) = match posted(state, headers, body, here, here).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let field = |k: &str| f.get(k).map(|s| s.trim().to_owned()).unwrap_or_default();
    let form = AssignForm {
        principal: field("principal"),
        role: field("role"),
        scope: field("scope"),
        kind: field("kind"),
        days: field("days"),
    };
    let days = match form.days.as_str() {
        "" => None,
        d => match d.parse::<i64>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                let e = ApiError::bad_request("days must be a whole number above zero");
                return assignments_page(state, &v, &HashMap::new(), Some((&e, form))).await;
            }
        },
    };
    let req = CreateAssignmentRequest {
        principal: form.principal.clone(),
        role: form.role.clone(),
        scope: Some(form.scope.clone()).filter(|s| !s.is_empty()),
        kind: Some(form.kind.clone()).filter(|s| !s.is_empty()),
        duration_seconds: days.map(|d| d.saturating_mul(86_400)),
        ends_at: None,
    };
    match roles::create_assignment(state, &v.caller, req).await {
        Ok(_) => see_other("/console/admin/assignments?done=assigned", Vec::new()),
        Err(e) if needs_step_up(&e) => step_up(here, &e),
        Err(e) => {
            audit_refusal(state, &v, "POST", here, &e).await;
            assignments_page(state, &v, &HashMap::new(), Some((&e, form))).await
        }
    }
}

/// `POST /console/admin/assignments/{id}/end`: end an assignment.
pub async fn console_admin_end_assignment(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    body: &str,
) -> Response {
    let here = "/console/admin/assignments";
    let (v, _) = match posted(state, headers, body, here, here).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match roles::delete_assignment(state, &v.caller, id).await {
        Ok(()) => see_other("/console/admin/assignments?done=ended", Vec::new()),
        Err(e) if needs_step_up(&e) => step_up(here, &e),
        Err(e) => {
            audit_refusal(state, &v, "POST", "/console/admin/assignments/{id}/end", &e).await;
            assignments_page(
                state,
                &v,
                &HashMap::new(),
                Some((&e, AssignForm::default())),
            )
            .await
        }
    }
}

// ----- role settings -----

struct RoleRow {
    role: String,
    max: String,
    strength: String,
    approval: bool,
    approvals: u32,
    approvers: String,
    justification: bool,
}

#[derive(askama::Template)]
#[template(path = "console/admin_roles.html")]
struct RolesPage<'a> {
    title: &'a str,
    error: Option<&'a str>,
    done: Option<&'a str>,
    nav: &'a Nav,
    sub: &'a str,
    roles: Vec<RoleRow>,
}

#[derive(askama::Template)]
#[template(path = "console/admin_role.html")]
struct RolePage<'a> {
    title: &'a str,
    error: Option<&'a str>,
    done: Option<&'a str>,
    nav: &'a Nav,
    sub: &'a str,
    s: RoleSettingsView,
    max_minutes: i64,
    strengths: Vec<String>,
}

/// `GET /console/admin/roles`.
pub async fn console_admin_roles(state: &AppState, headers: &HeaderMap) -> Response {
    let here = "/console/admin/roles";
    let v = match visit(state, headers, here, here).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let all = match roles::list_roles(state).await {
        Ok(r) => r,
        Err(e) => return error_page(e.status(), &e.message),
    };
    let mut rows = Vec::new();
    for r in all {
        let Ok(s) = roles::get_settings(state, &r.slug).await else {
            continue;
        };
        rows.push(RoleRow {
            max: duration_words(s.max_activation_seconds),
            strength: s.required_strength,
            approval: s.require_approval,
            approvals: s.approvals_required,
            approvers: if s.approvers.is_empty() {
                "the role's administrators".into()
            } else {
                s.approvers.join(", ")
            },
            justification: s.require_justification,
            role: s.role,
        });
    }
    render(
        &v,
        &RolesPage {
            title: "Administration",
            error: None,
            done: None,
            nav: &v.nav,
            sub: "roles",
            roles: rows,
        },
        StatusCode::OK,
    )
}

async fn role_page(
    state: &AppState,
    v: &Visit,
    slug: &str,
    done: Option<&str>,
    error: Option<&ApiError>,
) -> Response {
    let s = match roles::get_settings(state, slug).await {
        Ok(s) => s,
        Err(e) => return error_page(e.status(), &e.message),
    };
    render(
        v,
        &RolePage {
            title: "Administration",
            error: error.map(|e| e.message.as_str()),
            done,
            nav: &v.nav,
            sub: "roles",
            max_minutes: s.max_activation_seconds / 60,
            s,
            strengths: STRENGTHS.map(str::to_owned).to_vec(),
        },
        error.map_or(StatusCode::OK, ApiError::status),
    )
}

/// A role slug as roles are named (no path tricks in a form action).
fn slug(s: &str) -> Option<&str> {
    (!s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
    .then_some(s)
}

/// `GET /console/admin/roles/{role}`.
pub async fn console_admin_role(
    state: &AppState,
    headers: &HeaderMap,
    role: &str,
    raw: Option<&str>,
) -> Response {
    let Some(role) = slug(role) else {
        return error_page(StatusCode::NOT_FOUND, "no such role");
    };
    let q = query(raw);
    match visit(
        state,
        headers,
        &format!("/console/admin/roles/{role}"),
        "/console/admin/roles",
    )
    .await
    {
        Ok(v) => role_page(state, &v, role, done_message(q.get("done")), None).await,
        Err(r) => r,
    }
}

/// `POST /console/admin/roles/{role}`: change the role's settings.
pub async fn console_admin_role_save(
    state: &AppState,
    headers: &HeaderMap,
    role: &str,
    body: &str,
) -> Response {
    let Some(role) = slug(role) else {
        return error_page(StatusCode::NOT_FOUND, "no such role");
    };
    let here = format!("/console/admin/roles/{role}");
    let (v, f) = match posted(state, headers, body, &here, "/console/admin/roles").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let flag = |k: &str| f.get(k).map(|v| v == "true");
    let number = |k: &str| f.get(k).and_then(|v| v.trim().parse::<i64>().ok());
    let Some(max_minutes) = number("max_minutes").filter(|m| *m > 0) else {
        let e = ApiError::bad_request("the longest activation must be a whole number of minutes");
        return role_page(state, &v, role, None, Some(&e)).await;
    };
    let u = RoleSettingsUpdate {
        max_activation_seconds: Some(max_minutes.saturating_mul(60)),
        required_strength: f.get("strength").cloned(),
        require_justification: flag("require_justification"),
        require_ticket: flag("require_ticket"),
        require_approval: flag("require_approval"),
        approvers: f.get("approvers").map(|a| {
            a.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        }),
        approvals_required: number("approvals_required").and_then(|n| u32::try_from(n).ok()),
        ..Default::default()
    };
    match roles::update_settings(state, &v.caller, role, u).await {
        Ok(_) => see_other(&format!("{here}?done=saved"), Vec::new()),
        Err(e) if needs_step_up(&e) => step_up(&here, &e),
        // Four eyes: recorded as a change request, not applied; the page says what happens next.
        Err(e) if e.code == portcullis_core::error::ErrorCode::ChangePending => {
            role_page(state, &v, role, Some(&e.message), None).await
        }
        Err(e) => {
            audit_refusal(state, &v, "POST", "/console/admin/roles/{role}", &e).await;
            role_page(state, &v, role, None, Some(&e)).await
        }
    }
}

// ----- conditional access -----

/// The what-if form's values.
#[derive(Default)]
struct WhatIfForm {
    user: String,
    ip: String,
    app: String,
    strength: String,
}

struct ExplanationRow {
    policy: String,
    state: String,
    applies: bool,
    reason: String,
}

/// A what-if decision, for the page.
struct DecisionView {
    outcome: String,
    detail: String,
    note: Option<String>,
    explanation: Vec<ExplanationRow>,
}

impl DecisionView {
    fn of(d: &serde_json::Value) -> Self {
        let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
        let list = |v: &serde_json::Value| {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default()
        };
        let mut detail = Vec::new();
        if let Some(st) = d["strength"].as_str() {
            detail.push(format!("needs {st}"));
        }
        if let Some(h) = d["max_age_hours"].as_u64() {
            detail.push(format!("a sign-in at most {h} h old"));
        }
        let by = list(&d["policies"]);
        if !by.is_empty() {
            detail.push(format!("by {by}"));
        }
        Self {
            outcome: s(&d["outcome"]),
            detail: detail.join(", "),
            note: d["note"].as_str().map(str::to_owned),
            explanation: d["explanation"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|e| ExplanationRow {
                            policy: s(&e["policy"]),
                            state: s(&e["state"]),
                            applies: e["applies"].as_bool().unwrap_or(false),
                            reason: s(&e["reason"]),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

#[derive(askama::Template)]
#[template(path = "console/admin_policies.html")]
struct PoliciesPage<'a> {
    title: &'a str,
    error: Option<&'a str>,
    done: Option<&'a str>,
    nav: &'a Nav,
    sub: &'a str,
    policies: Vec<CaPolicyView>,
    w: WhatIfForm,
    decision: Option<DecisionView>,
    strengths: Vec<String>,
}

/// `GET /console/admin/policies`: the policies, and what-if when the form was filled in.
pub async fn console_admin_policies(
    state: &AppState,
    headers: &HeaderMap,
    raw: Option<&str>,
) -> Response {
    let q = query(raw);
    let here = "/console/admin/policies";
    let v = match visit(state, headers, here, here).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let policies = match conditional_access::list_policies(state, &v.caller).await {
        Ok(p) => p,
        Err(e) => return refused(state, &v, "GET", here, &e).await,
    };
    let field = |k: &str| q.get(k).map(|s| s.trim().to_owned()).unwrap_or_default();
    let w = WhatIfForm {
        user: field("user"),
        ip: field("ip"),
        app: field("app"),
        strength: field("strength"),
    };
    let (mut decision, mut error, mut status) = (None, None, StatusCode::OK);
    if !w.user.is_empty() || !w.ip.is_empty() {
        let req = WhatIfRequest {
            user: w.user.clone(),
            ip: w.ip.clone(),
            app: Some(w.app.clone()).filter(|s| !s.is_empty()),
            strength: Some(w.strength.clone()).filter(|s| !s.is_empty()),
            hours_since_sign_in: None,
            flow: None,
        };
        match conditional_access::what_if(state, &v.caller, req).await {
            Ok(d) => decision = Some(DecisionView::of(&d)),
            Err(e) => {
                status = e.status();
                error = Some(e.message);
            }
        }
    }
    render(
        &v,
        &PoliciesPage {
            title: "Administration",
            error: error.as_deref(),
            done: None,
            nav: &v.nav,
            sub: "policies",
            policies,
            w,
            decision,
            strengths: STRENGTHS.map(str::to_owned).to_vec(),
        },
        status,
    )
}
