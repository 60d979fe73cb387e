//! Conditional access under the privilege model (issue 13): scope is part of a role (rule 10,
//! finding 8), exclusion groups are role-assignable (rule 4, finding 7), the device flow can
//! be named (rule 8), and an OpenID Connect application is judged by the person's address,
//! not the relying party's (finding 9).

use super::*;

fn assignment(
    principal: &str,
    role: &str,
    scope: Option<&str>,
    kind: &str,
) -> CreateAssignmentRequest {
    CreateAssignmentRequest {
        principal: principal.into(),
        role: role.into(),
        scope: scope.map(str::to_owned),
        kind: Some(kind.into()),
        duration_seconds: None,
        ends_at: None,
    }
}

/// Finding 8: a Global Administrator eligible only at `/targets/lab` is not a Global
/// Administrator of the tenant, so it does not keep a policy that blocks every tenant-wide
/// Global Administrator from being refused — not even with `force` (only "you would lock
/// yourself out" can be forced). Before the fix the guard counted him, judged that he could
/// still sign in, and let the forced import through.
async fn ca_guard_does_not_count_a_global_administrator_held_at_a_target(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let _ = mfa_user(&app, &admin, "bob", "copper-lantern-river-42").await;
    admin
        .create_assignment(&assignment(
            "user:bob",
            "global-administrator",
            Some("/targets/lab"),
            "eligible",
        ))
        .await
        .expect("GA at the lab target");

    let everyone_but_bob = serde_json::json!([{"name": "everyone-but-bob", "state": "enabled",
        "conditions": {"principals": {"include": ["all"], "exclude": ["user:bob"]}},
        "grant": {"block": true}}]);
    let (status, code, msg) = error_of(ca_import(&app, &token, everyone_but_bob, true).await).await;
    assert_eq!((status, code.as_str()), (409, "ca_lockout"), "{msg}");
    assert!(
        msg.contains("no Global Administrator could sign in")
            && msg.contains("(affected: root-admin)")
            && msg.contains("everyone-but-bob"),
        "{msg}"
    );
    assert!(!msg.contains("force"), "(a) cannot be forced: {msg}");
    assert_eq!(
        api_get(&app, &token, "/api/v1/ca/policies").await,
        serde_json::json!([]),
        "nothing stored"
    );

    // `role:global-administrator` means the tenant's: what-if shows it does not cover bob.
    let r = ca_import(
        &app,
        &token,
        serde_json::json!([{"name": "ga-watch", "state": "report_only",
        "conditions": {"principals": {"include": ["role:global-administrator"]}},
        "grant": {"block": true}}]),
        false,
    )
    .await;
    assert_eq!(r.status(), 200);
    let bob = whatif(
        &app,
        &token,
        serde_json::json!({"user": "bob", "ip": "192.0.2.1"}),
    )
    .await;
    assert_eq!(bob["explanation"][0]["applies"], false, "{bob}");
    assert_eq!(bob["explanation"][0]["condition"], "principals", "{bob}");
    let root = whatif(
        &app,
        &token,
        serde_json::json!({"user": "root-admin", "ip": "192.0.2.1"}),
    )
    .await;
    assert_eq!(root["explanation"][0]["applies"], true, "{root}");
    app.stop().await;
}

