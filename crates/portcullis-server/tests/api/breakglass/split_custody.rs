//! Break-glass accounts with split custody: creation, shares rebuilding the password, sign-in
//! to a full Global Administrator session, alerts on every attempt, drills counted apart.

use super::*;

/// The admin's token and client, with the custodians alice, bob and carol.
async fn custodians(app: &TestApp) -> (String, Client) {
    let token = admin_token(app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    people(&admin, &["alice", "bob", "carol"]).await;
    (token, admin)
}

/// The creation request for `bg-one`: alice, bob and carol, two of them needed.
fn bg_one_body() -> serde_json::Value {
    let (pw, _) = split_for("bg-one", &["alice", "bob", "carol"], 2, false);
    serde_json::json!({"name": "bg-one", "credential": "password", "password": pw,
        "custodians": ["alice", "bob", "carol"], "threshold": 2})
}

/// Creates `bg-two` with threshold 1 over alice and bob (forced); its password and shares.
async fn create_forced_bg_two(app: &TestApp, token: &str) -> (String, Vec<bg::Share>) {
    let (pw2, shares2) = split_for("bg-two", &["alice", "bob"], 1, true);
    let r = post_json(
        app,
        Some(token),
        "/api/v1/breakglass",
        serde_json::json!({"name": "bg-two", "credential": "password",
        "password": pw2, "custodians": ["alice", "bob"], "threshold": 1, "force": true}),
    )
    .await;
    assert_eq!(r.status(), 201);
    (pw2, shares2)
}

/// `bg-two` as the list shows it.
async fn listed_bg_two(app: &TestApp, token: &str) -> serde_json::Value {
    let list = breakglass_list(app, token).await;
    list.as_array()
        .expect("list")
        .iter()
        .find(|a| a["name"] == "bg-two")
        .expect("bg-two")
        .clone()
}

/// The `portcullis-setup` notice on an API answer, if any.
async fn setup_notice(app: &TestApp, token: &str) -> Option<String> {
    let r = app
        .http
        .get(format!("{}/api/v1/me", app.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("me");
    let h = r.headers().get("portcullis-setup")?;
    Some(h.to_str().expect("ascii").to_owned())
}

/// Each kind of bad creation input is refused with a clear 400 error, and nothing is created.
async fn breakglass_create_refuses_bad_input_creating_nothing(app: TestApp) {
    let (token, admin) = custodians(&app).await;
    admin
        .create_service_account(&CreateServiceAccountRequest {
            name: "nightly-job".into(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await
        .expect("sa");
    let base = bg_one_body();
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
    app.stop().await;
}

/// Creating a break-glass account needs the permission: a custodian's own session is refused.
async fn breakglass_create_refused_without_permission(app: TestApp) {
    let (token, _admin) = custodians(&app).await;
    let alice = registration_or_full(&app, "alice").await;
    let r = post_json(&app, Some(&alice), "/api/v1/breakglass", bg_one_body()).await;
    assert_eq!(r.status(), 403);
    assert_eq!(breakglass_list(&app, &token).await, serde_json::json!([]));
    app.stop().await;
}

/// A created account is returned with its custodians and usable; threshold 1 with several
/// custodians is accepted only when forced, and every creation is audited as an emergency.
async fn breakglass_create_returns_account_and_audits_forcing(app: TestApp) {
    let (token, admin) = custodians(&app).await;
    let r = post_json(&app, Some(&token), "/api/v1/breakglass", bg_one_body()).await;
    assert_eq!(r.status(), 201);
    let created: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        created["account"]["custodians"],
        serde_json::json!(["alice", "bob", "carol"])
    );
    assert_eq!(created["account"]["usable"], true);
    assert_eq!(created["tenant"]["state"], "setup");
    create_forced_bg_two(&app, &token).await;
    let forced = events_named(&admin, "breakglass.created").await;
    assert_eq!(forced.len(), 2);
    assert_eq!(forced[1].details["forced"], true);
    assert!(
        forced.iter().all(|e| e.details["emergency"] == true),
        "creation is tagged"
    );
    app.stop().await;
}

/// The tenant stays in setup (readyz says so, every API answer carries the notice) until two
/// break-glass accounts exist; then it is ready and the notice goes.
async fn breakglass_tenant_in_setup_until_two_accounts(app: TestApp) {
    let (token, _admin) = custodians(&app).await;
    let ready = app.anonymous.ready().await.expect("ready");
    let tenant = ready.tenant.expect("tenant");
    assert_eq!(
        (tenant.state.as_str(), tenant.breakglass_accounts),
        ("setup", 0)
    );
    let notice = setup_notice(&app, &token).await.expect("setup header");
    assert!(notice.contains("0 of 2 break-glass accounts"), "{notice}");
    create_split_account(&app, &token, "bg-one", &["alice", "bob", "carol"], 2).await;
    create_forced_bg_two(&app, &token).await;
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
    assert!(
        setup_notice(&app, &token).await.is_none(),
        "no notice once set up"
    );
    app.stop().await;
}

/// Shares rebuild the password (one is enough when forced); it signs in to a full Global
/// Administrator session with no second factor, which can act.
async fn breakglass_shares_rebuild_password_for_full_ga_session(app: TestApp) {
    let (token, _admin) = custodians(&app).await;
    let (pw2, shares2) = create_forced_bg_two(&app, &token).await;
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
    app.stop().await;
}

/// Every attempt (the sign-in, a wrong password, a failed recovery) is audited as an
/// emergency and alerts once; reads and a refused recovery reason do not.
async fn breakglass_every_attempt_is_tagged_and_alerts(app: TestApp) {
    let (token, admin) = custodians(&app).await;
    let pw = create_split_account(&app, &token, "bg-one", &["alice", "bob", "carol"], 2).await;
    let (pw2, _) = create_forced_bg_two(&app, &token).await;
    let covered_now = async || {
        let alerts = api_get(&app, &token, "/api/v1/alerts").await;
        covered(&alerts, "breakglass.activity", None)
    };
    let before = covered_now().await;
    let s = breakglass_signin(&app, "bg-two", &pw2)
        .await
        .expect("signed in")
        .session
        .expect("session");
    let bgc = app.anonymous.with_token(Some(SecretString::from(s.token)));
    bgc.whoami().await.expect("whoami");
    bgc.users().await.expect("a GA session can act");
    let wrong = breakglass_signin(&app, "bg-two", &pw).await;
    assert_eq!(
        wrong.expect_err("wrong").code(),
        Some("invalid_credentials")
    );
    let recover = async |reason: &str| {
        let body = serde_json::json!({ "reason": reason });
        let path = "/api/v1/breakglass/bg-two/failed-recovery";
        post_json(&app, None, path, body).await.status()
    };
    assert_eq!(recover("corrupted_share").await, 202);
    assert_eq!(recover("anything").await, 400);
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
    // One alert per attempt, each delivered at once or counted in its window's summary.
    assert_eq!(covered_now().await, before + 3);
    app.stop().await;
}

/// A break-glass credential does not change through the ordinary endpoints (TOTP enrolment,
/// password change).
async fn breakglass_credential_fixed_against_ordinary_endpoints(app: TestApp) {
    let (token, _admin) = custodians(&app).await;
    let (pw2, _) = create_forced_bg_two(&app, &token).await;
    let s = breakglass_signin(&app, "bg-two", &pw2)
        .await
        .expect("signed in")
        .session
        .expect("session");
    let totp = serde_json::json!({"name": "phone"});
    let r = post_json(&app, Some(&s.token), "/api/v1/me/mfa/totp", totp).await;
    let (status, code, _) = error_of(r).await;
    assert_eq!((status, code.as_str()), (409, "breakglass_credential"));
    let (status, code, _) = error_of(post_json(&app, Some(&s.token), "/api/v1/me/password",
        serde_json::json!({"current_password": pw2, "new_password": "a-brand-new-password-of-mine-77"})).await).await;
    assert_eq!((status, code.as_str()), (409, "breakglass_credential"));
    app.stop().await;
}

/// A drill is a fresh sign-in handed in by the account itself: its session ends, and it is
/// recorded apart, leaving the last use the real one.
async fn breakglass_drill_ends_session_and_is_not_last_use(app: TestApp) {
    let (token, _admin) = custodians(&app).await;
    let (pw2, _) = create_forced_bg_two(&app, &token).await;
    breakglass_signin(&app, "bg-two", &pw2)
        .await
        .expect("real sign-in")
        .session
        .expect("session");
    let d = breakglass_signin(&app, "bg-two", &pw2)
        .await
        .expect("drill sign-in")
        .session
        .expect("session");
    let drill = async |t: &str| {
        let path = "/api/v1/breakglass/drill";
        post_json(&app, Some(t), path, serde_json::json!({}))
            .await
            .status()
    };
    assert_eq!(drill(&d.token).await, 200);
    assert_eq!(drill(&d.token).await, 401, "the drill session has ended");
    assert_eq!(
        drill(&token).await,
        403,
        "only the account itself records a drill"
    );
    let two = listed_bg_two(&app, &token).await;
    assert!(two["last_drill"].is_string(), "{two}");
    assert_eq!(two["drill_overdue"], false);
    let last_use = two["last_use"].as_str().expect("last use");
    assert!(
        last_use < two["last_drill"].as_str().expect("drill"),
        "the drill is not the last use: {two}"
    );
    app.stop().await;
}

/// At least two break-glass accounts stay: disabling one or removing its role is refused (and
/// the refusal audited as an emergency); with a third, one may go, then no further.
async fn breakglass_minimum_of_two_is_kept(app: TestApp) {
    let (token, admin) = custodians(&app).await;
    create_split_account(&app, &token, "bg-one", &["alice", "bob", "carol"], 2).await;
    create_forced_bg_two(&app, &token).await;
    let disable = "/api/v1/users/bg-one/disable";
    let r = post_json(&app, Some(&token), disable, serde_json::json!({})).await;
    let (status, code, msg) = error_of(r).await;
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
    let refused = admin.delete_assignment(&ga.id).await.expect_err("refused");
    assert_eq!(refused.code(), Some("breakglass_minimum"));
    // With a third, one may go; then no further.
    create_split_account(&app, &token, "bg-three", &["bob", "carol"], 2).await;
    admin
        .disable_user("bg-three")
        .await
        .expect("a third may be disabled");
    let refused = admin.disable_user("bg-one").await.expect_err("refused");
    assert_eq!(refused.code(), Some("breakglass_minimum"));
    admin.enable_user("bg-three").await.expect("enable");
    app.stop().await;
}

/// Re-splitting replaces the password and custodians: the old password stops working, the new
/// one works, and the account's sessions end; the audit chain still verifies.
async fn breakglass_resplit_replaces_password_and_ends_sessions(app: TestApp) {
    let (token, admin) = custodians(&app).await;
    create_split_account(&app, &token, "bg-one", &["alice", "bob", "carol"], 2).await;
    let (pw2, _) = create_forced_bg_two(&app, &token).await;
    let s = breakglass_signin(&app, "bg-two", &pw2)
        .await
        .expect("signed in")
        .session
        .expect("session");
    let bgc = app.anonymous.with_token(Some(SecretString::from(s.token)));
    bgc.whoami().await.expect("whoami before the re-split");
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
    let two = listed_bg_two(&app, &token).await;
    assert_eq!(
        (two["custodians"].clone(), two["threshold"].clone()),
        (serde_json::json!(["bob", "carol"]), 2.into())
    );
    assert!(admin.audit_verify().await.expect("verify").ok);
    app.stop().await;
}

api_tests!(
    breakglass_create_refuses_bad_input_creating_nothing,
    breakglass_create_refused_without_permission,
    breakglass_create_returns_account_and_audits_forcing,
    breakglass_tenant_in_setup_until_two_accounts,
    breakglass_shares_rebuild_password_for_full_ga_session,
    breakglass_every_attempt_is_tagged_and_alerts,
    breakglass_credential_fixed_against_ordinary_endpoints,
    breakglass_drill_ends_session_and_is_not_last_use,
    breakglass_minimum_of_two_is_kept,
    breakglass_resplit_replaces_password_and_ends_sessions,
);
