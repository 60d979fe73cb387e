//! WebAuthn: a software passkey from webauthn-authenticator-rs plays the browser and the
//! authenticator (registration, passwordless sign-in, tampered answers); the server refuses.

use super::*;

/// The origin the test "browser" claims; the harness's `public_url` (config_for).
pub(crate) fn origin() -> Url {
    Url::parse("http://localhost:8080").expect("origin")
}

pub(crate) fn creation(c: &WebauthnChallenge) -> CreationChallengeResponse {
    serde_json::from_value(c.options.clone()).expect("creation options")
}

pub(crate) fn request(c: &WebauthnChallenge) -> RequestChallengeResponse {
    serde_json::from_value(c.options.clone()).expect("request options")
}

pub(crate) async fn register(
    me: &Client,
    key: &mut SoftPasskey,
    name: &str,
) -> portcullis_core::api::FactorView {
    let c = me
        .mfa_webauthn_register(&WebauthnRegisterRequest { name: name.into() })
        .await
        .expect("start registration");
    let cred = key
        .do_registration(origin(), creation(&c))
        .expect("authenticator registers");
    me.mfa_webauthn_register_finish(&WebauthnFinishRequest {
        ceremony_id: c.ceremony_id,
        credential: serde_json::to_value(cred).expect("json"),
    })
    .await
    .expect("finish registration")
}

pub(crate) async fn passwordless(app: &TestApp, user: &str) -> WebauthnChallenge {
    app.anonymous
        .signin_webauthn(&WebauthnSignInRequest {
            signin_id: None,
            username: Some(user.into()),
        })
        .await
        .expect("start sign-in")
}

pub(crate) async fn finish(
    app: &TestApp,
    ceremony_id: &str,
    credential: serde_json::Value,
) -> Result<portcullis_core::api::SignInResponse, ClientError> {
    app.anonymous
        .signin_webauthn_finish(&WebauthnFinishRequest {
            ceremony_id: ceremony_id.into(),
            credential,
        })
        .await
}

pub(crate) fn answer(key: &mut SoftPasskey, c: &WebauthnChallenge, at: Url) -> serde_json::Value {
    serde_json::to_value(
        key.do_authentication(at, request(c))
            .expect("authenticator signs"),
    )
    .expect("json")
}

/// Flips one bit in the middle of a base64url field of the credential's response.
pub(crate) fn tamper(mut cred: serde_json::Value, field: &str) -> serde_json::Value {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let s = cred["response"][field]
        .as_str()
        .expect("field")
        .trim_end_matches('=')
        .to_owned();
    let mut raw = URL_SAFE_NO_PAD.decode(s).expect("b64");
    let mid = raw.len() / 2;
    raw[mid] ^= 0x01;
    cred["response"][field] = serde_json::Value::String(URL_SAFE_NO_PAD.encode(raw));
    cred
}
