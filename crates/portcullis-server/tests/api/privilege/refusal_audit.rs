//! Rule 9 (findings 1 and 11): refused privileged attempts, a refused self-approval among
//! them, are audited and aggregated per actor, with counts that add up.

use super::*;

/// Finding 11 and rule 9: refused privileged attempts are audited, aggregated per actor and
/// action per minute, with a count that adds up to every refusal.
async fn refused_attempts_are_audited_and_counted(app: TestApp) {
    let admin = admin(&app).await;
    let (ana, _) = mfa_user(&app, &admin, "ana", PW).await;
    admin
        .create_assignment(&assignment("ana", "audit-reader", "active", Some(86_400)))
        .await
        .expect("an ordinary role may be standing");
    // A custom rule counts refusals: an aggregated event counts as the refusals it stands for.
    admin
        .create_alert_rule(&portcullis_core::api::CreateAlertRuleRequest {
            name: "escalations".into(),
            action: "authz.refused".into(),
            outcome: None,
            actor: None,
            target: None,
            group_by: Some("actor".into()),
            count: 5,
            window: "5m".into(),
            severity: Some("critical".into()),
        })
        .await
        .expect("rule");
    for _ in 0..6 {
        let r = ana
            .create_assignment(&assignment("ana", GA, "active", None))
            .await;
        assert_eq!(code_of(r), "forbidden");
    }
    // The first is on record at once; the five others follow as one summary.
    let first = refusals_of(&admin, "user:ana").await;
    assert_eq!(first, vec![("forbidden".to_owned(), 1)]);
    let (dir, config, _) = app.stop().await;
    // The summary is written when the server stops (or when the minute is over).
    let store = portcullis_store::Store::open(
        &config.database_url(),
        portcullis_store::StoreOptions {
            read_only: true,
            ..Default::default()
        },
    )
    .await
    .expect("store");
    let events = store
        .list_events(&portcullis_store::AuditFilter {
            action: Some("authz.refused".into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("events");
    let total: u64 = events
        .iter()
        .filter(|e| e.actor == "user:ana")
        .map(|e| e.details["count"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(total, 6);
    assert!(
        events
            .iter()
            .all(|e| e.target == "route:POST /api/v1/assignments")
    );
    // The custom rule counted the summary as the five refusals it stands for: six in the
    // window, so it fired, once.
    let outbox = store
        .outbox_messages(None, None, 1000)
        .await
        .expect("outbox");
    let fired: Vec<_> = outbox
        .iter()
        .filter(|m| m.topic == "custom:escalations")
        .collect();
    assert_eq!(fired.len(), 1, "{outbox:?}");
    store.close().await;
    drop(dir);
}

/// Finding 1 (self-approval) and rule 9: a refused approval is evidence too.
async fn a_refused_self_approval_is_audited(app: TestApp) {
    let admin = admin(&app).await;
    group(&admin, "ga-approvers", true).await;
    let (ivy, _) = mfa_user(&app, &admin, "ivy", PW).await;
    join(&admin, "ga-approvers", "ivy").await;
    settings_now(
        &admin,
        GA,
        &RoleSettingsUpdate {
            require_approval: Some(true),
            approvers: Some(vec!["group:ga-approvers".into()]),
            required_strength: Some("mfa".into()),
            ..Default::default()
        },
    )
    .await;
    admin
        .create_assignment(&eligible("ivy", GA, None))
        .await
        .expect("eligible");
    let r = ivy
        .request_activation(&ask(GA, 600, Some("self")))
        .await
        .expect("request");
    assert_eq!(
        code_of(ivy.approve(&r.id, &DecisionRequest::default()).await),
        "self_approval"
    );
    assert_eq!(
        refusals_of(&admin, "user:ivy").await,
        vec![("self_approval".to_owned(), 1)]
    );
    app.stop().await;
}

api_tests!(
    refused_attempts_are_audited_and_counted,
    a_refused_self_approval_is_audited,
);
