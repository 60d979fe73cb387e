//! OAuth 2.0 / OpenID Connect endpoints: discovery, JWKS, the token endpoint (client
//! credentials for service accounts), introspection (RFC 7662) and revocation (RFC 7009).
//!
//! These speak OAuth's own error shape (`{"error": "invalid_client", "error_description": …}`,
//! RFC 6749 §5.2), not the API's, because standard clients parse it. Requests are
//! `application/x-www-form-urlencoded`; a parameter given twice is refused (RFC 6749 §3.1);
//! unknown parameters are ignored as the RFC requires. Token responses are never cached.

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use portcullis_core::audit::Outcome;
use portcullis_core::throttle::ThrottlePolicy;
use portcullis_store::Change;
use serde::Serialize;
use time::OffsetDateTime;

use super::AppState;
use crate::auth::ClientInfo;
use crate::time_us::{from_us, us};
use crate::tokens::{self, ClientAuthFailure};

/// An OAuth error response.
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    retry_after: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OAuthErrorBody {
    pub error: String,
    pub error_description: String,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            retry_after: None,
        }
    }
    fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }
    fn invalid_client() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        )
    }
    fn server_error() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal error; see the server log",
        )
    }
}

impl From<crate::error::ApiError> for OAuthError {
    fn from(e: crate::error::ApiError) -> Self {
        tracing::error!(error = %e.message, "token endpoint");
        Self::server_error()
    }
}

impl From<portcullis_store::StoreError> for OAuthError {
    fn from(e: portcullis_store::StoreError) -> Self {
        tracing::error!(error = %e, "token endpoint store error");
        Self::server_error()
    }
}

fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(OAuthErrorBody {
                error: self.error.into(),
                error_description: self.description,
            }),
        )
            .into_response();
        no_store(r.headers_mut());
        if self.status == StatusCode::UNAUTHORIZED {
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
        if map.insert(k.clone(), v).is_some() {
            return Err(OAuthError::invalid_request(format!(
                "parameter {k} is given more than once"
            )));
        }
    }
    Ok(map)
}

/// Client credentials from HTTP Basic (`client_secret_basic`) or the body
/// (`client_secret_post`); both at once is refused.
fn client_credentials(
    headers: &HeaderMap,
    p: &std::collections::HashMap<String, String>,
) -> Result<(String, String), OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "));
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
            Ok((dec(id)?, dec(secret)?))
        }
        (None, Some(id), Some(secret)) => Ok((id.clone(), secret.clone())),
        (Some(_), _, Some(_)) => Err(OAuthError::invalid_request(
            "use one client authentication method, not two",
        )),
        _ => Err(OAuthError::invalid_client()),
    }
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

fn throttle_keys(client_id: &str, client: &ClientInfo) -> Vec<String> {
    vec![format!("ip:{}", client.ip), format!("client:{client_id}")]
}

/// Refuses while a key waits out its backoff; records failures.
async fn throttled(
    state: &AppState,
    keys: &[String],
    now: OffsetDateTime,
) -> Result<(), OAuthError> {
    let mut wait = 0i64;
    for (key, failures, last) in state.store.throttle_counters(keys).await? {
        let policy = if key.starts_with("ip:") {
            ThrottlePolicy::IP
        } else {
            ThrottlePolicy::ACCOUNT
        };
        let failures = u32::try_from(failures).unwrap_or(u32::MAX);
        if let Some(at) = policy.retry_at(failures, from_us(last), now) {
            wait = wait.max((at - now).whole_seconds() + 1);
        }
    }
    if wait > 0 {
        let mut e = OAuthError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "slow_down",
            format!("too many failed attempts; try again in {wait} seconds"),
        );
        e.retry_after = Some(wait);
        return Err(e);
    }
    Ok(())
}

