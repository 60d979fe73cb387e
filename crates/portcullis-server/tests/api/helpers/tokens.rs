//! The token endpoint: client credentials and assertions, introspection, JWKS key ids, the
//! device grant and refresh tokens, JWT claims.

use super::*;

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct TheirClaims {
    pub(crate) client_id: String,
    pub(crate) roles: Vec<serde_json::Value>,
    pub(crate) permissions: Vec<String>,
    pub(crate) acr: String,
}

pub(crate) async fn token_request(
    app: &TestApp,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> reqwest::Response {
    let mut rb = app
        .http
        .post(format!("{}/oauth2/token", app.base))
        .form(form);
    if let Some((u, p)) = basic {
        rb = rb.basic_auth(u, Some(p));
    }
    rb.send().await.expect("send")
}

/// A service account `name` created by `admin`, with one client secret.
pub(crate) async fn service_account_with_secret(
    admin: &Client,
    name: &str,
) -> portcullis_core::api::ClientSecretIssued {
    admin
        .create_service_account(&CreateServiceAccountRequest {
            name: name.into(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await
        .expect("service account");
    admin.add_client_secret(name).await.expect("secret")
}

pub(crate) async fn access_token(app: &TestApp, id: &str, secret: &str) -> String {
    let r = token_request(
        app,
        &[("grant_type", "client_credentials")],
        Some((id, secret)),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["token_type"], "Bearer");
    body["access_token"].as_str().expect("token").to_owned()
}

pub(crate) async fn oauth_error(r: reqwest::Response, status: u16, error: &str) {
    assert_eq!(r.status().as_u16(), status);
    if status == 401 {
        assert!(r.headers().contains_key("www-authenticate"));
    }
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"], error, "{body}");
}

pub(crate) async fn introspect(
    app: &TestApp,
    id: &str,
    secret: &str,
    token: &str,
) -> serde_json::Value {
    let r = app
        .http
        .post(format!("{}/oauth2/introspect", app.base))
        .basic_auth(id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

/// The ids of the `EdDSA` keys (the access tokens' keys) in JWKS, in its order.
pub(crate) async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let jwks: serde_json::Value = public_json(app, "/oauth2/jwks").await;
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter(|k| k["alg"] == "EdDSA")
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

pub(crate) fn kid_of(token: &str) -> String {
    jwt_simple::prelude::Token::decode_metadata(token)
        .expect("metadata")
        .key_id()
        .expect("kid")
        .to_owned()
}

pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The token endpoint answer to a client assertion.
pub(crate) async fn assertion_request(app: &TestApp, assertion: &str) -> reqwest::Response {
    token_request(
        app,
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ],
        None,
    )
    .await
}

pub(crate) async fn device_start(app: &TestApp) -> serde_json::Value {
    let r = form_post(
        app,
        "/oauth2/device_authorization",
        &[("client_id", "portcullis-cli")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.json().await.expect("json")
}

pub(crate) async fn device_poll(app: &TestApp, device_code: &str) -> reqwest::Response {
    form_post(
        app,
        "/oauth2/token",
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", "portcullis-cli"),
            ("device_code", device_code),
        ],
    )
    .await
}

pub(crate) async fn refresh_with(app: &TestApp, client_id: &str, token: &str) -> reqwest::Response {
    form_post(
        app,
        "/oauth2/token",
        &[
            ("grant_type", "refresh_token"),
            ("client_id", client_id),
            ("refresh_token", token),
        ],
    )
    .await
}

/// Checks an OAuth error answer: `status`, `error`, and a description naming `needle` (what
/// refused it).
pub(crate) async fn oauth_refusal_naming(
    r: reqwest::Response,
    status: u16,
    error: &str,
    needle: &str,
) {
    let got = r.status().as_u16();
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        (got, body["error"].as_str()),
        (status, Some(error)),
        "{body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or("")
            .contains(needle),
        "{body}"
    );
}

pub(crate) fn claims_of(jwt: &str) -> serde_json::Value {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = jwt.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json")
}

pub(crate) fn code_of(start: &serde_json::Value, field: &str) -> String {
    start[field].as_str().expect(field).to_owned()
}
