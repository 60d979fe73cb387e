//! The audit log in the console (`/console/audit`, for holders of `audit.read`): events with
//! filters and paging, one event's details, the chain's verification and newest checkpoint,
//! and an export of the filtered events as JSON lines. Everything through
//! [`crate::services::audit`], exactly as the API reads it.

use portcullis_core::api::{AuditEventView, CheckpointView, VerifyResult};
use portcullis_core::roles::perm;

use super::*;
use crate::services::audit as svc;

/// Events per page.
const PAGE: i64 = 50;
/// Most events one export holds (narrow the filter for more).
const EXPORT_MAX: usize = 100_000;

/// The filter form's values, as typed.
#[derive(Default)]
struct Filter {
    actor: String,
    action: String,
    target: String,
    outcome: String,
    since: String,
    until: String,
}

impl Filter {
    fn from_query(q: &HashMap<String, String>) -> Self {
        let f = |k: &str| q.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
        Self {
            actor: f("actor"),
            action: f("action"),
            target: f("target"),
            outcome: f("outcome"),
            since: f("since"),
            until: f("until"),
        }
    }

    /// The service's query (a `datetime-local` value is read as UTC).
    fn query(&self, after: Option<i64>, limit: i64) -> svc::EventQuery {
        let some = |s: &String| Some(s.clone()).filter(|s| !s.is_empty());
        svc::EventQuery {
            actor: some(&self.actor),
            action: some(&self.action),
            target: some(&self.target),
            outcome: some(&self.outcome),
            since: some(&self.since).map(|t| utc(&t)),
            until: some(&self.until).map(|t| utc(&t)),
            after,
            limit: Some(limit),
        }
    }

    /// `?k=v&…` of the non-empty fields (and `after`), for links.
    fn link(&self, after: Option<i64>) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("actor", &self.actor),
            ("action", &self.action),
            ("target", &self.target),
            ("outcome", &self.outcome),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if !v.is_empty() {
                s.append_pair(k, v);
            }
        }
        if let Some(a) = after {
            s.append_pair("after", &a.to_string());
        }
        let q = s.finish();
        if q.is_empty() { q } else { format!("?{q}") }
    }
}

/// A browser's `datetime-local` value (`2026-12-07T10:30` or with seconds) as RFC 3339 UTC;
/// anything else is passed on for the service to refuse with its message.
fn utc(t: &str) -> String {
    let has_zone = t.ends_with('Z') || t.get(19..).is_some_and(|z| z.contains(['+', '-']));
    match (has_zone, t.len()) {
        (true, _) => t.to_owned(),
        (false, 16) => format!("{t}:00Z"),
        (false, _) => format!("{t}Z"),
    }
}

#[derive(askama::Template)]
#[template(path = "console/audit.html")]
struct AuditPage<'a> {
    title: &'a str,
    error: Option<&'a str>,
    done: Option<&'a str>,
    nav: &'a Nav,
    f: Filter,
    query: String,
    events: Vec<AuditEventView>,
    next: Option<String>,
    checkpoint: Option<CheckpointView>,
}

#[derive(askama::Template)]
#[template(path = "console/audit_event.html")]
struct EventPage<'a> {
    title: &'a str,
    error: Option<&'a str>,
    done: Option<&'a str>,
    nav: &'a Nav,
    e: AuditEventView,
    details: String,
}

#[derive(askama::Template)]
#[template(path = "console/audit_verify.html")]
struct VerifyPage<'a> {
    title: &'a str,
    error: Option<&'a str>,
    done: Option<&'a str>,
    nav: &'a Nav,
    v: VerifyResult,
}

/// The visitor of an audit page, or the answer for one who may not read the log (audited).
async fn reader(state: &AppState, headers: &HeaderMap, path: &str) -> Result<Visit, Response> {
    let v = visit(state, headers, path, "/console/audit").await?;
    if let Err(e) = v.caller.require_bootstrap_or(perm::AUDIT_READ) {
        audit_refusal(state, &v, "GET", "/console/audit", &e).await;
        return Err(error_page(e.status(), &e.message));
    }
    Ok(v)
}

/// `GET /console/audit`.
pub async fn console_audit(state: &AppState, headers: &HeaderMap, raw: Option<&str>) -> Response {
    let q = query(raw);
    let v = match reader(state, headers, "/console/audit").await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let f = Filter::from_query(&q);
    let after = q.get("after").and_then(|a| a.parse::<i64>().ok());
    let checkpoint = match svc::newest_checkpoint(state, &v.caller).await {
        Ok(c) => c,
        Err(e) => return error_page(e.status(), &e.message),
    };
    let (events, next, error, status) =
        match svc::list_events(state, &v.caller, f.query(after, PAGE)).await {
            Ok(p) => (
                p.events,
                p.next_after.map(|a| f.link(Some(a))),
                None,
                StatusCode::OK,
            ),
            Err(e) => (Vec::new(), None, Some(e.message.clone()), e.status()),
        };
    render(
        &v,
        &AuditPage {
            title: "Audit log",
            error: error.as_deref(),
            done: None,
            nav: &v.nav,
            query: f.link(None),
            f,
            events,
            next,
            checkpoint,
        },
        status,
    )
}

/// `GET /console/audit/{seq}`.
pub async fn console_audit_event(state: &AppState, headers: &HeaderMap, seq: &str) -> Response {
    let Ok(seq) = seq.parse::<i64>() else {
        return error_page(StatusCode::NOT_FOUND, "no such audit event");
    };
    let v = match reader(state, headers, &format!("/console/audit/{seq}")).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match svc::event(state, &v.caller, seq).await {
        Ok(e) => {
            let details = serde_json::to_string_pretty(&e.details).unwrap_or_default();
            render(
                &v,
                &EventPage {
                    title: "Audit event",
                    error: None,
                    done: None,
                    nav: &v.nav,
                    e,
                    details,
                },
                StatusCode::OK,
            )
        }
        Err(e) => error_page(e.status(), &e.message),
    }
}

/// `GET /console/audit/verify`: walks the whole chain now.
pub async fn console_audit_verify(state: &AppState, headers: &HeaderMap) -> Response {
    let v = match reader(state, headers, "/console/audit/verify").await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match svc::verify(state, &v.caller).await {
        Ok(result) => render(
            &v,
            &VerifyPage {
                title: "Chain verification",
                error: None,
                done: None,
                nav: &v.nav,
                v: result,
            },
            StatusCode::OK,
        ),
        Err(e) => error_page(e.status(), &e.message),
    }
}

/// `GET /console/audit/export`: the filtered events as JSON lines, oldest first.
pub async fn console_audit_export(
    state: &AppState,
    headers: &HeaderMap,
    raw: Option<&str>,
) -> Response {
    let q = query(raw);
    let v = match reader(state, headers, "/console/audit").await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let f = Filter::from_query(&q);
    let mut out = String::new();
    let (mut after, mut count) = (None, 0usize);
    loop {
        let page = match svc::list_events(state, &v.caller, f.query(after, 1000)).await {
            Ok(p) => p,
            Err(e) => return error_page(e.status(), &e.message),
        };
        for e in &page.events {
            if let Ok(line) = serde_json::to_string(e) {
                out.push_str(&line);
                out.push('\n');
            }
        }
        count += page.events.len();
        match page.next_after {
            Some(n) if count < EXPORT_MAX => after = Some(n),
            _ => break,
        }
    }
    let mut r = (
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"portcullis-audit.jsonl\"",
            ),
        ],
        out,
    )
        .into_response();
    security_headers(r.headers_mut(), None, false);
    r
}