/// Finding 7 / rule 4: an import that excludes an ordinary group (which Helpdesk manages) is
/// refused with the reason, a role-assignable one is accepted. A policy stored before the rule
/// (simulated by rewriting the stored row, then restarting) fails closed: the ordinary group's
/// exclusion does not apply at sign-in, what-if and the policy list say why, other changes
/// still go through, and re-importing it as it is is refused.
async fn ca_exclusion_groups_must_be_role_assignable(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    people(&admin, &["hana"]).await;
    for (name, role_assignable) in [("helpers", false), ("approvers", true)] {
        admin
            .create_group(&CreateGroupRequest {
                name: name.into(),
                display_name: None,
                role_assignable,
            })
            .await
            .expect("group");
    }
    admin
        .add_group_member(
            "helpers",
            &GroupMemberRequest {
                member: "hana".into(),
            },
        )
        .await
        .expect("member");
    let policy = |group: &str| {
        serde_json::json!({"name": "hana-out", "state": "enabled",
            "conditions": {"principals": {"include": ["user:hana"], "exclude": [format!("group:{group}")]}},
            "grant": {"block": true}})
    };
    let (status, _, msg) =
        error_of(ca_import(&app, &token, serde_json::json!([policy("helpers")]), false).await)
            .await;
    assert_eq!(status, 400, "{msg}");
    assert!(
        msg.contains("principals.exclude: group \"helpers\" is not role-assignable"),
        "{msg}"
    );
    assert_eq!(
        api_get(&app, &token, "/api/v1/ca/policies").await,
        serde_json::json!([])
    );
    let r = ca_import(
        &app,
        &token,
        serde_json::json!([policy("approvers")]),
        false,
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());

    // The same policy as an older server would have stored it: excluding `helpers`.
    let (dir, config, bootstrap) = app.stop().await;
    portcullis_store::testing::exec_raw(
        &config.database_url(),
        "UPDATE ca_policies SET spec = REPLACE(spec, 'group:approvers', 'group:helpers') \
         WHERE name = 'hana-out'",
    )
    .await;
    let app = start(config, dir, Some(bootstrap)).await;

    // Fails closed: hana, a member of `helpers`, is blocked all the same.
    let e = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "hana".into(),
            password: CUSTODIAN_PW.into(),
        })
        .await
        .expect_err("blocked");
    assert_eq!(e.code(), Some("ca_blocked"), "{e}");
    let w = whatif(
        &app,
        &token,
        serde_json::json!({"user": "hana", "ip": "192.0.2.1"}),
    )
    .await;
    assert_eq!(w["outcome"], "block", "{w}");
    let e = &w["explanation"][0];
    assert_eq!(
        e["ignored_exclusions"],
        serde_json::json!(["group:helpers"]),
        "{w}"
    );
    assert!(
        e["reason"]
            .as_str()
            .unwrap_or("")
            .contains("not a role-assignable group"),
        "{w}"
    );
    let list = api_get(&app, &token, "/api/v1/ca/policies").await;
    let warnings = list[0]["warnings"].to_string();
    assert!(
        warnings.contains("group:helpers is ignored") && warnings.contains("role-assignable"),
        "{list}"
    );
    // The stored policy does not block unrelated changes; written anew it is refused.
    let r = ca_import(
        &app,
        &token,
        serde_json::json!([{"name": "guests-mfa", "state": "enabled",
        "conditions": {"principals": {"include": ["guests"]}}, "grant": {"require": "mfa"}}]),
        false,
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let (status, _, msg) =
        error_of(ca_import(&app, &token, serde_json::json!([policy("helpers")]), false).await)
            .await;
    assert_eq!(status, 400, "{msg}");
    assert!(msg.contains("not role-assignable"), "{msg}");
    app.stop().await;
}

