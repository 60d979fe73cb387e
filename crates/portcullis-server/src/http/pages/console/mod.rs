//! The web console (`/console`): request, approve and review in a browser, for the people who
//! are not terminal users. Server-rendered askama pages that work without JavaScript
//! (`assets/console.js` only counts time down); one stylesheet (`assets/console.css`).
//!
//! Invariants:
//! - Every page calls the same services as the API with the same [`Caller`]; no rule is
//!   decided here. A refusal is shown as the service's own message, and a 403 is audited as a
//!   refused attempt exactly as the API's authorisation layer does (privilege model rule 9).
//! - The visitor is the session of the strict session cookie set by `/signin` (a full session;
//!   a registration-only one is sent to enrol a factor first). Without one, a page redirects
//!   to `/signin?return_to=…` with a `return_to` that is only ever a `/console` path.
//! - Every form is a POST carrying the CSRF token that must equal the CSRF cookie, from this
//!   origin (`Origin`, `Sec-Fetch-Site`); anything else is refused before a service runs and
//!   changes nothing. Pages are `no-store`, framed by nobody, and their CSP allows scripts
//!   and styles from this server only (`crate::http::pages`).
//! - After a successful form the browser is redirected (303) to a page with `?done=CODE`,
//!   shown as one of a fixed set of sentences: nothing the request says is echoed back except
//!   through askama's escaping.
//! - A service that asks for a fresher or stronger proof (`step_up_required`,
//!   `reauth_required`) sends the visitor to `/console/reauth`, which calls the API's
//!   re-authentication service and returns to the console page.

mod access;
mod admin;
mod alerts;
mod approvals;
mod audit;
mod breakglass;
mod reviews;
mod routes;

pub use access::*;
pub use admin::*;
pub use alerts::*;
pub use approvals::*;
pub use audit::*;
pub use breakglass::*;
pub use reviews::*;
pub use routes::*;

use super::*;
use crate::error::ApiError;
use crate::services::caller::Caller;
use portcullis_core::error::ErrorCode;

/// Whether `s` is a console path a sign-in or step-up may return to.
pub(super) fn is_console_path(s: &str) -> bool {
    (s == "/console" || s.starts_with("/console/") || s.starts_with("/console?"))
        && s.is_ascii()
        && !s.contains("//")
        && !s.contains(['\\', '\r', '\n', '"', '<', '>'])
        && s.len() <= 1024
}

pub(crate) struct NavItem {
    href: &'static str,
    label: &'static str,
    current: bool,
}

/// What every console page shows around its content.
pub(crate) struct Nav {
    items: Vec<NavItem>,
    user: String,
    strength: String,
    csrf: String,
}

/// A signed-in visitor of one console page.
pub(crate) struct Visit {
    caller: Caller,
    nav: Nav,
    set_csrf: Option<String>,
}

impl Visit {
    fn principal(&self) -> Option<&portcullis_store::accounts::Principal> {
        match &self.caller {
            Caller::Session(s) => Some(&s.principal),
            Caller::Bootstrap => None,
        }
    }
}

/// The pages of the console, in navigation order: (path, label, shown to this caller).
fn nav_items(caller: &Caller, here: &str) -> Vec<NavItem> {
    let all: Vec<(&'static str, &'static str, bool)> = vec![
        ("/console", "My access", true),
        ("/console/approvals", "Approvals", true),
        ("/console/reviews", "Reviews", true),
        (
            "/console/audit",
            "Audit log",
            caller.holds(portcullis_core::roles::perm::AUDIT_READ),
        ),
        (
            "/console/breakglass",
            "Break-glass",
            caller.holds(portcullis_core::roles::perm::BREAKGLASS_READ),
        ),
        (
            "/console/alerts",
            "Alerts",
            caller.holds(portcullis_core::roles::perm::ALERTS_READ),
        ),
        (
            "/console/admin/users",
            "Administration",
            admin::administers(caller),
        ),
    ];
    all.into_iter()
        .filter(|(_, _, shown)| *shown)
        .map(|(href, label, _)| NavItem {
            href,
            label,
            current: href == here
                || (href.starts_with("/console/admin/") && here.starts_with("/console/admin/")),
        })
        .collect()
}

