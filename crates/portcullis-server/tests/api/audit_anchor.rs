//! Tamper evidence that survives deletion, over the API: checkpoints are anchored outside the
//! database as they are made (file and webhook), a failing anchor never blocks a write and
//! raises an alert-worthy event, and `POST /api/v1/audit/verify` proves anchored checkpoints
//! are still held.

use super::*;
use portcullis_core::audit::{AnchorRecord, parse_anchor_lines};

/// The anchor records in `path`, oldest first.
fn anchor_records(path: &std::path::Path) -> Vec<AnchorRecord> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).expect("an anchor record per line"))
        .collect()
}

async fn events_named(app: &TestApp, action: &str) -> Vec<portcullis_core::api::AuditEventView> {
    app.client
        .audit_events(&EventFilter {
            action: Some(action.into()),
            ..Default::default()
        })
        .await
        .expect("list")
        .events
}

async fn anchor_file_is_written_as_checkpoints_are_made(backend: Backend) {
    let dir = tempfile::tempdir().expect("tmp");
    let Some(mut config) = config_for(backend, dir.path()).await else {
        eprintln!("skipped: PORTCULLIS_TEST_DATABASE_URL is not set");
        return;
    };
    let anchor = dir.path().join("anchor.jsonl");
    config.audit_anchor_file = Some(anchor.clone());
    let app = start(config, dir, None).await;
    // At tenant creation (1) and at start (3: server.started, config.changed).
    let seqs: Vec<i64> = anchor_records(&anchor).iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [1, 3]);
    let created = app
        .client
        .audit_checkpoint("before backup")
        .await
        .expect("checkpoint");
    // Anchored before the write was answered.
    let records = anchor_records(&anchor);
    assert_eq!(records.last().map(|r| r.seq), Some(created.seq));
    assert_eq!(
        records.last().map(|r| r.hash.clone()),
        Some(created.hash.clone())
    );
    // Each links to the one before it.
    for w in records.windows(2) {
        assert_eq!((w[1].prev_seq, &w[1].prev_digest), (w[0].seq, &w[0].digest));
    }
    let v = app
        .client
        .audit_verify_anchored(records.clone())
        .await
        .expect("verify");
    assert!(v.ok, "{v:?}");
    assert_eq!(v.anchors_matched, Some(records.len()));
    assert_eq!(v.anchored_seq, Some(created.seq));
    let (_dir, _, _) = app.stop().await;
    // A clean stop ends on a checkpoint, anchored too.
    let after = anchor_records(&anchor);
    assert_eq!(after.len(), records.len() + 1);
    assert_eq!(after.last().map(|r| r.seq), Some(created.seq + 1));
}

async fn a_failing_anchor_never_blocks_a_write_and_alerts(backend: Backend) {
    let dir = tempfile::tempdir().expect("tmp");
    let Some(mut config) = config_for(backend, dir.path()).await else {
        eprintln!("skipped: PORTCULLIS_TEST_DATABASE_URL is not set");
        return;
    };
    // A directory that does not exist (yet): storage that is gone.
    let anchor_dir = dir.path().join("anchors");
    let anchor = anchor_dir.join("anchor.jsonl");
    config.audit_anchor_file = Some(anchor.clone());
    let app = start(config, dir, None).await;
    for i in 0..3 {
        app.client
            .audit_checkpoint(&format!("storage gone {i}"))
            .await
            .expect("the write is not blocked");
    }
    eventually("the failure is recorded", 10, async || {
        !events_named(&app, "audit.anchor_failed").await.is_empty()
    })
    .await;
    let failed = events_named(&app, "audit.anchor_failed").await;
    assert_eq!(failed.len(), 1, "once per failing spell: {failed:?}");
    assert_eq!(failed[0].details["alert"], true, "alert-worthy");
    assert_eq!(failed[0].outcome, "failure");
    assert_eq!(failed[0].details["sink"], "file");
    assert!(
        !format!("{failed:?}").contains(&anchor_dir.display().to_string()),
        "no path in the event: {failed:?}"
    );
    // The storage is back: the next checkpoint is anchored and the recovery recorded.
    std::fs::create_dir(&anchor_dir).expect("mkdir");
    let created = app
        .client
        .audit_checkpoint("storage back")
        .await
        .expect("checkpoint");
    assert_eq!(
        anchor_records(&anchor).last().map(|r| r.seq),
        Some(created.seq)
    );
    eventually("the recovery is recorded", 10, async || {
        !events_named(&app, "audit.anchor_recovered")
            .await
            .is_empty()
    })
    .await;
    assert!(app.client.audit_verify().await.expect("verify").ok);
    app.stop().await;
}

