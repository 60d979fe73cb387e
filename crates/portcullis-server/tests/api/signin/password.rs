//! Password and TOTP sign-in: codes work once, bad input and indistinguishable failures,
//! throttling that slows down and never locks out.

use super::*;

async fn totp_codes_work_once(app: TestApp) {
    bootstrap_admin(&app).await;
    let _first = sign_in(&app, "root-admin", ADMIN_PW, ADMIN_SECRET, 1).await;
    let r = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "root-admin".into(),
            password: ADMIN_PW.into(),
        })
        .await
        .expect("password");
    let err = app
        .anonymous
        .signin_totp(&TotpSignInRequest {
            signin_id: r.signin_id.clone().expect("id"),
            code: code(ADMIN_SECRET, 1),
        })
        .await
        .expect_err("replayed");
    assert_eq!(err.code(), Some("code_replayed"));
    for bad in ["12a456", "1234567", ""] {
        let err = app
            .anonymous
            .signin_totp(&TotpSignInRequest {
                signin_id: r.signin_id.clone().expect("id"),
                code: bad.into(),
            })
            .await
            .expect_err("malformed");
        assert_eq!(err.code(), Some("invalid_request"), "{bad:?}");
    }
    app.stop().await;
}

async fn sign_in_bad_input_and_indistinguishable_failures(app: TestApp) {
    let admin = admin(&app).await;
    let before = admin
        .audit_events(&EventFilter {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("l")
        .events
        .len();
    for (user, pw) in [
        ("", "x"),
        (&"a".repeat(65) as &str, "x"),
        ("alice", ""),
        ("Alice Smith", "x"),
    ] {
        let err = app
            .anonymous
            .signin_password(&PasswordSignInRequest {
                username: user.into(),
                password: pw.into(),
            })
            .await
            .expect_err("bad input");
        assert_eq!(err.code(), Some("invalid_request"), "{user:?}");
    }
    let huge = "p".repeat(5000);
    let err = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "alice".into(),
            password: huge,
        })
        .await
        .expect_err("overlong");
    assert_eq!(err.code(), Some("invalid_request"));
    let after = admin
        .audit_events(&EventFilter {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("l")
        .events
        .len();
    assert_eq!(before, after, "bad input changed nothing");
    // Invalid UTF-8 in the body is refused as bad JSON (422 `invalid_json`, like every body
    // that is not the operation's JSON).
    let resp = app
        .http
        .post(format!("{}/api/v1/signin", app.base))
        .header("content-type", "application/json")
        .body(b"{\"username\": \"\xff\xfe\", \"password\": \"x\"}".to_vec())
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 422);
    // Unknown user and wrong password answer identically.
    let a = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "nobody".into(),
            password: "whatever-it-is".into(),
        })
        .await
        .expect_err("unknown");
    let b = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "root-admin".into(),
            password: "whatever-it-is".into(),
        })
        .await
        .expect_err("wrong");
    assert_eq!(format!("{a}"), format!("{b}"));
    assert_eq!(a.code(), Some("invalid_credentials"));
    let failures = admin
        .audit_events(&EventFilter {
            action: Some("signin.password".into()),
            outcome: Some("failure".into()),
            ..Default::default()
        })
        .await
        .expect("list")
        .events;
    let reasons: Vec<&str> = failures
        .iter()
        .filter_map(|e| e.details["reason"].as_str())
        .collect();
    assert_eq!(
        reasons,
        ["unknown_user", "wrong_password"],
        "the log tells them apart"
    );
    app.stop().await;
}

async fn throttling_slows_down_and_never_locks_out(app: TestApp) {
    bootstrap_admin(&app).await;
    let mut saw_429 = None;
    for _ in 0..12 {
        let resp = app
            .http
            .post(format!("{}/api/v1/signin", app.base))
            .json(&serde_json::json!({"username": "root-admin", "password": "not-the-password"}))
            .send()
            .await
            .expect("send");
        if resp.status() == 429 {
            saw_429 = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body: serde_json::Value = resp.json().await.expect("json");
            assert_eq!(body["error"]["code"], "too_many_attempts");
            break;
        }
        assert_eq!(resp.status(), 401);
    }
    let retry: i64 = saw_429.expect("throttled").parse().expect("seconds");
    assert!((1..=900).contains(&retry));
    // Even the right password waits…
    let err = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "root-admin".into(),
            password: ADMIN_PW.into(),
        })
        .await
        .expect_err("still throttled");
    assert_eq!(err.code(), Some("too_many_attempts"));
    // …but only for a while: no permanent lockout.
    tokio::time::sleep(std::time::Duration::from_secs(retry as u64 + 1)).await;
    let ok = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "root-admin".into(),
            password: ADMIN_PW.into(),
        })
        .await
        .expect("allowed again");
    assert_eq!(ok.status, "mfa_required");
    app.stop().await;
}

api_tests!(
    totp_codes_work_once,
    sign_in_bad_input_and_indistinguishable_failures,
    throttling_slows_down_and_never_locks_out,
);
