//! Break-glass accounts with split custody: creation, shares rebuilding the password, sign-in
//! to a full Global Administrator session, alerts on every attempt, drills counted apart.

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

api_tests!(breakglass_accounts_split_sign_in_and_alert);
