//! Just-in-time group membership (issue 22, item 5): an eligible membership of a
//! role-assignable group is activated like a role, and everything the group holds follows it.
//! With the abuse cases: a membership easier to get than the group's roles, someone below the
//! top tier or oneself handing one out, an ordinary group, a role at a group's scope, and an
//! activation through the group outliving the membership.

use super::reviews::{decision, item_of, open_round, review_of};
use super::*;

const GROUP: &str = "release-team";
const SCOPE: &str = "/groups/release-team";

async fn role_assignable_group(admin: &Client, name: &str) {
    admin
        .create_group(&portcullis_core::api::CreateGroupRequest {
            name: name.into(),
            display_name: None,
            role_assignable: true,
        })
        .await
        .expect("group");
}

/// `group` holds `role` (eligible or active) at `scope`.
async fn group_holds(admin: &Client, role: &str, scope: Option<&str>, active: bool) {
    admin
        .create_assignment(&CreateAssignmentRequest {
            principal: format!("group:{GROUP}"),
            scope: scope.map(str::to_owned),
            kind: Some(if active { "active" } else { "eligible" }.into()),
            duration_seconds: active.then_some(86_400),
            ..eligible("", role, None)
        })
        .await
        .expect("the group's role");
}

/// `name` eligible for membership of the group.
fn membership_of(name: &str) -> CreateAssignmentRequest {
    CreateAssignmentRequest {
        scope: Some(SCOPE.into()),
        ..eligible(name, "group-member", Some(30 * 86_400))
    }
}

fn join(secs: i64) -> CreateActivationRequest {
    CreateActivationRequest {
        scope: Some(SCOPE.into()),
        ..ask("group-member", secs, Some("release 7"))
    }
}

/// bob (signed in with TOTP) eligible to join the group.
async fn eligible_bob(app: &TestApp, admin: &Client) -> Client {
    let (bob, _) = mfa_user(app, admin, "bob", "amber-willow-canyon-58").await;
    admin
        .create_assignment(&membership_of("bob"))
        .await
        .expect("eligible membership");
    bob
}

async fn members(admin: &Client) -> Vec<String> {
    admin
        .groups()
        .await
        .expect("groups")
        .into_iter()
        .find(|g| g.name == GROUP)
        .expect("the group")
        .members
}

async fn can_read_audit(c: &Client) -> bool {
    c.audit_events(&EventFilter {
        limit: Some(1),
        ..Default::default()
    })
    .await
    .is_ok()
}

async fn an_active_membership_confers_what_the_group_holds(app: TestApp) {
    let admin = admin(&app).await;
    role_assignable_group(&admin, GROUP).await;
    group_holds(&admin, "audit-reader", None, true).await;
    let bob = eligible_bob(&app, &admin).await;
    assert!(members(&admin).await.is_empty(), "eligible is not a member");
    assert!(!can_read_audit(&bob).await);
    let m = bob.request_activation(&join(3600)).await.expect("join");
    assert_eq!(
        (m.state.as_str(), m.role.as_str()),
        ("active", "group-member")
    );
    assert_eq!(members(&admin).await, vec!["bob".to_owned()]);
    assert!(can_read_audit(&bob).await, "the group's role follows");
    bob.deactivate(&m.id, &DecisionRequest::default())
        .await
        .expect("leave");
    assert!(members(&admin).await.is_empty());
    assert!(!can_read_audit(&bob).await, "and goes with the membership");
    app.stop().await;
}

async fn an_activation_through_the_group_ends_with_the_membership(app: TestApp) {
    let admin = admin(&app).await;
    let inbox = Inbox::default();
    let (port, _task) = receiver(inbox.clone(), 0).await;
    deploy_hook(&admin, port).await;
    role_assignable_group(&admin, GROUP).await;
    group_holds(&admin, "deployer", Some("/targets/deploy-hook"), false).await;
    let bob = eligible_bob(&app, &admin).await;
    let deploy = CreateActivationRequest {
        scope: Some("/targets/deploy-hook".into()),
        ..ask("deployer", 7200, Some("release 7"))
    };
    let e = bob
        .request_activation(&deploy)
        .await
        .expect_err("not a member yet");
    assert_eq!(e.code(), Some("not_eligible"));
    let m = bob.request_activation(&join(1800)).await.expect("join");
    let d = bob
        .request_activation(&deploy)
        .await
        .expect("through the group");
    assert_eq!(d.state, "active");
    assert_eq!(d.ends_at, m.ends_at, "capped at the membership's end");
    hook_op_applied(&admin, "grant").await;
    bob.deactivate(&m.id, &DecisionRequest::default())
        .await
        .expect("leave");
    let d = bob.activation_request(&d.id).await.expect("request");
    assert_eq!(d.state, "revoked");
    assert_eq!(
        d.close_reason.as_deref(),
        Some("left_role_assignable_group")
    );
    hook_op_applied(&admin, "revoke").await;
    app.stop().await;
}

