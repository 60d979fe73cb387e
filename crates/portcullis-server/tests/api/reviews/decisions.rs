//! Who decides what: a round's reach, one's own access refused (directly and through a group),
//! non-reviewers and ordinary groups refused, service accounts refused, a decision made once
//! and only while the round is open, creation refused without `reviews.manage`, and bad input
//! changing nothing.

use super::*;

api_tests!(
    a_round_lists_every_eligible_and_active_assignment_in_its_reach,
    reviewing_your_own_assignment_is_refused_and_audited,
    only_listed_people_and_role_assignable_groups_review,
    a_service_account_never_reviews,
    a_decision_is_made_once_while_the_round_is_open,
    creating_a_review_needs_reviews_manage,
    bad_input_is_refused_and_changes_nothing,
);

async fn a_round_lists_every_eligible_and_active_assignment_in_its_reach(app: TestApp) {
    let admin = admin(&app).await;
    let (bob, _) = mfa_user(&app, &admin, "bob", PW).await;
    let alice = eligible_person(&app, &admin, "alice").await;
    mfa_user(&app, &admin, "carol", PW).await;
    admin
        .create_assignment(&CreateAssignmentRequest {
            principal: "carol".into(),
            role: ROLE.into(),
            scope: None,
            kind: Some("active".into()),
            duration_seconds: Some(86_400),
            ends_at: None,
        })
        .await
        .expect("active");
    mfa_user(&app, &admin, "dan", PW).await;
    admin
        .create_assignment(&CreateAssignmentRequest {
            scope: Some("/targets/lab".into()),
            ..eligible("dan", ROLE, None)
        })
        .await
        .expect("eligible at a target");
    // Another role is not in reach.
    admin
        .create_assignment(&eligible("dan", "security-reader", None))
        .await
        .expect("other role");
    let all = admin
        .create_review(&review_of(ROLE, "user:bob", "keep"))
        .await
        .expect("review");
    assert_eq!(all.rounds.len(), 1);
    assert_eq!((all.rounds[0].items, all.rounds[0].decided), (3, 0));
    let round = admin.review_round(&open_round(&all)).await.expect("round");
    let mut seen: Vec<(String, String, String, String)> = round
        .items
        .iter()
        .map(|i| {
            (
                i.principal.clone(),
                i.kind.clone(),
                i.scope.clone(),
                i.reviewer.clone(),
            )
        })
        .collect();
    seen.sort();
    let want = |p: &str, k: &str, s: &str| {
        (
            p.to_owned(),
            k.to_owned(),
            s.to_owned(),
            "user:bob".to_owned(),
        )
    };
    assert_eq!(
        seen,
        vec![
            want("user:alice", "eligible", "/"),
            want("user:carol", "active", "/"),
            want("user:dan", "eligible", "/targets/lab"),
        ]
    );
    // A review at one scope reaches that scope only.
    let lab = admin
        .create_review(&CreateReviewRequest {
            scope: Some("/targets/lab".into()),
            ..review_of(ROLE, "user:bob", "keep")
        })
        .await
        .expect("review at a scope");
    assert_eq!(lab.rounds[0].items, 1);
    // bob sees his items, with the right to decide them; alice has nothing to review.
    let mine = bob.my_review_items().await.expect("items");
    assert_eq!(mine.len(), 4);
    assert!(mine.iter().all(|i| i.can_decide && i.decision.is_none()));
    assert!(alice.my_review_items().await.expect("items").is_empty());
    refused(alice.review_round(&round.id).await, "not_found", "round");
    let opened = events_named(&admin, "review.round_opened").await;
    assert_eq!(opened.len(), 2);
    assert!(
        opened
            .iter()
            .any(|e| e.details["items"] == 3 && e.details["round_id"] == round.id.as_str())
    );
    app.stop().await;
}

async fn reviewing_your_own_assignment_is_refused_and_audited(app: TestApp) {
    let admin = admin(&app).await;
    let alice = eligible_person(&app, &admin, "alice").await;
    let bob = eligible_person(&app, &admin, "bob").await;
    group_with(&admin, "reviewers", true, &["alice", "bob"]).await;
    // The group itself holds the role too: its members' access through it is their own.
    admin
        .create_assignment(&eligible("group:reviewers", ROLE, None))
        .await
        .expect("group eligible");
    let r = admin
        .create_review(&review_of(ROLE, "group:reviewers", "remove"))
        .await
        .expect("review");
    let round = open_round(&r);
    let own = item_of(&alice, &round, "user:alice").await;
    assert!(!own.can_decide, "her own item is not hers to decide");
    let tried = alice
        .decide_review_item(
            &round,
            &own.assignment_id,
            &decision("keep", "I still need it"),
        )
        .await;
    refused(tried, "self_review", "own access");
    let group_item = item_of(&alice, &round, "group:reviewers").await;
    let tried = alice
        .decide_review_item(
            &round,
            &group_item.assignment_id,
            &decision("keep", "we need it"),
        )
        .await;
    refused(tried, "self_review", "own access");
    // Nothing was recorded; another reviewer decides her item.
    assert!(
        item_of(&admin, &round, "user:alice")
            .await
            .decision
            .is_none()
    );
    let decided = bob
        .decide_review_item(
            &round,
            &own.assignment_id,
            &decision("keep", "on call this quarter"),
        )
        .await
        .expect("bob decides alice's");
    assert_eq!(decided.decision.as_deref(), Some("keep"));
    assert_eq!(decided.decided_by.as_deref(), Some("user:bob"));
    let refusals = events_named(&admin, "authz.refused").await;
    assert!(
        refusals.iter().any(|e| e.actor == "user:alice"
            && e.details["code"] == "self_review"
            && e.target == "route:POST /api/v1/reviews/rounds/{id}/items/{assignment}/decide"),
        "{refusals:?}"
    );
    let decisions = events_named(&admin, "review.decided").await;
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].actor, "user:bob");
    assert_eq!(decisions[0].target, "user:alice");
    assert_eq!(decisions[0].details["reason"], "on call this quarter");
    app.stop().await;
}

