//! `managers` reviews: each person's manager reviews their access, the fallback reviews the
//! rest (people without a manager, groups); setting a manager needs `users.update`, and a
//! privileged person's is the top tier's to set; nobody manages themselves.

use super::*;

api_tests!(
    managers_review_their_reports_and_the_fallback_the_rest,
    setting_a_manager_is_guarded,
);

async fn managers_review_their_reports_and_the_fallback_the_rest(app: TestApp) {
    let admin = admin(&app).await;
    eligible_person(&app, &admin, "alice").await;
    eligible_person(&app, &admin, "carol").await;
    let (mia, _) = mfa_user(&app, &admin, "mia", PW).await;
    let (dan, _) = mfa_user(&app, &admin, "dan", PW).await;
    group_with(&admin, "ops-team", true, &[]).await;
    admin
        .create_assignment(&eligible("group:ops-team", ROLE, None))
        .await
        .expect("group eligible");
    let u = admin
        .set_manager(
            "alice",
            &SetManagerRequest {
                manager: Some("mia".into()),
            },
        )
        .await
        .expect("manager");
    assert_eq!(u.manager.as_deref(), Some("mia"));
    assert_eq!(
        admin.user("alice").await.expect("user").manager.as_deref(),
        Some("mia")
    );
    let r = admin
        .create_review(&CreateReviewRequest {
            fallback: Some("user:dan".into()),
            ..review_of(ROLE, "managers", "keep")
        })
        .await
        .expect("review");
    assert_eq!(r.reviewers, "managers");
    assert_eq!(r.fallback.as_deref(), Some("user:dan"));
    let round = open_round(&r);
    let reviewer = |items: &[ReviewItemView], p: &str| {
        items
            .iter()
            .find(|i| i.principal == p)
            .map(|i| i.reviewer.clone())
            .expect("item")
    };
    let items = admin.review_round(&round).await.expect("round").items;
    assert_eq!(reviewer(&items, "user:alice"), "user:mia");
    assert_eq!(reviewer(&items, "user:carol"), "user:dan");
    assert_eq!(reviewer(&items, "group:ops-team"), "user:dan");
    // mia decides alice's access, not carol's; dan the rest.
    let alice = item_of(&mia, &round, "user:alice").await;
    mia.decide_review_item(
        &round,
        &alice.assignment_id,
        &decision("keep", "on my team"),
    )
    .await
    .expect("manager decides");
    let carol = item_of(&admin, &round, "user:carol").await;
    refused(
        mia.decide_review_item(
            &round,
            &carol.assignment_id,
            &decision("remove", "not mine"),
        )
        .await,
        "forbidden",
        "not a reviewer",
    );
    let theirs: Vec<String> = dan
        .my_review_items()
        .await
        .expect("items")
        .into_iter()
        .map(|i| i.principal)
        .collect();
    assert_eq!(theirs.len(), 2, "{theirs:?}");
    // A manager changed while the round is open does not move its items.
    admin
        .set_manager(
            "carol",
            &SetManagerRequest {
                manager: Some("mia".into()),
            },
        )
        .await
        .expect("manager");
    assert_eq!(
        reviewer(
            &admin.review_round(&round).await.expect("round").items,
            "user:carol"
        ),
        "user:dan"
    );
    app.stop().await;
}

async fn setting_a_manager_is_guarded(app: TestApp) {
    let admin = admin(&app).await;
    let (hal, _) = holder(&app, &admin, "hal", "helpdesk-administrator").await;
    // A person who is eligible for a privileged role is privileged: the top tier's to manage.
    mfa_user(&app, &admin, "ivy", PW).await;
    admin
        .create_assignment(&eligible("ivy", "security-administrator", None))
        .await
        .expect("eligible");
    admin
        .create_user(&CreateUserRequest {
            name: "otto".into(),
            display_name: "Otto".into(),
            email: None,
            phone: None,
            guest_organisation: None,
            privileged: false,
            password: PW.into(),
        })
        .await
        .expect("ordinary person");
    let to = |m: &str| SetManagerRequest {
        manager: Some(m.into()),
    };
    refused(
        hal.set_manager("ivy", &to("hal")).await,
        "privileged_principal",
        "ivy",
    );
    // Helpdesk sets an ordinary person's manager.
    let u = hal.set_manager("otto", &to("hal")).await.expect("ordinary");
    assert_eq!(u.manager.as_deref(), Some("hal"));
    refused(
        admin.set_manager("otto", &to("otto")).await,
        "invalid_request",
        "own manager",
    );
    refused(
        admin.set_manager("otto", &to("nobody-here")).await,
        "not_found",
        "nobody-here",
    );
    let (sara, _) = holder(&app, &admin, "sara", "security-reader").await;
    refused(
        sara.set_manager("otto", &to("sara")).await,
        "forbidden",
        "users.update",
    );
    let cleared = admin
        .set_manager("otto", &SetManagerRequest { manager: None })
        .await
        .expect("cleared");
    assert_eq!(cleared.manager, None);
    let set = events_named(&admin, "user.manager_set").await;
    assert_eq!(set.len(), 2, "{set:?}");
    assert_eq!(set[0].details["manager"], "hal");
    assert!(set[1].details["manager"].is_null());
    app.stop().await;
}
