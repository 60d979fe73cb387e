//! The device authorization grant (RFC 8628): approval with MFA, polling, refresh-token
//! rotation and reuse detection, expiry, and approval in a browser.

use super::*;

/// The CLI's sign-in: a device code approved by a person with MFA yields tokens once, carrying
/// that person's roles and strength; polling obeys RFC 8628; refresh tokens rotate, and a
/// rotated one presented again revokes its whole family with an alert.
async fn device_grant_and_refresh_rotation(app: TestApp) {
    use portcullis_core::api::DeviceDecisionRequest;
    let admin = admin(&app).await;
    let decide = |code: String| DeviceDecisionRequest { user_code: code };

    // Start: codes as RFC 8628 describes them.
    let d1 = device_start(&app).await;
    let user_code = code_of(&d1, "user_code");
    assert_eq!(user_code.len(), 9);
    assert_eq!(&user_code[4..5], "-");
    assert_eq!(d1["verification_uri"], "http://localhost:8080/device");
    assert_eq!(d1["interval"], 5);
    assert_eq!(d1["expires_in"], 600);
    oauth_error(
        form_post(
            &app,
            "/oauth2/device_authorization",
            &[("client_id", "evil")],
        )
        .await,
        401,
        "invalid_client",
    )
    .await;
    oauth_error(
        form_post(&app, "/oauth2/device_authorization", &[]).await,
        400,
        "invalid_request",
    )
    .await;

    // Polling: pending, then too fast.
    let dc1 = code_of(&d1, "device_code");
    oauth_error(device_poll(&app, &dc1).await, 400, "authorization_pending").await;
    oauth_error(device_poll(&app, &dc1).await, 400, "slow_down").await;
    oauth_error(
        device_poll(&app, "not-a-device-code").await,
        400,
        "invalid_grant",
    )
    .await;

    // Denied.
    let d2 = device_start(&app).await;
    admin
        .deny_device(&decide(code_of(&d2, "user_code")))
        .await
        .expect("deny");
    oauth_error(
        device_poll(&app, &code_of(&d2, "device_code")).await,
        400,
        "access_denied",
    )
    .await;

    // Approval needs a second factor: a password-only session cannot give one.
    admin
        .create_user(&CreateUserRequest {
            name: "pat".into(),
            display_name: "Pat".into(),
            email: None,
            phone: None,
            guest_organisation: None,
            privileged: false,
            password: "harbor-violet-mango-81".into(),
        })
        .await
        .expect("pat");
    let r = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "pat".into(),
            password: "harbor-violet-mango-81".into(),
        })
        .await
        .expect("pat signs in");
    let pat = app.anonymous.with_token(Some(secrecy::SecretString::from(
        r.session.expect("session").token,
    )));
    let d3 = device_start(&app).await;
    let e = pat
        .approve_device(&decide(code_of(&d3, "user_code")))
        .await
        .expect_err("password only");
    assert_eq!(e.code(), Some("step_up_required"), "{e}");
    assert_eq!(e.status(), Some(401), "{e}");
    let e = admin
        .approve_device(&decide("12".into()))
        .await
        .expect_err("bad code");
    assert_eq!(e.code(), Some("invalid_request"), "{e}");

    // Approved (typed in lower case with a space): tokens once, with the approver's roles
    // and strength.
    let typed = code_of(&d3, "user_code").to_lowercase().replace('-', " ");
    admin.approve_device(&decide(typed)).await.expect("approve");
    let e = admin
        .approve_device(&decide(code_of(&d3, "user_code")))
        .await
        .expect_err("decided already");
    assert_eq!(e.code(), Some("not_found"), "{e}");
    let dc3 = code_of(&d3, "device_code");
    let r = device_poll(&app, &dc3).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let t1: serde_json::Value = r.json().await.expect("json");
    let c = claims_of(t1["access_token"].as_str().expect("at"));
    assert_eq!(c["client_id"], "portcullis-cli");
    assert_eq!(c["acr"], "mfa");
    assert!(c["amr"].as_array().expect("amr").contains(&"otp".into()));
    assert!(
        c["roles"]
            .as_array()
            .expect("roles")
            .iter()
            .any(|r| r["role"] == "global-administrator")
    );
    oauth_error(device_poll(&app, &dc3).await, 400, "invalid_grant").await;

    // Refresh rotates.
    let r1 = t1["refresh_token"].as_str().expect("rt").to_owned();
    let r = refresh_with(&app, "portcullis-cli", &r1).await;
    assert_eq!(r.status(), 200);
    let t2: serde_json::Value = r.json().await.expect("json");
    let r2 = t2["refresh_token"].as_str().expect("rt").to_owned();
    assert_ne!(r1, r2);
    assert_ne!(t1["access_token"], t2["access_token"]);
    oauth_error(
        refresh_with(&app, "other-client", &r2).await,
        401,
        "invalid_client",
    )
    .await;
    oauth_error(
        refresh_with(&app, "portcullis-cli", "pcr_forged").await,
        400,
        "invalid_grant",
    )
    .await;
    // Reuse of the rotated token: refused, and the family (r2 too) is revoked, with an alert.
    oauth_error(
        refresh_with(&app, "portcullis-cli", &r1).await,
        400,
        "invalid_grant",
    )
    .await;
    oauth_error(
        refresh_with(&app, "portcullis-cli", &r2).await,
        400,
        "invalid_grant",
    )
    .await;
    let reuse = admin
        .audit_events(&EventFilter {
            action: Some("token.refresh_reuse".into()),
            ..Default::default()
        })
        .await
        .expect("events")
        .events;
    assert_eq!(reuse.len(), 1);
    assert_eq!(reuse[0].details["alert"], true);
    assert_eq!(reuse[0].details["family_revoked"], true);
    assert!(
        !serde_json::to_string(
            &admin
                .audit_events(&EventFilter {
                    limit: Some(1000),
                    ..Default::default()
                })
                .await
                .expect("all")
        )
        .expect("json")
        .contains(&r1[4..]),
        "refresh tokens never reach the audit log"
    );

    // The CLI (a public client) revokes its own tokens without authenticating (RFC 7009):
    // a refresh token ends its family, an access token its jti; unknown tokens change nothing.
    let d5 = device_start(&app).await;
    admin
        .approve_device(&decide(code_of(&d5, "user_code")))
        .await
        .expect("approve");
    let t5: serde_json::Value = device_poll(&app, &code_of(&d5, "device_code"))
        .await
        .json()
        .await
        .expect("json");
    let revoke = |token: String| {
        let app = &app;
        async move {
            form_post(
                app,
                "/oauth2/revoke",
                &[("client_id", "portcullis-cli"), ("token", token.as_str())],
            )
            .await
            .status()
        }
    };
    let r5 = t5["refresh_token"].as_str().expect("rt").to_owned();
    let a5 = t5["access_token"].as_str().expect("at").to_owned();
    let before = admin.whoami().await.expect("me");
    assert_eq!(revoke("pcr_unknown".into()).await, 200);
    assert_eq!(revoke(r5.clone()).await, 200);
    oauth_error(
        refresh_with(&app, "portcullis-cli", &r5).await,
        400,
        "invalid_grant",
    )
    .await;
    // Revoking the family ended the access token minted from it too.
    let cli5 = Client::new(&app.base, Some(secrecy::SecretString::from(a5.clone()))).expect("c");
    let e = cli5
        .whoami()
        .await
        .expect_err("the family's access token ended with it");
    assert_eq!(e.code(), Some("unauthenticated"), "{e}");
    // Revoking the access token itself is still answered and recorded (idempotent).
    assert_eq!(revoke(a5).await, 200);
    // Both revocations are in the audit log with the change they made.
    for action in ["token.refresh_revoked", "token.revoked"] {
        let evs = admin
            .audit_events(&EventFilter {
                action: Some(action.into()),
                ..Default::default()
            })
            .await
            .expect("events")
            .events;
        assert_eq!(evs.len(), 1, "{action}");
        assert_eq!(evs[0].actor, "user:root-admin");
    }
    assert_eq!(before.user.name, "root-admin");

    // Revoking the session that approved a device code ends the tokens that followed from it.
    let (eve, _) = mfa_user(&app, &admin, "eve", "copper-lantern-river-42").await;
    let d6 = device_start(&app).await;
    eve.approve_device(&decide(code_of(&d6, "user_code")))
        .await
        .expect("eve approves");
    let t6: serde_json::Value = device_poll(&app, &code_of(&d6, "device_code"))
        .await
        .json()
        .await
        .expect("json");
    let r6 = t6["refresh_token"].as_str().expect("rt").to_owned();
    // Tokens cannot approve devices: the family would hang on no session.
    let eve_token = Client::new(
        &app.base,
        Some(secrecy::SecretString::from(
            t6["access_token"].as_str().expect("at").to_owned(),
        )),
    )
    .expect("client");
    let d7 = device_start(&app).await;
    let e = eve_token
        .approve_device(&decide(code_of(&d7, "user_code")))
        .await
        .expect_err("token approval");
    assert_eq!(e.code(), Some("forbidden"), "{e}");
    for s in admin.user_sessions("eve").await.expect("sessions") {
        admin.revoke_session(&s.id).await.expect("revoke");
    }
    oauth_error(
        refresh_with(&app, "portcullis-cli", &r6).await,
        400,
        "invalid_grant",
    )
    .await;

    // A disabled account stops refreshing at once.
    let (dora, _) = mfa_user(&app, &admin, "dora", "copper-lantern-river-42").await;
    let d4 = device_start(&app).await;
    dora.approve_device(&decide(code_of(&d4, "user_code")))
        .await
        .expect("dora approves");
    let t4: serde_json::Value = device_poll(&app, &code_of(&d4, "device_code"))
        .await
        .json()
        .await
        .expect("json");
    let r4 = t4["refresh_token"].as_str().expect("rt").to_owned();
    admin.disable_user("dora").await.expect("disable");
    oauth_error(
        refresh_with(&app, "portcullis-cli", &r4).await,
        400,
        "invalid_grant",
    )
    .await;
    app.stop().await;
}

