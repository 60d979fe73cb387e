//! WebAuthn through the API: passkeys and security keys sign in, forgeries are refused, and
//! ceremonies and pending sign-ins expire.

use super::*;

async fn webauthn_passkeys_sign_in_and_refuse_forgeries(app: TestApp) {
    let admin = admin(&app).await;
    create_privileged(&admin, "wes", "copper-lantern-river-42").await;
    let wes = registration_session(&app, "wes", "copper-lantern-river-42").await;

    // Registration: an authenticator that did not verify the user is refused, as is one
    // answering for another origin; neither leaves a factor behind.
    let c = wes
        .mfa_webauthn_register(&WebauthnRegisterRequest {
            name: "no-pin".into(),
        })
        .await
        .expect("start");
    let mut opts = c.options.clone();
    opts["publicKey"]["authenticatorSelection"]["userVerification"] = "discouraged".into();
    let mut no_uv = SoftPasskey::new(false);
    let cred = no_uv
        .do_registration(origin(), serde_json::from_value(opts).expect("opts"))
        .expect("registers without UV");
    refused(
        wes.mfa_webauthn_register_finish(&WebauthnFinishRequest {
            ceremony_id: c.ceremony_id.clone(),
            credential: serde_json::to_value(cred).expect("json"),
        })
        .await,
        "webauthn_failed",
        "user_not_verified",
    );
    let mut key = SoftPasskey::new(true);
    let c = wes
        .mfa_webauthn_register(&WebauthnRegisterRequest {
            name: "yubikey".into(),
        })
        .await
        .expect("start");
    // Same relying-party id, another port: a different origin.
    let elsewhere = Url::parse("http://localhost:9999").expect("url");
    let cred = key
        .do_registration(elsewhere, creation(&c))
        .expect("registers");
    refused(
        wes.mfa_webauthn_register_finish(&WebauthnFinishRequest {
            ceremony_id: c.ceremony_id.clone(),
            credential: serde_json::to_value(cred).expect("json"),
        })
        .await,
        "webauthn_failed",
        "origin_mismatch",
    );
    assert!(wes.mfa_list().await.expect("list").is_empty());

    let mut key = SoftPasskey::new(true);
    let f = register(&wes, &mut key, "yubikey").await;
    assert_eq!((f.kind.as_str(), f.confirmed), ("webauthn", true));
    // The same name twice is refused before any ceremony starts.
    let dup = wes
        .mfa_webauthn_register(&WebauthnRegisterRequest {
            name: "yubikey".into(),
        })
        .await
        .expect_err("dup");
    assert_eq!(dup.code(), Some("already_exists"));

    // Passwordless sign-in: phishing-resistant, full session.
    let c = passwordless(&app, "wes").await;
    let good = answer(&mut key, &c, origin());
    let s = finish(&app, &c.ceremony_id, good.clone())
        .await
        .expect("signed in")
        .session
        .expect("session");
    assert_eq!(
        (s.strength.as_str(), s.scope.as_str()),
        ("phishing_resistant", "full")
    );
    // The same answer again: the ceremony was spent.
    refused(
        finish(&app, &c.ceremony_id, good).await,
        "unauthenticated",
        "already finished",
    );

    // A tampered signature, and an assertion made for another port of the same host.
    let c = passwordless(&app, "wes").await;
    let cred = answer(&mut key, &c, origin());
    refused(
        finish(&app, &c.ceremony_id, tamper(cred, "signature")).await,
        "webauthn_failed",
        "bad_signature",
    );
    let c = passwordless(&app, "wes").await;
    let other_port = Url::parse("http://localhost:9999").expect("url");
    let cred = answer(&mut key, &c, other_port);
    refused(
        finish(&app, &c.ceremony_id, cred).await,
        "webauthn_failed",
        "origin_mismatch",
    );

    // Bad input changes nothing: the ceremony still works afterwards.
    let c = passwordless(&app, "wes").await;
    refused(
        finish(&app, "not-hex", serde_json::json!({})).await,
        "invalid_request",
        "ceremony_id",
    );
    refused(
        finish(&app, &c.ceremony_id, serde_json::json!({"id": 5})).await,
        "invalid_request",
        "assertion",
    );
    let both = app
        .anonymous
        .signin_webauthn(&WebauthnSignInRequest {
            signin_id: Some("a".repeat(64)),
            username: Some("wes".into()),
        })
        .await;
    refused(both, "invalid_request", "not both");
    let cred = answer(&mut key, &c, origin());
    assert!(finish(&app, &c.ceremony_id, cred).await.is_ok());

    // Another user's challenge: answering xena's ceremony with wes's key is refused, and
    // wes's own ceremony is untouched by it.
    create_privileged(&admin, "xena", "marble-thistle-ocean-17").await;
    let xena = registration_session(&app, "xena", "marble-thistle-ocean-17").await;
    let mut xkey = SoftPasskey::new(true);
    register(&xena, &mut xkey, "token").await;
    let cx = passwordless(&app, "xena").await;
    let cw = passwordless(&app, "wes").await;
    let wes_answer = answer(&mut key, &cw, origin());
    refused(
        finish(&app, &cx.ceremony_id, wes_answer.clone()).await,
        "webauthn_failed",
        "",
    );
    assert!(finish(&app, &cw.ceremony_id, wes_answer).await.is_ok());

    // A counter that goes backwards (what a cloned authenticator produces): two ceremonies
    // answered in order, finished in reverse; the older answer is refused.
    let a = passwordless(&app, "wes").await;
    let b = passwordless(&app, "wes").await;
    let older = answer(&mut key, &a, origin());
    let newer = answer(&mut key, &b, origin());
    assert!(finish(&app, &b.ceremony_id, newer).await.is_ok());
    refused(
        finish(&app, &a.ceremony_id, older).await,
        "webauthn_failed",
        "counter",
    );

    // An assertion without user verification is refused even if the key signs it.
    let mut opts = passwordless(&app, "xena").await;
    let cid = opts.ceremony_id.clone();
    opts.options["publicKey"]["userVerification"] = "discouraged".into();
    // Asked without UV, xena's key signs without verifying her; the server's policy, kept
    // server-side in the ceremony, still requires it.
    let cred = serde_json::to_value(
        xkey.do_authentication(
            origin(),
            serde_json::from_value(opts.options).expect("opts"),
        )
        .expect("signs"),
    )
    .expect("json");
    refused(
        finish(&app, &cid, cred).await,
        "webauthn_failed",
        "user_not_verified",
    );

    // Second factor after the password: the pending sign-in is spent with it.
    let r = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "wes".into(),
            password: "copper-lantern-river-42".into(),
        })
        .await
        .expect("password");
    assert_eq!(r.status, "mfa_required");
    assert_eq!(r.factors, ["webauthn"]);
    let signin_id = r.signin_id.expect("id");
    let start = |id: String| WebauthnSignInRequest {
        signin_id: Some(id),
        username: None,
    };
    let c = app
        .anonymous
        .signin_webauthn(&start(signin_id.clone()))
        .await
        .expect("start");
    let cred = answer(&mut key, &c, origin());
    let s = finish(&app, &c.ceremony_id, cred)
        .await
        .expect("2fa")
        .session
        .expect("session");
    assert_eq!(s.strength, "phishing_resistant");
    refused(
        app.anonymous.signin_webauthn(&start(signin_id)).await,
        "unauthenticated",
        "expired or was completed",
    );

    // Passwordless for an unknown user or one without a passkey: a decoy challenge (shaped like
    // a real one) whose answer is refused and audited like a wrong one.
    let c = passwordless(&app, "wes").await;
    let mut forged = answer(&mut key, &c, origin());
    forged["id"] = "c3RyYW5nZXI".into();
    forged["rawId"] = "c3RyYW5nZXI".into();
    for who in ["nobody", "root-admin"] {
        let decoy = passwordless(&app, who).await;
        refused(
            finish(&app, &decoy.ceremony_id, forged.clone()).await,
            "webauthn_failed",
            "credential_not_allowed",
        );
    }

    // The only factor of a privileged account cannot be removed.
    let wes_full = app.anonymous.with_token(Some(SecretString::from(s.token)));
    refused(wes_full.mfa_remove(&f.id).await, "last_factor", "");

    // Password change: a fresh WebAuthn sign-in stands in for the second factor; a TOTP
    // session without a code does not.
    let no_code = |current: &str| PasswordChangeRequest {
        current_password: current.into(),
        new_password: "saffron-glacier-pylon-66".into(),
        code: None,
    };
    refused(
        admin.change_password(&no_code(ADMIN_PW)).await,
        "step_up_required",
        "passkey",
    );
    wes_full
        .change_password(&no_code("copper-lantern-river-42"))
        .await
        .expect("changed with a fresh passkey sign-in");

    // Every attempt is in the audit log with its reason.
    let events = admin
        .audit_events(&EventFilter {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("events")
        .events;
    let reasons: BTreeSet<String> = events
        .iter()
        .filter(|e| {
            e.action == "signin.webauthn"
                || e.action == "signin.completed"
                || e.action == "mfa.webauthn_registered"
        })
        .filter_map(|e| e.details["reason"].as_str().map(str::to_owned))
        .collect();
    for r in [
        "bad_signature",
        "origin_mismatch",
        "user_not_verified",
        "replayed_or_counter_did_not_advance",
        "passwordless_webauthn",
        "password_and_webauthn",
        "no_passkey_or_unknown_user",
    ] {
        assert!(reasons.contains(r), "{r} missing from {reasons:?}");
    }
    app.stop().await;
}

/// Ceremonies and pending sign-ins end after `signin_step_seconds`.
async fn webauthn_ceremonies_expire(backend: Backend) {
    let Some(app) = spawn_with(backend, |c| c.signin_step_seconds = 1).await else {
        return;
    };
    let admin = admin(&app).await;
    create_privileged(&admin, "wes", "copper-lantern-river-42").await;
    let wes = registration_session(&app, "wes", "copper-lantern-river-42").await;
    let mut key = SoftPasskey::new(true);
    register(&wes, &mut key, "yubikey").await;
    let c = passwordless(&app, "wes").await;
    let cred = answer(&mut key, &c, origin());
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    refused(
        finish(&app, &c.ceremony_id, cred).await,
        "unauthenticated",
        "expired",
    );
    app.stop().await;
}

api_tests!(webauthn_passkeys_sign_in_and_refuse_forgeries);

backend_tests!(webauthn_ceremonies_expire);
