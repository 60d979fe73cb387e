//! Group commit: a failing change or a hostile event rolls back alone; its batch-mates commit.

use super::*;

async fn a_failing_change_does_not_sink_its_batch(db: Db) {
    let store = initialised(&db).await;
    let key = MasterKey::from_bytes(&[1u8; 32]).expect("key");
    // A second InitialiseTenant conflicts; the appends around it must still commit.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = store.clone();
        tasks.push(tokio::spawn(
            async move { s.append(ev(i)).await.map(|_| ()) },
        ));
    }
    let bad = store.write(
        Change::InitialiseTenant(portcullis_store::NewTenant {
            created_at_us: 0,
            key_check: key.seal("x", b"y"),
            key_id: "k-dup".into(),
            public_key: vec![0; 32],
            sealed_private_key: vec![0; 8],
            bootstrap_token_hash: vec![0; 32],
            bootstrap_expires_at_us: 0,
        }),
        vec![ev(1000)],
    );
    assert!(matches!(bad.await, Err(StoreError::Conflict(_))));
    for t in tasks {
        t.await.expect("join").expect("append committed");
    }
    assert_eq!(count(&store).await, 21);
    assert!(store.verify_chain().await.expect("verify").is_ok());
}

/// Finding: one NUL from a request (`client_id=%00`) made PostgreSQL refuse a batch's events
/// and failed every write sharing it. An event with NUL anywhere is stored (NUL as U+FFFD,
/// hashed as stored) and its batch-mates commit.
async fn a_nul_in_an_event_fails_nobody(db: Db) {
    let store = initialised(&db).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = store.clone();
        tasks.push(tokio::spawn(
            async move { s.append(ev(i)).await.map(|_| ()) },
        ));
    }
    let hostile = NewAuditEvent::new("service_account:\0", "token.client_credentials", "x\0y")
        .outcome(Outcome::Failure)
        .details(serde_json::json!({ "client_id": "\0", "nested": ["a\0"], "k\0": 1 }));
    let sealed = store.append(hostile).await.expect("stored");
    assert_eq!(sealed.actor, "service_account:\u{fffd}");
    assert_eq!(sealed.details["client_id"], "\u{fffd}");
    for t in tasks {
        t.await.expect("join").expect("batch-mates commit");
    }
    assert_eq!(count(&store).await, 22);
    let stored = store
        .list_events(&AuditFilter {
            action: Some("token.client_credentials".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].target, "x\u{fffd}y");
    assert!(store.verify_chain().await.expect("verify").is_ok());
}

conformance!(
    a_failing_change_does_not_sink_its_batch,
    a_nul_in_an_event_fails_nobody,
);
