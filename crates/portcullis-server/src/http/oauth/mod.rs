//! OAuth 2.0 / OpenID Connect endpoints: discovery, JWKS, the token endpoint (client
//! credentials for service accounts), introspection (RFC 7662) and revocation (RFC 7009).
//!
//! Clients authenticate with a client secret (`client_secret_basic`, `client_secret_post`) or
//! a signed client assertion (`private_key_jwt`); exactly one method per request. This module
//! reads the credential off the wire; [`crate::services::client_auth`] checks it (one failure
//! path: audited, throttled, `invalid_client`; an assertion's `jti` recorded with the outcome)
//! and the grants run in the services (`tokens`, `device`, `oidc`).
//!
//! These speak OAuth's own error shape (`{"error": "invalid_client", "error_description": …}`,
//! RFC 6749 §5.2), not the API's, because standard clients parse it. Requests are
//! `application/x-www-form-urlencoded`; a parameter given twice is refused (RFC 6749 §3.1);
//! unknown parameters are ignored as the RFC requires. Token responses are never cached.

mod discovery;
mod introspection;

pub use discovery::*;
pub use introspection::*;

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use portcullis_core::audit::Outcome;
use portcullis_core::client_key::{ASSERTION_TYPE, KeyAlgorithm};
use portcullis_core::roles::perm;
use portcullis_store::Change;
use serde::Serialize;
use time::OffsetDateTime;

use crate::services::caller::ClientInfo;
use crate::services::tokens;
use crate::state::AppState;
use crate::time_us::us;

use crate::services::client_auth::{
    self, Authenticated, Presented, UNIDENTIFIED, commit_assertion_use,
};
pub use crate::services::oauth::{OAuthError, OAuthErrorBody};
use crate::services::oidc::UserinfoError;

/// The status of an OAuth error follows from its code (RFC 6749 §5.2): `invalid_client` is
/// 401, `server_error` 500, a throttled answer (one with `Retry-After`) 429, every other 400.
fn status_of(e: &OAuthError) -> StatusCode {
    match (e.retry_after, e.error) {
        (Some(_), _) => StatusCode::TOO_MANY_REQUESTS,
        (None, "invalid_client") => StatusCode::UNAUTHORIZED,
        (None, "server_error") => StatusCode::INTERNAL_SERVER_ERROR,
        (None, _) => StatusCode::BAD_REQUEST,
    }
}

fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = status_of(&self);
        let mut r = (
            status,
            Json(OAuthErrorBody {
                error: self.error.into(),
                error_description: self.description,
            }),
        )
            .into_response();
        no_store(r.headers_mut());
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"portcullis\""),
            );
        }
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}

type Params = Vec<(String, String)>;

/// The parameters once each, or `invalid_request`.
fn params(
    form: Result<Form<Params>, FormRejection>,
) -> Result<std::collections::HashMap<String, String>, OAuthError> {
    let Form(list) = form.map_err(|_| {
        OAuthError::invalid_request("the body must be application/x-www-form-urlencoded")
    })?;
    let mut map = std::collections::HashMap::new();
    for (k, v) in list {
        // OAuth parameters are printable ASCII by definition: a control, bidirectional or
        // invisible character is refused before anything is read or written.
        if portcullis_core::text::has_invisible(&k) || portcullis_core::text::has_invisible(&v) {
            return Err(OAuthError::invalid_request(
                "parameters must not contain control, bidirectional or invisible characters",
            ));
        }
        if map.insert(k.clone(), v).is_some() {
            return Err(OAuthError::invalid_request(format!(
                "parameter {k} is given more than once"
            )));
        }
    }
    Ok(map)
}

/// The client id and its credential: HTTP Basic (`client_secret_basic`), the body
/// (`client_secret_post`), or a client assertion (`private_key_jwt`, whose client id is the
/// `client_id` parameter or else the assertion's unverified subject). Two methods at once are
/// refused.
fn client_credentials(
    headers: &HeaderMap,
    p: &std::collections::HashMap<String, String>,
) -> Result<(String, Presented), OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "));
    let assertion_type = p.get("client_assertion_type");
    let assertion = p.get("client_assertion");
    if assertion_type.is_some() || assertion.is_some() {
        if basic.is_some() || p.contains_key("client_secret") {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not two",
            ));
        }
        if assertion_type.map(String::as_str) != Some(ASSERTION_TYPE) {
            return Err(OAuthError::invalid_request(format!(
                "client_assertion_type must be {ASSERTION_TYPE}"
            )));
        }
        let assertion =
            assertion.ok_or_else(|| OAuthError::invalid_request("client_assertion is required"))?;
        // No readable subject: still audited and throttled, under a name no account can have.
        let id = match p.get("client_id") {
            Some(id) => id.clone(),
            None => crate::services::client_assertion::claimed_client(assertion)
                .unwrap_or_else(|| UNIDENTIFIED.to_owned()),
        };
        return Ok((id, Presented::Assertion(assertion.clone())));
    }
    match (basic, p.get("client_id"), p.get("client_secret")) {
        (Some(b), _, None) => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .map_err(|_| OAuthError::invalid_client())?;
            let text = String::from_utf8(raw).map_err(|_| OAuthError::invalid_client())?;
            let (id, secret) = text
                .split_once(':')
                .ok_or_else(OAuthError::invalid_client)?;
            // RFC 6749 §2.3.1: both are form-urlencoded inside Basic.
            let dec = |s: &str| form_urlencoded_decode(s).ok_or_else(OAuthError::invalid_client);
            Ok((dec(id)?, Presented::Secret(dec(secret)?)))
        }
        (None, Some(id), Some(secret)) => Ok((id.clone(), Presented::Secret(secret.clone()))),
        (Some(_), _, Some(_)) => Err(OAuthError::invalid_request(
            "use one client authentication method, not two",
        )),
        _ => Err(OAuthError::invalid_client()),
    }
}

