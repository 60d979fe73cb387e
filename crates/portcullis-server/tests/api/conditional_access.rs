//! Conditional access: policies, what-if, enforcement.

use super::*;

/// Policies as data: locations and policies validated (every problem at once, nothing
/// changed); enforcement at sign-in (block, requirement, report-only recorded in the audit
/// event), at token refresh and for client credentials; what-if with an explanation per
/// policy; break-glass accounts untouched by any policy; the lockout guard refuses (a) and
/// lets the caller force only (b), audited and alerted.
async fn conditional_access_policies_and_enforcement(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let (alice, alice_secret) = mfa_user(&app, &admin, "alice", "copper-lantern-river-42").await;
    // Alice's CLI login from before any policy: its refresh is judged by the policies of now.
    let d = device_start(&app).await;
    alice
        .approve_device(&portcullis_core::api::DeviceDecisionRequest {
            user_code: code_of(&d, "user_code"),
        })
        .await
        .expect("approve");
    let r = device_poll(&app, &code_of(&d, "device_code")).await;
    assert_eq!(r.status(), 200);
    let cli_tokens: serde_json::Value = r.json().await.expect("json");
    let alice_refresh = cli_tokens["refresh_token"].as_str().expect("rt").to_owned();
    admin
        .create_user(&CreateUserRequest {
            name: "gary".into(),
            display_name: "Gary".into(),
            email: None,
            phone: None,
            guest_organisation: Some("Contoso".into()),
            privileged: false,
            password: CUSTODIAN_PW.into(),
        })
        .await
        .expect("guest");
    people(&admin, &["paul"]).await;
    admin
        .create_group(&CreateGroupRequest {
            name: "secops".into(),
            display_name: None,
            role_assignable: false,
        })
        .await
        .expect("group");
    admin
        .add_group_member(
            "secops",
            &GroupMemberRequest {
                member: "alice".into(),
            },
        )
        .await
        .expect("member");

    // Named locations: bad ones refused (every problem named), nothing added.
    for (body, needle) in [
        (
            serde_json::json!({"name": "lab", "cidrs": ["10.0.0.0/8", "10.1.0.0/16"]}),
            "overlaps",
        ),
        (
            serde_json::json!({"name": "lab", "cidrs": ["10.0.0.1/8", "300.1.1.1"]}),
            "host bits",
        ),
        (
            serde_json::json!({"name": "any", "cidrs": ["10.0.0.0/8"]}),
            "reserved",
        ),
        (
            serde_json::json!({"name": "lab", "cidrs": []}),
            "at least one",
        ),
    ] {
        let (status, _, msg) =
            error_of(post_json(&app, Some(&token), "/api/v1/ca/locations", body.clone()).await)
                .await;
        assert_eq!(status, 400, "{body}: {msg}");
        assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
    }
    assert_eq!(
        api_get(&app, &token, "/api/v1/ca/locations").await,
        serde_json::json!([])
    );
    let r = post_json(&app, Some(&token), "/api/v1/ca/locations", serde_json::json!({"name": "lab", "cidrs": ["127.0.0.0/8", "2001:db8:10::/48"], "trusted": true})).await;
    assert_eq!(r.status(), 200);

    // Policies: unknown names (all listed), a duplicated name, no conditions: refused.
    let (status, _, msg) = error_of(ca_import(&app, &token, serde_json::json!([
        {"name": "p1", "state": "enabled", "conditions": {"principals": {"include": ["user:nobody", "group:ghosts", "role:no-such-role"]}, "applications": {"include": ["client:no-client"]}, "locations": {"include": ["nowhere"]}}, "grant": {"require": "mfa"}}
    ]), false).await).await;
    assert_eq!(status, 400);
    for n in ["nobody", "ghosts", "no-such-role", "no-client", "nowhere"] {
        assert!(msg.contains(n), "{n} not in {msg}");
    }
    let p = serde_json::json!({"name": "dup", "state": "enabled", "conditions": {"principals": {"include": ["guests"]}}, "grant": {"require": "mfa"}});
    let (status, _, msg) = error_of(
        ca_import(
            &app,
            &token,
            serde_json::json!([p.clone(), p.clone()]),
            false,
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(msg.contains("dup"), "{msg}");
    let (status, _, _) = error_of(ca_import(&app, &token, serde_json::json!([{"name": "x", "state": "enabled", "grant": {"block": true}, "surprise": 1}]), false).await).await;
    assert_eq!(status, 400, "unknown field");
    assert_eq!(
        api_get(&app, &token, "/api/v1/ca/policies").await,
        serde_json::json!([])
    );

    // The guard: blocking everyone is refused, naming the policy and the administrators.
    let (status, code, msg) = error_of(ca_import(&app, &token, serde_json::json!([
        {"name": "lock-everyone", "state": "enabled", "conditions": {"principals": {"include": ["all"]}}, "grant": {"block": true}}
    ]), true).await).await;
    assert_eq!((status, code.as_str()), (409, "ca_lockout"), "{msg}");
    assert!(
        msg.contains("lock-everyone") && msg.contains("root-admin"),
        "{msg}"
    );
    assert!(!msg.contains("force"), "(a) cannot be forced: {msg}");

    // Enforced policies plus a report-only one.
    let r = ca_import(&app, &token, serde_json::json!([
        {"name": "guests-only-from-lab", "state": "enabled", "conditions": {"principals": {"include": ["guests"]}, "locations": {"include": ["any"], "exclude": ["lab"]}}, "grant": {"block": true}},
        {"name": "guests-never", "state": "enabled", "conditions": {"principals": {"include": ["user:gary"]}, "applications": {"include": ["api"]}}, "grant": {"block": true}},
        {"name": "secops-keys", "state": "enabled", "conditions": {"principals": {"include": ["group:secops"]}, "applications": {"include": ["cli"]}}, "grant": {"require": "phishing_resistant"}},
        {"name": "members-mfa", "state": "enabled", "conditions": {"principals": {"include": ["user:paul"]}}, "grant": {"require": "mfa"}},
        {"name": "watch-alice", "state": "report_only", "conditions": {"principals": {"include": ["user:alice"]}}, "grant": {"block": true}},
        {"name": "alice-hourly", "state": "enabled", "conditions": {"principals": {"include": ["user:alice"]}}, "session": {"sign_in_frequency_hours": 1}}
    ]), false).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    assert_eq!(
        alert_count(&app, &token, "conditional_access.changed").await,
        6,
        "every policy change alerts"
    );
    // Re-importing the same is a no-op.
    let same: serde_json::Value = ca_import(&app, &token, serde_json::json!([
        {"name": "members-mfa", "state": "enabled", "conditions": {"principals": {"include": ["user:paul"]}}, "grant": {"require": "mfa"}}
    ]), false).await.json().await.expect("json");
    assert_eq!(same["unchanged"], serde_json::json!(["members-mfa"]));

    // A block: gary is refused, the refusal audited with the decision.
    let e = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "gary".into(),
            password: CUSTODIAN_PW.into(),
        })
        .await
        .expect_err("blocked");
    assert_eq!(e.code(), Some("ca_blocked"), "{e}");
    assert!(e.to_string().contains("guests-never"), "{e}");
    let ev = events_named(&admin, "signin.password").await;
    let refused = last_event(&ev, "user:gary");
    assert_eq!(refused.outcome.as_str(), "failure");
    assert_eq!(refused.details["conditional_access"]["outcome"], "block");
    assert_eq!(
        refused.details["conditional_access"]["applied"],
        serde_json::json!(["guests-never"])
    );
    // The sign-in page opens an API session too: saying it returns to the device page (the
    // CLI) does not escape a policy on the API.
    let mut b = Browser::new(&app.base);
    let html = b
        .get("/signin?return_to=%2Fdevice")
        .await
        .text()
        .await
        .expect("html");
    let csrf = hidden(&html, "csrf");
    let r = b
        .post(
            "/signin",
            &[
                ("csrf", csrf.as_str()),
                ("return_to", "/device"),
                ("username", "gary"),
                ("password", CUSTODIAN_PW),
            ],
        )
        .await;
    assert_eq!(r.status(), 403, "blocked as an API sign-in");
    assert!(
        !b.cookies.keys().any(|k| k.contains("session")),
        "{:?}",
        b.cookies
    );
    // A requirement the password alone does not meet, no factor registered: registration only.
    let s = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "paul".into(),
            password: CUSTODIAN_PW.into(),
        })
        .await
        .expect("signed in");
    assert_eq!(s.session.expect("session").scope, "registration_only");
    // Report-only: alice signs in; what the policy would have done is in the event.
    // (alice-hourly also applies: its sign-in frequency bounds the session it opens.)
    let first = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "alice".into(),
            password: "copper-lantern-river-42".into(),
        })
        .await
        .expect("password");
    let s = app
        .anonymous
        .signin_totp(&TotpSignInRequest {
            signin_id: first.signin_id.expect("id"),
            code: crate::code(&alice_secret, 1),
        })
        .await
        .expect("totp")
        .session
        .expect("session");
    let ends = time::OffsetDateTime::parse(
        &s.expires_at,
        &time::format_description::well_known::Rfc3339,
    )
    .expect("time");
    assert!(
        ends <= time::OffsetDateTime::now_utc() + time::Duration::minutes(61),
        "bounded by the policy: {}",
        s.expires_at
    );
    app.anonymous
        .with_token(Some(SecretString::from(s.token)))
        .whoami()
        .await
        .expect("the bounded session works");
    let ev = events_named(&admin, "signin.completed").await;
    let ok = last_event(&ev, "user:alice");
    assert_eq!(ok.details["conditional_access"]["outcome"], "allow");
    assert_eq!(
        ok.details["conditional_access"]["report_only"][0]["policy"],
        "watch-alice"
    );

    // What-if: from the lab and from outside, with every policy explained.
    let inside = whatif(
        &app,
        &token,
        serde_json::json!({"user": "gary", "ip": "127.0.0.1", "app": "cli"}),
    )
    .await;
    assert_eq!(inside["outcome"], "allow", "{inside}");
    assert_eq!(
        inside["explanation"].as_array().expect("explanation").len(),
        6
    );
    let outside = whatif(
        &app,
        &token,
        serde_json::json!({"user": "gary", "ip": "2001:db8:99::1", "app": "cli"}),
    )
    .await;
    assert_eq!(outside["outcome"], "block", "{outside}");
    assert_eq!(
        outside["policies"],
        serde_json::json!(["guests-only-from-lab"])
    );
    let mapped = whatif(
        &app,
        &token,
        serde_json::json!({"user": "gary", "ip": "::ffff:127.0.0.9", "app": "cli"}),
    )
    .await;
    assert_eq!(
        mapped["outcome"], "allow",
        "an IPv4-mapped address is judged as IPv4: {mapped}"
    );
    let keys = whatif(
        &app,
        &token,
        serde_json::json!({"user": "alice", "ip": "127.0.0.1", "app": "cli", "strength": "mfa"}),
    )
    .await;
    assert_eq!(
        (keys["outcome"].as_str(), keys["strength"].as_str()),
        (Some("require"), Some("phishing_resistant"))
    );
    let (status, _, _) = error_of(
        post_json(
            &app,
            Some(&token),
            "/api/v1/ca/whatif",
            serde_json::json!({"user": "alice", "ip": "not-an-ip"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    for bad in [
        serde_json::json!({"user": "alice", "ip": "127.0.0.1", "hours_since_sign_in": u32::MAX}),
        serde_json::json!({"user": "Not A Name!", "ip": "127.0.0.1"}),
    ] {
        let r = post_json(&app, Some(&token), "/api/v1/ca/whatif", bad.clone()).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    // Names are unique ignoring case: re-importing in another case replaces, never adds.
    for name in ["Case-Test", "case-test"] {
        let r = ca_import(&app, &token, serde_json::json!([
            {"name": name, "state": "disabled", "conditions": {"principals": {"include": ["guests"]}}, "grant": {"block": true}}
        ]), false).await;
        assert_eq!(r.status(), 200);
    }
    let names: Vec<String> = api_get(&app, &token, "/api/v1/ca/policies")
        .await
        .as_array()
        .expect("list")
        .iter()
        .map(|p| p["name"].as_str().expect("name").to_owned())
        .filter(|n| n.eq_ignore_ascii_case("case-test"))
        .collect();
    assert_eq!(names, ["case-test"]);
    let r = app
        .http
        .delete(format!("{}/api/v1/ca/policies/case-test", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);

    // A location in use cannot be deleted.
    let r = app
        .http
        .delete(format!("{}/api/v1/ca/locations/lab", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    let (status, _, msg) = error_of(r).await;
    assert_eq!(status, 409);
    assert!(msg.contains("guests-only-from-lab"), "{msg}");

    // At token issuance and refresh: secops needs security keys on the CLI now.
    let r = refresh_with(&app, "portcullis-cli", &alice_refresh).await;
    let (status, body) = (
        r.status().as_u16(),
        r.json::<serde_json::Value>().await.expect("json"),
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or("")
            .contains("secops-keys"),
        "{body}"
    );
    let refused = events_named(&admin, "token.refresh").await;
    assert_eq!(
        last_event(&refused, "user:alice").details["conditional_access"]["outcome"],
        "require"
    );
    let d = device_start(&app).await;
    alice
        .approve_device(&portcullis_core::api::DeviceDecisionRequest {
            user_code: code_of(&d, "user_code"),
        })
        .await
        .expect("approve");
    oauth_error(
        device_poll(&app, &code_of(&d, "device_code")).await,
        400,
        "invalid_grant",
    )
    .await;

    // Client credentials: a service account outside its allowed place is refused.
    admin
        .create_service_account(&CreateServiceAccountRequest {
            name: "etl".into(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await
        .expect("sa");
    let secret = admin
        .add_client_secret("etl")
        .await
        .expect("secret")
        .client_secret;
    access_token(&app, "etl", &secret).await;
    let r = ca_import(&app, &token, serde_json::json!([
        {"name": "daemons-outside", "state": "enabled", "conditions": {"principals": {"include": ["service_accounts"]}, "locations": {"include": ["lab"]}}, "grant": {"block": true}}
    ]), false).await;
    assert_eq!(r.status(), 200);
    let r = token_request(
        &app,
        &[("grant_type", "client_credentials")],
        Some(("etl", &secret)),
    )
    .await;
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"], "unauthorized_client");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or("")
            .contains("daemons-outside"),
        "{body}"
    );

    // Break-glass: no policy applies, however it is written.
    people(&admin, &["cara", "dan"]).await;
    let pw = create_split_account(&app, &token, "bg-one", &["cara", "dan"], 2).await;
    // Including one by name is refused as misleading (it could never apply); excluding is fine.
    let (status, _, msg) = error_of(ca_import(&app, &token, serde_json::json!([
        {"name": "no-bg", "state": "enabled", "conditions": {"principals": {"include": ["user:bg-one"]}}, "grant": {"block": true}}
    ]), false).await).await;
    assert_eq!(status, 400);
    assert!(msg.contains("bg-one is a break-glass account"), "{msg}");
    // A policy that blocks every member but the administrator: the break-glass account (a
    // member) still signs in, because it is never evaluated.
    let r = ca_import(&app, &token, serde_json::json!([
        {"name": "members-out", "state": "enabled", "conditions": {"principals": {"include": ["members"], "exclude": ["user:root-admin", "user:bg-one"]}}, "grant": {"block": true}},
        {"name": "members-out-2", "state": "enabled", "conditions": {"principals": {"include": ["members"], "exclude": ["user:root-admin"]}}, "grant": {"block": true}}
    ]), false).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let s = breakglass_signin(&app, "bg-one", &pw)
        .await
        .expect("break-glass signs in");
    assert_eq!(s.status, "signed_in");
    let e = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "cara".into(),
            password: CUSTODIAN_PW.into(),
        })
        .await
        .expect_err("a member is blocked");
    assert_eq!(e.code(), Some("ca_blocked"));
    let w = whatif(
        &app,
        &token,
        serde_json::json!({"user": "bg-one", "ip": "203.0.113.7"}),
    )
    .await;
    assert_eq!(
        (w["outcome"].as_str(), w["break_glass"].as_bool()),
        (Some("allow"), Some(true)),
        "{w}"
    );
    for name in ["members-out", "members-out-2"] {
        let r = app
            .http
            .delete(format!("{}/api/v1/ca/policies/{name}", app.base))
            .bearer_auth(&token)
            .send()
            .await
            .expect("delete");
        assert_eq!(r.status(), 204);
    }

    // (b): blocking the caller while another GA remains: refused unless forced; forced is
    // audited and alerts.
    let (_gina, _) = mfa_user(&app, &admin, "gina", "copper-lantern-river-42").await;
    admin
        .create_assignment(&CreateAssignmentRequest {
            principal: "user:gina".into(),
            role: "global-administrator".into(),
            scope: None,
            kind: Some("eligible".into()),
            duration_seconds: None,
            ends_at: None,
        })
        .await
        .expect("GA eligible");
    let me_out = serde_json::json!([{"name": "not-root", "state": "enabled", "conditions": {"principals": {"include": ["user:root-admin"]}}, "grant": {"block": true}}]);
    let (status, code, msg) = error_of(ca_import(&app, &token, me_out.clone(), false).await).await;
    assert_eq!((status, code.as_str()), (409, "ca_lockout"));
    assert!(
        msg.contains("root-admin") && msg.contains("not-root") && msg.contains("force"),
        "{msg}"
    );
    let forced_before = alert_count(&app, &token, "conditional_access.changed").await;
    let r = ca_import(&app, &token, me_out, true).await;
    assert_eq!(r.status(), 200);
    assert!(
        !events_named(&admin, "ca.policy.lockout_forced")
            .await
            .is_empty()
    );
    assert!(alert_count(&app, &token, "conditional_access.changed").await > forced_before);
    assert!(admin.audit_verify().await.expect("verify").ok);
    app.stop().await;
}

api_tests!(conditional_access_policies_and_enforcement);