/// The visitor of `path` (navigation item `here`), or the answer that sends them to sign in.
async fn visit(
    state: &AppState,
    headers: &HeaderMap,
    path: &str,
    here: &str,
) -> Result<Visit, Response> {
    let now = OffsetDateTime::now_utc();
    let Some(sc) = browser_session(state, headers, now).await? else {
        let back: String = url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
        return Err(see_other(&format!("/signin?return_to={back}"), Vec::new()));
    };
    if sc.scope != SessionScope::Full {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            "this account must enrol a second factor first (portcullis mfa enroll totp), then sign in again",
        ));
    }
    let (csrf, set_csrf) = csrf_token(state, headers);
    let user = sc.principal.name.clone();
    let strength = sc.strength.as_str().to_owned();
    let caller = Caller::Session(Box::new(sc));
    Ok(Visit {
        nav: Nav {
            items: nav_items(&caller, here),
            user,
            strength,
            csrf,
        },
        caller,
        set_csrf,
    })
}

/// A console form: the visitor and the form's fields, once the CSRF token, the origin and
/// the session are checked; otherwise the refusal (nothing has run).
async fn posted(
    state: &AppState,
    headers: &HeaderMap,
    body: &str,
    path: &str,
    here: &str,
) -> Result<(Visit, HashMap<String, String>), Response> {
    let form = parse_once(body).map_err(|m| error_page(StatusCode::BAD_REQUEST, &m))?;
    if !csrf_ok(state, headers, &form) {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            "this form did not come from this console (the CSRF check failed); nothing was changed. Reload the page and try again.",
        ));
    }
    let v = visit(state, headers, path, here).await?;
    Ok((v, form))
}

/// Renders a console page for `v` with `status`.
fn render(v: &Visit, t: &impl askama::Template, status: StatusCode) -> Response {
    let mut p = Page::new(t).status(status);
    p.scripts = true;
    p.cookies.extend(v.set_csrf.clone());
    p.into_response()
}

/// The fixed sentence for a `?done=` code.
fn done_message(code: Option<&String>) -> Option<&'static str> {
    Some(match code?.as_str() {
        "requested" => "Your request is in; you will be told when it is decided.",
        "activated" => "The role is active.",
        "scheduled" => "The activation is scheduled; it starts at the time you chose.",
        "extended" => "The activation is extended.",
        "extension_requested" => {
            "Your extension is asked; the role keeps its end until it is decided."
        }
        "deactivated" => "The role is deactivated; its access is being removed everywhere.",
        "cancelled" => "The request is cancelled.",
        "approved" => "Approved.",
        "denied" => "Denied.",
        "reauthenticated" => "Confirmed. Try again now.",
        "retried" => "The delivery is back in the queue with a fresh budget of attempts.",
        "enabled" => "The account is enabled.",
        "disabled" => "The account is disabled; its sessions are ended.",
        "saved" => "Saved.",
        "review_kept" => "Kept; recorded for the review.",
        "review_removed" => "Marked for removal: the assignment ends when the round closes.",
        "assigned" => "Assigned.",
        "ended" => "The assignment is ended; what it granted is being removed.",
        _ => return None,
    })
}

/// The query of a console page (each parameter at most once; unknown ones ignored).
fn query(raw: Option<&str>) -> HashMap<String, String> {
    parse_once(raw.unwrap_or("")).unwrap_or_default()
}

/// Whether a service asks for a fresher or stronger proof of the person.
fn needs_step_up(e: &ApiError) -> bool {
    matches!(
        e.code,
        ErrorCode::StepUpRequired | ErrorCode::ReauthRequired
    )
}

/// A refused attempt is evidence: audited and counted like the API's (privilege rule 9).
async fn audit_refusal(state: &AppState, v: &Visit, method: &str, route: &str, e: &ApiError) {
    if e.status() != StatusCode::FORBIDDEN {
        return;
    }
    let now = OffsetDateTime::now_utc().unix_timestamp();
    for ev in state
        .refusals
        .record(&v.caller.actor(), method, route, e.code.as_str(), now)
    {
        if let Err(err) = state.store.append(ev).await {
            tracing::warn!(error = %err, "could not record a refused attempt");
        }
    }
}

/// The step-up page's address for a visitor coming back to `path`.
fn step_up(path: &str, e: &ApiError) -> Response {
    let back: String = url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
    let why = if e.code == ErrorCode::StepUpRequired {
        "stronger"
    } else {
        "fresh"
    };
    see_other(
        &format!("/console/reauth?why={why}&return_to={back}"),
        Vec::new(),
    )
}

#[derive(askama::Template)]
#[template(path = "console/reauth.html")]
struct ReauthPage<'a> {
    title: &'a str,
    error: Option<&'a str>,
    done: Option<&'a str>,
    nav: &'a Nav,
    why: &'a str,
    return_to: &'a str,
    webauthn: Option<WebauthnForm>,
    totp: bool,
}

