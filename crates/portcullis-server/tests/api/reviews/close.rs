//! What a round's close applies: a removal ends the assignment through the normal path (its
//! active grant revoked, the target's revoke written and delivered), undecided items get the
//! default, a default never removes a break-glass account, the guards of two break-glass
//! accounts and the last Global Administrator hold, the worker closes a round at its end, and
//! a round closing on two replicas applies its defaults once.

use super::*;

api_tests!(
    a_removal_ends_the_assignment_revokes_its_grant_and_the_target,
    undecided_items_get_the_default_at_the_close,
    a_default_never_removes_a_breakglass_account_or_the_last_global_administrator,
    the_worker_closes_a_round_when_it_ends,
    a_recurring_review_opens_its_next_round_once_when_due,
);

backend_tests!(a_review_closing_on_two_replicas_applies_its_defaults_once);

async fn a_removal_ends_the_assignment_revokes_its_grant_and_the_target(app: TestApp) {
    let admin = admin(&app).await;
    let inbox = Inbox::default();
    let (port, _task) = receiver(inbox.clone(), 0).await;
    deploy_hook(&admin, port).await;
    let (ivy, _) = mfa_user(&app, &admin, "ivy", PW).await;
    admin
        .create_assignment(&CreateAssignmentRequest {
            scope: Some("/targets/deploy-hook".into()),
            ..eligible("ivy", "deployer", None)
        })
        .await
        .expect("eligible");
    let grant = ivy
        .request_activation(&CreateActivationRequest {
            scope: Some("/targets/deploy-hook".into()),
            ..ask("deployer", 3600, Some("release 7"))
        })
        .await
        .expect("activate");
    assert_eq!(grant.state, "active");
    hook_op_applied(&admin, "grant").await;
    let (bob, _) = mfa_user(&app, &admin, "bob", PW).await;
    let r = admin
        .create_review(&review_of("deployer", "user:bob", "keep"))
        .await
        .expect("review");
    let round = open_round(&r);
    let item = item_of(&bob, &round, "user:ivy").await;
    bob.decide_review_item(
        &round,
        &item.assignment_id,
        &decision("remove", "left the release team"),
    )
    .await
    .expect("remove");
    // Nothing happens before the close.
    assert_eq!(live_assignments(&admin, "user:ivy", "deployer").await, 1);
    admin.close_review_round(&round).await.expect("close");
    assert_eq!(live_assignments(&admin, "user:ivy", "deployer").await, 0);
    let applied = item_of(&admin, &round, "user:ivy").await;
    assert_eq!(applied.outcome.as_deref(), Some("removed"));
    assert!(applied.applied_at.is_some());
    // Her active grant made through it is revoked, and so is the target's grant.
    let req = ivy.activation_request(&grant.id).await.expect("request");
    assert_eq!(req.state, "revoked");
    assert_eq!(req.close_reason.as_deref(), Some("review_removed"));
    hook_op_applied(&admin, "revoke").await;
    assert!(
        inbox
            .lock()
            .expect("inbox")
            .requests
            .iter()
            .any(|(_, _, body)| body.contains("\"revoke\"")),
        "the webhook received the revoke"
    );
    // Audited through the normal path: the removal names the review and the reviewer.
    let removed = events_named(&admin, "assignment.removed").await;
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].actor, "user:root-admin");
    assert_eq!(removed[0].target, "user:ivy");
    assert_eq!(removed[0].details["decided_by"], "user:bob");
    assert_eq!(removed[0].details["round_id"], round.as_str());
    assert_eq!(events_named(&admin, "request.revoked").await.len(), 1);
    let closed = events_named(&admin, "review.closed").await;
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].details["removed"], 1);
    app.stop().await;
}

async fn undecided_items_get_the_default_at_the_close(app: TestApp) {
    let admin = admin(&app).await;
    eligible_person(&app, &admin, "alice").await;
    eligible_person(&app, &admin, "carol").await;
    let (bob, _) = mfa_user(&app, &admin, "bob", PW).await;
    let r = admin
        .create_review(&review_of(ROLE, "user:bob", "remove"))
        .await
        .expect("review");
    let round = open_round(&r);
    let alice = item_of(&bob, &round, "user:alice").await;
    bob.decide_review_item(
        &round,
        &alice.assignment_id,
        &decision("keep", "runs the audit"),
    )
    .await
    .expect("keep");
    let closed = admin.close_review_round(&round).await.expect("close");
    assert_eq!(closed.state, "closed");
    assert_eq!(live_assignments(&admin, "user:alice", ROLE).await, 1);
    assert_eq!(live_assignments(&admin, "user:carol", ROLE).await, 0);
    let carol = item_of(&admin, &round, "user:carol").await;
    assert_eq!(carol.decision.as_deref(), Some("remove"));
    assert_eq!(carol.decided_by.as_deref(), Some("default"));
    assert_eq!(carol.outcome.as_deref(), Some("removed"));
    let alice = item_of(&admin, &round, "user:alice").await;
    assert_eq!(
        (alice.decided_by.as_deref(), alice.outcome.as_deref()),
        (Some("user:bob"), Some("kept"))
    );
    // The default decision is audited like a reviewer's.
    let decided = events_named(&admin, "review.decided").await;
    let by_default: Vec<_> = decided
        .iter()
        .filter(|e| e.details["default"] == true)
        .collect();
    assert_eq!(by_default.len(), 1);
    assert_eq!(by_default[0].target, "user:carol");
    let ended = admin.assignments_of("carol").await.expect("assignments");
    assert!(ended.is_empty(), "{ended:?}");
    let review = admin.review(&r.id).await.expect("review");
    assert_eq!(review.rounds[0].state, "closed");
    assert_eq!(
        review.next_round_at, None,
        "a one-off review opens no next round"
    );
    app.stop().await;
}

