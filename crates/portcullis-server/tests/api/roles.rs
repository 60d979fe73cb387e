//! Just-in-time roles: eligibility, activation, approval (also racing approvers) and expiry.

use super::*;

/// The actions in the audit log, newest 1,000.
async fn audit_actions(admin: &Client) -> Vec<portcullis_core::api::AuditEventView> {
    admin
        .audit_events(&EventFilter {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("events")
        .events
}

/// Asserts that the audit log has each of `actions`.
async fn audited(admin: &Client, actions: &[&str]) {
    let events = audit_actions(admin).await;
    for action in actions {
        assert!(
            events.iter().any(|e| e.action == *action),
            "{action} missing"
        );
    }
}

/// ivy (eligible for security-reader, which needs one approval from the role-assignable
/// group `approvers`) and jon, both members of that group, signed in with MFA.
async fn approval_setup(app: &TestApp, admin: &Client) -> (Client, Client) {
    approval_setup_for(app, admin, None).await
}

async fn nobody_holds_a_role_by_default(app: TestApp) {
    let admin = admin(&app).await;
    let (ivy, _) = mfa_user(&app, &admin, "ivy", "amber-willow-canyon-58").await;
    let denied = ivy.users().await.expect_err("no role");
    assert_eq!(denied.code(), Some("forbidden"));
    assert!(denied.to_string().contains("users.read"), "{denied}");
    assert!(ivy.whoami().await.expect("me").roles.is_empty());
    let sr = app
        .anonymous
        .with_token(None)
        .roles()
        .await
        .expect_err("roles need a session");
    assert_eq!(sr.code(), Some("unauthenticated"));
    app.stop().await;
}

async fn an_activation_request_is_refused_with_the_reason(app: TestApp) {
    let admin = admin(&app).await;
    let ivy = eligible_mfa_user(&app, &admin, "ivy", "helpdesk-administrator", None).await;
    let bad = [
        (
            ask("helpdesk-administrator", 3600, None),
            "justification_required",
        ),
        (
            ask("helpdesk-administrator", 0, Some("x")),
            "invalid_request",
        ),
        (
            ask("helpdesk-administrator", -60, Some("x")),
            "invalid_request",
        ),
        (
            ask("helpdesk-administrator", 9 * 3600, Some("x")),
            "duration_too_long",
        ),
        (ask("no-such-role", 3600, Some("x")), "not_found"),
        (ask("security-reader", 3600, Some("x")), "not_eligible"),
    ];
    for (req, code_) in bad {
        let e = ivy.request_activation(&req).await.expect_err("refused");
        assert_eq!(e.code(), Some(code_), "{e}");
    }
    let mut scoped = ask("helpdesk-administrator", 3600, Some("x"));
    scoped.scope = Some("/nowhere".into());
    assert_eq!(
        ivy.request_activation(&scoped)
            .await
            .expect_err("scope")
            .code(),
        Some("invalid_request")
    );
    app.stop().await;
}

async fn an_eligible_person_activates_just_in_time_and_deactivates(app: TestApp) {
    let admin = admin(&app).await;
    let ivy = eligible_mfa_user(&app, &admin, "ivy", "helpdesk-administrator", None).await;
    let r = ivy
        .request_activation(&ask(
            "helpdesk-administrator",
            3600,
            Some("ticket INC-7: reset a password"),
        ))
        .await
        .expect("activated");
    assert_eq!(r.state, "active");
    assert!(
        ivy.users().await.is_ok(),
        "the active grant gives users.read"
    );
    let me = ivy.whoami().await.expect("me");
    let left = me.roles[0].seconds_left.expect("bounded");
    assert!((3590..=3600).contains(&left), "{left}");
    // Deactivating early is always allowed; the permission goes with it.
    ivy.deactivate(&r.id, &DecisionRequest::default())
        .await
        .expect("deactivate");
    assert_eq!(
        ivy.users().await.expect_err("gone").code(),
        Some("forbidden")
    );
    audited(
        &admin,
        &[
            "assignment.created",
            "request.created",
            "request.activated",
            "request.deactivated",
        ],
    )
    .await;
    let activations = audit_actions(&admin)
        .await
        .iter()
        .filter(|e| e.action == "request.activated" && e.details["request_id"] == r.id.as_str())
        .count();
    assert_eq!(activations, 1);
    app.stop().await;
}

async fn approval_needs_another_member_of_the_approver_group(app: TestApp) {
    let admin = admin(&app).await;
    let (ivy, jon) = approval_setup(&app, &admin).await;
    let r = ivy
        .request_activation(&ask("security-reader", 3600, Some("quarterly review")))
        .await
        .expect("pending");
    assert_eq!(r.state, "pending_approval");
    let own = ivy
        .approve(&r.id, &DecisionRequest::default())
        .await
        .expect_err("self");
    assert_eq!(own.code(), Some("self_approval"));
    let ok = jon
        .approve(&r.id, &DecisionRequest::default())
        .await
        .expect("approved");
    assert_eq!(
        (ok.state.as_str(), ok.approvals.as_slice()),
        ("active", &["jon".to_owned()][..])
    );
    let twice = jon
        .approve(&r.id, &DecisionRequest::default())
        .await
        .expect_err("twice");
    assert_eq!(twice.code(), Some("already_decided"));
    let deny_late = jon
        .deny(
            &r.id,
            &DecisionRequest {
                reason: Some("no".into()),
            },
        )
        .await
        .expect_err("decided");
    assert_eq!(deny_late.code(), Some("already_decided"));
    audited(&admin, &["request.approved", "request.activated"]).await;
    app.stop().await;
}

async fn a_cancelled_request_cannot_be_approved(app: TestApp) {
    let admin = admin(&app).await;
    let (ivy, jon) = approval_setup(&app, &admin).await;
    let r2 = ivy
        .request_activation(&ask("security-reader", 3600, Some("again")))
        .await
        .expect("pending");
    ivy.cancel_request(&r2.id, &DecisionRequest::default())
        .await
        .expect("cancel");
    let late = jon
        .approve(&r2.id, &DecisionRequest::default())
        .await
        .expect_err("cancelled");
    assert_eq!(late.code(), Some("already_decided"));
    audited(&admin, &["request.cancelled"]).await;
    app.stop().await;
}

/// Removing the last eligible path while a request is pending fails that request cleanly.
async fn removing_the_eligibility_closes_a_pending_request(app: TestApp) {
    let admin = admin(&app).await;
    let (ivy, jon) = approval_setup(&app, &admin).await;
    let r3 = ivy
        .request_activation(&ask("security-reader", 3600, Some("third")))
        .await
        .expect("pending");
    let pending = ivy.activation_request(&r3.id).await.expect("r3");
    assert_eq!(pending.state, "pending_approval");
    admin
        .delete_assignment(&admin_assignment_id(&admin, "ivy", "security-reader").await)
        .await
        .expect("unassign");
    let gone = ivy.activation_request(&r3.id).await.expect("r3");
    assert_eq!(
        (gone.state.as_str(), gone.close_reason.as_deref()),
        ("cancelled", Some("removed"))
    );
    let e = jon
        .approve(&r3.id, &DecisionRequest::default())
        .await
        .expect_err("closed");
    assert_eq!(e.code(), Some("already_decided"));
    audited(&admin, &["assignment.removed", "request.cancelled"]).await;
    app.stop().await;
}

/// The event closing request `id`, with its action.
async fn close_event(
    admin: &Client,
    action: &str,
    id: &str,
) -> portcullis_core::api::AuditEventView {
    audit_actions(admin)
        .await
        .into_iter()
        .find(|e| e.action == action && e.details["request_id"] == id)
        .unwrap_or_else(|| panic!("{action} of {id} missing"))
}

/// Removing the eligibility an active grant came through revokes the grant at once, audited
/// as `request.revoked` with the reason.
async fn removing_the_eligibility_revokes_an_active_grant(app: TestApp) {
    let admin = admin(&app).await;
    let ivy = eligible_mfa_user(&app, &admin, "ivy", "helpdesk-administrator", None).await;
    let r = ivy
        .request_activation(&ask("helpdesk-administrator", 3600, Some("INC-9")))
        .await
        .expect("active");
    assert!(ivy.users().await.is_ok());
    admin
        .delete_assignment(&admin_assignment_id(&admin, "ivy", "helpdesk-administrator").await)
        .await
        .expect("unassign");
    assert_eq!(
        ivy.users().await.expect_err("revoked").code(),
        Some("forbidden")
    );
    let after = ivy.activation_request(&r.id).await.expect("request");
    assert_eq!(after.state, "revoked");
    let e = close_event(&admin, "request.revoked", &r.id).await;
    assert_eq!(e.details["reason"], "removed");
    assert_eq!(e.actor, "user:root-admin");
    app.stop().await;
}

/// A pending request whose eligibility expires is cancelled by the worker, audited as
/// `request.cancelled` by `system:expiry`.
async fn an_expiring_eligibility_cancels_a_pending_request(app: TestApp) {
    let admin = admin(&app).await;
    let (ivy, _) = approval_setup_for(&app, &admin, Some(3)).await;
    let r = ivy
        .request_activation(&ask("security-reader", 3600, Some("soon gone")))
        .await
        .expect("pending");
    assert_eq!(r.state, "pending_approval");
    tokio::time::sleep(std::time::Duration::from_millis(4500)).await;
    let after = ivy.activation_request(&r.id).await.expect("request");
    assert_eq!(after.state, "cancelled");
    let e = close_event(&admin, "request.cancelled", &r.id).await;
    assert_eq!(e.details["reason"], "eligibility_expired");
    assert_eq!(e.actor, "system:expiry");
    app.stop().await;
}

/// The grant ends with its 3-second eligibility, removed by the worker on time.
async fn a_grant_ends_with_its_eligibility(app: TestApp) {
    let admin = admin(&app).await;
    let ivy = eligible_mfa_user(&app, &admin, "ivy", "audit-reader", Some(3)).await;
    let short = ivy
        .request_activation(&ask("audit-reader", 3600, Some("look at the log")))
        .await
        .expect("active");
    assert_eq!(short.state, "active");
    assert!(ivy.audit_events(&EventFilter::default()).await.is_ok());
    tokio::time::sleep(std::time::Duration::from_millis(4500)).await;
    assert_eq!(
        ivy.audit_events(&EventFilter::default())
            .await
            .expect_err("expired")
            .code(),
        Some("forbidden")
    );
    let after = ivy.activation_request(&short.id).await.expect("request");
    assert_eq!(after.state, "expired");
    // The audit log has the expiry by the worker.
    audited(&admin, &["request.expired"]).await;
    app.stop().await;
}

/// Global Administrator needs approval by default, and names no approver yet: said plainly
/// instead of leaving a request nobody can approve.
async fn global_administrator_names_no_approver_until_one_is_set(app: TestApp) {
    let admin = admin(&app).await;
    let ivy = eligible_mfa_user(&app, &admin, "ivy", "global-administrator", Some(3600)).await;
    let e = ivy
        .request_activation(&ask("global-administrator", 600, Some("break fix")))
        .await
        .expect_err("no approvers");
    assert_eq!(e.code(), Some("conflict"));
    assert!(e.to_string().contains("names no approver"), "{e}");
    app.stop().await;
}

/// Eligibility for a role that changes state makes an account privileged: MFA before a full
/// sign-in from then on. A reader role does not.
async fn eligibility_for_a_changing_role_makes_an_account_privileged(app: TestApp) {
    let admin = admin(&app).await;
    admin
        .create_user(&CreateUserRequest {
            name: "sam".into(),
            display_name: "Sam".into(),
            email: None,
            phone: None,
            guest_organisation: None,
            privileged: false,
            password: "juniper-castle-ember-12".into(),
        })
        .await
        .expect("sam");
    admin
        .create_assignment(&eligible("sam", "audit-reader", None))
        .await
        .expect("reader");
    assert!(!admin.user("sam").await.expect("sam").privileged);
    admin
        .create_assignment(&eligible("sam", "helpdesk-administrator", None))
        .await
        .expect("helpdesk");
    assert!(admin.user("sam").await.expect("sam").privileged);
    let sam = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "sam".into(),
            password: "juniper-castle-ember-12".into(),
        })
        .await
        .expect("sam signs in");
    assert_eq!(sam.session.expect("session").scope, "registration_only");
    app.stop().await;
}

