//! The few server-rendered pages a person meets in a browser: sign-in (password, then a
//! one-time code or a security key), consent to an OpenID Connect client, the authorization endpoint that leads
//! there, and the device page where a person approves `portcullis login` (RFC 8628).
//!
//! Security rules (DESIGN.md, DEVELOPERS.md):
//! - No inline script, and a CSP that says so: `default-src 'none'` (the security-key step
//!   alone adds `script-src 'self'` for `assets/webauthn.js`), forms only to this server
//!   (and, where a form ends in a redirect to a client, that client's registered origin),
//!   `frame-ancestors 'none'`. Every response is `no-store`, `nosniff`, and
//!   `Referrer-Policy: same-origin` (no URL leaves for another site; `no-referrer` would make
//!   browsers send `Origin: null` on our own form posts).
//! - Pages are askama templates (`templates/`), which escape every value they show: nothing
//!   the request says is echoed unescaped.
//! - Cookies are `HttpOnly`, `SameSite=Strict`, `Path=/`, and `Secure` with the `__Host-`
//!   prefix whenever the issuer is https. Strict means a session never rides along on a
//!   navigation started by another site: an authorization request from a client's site always
//!   asks the person to sign in (no silent sign-in, no login CSRF). That is the point for a
//!   privileged access server; `prompt=none` then answers `login_required`.
//! - Every form carries a CSRF token that must equal the CSRF cookie (double submit, compared
//!   in constant time), and a cross-site `Origin` or `Sec-Fetch-Site` is refused as well.
//! - `return_to` after sign-in is only ever a path on this server's authorization endpoint or
//!   device page (no open redirect).
//! - Sign-in goes through the same code as the API ([`crate::services::signin`]): same throttling, same
//!   audit events, same answers for unknown users and wrong passwords.

mod authorize;
pub mod console;
mod device;
mod signin;

pub use authorize::*;
pub use device::*;
pub use signin::*;

use std::collections::HashMap;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portcullis_core::api::{PasswordSignInRequest, SignInResponse, TotpSignInRequest};
use portcullis_core::oidc::{RedirectError, redirect_uri_registered, validate_authorize};
use portcullis_core::session::SessionScope;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::services::caller::{ClientInfo, SessionCaller};
use crate::state::AppState;

fn secure(state: &AppState) -> bool {
    state.tokens.issuer.starts_with("https://")
}

fn session_cookie(state: &AppState) -> &'static str {
    if secure(state) {
        "__Host-portcullis_session"
    } else {
        "portcullis_session"
    }
}

fn csrf_cookie(state: &AppState) -> &'static str {
    if secure(state) {
        "__Host-portcullis_csrf"
    } else {
        "portcullis_csrf"
    }
}

fn set_cookie(state: &AppState, name: &str, value: &str) -> String {
    let secure = if secure(state) { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict{secure}")
}

/// The value of cookie `name`, if sent once.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut found = None;
    for v in headers.get_all(header::COOKIE) {
        let Ok(v) = v.to_str() else { continue };
        for pair in v.split(';') {
            if let Some((k, val)) = pair.trim().split_once('=')
                && k == name
            {
                if found.is_some() {
                    // Two cookies of one name: someone is planting one; trust neither.
                    return None;
                }
                found = Some(val);
            }
        }
    }
    found
}

#[derive(askama::Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    title: &'a str,
    error: Option<&'a str>,
    message: &'a str,
}

#[derive(askama::Template)]
#[template(path = "signin.html")]
struct SigninPage<'a> {
    title: &'a str,
    error: Option<&'a str>,
    csrf: &'a str,
    return_to: Option<&'a str>,
    username: &'a str,
}

/// The security-key form's content: the ceremony and its options (JSON).
struct WebauthnForm {
    ceremony_id: String,
    options: String,
}

#[derive(askama::Template)]
#[template(path = "second_factor.html")]
struct SecondFactorPage<'a> {
    title: &'a str,
    error: Option<&'a str>,
    csrf: &'a str,
    return_to: Option<&'a str>,
    signin_id: &'a str,
    totp: bool,
    webauthn: Option<WebauthnForm>,
}