async fn the_anchor_webhook_receives_every_checkpoint(backend: Backend) {
    let inbox = Inbox::default();
    let (port, _receiver) = receiver(inbox.clone(), 0).await;
    let dir = tempfile::tempdir().expect("tmp");
    let Some(mut config) = config_for(backend, dir.path()).await else {
        eprintln!("skipped: PORTCULLIS_TEST_DATABASE_URL is not set");
        return;
    };
    config.audit_anchor_webhook = Some(SecretString::from(format!(
        "http://127.0.0.1:{port}/anchor?token=s3cret"
    )));
    let app = start(config, dir, None).await;
    let created = app
        .client
        .audit_checkpoint("to the webhook")
        .await
        .expect("checkpoint");
    let got = || {
        inbox
            .lock()
            .expect("inbox")
            .requests
            .iter()
            .map(|(path, _, body)| {
                assert_eq!(path, "/anchor");
                serde_json::from_str::<AnchorRecord>(body).expect("an anchor record")
            })
            .collect::<Vec<_>>()
    };
    eventually("the webhook got the checkpoint", 10, async || {
        got().iter().any(|r| r.seq == created.seq)
    })
    .await;
    let records = got();
    let text: String = records
        .iter()
        .map(|r| serde_json::to_string(r).expect("json") + "\n")
        .collect();
    let parsed = parse_anchor_lines(&text).expect("self-consistent records");
    assert_eq!(parsed.anchors.len(), records.len());
    let v = app
        .client
        .audit_verify_anchored(records)
        .await
        .expect("verify");
    assert!(v.ok && v.anchored_seq == Some(created.seq), "{v:?}");
    // The URL (it holds a token) is not in the configuration event.
    let changed = events_named(&app, "config.changed").await;
    assert!(!format!("{changed:?}").contains("s3cret"));
    app.stop().await;
}

async fn verify_with_anchors_refuses_bad_input(app: TestApp) {
    let created = app.client.audit_checkpoint("x").await.expect("checkpoint");
    // A real record, from the server's own checkpoint, matches.
    let cps = app.client.audit_verify().await.expect("verify");
    assert_eq!(cps.last_checkpoint_seq, Some(created.seq));
    let post = |body: serde_json::Value| {
        app.http
            .post(format!("{}/api/v1/audit/verify", app.base))
            .bearer_auth(&app.token)
            .json(&body)
            .send()
    };
    let record = serde_json::json!({
        "seq": 4, "hash": "00".repeat(32), "digest": "00".repeat(32), "prev_seq": 3,
        "prev_digest": "00".repeat(32), "key_id": "k", "signature": "00".repeat(64),
        "time": "2024-01-01T00:00:00Z", "checkpoint_events": 1000, "checkpoint_seconds": 60
    });
    // A record whose digest does not match its fields.
    let r = post(serde_json::json!({ "anchors": [record.clone()] }))
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.expect("json");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("digest"),
        "{body}"
    );
    // Too many.
    let many: Vec<serde_json::Value> = (0..101).map(|_| record.clone()).collect();
    let r = post(serde_json::json!({ "anchors": many }))
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    // Unknown fields: a body of the wrong shape, as everywhere in the API.
    let r = post(serde_json::json!({ "anchors": [], "extra": 1 }))
        .await
        .expect("send");
    assert_eq!(r.status(), 422);
    // Nothing was written by any of it.
    let v = app.client.audit_verify().await.expect("verify");
    assert_eq!(v.events, Some(created.seq));
    app.stop().await;
}

backend_tests!(
    anchor_file_is_written_as_checkpoints_are_made,
    a_failing_anchor_never_blocks_a_write_and_alerts,
    the_anchor_webhook_receives_every_checkpoint,
);

api_tests!(verify_with_anchors_refuses_bad_input);
