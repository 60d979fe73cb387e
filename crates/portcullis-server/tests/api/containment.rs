//! Containment (`POST /api/v1/principals/{name}/contain`, `/release`): one step cuts everything
//! a principal holds, with a critical alert; the release gives back the account only; and the
//! abuse cases (oneself, a low role, no fresh proof, the break-glass minimum) are refused and
//! change nothing.

use super::*;
use portcullis_core::api::{ContainRequest, ReleaseRequest};

fn contain_req(reason: &str) -> ContainRequest {
    ContainRequest {
        reason: reason.into(),
        force: false,
    }
}

/// ivy holds service-administrator now and has a request for security-reader waiting for
/// approval (approvers: the group `approvers`, with jon in it).
async fn ivy_with_grant_and_pending_request(app: &TestApp, admin: &Client) -> Client {
    let (ivy, _) = holder(app, admin, "ivy", "service-administrator").await;
    mfa_user(app, admin, "jon", "amber-willow-canyon-58").await;
    admin
        .create_group(&CreateGroupRequest {
            name: "approvers".into(),
            display_name: None,
            role_assignable: true,
        })
        .await
        .expect("group");
    admin
        .add_group_member(
            "approvers",
            &GroupMemberRequest {
                member: "jon".into(),
            },
        )
        .await
        .expect("member");
    admin
        .update_role_settings(
            "security-reader",
            &RoleSettingsUpdate {
                require_approval: Some(true),
                approvers: Some(vec!["group:approvers".into()]),
                ..Default::default()
            },
        )
        .await
        .expect("settings");
    admin
        .create_assignment(&eligible("ivy", "security-reader", None))
        .await
        .expect("eligible");
    let pending = ivy
        .request_activation(&ask("security-reader", 3600, Some("incident")))
        .await
        .expect("request");
    assert_eq!(pending.state, "pending_approval");
    ivy
}

fn states_of(requests: &[portcullis_core::api::ActivationRequestView]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = requests
        .iter()
        .filter(|r| r.requester == "ivy")
        .map(|r| (r.role.clone(), r.state.clone()))
        .collect();
    v.sort();
    v
}

async fn containment_cuts_everything_the_principal_holds(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let ivy = ivy_with_grant_and_pending_request(&app, &admin).await;
    let cut = admin
        .contain_principal("ivy", &contain_req("phished: token seen in a paste"))
        .await
        .expect("contain");
    assert!(cut.contained);
    // Two sessions: the registration session she enrolled TOTP in, and her signed-in one.
    assert_eq!(
        (cut.sessions, cut.active_requests, cut.pending_requests),
        (2, 1, 1)
    );
    // Her session is gone, and so is sign-in.
    assert_eq!(
        ivy.whoami().await.expect_err("ended").code(),
        Some("unauthenticated")
    );
    let user = admin.user("ivy").await.expect("user");
    assert!(!user.enabled);
    // The grant is revoked and the waiting request cancelled.
    let all = admin.requests("all", None).await.expect("requests");
    assert_eq!(
        states_of(&all),
        vec![
            ("security-reader".to_owned(), "cancelled".to_owned()),
            ("service-administrator".to_owned(), "revoked".to_owned()),
        ]
    );
    // One event lists what was cut, and a critical alert goes out.
    let ev = events_named(&admin, "principal.contained").await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].target, "user:ivy");
    assert_eq!(ev[0].details["cut"]["active_requests"], 1);
    assert_eq!(ev[0].details["reason"], "phished: token seen in a paste");
    assert_eq!(alert_count(&app, &token, "principal.contained").await, 1);
    app.stop().await;
}