async fn only_listed_people_and_role_assignable_groups_review(app: TestApp) {
    let admin = admin(&app).await;
    eligible_person(&app, &admin, "alice").await;
    mfa_user(&app, &admin, "bob", PW).await;
    let (carol, _) = mfa_user(&app, &admin, "carol", PW).await;
    group_with(&admin, "desk", false, &["carol"]).await;
    // An ordinary group (Helpdesk changes its members) is refused as reviewers.
    let r = admin
        .create_review(&review_of(ROLE, "group:desk", "remove"))
        .await;
    refused(r, "invalid_request", "not role-assignable");
    assert!(admin.reviews().await.expect("list").is_empty());
    let r = admin
        .create_review(&review_of(ROLE, "user:bob", "remove"))
        .await
        .expect("review");
    let round = open_round(&r);
    let item = item_of(&admin, &round, "user:alice").await;
    // carol is not the reviewer.
    let tried = carol
        .decide_review_item(
            &round,
            &item.assignment_id,
            &decision("remove", "not needed"),
        )
        .await;
    refused(tried, "forbidden", "not a reviewer");
    // Even if the stored reviewer named an ordinary group she is in, it confers nothing.
    db_exec(
        &app.config,
        "UPDATE access_review_items SET reviewer = 'group:desk'",
    )
    .await;
    let tried = carol
        .decide_review_item(
            &round,
            &item.assignment_id,
            &decision("remove", "not needed"),
        )
        .await;
    refused(tried, "forbidden", "not a reviewer");
    assert!(carol.my_review_items().await.expect("items").is_empty());
    assert!(
        item_of(&admin, &round, "user:alice")
            .await
            .decision
            .is_none()
    );
    app.stop().await;
}

async fn a_service_account_never_reviews(app: TestApp) {
    let admin = admin(&app).await;
    eligible_person(&app, &admin, "alice").await;
    let s = service_account_with_secret(&admin, "review-bot").await;
    // A service account cannot be named…
    let r = admin
        .create_review(&review_of(ROLE, "user:review-bot", "keep"))
        .await;
    refused(r, "invalid_request", "does not exist");
    // …and with its token it decides nothing.
    let r = admin
        .create_review(&review_of(ROLE, "user:root-admin", "keep"))
        .await
        .expect("review");
    let round = open_round(&r);
    let item = item_of(&admin, &round, "user:alice").await;
    let token = access_token(&app, &s.client_id, &s.client_secret).await;
    let bot = app.anonymous.with_token(Some(SecretString::from(token)));
    let tried = bot
        .decide_review_item(&round, &item.assignment_id, &decision("keep", "automated"))
        .await;
    refused(tried, "forbidden", "only people");
    assert!(
        item_of(&admin, &round, "user:alice")
            .await
            .decision
            .is_none()
    );
    app.stop().await;
}

async fn a_decision_is_made_once_while_the_round_is_open(app: TestApp) {
    let admin = admin(&app).await;
    eligible_person(&app, &admin, "alice").await;
    eligible_person(&app, &admin, "carol").await;
    let (bob, _) = mfa_user(&app, &admin, "bob", PW).await;
    let r = admin
        .create_review(&review_of(ROLE, "user:bob", "keep"))
        .await
        .expect("review");
    let round = open_round(&r);
    let alice_item = item_of(&bob, &round, "user:alice").await;
    bob.decide_review_item(
        &round,
        &alice_item.assignment_id,
        &decision("keep", "needed"),
    )
    .await
    .expect("decide");
    let again = bob
        .decide_review_item(
            &round,
            &alice_item.assignment_id,
            &decision("remove", "changed my mind"),
        )
        .await;
    refused(again, "already_decided", "decided already");
    assert_eq!(
        item_of(&bob, &round, "user:alice")
            .await
            .decision
            .as_deref(),
        Some("keep")
    );
    admin.close_review_round(&round).await.expect("close");
    let carol_item = item_of(&admin, &round, "user:carol").await;
    let late = bob
        .decide_review_item(
            &round,
            &carol_item.assignment_id,
            &decision("remove", "too late"),
        )
        .await;
    refused(late, "conflict", "closed");
    // The close gave carol the default (keep), and nothing changed it afterwards.
    let carol_item = item_of(&admin, &round, "user:carol").await;
    assert_eq!(carol_item.decision.as_deref(), Some("keep"));
    assert_eq!(carol_item.decided_by.as_deref(), Some("default"));
    // A closed round cannot be closed again.
    refused(
        admin.close_review_round(&round).await,
        "conflict",
        "not open",
    );
    app.stop().await;
}