async fn racing_approvers_make_exactly_one_activation(app: TestApp) {
    let admin = admin(&app).await;
    let (ivy, _) = mfa_user(&app, &admin, "ivy", "amber-willow-canyon-58").await;
    let mut approvers = Vec::new();
    for (n, pw) in [
        ("jon", "cobalt-meadow-lantern-39"),
        ("kim", "saffron-ridge-otter-71"),
        ("leo", "granite-harbor-violet-24"),
    ] {
        approvers.push(mfa_user(&app, &admin, n, pw).await.0);
    }
    // An approver with a password-only session (not privileged, no second factor).
    admin
        .create_user(&CreateUserRequest {
            name: "pat".into(),
            display_name: "Pat".into(),
            email: None,
            phone: None,
            guest_organisation: None,
            privileged: false,
            password: "quartz-meadow-falcon-27".into(),
        })
        .await
        .expect("pat");
    let r = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "pat".into(),
            password: "quartz-meadow-falcon-27".into(),
        })
        .await
        .expect("pat signs in");
    let pat = app
        .anonymous
        .with_token(Some(SecretString::from(r.session.expect("session").token)));
    admin
        .create_group(&portcullis_core::api::CreateGroupRequest {
            name: "approvers".into(),
            display_name: None,
            role_assignable: true,
        })
        .await
        .expect("group");
    for m in ["jon", "kim", "leo", "pat"] {
        admin
            .add_group_member("approvers", &GroupMemberRequest { member: m.into() })
            .await
            .expect("member");
    }
    admin
        .create_assignment(&eligible("ivy", "security-reader", None))
        .await
        .expect("eligible");
    let settings = |n: u32| RoleSettingsUpdate {
        require_approval: Some(true),
        approvers: Some(vec!["group:approvers".into()]),
        approvals_required: Some(n),
        ..Default::default()
    };
    for required in [2u32, 1] {
        admin
            .update_role_settings("security-reader", &settings(required))
            .await
            .expect("settings");
        let r = ivy
            .request_activation(&ask("security-reader", 1800, Some("audit prep")))
            .await
            .expect("pending");
        assert_eq!(r.state, "pending_approval");
        let weak = pat
            .approve(&r.id, &DecisionRequest::default())
            .await
            .expect_err("password-only approver");
        assert_eq!(weak.code(), Some("step_up_required"));
        // One status per code, wherever it is answered (RFC 9470's step-up is a 401).
        assert_eq!(weak.status(), Some(401));
        let d = DecisionRequest::default();
        let (a, b, c) = tokio::join!(
            approvers[0].approve(&r.id, &d),
            approvers[1].approve(&r.id, &d),
            approvers[2].approve(&r.id, &d)
        );
        let results = [a, b, c];
        let ok = results.iter().filter(|x| x.is_ok()).count();
        assert_eq!(
            ok, required as usize,
            "exactly the needed approvals are accepted"
        );
        for e in results.iter().filter_map(|x| x.as_ref().err()) {
            assert_eq!(e.code(), Some("already_decided"), "{e}");
        }
        let now = ivy.activation_request(&r.id).await.expect("request");
        assert_eq!(
            (now.state.as_str(), now.approvals.len()),
            ("active", required as usize)
        );
        let events = admin
            .audit_events(&EventFilter {
                limit: Some(1000),
                ..Default::default()
            })
            .await
            .expect("events")
            .events;
        let of = |action: &str| {
            events
                .iter()
                .filter(|e| e.action == action && e.details["request_id"] == r.id.as_str())
                .count()
        };
        assert_eq!(of("request.activated"), 1, "one activation");
        assert_eq!(
            of("request.approved"),
            required as usize,
            "one event per accepted approval"
        );
        ivy.deactivate(&r.id, &DecisionRequest::default())
            .await
            .expect("deactivate");
    }
    app.stop().await;
}

api_tests!(
    nobody_holds_a_role_by_default,
    an_activation_request_is_refused_with_the_reason,
    an_eligible_person_activates_just_in_time_and_deactivates,
    approval_needs_another_member_of_the_approver_group,
    a_cancelled_request_cannot_be_approved,
    removing_the_eligibility_closes_a_pending_request,
    removing_the_eligibility_revokes_an_active_grant,
    an_expiring_eligibility_cancels_a_pending_request,
    a_grant_ends_with_its_eligibility,
    global_administrator_names_no_approver_until_one_is_set,
    eligibility_for_a_changing_role_makes_an_account_privileged,
    racing_approvers_make_exactly_one_activation,
);
