//! The hash chain under writers, tampering, the checkpoint policy and kill -9.

use super::*;

async fn append_and_verify(db: Db) {
    let store = initialised(&db).await;
    for i in 0..20 {
        let e = store.append(ev(i)).await.expect("append");
        assert_eq!(e.seq, i as i64 + 2, "seq follows tenant.initialised");
    }
    let report = store.verify_chain().await.expect("verify").expect("intact");
    assert_eq!(report.events, 21);
    let failures = store
        .list_events(&AuditFilter {
            outcome: Some(Outcome::Failure),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list");
    assert!(failures.is_empty());
    let one = store
        .list_events(&AuditFilter {
            target: Some("target-3".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].details["note"], "ünïcode ✓");
}

/// Verification reports its progress page by page, up to the head it began with.
async fn verification_reports_progress_to_the_head(db: Db) {
    let store = initialised(&db).await;
    for batch in 0..12 {
        let events = (0..1000).map(|i| ev(batch * 1000 + i)).collect();
        store.write(Change::None, events).await.expect("write");
    }
    let head = store
        .verify_chain()
        .await
        .expect("verify")
        .expect("intact")
        .events;
    let seen = std::sync::Mutex::new(Vec::new());
    let result = store
        .verify_with_progress(&[], &|walked, total| {
            seen.lock().expect("lock").push((walked, total))
        })
        .await
        .expect("verify");
    assert!(result.into_result().is_ok());
    let seen = seen.into_inner().expect("lock");
    assert!(seen.len() >= 3, "one call per page: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{seen:?}");
    assert!(seen.iter().all(|(_, total)| *total == head));
    assert_eq!(seen.last().map(|s| s.0), Some(head));
}

async fn concurrent_writers_and_two_processes_keep_one_chain(db: Db) {
    // Two stores on one database stand for two server processes: separate pools and writers.
    let a = initialised(&db).await;
    let b = db.open().await;
    let mut tasks = Vec::new();
    for w in 0..8 {
        let s = if w % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..50 {
                seqs.push(s.append(ev(w * 1000 + i)).await.expect("append").seq);
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("join"));
    }
    all.sort_unstable();
    let expected: Vec<i64> = (2..=401).collect();
    assert_eq!(
        all, expected,
        "every append got its own, gapless sequence number"
    );
    let report = a.verify_chain().await.expect("verify").expect("intact");
    assert_eq!(report.events, 401);
}

async fn tampering_is_found_at_the_first_bad_seq(db: Db) {
    let store = initialised(&db).await;
    for i in 0..10 {
        store.append(ev(i)).await.expect("append");
    }
    assert!(store.verify_chain().await.expect("verify").is_ok());

    // Edit a field.
    db.exec("UPDATE audit_events SET actor = 'mallory' WHERE seq = 5")
        .await;
    let fault = store
        .verify_chain()
        .await
        .expect("verify")
        .expect_err("broken");
    assert_eq!(fault, ChainFault::HashMismatch { seq: 5 });
    db.exec("UPDATE audit_events SET actor = 'tester' WHERE seq = 5")
        .await;
    assert!(
        store.verify_chain().await.expect("verify").is_ok(),
        "restored"
    );

    // Swap the contents of two rows (keeping their sequence numbers).
    db.exec("UPDATE audit_events SET target = CASE seq WHEN 7 THEN 'target-6' WHEN 8 THEN 'target-5' END WHERE seq IN (7, 8)").await;
    let fault = store
        .verify_chain()
        .await
        .expect("verify")
        .expect_err("broken");
    assert_eq!(fault.seq(), 7);
    db.exec("UPDATE audit_events SET target = CASE seq WHEN 7 THEN 'target-5' WHEN 8 THEN 'target-6' END WHERE seq IN (7, 8)").await;
    assert!(
        store.verify_chain().await.expect("verify").is_ok(),
        "restored"
    );

    // Delete a row.
    db.exec("DELETE FROM audit_events WHERE seq = 9").await;
    let fault = store
        .verify_chain()
        .await
        .expect("verify")
        .expect_err("broken");
    assert_eq!(
        fault,
        ChainFault::SequenceGap {
            expected: 9,
            found: 10
        }
    );
}

async fn deleting_the_tail_is_found_by_a_checkpoint(db: Db) {
    let store = initialised(&db).await;
    for i in 0..5 {
        store.append(ev(i)).await.expect("append");
    }
    store
        .write(Change::ForceCheckpoint, vec![ev(99)])
        .await
        .expect("checkpoint");
    let cps = store.checkpoints().await.expect("checkpoints");
    assert_eq!(cps.last().map(|c| c.seq), Some(7));
    assert_eq!(
        store
            .verify_chain()
            .await
            .expect("verify")
            .expect("ok")
            .checkpoints,
        2,
        "the one forced when the tenant was loaded, at 1, and this one"
    );
    db.exec("DELETE FROM audit_events WHERE seq >= 6").await;
    let fault = store
        .verify_chain()
        .await
        .expect("verify")
        .expect_err("broken");
    assert_eq!(fault.seq(), 6);
    // A forged signature is found too.
    db.exec("UPDATE audit_checkpoints SET key_id = 'k-unknown' WHERE seq = 7")
        .await;
    let fault = store
        .verify_chain()
        .await
        .expect("verify")
        .expect_err("broken");
    assert_eq!(fault, ChainFault::BadCheckpointSignature { seq: 7 });
}

async fn checkpoints_follow_the_policy(db: Db) {
    let store = db
        .open_with(StoreOptions {
            checkpoints: CheckpointPolicy {
                every_events: 10,
                every: Duration::from_secs(3600),
            },
            ..Default::default()
        })
        .await;
    store
        .initialise_tenant(
            &MasterKey::from_bytes(&[1u8; 32]).expect("key"),
            OffsetDateTime::now_utc(),
        )
        .await
        .expect("init");
    for i in 0..25 {
        store.append(ev(i)).await.expect("append");
    }
    let cps = store.checkpoints().await.expect("checkpoints");
    assert!(
        cps.len() >= 2,
        "checkpoints after 10 and 20 events: {cps:?}"
    );
    let keys = store.verifying_keys().await.expect("keys");
    for c in &cps {
        assert!(c.verify(&keys[&c.key_id]), "signed by the tenant key");
    }
    assert!(store.verify_chain().await.expect("verify").is_ok());
}

async fn checkpoints_are_also_written_on_a_timer(db: Db) {
    let store = db
        .open_with(StoreOptions {
            checkpoints: CheckpointPolicy {
                every_events: 1_000_000,
                every: Duration::from_millis(200),
            },
            ..Default::default()
        })
        .await;
    store
        .initialise_tenant(
            &MasterKey::from_bytes(&[1u8; 32]).expect("key"),
            OffsetDateTime::now_utc(),
        )
        .await
        .expect("init");
    store.append(ev(1)).await.expect("append");
    let mut found = Vec::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        found = store.checkpoints().await.expect("checkpoints");
        if found.last().is_some_and(|c| c.seq == 2) {
            break;
        }
    }
    assert_eq!(
        found.last().map(|c| c.seq),
        Some(2),
        "a quiet chain is checkpointed by time"
    );
    // Nothing new: no further checkpoint for the same head.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        store.checkpoints().await.expect("checkpoints").len(),
        found.len()
    );
}

async fn kill_minus_nine_loses_no_acknowledged_event(db: Db) {
    initialised(&db).await.close().await;
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "crash_child_entry",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CRASH_CHILD_ENV, &db.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let acked = tokio::task::spawn_blocking(move || {
        let mut acked = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(seq) = line.strip_prefix("ack ") {
                acked.push(seq.trim().parse::<i64>().expect("seq"));
                if acked.len() >= 500 {
                    break;
                }
            }
        }
        acked
    });
    let acked = tokio::time::timeout(Duration::from_secs(120), acked)
        .await
        .expect("child acknowledged writes in time")
        .expect("join");
    child.kill().expect("kill -9"); // SIGKILL on Unix
    let _ = child.wait();
    assert!(acked.len() >= 500, "child wrote under load");
    let store = db.open().await;
    let events = store
        .list_events(&AuditFilter {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .expect("list");
    let present: std::collections::HashSet<i64> = events.iter().map(|e| e.seq).collect();
    for seq in &acked {
        assert!(present.contains(seq), "acknowledged event {seq} lost");
    }
    let report = store
        .verify_chain()
        .await
        .expect("verify")
        .expect("chain intact after kill -9");
    assert!(report.events as usize >= acked.len());
}

conformance!(
    append_and_verify,
    verification_reports_progress_to_the_head,
    concurrent_writers_and_two_processes_keep_one_chain,
    tampering_is_found_at_the_first_bad_seq,
    deleting_the_tail_is_found_by_a_checkpoint,
    checkpoints_follow_the_policy,
    checkpoints_are_also_written_on_a_timer,
    kill_minus_nine_loses_no_acknowledged_event,
);
