//! FIDO2 break-glass accounts: key and PIN holders, the one-time enrolment session, and a
//! passwordless, phishing-resistant sign-in.

use super::*;

/// A FIDO2 break-glass account: key and PIN holders recorded; the one-time enrolment session
/// registers one key with user verification; it signs in passwordless (phishing-resistant)
/// to a full session, and no further credential can be added through the account itself.
async fn breakglass_fido2_account(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    people(&admin, &["kim", "pat"]).await;
    let (status, _, msg) = error_of(post_json(&app, Some(&token), "/api/v1/breakglass",
        serde_json::json!({"name": "bg-key", "credential": "fido2", "key_holder": "kim", "pin_holder": "kim"})).await).await;
    assert_eq!(status, 400);
    assert!(msg.contains("two different people"), "{msg}");
    let r = post_json(&app, Some(&token), "/api/v1/breakglass",
        serde_json::json!({"name": "bg-key", "credential": "fido2", "key_holder": "kim", "pin_holder": "pat"})).await;
    assert_eq!(r.status(), 201);
    let created: serde_json::Value = r.json().await.expect("json");
    assert_eq!(created["account"]["usable"], false, "no key yet");
    // Disabling an account that was never usable lowers nothing: allowed even in setup.
    admin
        .disable_user("bg-key")
        .await
        .expect("an unusable account may be disabled");
    admin.enable_user("bg-key").await.expect("enable");
    assert_eq!(
        (
            created["account"]["key_holder"].as_str(),
            created["account"]["pin_holder"].as_str()
        ),
        (Some("kim"), Some("pat"))
    );
    let enrol = app.anonymous.with_token(Some(SecretString::from(
        created["enrolment_token"]
            .as_str()
            .expect("token")
            .to_owned(),
    )));
    // A new enrolment token (the first went unused) ends the first one.
    let r = post_json(
        &app,
        Some(&token),
        "/api/v1/breakglass/bg-key/enrolment",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let again: serde_json::Value = r.json().await.expect("json");
    assert!(
        enrol.whoami().await.is_err(),
        "the earlier enrolment token has ended"
    );
    let enrol = app.anonymous.with_token(Some(SecretString::from(
        again["enrolment_token"].as_str().expect("token").to_owned(),
    )));
    let mut key = SoftPasskey::new(true);
    register(&enrol, &mut key, "yubikey-safe-1").await;
    let (status, code, _) = error_of(
        post_json(
            &app,
            Some(&token),
            "/api/v1/breakglass/bg-key/enrolment",
            serde_json::json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (409, "breakglass_credential"),
        "not once the key is registered"
    );
    let mut other = SoftPasskey::new(true);
    let second = enrol
        .mfa_webauthn_register(&WebauthnRegisterRequest {
            name: "another".into(),
        })
        .await;
    assert_eq!(
        second.expect_err("refused").code(),
        Some("breakglass_credential")
    );
    let _ = &mut other;
    let c = passwordless(&app, "bg-key").await;
    let r = finish(&app, &c.ceremony_id, answer(&mut key, &c, origin()))
        .await
        .expect("signed in");
    let s = r.session.expect("session");
    assert_eq!(
        (s.strength.as_str(), s.scope.as_str()),
        ("phishing_resistant", "full")
    );
    let list = breakglass_list(&app, &token).await;
    assert_eq!(list[0]["credential"], "fido2");
    assert_eq!(list[0]["usable"], true);
    let ev = events_named(&admin, "signin.completed").await;
    assert!(
        ev.iter()
            .any(|e| e.target == "user:bg-key" && e.details["emergency"] == true)
    );
    app.stop().await;
}

api_tests!(breakglass_fido2_account);