async fn a_membership_expires_to_the_second_with_what_rests_on_it(app: TestApp) {
    let admin = admin(&app).await;
    role_assignable_group(&admin, GROUP).await;
    group_holds(&admin, "security-reader", None, false).await;
    let bob = eligible_bob(&app, &admin).await;
    let m = bob.request_activation(&join(3)).await.expect("join");
    let r = bob
        .request_activation(&ask("security-reader", 3600, Some("incident 12")))
        .await
        .expect("through the group");
    assert_eq!(r.ends_at, m.ends_at, "capped at the membership's end");
    eventually("the membership's end", 10, async || {
        bob.activation_request(&m.id).await.expect("request").state == "expired"
    })
    .await;
    assert!(members(&admin).await.is_empty());
    let r = bob.activation_request(&r.id).await.expect("request");
    assert!(
        matches!(r.state.as_str(), "expired" | "revoked"),
        "ended with the membership: {}",
        r.state
    );
    let e = bob
        .request_activation(&ask("security-reader", 3600, Some("again")))
        .await
        .expect_err("no longer a member");
    assert_eq!(e.code(), Some("not_eligible"));
    app.stop().await;
}

/// Joining asks what the group's strictest role asks (here a ticket), and the membership has no
/// settings of its own to weaken.
async fn a_membership_is_as_strict_as_the_groups_strictest_role(app: TestApp) {
    let admin = admin(&app).await;
    role_assignable_group(&admin, GROUP).await;
    group_holds(&admin, "audit-reader", None, true).await;
    group_holds(&admin, "security-reader", None, false).await;
    admin
        .update_role_settings(
            "security-reader",
            &RoleSettingsUpdate {
                require_ticket: Some(true),
                ..Default::default()
            },
        )
        .await
        .expect("a stricter ordinary role");
    let bob = eligible_bob(&app, &admin).await;
    let e = bob
        .request_activation(&join(3600))
        .await
        .expect_err("a ticket, as security-reader asks");
    assert_eq!(e.status(), Some(400), "{e}");
    assert!(e.to_string().contains("ticket"), "{e}");
    let m = bob
        .request_activation(&CreateActivationRequest {
            ticket: Some("CHG-7".into()),
            ..join(3600)
        })
        .await
        .expect("join");
    assert_eq!(m.state, "active");
    let e = admin
        .role_settings("group-member")
        .await
        .expect_err("no settings of its own");
    assert_eq!(e.code(), Some("not_found"));
    app.stop().await;
}

/// Joining a group that holds Global Administrator asks what Global Administrator asks: its
/// approvers and a security key (bob has only TOTP); and its eligible members are privileged.
async fn a_membership_of_a_global_administrator_group_is_top_tier(app: TestApp) {
    let admin = admin(&app).await;
    role_assignable_group(&admin, GROUP).await;
    group_holds(&admin, "global-administrator", None, false).await;
    admin
        .create_user(&CreateUserRequest {
            name: "carl".into(),
            display_name: "Carl".into(),
            email: None,
            phone: None,
            guest_organisation: None,
            privileged: false,
            password: "amber-willow-canyon-58".into(),
        })
        .await
        .expect("an ordinary user");
    assert!(!admin.user("carl").await.expect("carl").privileged);
    admin
        .create_assignment(&membership_of("carl"))
        .await
        .expect("eligible membership");
    assert!(
        admin.user("carl").await.expect("carl").privileged,
        "eligible to join a privileged group is privileged"
    );
    let bob = eligible_bob(&app, &admin).await;
    let e = bob
        .request_activation(&join(1800))
        .await
        .expect_err("Global Administrator's approvers");
    assert_eq!(e.code(), Some("conflict"), "{e}");
    assert!(
        e.to_string()
            .contains("joining release-team requires approval"),
        "{e}"
    );
    admin
        .update_role_settings(
            "global-administrator",
            &RoleSettingsUpdate {
                approvers: Some(vec!["user:root-admin".into()]),
                ..Default::default()
            },
        )
        .await
        .expect("naming approvers applies at once");
    let e = bob
        .request_activation(&join(1800))
        .await
        .expect_err("Global Administrator's strength");
    assert_eq!(e.code(), Some("step_up_required"), "{e}");
    app.stop().await;
}

/// Memberships are reviewed like a role: a removal at the close ends the eligibility, the active
/// membership and what rests on it.
async fn a_review_removes_a_membership_and_what_rests_on_it(app: TestApp) {
    let admin = admin(&app).await;
    role_assignable_group(&admin, GROUP).await;
    group_holds(&admin, "audit-reader", None, true).await;
    let bob = eligible_bob(&app, &admin).await;
    let m = bob.request_activation(&join(3600)).await.expect("join");
    assert!(can_read_audit(&bob).await);
    let (ivy, _) = mfa_user(&app, &admin, "ivy", "cobalt-meadow-lantern-39").await;
    let r = admin
        .create_review(&portcullis_core::api::CreateReviewRequest {
            scope: Some(SCOPE.into()),
            ..review_of("group-member", "user:ivy", "keep")
        })
        .await
        .expect("a review of the group's memberships");
    let round = open_round(&r);
    let item = item_of(&ivy, &round, "user:bob").await;
    ivy.decide_review_item(
        &round,
        &item.assignment_id,
        &decision("remove", "left the release team"),
    )
    .await
    .expect("remove");
    admin.close_review_round(&round).await.expect("close");
    assert_eq!(
        bob.activation_request(&m.id).await.expect("request").state,
        "revoked"
    );
    assert!(members(&admin).await.is_empty());
    assert!(!can_read_audit(&bob).await);
    assert!(
        admin
            .assignments()
            .await
            .expect("assignments")
            .iter()
            .all(|a| a.role != "group-member"),
        "the eligibility ended"
    );
    app.stop().await;
}

