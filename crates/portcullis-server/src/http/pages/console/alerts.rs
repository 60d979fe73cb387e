//! Alert deliveries in the console (`/console/alerts`, for holders of `alerts.read`): the
//! outbox's messages with channel, topic, severity, state and attempts, filtered by state; one
//! message with every attempt; and, for holders of `alerts.manage`, the retry of a dead
//! letter. Everything through [`crate::services::alerts`], exactly as the API does it.

use axum::extract::Path;
use portcullis_core::api::AlertView;
use portcullis_core::roles::perm;

use super::*;
use crate::services::alerts as svc;

/// The states the filter offers (the service refuses anything else with its message).
const STATES: [&str; 4] = ["pending", "delivered", "dead", "suppressed"];

#[derive(askama::Template)]
#[template(path = "console/alerts.html")]
struct AlertsPage<'a> {
    title: &'a str,
    error: Option<&'a str>,
    done: Option<&'a str>,
    nav: &'a Nav,
    filter: String,
    states: [&'static str; 4],
    alerts: Vec<AlertView>,
}

#[derive(askama::Template)]
#[template(path = "console/alert.html")]
struct AlertPage<'a> {
    title: &'a str,
    error: Option<&'a str>,
    done: Option<&'a str>,
    nav: &'a Nav,
    a: AlertView,
    can_retry: bool,
}

/// `GET /console/alerts`.
pub async fn console_alerts(state: &AppState, headers: &HeaderMap, raw: Option<&str>) -> Response {
    let q = query(raw);
    let v = match visit(state, headers, "/console/alerts", "/console/alerts").await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let filter = q
        .get("state")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let wanted = Some(filter.as_str()).filter(|s| !s.is_empty());
    let (alerts, error, status) = match svc::list(state, &v.caller, wanted).await {
        Ok(a) => (a, None, StatusCode::OK),
        Err(e) if e.status() == StatusCode::FORBIDDEN => {
            audit_refusal(state, &v, "GET", "/console/alerts", &e).await;
            return error_page(e.status(), &e.message);
        }
        Err(e) => (Vec::new(), Some(e.message.clone()), e.status()),
    };
    render(
        &v,
        &AlertsPage {
            title: "Alert deliveries",
            error: error.as_deref(),
            done: None,
            nav: &v.nav,
            filter,
            states: STATES,
            alerts,
        },
        status,
    )
}

async fn alert_page(
    state: &AppState,
    v: &Visit,
    id: &str,
    done: Option<&str>,
    error: Option<&ApiError>,
) -> Response {
    let a = match svc::show(state, &v.caller, id).await {
        Ok(a) => a,
        Err(e) => {
            // A refused form was audited as the form; a refused page is audited here.
            if error.is_none() {
                audit_refusal(state, v, "GET", "/console/alerts/{id}", &e).await;
            }
            return error_page(e.status(), &e.message);
        }
    };
    let can_retry = a.state == "dead" && a.channel.is_some() && v.caller.holds(perm::ALERTS_MANAGE);
    render(
        v,
        &AlertPage {
            title: "Alert delivery",
            error: error.map(|e| e.message.as_str()),
            done,
            nav: &v.nav,
            a,
            can_retry,
        },
        error.map_or(StatusCode::OK, ApiError::status),
    )
}

/// `GET /console/alerts/{id}`.
pub async fn console_alert(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    raw: Option<&str>,
) -> Response {
    let q = query(raw);
    let Some(id) = record_id(id) else {
        return error_page(StatusCode::NOT_FOUND, "no such alert");
    };
    let path = format!("/console/alerts/{id}");
    match visit(state, headers, &path, "/console/alerts").await {
        Ok(v) => alert_page(state, &v, id, done_message(q.get("done")), None).await,
        Err(r) => r,
    }
}

/// `POST /console/alerts/{id}/retry`: a dead letter back in the queue.
pub async fn console_alert_retry(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    body: &str,
) -> Response {
    let Some(id) = record_id(id) else {
        return error_page(StatusCode::NOT_FOUND, "no such alert");
    };
    let path = format!("/console/alerts/{id}");
    let (v, _) = match posted(state, headers, body, &path, "/console/alerts").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match svc::retry(state, &v.caller, id).await {
        Ok(_) => see_other(&format!("{path}?done=retried"), Vec::new()),
        Err(e) if needs_step_up(&e) => step_up(&path, &e),
        Err(e) => {
            audit_refusal(state, &v, "POST", "/console/alerts/{id}/retry", &e).await;
            alert_page(state, &v, id, None, Some(&e)).await
        }
    }
}

/// Alert deliveries with their state, newest first, filtered by state (`alerts.read`).
#[utoipa::path(get, path = "/console/alerts", tag = "console",
    params(("state" = Option<String>, Query, description = "pending, delivered, dead or suppressed")),
    responses((status = 200, description = "page", content_type = "text/html"), (status = 303, description = "to sign-in first"), (status = 400, description = "unknown state, with the reason on the page", content_type = "text/html"), (status = 403, description = "no alerts.read", content_type = "text/html")))]
pub async fn console_alerts_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    console_alerts(&state, &headers, q.as_deref()).await
}

/// One alert delivery with every attempt, and the retry form for a dead letter.
#[utoipa::path(get, path = "/console/alerts/{id}", tag = "console",
    params(("id" = String, Path, description = "message id")),
    responses((status = 200, description = "page", content_type = "text/html"), (status = 303, description = "to sign-in first"), (status = 403, description = "no alerts.read", content_type = "text/html"), (status = 404, description = "no such alert", content_type = "text/html")))]
pub async fn console_alert_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    console_alert(&state, &headers, &id, q.as_deref()).await
}

/// Retry a dead-lettered delivery (form; `alerts.manage`).
#[utoipa::path(post, path = "/console/alerts/{id}/retry", tag = "console",
    params(("id" = String, Path, description = "message id")),
    responses((status = 303, description = "retried: back to the delivery"), (status = 403, description = "CSRF check failed or refused", content_type = "text/html"), (status = 404, description = "no such alert", content_type = "text/html"), (status = 409, description = "not a dead letter of an existing channel, with the reason on the page", content_type = "text/html")))]
pub async fn console_alert_retry_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: String,
) -> Response {
    console_alert_retry(&state, &headers, &id, &body).await
}