/// A review of Global Administrator whose default is remove: the break-glass accounts are
/// kept by the default; an explicit removal of one would leave fewer than two usable and is
/// refused at the close; the first administrator, the last person who can reach Global
/// Administrator, is not removed either. Each refusal is on the item and audited; the round
/// still closes.
async fn a_default_never_removes_a_breakglass_account_or_the_last_global_administrator(
    app: TestApp,
) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    people(&admin, &["cus-a", "cus-b", "cus-c"]).await;
    create_split_account(&app, &token, "bg-one", &["cus-a", "cus-b", "cus-c"], 2).await;
    create_split_account(&app, &token, "bg-two", &["cus-a", "cus-b", "cus-c"], 2).await;
    let (bob, _) = mfa_user(&app, &admin, "bob", PW).await;
    let r = admin
        .create_review(&review_of("global-administrator", "user:bob", "remove"))
        .await
        .expect("review");
    let round = open_round(&r);
    assert_eq!(r.rounds[0].items, 3, "root-admin, bg-one and bg-two");
    let bg_one = item_of(&bob, &round, "user:bg-one").await;
    bob.decide_review_item(
        &round,
        &bg_one.assignment_id,
        &decision("remove", "custodian left"),
    )
    .await
    .expect("an explicit removal is recorded");
    let closed = admin.close_review_round(&round).await.expect("close");
    assert_eq!(closed.state, "closed");
    let outcome = |p: &str| {
        closed
            .items
            .iter()
            .find(|i| i.principal == p)
            .and_then(|i| i.outcome.clone())
    };
    assert_eq!(
        outcome("user:bg-one").as_deref(),
        Some("refused_breakglass_minimum")
    );
    assert_eq!(outcome("user:bg-two").as_deref(), Some("kept"));
    assert_eq!(
        outcome("user:root-admin").as_deref(),
        Some("refused_last_global_administrator")
    );
    let bg_two = closed
        .items
        .iter()
        .find(|i| i.principal == "user:bg-two")
        .expect("bg-two");
    assert_eq!(bg_two.decided_by.as_deref(), Some("default"));
    assert!(
        bg_two
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("break-glass")
    );
    for p in ["user:root-admin", "user:bg-one", "user:bg-two"] {
        assert_eq!(
            live_assignments(&admin, p, "global-administrator").await,
            1,
            "{p}"
        );
    }
    let refused: Vec<_> = events_named(&admin, "assignment.removed")
        .await
        .into_iter()
        .filter(|e| e.outcome == "failure")
        .collect();
    let mut reasons: Vec<String> = refused
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e.target,
                e.details["reason"].as_str().unwrap_or("")
            )
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        vec![
            "user:bg-one breakglass_minimum".to_owned(),
            "user:root-admin last_global_administrator".to_owned()
        ]
    );
    let summary = events_named(&admin, "review.closed").await;
    assert_eq!(summary.len(), 1);
    assert_eq!(summary[0].details["refused"], 2);
    // Kept by the rule, the account is listed in the summary, not named by an event of its own
    // (which would raise the critical break-glass alert for a change that did not happen).
    assert_eq!(
        summary[0].details["breakglass_kept"],
        serde_json::json!(["bg-two"])
    );
    assert!(
        events_named(&admin, "review.decided")
            .await
            .iter()
            .all(|e| e.target != "user:bg-two")
    );
    app.stop().await;
}

async fn the_worker_closes_a_round_when_it_ends(app: TestApp) {
    let admin = admin(&app).await;
    eligible_person(&app, &admin, "alice").await;
    let r = admin
        .create_review(&CreateReviewRequest {
            duration: Some("2s".into()),
            ..review_of(ROLE, "user:root-admin", "remove")
        })
        .await
        .expect("review");
    let round = open_round(&r);
    eventually("the round closed by the worker", 20, async || {
        admin.review_round(&round).await.expect("round").state == "closed"
    })
    .await;
    assert_eq!(live_assignments(&admin, "user:alice", ROLE).await, 0);
    let closed = events_named(&admin, "review.closed").await;
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].actor, "system:reviews");
    assert_eq!(closed[0].details["defaulted"], 1);
    app.stop().await;
}