async fn a_release_gives_back_the_account_only(app: TestApp) {
    let admin = admin(&app).await;
    let ivy = ivy_with_grant_and_pending_request(&app, &admin).await;
    admin
        .contain_principal("ivy", &contain_req("suspicious sign-in"))
        .await
        .expect("contain");
    let released = admin
        .release_principal(
            "ivy",
            &ReleaseRequest {
                reason: "false alarm".into(),
            },
        )
        .await
        .expect("release");
    assert!(!released.contained);
    assert!(admin.user("ivy").await.expect("user").enabled);
    // Nothing comes back: the old session stays dead and no grant is active.
    assert_eq!(
        ivy.whoami().await.expect_err("ended").code(),
        Some("unauthenticated")
    );
    let active = admin
        .requests("all", Some("active"))
        .await
        .expect("requests");
    assert!(active.iter().all(|r| r.requester != "ivy"), "{active:?}");
    assert_eq!(events_named(&admin, "principal.released").await.len(), 1);
    // Releasing twice, or containing twice, is a conflict.
    let again = admin
        .release_principal(
            "ivy",
            &ReleaseRequest {
                reason: "again".into(),
            },
        )
        .await;
    refused(again, "conflict", "not contained");
    app.stop().await;
}

/// A service account's access tokens die at once and stay dead after the release (a token is a
/// signed JWT, cut off by time, not by a row), and so does its client secret.
async fn a_contained_service_accounts_tokens_and_secret_stay_refused_after_release(app: TestApp) {
    let admin = admin(&app).await;
    let s = service_account_with_secret(&admin, "payroll-sync").await;
    let old = access_token(&app, &s.client_id, &s.client_secret).await;
    let sa = app
        .anonymous
        .with_token(Some(SecretString::from(old.clone())));
    sa.whoami().await.expect("works before");
    assert_eq!(
        introspect(&app, &s.client_id, &s.client_secret, &old).await["active"],
        true
    );
    let cut = admin
        .contain_principal("payroll-sync", &contain_req("secret leaked in CI logs"))
        .await
        .expect("contain");
    assert_eq!(cut.client_credentials, 1);
    assert_eq!(
        sa.whoami().await.expect_err("cut").code(),
        Some("unauthenticated")
    );
    let denied = token_request(
        &app,
        &[("grant_type", "client_credentials")],
        Some((&s.client_id, &s.client_secret)),
    )
    .await;
    assert_ne!(denied.status(), 200, "no new token while contained");
    admin
        .release_principal(
            "payroll-sync",
            &ReleaseRequest {
                reason: "secret rotated".into(),
            },
        )
        .await
        .expect("release");
    assert_eq!(
        sa.whoami().await.expect_err("still cut").code(),
        Some("unauthenticated")
    );
    // The secret was revoked with the containment: it is presumed stolen, so the release does
    // not bring it back.
    let stale = token_request(
        &app,
        &[("grant_type", "client_credentials")],
        Some((&s.client_id, &s.client_secret)),
    )
    .await;
    assert_eq!(stale.status(), 401, "the old secret stays revoked");
    // A new secret's token works: the account is back, its old tokens and secret are not.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let fresh = admin
        .add_client_secret("payroll-sync")
        .await
        .expect("new secret");
    assert_eq!(
        introspect(&app, &fresh.client_id, &fresh.client_secret, &old).await["active"],
        false
    );
    let new = access_token(&app, &fresh.client_id, &fresh.client_secret).await;
    app.anonymous
        .with_token(Some(SecretString::from(new)))
        .whoami()
        .await
        .expect("new token");
    app.stop().await;
}

async fn nobody_contains_themselves(app: TestApp) {
    let admin = admin(&app).await;
    let r = admin
        .contain_principal("root-admin", &contain_req("test"))
        .await;
    refused(r, "forbidden", "yourself");
    assert!(admin.user("root-admin").await.expect("user").enabled);
    assert!(events_named(&admin, "principal.contained").await.is_empty());
    app.stop().await;
}

