//! The audit log over the API: listing with filters, verifying the chain, checkpoints.

use super::*;

async fn audit_list_filters_verify_and_checkpoint(app: TestApp) {
    let all = app
        .client
        .audit_events(&EventFilter::default())
        .await
        .expect("list")
        .events;
    let actions: Vec<&str> = all.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["tenant.initialised", "server.started", "config.changed"]
    );
    let created = app
        .client
        .audit_checkpoint("before backup")
        .await
        .expect("checkpoint");
    assert_eq!(created.seq, 4);
    let by_actor = app
        .client
        .audit_events(&EventFilter {
            actor: Some("bootstrap-token".into()),
            ..Default::default()
        })
        .await
        .expect("list")
        .events;
    assert_eq!(by_actor.len(), 1);
    assert_eq!(by_actor[0].details["reason"], "before backup");
    let paged = app
        .client
        .audit_events(&EventFilter {
            limit: Some(2),
            ..Default::default()
        })
        .await
        .expect("page");
    assert_eq!(paged.events.len(), 2);
    assert_eq!(paged.next_after, Some(2));
    let future = app
        .client
        .audit_events(&EventFilter {
            since: Some("2999-01-01T00:00:00Z".into()),
            ..Default::default()
        })
        .await
        .expect("list");
    assert!(future.events.is_empty());
    let v = app.client.audit_verify().await.expect("verify");
    assert!(v.ok);
    assert_eq!(v.events, Some(4));
    assert_eq!(
        v.checkpoints,
        Some(3),
        "the ones at tenant creation (1) and start (3), and the requested one (4)"
    );
    assert_eq!(v.last_checkpoint_seq, Some(4));
    app.stop().await;
}

api_tests!(audit_list_filters_verify_and_checkpoint);
