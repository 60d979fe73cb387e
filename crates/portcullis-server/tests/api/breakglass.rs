//! Break-glass accounts: split passwords, FIDO2, sign-in and alerts, drills, no per-account
//! throttling.

use super::*;

/// Creation with split custody: bad input refused with nothing created; the tenant stays in
/// setup until two accounts exist; shares rebuild a password that signs in to a full
/// Global Administrator session; every attempt (success, wrong password, failed recovery)
/// is tagged `emergency` and alerts; drills are recorded and counted apart from real use.
async fn breakglass_accounts_split_sign_in_and_alert(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    people(&admin, &["alice", "bob", "carol"]).await;
    admin
        .create_service_account(&CreateServiceAccountRequest {
            name: "nightly-job".into(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await
        .expect("sa");

    // Setup state: readyz says so, and every API answer carries the notice.
    let ready = app.anonymous.ready().await.expect("ready");
    let tenant = ready.tenant.expect("tenant");
    assert_eq!(
        (tenant.state.as_str(), tenant.breakglass_accounts),
        ("setup", 0)
    );
    let r = app
        .http
        .get(format!("{}/api/v1/me", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("me");
    let notice = r
        .headers()
        .get("portcullis-setup")
        .expect("setup header")
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(notice.contains("0 of 2 break-glass accounts"), "{notice}");

    // Bad input: each refused with a clear error, nothing created.
    let (pw, _) = split_for("bg-one", &["alice", "bob", "carol"], 2, false);
    let base = serde_json::json!({"name": "bg-one", "credential": "password", "password": pw,
        "custodians": ["alice", "bob", "carol"], "threshold": 2});
    let with = |k: &str, v: serde_json::Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    for (body, needle) in [
        (with("threshold", 4.into()), "larger than the 3 custodians"),
        (with("threshold", 1.into()), "force it"),
        (
            with("custodians", serde_json::json!(["alice", "bob", "alice"])),
            "listed twice",
        ),
        (
            with(
                "custodians",
                serde_json::json!(["alice", "mallory", "nightly-job", "zed"]),
            ),
            "mallory is not a user; nightly-job is a service account, not a person; zed is not a user",
        ),
        (
            with("custodians", serde_json::json!(["alice", "bg-one"])),
            "own custodian",
        ),
        (
            with("password", "short-but-not-100-characters-long-Aa1!".into()),
            "at least 100",
        ),
        (with("credential", "totp".into()), "password or fido2"),
        (with("key_holder", "alice".into()), "fido2 accounts"),
    ] {
        let (status, code, msg) =
            error_of(post_json(&app, Some(&token), "/api/v1/breakglass", body.clone()).await).await;
        assert!(status == 400, "{body}: {status} {code} {msg}");
        assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
    }
    assert_eq!(breakglass_list(&app, &token).await, serde_json::json!([]));
    assert!(
        admin.user("bg-one").await.is_err(),
        "no user created by a refused request"
    );
    // Not without the permission: a custodian's own session cannot create one.
    let alice = registration_or_full(&app, "alice").await;
    let r = post_json(&app, Some(&alice), "/api/v1/breakglass", base.clone()).await;
    assert_eq!(r.status(), 403);

    // The first account; threshold 1 with several custodians only when forced (and audited).
    let r = post_json(&app, Some(&token), "/api/v1/breakglass", base.clone()).await;
    assert_eq!(r.status(), 201);
    let created: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        created["account"]["custodians"],
        serde_json::json!(["alice", "bob", "carol"])
    );
    assert_eq!(created["account"]["usable"], true);
    assert_eq!(created["tenant"]["state"], "setup");
    let (pw2, shares2) = split_for("bg-two", &["alice", "bob"], 1, true);
    let r = post_json(
        &app,
        Some(&token),
        "/api/v1/breakglass",
        serde_json::json!({"name": "bg-two", "credential": "password",
        "password": pw2, "custodians": ["alice", "bob"], "threshold": 1, "force": true}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let forced = events_named(&admin, "breakglass.created").await;
    assert_eq!(forced.len(), 2);
    assert_eq!(forced[1].details["forced"], true);
    assert!(
        forced.iter().all(|e| e.details["emergency"] == true),
        "creation is tagged"
    );
    let tenant = app
        .anonymous
        .ready()
        .await
        .expect("ready")
        .tenant
        .expect("tenant");
    assert_eq!(
        (tenant.state.as_str(), tenant.breakglass_accounts),
        ("ready", 2)
    );
    tokio::time::sleep(std::time::Duration::from_secs(6)).await; // the header's cache
    let r = app
        .http
        .get(format!("{}/api/v1/me", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("me");
    assert!(
        r.headers().get("portcullis-setup").is_none(),
        "no notice once set up"
    );

    // Shares rebuild the password; it signs in to a full GA session (no second factor).
    let covered_now = async || {
        covered(
            &api_get(&app, &token, "/api/v1/alerts").await,
            "breakglass.activity",
            None,
        )
    };
    let before = covered_now().await;
    let name2 = portcullis_core::principal::PrincipalName::parse("n", "bg-two").expect("name");
    let rebuilt = bg::combine(&name2, &shares2[1..]).expect("one share is enough when forced");
    assert_eq!(rebuilt.as_str(), pw2);
    let s = breakglass_signin(&app, "bg-two", &rebuilt)
        .await
        .expect("signed in")
        .session
        .expect("session");
    assert_eq!((s.strength.as_str(), s.scope.as_str()), ("mfa", "full"));
    let bgc = app
        .anonymous
        .with_token(Some(SecretString::from(s.token.clone())));
    let who = bgc.whoami().await.expect("whoami");
    assert!(
        format!("{who:?}").contains("global-administrator"),
        "{who:?}"
    );
    bgc.users().await.expect("a GA session can act");
    // A wrong password and a failed recovery are attempts too.
    assert_eq!(
        breakglass_signin(&app, "bg-two", &pw)
            .await
            .expect_err("wrong")
            .code(),
        Some("invalid_credentials")
    );
    let r = post_json(
        &app,
        None,
        "/api/v1/breakglass/bg-two/failed-recovery",
        serde_json::json!({"reason": "corrupted_share"}),
    )
    .await;
    assert_eq!(r.status(), 202);
    let r = post_json(
        &app,
        None,
        "/api/v1/breakglass/bg-two/failed-recovery",
        serde_json::json!({"reason": "anything"}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let completed: Vec<_> = events_named(&admin, "signin.completed")
        .await
        .into_iter()
        .filter(|e| e.target == "user:bg-two")
        .collect();
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0].details["emergency"], true);
    assert_eq!(completed[0].details["reason"], "breakglass_split_password");
    let recovery = events_named(&admin, "signin.breakglass_recovery").await;
    assert_eq!(recovery.len(), 1);
    assert_eq!(
        (
            recovery[0].outcome.as_str(),
            recovery[0].details["emergency"].as_bool()
        ),
        ("failure", Some(true))
    );
    // One alert per attempt: the sign-in, the wrong password, the failed recovery (whoami
    // and the users list are reads, not events; the refused reason changed nothing), each
    // delivered at once or counted in its window's summary.
    assert_eq!(covered_now().await, before + 3);

    // Its credential does not change through the ordinary endpoints.
    let (status, code, _) = error_of(
        post_json(
            &app,
            Some(&s.token),
            "/api/v1/me/mfa/totp",
            serde_json::json!({"name": "phone"}),
        )
        .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (409, "breakglass_credential"));
    let (status, code, _) = error_of(post_json(&app, Some(&s.token), "/api/v1/me/password",
        serde_json::json!({"current_password": pw2, "new_password": "a-brand-new-password-of-mine-77"})).await).await;
    assert_eq!((status, code.as_str()), (409, "breakglass_credential"));

    // A drill: a fresh sign-in handed in; its session ends; last use stays the real one.
    let d = breakglass_signin(&app, "bg-two", &pw2)
        .await
        .expect("drill sign-in")
        .session
        .expect("session");
    let r = post_json(
        &app,
        Some(&d.token),
        "/api/v1/breakglass/drill",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let again = post_json(
        &app,
        Some(&d.token),
        "/api/v1/breakglass/drill",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(again.status(), 401, "the drill session has ended");
    let r = post_json(
        &app,
        Some(&token),
        "/api/v1/breakglass/drill",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(r.status(), 403, "only the account itself records a drill");
    let list = breakglass_list(&app, &token).await;
    let two = list
        .as_array()
        .expect("list")
        .iter()
        .find(|a| a["name"] == "bg-two")
        .expect("bg-two")
        .clone();
    assert!(two["last_drill"].is_string(), "{two}");
    assert_eq!(two["drill_overdue"], false);
    let last_use = two["last_use"].as_str().expect("last use");
    assert!(
        last_use < two["last_drill"].as_str().expect("drill"),
        "the drill is not the last use: {two}"
    );

    // At least two: disabling one or removing its role is refused (and the refusal audited).
    let (status, code, msg) = error_of(
        post_json(
            &app,
            Some(&token),
            "/api/v1/users/bg-one/disable",
            serde_json::json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (409, "breakglass_minimum"),
        "{msg}"
    );
    assert!(admin.user("bg-one").await.expect("user").enabled);
    let refused_ev = events_named(&admin, "user.disabled").await;
    assert_eq!(refused_ev.len(), 1);
    assert_eq!(
        (
            refused_ev[0].outcome.as_str(),
            refused_ev[0].details["emergency"].as_bool()
        ),
        ("failure", Some(true))
    );
    let ga = admin
        .assignments_of("user:bg-one")
        .await
        .expect("assignments");
    let ga = ga
        .iter()
        .find(|a| a.role == "global-administrator")
        .expect("GA");
    assert_eq!(
        admin
            .delete_assignment(&ga.id)
            .await
            .expect_err("refused")
            .code(),
        Some("breakglass_minimum")
    );
    // With a third, one may go; then no further.
    create_split_account(&app, &token, "bg-three", &["bob", "carol"], 2).await;
    admin
        .disable_user("bg-three")
        .await
        .expect("a third may be disabled");
    assert_eq!(
        admin
            .disable_user("bg-one")
            .await
            .expect_err("refused")
            .code(),
        Some("breakglass_minimum")
    );
    admin.enable_user("bg-three").await.expect("enable");

    // Re-split: the old password stops working, the new one works, sessions ended.
    let (pw3, _) = split_for("bg-two", &["bob", "carol"], 2, false);
    let r = post_json(
        &app,
        Some(&token),
        "/api/v1/breakglass/bg-two/rotate",
        serde_json::json!({"password": pw3, "custodians": ["bob", "carol"], "threshold": 2}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(bgc.whoami().await.is_err(), "its sessions ended");
    assert!(breakglass_signin(&app, "bg-two", &pw2).await.is_err());
    breakglass_signin(&app, "bg-two", &pw3)
        .await
        .expect("new split works");
    let list = breakglass_list(&app, &token).await;
    let two = list
        .as_array()
        .expect("list")
        .iter()
        .find(|a| a["name"] == "bg-two")
        .expect("bg-two")
        .clone();
    assert_eq!(
        (two["custodians"].clone(), two["threshold"].clone()),
        (serde_json::json!(["bob", "carol"]), 2.into())
    );
    assert!(admin.audit_verify().await.expect("verify").ok);
    app.stop().await;
}

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

/// An account never drilled within the drill age is listed by /readyz and alerted once per
/// period, not on every check.
async fn breakglass_drills_overdue_alert(backend: Backend) {
    let Some(app) = spawn_with(backend, |c| {
        c.breakglass_drill_max_age = "2s".into();
        c.breakglass_drill_alert_every = "1h".into();
    })
    .await
    else {
        return;
    };
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    people(&admin, &["alice", "bob"]).await;
    create_split_account(&app, &token, "bg-old", &["alice", "bob"], 2).await;
    eventually("the overdue drill alert", 15, async || {
        !events_named(&admin, "breakglass.drill_overdue")
            .await
            .is_empty()
    })
    .await;
    let ev = events_named(&admin, "breakglass.drill_overdue").await;
    assert_eq!(ev[0].details["accounts"], serde_json::json!(["bg-old"]));
    assert_eq!(
        alert_count(&app, &token, "breakglass.drill_overdue").await,
        1
    );
    let tenant = app
        .anonymous
        .ready()
        .await
        .expect("ready")
        .tenant
        .expect("tenant");
    assert_eq!(tenant.drills_overdue, 1);
    let ready = serde_json::to_string(&app.anonymous.ready().await.expect("ready")).expect("json");
    assert!(
        !ready.contains("bg-old"),
        "no account names for anonymous callers: {ready}"
    );
    let listed = breakglass_list(&app, &token).await;
    assert_eq!(listed[0]["drill_overdue"], true);
    // More checks pass (one a second here) without another alert within the period.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        events_named(&admin, "breakglass.drill_overdue").await.len(),
        1
    );
    app.stop().await;
}

/// A break-glass sign-in reaches every recipient of every channel: both addresses on a real
/// SMTP server, a webhook and an SMS gateway.
async fn breakglass_alert_reaches_every_channel(backend: Backend) {
    let Some((smtp_port, maildir, mut sink)) = smtp_sink() else {
        return;
    };
    // A short aggregation window: the account's creation alerts open one, and the sign-in
    // below is meant to be the first alert of the next (delivered at once, not summarised).
    let Some(app) = spawn_with(backend, |c| c.alert_aggregation_window = "2s".into()).await else {
        let _ = sink.kill();
        return;
    };
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    people(&admin, &["alice", "bob"]).await;
    let pw = create_split_account(&app, &token, "bg-alarm", &["alice", "bob"], 2).await;
    let hook: Inbox = Default::default();
    let (hook_port, _h) = receiver(hook.clone(), 0).await;
    let sms: Inbox = Default::default();
    let (sms_port, _s) = receiver(sms.clone(), 0).await;
    for body in [
        serde_json::json!({"name": "mail", "kind": "email", "smtp_url": format!("smtp://127.0.0.1:{smtp_port}"),
            "from": "portcullis@example.org", "to": ["sec1@example.org", "sec2@example.org"]}),
        serde_json::json!({"name": "hook", "kind": "webhook", "url": format!("http://127.0.0.1:{hook_port}/hook")}),
        serde_json::json!({"name": "sms", "kind": "sms", "url": format!("http://127.0.0.1:{sms_port}/send"),
            "to": ["+15550000001", "+15550000002"], "template": "{\"to\":\"{to}\",\"text\":\"{message}\"}"}),
    ] {
        assert_eq!(add_channel(&app, &token, body).await.status(), 201);
    }
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    breakglass_signin(&app, "bg-alarm", &pw)
        .await
        .expect("sign-in");
    eventually("the break-glass alert on every channel", 30, async || {
        let mails = mailbox(maildir.path());
        let mailed = ["sec1@example.org", "sec2@example.org"].iter().all(|to| {
            mails.iter().any(|m| {
                m["to"].to_string().contains(to)
                    && m["content"].as_str().unwrap_or("").contains("bg-alarm")
            })
        });
        let hooked = hook
            .lock()
            .expect("hook")
            .requests
            .iter()
            .any(|(_, _, b)| b.contains("breakglass.activity") && b.contains("bg-alarm"));
        let texted = {
            let r = sms.lock().expect("sms");
            ["+15550000001", "+15550000002"].iter().all(|n| {
                r.requests
                    .iter()
                    .any(|(_, _, b)| b.contains(n) && b.contains("bg-alarm"))
            })
        };
        mailed && hooked && texted
    })
    .await;
    let _ = sink.kill();
    app.stop().await;
}

/// Invariant 4: failures never lock a break-glass account out. Failed attempts from many
/// addresses throttle an ordinary account (per account), but the right password of a
/// break-glass account still signs in at once from a fresh address (per-IP throttling only).
async fn breakglass_accounts_are_not_throttled_per_account(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    people(&admin, &["alice", "bob", "olga"]).await;
    let pw = create_split_account(&app, &token, "bg-one", &["alice", "bob"], 2).await;
    let from = |last: u8| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, last]))
            .build()
            .expect("client")
    };
    let attempt = |last: u8, user: &'static str, password: String| {
        let base = app.base.clone();
        async move {
            from(last)
                .post(format!("{base}/api/v1/signin"))
                .json(&serde_json::json!({ "username": user, "password": password }))
                .send()
                .await
                .expect("signin")
                .status()
                .as_u16()
        }
    };
    for (i, user) in [(0u8, "olga"), (100u8, "bg-one")] {
        for n in 0..10 {
            let s = attempt(10 + i + n, user, "not-the-password-at-all".into()).await;
            assert!(s == 401 || s == 429, "{user}: {s}");
        }
    }
    assert_eq!(
        attempt(50, "olga", CUSTODIAN_PW.into()).await,
        429,
        "an ordinary account is throttled per account"
    );
    assert_eq!(
        attempt(150, "bg-one", pw.clone()).await,
        200,
        "a break-glass account is throttled per address only"
    );
    // Custodians mistyping shares again and again (reported failed recoveries) do not delay
    // the sign-in that follows from their address.
    let mut statuses = Vec::new();
    for _ in 0..25 {
        let r = from(77)
            .post(format!(
                "{}/api/v1/breakglass/bg-one/failed-recovery",
                app.base
            ))
            .json(&serde_json::json!({ "reason": "wrong_shares" }))
            .send()
            .await
            .expect("report");
        statuses.push(r.status().as_u16());
    }
    assert!(
        statuses.contains(&429),
        "reports are throttled: {statuses:?}"
    );
    assert_eq!(attempt(77, "bg-one", pw).await, 200);
    app.stop().await;
}

api_tests!(
    breakglass_accounts_are_not_throttled_per_account,
    breakglass_accounts_split_sign_in_and_alert,
    breakglass_fido2_account,
);

backend_tests!(
    breakglass_drills_overdue_alert,
    breakglass_alert_reaches_every_channel,
);