/// Authenticates the calling client from the request's credential (see
/// [`crate::services::client_auth`]).
async fn authenticate(
    state: &AppState,
    client: &ClientInfo,
    headers: &HeaderMap,
    p: &std::collections::HashMap<String, String>,
    purpose: &str,
) -> Result<Authenticated, OAuthError> {
    let (id, presented) = client_credentials(headers, p)?;
    client_auth::authenticate(state, client, id, presented, purpose).await
}

fn form_urlencoded_decode(s: &str) -> Option<String> {
    let plus = s.replace('+', " ");
    let bytes = plus.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let h = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
    /// For people (device grant, refresh): the next refresh token; the one presented is used up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// For OpenID Connect clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// The device grant's `grant_type` (RFC 8628 §3.4).
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

fn user_token_response(
    t: crate::services::device::UserTokens,
    id_token: Option<String>,
) -> Response {
    let mut r = Json(TokenResponse {
        access_token: t.access_token,
        token_type: "Bearer".into(),
        expires_in: t.claims.exp - t.claims.iat,
        refresh_token: Some(t.refresh_token),
        id_token,
        scope: (!t.scope.is_empty()).then_some(t.scope),
    })
    .into_response();
    no_store(r.headers_mut());
    r
}

/// Form fields of the device authorization endpoint (documentation only).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct DeviceAuthorizationForm {
    /// `portcullis-cli`.
    client_id: String,
    scope: Option<String>,
}

/// Device authorization (RFC 8628 §3.1) for the CLI: a device code to poll with and a user
/// code for the person to approve (`POST /api/v1/device/approve`).
#[utoipa::path(post, path = "/oauth2/device_authorization", tag = "oauth2",
    request_body(content = DeviceAuthorizationForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = crate::services::device::DeviceStart), (status = 400, body = OAuthErrorBody), (status = 401, body = OAuthErrorBody)))]
pub async fn device_authorization(
    State(state): State<AppState>,
    client: ClientInfo,
    form: Result<Form<Params>, FormRejection>,
) -> Result<Response, OAuthError> {
    let p = params(form)?;
    let started = crate::services::device::start(
        &state,
        &client,
        p.get("client_id").map(String::as_str),
        OffsetDateTime::now_utc(),
    )
    .await?;
    let mut r = Json(started).into_response();
    no_store(r.headers_mut());
    Ok(r)
}

/// Form fields of the token endpoint (documentation only; the body is form-encoded).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct TokenForm {
    /// `client_credentials`.
    grant_type: String,
    /// The service account's name; optional with `client_assertion` (its `sub` names it).
    client_id: Option<String>,
    /// For `client_secret_post`.
    client_secret: Option<String>,
    /// For `private_key_jwt`: `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
    client_assertion_type: Option<String>,
    /// For `private_key_jwt`: a JWT signed (EdDSA or ES256) with a key registered to the
    /// account, `kid` naming it; `iss` = `sub` = client id, `aud` = the token endpoint URL or
    /// the issuer, `exp` at most 5 minutes ahead, a `jti` never used before.
    client_assertion: Option<String>,
}