/// Two replicas on one PostgreSQL: the round's end comes while both workers watch it, and both
/// also run the review work by hand at that moment. The round closes once: one `review.closed`,
/// each assignment ended once, each target revoke written and delivered once.
async fn a_review_closing_on_two_replicas_applies_its_defaults_once(backend: Backend) {
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
    let inbox = Inbox::default();
    let (port, _task) = receiver(inbox.clone(), 0).await;
    deploy_hook(&on_a, port).await;
    const N: usize = 8;
    for i in 0..N {
        let name = format!("job-{i:02}");
        on_a.create_service_account(&CreateServiceAccountRequest {
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
            duration_seconds: Some(86_400),
            ends_at: None,
        })
        .await
        .expect("assignment");
    }
    eventually("every grant applied", 30, async || {
        on_a.target_ops(Some("deploy-hook"), None)
            .await
            .expect("ops")
            .iter()
            .filter(|o| o.op == "grant" && o.state == "applied")
            .count()
            == N
    })
    .await;
    let r = on_a
        .create_review(&CreateReviewRequest {
            duration: Some("3s".into()),
            ..review_of("deployer", "user:root-admin", "remove")
        })
        .await
        .expect("review");
    let round = open_round(&r);
    assert_eq!(r.rounds[0].items, N as i64);
    let closes = time::OffsetDateTime::parse(
        &r.rounds[0].closes_at,
        &time::format_description::well_known::Rfc3339,
    )
    .expect("closes_at");
    let wait = closes - time::OffsetDateTime::now_utc() + time::Duration::milliseconds(20);
    tokio::time::sleep(std::time::Duration::try_from(wait).unwrap_or_default()).await;
    // Both replicas at once, besides their workers.
    let (ra, rb) = tokio::join!(
        portcullis_server::services::reviews::run_due(&a.state),
        portcullis_server::services::reviews::run_due(&b.state),
    );
    ra.expect("replica a");
    rb.expect("replica b");
    eventually("every revoke applied", 30, async || {
        on_a.target_ops(Some("deploy-hook"), None)
            .await
            .expect("ops")
            .iter()
            .filter(|o| o.op == "revoke" && o.state == "applied")
            .count()
            >= N
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        on_a.review_round(&round).await.expect("round").state,
        "closed"
    );
    assert_eq!(
        events_named(&on_a, "review.closed").await.len(),
        1,
        "closed once"
    );
    let removed = events_named(&on_a, "assignment.removed").await;
    assert_eq!(removed.len(), N, "each removal once: {removed:?}");
    let defaults = events_named(&on_a, "review.decided").await;
    assert_eq!(defaults.len(), N, "each default decided once");
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
    let delivered = inbox
        .lock()
        .expect("inbox")
        .requests
        .iter()
        .filter(|(_, _, body)| body.contains("\"revoke\""))
        .count();
    assert_eq!(delivered, N, "each revoke delivered once");
    a.stop().await;
    b.stop().await;
}

/// A recurring review: its next round opens when due, once however often the review work runs
/// (here by hand, on the test's clock), and not while a round is open.
async fn a_recurring_review_opens_its_next_round_once_when_due(app: TestApp) {
    let admin = admin(&app).await;
    eligible_person(&app, &admin, "alice").await;
    let r = admin
        .create_review(&CreateReviewRequest {
            every: Some("90d".into()),
            duration: Some("14d".into()),
            ..review_of(ROLE, "user:root-admin", "keep")
        })
        .await
        .expect("review");
    let first = open_round(&r);
    let next = time::OffsetDateTime::parse(
        r.next_round_at.as_deref().expect("scheduled"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("next");
    let in_90_days = time::OffsetDateTime::now_utc() + time::Duration::days(90);
    assert!(
        (next - in_90_days).abs() < time::Duration::minutes(1),
        "{next}"
    );
    // Due while the first round is still open: nothing opens.
    db_exec(
        &app.config,
        "UPDATE access_reviews SET next_round_at_us = 1",
    )
    .await;
    portcullis_server::services::reviews::run_due(&app.state)
        .await
        .expect("run");
    assert_eq!(admin.review(&r.id).await.expect("review").rounds.len(), 1);
    admin.close_review_round(&first).await.expect("close");
    for _ in 0..3 {
        portcullis_server::services::reviews::run_due(&app.state)
            .await
            .expect("run");
    }
    let review = admin.review(&r.id).await.expect("review");
    assert_eq!(review.rounds.len(), 2, "{review:?}");
    assert_eq!(review.rounds[0].state, "open");
    assert_eq!(review.rounds[0].items, 1);
    let opened = events_named(&admin, "review.round_opened").await;
    assert_eq!(opened.len(), 2);
    assert_eq!(opened[1].actor, "system:reviews");
    // Deleted, it opens nothing more and its open round is cancelled.
    admin.delete_review(&r.id).await.expect("delete");
    db_exec(
        &app.config,
        "UPDATE access_reviews SET next_round_at_us = 1",
    )
    .await;
    portcullis_server::services::reviews::run_due(&app.state)
        .await
        .expect("run");
    let review = admin.review(&r.id).await.expect("review");
    assert!(!review.enabled);
    assert_eq!(review.rounds.len(), 2);
    assert_eq!(review.rounds[0].state, "cancelled");
    refused(admin.start_review(&r.id).await, "conflict", "deleted");
    app.stop().await;
}