async fn reauth_page(
    state: &AppState,
    v: &Visit,
    why: &str,
    return_to: &str,
    error: Option<&str>,
) -> Response {
    let why = match why {
        "stronger" => {
            "This needs a stronger proof than your sign-in gave: a role that needs a security key needs your key."
        }
        _ => "This needs a fresh proof that it is you.",
    };
    let Some(me) = v.principal() else {
        return error_page(StatusCode::FORBIDDEN, "sign in as a person");
    };
    let factors = match state.store.factors(&me.id).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "factors");
            return error_page(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    let has =
        |k: portcullis_core::factor::FactorKind| factors.iter().any(|f| f.confirmed && f.kind == k);
    let mut webauthn = None;
    if has(portcullis_core::factor::FactorKind::Webauthn) {
        match crate::services::webauthn::start_reauth(state, &v.caller).await {
            Ok(c) => {
                webauthn = Some(WebauthnForm {
                    ceremony_id: c.ceremony_id,
                    options: c.options.to_string(),
                })
            }
            Err(e) => return error_page(e.status(), &e.message),
        }
    }
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    render(
        v,
        &ReauthPage {
            title: "Confirm it is you",
            error,
            done: None,
            nav: &v.nav,
            why,
            return_to,
            webauthn,
            totp: has(portcullis_core::factor::FactorKind::Totp),
        },
        status,
    )
}

/// `GET /console/reauth`: the step-up form.
pub async fn console_reauth_page(
    state: &AppState,
    headers: &HeaderMap,
    raw: Option<&str>,
) -> Response {
    let q = query(raw);
    let v = match visit(state, headers, "/console/reauth", "").await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let return_to = q
        .get("return_to")
        .filter(|r| is_console_path(r))
        .map_or("/console", String::as_str);
    reauth_page(
        state,
        &v,
        q.get("why").map_or("", String::as_str),
        return_to,
        None,
    )
    .await
}

/// `POST /console/reauth`: password and code, through the API's re-authentication service.
pub async fn console_reauth(
    state: &AppState,
    client: &ClientInfo,
    headers: &HeaderMap,
    body: &str,
) -> Response {
    let (v, form) = match posted(state, headers, body, "/console/reauth", "").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let return_to = form
        .get("return_to")
        .filter(|r| is_console_path(r))
        .cloned()
        .unwrap_or_else(|| "/console".to_owned());
    let credential = match form.get("credential").filter(|c| !c.is_empty()) {
        Some(c) => match serde_json::from_str(c) {
            Ok(v) => Some(v),
            Err(_) => {
                return reauth_page(
                    state,
                    &v,
                    "",
                    &return_to,
                    Some("the security key's answer is unreadable"),
                )
                .await;
            }
        },
        None => None,
    };
    let req = portcullis_core::api::ReauthRequest {
        password: form.get("password").cloned(),
        code: form.get("code").cloned(),
        ceremony_id: form.get("ceremony_id").cloned(),
        credential,
    };
    match crate::services::signin::reauthenticate(state, &v.caller, client, req).await {
        Ok(_) => {
            let sep = if return_to.contains('?') { '&' } else { '?' };
            see_other(&format!("{return_to}{sep}done=reauthenticated"), Vec::new())
        }
        Err(e) => reauth_page(state, &v, "", &return_to, Some(&e.message)).await,
    }
}

/// `POST /console/signout`: ends the session and drops its cookie.
pub async fn console_signout(state: &AppState, headers: &HeaderMap, body: &str) -> Response {
    let (v, _) = match posted(state, headers, body, "/console", "").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(e) = crate::services::signin::signout(state, &v.caller).await {
        tracing::warn!(error = %e.message, "console sign-out");
    }
    let gone = format!(
        "{}=; Max-Age=0",
        set_cookie(state, session_cookie(state), "")
    );
    see_other("/signin?return_to=%2Fconsole", vec![gone])
}

/// A record id as the store makes them (`r_…`, `m_…`): letters, digits, `_` and `-`, so a
/// link or a form action built from it has no path tricks.
fn record_id(id: &str) -> Option<&str> {
    (!id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
    .then_some(id)
}

/// The console's template filters.
mod filters {
    /// An RFC 3339 time as people read it, to the second: `2026-12-07 10:31:02 UTC` (anything
    /// else is shown as it is).
    #[askama::filter_fn]
    pub fn when(value: impl std::fmt::Display, _: &dyn askama::Values) -> askama::Result<String> {
        let text = value.to_string();
        let format =
            time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
        Ok(
            time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                .ok()
                .and_then(|t| t.to_offset(time::UtcOffset::UTC).format(&format).ok())
                .unwrap_or(text),
        )
    }
}

/// A duration in words, `1 h 30 min`.
fn duration_words(seconds: i64) -> String {
    let (h, m) = (seconds / 3600, (seconds % 3600) / 60);
    match (h, m) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}
