//! Signing in: passwords, TOTP, throttling, WebAuthn passkeys and security keys, ceremony
//! expiry, the sign-in pages and a real browser.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webauthn_ceremonies_expire_sqlite() {
    webauthn_ceremonies_expire(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webauthn_ceremonies_expire_postgres() {
    webauthn_ceremonies_expire(Backend::Postgres).await;
}

/// An account whose only second factor is a security key signs in through the pages: the page
/// carries the WebAuthn challenge and loads the server's own script (no inline script); a
/// standard software authenticator answers; a forged answer is refused with a fresh challenge;
/// the tokens say `phishing_resistant`.
async fn security_key_on_the_sign_in_page(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let pw = "harbour-quartz-velvet-64";
    create_privileged(&admin, "kai", pw).await;
    let reg = registration_session(&app, "kai", pw).await;
    let mut key = SoftPasskey::new(true);
    register(&reg, &mut key, "yubikey").await;
    let redirect = "http://127.0.0.1:9/cb";
    let (id, sec) = confidential_client(&app, &token, "Vault UI", redirect).await;

    let js = app
        .http
        .get(format!("{}/assets/webauthn.js", app.base))
        .send()
        .await
        .expect("js");
    assert_eq!(js.status(), 200);
    assert!(
        js.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/javascript")
    );
    assert!(
        js.text()
            .await
            .expect("js")
            .contains("navigator.credentials.get")
    );

    let mut b = Browser::new(&app.base);
    let (u, verifier) = authorize_url(&app.base, &id, redirect, &[]);
    let to_signin = location(&b.get(&u).await);
    let page = b.get(&to_signin).await.text().await.expect("html");
    let csrf = hidden(&page, "csrf");
    let return_to = hidden(&page, "return_to");
    let r = b
        .post(
            "/signin",
            &[
                ("csrf", &csrf),
                ("return_to", &return_to),
                ("username", "kai"),
                ("password", pw),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    let html = r.text().await.expect("html");
    assert!(
        html.contains("<script src=\"/assets/webauthn.js\""),
        "{html}"
    );
    assert!(
        !html.contains("name=\"code\""),
        "no code form without a TOTP factor"
    );
    let challenge = |html: &str| WebauthnChallenge {
        ceremony_id: hidden(html, "ceremony_id"),
        options: serde_json::from_str(&hidden(html, "options")).expect("options JSON"),
    };
    let post_key = |b: &mut Browser, html: &str, cred: serde_json::Value| {
        let form = [
            ("csrf", csrf.clone()),
            ("return_to", return_to.clone()),
            ("signin_id", hidden(html, "signin_id")),
            ("ceremony_id", hidden(html, "ceremony_id")),
            ("credential", cred.to_string()),
        ];
        let http = b.http.clone();
        let url = b.url("/signin/webauthn");
        let cookie = b.cookie_header();
        async move {
            http.post(url)
                .header("cookie", cookie)
                .form(&form)
                .send()
                .await
                .expect("post")
        }
    };
    // A forged assertion: refused, and the page offers a fresh challenge.
    let forged = tamper(answer(&mut key, &challenge(&html), origin()), "signature");
    let r = post_key(&mut b, &html, forged).await;
    assert_eq!(r.status(), 401);
    let html2 = r.text().await.expect("html");
    assert_ne!(hidden(&html2, "ceremony_id"), hidden(&html, "ceremony_id"));
    // The real one signs in.
    let good = answer(&mut key, &challenge(&html2), origin());
    let r = post_key(&mut b, &html2, good).await;
    b.keep(&r);
    assert_eq!(location(&r), return_to);
    let page = b.get(&return_to).await;
    let to = consent(&mut b, page, "allow").await;
    let code = query_param(&to, "code").expect("code");
    let r = exchange(&app, (&id, Some(&sec)), &code, redirect, Some(&verifier)).await;
    assert_eq!(r.status(), 200);
    let t: serde_json::Value = r.json().await.expect("json");
    let id_token = t["id_token"].as_str().expect("id token");
    let payload = id_token.split('.').nth(1).expect("payload");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("b64"),
    )
    .expect("json");
    assert_eq!(claims["acr"], "phishing_resistant");
    assert_eq!(claims["nonce"], "n-1");
    app.stop().await;
}

/// A real browser signs in to a relying party with a security key: Chromium runs the page's
/// own webauthn.js under the pages' CSP (no inline script), keeps the strict cookies, passes
/// the CSRF checks (its real Origin and Sec-Fetch-Site headers), and lands on the client's
/// redirect URI with a code that exchanges for tokens of strength phishing_resistant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_browser_signs_in_with_a_security_key() {
    let Some((node_path, chromium)) = browser_tools() else {
        return;
    };
    let app = spawn_at_localhost(Backend::Sqlite).await.expect("app");
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let pw = "lantern-cobalt-meadow-52";
    create_privileged(&admin, "lee", pw).await;
    let reg = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "lee".into(),
            password: pw.into(),
        })
        .await
        .expect("password");
    let reg_token = reg.session.expect("registration session").token;
    let redirect = "http://127.0.0.1:9/cb";
    let (id, sec) = confidential_client(&app, &token, "Browser RP", redirect).await;
    let issuer = app.public_url.clone();
    let (url, verifier) = authorize_url(&issuer, &id, redirect, &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/browser_flow.js");
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        tokio::process::Command::new("node")
            .arg(script)
            .env("NODE_PATH", &node_path)
            .env("CHROMIUM", &chromium)
            .env("BASE", &issuer)
            .env("REG_TOKEN", &reg_token)
            .env("USERNAME", "lee")
            .env("PASSWORD", pw)
            .env("AUTHORIZE_URL", &url)
            .env("REDIRECT_URI", redirect)
            .output(),
    )
    .await
    .expect("the browser finished in time")
    .expect("node runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value =
        serde_json::from_slice(out.stdout.trim_ascii()).expect("one JSON line");
    let back = line["redirect"].as_str().expect("redirect");
    assert_eq!(query_param(back, "state").as_deref(), Some("s-1"));
    let code = query_param(back, "code").expect("code");
    let r = exchange(&app, (&id, Some(&sec)), &code, redirect, Some(&verifier)).await;
    assert_eq!(r.status(), 200);
    let t: serde_json::Value = r.json().await.expect("json");
    let payload = t["id_token"]
        .as_str()
        .expect("id token")
        .split('.')
        .nth(1)
        .expect("payload")
        .to_owned();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("b64"),
    )
    .expect("json");
    assert_eq!(claims["acr"], "phishing_resistant");
    app.stop().await;
}

api_tests!(
    totp_codes_work_once,
    sign_in_bad_input_and_indistinguishable_failures,
    throttling_slows_down_and_never_locks_out,
    webauthn_passkeys_sign_in_and_refuse_forgeries,
    security_key_on_the_sign_in_page,
);
