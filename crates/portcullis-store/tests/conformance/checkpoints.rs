//! Checkpoints as evidence: deleting, truncating, editing or outrunning them is found; legacy ones
//! still verify.

use super::*;

/// A store writing a checkpoint every `every_events` events (and no timer to speak of),
/// anchoring each to `anchor` when given; returns the store and the tenant's signing key.
async fn with_policy(
    db: &Db,
    every_events: i64,
    anchor: Option<&std::path::Path>,
) -> (Store, ServerKey) {
    let store = db
        .open_with(StoreOptions {
            checkpoints: CheckpointPolicy {
                every_events,
                every: Duration::from_secs(3600),
            },
            anchors: anchor
                .map(|p| Arc::new(AnchorFile::new(p)) as Arc<dyn portcullis_store::AnchorSink>)
                .into_iter()
                .collect(),
            ..Default::default()
        })
        .await;
    let t = store
        .initialise_tenant(
            &MasterKey::from_bytes(&[1u8; 32]).expect("key"),
            OffsetDateTime::now_utc(),
        )
        .await
        .expect("init");
    (store, t.signing_key)
}

/// Appends `n` events from 8 concurrent writers (so batches hold several).
async fn append_many(store: &Store, n: usize) {
    let mut tasks = Vec::new();
    for w in 0..8 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(8) {
                s.append(ev(i)).await.expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("join");
    }
}