/// A device code nobody approves in time expires; approving it afterwards finds nothing.
async fn device_codes_expire(backend: Backend) {
    use portcullis_core::api::DeviceDecisionRequest;
    let Some(app) = spawn_with(backend, |c| c.device_code_seconds = 1).await else {
        return;
    };
    let admin = admin(&app).await;
    let d = device_start(&app).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    oauth_error(
        device_poll(&app, &code_of(&d, "device_code")).await,
        400,
        "expired_token",
    )
    .await;
    let e = admin
        .approve_device(&DeviceDecisionRequest {
            user_code: code_of(&d, "user_code"),
        })
        .await
        .expect_err("expired");
    assert_eq!(e.code(), Some("not_found"), "{e}");
    app.stop().await;
}

/// `portcullis login`'s link works in a browser: sign in with a second factor, approve the
/// code on the device page (CSRF-protected), and the polling CLI gets its tokens.
async fn device_approved_in_the_browser(backend: Backend) {
    let Some(app) = spawn_at_localhost(backend).await else {
        return;
    };
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let secret = oidc_person(&app, &admin, "dana", "silver-harbour-pine-71").await;
    let d = device_start(&app).await;
    let link = code_of(&d, "verification_uri_complete");
    assert!(
        link.starts_with(&format!("{}/device?user_code=", app.public_url)),
        "{link}"
    );
    let mut b = Browser::new(&app.public_url);
    let page = browser_sign_in(&mut b, &link, "dana", "silver-harbour-pine-71", &secret, 0).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("Approve"), "{html}");
    // Where and when the code was asked for, so a phished code can be recognised.
    assert!(
        html.contains("Requested from") && html.contains("127.0.0.1"),
        "{html}"
    );
    assert!(html.contains("portcullis-cli"), "{html}");
    // Approving needs the person to confirm they started it.
    let unconfirmed = b
        .post(
            "/device",
            &[
                ("csrf", &hidden(&html, "csrf")),
                ("user_code", &code_of(&d, "user_code")),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(unconfirmed.status(), 400);
    assert!(
        unconfirmed
            .text()
            .await
            .expect("html")
            .contains("tick the box")
    );
    let user_code = hidden_input(&html, "user_code");
    assert_eq!(user_code, code_of(&d, "user_code"));
    // Without the CSRF token nothing is decided.
    let r = b
        .post(
            "/device",
            &[("user_code", &user_code), ("decision", "approve")],
        )
        .await;
    assert_eq!(r.status(), 403);
    let r = b
        .post(
            "/device",
            &[
                ("csrf", &hidden(&html, "csrf")),
                ("user_code", &user_code),
                ("decision", "approve"),
                ("started_by_me", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("return to your terminal")
    );
    let r = device_poll(&app, &code_of(&d, "device_code")).await;
    assert_eq!(r.status(), 200);
    let t: serde_json::Value = r.json().await.expect("json");
    let me = app
        .anonymous
        .with_token(Some(SecretString::from(
            t["access_token"].as_str().expect("at").to_owned(),
        )))
        .whoami()
        .await
        .expect("the CLI's token works");
    assert_eq!(me.user.name, "dana");
    app.stop().await;
}

api_tests!(device_grant_and_refresh_rotation);

backend_tests!(device_approved_in_the_browser, device_codes_expire);
