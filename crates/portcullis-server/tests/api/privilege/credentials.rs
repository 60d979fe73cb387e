//! Finding 2 and rule 7: a stolen access token registers no credential, and changing a factor
//! needs a proof within five minutes; the owner is told of each change.

use super::*;
use portcullis_core::api::{DeviceDecisionRequest, ReauthRequest};

/// Finding 2: a stolen access token (a phished device-code approval) registers no credential,
/// changes no password, re-authenticates nothing; and the device's tokens carry at most `mfa`
/// although the approving session was phishing-resistant.
async fn a_stolen_access_token_registers_no_credential(app: TestApp) {
    let admin = admin(&app).await;
    let (ivy, _) = mfa_user(&app, &admin, "ivy", PW).await;
    let mut key = SoftPasskey::new(true);
    register(&ivy, &mut key, "key").await;
    let c = passwordless(&app, "ivy").await;
    let s = finish(&app, &c.ceremony_id, answer(&mut key, &c, origin()))
        .await
        .expect("passkey sign-in")
        .session
        .expect("session");
    assert_eq!(s.strength, "phishing_resistant");
    let strong = token_client(&app, &s.token);
    let start = device_start(&app).await;
    strong
        .approve_device(&DeviceDecisionRequest {
            user_code: start["user_code"].as_str().expect("code").into(),
        })
        .await
        .expect("approve");
    let r = device_poll(&app, start["device_code"].as_str().expect("device code")).await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    let at = body["access_token"].as_str().expect("token").to_owned();
    let claims = claims_of(&at);
    assert_eq!(claims["acr"], "mfa", "capped at mfa: {claims}");
    assert_eq!(
        claims["aud"], "portcullis-cli",
        "each client is its own audience"
    );
    let stolen = token_client(&app, &at);
    assert!(
        stolen.whoami().await.is_ok(),
        "the token works as an API credential"
    );
    assert_eq!(
        code_of(
            stolen
                .mfa_webauthn_register(&WebauthnRegisterRequest {
                    name: "evil".into()
                })
                .await
        ),
        "forbidden"
    );
    assert_eq!(
        code_of(
            stolen
                .mfa_enrol_totp(&TotpEnrolRequest {
                    name: "evil".into()
                })
                .await
        ),
        "forbidden"
    );
    let pw = stolen
        .change_password(&portcullis_core::api::PasswordChangeRequest {
            current_password: PW.into(),
            new_password: "brand-new-stolen-passphrase-1".into(),
            code: None,
        })
        .await;
    assert_eq!(code_of(pw), "forbidden");
    assert_eq!(code_of(stolen.reauth_webauthn().await), "forbidden");
    // Nothing was registered, and the refusals are on record.
    assert_eq!(ivy.mfa_list().await.expect("factors").len(), 2);
    let refused: u64 = refusals_of(&admin, "user:ivy")
        .await
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert!(refused >= 1);
    app.stop().await;
}

/// Moves every session of `user` `minutes` into the past, as if it signed in that long ago
/// (a database write: the tests cannot wait out the five-minute window).
async fn age_sessions(app: &TestApp, user: &str, minutes: i64) {
    use sqlx::Connection;
    let shift = minutes * 60_000_000;
    let sql = "UPDATE sessions SET created_at_us = created_at_us - $1, strong_auth_at_us = strong_auth_at_us - $1 WHERE principal_id = (SELECT id FROM principals WHERE name = $2)";
    let url = app.config.database_url();
    if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(&url).await.expect("pg");
        sqlx::query(sql)
            .bind(shift)
            .bind(user)
            .execute(&mut c)
            .await
            .expect("age");
    } else {
        let mut c = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
        sqlx::query(sql)
            .bind(shift)
            .bind(user)
            .execute(&mut c)
            .await
            .expect("age");
    }
}

/// Rule 7: registering or removing a factor needs a proof within five minutes; a stale
/// session re-authenticates (password and TOTP) and the owner is told of each change.
async fn credential_changes_need_a_fresh_proof(app: TestApp) {
    let admin = admin(&app).await;
    let (ivy, secret) = mfa_user(&app, &admin, "ivy", PW).await;
    let fresh = ivy
        .mfa_enrol_totp(&TotpEnrolRequest {
            name: "spare".into(),
        })
        .await;
    assert!(fresh.is_ok(), "a sign-in moments ago is a fresh proof");
    age_sessions(&app, "ivy", 10).await;
    let stale = ivy
        .mfa_enrol_totp(&TotpEnrolRequest {
            name: "third".into(),
        })
        .await;
    refused(stale, "reauth_required", "re-authenticate");
    let spare = fresh.expect("enrolment").factor_id;
    assert_eq!(code_of(ivy.mfa_remove(&spare).await), "reauth_required");
    // A wrong code is refused and changes nothing.
    let wrong = ivy
        .reauth(&ReauthRequest {
            password: Some(PW.into()),
            code: Some("000000".into()),
            ceremony_id: None,
            credential: None,
        })
        .await;
    assert!(wrong.is_err());
    assert_eq!(code_of(ivy.mfa_remove(&spare).await), "reauth_required");
    let done = ivy
        .reauth(&ReauthRequest {
            password: Some(PW.into()),
            code: Some(code(&secret, 1)),
            ceremony_id: None,
            credential: None,
        })
        .await
        .expect("reauth");
    assert_eq!(done.strength, "mfa");
    ivy.mfa_remove(&spare)
        .await
        .expect("removed after a fresh proof");
    let removed = events_named(&admin, "mfa.factor_removed").await;
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].details["alert"], true);
    assert_eq!(
        events_named(&admin, "session.reauthenticated").await.len(),
        2
    );
    // The owner is told by email of every new or removed factor (notification outbox).
    let (dir, config, _) = app.stop().await;
    let store = portcullis_store::Store::open(
        &config.database_url(),
        portcullis_store::StoreOptions {
            read_only: true,
            ..Default::default()
        },
    )
    .await
    .expect("store");
    let told: Vec<String> = store
        .outbox(1000)
        .await
        .expect("outbox")
        .into_iter()
        .filter(|m| m.topic == "credential.changed" && m.recipient == "user:ivy")
        .map(|m| m.payload)
        .collect();
    // The first factor's confirmation (at creation), and the removal.
    assert!(
        told.iter().any(|p| p.contains("factor_removed")),
        "{told:?}"
    );
    assert!(
        told.iter().any(|p| p.contains("totp_registered")),
        "{told:?}"
    );
    store.close().await;
    drop(dir);
}

api_tests!(
    a_stolen_access_token_registers_no_credential,
    credential_changes_need_a_fresh_proof,
);
