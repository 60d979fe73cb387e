//! Four eyes on the PAM's own settings (issue 22, item 6): a weakening change of a privileged
//! role becomes a change request that another top-tier person approves, or, where nobody else
//! can, that takes effect after the cooling-off; with the abuse cases: approving one's own
//! change, a person without the top tier approving, a cooling-off change cancelled in time,
//! and two replicas applying a change once.

use super::*;
use portcullis_core::api::{AuditEventView, ChangeDecisionRequest, RoleSettingsView};

const GA: &str = "global-administrator";
const PRA: &str = "privileged-role-administrator";

fn longer_ga() -> RoleSettingsUpdate {
    RoleSettingsUpdate {
        max_activation_seconds: Some(7200),
        ..Default::default()
    }
}

/// The id of the change request a `change_pending` answer names.
fn pending_id(e: &ClientError) -> String {
    assert_eq!(e.code(), Some("change_pending"), "{e}");
    assert_eq!(e.status(), Some(403), "{e}");
    let m = e.to_string();
    let start = m.find("c_").expect("an id");
    m[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

async fn events(admin: &Client, action: &str) -> Vec<AuditEventView> {
    admin
        .audit_events(&EventFilter {
            action: Some(action.into()),
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("events")
        .events
}

/// Names Global Administrator's first approver (it needs approval and names nobody by
/// default): naming approvers removes nobody, so it applies at once.
async fn ga_approvers(admin: &Client) {
    admin
        .update_role_settings(
            GA,
            &RoleSettingsUpdate {
                approvers: Some(vec!["user:root-admin".into()]),
                ..Default::default()
            },
        )
        .await
        .expect("naming approvers is not weakening");
}

async fn ga_settings(admin: &Client) -> RoleSettingsView {
    admin.role_settings(GA).await.expect("settings")
}

fn same(a: &RoleSettingsView, b: &RoleSettingsView) -> bool {
    serde_json::to_value(a).expect("json") == serde_json::to_value(b).expect("json")
}

/// bob holds Privileged Role Administrator now (made activatable with TOTP while root-admin
/// was the only top-tier person, so that change waited out its one-second cooling-off).
async fn second_top_tier_person(app: &TestApp, admin: &Client) -> Client {
    settings_now(
        admin,
        PRA,
        &RoleSettingsUpdate {
            required_strength: Some("mfa".into()),
            ..Default::default()
        },
    )
    .await;
    holder(app, admin, "bob", PRA).await.0
}

async fn a_lone_administrators_weakening_waits_out_the_cooling_off(app: TestApp) {
    let admin = admin(&app).await;
    ga_approvers(&admin).await;
    let before = ga_settings(&admin).await;
    let e = admin
        .update_role_settings(GA, &longer_ga())
        .await
        .expect_err("recorded, not applied");
    let id = pending_id(&e);
    assert!(e.to_string().contains("takes effect at"), "{e}");
    assert!(
        same(&ga_settings(&admin).await, &before),
        "nothing changed yet"
    );
    let c = admin.change_request(&id).await.expect("change");
    assert_eq!(c.state, "pending");
    assert_eq!(c.weakenings, vec!["longer_activation"]);
    assert_eq!(c.requested_by, "user:root-admin");
    assert!(
        c.effective_at.is_some(),
        "a cooling-off, nobody else to approve"
    );
    let requested = events(&admin, "change.requested").await;
    assert_eq!(requested.len(), 1);
    assert_eq!(requested[0].details["subject"], "role:global-administrator");
    // Nobody approves their own change, not even the only administrator.
    let own = admin
        .approve_change(&id, &ChangeDecisionRequest::default())
        .await
        .expect_err("own");
    assert_eq!(own.code(), Some("self_approval"));
    eventually("the cooling-off", 8, async || {
        admin.change_request(&id).await.expect("change").state == "applied"
    })
    .await;
    assert_eq!(ga_settings(&admin).await.max_activation_seconds, 7200);
    let c = admin.change_request(&id).await.expect("change");
    assert_eq!(c.decided_by.as_deref(), Some("system:cooling_off"));
    let applied = events(&admin, "change.applied").await;
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].actor, "system:cooling_off");
    app.stop().await;
}

async fn a_cooling_off_change_cancelled_in_time_never_applies(backend: Backend) {
    let Some(app) = spawn_with(backend, |c| c.change_cooling_off = "1h".into()).await else {
        return;
    };
    let admin = admin(&app).await;
    ga_approvers(&admin).await;
    let before = ga_settings(&admin).await;
    let weaker = RoleSettingsUpdate {
        required_strength: Some("mfa".into()),
        require_approval: Some(false),
        ..Default::default()
    };
    let id = pending_id(
        &admin
            .update_role_settings(GA, &weaker)
            .await
            .expect_err("recorded"),
    );
    let c = admin.change_request(&id).await.expect("change");
    assert_eq!(c.weakenings, vec!["approval_removed", "weaker_strength"]);
    let effective = time::OffsetDateTime::parse(
        c.effective_at.as_deref().expect("cooling-off"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("time");
    assert!(effective - time::OffsetDateTime::now_utc() > time::Duration::minutes(59));
    let cancelled = admin
        .cancel_change(
            &id,
            &ChangeDecisionRequest {
                reason: Some("a stolen session asked for this".into()),
            },
        )
        .await
        .expect("cancel");
    assert_eq!(cancelled.state, "cancelled");
    let again = admin
        .cancel_change(&id, &ChangeDecisionRequest::default())
        .await
        .expect_err("once");
    assert_eq!(again.code(), Some("already_decided"));
    assert!(same(&ga_settings(&admin).await, &before));
    assert_eq!(events(&admin, "change.cancelled").await.len(), 1);
    app.stop().await;
}

async fn another_top_tier_person_approves_and_nobody_else_does(app: TestApp) {
    let admin = admin(&app).await;
    ga_approvers(&admin).await;
    let bob = second_top_tier_person(&app, &admin).await;
    let (ivy, _) = holder(&app, &admin, "ivy", "security-reader").await;
    let id = pending_id(
        &admin
            .update_role_settings(GA, &longer_ga())
            .await
            .expect_err("recorded"),
    );
    let c = admin.change_request(&id).await.expect("change");
    assert!(
        c.effective_at.is_none(),
        "bob can approve: no cooling-off, only approval"
    );
    let e = admin
        .approve_change(&id, &ChangeDecisionRequest::default())
        .await
        .expect_err("own");
    assert_eq!(e.code(), Some("self_approval"));
    let e = ivy
        .approve_change(&id, &ChangeDecisionRequest::default())
        .await
        .expect_err("not top tier");
    assert_eq!(e.code(), Some("forbidden"));
    // Nor does a low role read the requests or cancel someone else's.
    let e = ivy.change_requests(None).await.expect_err("no list");
    assert_eq!(e.code(), Some("forbidden"));
    let e = ivy
        .cancel_change(&id, &ChangeDecisionRequest::default())
        .await
        .expect_err("not hers");
    assert_eq!(e.code(), Some("forbidden"));
    assert_eq!(ga_settings(&admin).await.max_activation_seconds, 3600);
    let approved = bob
        .approve_change(
            &id,
            &ChangeDecisionRequest {
                reason: Some("planned: CHG-77".into()),
            },
        )
        .await
        .expect("approve");
    assert_eq!(approved.state, "applied");
    assert_eq!(approved.decided_by.as_deref(), Some("user:bob"));
    assert_eq!(ga_settings(&admin).await.max_activation_seconds, 7200);
    let e = bob
        .approve_change(&id, &ChangeDecisionRequest::default())
        .await
        .expect_err("once");
    assert_eq!(e.code(), Some("already_decided"));
    let changed = events(&admin, "role.settings_changed").await;
    assert_eq!(
        changed.iter().filter(|e| e.actor == "user:bob").count(),
        1,
        "applied by the approver"
    );
    // A denial needs a reason and leaves the settings as they are.
    let id = pending_id(
        &admin
            .update_role_settings(
                GA,
                &RoleSettingsUpdate {
                    require_approval: Some(false),
                    ..Default::default()
                },
            )
            .await
            .expect_err("recorded"),
    );
    let e = bob
        .deny_change(&id, &ChangeDecisionRequest::default())
        .await
        .expect_err("reason");
    assert_eq!(e.code(), Some("invalid_request"));
    let denied = bob
        .deny_change(
            &id,
            &ChangeDecisionRequest {
                reason: Some("GA keeps its approval".into()),
            },
        )
        .await
        .expect("deny");
    assert_eq!(denied.state, "denied");
    assert!(ga_settings(&admin).await.require_approval);
    app.stop().await;
}

/// Strengthening a privileged role, and any change of an ordinary one, apply at once.
async fn strengthening_changes_apply_at_once(app: TestApp) {
    let admin = admin(&app).await;
    ga_approvers(&admin).await;
    let s = admin
        .update_role_settings(
            GA,
            &RoleSettingsUpdate {
                max_activation_seconds: Some(1800),
                require_ticket: Some(true),
                ..Default::default()
            },
        )
        .await
        .expect("stronger");
    assert_eq!(s.max_activation_seconds, 1800);
    let s = admin
        .update_role_settings(
            "security-reader",
            &RoleSettingsUpdate {
                max_activation_seconds: Some(12 * 3600),
                require_justification: Some(false),
                ..Default::default()
            },
        )
        .await
        .expect("an ordinary role");
    assert_eq!(s.max_activation_seconds, 12 * 3600);
    assert!(
        admin
            .change_requests(None)
            .await
            .expect("changes")
            .is_empty()
    );
    assert!(events(&admin, "change.requested").await.is_empty());
    app.stop().await;
}

/// Two replicas on one PostgreSQL both look for due changes every second: the change applies
/// once, with one settings event and one `change.applied`.
async fn a_cooling_off_change_applies_once_on_two_replicas(backend: Backend) {
    let Backend::Postgres = backend else { return };
    let Some(url) = fresh_postgres_url().await else {
        eprintln!("skipped: PORTCULLIS_TEST_DATABASE_URL is not set");
        return;
    };
    let (a, b) = two_replicas_with(&url, |c| c.change_cooling_off = "1s".into()).await;
    let token = admin_token(&a).await;
    let on_a = a.anonymous.with_token(Some(SecretString::from(token)));
    ga_approvers(&on_a).await;
    let mut ids = Vec::new();
    for secs in [5400, 7200, 9000] {
        let e = on_a
            .update_role_settings(
                GA,
                &RoleSettingsUpdate {
                    max_activation_seconds: Some(secs),
                    ..Default::default()
                },
            )
            .await
            .expect_err("recorded");
        ids.push(pending_id(&e));
    }
    eventually("every cooling-off", 10, async || {
        on_a.change_requests(Some("pending"))
            .await
            .expect("changes")
            .is_empty()
    })
    .await;
    for id in &ids {
        let applied: Vec<_> = events(&on_a, "change.applied")
            .await
            .into_iter()
            .filter(|e| e.details["change_request"] == id.as_str())
            .collect();
        assert_eq!(applied.len(), 1, "{id} applied once");
    }
    assert_eq!(
        events(&on_a, "role.settings_changed")
            .await
            .iter()
            .filter(|e| e.actor == "system:cooling_off")
            .count(),
        3,
        "each change written once"
    );
    a.stop().await;
    b.stop().await;
}

/// Binding a privileged role to a target decides what its holders get in another system: a
/// change request too; binding an ordinary role applies at once.
async fn binding_a_privileged_role_is_a_change_request(app: TestApp) {
    let admin = admin(&app).await;
    let inbox = Inbox::default();
    let (port, _task) = receiver(inbox.clone(), 0).await;
    deploy_hook(&admin, port).await; // `deployer` (ordinary) bound at once
    admin
        .create_role(&portcullis_core::api::CreateRoleRequest {
            slug: "hook-admin".into(),
            display_name: None,
            description: "runs the hook's users".into(),
            permissions: vec!["users.update".into(), "target:deploy-hook.admin".into()],
        })
        .await
        .expect("a privileged custom role");
    let bind = portcullis_core::api::BindRoleRequest {
        grants: vec!["admin".into()],
        mode: None,
        ssh: None,
    };
    let e = admin
        .bind_role("deploy-hook", "hook-admin", &bind)
        .await
        .expect_err("four eyes");
    let id = pending_id(&e);
    let bound = |admin: Client| async move {
        admin
            .target("deploy-hook")
            .await
            .expect("target")
            .bindings
            .iter()
            .map(|b| b.role.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(bound(admin.clone()).await, vec!["deployer"]);
    let c = admin.change_request(&id).await.expect("change");
    assert_eq!(c.kind, "bind_role");
    assert_eq!(c.weakenings, vec!["privileged_role_bound"]);
    eventually("the cooling-off", 8, async || {
        admin.change_request(&id).await.expect("change").state == "applied"
    })
    .await;
    let mut roles = bound(admin.clone()).await;
    roles.sort();
    assert_eq!(roles, vec!["deployer", "hook-admin"]);
    app.stop().await;
}

async fn ca_state(admin: &Client, name: &str, to: &str) -> Result<(), ClientError> {
    admin
        .ca_set_state(
            name,
            &portcullis_core::api::CaStateRequest {
                state: to.into(),
                force: false,
            },
        )
        .await
        .map(|_| ())
}

fn ca_import_of(policies: serde_json::Value) -> portcullis_core::api::CaImportRequest {
    serde_json::from_value(serde_json::json!({ "policies": policies, "force": false }))
        .expect("an import")
}

/// Disabling, deleting or narrowing an enforced policy of a privileged role waits for a second
/// top-tier person; the same on a policy of an ordinary person applies at once.
async fn weakening_a_policy_of_a_privileged_role_is_a_change_request(app: TestApp) {
    let admin = admin(&app).await;
    let bob = second_top_tier_person(&app, &admin).await;
    let (ivy, _) = mfa_user(&app, &admin, "ivy", "amber-willow-canyon-58").await;
    drop(ivy);
    let admins = serde_json::json!({"name": "admins-mfa", "state": "enabled",
        "conditions": {"principals": {"include": ["role:global-administrator"]}},
        "grant": {"require": "mfa"}});
    let ivys = serde_json::json!({"name": "ivy-mfa", "state": "enabled",
        "conditions": {"principals": {"include": ["user:ivy"]}},
        "grant": {"require": "mfa"}});
    admin
        .ca_import(&ca_import_of(serde_json::json!([admins, ivys])))
        .await
        .expect("strengthening applies at once");
    // An ordinary person's policy: disabled and deleted at once.
    ca_state(&admin, "ivy-mfa", "disabled")
        .await
        .expect("at once");
    admin.ca_delete("ivy-mfa").await.expect("at once");

    let disable = pending_id(
        &ca_state(&admin, "admins-mfa", "report_only")
            .await
            .expect_err("four eyes"),
    );
    let delete = pending_id(&admin.ca_delete("admins-mfa").await.expect_err("four eyes"));
    let mut narrowed = admins.clone();
    narrowed["conditions"]["applications"] = serde_json::json!({"include": ["cli"]});
    let narrow = pending_id(
        &admin
            .ca_import(&ca_import_of(serde_json::json!([narrowed])))
            .await
            .expect_err("four eyes"),
    );
    for (id, how) in [
        (&disable, "policy_disabled"),
        (&delete, "policy_deleted"),
        (&narrow, "conditions_narrowed"),
    ] {
        let c = admin.change_request(id).await.expect("change");
        assert_eq!(
            (c.kind.as_str(), c.subject.as_str()),
            ("ca_policy", "ca_policy:admins-mfa")
        );
        assert_eq!(c.weakenings, vec![how]);
        assert!(c.effective_at.is_none(), "bob can approve");
    }
    let p = admin.ca_policy("admins-mfa").await.expect("still there");
    assert_eq!(p.state, "enabled");
    assert!(
        p.policy["conditions"].get("applications").is_none(),
        "{}",
        p.policy
    );
    let e = admin
        .approve_change(&disable, &ChangeDecisionRequest::default())
        .await
        .expect_err("own");
    assert_eq!(e.code(), Some("self_approval"));
    let approved = bob
        .approve_change(&disable, &ChangeDecisionRequest::default())
        .await
        .expect("approve");
    assert_eq!(approved.state, "applied");
    assert_eq!(
        admin.ca_policy("admins-mfa").await.expect("policy").state,
        "report_only"
    );
    let changed = events(&admin, "ca.policy.state_changed").await;
    assert_eq!(
        changed.iter().filter(|e| e.actor == "user:bob").count(),
        1,
        "applied by the approver: {changed:?}"
    );
    bob.deny_change(
        &delete,
        &ChangeDecisionRequest {
            reason: Some("the policy stays".into()),
        },
    )
    .await
    .expect("deny");
    admin
        .cancel_change(&narrow, &ChangeDecisionRequest::default())
        .await
        .expect("the requester cancels");
    let p = admin.ca_policy("admins-mfa").await.expect("still there");
    assert!(
        p.policy["conditions"].get("applications").is_none(),
        "{}",
        p.policy
    );
    // Report-only enforces nothing: deleting it now is not a weakening.
    admin.ca_delete("admins-mfa").await.expect("at once");
    app.stop().await;
}

/// A policy change is applied as it reads when approved: one that would now lock every Global
/// Administrator out (another policy landed meanwhile) is cancelled, not forced.
async fn a_policy_change_that_would_now_lock_out_is_cancelled(app: TestApp) {
    let admin = admin(&app).await;
    let bob = second_top_tier_person(&app, &admin).await;
    let ga = |name: &str, conditions: serde_json::Value, grant: serde_json::Value| serde_json::json!({"name": name, "state": "enabled", "conditions": conditions, "grant": grant});
    admin
        .ca_import(&ca_import_of(serde_json::json!([ga(
            "admins",
            serde_json::json!({"principals": {"include": ["role:global-administrator"]}}),
            serde_json::json!({"require": "mfa"})
        )])))
        .await
        .expect("a policy");
    // Narrowed to the API, and blocking there: alone, the CLI stays open to administrators.
    let id = pending_id(
        &admin
            .ca_import(&ca_import_of(serde_json::json!([ga(
                "admins",
                serde_json::json!({"principals": {"include": ["role:global-administrator"]},
                    "applications": {"include": ["api"]}}),
                serde_json::json!({"block": true})
            )])))
            .await
            .expect_err("four eyes"),
    );
    // Meanwhile the CLI is blocked for them: fine while the API takes MFA.
    admin
        .ca_import(&ca_import_of(serde_json::json!([ga(
            "no-cli",
            serde_json::json!({"principals": {"include": ["role:global-administrator"]},
                "applications": {"include": ["cli"]}}),
            serde_json::json!({"block": true})
        )])))
        .await
        .expect("a new policy applies at once");
    let e = bob
        .approve_change(&id, &ChangeDecisionRequest::default())
        .await
        .expect_err("it would lock every Global Administrator out now");
    assert_eq!(e.code(), Some("conflict"), "{e}");
    let c = admin.change_request(&id).await.expect("change");
    assert_eq!(c.state, "cancelled");
    assert!(
        c.reason
            .as_deref()
            .is_some_and(|r| r.contains("no longer applies")),
        "{c:?}"
    );
    let p = admin.ca_policy("admins").await.expect("policy");
    assert_eq!(
        p.policy["grant"]["require"], "mfa",
        "unchanged: {}",
        p.policy
    );
    app.stop().await;
}

/// Every channel receives critical alerts: removing one waits for four eyes (here the lone
/// administrator's one-second cooling-off), and a low role cannot even ask.
async fn removing_an_alert_channel_is_a_change_request(app: TestApp) {
    let admin = admin(&app).await;
    let (ivy, _) = holder(&app, &admin, "ivy", "security-reader").await;
    let req: portcullis_core::api::CreateAlertChannelRequest =
        serde_json::from_value(serde_json::json!({
            "name": "soc-hook", "kind": "webhook", "url": "http://127.0.0.1:9/hook",
            "min_severity": "critical",
        }))
        .expect("a channel");
    admin.create_alert_channel(&req).await.expect("channel");
    let e = ivy
        .remove_alert_channel("soc-hook")
        .await
        .expect_err("low role");
    assert_eq!(e.code(), Some("forbidden"));
    let e = admin
        .remove_alert_channel("no-such")
        .await
        .expect_err("nothing to remove");
    assert_eq!(e.code(), Some("not_found"));
    let id = pending_id(
        &admin
            .remove_alert_channel("soc-hook")
            .await
            .expect_err("four eyes"),
    );
    assert_eq!(admin.alert_channels().await.expect("channels").len(), 1);
    let c = admin.change_request(&id).await.expect("change");
    assert_eq!(
        (c.kind.as_str(), c.subject.as_str()),
        ("remove_alert_channel", "alert_channel:soc-hook")
    );
    eventually("the cooling-off", 8, async || {
        admin.change_request(&id).await.expect("change").state == "applied"
    })
    .await;
    assert!(admin.alert_channels().await.expect("channels").is_empty());
    let removed = events(&admin, "alert_channel.removed").await;
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].actor, "system:cooling_off");
    app.stop().await;
}

api_tests!(
    binding_a_privileged_role_is_a_change_request,
    weakening_a_policy_of_a_privileged_role_is_a_change_request,
    a_policy_change_that_would_now_lock_out_is_cancelled,
    removing_an_alert_channel_is_a_change_request,
    a_lone_administrators_weakening_waits_out_the_cooling_off,
    another_top_tier_person_approves_and_nobody_else_does,
    strengthening_changes_apply_at_once,
);

backend_tests!(
    a_cooling_off_change_cancelled_in_time_never_applies,
    a_cooling_off_change_applies_once_on_two_replicas,
);
