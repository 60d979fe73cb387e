//! The store conformance suite: every test runs on SQLite, and on PostgreSQL when
//! `PORTCULLIS_TEST_DATABASE_URL` is set (each test in its own fresh database).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use portcullis_core::audit::{ChainFault, NewAuditEvent, Outcome};
use portcullis_store::testing::{fresh_postgres_url, sqlite_url};
use portcullis_store::{
    AuditFilter, Change, CheckpointPolicy, MasterKey, Store, StoreError, StoreOptions,
};
use sqlx::Connection;
use time::OffsetDateTime;

struct Db {
    url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Self {
            url: sqlite_url(dir.path()),
            _dir: Some(dir),
        }
    }

    async fn postgres() -> Option<Self> {
        Some(Self {
            url: fresh_postgres_url().await?,
            _dir: None,
        })
    }

    async fn open(&self) -> Store {
        self.open_with(StoreOptions::default()).await
    }

    async fn open_with(&self, opts: StoreOptions) -> Store {
        Store::open(&self.url, opts).await.expect("open store")
    }

    /// Runs raw SQL against the database, as an attacker with database access would.
    async fn exec(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        if self.url.starts_with("sqlite:") {
            let mut c = sqlx::SqliteConnection::connect(&self.url)
                .await
                .expect("connect");
            sqlx::query(sql).execute(&mut c).await.expect("exec");
        } else {
            let mut c = sqlx::PgConnection::connect(&self.url)
                .await
                .expect("connect");
            sqlx::query(sql).execute(&mut c).await.expect("exec");
        }
    }
}

fn ev(i: usize) -> NewAuditEvent {
    NewAuditEvent::new("tester", "test.event", format!("target-{i}"))
        .details(serde_json::json!({ "i": i, "note": "ünïcode ✓" }))
}

async fn count(store: &Store) -> usize {
    store
        .list_events(&AuditFilter {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .expect("list")
        .len()
}

async fn initialised(db: &Db) -> Store {
    let store = db.open().await;
    store
        .initialise_tenant(
            &MasterKey::from_bytes(&[1u8; 32]).expect("key"),
            OffsetDateTime::now_utc(),
        )
        .await
        .expect("init");
    store
}

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
        1
    );
    db.exec("DELETE FROM audit_events WHERE seq >= 6").await;
    let fault = store
        .verify_chain()
        .await
        .expect("verify")
        .expect_err("broken");
    assert_eq!(fault.seq(), 6);
    // A forged signature is found too.
    db.exec("UPDATE audit_checkpoints SET key_id = 'k-unknown'")
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
        if !found.is_empty() {
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

async fn wrong_master_key_is_refused_and_changes_nothing(db: Db) {
    let store = initialised(&db).await;
    store.append(ev(1)).await.expect("append");
    let before = count(&store).await;
    let err = store
        .initialise_tenant(
            &MasterKey::from_bytes(&[2u8; 32]).expect("key"),
            OffsetDateTime::now_utc(),
        )
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, StoreError::WrongMasterKey), "{err}");
    assert_eq!(count(&store).await, before);
    // The right key loads the same tenant without writing.
    let t = store
        .initialise_tenant(
            &MasterKey::from_bytes(&[1u8; 32]).expect("key"),
            OffsetDateTime::now_utc(),
        )
        .await
        .expect("loads");
    assert!(!t.created && t.bootstrap_token.is_none());
    assert_eq!(count(&store).await, before);
}

async fn bootstrap_token_is_stored_hashed_and_expires(db: Db) {
    let store = db.open().await;
    let now = OffsetDateTime::now_utc();
    let t = store
        .initialise_tenant(&MasterKey::from_bytes(&[1u8; 32]).expect("key"), now)
        .await
        .expect("init");
    let token = t.bootstrap_token.expect("created").to_string();
    assert!(
        store
            .bootstrap_token_valid(&token, now)
            .await
            .expect("check")
    );
    assert!(
        !store
            .bootstrap_token_valid("nope", now)
            .await
            .expect("check")
    );
    let later = now + portcullis_store::BOOTSTRAP_TOKEN_LIFETIME + time::Duration::seconds(1);
    assert!(
        !store
            .bootstrap_token_valid(&token, later)
            .await
            .expect("check")
    );
    // Not stored in the clear anywhere in the event log either.
    let events = store
        .list_events(&AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list");
    assert!(!format!("{events:?}").contains(&token));
}

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
        Change::InitialiseTenant {
            created_at_us: 0,
            key_check: key.seal("x", b"y"),
            key_id: "k-dup".into(),
            public_key: vec![0; 32],
            sealed_private_key: vec![0; 8],
            bootstrap_token_hash: vec![0; 32],
            bootstrap_expires_at_us: 0,
        },
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

async fn newer_schema_is_refused(db: Db) {
    let store = db.open().await;
    store.close().await;
    let blob = if db.url.starts_with("sqlite:") {
        "X'00'"
    } else {
        "'\\x00'::bytea"
    };
    db.exec(&format!("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (9999, 'future', TRUE, {blob}, 0)")).await;
    match Store::open(&db.url, StoreOptions::default()).await {
        Err(StoreError::SchemaTooNew { found, known }) => {
            assert_eq!(found, 9999);
            assert_eq!(
                known,
                portcullis_store::known_schema_version(!db.url.starts_with("sqlite:"))
            );
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened a newer schema"),
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Db::sqlite()).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = super::Db::postgres().await else {
                        eprintln!("skipped: PORTCULLIS_TEST_DATABASE_URL is not set");
                        return;
                    };
                    super::$name(db).await
                }
            )*
        }
    };
}

conformance!(
    append_and_verify,
    concurrent_writers_and_two_processes_keep_one_chain,
    tampering_is_found_at_the_first_bad_seq,
    deleting_the_tail_is_found_by_a_checkpoint,
    checkpoints_follow_the_policy,
    checkpoints_are_also_written_on_a_timer,
    wrong_master_key_is_refused_and_changes_nothing,
    bootstrap_token_is_stored_hashed_and_expires,
    a_failing_change_does_not_sink_its_batch,
    a_nul_in_an_event_fails_nobody,
    newer_schema_is_refused,
    kill_minus_nine_loses_no_acknowledged_event,
);

const CRASH_CHILD_ENV: &str = "PORTCULLIS_CRASH_CHILD_URL";

/// Not a test on its own: the child process of `kill_minus_nine_loses_no_acknowledged_event`.
/// It appends under load from 8 tasks and prints `ack SEQ` after each commit returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_entry() {
    let Ok(url) = std::env::var(CRASH_CHILD_ENV) else {
        return;
    };
    let store = Store::open(&url, StoreOptions::default())
        .await
        .expect("open");
    let mut tasks = Vec::new();
    for w in 0..8 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let e = s.append(ev(w * 1_000_000 + i)).await.expect("append");
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "ack {}", e.seq);
                let _ = out.flush();
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
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