#[derive(askama::Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    title: &'a str,
    error: Option<&'a str>,
    user: &'a str,
    strength: &'a str,
    client: &'a str,
    scopes: Vec<&'static str>,
    csrf: &'a str,
    request: &'a str,
}

#[derive(askama::Template)]
#[template(path = "device.html")]
struct DevicePage<'a> {
    title: &'a str,
    error: Option<&'a str>,
    user: &'a str,
    csrf: &'a str,
    code: &'a str,
    /// Where, when and by which client the code was requested, when it names a pending one.
    requested: Option<DeviceRequested>,
}

/// What the approving person is shown about a pending device code, so a code phished from
/// elsewhere can be recognised (privilege model rule 8).
struct DeviceRequested {
    address: String,
    at: String,
    client: String,
    user_agent: String,
}

/// The request behind `user_code`, when it is a pending, unexpired device code.
async fn device_requested(state: &AppState, user_code: &str) -> Option<DeviceRequested> {
    let code = portcullis_core::device::normalize_user_code(user_code)?;
    let d = state.store.device_by_user_code(&code).await.ok()??;
    let now = OffsetDateTime::now_utc();
    if d.state != portcullis_core::device::DeviceState::Pending.as_str()
        || crate::time_us::from_us(d.expires_at_us) <= now
    {
        return None;
    }
    Some(DeviceRequested {
        address: if d.client_ip.is_empty() {
            "an unknown address".to_owned()
        } else {
            d.client_ip
        },
        at: crate::time_us::rfc3339(d.created_at_us),
        client: d.client_id,
        user_agent: d.user_agent,
    })
}

/// A rendered page with its status, cookies to set, and an extra origin forms may lead to.
struct Page {
    status: StatusCode,
    html: Result<String, askama::Error>,
    cookies: Vec<String>,
    form_origin: Option<String>,
    /// Whether the page loads this server's own scripts (the security-key step).
    scripts: bool,
}

impl Page {
    fn new(t: &impl askama::Template) -> Self {
        Self {
            status: StatusCode::OK,
            html: t.render(),
            cookies: Vec::new(),
            form_origin: None,
            scripts: false,
        }
    }
    fn status(mut self, s: StatusCode) -> Self {
        self.status = s;
        self
    }
}

fn security_headers(h: &mut HeaderMap, form_origin: Option<&str>, scripts: bool) {
    let form = match form_origin {
        Some(o) => format!("'self' {o}"),
        None => "'self'".to_owned(),
    };
    // Only the security-key step and the console run scripts, and only this server's files.
    let script = if scripts { "; script-src 'self'" } else { "" };
    // One stylesheet, from this server; no inline style.
    let csp = format!(
        "default-src 'none'; style-src 'self'; form-action {form}; frame-ancestors 'none'; base-uri 'none'{script}"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let html = match self.html {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "cannot render a page");
                return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
            }
        };
        let mut r = (
            self.status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response();
        security_headers(r.headers_mut(), self.form_origin.as_deref(), self.scripts);
        for c in self.cookies {
            if let Ok(v) = HeaderValue::from_str(&c) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        r
    }
}

/// A 303 to `to`, with cookies to set.
fn see_other(to: &str, cookies: Vec<String>) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    security_headers(r.headers_mut(), None, false);
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

fn error_page(status: StatusCode, message: &str) -> Response {
    Page::new(&MessagePage {
        title: "Cannot continue",
        error: Some(message),
        message: "Go back to the application and start again.",
    })
    .status(status)
    .into_response()
}

/// The request's CSRF token (the cookie's, or a new one to set).
fn csrf_token(state: &AppState, headers: &HeaderMap) -> (String, Option<String>) {
    match cookie(headers, csrf_cookie(state)).filter(|v| v.len() == 64) {
        Some(v) => (v.to_owned(), None),
        None => {
            let t = portcullis_store::crypto::random_token().to_string();
            let t: String = hex::encode(&portcullis_store::crypto::token_hash(&t)[..32]);
            let c = set_cookie(state, csrf_cookie(state), &t);
            (t, Some(c))
        }
    }
}