/// A helpdesk administrator disables users but contains nobody; a person without roles even
/// less.
async fn a_low_role_cannot_contain(app: TestApp) {
    let admin = admin(&app).await;
    let (helpdesk, _) = holder(&app, &admin, "hal", "helpdesk-administrator").await;
    mfa_user(&app, &admin, "ivy", "amber-willow-canyon-58").await;
    let r = helpdesk
        .contain_principal("ivy", &contain_req("grudge"))
        .await;
    refused(r, "forbidden", "principals.contain");
    assert!(admin.user("ivy").await.expect("user").enabled);
    let refusals = events_named(&admin, "authz.refused").await;
    assert!(
        refusals.iter().any(|e| e.actor == "user:hal"),
        "the refusal is audited: {refusals:?}"
    );
    app.stop().await;
}

/// Containment is a step-up action: a session whose last proof is older than five minutes is
/// sent to re-authenticate, and nothing happens.
async fn containment_needs_a_fresh_proof(app: TestApp) {
    let admin = admin(&app).await;
    mfa_user(&app, &admin, "ivy", "amber-willow-canyon-58").await;
    db_exec(
        &app.config,
        "UPDATE sessions SET created_at_us = created_at_us - 600000000, strong_auth_at_us = strong_auth_at_us - 600000000 WHERE principal_id = (SELECT id FROM principals WHERE name = 'root-admin')",
    )
    .await;
    let r = admin
        .contain_principal("ivy", &contain_req("late night"))
        .await;
    refused(r, "reauth_required", "");
    assert!(admin.user("ivy").await.expect("user").enabled);
    app.stop().await;
}

/// A break-glass account may be contained, but not below the two usable ones unless forced;
/// the forced containment is recorded as such and alerts as break-glass activity.
async fn breakglass_containment_keeps_two_unless_forced(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    people(&admin, &["alice", "bob", "carol"]).await;
    create_split_account(&app, &token, "bg-one", &["alice", "bob", "carol"], 2).await;
    create_split_account(&app, &token, "bg-two", &["alice", "bob", "carol"], 2).await;
    let r = admin
        .contain_principal("bg-one", &contain_req("custodian laptop stolen"))
        .await;
    refused(r, "breakglass_minimum", "");
    assert!(admin.user("bg-one").await.expect("user").enabled);
    let forced = admin
        .contain_principal(
            "bg-one",
            &ContainRequest {
                reason: "custodian laptop stolen".into(),
                force: true,
            },
        )
        .await
        .expect("forced");
    assert!(forced.contained);
    let ev = events_named(&admin, "principal.contained").await;
    let done: Vec<_> = ev.iter().filter(|e| e.outcome == "success").collect();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].details["forced"], true);
    assert_eq!(done[0].details["emergency"], true);
    assert!(alert_count(&app, &token, "breakglass.activity").await >= 1);
    app.stop().await;
}

async fn bad_input_is_refused_and_changes_nothing(app: TestApp) {
    let admin = admin(&app).await;
    mfa_user(&app, &admin, "ivy", "amber-willow-canyon-58").await;
    for reason in ["", "   ", "line\nbreak", &"x".repeat(501)] {
        let r = admin.contain_principal("ivy", &contain_req(reason)).await;
        refused(r, "invalid_request", "reason");
    }
    let r = admin
        .contain_principal("nobody-here", &contain_req("x"))
        .await;
    refused(r, "not_found", "nobody-here");
    admin
        .create_group(&CreateGroupRequest {
            name: "ops".into(),
            display_name: None,
            role_assignable: false,
        })
        .await
        .expect("group");
    let r = admin.contain_principal("ops", &contain_req("x")).await;
    refused(r, "not_found", "ops");
    assert!(admin.user("ivy").await.expect("user").enabled);
    assert!(events_named(&admin, "principal.contained").await.is_empty());
    app.stop().await;
}

