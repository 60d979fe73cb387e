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
    // Only the security-key step runs a script, and only this server's file.
    let script = if scripts { "; script-src 'self'" } else { "" };
    let csp = format!(
        "default-src 'none'; form-action {form}; frame-ancestors 'none'; base-uri 'none'{script}"
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

/// A `return_to` that stays on this server's authorization endpoint or device page.
fn safe_return_to(s: Option<&String>) -> Option<String> {
    let s = s?;
    let ok = s.starts_with("/oauth2/authorize?") || s == "/device" || s.starts_with("/device?");
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

// ----- the authorization endpoint -----

/// The authorization endpoint (GET and POST, OIDC Core §3.1.2.1).
pub async fn authorize(
    state: &AppState,
    client: &ClientInfo,
    headers: &HeaderMap,
    raw: &str,
) -> Response {
    let p = match parse_once(raw) {
        Ok(p) => p,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e),
    };
    let Some(client_id) = p.get("client_id") else {
        return error_page(StatusCode::BAD_REQUEST, "client_id is required");
    };
    let oc = match state.store.oauth_client(client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return error_page(StatusCode::BAD_REQUEST, "unknown client_id"),
        Err(e) => {
            tracing::error!(error = %e, "authorize");
            return error_page(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    let Some(redirect_uri) = p.get("redirect_uri") else {
        return error_page(StatusCode::BAD_REQUEST, "redirect_uri is required");
    };
    if !redirect_uri_registered(&oc.redirect_uris, redirect_uri) {
        return error_page(
            StatusCode::BAD_REQUEST,
            "redirect_uri is not registered for this client (it must match exactly)",
        );
    }
    let req = match validate_authorize(client_id, redirect_uri, |k| p.get(k).map(String::as_str)) {
        Ok(r) => r,
        Err(e) => {
            let to = crate::services::oidc::error_redirect(
                state,
                redirect_uri,
                p.get("state").map(String::as_str),
                &e,
            );
            return see_other(&to, vec![]);
        }
    };
    let now = OffsetDateTime::now_utc();
    let session = match browser_session(state, headers, now).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let to_client = |e: &'static str, d: &str| {
        let to = crate::services::oidc::error_redirect(
            state,
            redirect_uri,
            req.state.as_deref(),
            &RedirectError {
                error: e,
                description: d.to_owned(),
            },
        );
        see_other(&to, vec![])
    };
    let usable = session.filter(|s| {
        s.scope == SessionScope::Full && !crate::services::oidc::needs_signin(&req, s, now)
    });
    let Some(s) = usable else {
        if req.prompt.none {
            return to_client("login_required", "the person must sign in");
        }
        // The sign-in about to happen satisfies prompt=login and max_age.
        let again: Vec<(String, String)> = p
            .iter()
            .filter(|(k, _)| k.as_str() != "max_age")
            .map(|(k, v)| {
                let v = if k == "prompt" {
                    v.split(' ')
                        .filter(|x| *x != "login")
                        .collect::<Vec<_>>()
                        .join(" ")
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .filter(|(k, v)| k != "prompt" || !v.is_empty())
            .collect();
        let q = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(again)
            .finish();
        let return_to = format!("/oauth2/authorize?{q}");
        let to = format!(
            "/signin?{}",
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("return_to", &return_to)
                .finish()
        );
        return see_other(&to, vec![]);
    };
    let consented = match crate::services::oidc::has_consent(state, &s.principal, &req).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "consent lookup");
            return error_page(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    if consented && !req.prompt.consent {
        return match crate::services::oidc::issue_code(state, &s, &req, false, client, now).await {
            Ok(to) => see_other(&to, vec![]),
            Err(e) => {
                tracing::error!(error = %e, "issue code");
                error_page(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        };
    }
    if req.prompt.none {
        return to_client("consent_required", "the person has not consented yet");
    }
    consent_page(state, headers, &s, &oc.name, &req, raw)
}

fn scope_text(scope: &str) -> &'static str {
    match scope {
        "openid" => "know who you are (your account id) and how you signed in",
        "profile" => "see your name and user name",
        "email" => "see your email address",
        "offline_access" => "stay signed in while you are away (refresh tokens)",
        _ => "",
    }
}

fn consent_page(
    state: &AppState,
    headers: &HeaderMap,
    s: &SessionCaller,
    client_name: &str,
    req: &portcullis_core::oidc::AuthorizeRequest,
    raw: &str,
) -> Response {
    let (csrf, set) = csrf_token(state, headers);
    let mut page = Page::new(&ConsentPage {
        title: "Allow access?",
        error: None,
        user: &s.principal.name,
        strength: crate::services::oidc::strength_label(s.strength),
        client: client_name,
        scopes: req
            .scopes
            .as_vec()
            .iter()
            .map(|sc| scope_text(sc))
            .collect(),
        csrf: &csrf,
        request: raw,
    });
    page.cookies.extend(set);
    page.form_origin = origin_of(&req.redirect_uri);
    page.into_response()
}

/// The person's answer on the consent page.
pub async fn consent(
    state: &AppState,
    client: &ClientInfo,
    headers: &HeaderMap,
    form: &str,
) -> Response {
    let Ok(f) = parse_once(form) else {
        return error_page(StatusCode::BAD_REQUEST, "malformed form");
    };
    if !csrf_ok(state, headers, &f) {
        return error_page(
            StatusCode::FORBIDDEN,
            "this form expired or came from another site; go back to the application and start again",
        );
    }
    let raw = f.get("request").cloned().unwrap_or_default();
    let Ok(p) = parse_once(&raw) else {
        return error_page(StatusCode::BAD_REQUEST, "malformed request");
    };
    // The request is checked again from scratch: the form is not trusted to carry it intact.
    let oc = match (p.get("client_id"), p.get("redirect_uri")) {
        (Some(id), Some(r)) => match state.store.oauth_client(id).await {
            Ok(Some(c)) if redirect_uri_registered(&c.redirect_uris, r) => c,
            Ok(_) => return error_page(StatusCode::BAD_REQUEST, "unknown client or redirect_uri"),
            Err(e) => {
                tracing::error!(error = %e, "consent");
                return error_page(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
            }
        },
        _ => return error_page(StatusCode::BAD_REQUEST, "malformed request"),
    };
    let redirect_uri = p.get("redirect_uri").cloned().unwrap_or_default();
    let req = match validate_authorize(&oc.client_id, &redirect_uri, |k| {
        p.get(k).map(String::as_str)
    }) {
        Ok(r) => r,
        Err(_) => return error_page(StatusCode::BAD_REQUEST, "malformed request"),
    };
    let now = OffsetDateTime::now_utc();
    let s = match browser_session(state, headers, now).await {
        Ok(Some(s)) if s.scope == SessionScope::Full => s,
        Ok(_) => {
            return error_page(
                StatusCode::UNAUTHORIZED,
                "your session has ended; go back to the application and start again",
            );
        }
        Err(r) => return r,
    };
    let to = match f.get("decision").map(String::as_str) {
        Some("allow") => {
            crate::services::oidc::issue_code(state, &s, &req, true, client, now).await
        }
        Some("deny") => crate::services::oidc::deny(state, &s, &req, client).await,
        _ => return error_page(StatusCode::BAD_REQUEST, "choose Allow or Deny"),
    };
    match to {
        Ok(to) => see_other(&to, vec![]),
        Err(e) => {
            tracing::error!(error = %e, "consent");
            error_page(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

// ----- sign-in -----

/// `GET /signin`: the sign-in form.
pub async fn signin_page(state: &AppState, headers: &HeaderMap, raw: Option<&str>) -> Response {
    let q = parse_once(raw.unwrap_or("")).unwrap_or_default();
    let return_to = safe_return_to(q.get("return_to"));
    let (csrf, set) = csrf_token(state, headers);
    let mut page = Page::new(&SigninPage {
        title: "Sign in",
        error: None,
        csrf: &csrf,
        return_to: return_to.as_deref(),
        username: "",
    });
    page.cookies.extend(set);
    if let Some(r) = &return_to {
        page.form_origin = client_origin(state, r).await;
    }
    page.into_response()
}

/// Where a completed sign-in goes: a cookie for the session, then `return_to`.
async fn signed_in(state: &AppState, r: SignInResponse, return_to: Option<String>) -> Response {
    let Some(session) = r.session else {
        return error_page(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
    };
    if session.scope != SessionScope::Full.as_str() {
        return error_page(
            StatusCode::FORBIDDEN,
            "this account must enrol a second factor first (portcullis mfa enroll totp), then sign in again",
        );
    }
    let c = set_cookie(state, session_cookie(state), &session.token);
    match return_to {
        Some(to) => see_other(&to, vec![c]),
        None => {
            let mut p = Page::new(&MessagePage {
                title: "Signed in",
                error: None,
                message: "You are signed in.",
            });
            p.cookies.push(c);
            p.into_response()
        }
    }
}

/// What every sign-in form carries along: the CSRF token (and its cookie when new), where to
/// go afterwards, and the client origin the CSP must allow for that.
struct FormCtx {
    csrf: String,
    set: Option<String>,
    return_to: Option<String>,
    form_origin: Option<String>,
}

impl FormCtx {
    async fn new(state: &AppState, headers: &HeaderMap, f: &HashMap<String, String>) -> Self {
        let return_to = safe_return_to(f.get("return_to"));
        let form_origin = match &return_to {
            Some(r) => client_origin(state, r).await,
            None => None,
        };
        let (csrf, set) = csrf_token(state, headers);
        Self {
            csrf,
            set,
            return_to,
            form_origin,
        }
    }

    fn finish(&self, mut p: Page) -> Response {
        p.cookies.extend(self.set.clone());
        p.form_origin = self.form_origin.clone();
        p.into_response()
    }

    fn signin_again(&self, status: StatusCode, user: &str, msg: &str) -> Response {
        self.finish(
            Page::new(&SigninPage {
                title: "Sign in",
                error: Some(msg),
                csrf: &self.csrf,
                return_to: self.return_to.as_deref(),
                username: user,
            })
            .status(status),
        )
    }
}

const STALE_FORM: &str = "this form expired or came from another site; try again";

/// The second-factor page for a pending sign-in: a one-time code form and/or a security-key
/// form (a fresh WebAuthn ceremony), as the account's factors allow.
async fn second_factor(
    state: &AppState,
    client: &ClientInfo,
    ctx: &FormCtx,
    signin_id: &str,
    error: Option<(StatusCode, &str)>,
) -> Response {
    let gone = || {
        error_page(
            StatusCode::UNAUTHORIZED,
            "this sign-in has expired or was completed; start again",
        )
    };
    let hash = portcullis_store::crypto::token_hash(signin_id);
    let factors = match state.store.pending_signin(&hash).await {
        Ok(Some((principal_id, _))) => match state.store.factors(&principal_id).await {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "factors");
                return error_page(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
            }
        },
        Ok(None) => return gone(),
        Err(e) => {
            tracing::error!(error = %e, "pending sign-in");
            return error_page(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    let has = |k: &str| factors.iter().any(|f| f.confirmed && f.kind == k);
    let mut webauthn = None;
    if has("webauthn") {
        let req = portcullis_core::api::WebauthnSignInRequest {
            signin_id: Some(signin_id.to_owned()),
            username: None,
        };
        match crate::services::webauthn::start_signin(state, client, req).await {
            Ok(c) => {
                webauthn = Some(WebauthnForm {
                    ceremony_id: c.ceremony_id,
                    options: c.options.to_string(),
                })
            }
            Err(e) => return ctx.signin_again(e.status(), "", &e.message),
        }
    }
    let mut page = Page::new(&SecondFactorPage {
        title: "Second factor",
        error: error.map(|(_, m)| m),
        csrf: &ctx.csrf,
        return_to: ctx.return_to.as_deref(),
        signin_id,
        totp: has("totp"),
        webauthn,
    });
    page.scripts = has("webauthn");
    if let Some((status, _)) = error {
        page = page.status(status);
    }
    ctx.finish(page)
}

/// `POST /signin`: user name and password.
pub async fn signin_password(
    state: &AppState,
    client: &ClientInfo,
    headers: &HeaderMap,
    form: &str,
) -> Response {
    let Ok(f) = parse_once(form) else {
        return error_page(StatusCode::BAD_REQUEST, "malformed form");
    };
    let ctx = FormCtx::new(state, headers, &f).await;
    if !csrf_ok(state, headers, &f) {
        return ctx.signin_again(StatusCode::FORBIDDEN, "", STALE_FORM);
    }
    let username = f.get("username").cloned().unwrap_or_default();
    let req = PasswordSignInRequest {
        username: username.clone(),
        password: f.get("password").cloned().unwrap_or_default(),
    };
    match crate::services::signin::password_step(state, client, &PAGE_SIGNIN, req).await {
        Err(e) => ctx.signin_again(e.status(), &username, &e.message),
        Ok(r) if r.status == "mfa_required" => match r.signin_id {
            Some(id) => second_factor(state, client, &ctx, &id, None).await,
            None => error_page(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
        },
        Ok(r) => signed_in(state, r, ctx.return_to).await,
    }
}

/// The common start of both second steps: the form, its context, the pending sign-in's id,
/// and the CSRF check (a failure shows the second-factor page again).
async fn second_step_form(
    state: &AppState,
    client: &ClientInfo,
    headers: &HeaderMap,
    form: &str,
) -> Result<(HashMap<String, String>, FormCtx, String), Response> {
    let Ok(f) = parse_once(form) else {
        return Err(error_page(StatusCode::BAD_REQUEST, "malformed form"));
    };
    let ctx = FormCtx::new(state, headers, &f).await;
    let signin_id = f.get("signin_id").cloned().unwrap_or_default();
    if !csrf_ok(state, headers, &f) {
        let forbidden = Some((StatusCode::FORBIDDEN, STALE_FORM));
        return Err(second_factor(state, client, &ctx, &signin_id, forbidden).await);
    }
    Ok((f, ctx, signin_id))
}

/// `POST /signin/totp`: the second step with a one-time code.
pub async fn signin_totp(
    state: &AppState,
    client: &ClientInfo,
    headers: &HeaderMap,
    form: &str,
) -> Response {
    let (f, ctx, signin_id) = match second_step_form(state, client, headers, form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let req = TotpSignInRequest {
        signin_id: signin_id.clone(),
        code: f.get("code").cloned().unwrap_or_default(),
    };
    match crate::services::signin::totp_step(state, client, &PAGE_SIGNIN, req).await {
        Err(e) => {
            second_factor(
                state,
                client,
                &ctx,
                &signin_id,
                Some((e.status(), &e.message)),
            )
            .await
        }
        Ok(r) => signed_in(state, r, ctx.return_to).await,
    }
}

/// `POST /signin/webauthn`: the second step with a security key (the assertion that
/// `assets/webauthn.js` obtained from the browser).
pub async fn signin_webauthn(
    state: &AppState,
    client: &ClientInfo,
    headers: &HeaderMap,
    form: &str,
) -> Response {
    let (f, ctx, signin_id) = match second_step_form(state, client, headers, form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let credential = f
        .get("credential")
        .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok());
    let Some(credential) = credential else {
        return second_factor(
            state,
            client,
            &ctx,
            &signin_id,
            Some((
                StatusCode::BAD_REQUEST,
                "the security key's answer is missing or malformed",
            )),
        )
        .await;
    };
    let req = portcullis_core::api::WebauthnFinishRequest {
        ceremony_id: f.get("ceremony_id").cloned().unwrap_or_default(),
        credential,
    };
    match crate::services::webauthn::finish_signin(state, client, &PAGE_SIGNIN, req).await {
        Err(e) => {
            second_factor(
                state,
                client,
                &ctx,
                &signin_id,
                Some((e.status(), &e.message)),
            )
            .await
        }
        Ok(r) => signed_in(state, r, ctx.return_to).await,
    }
}

// ----- the device page (RFC 8628 verification URI) -----

/// `GET /device`: where `portcullis login` sends the person; signs them in first.
pub async fn device_page(state: &AppState, headers: &HeaderMap, raw: Option<&str>) -> Response {
    let q = parse_once(raw.unwrap_or("")).unwrap_or_default();
    let user_code: String = q
        .get("user_code")
        .map(|c| c.chars().take(16).collect())
        .unwrap_or_default();
    let now = OffsetDateTime::now_utc();
    let s = match browser_session(state, headers, now).await {
        Ok(Some(s)) if s.scope == SessionScope::Full => s,
        Ok(_) => {
            let back = if user_code.is_empty() {
                "/device".to_owned()
            } else {
                format!(
                    "/device?{}",
                    url::form_urlencoded::Serializer::new(String::new())
                        .append_pair("user_code", &user_code)
                        .finish()
                )
            };
            let to = format!(
                "/signin?{}",
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("return_to", &back)
                    .finish()
            );
            return see_other(&to, vec![]);
        }
        Err(r) => return r,
    };
    let (csrf, set) = csrf_token(state, headers);
    let requested = device_requested(state, &user_code).await;
    let mut page = Page::new(&DevicePage {
        title: "Approve the CLI?",
        error: None,
        user: &s.principal.name,
        csrf: &csrf,
        code: &user_code,
        requested,
    });
    page.cookies.extend(set);
    page.into_response()
}

/// `POST /device`: the person's decision, through the same rule as the API
/// ([`crate::services::device::decide`]: a full session with a second factor, a pending code).
pub async fn device_decide(state: &AppState, headers: &HeaderMap, form: &str) -> Response {
    let Ok(f) = parse_once(form) else {
        return error_page(StatusCode::BAD_REQUEST, "malformed form");
    };
    let now = OffsetDateTime::now_utc();
    let s = match browser_session(state, headers, now).await {
        Ok(Some(s)) if s.scope == SessionScope::Full => s,
        Ok(_) => {
            return error_page(
                StatusCode::UNAUTHORIZED,
                "your session has ended; open the link from your terminal again",
            );
        }
        Err(r) => return r,
    };
    let user_code = f.get("user_code").cloned().unwrap_or_default();
    let (csrf, set) = csrf_token(state, headers);
    let requested = device_requested(state, &user_code).await;
    let again = |status: StatusCode, msg: &str, s: &SessionCaller| {
        let mut p = Page::new(&DevicePage {
            title: "Approve the CLI?",
            error: Some(msg),
            user: &s.principal.name,
            csrf: &csrf,
            code: &user_code,
            requested: requested.as_ref().map(|r| DeviceRequested {
                address: r.address.clone(),
                at: r.at.clone(),
                client: r.client.clone(),
                user_agent: r.user_agent.clone(),
            }),
        })
        .status(status);
        p.cookies.extend(set.clone());
        p.into_response()
    };
    if !csrf_ok(state, headers, &f) {
        return again(
            StatusCode::FORBIDDEN,
            "this form expired or came from another site; try again",
            &s,
        );
    }
    let approve = match f.get("decision").map(String::as_str) {
        Some("approve") => true,
        Some("deny") => false,
        _ => return again(StatusCode::BAD_REQUEST, "choose Approve or Deny", &s),
    };
    // Approving hands a terminal your identity: the person confirms they started it.
    if approve && f.get("started_by_me").map(String::as_str) != Some("yes") {
        return again(
            StatusCode::BAD_REQUEST,
            "tick the box to confirm that you started portcullis login yourself; if you did not, deny",
            &s,
        );
    }
    let caller = crate::services::caller::Caller::Session(Box::new(s.clone()));
    match crate::services::device::decide(state, &caller, &user_code, approve).await {
        Ok(()) => Page::new(&MessagePage {
            title: if approve { "Approved" } else { "Denied" },
            error: None,
            message: if approve {
                "The CLI is signed in. You can close this page and return to your terminal."
            } else {
                "The request was denied; the terminal gets no tokens."
            },
        })
        .into_response(),
        Err(e) => again(e.status(), &e.message, &s),
    }
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
    responses((status = 303, description = "to the client's redirect URI, or to sign-in"), (status = 200, description = "consent page", content_type = "text/html")))]
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
    responses((status = 303, description = "to the client's redirect URI"), (status = 403, description = "CSRF check failed", content_type = "text/html")))]
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
    responses((status = 303, description = "signed in: to return_to"), (status = 200, description = "second-factor form", content_type = "text/html")))]
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
    responses((status = 303, description = "signed in: to return_to"), (status = 401, description = "wrong code", content_type = "text/html")))]
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
    responses((status = 200, description = "decided", content_type = "text/html"), (status = 403, description = "CSRF check failed or no second factor", content_type = "text/html")))]
pub async fn device_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: String,
) -> Response {
    device_decide(&state, &headers, &body).await
}

/// Sign-in, second step with a security key (form).
#[utoipa::path(post, path = "/signin/webauthn", tag = "console",
    responses((status = 303, description = "signed in: to return_to"), (status = 401, description = "not accepted", content_type = "text/html")))]
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
        include_str!("../../assets/webauthn.js"),
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