/// Rule 8: a policy can name the device flow (`authentication_flows: [device_code]`) and so
/// block it for administrators. The guard accepts it (they can still sign in to the API); the
/// device-code poll and the refresh of a family that started with a device code before the
/// policy are refused (`invalid_grant`, audited with the policy's name), while a password +
/// TOTP sign-in of the same person still works. What-if takes the flow; export and re-import
/// keep the condition.
async fn ca_device_flow_can_be_blocked_for_administrators(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let pw = "amber-lantern-quiet-58";
    let (gina, gina_secret) = mfa_user(&app, &admin, "gina", pw).await;
    admin
        .create_assignment(&assignment(
            "user:gina",
            "global-administrator",
            None,
            "eligible",
        ))
        .await
        .expect("GA eligible");
    // A CLI login from before the policy: its family records the device flow.
    let d = device_start(&app).await;
    gina.approve_device(&portcullis_core::api::DeviceDecisionRequest {
        user_code: code_of(&d, "user_code"),
    })
    .await
    .expect("approve");
    let r = device_poll(&app, &code_of(&d, "device_code")).await;
    assert_eq!(r.status(), 200);
    let before: serde_json::Value = r.json().await.expect("json");
    let old_refresh = before["refresh_token"].as_str().expect("rt").to_owned();

    let name = "no-device-flow-for-admins";
    let spec = serde_json::json!({"name": name, "state": "enabled",
        "conditions": {"principals": {"include": ["role:global-administrator"]},
                       "authentication_flows": {"include": ["device_code"]}},
        "grant": {"block": true}});
    let r = ca_import(&app, &token, serde_json::json!([spec.clone()]), false).await;
    assert_eq!(
        r.status(),
        200,
        "not a lock-out: the API sign-in is left; {}",
        r.text().await.unwrap_or_default()
    );

    // The device-code poll is refused, audited with the policy.
    let d = device_start(&app).await;
    gina.approve_device(&portcullis_core::api::DeviceDecisionRequest {
        user_code: code_of(&d, "user_code"),
    })
    .await
    .expect("approve");
    let r = device_poll(&app, &code_of(&d, "device_code")).await;
    oauth_refusal_naming(r, 400, "invalid_grant", name).await;
    let ev = events_named(&admin, "token.device_code").await;
    let refused = last_event(&ev, "user:gina");
    assert_eq!(refused.outcome.as_str(), "failure");
    assert_eq!(refused.details["flow"], "device_code");
    assert_eq!(refused.details["conditional_access"]["outcome"], "block");
    assert_eq!(
        refused.details["conditional_access"]["policies"],
        serde_json::json!([name])
    );
    // So is the refresh of the family that started with a device code.
    let r = refresh_with(&app, "portcullis-cli", &old_refresh).await;
    oauth_refusal_naming(r, 400, "invalid_grant", name).await;
    let ev = events_named(&admin, "token.refresh").await;
    assert_eq!(
        last_event(&ev, "user:gina").details["conditional_access"]["policies"],
        serde_json::json!([name])
    );
    // The same person signs in to the API with password and TOTP.
    let s = sign_in(&app, "gina", pw, &gina_secret, 1).await;
    s.whoami().await.expect("the API session works");

    // What-if: the CLI (by the device flow, its default) and `flow: device_code` are blocked,
    // the API is not; the API by the device flow does not exist.
    for body in [
        serde_json::json!({"user": "gina", "ip": "192.0.2.1", "app": "cli"}),
        serde_json::json!({"user": "gina", "ip": "192.0.2.1", "flow": "device_code"}),
    ] {
        let w = whatif(&app, &token, body.clone()).await;
        assert_eq!(w["outcome"], "block", "{body}: {w}");
    }
    let w = whatif(
        &app,
        &token,
        serde_json::json!({"user": "gina", "ip": "192.0.2.1", "app": "api"}),
    )
    .await;
    assert_eq!(w["outcome"], "allow", "{w}");
    assert_eq!(
        w["explanation"][0]["condition"], "authentication_flows",
        "{w}"
    );
    for bad in [
        serde_json::json!({"user": "gina", "ip": "192.0.2.1", "app": "api", "flow": "device_code"}),
        serde_json::json!({"user": "gina", "ip": "192.0.2.1", "flow": "magic_link"}),
    ] {
        let (status, _, msg) =
            error_of(post_json(&app, Some(&token), "/api/v1/ca/whatif", bad.clone()).await).await;
        assert_eq!(status, 400, "{bad}: {msg}");
    }

    // Export → re-import keeps the condition (nothing changes).
    let stored = api_get(&app, &token, &format!("/api/v1/ca/policies/{name}")).await;
    assert_eq!(
        stored["policy"]["conditions"]["authentication_flows"],
        serde_json::json!({"include": ["device_code"]})
    );
    let again: serde_json::Value = ca_import(
        &app,
        &token,
        serde_json::json!([stored["policy"].clone()]),
        false,
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(again["unchanged"], serde_json::json!([name]), "{again}");

    // Blocking the API sign-in as well leaves no way in: refused.
    let (status, code, msg) = error_of(ca_import(&app, &token, serde_json::json!([{"name": "no-api-for-admins", "state": "enabled",
        "conditions": {"principals": {"include": ["role:global-administrator"]}, "applications": {"include": ["api"]}},
        "grant": {"block": true}}]), true).await).await;
    assert_eq!((status, code.as_str()), (409, "ca_lockout"), "{msg}");
    assert!(
        msg.contains(name) && msg.contains("no-api-for-admins"),
        "{msg}"
    );
    app.stop().await;
}

/// A browser whose requests leave from `ip` (any address of 127.0.0.0/8 on Linux), keeping
/// the cookies it has.
fn browser_from(b: &mut Browser, ip: &str) {
    b.http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(ip.parse::<std::net::IpAddr>().expect("ip"))
        .build()
        .expect("http");
}

/// A confidential client's refresh, from the test's own address (127.0.0.1).
async fn client_refresh(app: &TestApp, id: &str, secret: &str, rt: &str) -> reqwest::Response {
    app.http
        .post(format!("{}/oauth2/token", app.base))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
        .send()
        .await
        .expect("refresh")
}

/// Finding 9: a location policy for `client:ID` is judged by the person's address (the
/// browser's, at the authorize step), not by the relying party's (the caller of the token
/// endpoint). The office is 127.0.0.1/32 and every token request comes from 127.0.0.1, the
/// relying party in the office; the browser comes from 127.0.0.2, outside.
///
/// Why these addresses: the harness's server listens on 127.0.0.1 and takes the peer address
/// only (no forwarding headers), so two callers need two real source addresses. Linux routes
/// all of 127.0.0.0/8 to the loopback interface, so the browser binds its sockets to
/// 127.0.0.2 (`reqwest`'s `local_address`) while the relying party keeps 127.0.0.1: two
/// distinct addresses on one machine, with nothing mocked. (IPv4 vs `::1` would need a server
/// listening on both.)
async fn ca_location_for_an_application_is_judged_by_the_person_address(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let pw = "amber-lantern-quiet-58";
    let secret = oidc_person(&app, &admin, "olivia", pw).await;
    let redirect = "http://127.0.0.1:9/cb";
    let (client_id, client_secret) = confidential_client(&app, &token, "Payroll", redirect).await;

    // Before any policy: olivia, at home (127.0.0.2), signs in and consents; the relying party
    // (127.0.0.1) exchanges the code. Both addresses are in the event.
    let mut b = Browser::new(&app.base);
    browser_from(&mut b, "127.0.0.2");
    let (url, verifier) = authorize_url(&app.base, &client_id, redirect, &[]);
    let page = browser_sign_in(&mut b, &url, "olivia", pw, &secret, 0).await;
    let back = consent(&mut b, page, "allow").await;
    let code = query_param(&back, "code").expect("code");
    let r = exchange(
        &app,
        (&client_id, Some(&client_secret)),
        &code,
        redirect,
        Some(&verifier),
    )
    .await;
    assert_eq!(r.status(), 200);
    let tokens: serde_json::Value = r.json().await.expect("json");
    let home_refresh = tokens["refresh_token"].as_str().expect("rt").to_owned();
    let ev = events_named(&admin, "token.authorization_code").await;
    let ok = last_event(&ev, "user:olivia");
    assert_eq!(
        (
            ok.details["client_ip"].as_str(),
            ok.details["person_ip"].as_str()
        ),
        (Some("127.0.0.1"), Some("127.0.0.2")),
        "{}",
        ok.details
    );

    // Payroll only from the office.
    let r = post_json(
        &app,
        Some(&token),
        "/api/v1/ca/locations",
        serde_json::json!({"name": "office", "cidrs": ["127.0.0.1/32"]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let name = "payroll-only-from-the-office";
    let r = ca_import(
        &app,
        &token,
        serde_json::json!([{"name": name, "state": "enabled",
        "conditions": {"principals": {"include": ["all"]},
                       "applications": {"include": [format!("client:{client_id}")]},
                       "locations": {"include": ["any"], "exclude": ["office"]}},
        "grant": {"block": true}}]),
        false,
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());

    // A new code from the browser at home: the exchange from the office is refused.
    let (url, verifier) = authorize_url(&app.base, &client_id, redirect, &[]);
    let back = location(&b.get(&url).await);
    let code = query_param(&back, "code").expect("consent remembered: straight back with a code");
    let r = exchange(
        &app,
        (&client_id, Some(&client_secret)),
        &code,
        redirect,
        Some(&verifier),
    )
    .await;
    oauth_refusal_naming(r, 400, "invalid_grant", name).await;
    let ev = events_named(&admin, "token.authorization_code").await;
    let refused = last_event(&ev, "user:olivia");
    assert_eq!(refused.outcome.as_str(), "failure");
    assert_eq!(
        (
            refused.details["client_ip"].as_str(),
            refused.details["person_ip"].as_str()
        ),
        (Some("127.0.0.1"), Some("127.0.0.2")),
        "{}",
        refused.details
    );
    assert_eq!(
        refused.details["conditional_access"]["policies"],
        serde_json::json!([name])
    );
    // The family that started at home is judged by that address at every refresh, though the
    // refresh comes from the office.
    let r = client_refresh(&app, &client_id, &client_secret, &home_refresh).await;
    oauth_refusal_naming(r, 400, "invalid_grant", name).await;
    let ev = events_named(&admin, "token.refresh").await;
    assert_eq!(
        last_event(&ev, "user:olivia").details["person_ip"],
        "127.0.0.2"
    );

    // The same person's browser in the office: the exchange succeeds, and so does the refresh.
    browser_from(&mut b, "127.0.0.1");
    let (url, verifier) = authorize_url(&app.base, &client_id, redirect, &[]);
    let back = location(&b.get(&url).await);
    let code = query_param(&back, "code").expect("code");
    let r = exchange(
        &app,
        (&client_id, Some(&client_secret)),
        &code,
        redirect,
        Some(&verifier),
    )
    .await;
    assert_eq!(r.status(), 200);
    let tokens: serde_json::Value = r.json().await.expect("json");
    let office_refresh = tokens["refresh_token"].as_str().expect("rt");
    let r = client_refresh(&app, &client_id, &client_secret, office_refresh).await;
    assert_eq!(r.status(), 200);
    app.stop().await;
}

api_tests!(
    ca_guard_does_not_count_a_global_administrator_held_at_a_target,
    ca_exclusion_groups_must_be_role_assignable,
    ca_device_flow_can_be_blocked_for_administrators,
    ca_location_for_an_application_is_judged_by_the_person_address,
);