/// Two replicas on one PostgreSQL: each grant ends by expiry on one replica at the moment it is
/// contained on the other (the containments spread across the deadline, so both orders and the
/// race itself happen). Every grant is revoked at the target exactly once, and its assignment
/// ends once.
async fn containment_and_expiry_racing_on_two_replicas_revoke_once(backend: Backend) {
    let Backend::Postgres = backend else { return };
    let Some(url) = fresh_postgres_url().await else {
        eprintln!("skipped: PORTCULLIS_TEST_DATABASE_URL is not set");
        return;
    };
    let (a, b) = two_replicas(&url).await;
    let token = admin_token(&a).await;
    let on_a = a
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let on_b = b.anonymous.with_token(Some(SecretString::from(token)));
    let inbox = Inbox::default();
    let (port, _task) = receiver(inbox.clone(), 0).await;
    deploy_hook(&on_a, port).await;
    const N: usize = 12;
    let end = time::OffsetDateTime::now_utc() + time::Duration::seconds(4);
    let end_text = end
        .format(&time::format_description::well_known::Rfc3339)
        .expect("rfc3339");
    for i in 0..N {
        let name = format!("job-{i:02}");
        on_a.create_service_account(&portcullis_core::api::CreateServiceAccountRequest {
            name: name.clone(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await
        .expect("sa");
        on_a.create_assignment(&CreateAssignmentRequest {
            principal: format!("service_account:{name}"),
            role: "deployer".into(),
            scope: Some("/targets/deploy-hook".into()),
            kind: Some("active".into()),
            duration_seconds: None,
            ends_at: Some(end_text.clone()),
        })
        .await
        .expect("assignment");
    }
    // Contain them from 30 ms before the deadline to 30 ms after, 5 ms apart, on replica b
    // (the expiry worker of either replica ends them at the deadline).
    let start = end - time::Duration::milliseconds(30);
    let wait = start - time::OffsetDateTime::now_utc();
    tokio::time::sleep(std::time::Duration::try_from(wait).unwrap_or_default()).await;
    let mut calls = Vec::new();
    for i in 0..N {
        let c = on_b.clone();
        calls.push(tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(5 * i as u64)).await;
            c.contain_principal(&format!("job-{i:02}"), &contain_req("race"))
                .await
                .expect("contain")
        }));
    }
    for c in calls {
        c.await.expect("task");
    }
    eventually("every revoke applied", 20, async || {
        let ops = on_a
            .target_ops(Some("deploy-hook"), None)
            .await
            .expect("ops");
        ops.iter()
            .filter(|o| o.op == "revoke" && o.state == "applied")
            .count()
            >= N
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let ops = on_a
        .target_ops(Some("deploy-hook"), None)
        .await
        .expect("ops");
    let mut revokes: std::collections::BTreeMap<String, usize> = Default::default();
    for o in ops.iter().filter(|o| o.op == "revoke") {
        *revokes.entry(o.grant_id.clone()).or_default() += 1;
    }
    assert_eq!(revokes.len(), N, "{ops:?}");
    assert!(
        revokes.values().all(|n| *n == 1),
        "a grant revoked twice: {revokes:?}"
    );
    let reasons: BTreeSet<&str> = ops
        .iter()
        .filter(|o| o.op == "revoke")
        .map(|o| o.reason.as_str())
        .collect();
    eprintln!("revoked by: {reasons:?}");
    let received = inbox
        .lock()
        .expect("inbox")
        .requests
        .iter()
        .filter(|(_, _, body)| body.contains("\"revoke\""))
        .count();
    assert_eq!(received, N, "each revoke delivered once");
    a.stop().await;
    b.stop().await;
}

backend_tests!(containment_and_expiry_racing_on_two_replicas_revoke_once);

api_tests!(
    containment_cuts_everything_the_principal_holds,
    a_release_gives_back_the_account_only,
    a_contained_service_accounts_tokens_and_secret_stay_refused_after_release,
    nobody_contains_themselves,
    a_low_role_cannot_contain,
    containment_needs_a_fresh_proof,
    breakglass_containment_keeps_two_unless_forced,
    bad_input_is_refused_and_changes_nothing,
);