async fn all_events(store: &Store) -> Vec<AuditEvent> {
    store
        .list_events(&AuditFilter {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .expect("list")
}

async fn fault(store: &Store) -> ChainFault {
    store
        .verify_chain()
        .await
        .expect("verify")
        .expect_err("broken")
}

/// As an attacker with the database would: edits the target of event `from` and re-hashes
/// the chain from there on, so every event link is consistent again.
async fn edit_and_rehash(db: &Db, store: &Store, from: i64) {
    let mut events = all_events(store).await;
    let mut prev = if from == 1 {
        GENESIS_HASH
    } else {
        events[from as usize - 2].hash
    };
    let mut sql = String::new();
    for e in events.iter_mut().filter(|e| e.seq >= from) {
        if e.seq == from {
            e.target = "edited".into();
        }
        e.prev_hash = prev;
        e.hash = e.compute_hash();
        prev = e.hash;
        sql.push_str(&format!(
            "UPDATE audit_events SET target = '{}', prev_hash = {}, hash = {} WHERE seq = {};\n",
            e.target,
            db.blob(&e.prev_hash),
            db.blob(&e.hash),
            e.seq
        ));
    }
    sql.push_str(&format!(
        "UPDATE audit_head SET hash = {} WHERE id = 1;\n",
        db.blob(&prev)
    ));
    db.exec_many(&sql).await;
}

async fn deleting_every_checkpoint_and_rehashing_is_found(db: Db) {
    let (store, _) = with_policy(&db, 10, None).await;
    append_many(&store, 40).await;
    assert!(store.checkpoints().await.expect("checkpoints").len() >= 2);
    assert!(store.verify_chain().await.expect("verify").is_ok());
    db.exec("DELETE FROM audit_checkpoints").await;
    edit_and_rehash(&db, &store, 20).await;
    let f = fault(&store).await;
    assert_eq!(f, ChainFault::NoCheckpoint { events: 41 });
    assert_eq!(f.seq(), 2);
}

async fn truncating_to_a_checkpoint_is_caught_only_with_the_anchor(db: Db) {
    let dir = tempfile::tempdir().expect("tmp");
    let anchor_path = dir.path().join("anchor.jsonl");
    let (store, _) = with_policy(&db, 10, Some(&anchor_path)).await;
    append_many(&store, 60).await;
    let cps = store.checkpoints().await.expect("checkpoints");
    let anchored = parse_anchor_lines(&std::fs::read_to_string(&anchor_path).expect("anchor file"))
        .expect("parses")
        .anchors;
    assert_eq!(anchored, cps, "every checkpoint was anchored, in order");
    let ok = store.verify(&anchored).await.expect("verify");
    assert_eq!(ok.fault, None);
    assert_eq!(ok.report.anchors_matched, cps.len());
    // Delete the newest checkpoints and every event after the remaining last one.
    let keep = cps[cps.len() / 2].seq;
    db.exec(&format!("DELETE FROM audit_checkpoints WHERE seq > {keep}"))
        .await;
    db.exec(&format!("DELETE FROM audit_events WHERE seq > {keep}"))
        .await;
    let head = all_events(&store).await.pop().expect("events");
    db.exec(&format!(
        "UPDATE audit_head SET seq = {keep}, hash = {} WHERE id = 1",
        db.blob(&head.hash)
    ))
    .await;
    // Without the anchor this is a well-formed, shorter chain: it ends on a signed checkpoint
    // with nothing after it, exactly like a tenant that stopped there (a clean stop ends on a
    // checkpoint), and no checkpoint links forward to the deleted ones. Nothing inside the
    // database can tell the difference.
    let report = store
        .verify_chain()
        .await
        .expect("verify")
        .expect("indistinguishable without an anchor");
    assert_eq!(report.last_seq, keep);
    // The anchor remembers the head.
    let newest = anchored.last().expect("anchored").seq;
    let v = store.verify(&anchored).await.expect("verify");
    assert_eq!(
        v.fault,
        Some(ChainFault::AnchoredCheckpointMissing {
            seq: anchored.iter().find(|c| c.seq > keep).expect("deleted").seq,
            last_seq: keep
        })
    );
    assert_eq!(v.fault.as_ref().map(ChainFault::seq), Some(keep + 1));
    assert!(newest > keep);
}

async fn deleting_a_middle_checkpoint_is_a_gap(db: Db) {
    let (store, _) = with_policy(&db, 10, None).await;
    append_many(&store, 100).await;
    let cps = store.checkpoints().await.expect("checkpoints");
    assert!(cps.len() >= 3, "{cps:?}");
    let (gone, next) = (cps[1].seq, cps[2].seq);
    db.exec(&format!("DELETE FROM audit_checkpoints WHERE seq = {gone}"))
        .await;
    assert_eq!(
        fault(&store).await,
        ChainFault::CheckpointGap {
            seq: next,
            missing_seq: gone
        }
    );
}

async fn editing_a_checkpoint_breaks_its_signature(db: Db) {
    let (store, _) = with_policy(&db, 10, None).await;
    append_many(&store, 30).await;
    let cps = store.checkpoints().await.expect("checkpoints");
    let victim = cps[1].seq;
    for (edit, undo) in [
        (
            "created_at_us = created_at_us + 1",
            "created_at_us = created_at_us - 1",
        ),
        (
            "cadence_events = cadence_events * 1000",
            "cadence_events = cadence_events / 1000",
        ),
        ("prev_seq = prev_seq - 1", "prev_seq = prev_seq + 1"),
    ] {
        db.exec(&format!(
            "UPDATE audit_checkpoints SET {edit} WHERE seq = {victim}"
        ))
        .await;
        assert_eq!(
            fault(&store).await,
            ChainFault::BadCheckpointSignature { seq: victim },
            "{edit}"
        );
        db.exec(&format!(
            "UPDATE audit_checkpoints SET {undo} WHERE seq = {victim}"
        ))
        .await;
        assert!(
            store.verify_chain().await.expect("verify").is_ok(),
            "{undo}"
        );
    }
    // A row that no longer decodes is reported the same way, not as an error.
    db.exec(&format!(
        "UPDATE audit_checkpoints SET prev_digest = {} WHERE seq = {victim}",
        db.blob(&[1, 2, 3])
    ))
    .await;
    assert_eq!(
        fault(&store).await,
        ChainFault::BadCheckpointSignature { seq: victim }
    );
}

async fn too_many_events_after_the_last_checkpoint_is_broken(db: Db) {
    let (store, _) = with_policy(&db, 10, None).await;
    append_many(&store, 150).await;
    let cps = store.checkpoints().await.expect("checkpoints");
    // Keep the checkpoints up to 21; the events after it stay.
    let keep = cps.iter().rfind(|c| c.seq <= 21).expect("early").seq;
    db.exec(&format!("DELETE FROM audit_checkpoints WHERE seq > {keep}"))
        .await;
    let f = fault(&store).await;
    assert_eq!(
        f,
        ChainFault::TooManyUncheckpointedEvents {
            checkpoint_seq: keep,
            allowed: 110
        }
    );
    assert_eq!(f.code(), "too_many_uncheckpointed_events");
}

async fn a_clean_chain_with_many_events_and_checkpoints_is_intact(db: Db) {
    let dir = tempfile::tempdir().expect("tmp");
    let anchor_path = dir.path().join("anchor.jsonl");
    let (store, _) = with_policy(&db, 50, Some(&anchor_path)).await;
    append_many(&store, 3000).await;
    let anchored = parse_anchor_lines(&std::fs::read_to_string(&anchor_path).expect("anchor file"))
        .expect("parses")
        .anchors;
    let v = store.verify(&anchored).await.expect("verify");
    assert_eq!(v.fault, None, "{v:?}");
    assert_eq!(v.report.events, 3001);
    // One per 50 events, fewer where a batch carried the count past 50.
    assert!(v.report.checkpoints >= 30, "{v:?}");
    assert_eq!(v.report.anchors_matched, anchored.len());
    assert!(v.report.events_after_last_checkpoint < 50);
    assert_eq!(v.report.legacy_checkpoints, 0);
}

async fn legacy_checkpoints_still_verify(db: Db) {
    let (store, key) = with_policy(&db, 1000, None).await;
    append_many(&store, 10).await;
    // Make it the database an older version left: unchained checkpoints at 5 and 10.
    let events = all_events(&store).await;
    let legacy: Vec<Checkpoint> = [5i64, 10]
        .iter()
        .map(|&s| Checkpoint::sign_legacy(s, events[s as usize - 1].hash, &key.key_id, &key.key))
        .collect();
    let mut sql = "DELETE FROM audit_checkpoints;\n".to_owned();
    for c in &legacy {
        sql.push_str(&format!(
            "INSERT INTO audit_checkpoints (seq, hash, key_id, signature, created_at_us) VALUES ({}, {}, '{}', {}, 0);\n",
            c.seq,
            db.blob(&c.hash),
            c.key_id,
            db.blob(&c.signature)
        ));
    }
    db.exec_many(&sql).await;
    // The first chained checkpoint links to the last legacy one.
    store
        .write(Change::ForceCheckpoint, vec![ev(100)])
        .await
        .expect("checkpoint");
    let cps = store.checkpoints().await.expect("checkpoints");
    let first_chained = cps.iter().find(|c| !c.is_legacy()).expect("chained");
    assert_eq!(first_chained.link.map(|l| l.prev_seq), Some(10));
    let report = store.verify_chain().await.expect("verify").expect("intact");
    assert_eq!((report.legacy_checkpoints, report.checkpoints), (2, 3));
    // Deleting the last legacy checkpoint is found through that link.
    db.exec("DELETE FROM audit_checkpoints WHERE seq = 10")
        .await;
    assert_eq!(
        fault(&store).await,
        ChainFault::CheckpointGap {
            seq: first_chained.seq,
            missing_seq: 10
        }
    );
    // An older database read offline (schema before 0016): its checkpoints are all legacy.
    store.close().await;
    db.exec_many(&format!(
        "INSERT INTO audit_checkpoints (seq, hash, key_id, signature, created_at_us) VALUES (10, {}, '{}', {}, 0);
         DELETE FROM audit_checkpoints WHERE prev_digest IS NOT NULL;
         ALTER TABLE audit_checkpoints DROP COLUMN prev_seq;
         ALTER TABLE audit_checkpoints DROP COLUMN prev_digest;
         ALTER TABLE audit_checkpoints DROP COLUMN cadence_events;
         ALTER TABLE audit_checkpoints DROP COLUMN cadence_seconds;
         DELETE FROM _sqlx_migrations WHERE version >= 16;
         DELETE FROM audit_events WHERE seq > 11;",
        db.blob(&legacy[1].hash),
        legacy[1].key_id,
        db.blob(&legacy[1].signature)
    ))
    .await;
    let old = db
        .open_with(StoreOptions {
            read_only: true,
            ..Default::default()
        })
        .await;
    let report = old.verify_chain().await.expect("verify").expect("intact");
    assert_eq!((report.legacy_checkpoints, report.checkpoints), (2, 2));
}

conformance!(
    deleting_every_checkpoint_and_rehashing_is_found,
    truncating_to_a_checkpoint_is_caught_only_with_the_anchor,
    deleting_a_middle_checkpoint_is_a_gap,
    editing_a_checkpoint_breaks_its_signature,
    too_many_events_after_the_last_checkpoint_is_broken,
    a_clean_chain_with_many_events_and_checkpoints_is_intact,
    legacy_checkpoints_still_verify,
);