/// Whether a form submission is same-site and carries the CSRF cookie's value.
fn csrf_ok(state: &AppState, headers: &HeaderMap, form: &HashMap<String, String>) -> bool {
    let cross_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site" || v == "same-site");
    let issuer_origin = origin_of(&state.tokens.issuer);
    // `null` is what a browser sends when it withholds the origin (privacy settings, an
    // opaque origin): not proof of a foreign site, so the token and Sec-Fetch-Site decide.
    let foreign_origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|o| o != "null" && Some(o.to_owned()) != issuer_origin);
    if cross_site || foreign_origin {
        return false;
    }
    match (cookie(headers, csrf_cookie(state)), form.get("csrf")) {
        (Some(c), Some(f)) if c.len() == 64 => bool::from(c.as_bytes().ct_eq(f.as_bytes())),
        _ => false,
    }
}

/// `scheme://host[:port]` of a URL.
fn origin_of(u: &str) -> Option<String> {
    let u = url::Url::parse(u).ok()?;
    Some(u.origin().ascii_serialization()).filter(|o| o != "null")
}

/// Parameters, each at most once.
fn parse_once(raw: &str) -> Result<HashMap<String, String>, String> {
    let mut map = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        // Identifiers, codes and URIs never hold control, bidirectional or invisible
        // characters; a password is the person's own and is only hashed.
        if portcullis_core::text::has_invisible(&k)
            || (k != "password" && portcullis_core::text::has_invisible(&v))
        {
            return Err(
                "parameters must not contain control, bidirectional or invisible characters"
                    .to_owned(),
            );
        }
        if map.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("parameter {k} is given more than once"));
        }
    }
    Ok(map)
}

/// The signed-in person of this browser, if their session is alive.
async fn browser_session(
    state: &AppState,
    headers: &HeaderMap,
    now: OffsetDateTime,
) -> Result<Option<SessionCaller>, Response> {
    let Some(token) = cookie(headers, session_cookie(state)).filter(|t| t.len() <= 512) else {
        return Ok(None);
    };
    match crate::services::caller::session_caller(state, token, now).await {
        Ok(s) => Ok(s),
        Err(e) if e.status() == StatusCode::UNAUTHORIZED => Ok(None),
        Err(e) => {
            tracing::error!(error = %e.message, "session lookup");
            Err(error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; see the server log",
            ))
        }
    }
}

/// A `return_to` that stays on this server's authorization endpoint, device page or console.
fn safe_return_to(s: Option<&String>) -> Option<String> {
    let s = s?;
    let ok = s.starts_with("/oauth2/authorize?")
        || s == "/device"
        || s.starts_with("/device?")
        || console::is_console_path(s);
    (ok && !s.contains(['\r', '\n', '\\']) && s.len() <= 4096).then(|| s.clone())
}

/// The application of a page sign-in, for conditional access: `api`, whatever page it
/// returns to, because the session it opens is a credential of the whole API (the form's
/// `return_to` is the client's to choose, so it cannot decide which policies apply). The
/// code exchange that follows is judged again as `client:ID`, the device grant as `cli`.
const PAGE_SIGNIN: portcullis_core::conditional_access::Application =
    portcullis_core::conditional_access::Application::Api;

/// The origin of the registered redirect URI an authorization request (`/oauth2/authorize?…`)
/// names, so a form that ends in that redirect is allowed by the CSP.
async fn client_origin(state: &AppState, return_to: &str) -> Option<String> {
    let q = return_to.strip_prefix("/oauth2/authorize?")?;
    let p = parse_once(q).ok()?;
    let c = state.store.oauth_client(p.get("client_id")?).await.ok()??;
    let r = p.get("redirect_uri")?;
    redirect_uri_registered(&c.redirect_uris, r)
        .then(|| origin_of(r))
        .flatten()
}

// ----- axum handlers (routes in crate::http) -----

/// The authorization endpoint, GET.
#[utoipa::path(get, path = "/oauth2/authorize", tag = "oauth2",
    responses((status = 303, description = "to the client's redirect URI, or to sign-in"), (status = 200, description = "consent page", content_type = "text/html"), (status = 400, description = "bad client or redirect URI", content_type = "text/html")))]
pub async fn authorize_get(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    authorize(&state, &client, &headers, q.as_deref().unwrap_or("")).await
}

