//! My access (`/console`): the roles a person holds now with the time left, the roles they may
//! activate with a request form, and their requests; deactivate and cancel.

use portcullis_core::api::{ActivationRequestView, CreateActivationRequest, DecisionRequest};
use portcullis_core::roles::AssignmentKind;

use super::*;
use crate::services::roles as svc;

/// One role held now.
struct ActiveRow {
    role: String,
    scope: String,
    ends_at: Option<String>,
    /// Without JavaScript: the time left when the page was made.
    left: String,
    /// Deactivation is for activations (not standing assignments).
    request_id: Option<String>,
}

/// One eligibility, with what its role's settings ask.
struct EligibleRow {
    /// `role scope`, the form's value.
    value: String,
    role: String,
    scope: String,
    max: String,
    max_minutes: i64,
    approval: bool,
    strength: String,
}

/// The request form's values (kept when it is shown again with an error).
#[derive(Default)]
struct RequestForm {
    eligibility: String,
    minutes: String,
    justification: String,
    ticket: String,
    /// `datetime-local`, UTC: start later.
    start: String,
}

#[derive(askama::Template)]
#[template(path = "console/access.html")]
struct AccessPage<'a> {
    title: &'a str,
    error: Option<&'a str>,
    done: Option<&'a str>,
    nav: &'a Nav,
    active: Vec<ActiveRow>,
    eligible: Vec<EligibleRow>,
    requests: Vec<ActivationRequestView>,
    form: RequestForm,
}

/// Most requests listed.
const LISTED: usize = 50;

async fn access_page(
    state: &AppState,
    v: &Visit,
    done: Option<&str>,
    error: Option<(&ApiError, RequestForm)>,
) -> Response {
    let Some(me) = v.principal() else {
        return error_page(StatusCode::FORBIDDEN, "sign in as a person");
    };
    let now = OffsetDateTime::now_utc();
    let active = match svc::active_roles(state, &me.id, now).await {
        Ok(a) => a,
        Err(e) => return error_page(e.status(), &e.message),
    };
    let active = active
        .into_iter()
        .map(|a| ActiveRow {
            left: a.seconds_left.map_or_else(
                || "permanent".into(),
                |s| format!("{} left", duration_words(s)),
            ),
            request_id: a.source.strip_prefix("request:").map(str::to_owned),
            role: a.role,
            scope: a.scope,
            ends_at: a.ends_at,
        })
        .collect();
    let mut eligible = Vec::new();
    if let Caller::Session(sc) = &v.caller {
        for a in sc
            .assignments
            .iter()
            .filter(|a| a.kind == AssignmentKind::Eligible)
        {
            let value = format!("{} {}", a.role, a.scope);
            if eligible.iter().any(|e: &EligibleRow| e.value == value) {
                continue;
            }
            let Ok(s) = svc::get_settings(state, &a.role).await else {
                continue;
            };
            eligible.push(EligibleRow {
                value,
                role: a.role.clone(),
                scope: a.scope.clone(),
                max: duration_words(s.max_activation_seconds),
                max_minutes: s.max_activation_seconds / 60,
                approval: s.require_approval,
                strength: s.required_strength,
            });
        }
    }
    let mut requests = match svc::list_requests(state, &v.caller, "mine", None).await {
        Ok(r) => r,
        Err(e) => return error_page(e.status(), &e.message),
    };
    requests.truncate(LISTED);
    let (status, message, form) = match error {
        Some((e, form)) => (e.status(), Some(e.message.as_str()), form),
        None => (StatusCode::OK, None, RequestForm::default()),
    };
    // An hour, or less where a role allows less: the default is never refused for length.
    let shortest = eligible.iter().map(|e| e.max_minutes).min().unwrap_or(60);
    let form = RequestForm {
        minutes: if form.minutes.is_empty() {
            shortest.clamp(1, 60).to_string()
        } else {
            form.minutes
        },
        ..form
    };
    render(
        v,
        &AccessPage {
            title: "My access",
            error: message,
            done,
            nav: &v.nav,
            active,
            eligible,
            requests,
            form,
        },
        status,
    )
}

/// `GET /console`.
pub async fn console_access(state: &AppState, headers: &HeaderMap, raw: Option<&str>) -> Response {
    let q = query(raw);
    match visit(state, headers, "/console", "/console").await {
        Ok(v) => access_page(state, &v, done_message(q.get("done")), None).await,
        Err(r) => r,
    }
}

/// `POST /console/requests`: an activation request from the form.
pub async fn console_request(state: &AppState, headers: &HeaderMap, body: &str) -> Response {
    let (v, f) = match posted(state, headers, body, "/console", "/console").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let field = |k: &str| f.get(k).map(|s| s.trim().to_owned()).unwrap_or_default();
    let form = RequestForm {
        eligibility: field("eligibility"),
        minutes: field("minutes"),
        justification: field("justification"),
        ticket: field("ticket"),
        start: field("start"),
    };
    let Some((role, scope)) = form.eligibility.split_once(' ') else {
        let e = ApiError::bad_request("choose a role to request");
        return access_page(state, &v, None, Some((&e, form))).await;
    };
    let Some(minutes) = form.minutes.parse::<i64>().ok().filter(|m| *m > 0) else {
        let e = ApiError::bad_request("the duration must be a whole number of minutes");
        return access_page(state, &v, None, Some((&e, form))).await;
    };
    let req = CreateActivationRequest {
        role: role.to_owned(),
        scope: Some(scope.to_owned()),
        duration_seconds: minutes.saturating_mul(60),
        justification: Some(form.justification.clone()).filter(|s| !s.is_empty()),
        ticket: Some(form.ticket.clone()).filter(|s| !s.is_empty()),
        // A `datetime-local` value (`2026-12-03T09:00`, said to be UTC on the form).
        starts_at: Some(form.start.clone()).filter(|s| !s.is_empty()).map(|s| {
            if s.len() == 16 {
                format!("{s}:00Z")
            } else {
                format!("{s}Z")
            }
        }),
    };
    match svc::create_request(state, &v.caller, req).await {
        Ok(r) if r.state == "active" => see_other("/console?done=activated", Vec::new()),
        Ok(r) if r.state == "scheduled" => see_other("/console?done=scheduled", Vec::new()),
        Ok(_) => see_other("/console?done=requested", Vec::new()),
        Err(e) if needs_step_up(&e) => step_up("/console", &e),
        Err(e) => {
            audit_refusal(state, &v, "POST", "/console/requests", &e).await;
            access_page(state, &v, None, Some((&e, form))).await
        }
    }
}

/// `POST /console/requests/{id}/deactivate` and `…/cancel`: the requester ends their own.
pub async fn console_close(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    deactivate: bool,
    body: &str,
) -> Response {
    let (v, _) = match posted(state, headers, body, "/console", "/console").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (action, done) = if deactivate {
        (svc::CloseAction::Deactivate, "deactivated")
    } else {
        (svc::CloseAction::Cancel, "cancelled")
    };
    let d = DecisionRequest {
        reason: Some("from the console".into()),
    };
    match svc::close(state, &v.caller, id, action, d).await {
        Ok(_) => see_other(&format!("/console?done={done}"), Vec::new()),
        Err(e) if needs_step_up(&e) => step_up("/console", &e),
        Err(e) => {
            let route = if deactivate {
                "/console/requests/{id}/deactivate"
            } else {
                "/console/requests/{id}/cancel"
            };
            audit_refusal(state, &v, "POST", route, &e).await;
            access_page(state, &v, None, Some((&e, RequestForm::default()))).await
        }
    }
}
