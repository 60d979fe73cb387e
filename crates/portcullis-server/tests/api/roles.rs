//! Just-in-time roles: eligibility, activation, approval (also racing approvers) and expiry.

use super::*;

async fn jit_roles_activate_approve_and_expire(app: TestApp) {
    let admin = admin(&app).await;
    let (ivy, _) = mfa_user(&app, &admin, "ivy", "amber-willow-canyon-58").await;
    let (jon, _) = mfa_user(&app, &admin, "jon", "cobalt-meadow-lantern-39").await;

    // Nobody holds a role by default.
    let denied = ivy.users().await.expect_err("no role");
    assert_eq!(denied.code(), Some("forbidden"));
    assert!(denied.to_string().contains("users.read"), "{denied}");
    assert!(ivy.whoami().await.expect("me").roles.is_empty());

    // Eligible, then activated just in time.
    admin
        .create_assignment(&eligible("ivy", "helpdesk-administrator", None))
        .await
        .expect("eligible");
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

    // Approval: a role-assignable group of approvers that includes the requester.
    admin
        .create_group(&portcullis_core::api::CreateGroupRequest {
            name: "approvers".into(),
            display_name: None,
            role_assignable: true,
        })
        .await
        .expect("group");
    for m in ["ivy", "jon"] {
        admin
            .add_group_member("approvers", &GroupMemberRequest { member: m.into() })
            .await
            .expect("member");
    }
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
    // Cancelled requests cannot be approved.
    ivy.deactivate(&r.id, &DecisionRequest::default())
        .await
        .expect("deactivate");
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
    // Leaving the role-assignable group is not a way around it, and removing the last
    // eligible path while a request is pending fails that request cleanly.
    let r3 = ivy
        .request_activation(&ask("security-reader", 3600, Some("third")))
        .await
        .expect("pending");
    let elig = admin
        .create_assignment(&eligible("ivy", "audit-reader", Some(3)))
        .await
        .expect("short eligibility");
    let sr = app
        .anonymous
        .with_token(None)
        .roles()
        .await
        .expect_err("roles need a session");
    assert_eq!(sr.code(), Some("unauthenticated"));
    // Expiry: the grant ends with its 3-second eligibility, removed by the worker on time.
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
    let _ = elig;
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

    // Global Administrator needs approval by default, and names no approver yet: said
    // plainly instead of leaving a request nobody can approve.
    admin
        .create_assignment(&eligible("ivy", "global-administrator", Some(3600)))
        .await
        .expect("eligible for GA");
    let e = ivy
        .request_activation(&ask("global-administrator", 600, Some("break fix")))
        .await
        .expect_err("no approvers");
    assert_eq!(e.code(), Some("conflict"));
    assert!(e.to_string().contains("names no approver"), "{e}");

    // Eligibility for a role that changes state makes an account privileged: MFA before a
    // full sign-in from then on. A reader role does not.
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

    // The audit log has the trail, the expiry by the worker included.
    let events = admin
        .audit_events(&EventFilter {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("events")
        .events;
    for action in [
        "assignment.created",
        "request.created",
        "request.activated",
        "request.approved",
        "request.deactivated",
        "request.cancelled",
        "request.expired",
        "assignment.removed",
    ] {
        assert!(
            events.iter().any(|e| e.action == action),
            "{action} missing"
        );
    }
    let activations = events
        .iter()
        .filter(|e| e.action == "request.activated" && e.details["request_id"] == r.id.as_str())
        .count();
    assert_eq!(activations, 1);
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
    jit_roles_activate_approve_and_expire,
    racing_approvers_make_exactly_one_activation,
);