async fn creating_a_review_needs_reviews_manage(app: TestApp) {
    let admin = admin(&app).await;
    eligible_person(&app, &admin, "alice").await;
    let (hal, _) = holder(&app, &admin, "hal", "helpdesk-administrator").await;
    let r = hal
        .create_review(&review_of(ROLE, "user:root-admin", "remove"))
        .await;
    refused(r, "forbidden", "reviews.manage");
    refused(hal.reviews().await, "forbidden", "reviews.read");
    // A Security Reader reads reviews but creates none.
    let (sara, _) = holder(&app, &admin, "sara", "security-reader").await;
    refused(
        sara.create_review(&review_of(ROLE, "user:root-admin", "remove"))
            .await,
        "forbidden",
        "reviews.manage",
    );
    assert!(sara.reviews().await.expect("list").is_empty());
    let refusals = events_named(&admin, "authz.refused").await;
    assert!(
        refusals
            .iter()
            .any(|e| e.actor == "user:hal" && e.target == "route:POST /api/v1/reviews"),
        "{refusals:?}"
    );
    assert!(events_named(&admin, "review.created").await.is_empty());
    app.stop().await;
}

async fn bad_input_is_refused_and_changes_nothing(app: TestApp) {
    let admin = admin(&app).await;
    eligible_person(&app, &admin, "alice").await;
    let ok = || review_of(ROLE, "user:root-admin", "remove");
    let cases: Vec<(CreateReviewRequest, &str, &str)> = vec![
        (
            review_of("no-such-role", "user:root-admin", "remove"),
            "not_found",
            "no-such-role",
        ),
        (
            CreateReviewRequest {
                default_decision: "delete".into(),
                ..ok()
            },
            "invalid_request",
            "default",
        ),
        (
            CreateReviewRequest {
                duration: Some("14".into()),
                ..ok()
            },
            "invalid_request",
            "duration",
        ),
        (
            CreateReviewRequest {
                duration: Some("2w".into()),
                ..ok()
            },
            "invalid_request",
            "duration",
        ),
        (
            CreateReviewRequest {
                every: Some("0d".into()),
                ..ok()
            },
            "invalid_request",
            "duration",
        ),
        (
            CreateReviewRequest {
                every: Some("10m".into()),
                ..ok()
            },
            "invalid_request",
            "at least 1h",
        ),
        (
            CreateReviewRequest {
                every: Some("7d".into()),
                duration: Some("14d".into()),
                ..ok()
            },
            "invalid_request",
            "duration > every",
        ),
        (
            CreateReviewRequest {
                scope: Some("/nowhere".into()),
                ..ok()
            },
            "invalid_request",
            "scope",
        ),
        (
            review_of(ROLE, "everyone", "remove"),
            "invalid_request",
            "reviewers must be",
        ),
        (
            review_of(ROLE, "user:nobody-here", "remove"),
            "invalid_request",
            "does not exist",
        ),
        (
            review_of(ROLE, "managers", "remove"),
            "invalid_request",
            "fallback",
        ),
        (
            CreateReviewRequest {
                fallback: Some("user:root-admin".into()),
                ..ok()
            },
            "invalid_request",
            "only for managers",
        ),
        (
            review_of(ROLE, "user:root\u{202e}admin", "remove"),
            "invalid_request",
            "reviewers must be",
        ),
    ];
    for (req, code, needle) in cases {
        let r = admin.create_review(&req).await;
        refused(r, code, needle);
    }
    // A decision needs keep or remove and a reason.
    let r = admin
        .create_review(&review_of(ROLE, "user:root-admin", "keep"))
        .await
        .expect("review");
    let round = open_round(&r);
    let item = item_of(&admin, &round, "user:alice").await;
    for (d, why, needle) in [
        ("maybe", "x", "keep or remove"),
        ("keep", "   ", "reason"),
        ("keep", "line\u{0}break", "reason"),
    ] {
        refused(
            admin
                .decide_review_item(&round, &item.assignment_id, &decision(d, why))
                .await,
            "invalid_request",
            needle,
        );
    }
    refused(
        admin
            .decide_review_item(&round, "a_nothing", &decision("keep", "x"))
            .await,
        "not_found",
        "item",
    );
    refused(admin.review("rv_nothing").await, "not_found", "review");
    assert_eq!(admin.reviews().await.expect("list").len(), 1);
    assert_eq!(events_named(&admin, "review.created").await.len(), 1);
    assert!(events_named(&admin, "review.decided").await.is_empty());
    app.stop().await;
}
