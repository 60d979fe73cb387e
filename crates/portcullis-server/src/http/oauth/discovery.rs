//! What relying parties read: userinfo (RFC 6750 errors), the JWK Set and OpenID Connect discovery.

use super::*;

/// Answers userinfo for a bearer token (RFC 6750 errors in `WWW-Authenticate`).
pub(super) async fn userinfo(state: &AppState, headers: &HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 8192);
    let result = match token {
        Some(t) => crate::services::oidc::userinfo(state, t).await,
        None => Err(UserinfoError::InvalidToken),
    };
    let mut r = match result {
        Ok(body) => Json(body).into_response(),
        Err(e) => {
            let (status, error) = match e {
                UserinfoError::InvalidToken => (StatusCode::UNAUTHORIZED, e.code()),
                UserinfoError::InsufficientScope => (StatusCode::FORBIDDEN, e.code()),
                UserinfoError::ServerError => (StatusCode::INTERNAL_SERVER_ERROR, e.code()),
            };
            let mut r = (
                status,
                Json(OAuthErrorBody {
                    error: error.into(),
                    error_description: "the access token is not valid for userinfo".into(),
                }),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("Bearer error=\"{error}\"")) {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            r
        }
    };
    no_store(r.headers_mut());
    r
}

/// OpenID Connect userinfo: the person's claims allowed by the token's scopes.
#[utoipa::path(get, path = "/oauth2/userinfo", tag = "oauth2", security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 401, body = OAuthErrorBody), (status = 403, body = OAuthErrorBody)))]
pub async fn userinfo_get(State(state): State<AppState>, headers: HeaderMap) -> Response {
    userinfo(&state, &headers).await
}

/// OpenID Connect userinfo (POST).
#[utoipa::path(post, path = "/oauth2/userinfo", tag = "oauth2", security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 401, body = OAuthErrorBody), (status = 403, body = OAuthErrorBody)))]
pub async fn userinfo_post(State(state): State<AppState>, headers: HeaderMap) -> Response {
    userinfo(&state, &headers).await
}

/// The signing keys (JWK Set): every key whose tokens may still be in use.
#[utoipa::path(get, path = "/oauth2/jwks", tag = "oauth2", responses((status = 200, body = Object)))]
pub async fn jwks(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.tokens.jwks(OffsetDateTime::now_utc()))
}

/// Client authentication methods of the token, introspection and revocation endpoints.
pub(super) const AUTH_METHODS: [&str; 3] = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
];

/// OpenID Connect discovery.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "oauth2", responses((status = 200, body = Object)))]
pub async fn discovery(State(state): State<AppState>) -> Json<serde_json::Value> {
    let iss = &state.tokens.issuer;
    let algs: Vec<&str> = KeyAlgorithm::ALL.iter().map(|a| a.as_str()).collect();
    Json(serde_json::json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/oauth2/authorize"),
        "userinfo_endpoint": format!("{iss}/oauth2/userinfo"),
        "token_endpoint": format!("{iss}/oauth2/token"),
        "jwks_uri": format!("{iss}/oauth2/jwks"),
        "introspection_endpoint": format!("{iss}/oauth2/introspect"),
        "revocation_endpoint": format!("{iss}/oauth2/revoke"),
        "device_authorization_endpoint": format!("{iss}/oauth2/device_authorization"),
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token", DEVICE_GRANT],
        // `none`: public clients (the CLI, registered public clients).
        "token_endpoint_auth_methods_supported": AUTH_METHODS.iter().chain(&["none"]).collect::<Vec<_>>(),
        "token_endpoint_auth_signing_alg_values_supported": algs,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        "introspection_endpoint_auth_signing_alg_values_supported": algs,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_signing_alg_values_supported": algs,
        "id_token_signing_alg_values_supported": crate::services::keys::SigningAlg::ALL
            .iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        "subject_types_supported": ["public"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": portcullis_core::oidc::SCOPES,
        "claims_supported": [
            "sub", "iss", "aud", "azp", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid",
            "roles", "name", "preferred_username", "email", "email_verified",
        ],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
    }))
}
