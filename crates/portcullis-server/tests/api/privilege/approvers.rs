//! Rule 4 (finding 1): approvers are people, in role-assignable groups that Helpdesk cannot
//! fill; a service account in an approver group approves nothing.

use super::*;

/// Finding 1 and rule 4: approvers are people, and an approver group must be role-assignable.
async fn approvers_are_people_in_role_assignable_groups(app: TestApp) {
    let admin = admin(&app).await;
    // An ordinary group (Helpdesk changes its members) cannot name approvers.
    group(&admin, "approvers", false).await;
    let ordinary = admin
        .update_role_settings(
            GA,
            &RoleSettingsUpdate {
                approvers: Some(vec!["group:approvers".into()]),
                ..Default::default()
            },
        )
        .await;
    refused(ordinary, "invalid_request", "role-assignable");
    group(&admin, "ga-approvers", true).await;
    // Joined before its secret exists: whoever holds its secret may not put it in the group.
    bare_service_account(&admin, "robot").await;
    join(&admin, "ga-approvers", "robot").await;
    let robot_secret = secret_of(&admin, "robot").await;
    let (bob, _) = mfa_user(&app, &admin, "bob", PW).await;
    join(&admin, "ga-approvers", "bob").await;
    settings_now(
        &admin,
        GA,
        &RoleSettingsUpdate {
            require_approval: Some(true),
            approvers: Some(vec!["group:ga-approvers".into()]),
            approvals_required: Some(1),
            required_strength: Some("mfa".into()),
            ..Default::default()
        },
    )
    .await;
    let (ivy, _) = mfa_user(&app, &admin, "ivy", PW).await;
    admin
        .create_assignment(&eligible("ivy", GA, None))
        .await
        .expect("eligible");
    let r = ivy
        .request_activation(&ask(GA, 1800, Some("incident 42")))
        .await
        .expect("request");
    assert_eq!(r.state, "pending_approval");
    // The service account in the approver group approves with its client-credentials token.
    let robot = token_client(&app, &access_token(&app, "robot", &robot_secret).await);
    assert_eq!(
        code_of(robot.approve(&r.id, &DecisionRequest::default()).await),
        "forbidden"
    );
    assert_eq!(
        ivy.activation_request(&r.id).await.expect("request").state,
        "pending_approval"
    );
    assert_eq!(
        refusals_of(&admin, "service_account:robot").await,
        vec![("forbidden".to_owned(), 1)]
    );
    // A person in the group still approves.
    let done = bob
        .approve(&r.id, &DecisionRequest::default())
        .await
        .expect("bob approves");
    assert_eq!(done.state, "active");
    app.stop().await;
}

/// Finding 1, variant: Helpdesk cannot fill an approver group with colleagues.
async fn helpdesk_cannot_fill_an_approver_group(app: TestApp) {
    let admin = admin(&app).await;
    group(&admin, "ga-approvers", true).await;
    let (hal, _) = holder(&app, &admin, "hal", "helpdesk-administrator").await;
    people(&admin, &["carl", "dora"]).await;
    for who in ["carl", "dora", "hal"] {
        let r = hal
            .add_group_member("ga-approvers", &GroupMemberRequest { member: who.into() })
            .await;
        assert_eq!(code_of(r), "forbidden");
    }
    assert!(
        admin
            .groups()
            .await
            .expect("groups")
            .iter()
            .any(|g| g.name == "ga-approvers" && g.members.is_empty())
    );
    let refused: u64 = refusals_of(&admin, "user:hal")
        .await
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert!(refused >= 1, "the refusals are audited");
    app.stop().await;
}

api_tests!(
    approvers_are_people_in_role_assignable_groups,
    helpdesk_cannot_fill_an_approver_group,
);