/// The authorization endpoint, POST (form-encoded parameters).
#[utoipa::path(post, path = "/oauth2/authorize", tag = "oauth2",
    responses((status = 303, description = "to the client's redirect URI, or to sign-in"), (status = 200, description = "consent page", content_type = "text/html"), (status = 400, description = "bad client or redirect URI", content_type = "text/html")))]
pub async fn authorize_post(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    body: String,
) -> Response {
    authorize(&state, &client, &headers, &body).await
}

/// The consent decision (form from the consent page).
#[utoipa::path(post, path = "/oauth2/authorize/consent", tag = "oauth2",
    responses((status = 303, description = "to the client's redirect URI"), (status = 400, description = "malformed form, or an unknown client or redirect URI", content_type = "text/html"), (status = 401, description = "no session, or it has ended", content_type = "text/html"), (status = 403, description = "CSRF check failed", content_type = "text/html")))]
pub async fn consent_post(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    body: String,
) -> Response {
    consent(&state, &client, &headers, &body).await
}

/// The sign-in page.
#[utoipa::path(get, path = "/signin", tag = "console",
    responses((status = 200, description = "sign-in form", content_type = "text/html")))]
pub async fn signin_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    signin_page(&state, &headers, q.as_deref()).await
}

/// Sign-in, first step (form).
#[utoipa::path(post, path = "/signin", tag = "console",
    responses((status = 303, description = "signed in: to return_to"), (status = 200, description = "second-factor form", content_type = "text/html"), (status = 400, description = "malformed form", content_type = "text/html"), (status = 401, description = "wrong username or password", content_type = "text/html"), (status = 403, description = "the form expired or came from another site, or the account is refused", content_type = "text/html"), (status = 429, description = "too many attempts for this account or address", content_type = "text/html")))]
pub async fn signin_post(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    body: String,
) -> Response {
    signin_password(&state, &client, &headers, &body).await
}

/// Sign-in, second step (form).
#[utoipa::path(post, path = "/signin/totp", tag = "console",
    responses((status = 303, description = "signed in: to return_to"), (status = 400, description = "malformed form", content_type = "text/html"), (status = 401, description = "wrong code", content_type = "text/html"), (status = 403, description = "the form expired or came from another site, or the account is refused", content_type = "text/html"), (status = 429, description = "too many attempts for this account or address", content_type = "text/html")))]
pub async fn signin_totp_post(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    body: String,
) -> Response {
    signin_totp(&state, &client, &headers, &body).await
}

/// The device verification page (RFC 8628 `verification_uri`).
#[utoipa::path(get, path = "/device", tag = "console",
    responses((status = 200, description = "approval form", content_type = "text/html"), (status = 303, description = "to sign-in first")))]
pub async fn device_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    device_page(&state, &headers, q.as_deref()).await
}

/// The person's decision on a device code (form).
#[utoipa::path(post, path = "/device", tag = "console",
    responses((status = 200, description = "decided", content_type = "text/html"), (status = 400, description = "malformed form or no decision", content_type = "text/html"), (status = 401, description = "no session, or it has ended", content_type = "text/html"), (status = 403, description = "CSRF check failed or no second factor", content_type = "text/html")))]
pub async fn device_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: String,
) -> Response {
    device_decide(&state, &headers, &body).await
}

/// Sign-in, second step with a security key (form).
#[utoipa::path(post, path = "/signin/webauthn", tag = "console",
    responses((status = 303, description = "signed in: to return_to"), (status = 400, description = "malformed form", content_type = "text/html"), (status = 401, description = "not accepted", content_type = "text/html"), (status = 403, description = "the form expired or came from another site, or the account is refused", content_type = "text/html"), (status = 429, description = "too many attempts for this account or address", content_type = "text/html")))]
pub async fn signin_webauthn_post(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    body: String,
) -> Response {
    signin_webauthn(&state, &client, &headers, &body).await
}

/// The script of the security-key step (the pages allow no inline script).
#[utoipa::path(get, path = "/assets/webauthn.js", tag = "console",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript")))]
pub async fn webauthn_js() -> Response {
    let mut r = (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../../assets/webauthn.js"),
    )
        .into_response();
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}