/// Authenticates the calling client, auditing and throttling failures.
async fn authenticate(
    state: &AppState,
    client: &ClientInfo,
    headers: &HeaderMap,
    p: &std::collections::HashMap<String, String>,
    purpose: &str,
) -> Result<portcullis_store::accounts::Principal, OAuthError> {
    let (id, secret) = client_credentials(headers, p)?;
    if id.is_empty() || id.len() > 128 || secret.len() > 512 {
        return Err(OAuthError::invalid_client());
    }
    let now = OffsetDateTime::now_utc();
    let keys = throttle_keys(&id, client);
    if let Err(e) = throttled(state, &keys, now).await {
        state
            .store
            .append(tokens::client_event(
                &id,
                Outcome::Failure,
                "throttled",
                &client.ip,
                serde_json::json!({ "purpose": purpose }),
            ))
            .await?;
        return Err(e);
    }
    match tokens::authenticate_client(&state.store, &id, &secret).await {
        Ok(p) => Ok(p),
        Err(f) => {
            // A person's account used as a client is worth an alert: interactive identities
            // have no client credentials.
            let alert = f == ClientAuthFailure::NotAServiceAccount;
            state
                .store
                .write(
                    Change::RecordFailures {
                        keys,
                        at_us: us(now),
                    },
                    vec![tokens::client_event(
                        &id,
                        Outcome::Failure,
                        f.reason(),
                        &client.ip,
                        serde_json::json!({ "purpose": purpose, "alert": alert }),
                    )],
                )
                .await?;
            Err(OAuthError::invalid_client())
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
}

/// Form fields of the token endpoint (documentation only; the body is form-encoded).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct TokenForm {
    /// `client_credentials`.
    grant_type: String,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// Token endpoint: `client_credentials` for service accounts (client_secret_basic or
/// client_secret_post).
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
    match grant {
        Some("client_credentials") => {}
        Some(_) => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only client_credentials is supported here",
            ));
        }
        None => return Err(OAuthError::invalid_request("grant_type is required")),
    }
    let sa = authenticate(&state, &client, &headers, &p, "token").await?;
    let now = OffsetDateTime::now_utc();
    let (token, claims) = tokens::issue_for_service_account(&state, &sa, now).await?;
    let roles: Vec<&str> = claims.roles.iter().map(|r| r.role.as_str()).collect();
    state
        .store
        .write(
            Change::ResetThrottle { keys: vec![format!("client:{}", sa.name)] },
            vec![tokens::client_event(&sa.name, Outcome::Success, "issued", &client.ip, serde_json::json!({
                "jti": claims.jti, "exp": claims.exp, "roles": roles, "permissions": claims.permissions,
            }))],
        )
        .await?;
    let mut r = Json(TokenResponse {
        access_token: token,
        token_type: "Bearer".into(),
        expires_in: claims.exp - claims.iat,
    })
    .into_response();
    no_store(r.headers_mut());
    Ok(r)
}

/// Token introspection (RFC 7662) for authenticated clients.
#[utoipa::path(post, path = "/oauth2/introspect", tag = "oauth2",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = Object), (status = 400, body = OAuthErrorBody), (status = 401, body = OAuthErrorBody)))]
pub async fn introspect(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    form: Result<Form<Params>, FormRejection>,
) -> Result<Response, OAuthError> {
    let p = params(form)?;
    authenticate(&state, &client, &headers, &p, "introspect").await?;
    let token = p
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let inactive = || {
        let mut r = Json(serde_json::json!({ "active": false })).into_response();
        no_store(r.headers_mut());
        r
    };
    let Some(claims) = state.tokens.verify(token) else {
        return Ok(inactive());
    };
    if state.store.token_revoked(&claims.jti).await? {
        return Ok(inactive());
    }
    match state.store.principal_by_id(&claims.sub).await? {
        Some(s) if s.enabled => {}
        _ => return Ok(inactive()),
    }
    let mut body = serde_json::to_value(&claims).map_err(|_| OAuthError::server_error())?;
    if let Some(o) = body.as_object_mut() {
        o.insert("active".into(), true.into());
        o.insert("token_type".into(), "Bearer".into());
    }
    let mut r = Json(body).into_response();
    no_store(r.headers_mut());
    Ok(r)
}

/// Token revocation (RFC 7009): a client revokes a token issued to it. Always 200.
#[utoipa::path(post, path = "/oauth2/revoke", tag = "oauth2",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200), (status = 400, body = OAuthErrorBody), (status = 401, body = OAuthErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    form: Result<Form<Params>, FormRejection>,
) -> Result<Response, OAuthError> {
    let p = params(form)?;
    let sa = authenticate(&state, &client, &headers, &p, "revoke").await?;
    let token = p
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    // Unknown, expired or foreign tokens: answered the same (RFC 7009 §2.2), nothing changes.
    if let Some(claims) = state.tokens.verify(token)
        && claims.client_id == sa.name
    {
        let now = OffsetDateTime::now_utc();
        state
            .store
            .write(
                Change::RevokeToken {
                    jti: claims.jti.clone(),
                    expires_at_us: claims.exp * 1_000_000,
                    at_us: us(now),
                },
                vec![tokens::client_event(
                    &sa.name,
                    Outcome::Success,
                    "token_revoked",
                    &client.ip,
                    serde_json::json!({ "jti": claims.jti }),
                )],
            )
            .await?;
    }
    let mut r = StatusCode::OK.into_response();
    no_store(r.headers_mut());
    Ok(r)
}

/// The signing keys (JWK Set): every key whose tokens may still be in use.
#[utoipa::path(get, path = "/oauth2/jwks", tag = "oauth2", responses((status = 200, body = Object)))]
pub async fn jwks(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.tokens.jwks().clone())
}

/// OpenID Connect discovery.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "oauth2", responses((status = 200, body = Object)))]
pub async fn discovery(State(state): State<AppState>) -> Json<serde_json::Value> {
    let iss = &state.tokens.issuer;
    Json(serde_json::json!({
        "issuer": iss,
        "token_endpoint": format!("{iss}/oauth2/token"),
        "jwks_uri": format!("{iss}/oauth2/jwks"),
        "introspection_endpoint": format!("{iss}/oauth2/introspect"),
        "revocation_endpoint": format!("{iss}/oauth2/revoke"),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "subject_types_supported": ["public"],
        "response_types_supported": [],
    }))
}