/// Whoever may join a group holding a top-tier role can reach that role, so they count as
/// someone who can approve a change request: a lone administrator's weakening then waits for
/// their approval instead of taking effect after the cooling-off.
async fn an_eligible_member_of_a_top_tier_group_can_approve_changes(app: TestApp) {
    let admin = admin(&app).await;
    role_assignable_group(&admin, GROUP).await;
    group_holds(&admin, "privileged-role-administrator", None, false).await;
    let longer = RoleSettingsUpdate {
        max_activation_seconds: Some(36_000),
        ..Default::default()
    };
    let pending = async || {
        let e = admin
            .update_role_settings("security-administrator", &longer)
            .await
            .expect_err("a weakening of a privileged role");
        assert_eq!(e.code(), Some("change_pending"), "{e}");
        let all = admin
            .change_requests(Some("pending"))
            .await
            .expect("changes");
        assert_eq!(all.len(), 1, "{all:?}");
        all[0].clone()
    };
    let alone = pending().await;
    assert!(alone.effective_at.is_some(), "nobody else: a cooling-off");
    admin
        .cancel_change(
            &alone.id,
            &portcullis_core::api::ChangeDecisionRequest::default(),
        )
        .await
        .expect("cancel");
    eligible_bob(&app, &admin).await;
    let with_bob = pending().await;
    assert!(
        with_bob.effective_at.is_none(),
        "bob can join and approve: no cooling-off"
    );
    app.stop().await;
}

async fn membership_is_handed_out_by_the_top_tier_never_to_oneself(app: TestApp) {
    let admin = admin(&app).await;
    role_assignable_group(&admin, GROUP).await;
    admin
        .create_group(&portcullis_core::api::CreateGroupRequest {
            name: "readers".into(),
            display_name: None,
            role_assignable: false,
        })
        .await
        .expect("an ordinary group");
    let (helpdesk, _) = holder(&app, &admin, "hal", "helpdesk-administrator").await;
    mfa_user(&app, &admin, "bob", "amber-willow-canyon-58").await;
    let refused = |e: ClientError, code: &str| assert_eq!(e.code(), Some(code), "{e}");
    refused(
        helpdesk
            .create_assignment(&membership_of("bob"))
            .await
            .expect_err("below the top tier"),
        "forbidden",
    );
    refused(
        admin
            .create_assignment(&membership_of("root-admin"))
            .await
            .expect_err("oneself"),
        "self_assignment",
    );
    refused(
        admin
            .create_assignment(&CreateAssignmentRequest {
                scope: Some("/groups/readers".into()),
                ..membership_of("bob")
            })
            .await
            .expect_err("an ordinary group confers nothing"),
        "invalid_request",
    );
    refused(
        admin
            .create_assignment(&CreateAssignmentRequest {
                kind: Some("active".into()),
                ..membership_of("bob")
            })
            .await
            .expect_err("standing membership is groups add"),
        "invalid_request",
    );
    refused(
        admin
            .create_assignment(&CreateAssignmentRequest {
                scope: None,
                ..membership_of("bob")
            })
            .await
            .expect_err("membership of what"),
        "invalid_request",
    );
    refused(
        admin
            .create_assignment(&CreateAssignmentRequest {
                scope: Some(SCOPE.into()),
                ..eligible("bob", "security-reader", None)
            })
            .await
            .expect_err("a role at a group's scope"),
        "invalid_request",
    );
    refused(
        admin
            .create_role(&portcullis_core::api::CreateRoleRequest {
                slug: "group-member".into(),
                display_name: None,
                description: "a decoy".into(),
                permissions: vec!["users.read".into()],
            })
            .await
            .expect_err("a reserved name"),
        "invalid_request",
    );
    assert!(
        admin
            .assignments()
            .await
            .expect("assignments")
            .iter()
            .all(|a| a.role != "group-member"),
        "nothing was written"
    );
    app.stop().await;
}

api_tests!(
    an_active_membership_confers_what_the_group_holds,
    an_activation_through_the_group_ends_with_the_membership,
    a_membership_expires_to_the_second_with_what_rests_on_it,
    a_membership_is_as_strict_as_the_groups_strictest_role,
    a_membership_of_a_global_administrator_group_is_top_tier,
    membership_is_handed_out_by_the_top_tier_never_to_oneself,
    a_review_removes_a_membership_and_what_rests_on_it,
    an_eligible_member_of_a_top_tier_group_can_approve_changes,
);