/// Token endpoint: `client_credentials` for service accounts (client_secret_basic,
/// client_secret_post or private_key_jwt).
#[utoipa::path(post, path = "/oauth2/token", tag = "oauth2",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = TokenResponse), (status = 400, body = OAuthErrorBody), (status = 401, body = OAuthErrorBody), (status = 429, body = OAuthErrorBody)))]
pub async fn token(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    form: Result<Form<Params>, FormRejection>,
) -> Result<Response, OAuthError> {
    let p = params(form)?;
    let grant = p.get("grant_type").map(String::as_str);
    let get = |k: &str| p.get(k).map(String::as_str);
    match grant {
        Some("client_credentials") => {}
        Some(DEVICE_GRANT) => {
            let t = crate::services::device::poll(
                &state,
                &client,
                get("client_id"),
                get("device_code"),
                OffsetDateTime::now_utc(),
            )
            .await?;
            return Ok(user_token_response(t, None));
        }
        Some("refresh_token") => {
            let now = OffsetDateTime::now_utc();
            if cli_public(&headers, &p) {
                let t = crate::services::device::refresh(
                    &state,
                    &client,
                    crate::services::device::CLI_CLIENT_ID,
                    get("refresh_token"),
                    now,
                )
                .await?;
                return Ok(user_token_response(t, None));
            }
            let oc = registered_client(&state, &client, &headers, &p).await?;
            let t = crate::services::device::refresh(
                &state,
                &client,
                &oc.client_id,
                get("refresh_token"),
                now,
            )
            .await?;
            // A fresh ID token with the refreshed access token (no nonce: OIDC Core §12.2).
            let id_token = match portcullis_core::oidc::Scopes::parse(&t.scope) {
                Ok(scopes) if scopes.contains("openid") => Some(crate::services::oidc::id_token(
                    &state,
                    &t.principal,
                    &t.claims,
                    &scopes,
                    None,
                    &t.session_id,
                    crate::services::clients::id_token_alg(&oc.id_token_alg),
                )?),
                _ => None,
            };
            return Ok(user_token_response(t, id_token));
        }
        Some("authorization_code") => {
            let oc = registered_client(&state, &client, &headers, &p).await?;
            let t = crate::services::oidc::exchange_code(
                &state,
                &client,
                &oc,
                get("code"),
                get("redirect_uri"),
                get("code_verifier"),
                OffsetDateTime::now_utc(),
            )
            .await?;
            let mut r = Json(TokenResponse {
                access_token: t.access_token,
                token_type: "Bearer".into(),
                expires_in: t.claims.exp - t.claims.iat,
                refresh_token: t.refresh_token,
                id_token: Some(t.id_token),
                scope: Some(t.scope),
            })
            .into_response();
            no_store(r.headers_mut());
            return Ok(r);
        }
        Some(_) => {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                "supported: authorization_code, client_credentials, refresh_token, urn:ietf:params:oauth:grant-type:device_code",
            ));
        }
        None => return Err(OAuthError::invalid_request("grant_type is required")),
    }
    let auth = authenticate(&state, &client, &headers, &p, "token").await?;
    let (token, claims) = crate::services::client_credentials::client_credentials_grant(
        &state,
        &client,
        &auth,
        OffsetDateTime::now_utc(),
    )
    .await?;
    let mut r = Json(TokenResponse {
        access_token: token,
        token_type: "Bearer".into(),
        expires_in: claims.exp - claims.iat,
        refresh_token: None,
        id_token: None,
        scope: None,
    })
    .into_response();
    no_store(r.headers_mut());
    Ok(r)
}

/// The client id a request names (HTTP Basic, an assertion's subject, or `client_id`),
/// before any authentication.
fn named_client(
    headers: &HeaderMap,
    p: &std::collections::HashMap<String, String>,
) -> Option<String> {
    match client_credentials(headers, p) {
        Ok((id, _)) => Some(id),
        Err(_) => p.get("client_id").cloned(),
    }
}

/// Whether the request comes from the CLI as a public client (its id, no credentials).
fn cli_public(headers: &HeaderMap, p: &std::collections::HashMap<String, String>) -> bool {
    p.get("client_id").map(String::as_str) == Some(crate::services::device::CLI_CLIENT_ID)
        && !headers.contains_key(header::AUTHORIZATION)
        && !p.contains_key("client_secret")
        && !p.contains_key("client_assertion")
}

/// Authenticates a registered OpenID Connect client: `client_secret_basic`,
/// `client_secret_post`, or (public clients) `none`. Failures are audited and counted against
/// the caller's address; not against the client id, which anyone may present, so that nobody
/// can throttle a public client away from its users.
async fn registered_client(
    state: &AppState,
    client: &ClientInfo,
    headers: &HeaderMap,
    p: &std::collections::HashMap<String, String>,
) -> Result<portcullis_store::oidc::OAuthClient, OAuthError> {
    if p.contains_key("client_assertion") || p.contains_key("client_assertion_type") {
        return Err(OAuthError::invalid_client());
    }
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "));
    let (id, secret) = match (basic, p.get("client_id"), p.get("client_secret")) {
        (Some(_), _, Some(_)) => {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not two",
            ));
        }
        (Some(_), _, None) => {
            let (id, s) = match client_credentials(headers, p)? {
                (id, Presented::Secret(s)) => (id, s),
                _ => return Err(OAuthError::invalid_client()),
            };
            if p.get("client_id").is_some_and(|c| *c != id) {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the authenticated client",
                ));
            }
            (id, Some(s))
        }
        (None, Some(id), s) => (id.clone(), s.cloned()),
        (None, None, _) => return Err(OAuthError::invalid_request("client_id is required")),
    };
    client_auth::authenticate_registered(state, client, id, secret).await
}
