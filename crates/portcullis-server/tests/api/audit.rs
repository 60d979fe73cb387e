//! The audit log over the API: listing with filters, verifying the chain, checkpoints.

use super::*;
use portcullis_core::error::ErrorCode;
use portcullis_server::services::audit;
use portcullis_server::services::caller::caller_from_bearer;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

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

    // The same log without HTTP, as the console reads it: one event, the newest checkpoint.
    let caller = caller_from_bearer(
        &app.state,
        &app.token,
        "127.0.0.1",
        OffsetDateTime::now_utc(),
    )
    .await
    .expect("caller");
    let one = audit::event(&app.state, &caller, 4).await.expect("event 4");
    assert_eq!(one.seq, 4);
    assert_eq!(one.action, "audit.checkpoint_requested");
    assert_eq!(one.hash, created.hash);
    let first = audit::event(&app.state, &caller, 1).await.expect("event 1");
    assert_eq!(first.action, "tenant.initialised");
    for missing in [0, 5, i64::MIN, i64::MAX] {
        let e = audit::event(&app.state, &caller, missing)
            .await
            .expect_err("no such event");
        assert_eq!(e.code, ErrorCode::NotFound);
        assert_eq!(e.message, format!("no audit event {missing}"));
    }
    let cp = audit::newest_checkpoint(&app.state, &caller)
        .await
        .expect("newest checkpoint")
        .expect("there is one");
    assert_eq!(cp.seq, 4);
    assert_eq!(cp.hash, created.hash);
    assert!(
        OffsetDateTime::parse(&cp.created_at, &Rfc3339).is_ok(),
        "{}",
        cp.created_at
    );
    app.stop().await;
}

api_tests!(audit_list_filters_verify_and_checkpoint);
