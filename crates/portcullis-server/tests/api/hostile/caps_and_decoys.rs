//! What an attacker cannot keep or learn: a revoked refresh family takes its access tokens
//! along, unauthenticated rows are capped per address, passwordless starts are decoys.

use super::*;

/// Finding 12: revoking a refresh family (reuse detected, sign-out) also ends the access
/// tokens minted from it, not only its future refreshes.
async fn a_revoked_refresh_family_takes_its_access_tokens_along(app: TestApp) {
    let admin = admin(&app).await;
    let login = |admin: Client| {
        let app = &app;
        async move {
            let start = device_start(app).await;
            admin
                .approve_device(&portcullis_core::api::DeviceDecisionRequest {
                    user_code: start["user_code"].as_str().expect("code").into(),
                })
                .await
                .expect("approve");
            let r = device_poll(app, start["device_code"].as_str().expect("dc")).await;
            assert_eq!(r.status(), 200);
            let body: serde_json::Value = r.json().await.expect("json");
            (
                body["access_token"].as_str().expect("at").to_owned(),
                body["refresh_token"].as_str().expect("rt").to_owned(),
            )
        }
    };
    let works = |token: String| {
        let c = app.anonymous.with_token(Some(SecretString::from(token)));
        async move { c.whoami().await.is_ok() }
    };
    // Sign-out: the CLI revokes its refresh token.
    let (a1, r1) = login(admin.clone()).await;
    let r = refresh_with(&app, "portcullis-cli", &r1).await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    let (a2, r2) = (
        body["access_token"].as_str().expect("at").to_owned(),
        body["refresh_token"].as_str().expect("rt").to_owned(),
    );
    assert!(works(a1.clone()).await && works(a2.clone()).await);
    let revoked = form_post(
        &app,
        "/oauth2/revoke",
        &[("client_id", "portcullis-cli"), ("token", &r2)],
    )
    .await;
    assert_eq!(revoked.status(), 200);
    assert!(
        !works(a1).await,
        "the first access token ended with its family"
    );
    assert!(
        !works(a2).await,
        "the latest access token ended with its family"
    );
    // Reuse: presenting a rotated refresh token ends the family and what it minted.
    let (a3, r3) = login(admin.clone()).await;
    let r = refresh_with(&app, "portcullis-cli", &r3).await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    let a4 = body["access_token"].as_str().expect("at").to_owned();
    let replay = refresh_with(&app, "portcullis-cli", &r3).await;
    assert_eq!(replay.status(), 400);
    assert!(
        !works(a3).await && !works(a4).await,
        "a thief's copy dies with the family"
    );
    app.stop().await;
}

/// Finding 7: unauthenticated requests cannot grow tables without bound: device codes and
/// passwordless challenges are capped per address (another address is unaffected).
async fn unauthenticated_rows_are_capped_per_address(app: TestApp) {
    let device = |last: u8| {
        let base = app.base.clone();
        async move {
            from(last)
                .post(format!("{base}/oauth2/device_authorization"))
                .form(&[("client_id", "portcullis-cli")])
                .send()
                .await
                .expect("send")
        }
    };
    for _ in 0..10 {
        assert_eq!(device(4).await.status(), 200);
    }
    let r = device(4).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(
        device(5).await.status(),
        200,
        "another address is unaffected"
    );
    let passwordless = |last: u8, name: String| {
        let base = app.base.clone();
        async move {
            from(last)
                .post(format!("{base}/api/v1/signin/webauthn"))
                .json(&serde_json::json!({ "username": name }))
                .send()
                .await
                .expect("send")
                .status()
                .as_u16()
        }
    };
    for i in 0..20 {
        assert_eq!(passwordless(6, format!("invented-{i}")).await, 200);
    }
    assert_eq!(passwordless(6, "invented-x".into()).await, 429);
    assert_eq!(passwordless(7, "invented-x".into()).await, 200);
    app.stop().await;
}

/// Finding 12: a passwordless start answers the same shape for every name — an account with a
/// passkey, one without, none at all — so it tells nobody who has passkeys or their ids; the
/// answer to a decoy is refused like a wrong answer to a real challenge.
async fn passwordless_start_tells_nobody_who_has_passkeys(app: TestApp) {
    let admin = admin(&app).await;
    let (wes, _) = mfa_user(&app, &admin, "wes", "amber-willow-canyon-58").await;
    let mut key = SoftPasskey::new(true);
    register(&wes, &mut key, "key").await;
    let (_ivy, _) = mfa_user(&app, &admin, "ivy", "cobalt-meadow-lantern-39").await;
    let shape = |v: &serde_json::Value| -> Vec<String> {
        let mut keys: Vec<String> = v["publicKey"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        let cred: Vec<String> = v["publicKey"]["allowCredentials"][0]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        keys.extend(cred);
        keys
    };
    let real = passwordless(&app, "wes").await;
    let without = passwordless(&app, "ivy").await;
    let nobody = passwordless(&app, "nobody-at-all").await;
    assert_eq!(shape(&real.options), shape(&without.options));
    assert_eq!(shape(&real.options), shape(&nobody.options));
    assert_eq!(
        real.options["publicKey"]["timeout"],
        nobody.options["publicKey"]["timeout"]
    );
    for c in [&without, &nobody] {
        assert!(
            !c.options["publicKey"]["allowCredentials"]
                .as_array()
                .expect("list")
                .is_empty()
        );
    }
    // The same name shows the same (decoy) ids each time, as a real account would.
    let again = passwordless(&app, "nobody-at-all").await;
    assert_eq!(
        nobody.options["publicKey"]["allowCredentials"],
        again.options["publicKey"]["allowCredentials"]
    );
    // An answer for a credential the challenge does not allow: refused the same way whether the
    // challenge was real or a decoy.
    let mut forged = answer(&mut key, &real, origin());
    let stranger = {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        URL_SAFE_NO_PAD.encode([7u8; 32])
    };
    forged["id"] = stranger.clone().into();
    forged["rawId"] = stranger.into();
    let e2 = finish(&app, &real.ceremony_id, forged.clone())
        .await
        .expect_err("a credential the real challenge does not allow");
    assert_eq!(e2.code(), Some("webauthn_failed"), "{e2}");
    let e = finish(&app, &without.ceremony_id, forged)
        .await
        .expect_err("a decoy is refused");
    assert_eq!(e.code(), Some("webauthn_failed"), "{e}");
    assert_eq!(e.to_string(), e2.to_string(), "the same answer either way");
    app.stop().await;
}

api_tests!(
    a_revoked_refresh_family_takes_its_access_tokens_along,
    unauthenticated_rows_are_capped_per_address,
    passwordless_start_tells_nobody_who_has_passkeys,
);
