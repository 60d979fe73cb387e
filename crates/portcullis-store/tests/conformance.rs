//! The store conformance suite: every test runs on SQLite, and on PostgreSQL when
//! `PORTCULLIS_TEST_DATABASE_URL` is set (each test in its own fresh database).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use std::sync::Arc;

use portcullis_core::audit::{
    AuditEvent, ChainFault, Checkpoint, GENESIS_HASH, NewAuditEvent, Outcome, parse_anchor_lines,
};
use portcullis_store::testing::{fresh_postgres_url, sqlite_url};
use portcullis_store::{
    AnchorFile, AuditFilter, Change, CheckpointPolicy, MasterKey, NewAuthorizationCode,
    NewBreakGlass, NewDeviceAuthorization, NewPrincipal, NewRefreshToken, NewSession, PendingCap,
    ServerKey, Store, StoreError, StoreOptions,
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

    /// Runs several statements at once (raw SQL, no parameters).
    async fn exec_many(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        if self.url.starts_with("sqlite:") {
            let mut c = sqlx::SqliteConnection::connect(&self.url)
                .await
                .expect("connect");
            sqlx::raw_sql(sql).execute(&mut c).await.expect("exec");
        } else {
            let mut c = sqlx::PgConnection::connect(&self.url)
                .await
                .expect("connect");
            sqlx::raw_sql(sql).execute(&mut c).await.expect("exec");
        }
    }

    /// A raw `SELECT COUNT(*) …`, for a table the Store has no read method for.
    async fn count_rows(&self, sql: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        if self.url.starts_with("sqlite:") {
            let mut c = sqlx::SqliteConnection::connect(&self.url)
                .await
                .expect("connect");
            sqlx::query_scalar(sql)
                .fetch_one(&mut c)
                .await
                .expect("count")
        } else {
            let mut c = sqlx::PgConnection::connect(&self.url)
                .await
                .expect("connect");
            sqlx::query_scalar(sql)
                .fetch_one(&mut c)
                .await
                .expect("count")
        }
    }

    /// A blob literal for this backend.
    fn blob(&self, bytes: &[u8]) -> String {
        if self.url.starts_with("sqlite:") {
            format!("X'{}'", hex::encode(bytes))
        } else {
            format!("'\\x{}'::bytea", hex::encode(bytes))
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

/// Finding 7: the sweep deletes what has expired (in bounded batches) and nothing that still
/// matters; the audit log is never touched.
async fn the_sweep_deletes_what_expired_and_nothing_else(db: Db) {
    let store = initialised(&db).await;
    let now = OffsetDateTime::now_utc();
    let now_us = (now.unix_timestamp_nanos() / 1000) as i64;
    let hour = 3_600_000_000i64;
    // Throttle counters: an old one and a fresh one.
    store
        .write(
            Change::RecordFailures {
                keys: vec!["ip:old".into()],
                at_us: now_us - 48 * hour,
            },
            vec![],
        )
        .await
        .expect("old counter");
    store
        .write(
            Change::RecordFailures {
                keys: vec!["ip:fresh".into()],
                at_us: now_us,
            },
            vec![],
        )
        .await
        .expect("fresh counter");
    // Revoked tokens: one expired, one still live.
    for (jti, exp) in [("gone", now_us - hour), ("live", now_us + hour)] {
        store
            .write(
                Change::RevokeToken {
                    jti: jti.into(),
                    expires_at_us: exp,
                    at_us: now_us,
                },
                vec![],
            )
            .await
            .expect("revoked");
    }
    let events_before = count(&store).await;
    let retention = portcullis_store::sweep::Retention {
        device_codes_us: 24 * hour,
        ceremonies_us: hour,
        throttle_us: 24 * hour,
        authorization_codes_us: 8 * 24 * hour,
        refresh_tokens_us: 24 * hour,
        sessions_us: 30 * 24 * hour,
        signin_addresses_us: 30 * 24 * hour,
    };
    let deleted = store.sweep(now_us, &retention).await.expect("sweep");
    let n = |t: &str| deleted.iter().find(|(x, _)| x == t).map_or(0, |(_, n)| *n);
    assert_eq!(n("throttle"), 1, "{deleted:?}");
    assert_eq!(n("revoked_tokens"), 1, "{deleted:?}");
    let left = store
        .throttle_counters(&["ip:old".to_owned(), "ip:fresh".to_owned()])
        .await
        .expect("counters");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].0, "ip:fresh");
    assert!(store.token_revoked("live").await.expect("live"));
    assert!(!store.token_revoked("gone").await.expect("gone"));
    assert_eq!(
        count(&store).await,
        events_before,
        "the audit log is never swept"
    );
    // A second sweep finds nothing.
    assert!(
        store
            .sweep(now_us, &retention)
            .await
            .expect("again")
            .is_empty()
    );
    assert!(store.verify_chain().await.expect("verify").is_ok());
}

// The sweep, table by table. Each test writes one row past its table's retention and one just
// inside it (a minute either side of the cutoff), sweeps at `now`, and reads both back.

const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// The retention the sweep tests sweep with: every period differs from the others, so a table
/// swept by another table's retention leaves or deletes the wrong row.
fn sweep_retention() -> portcullis_store::sweep::Retention {
    portcullis_store::sweep::Retention {
        device_codes_us: DAY,
        ceremonies_us: HOUR,
        throttle_us: 36 * HOUR,
        authorization_codes_us: 8 * DAY,
        refresh_tokens_us: 2 * DAY,
        sessions_us: 30 * DAY,
        signin_addresses_us: 45 * DAY,
    }
}

fn now_us() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64
}

/// Sweeps at `now` with [`sweep_retention`]: the rows deleted per table.
async fn sweep_at(store: &Store, now: i64) -> BTreeMap<String, u64> {
    let deleted = store.sweep(now, &sweep_retention()).await.expect("sweep");
    let tables: BTreeMap<String, u64> = deleted.iter().cloned().collect();
    assert_eq!(tables.len(), deleted.len(), "each table once: {deleted:?}");
    assert!(
        deleted.iter().all(|(_, n)| *n > 0),
        "tables with nothing deleted are left out: {deleted:?}"
    );
    tables
}

/// What a sweep that deleted `n` rows of `table` and nothing else returns.
fn only(table: &str, n: u64) -> BTreeMap<String, u64> {
    BTreeMap::from([(table.to_owned(), n)])
}

/// A user (the rows the sweep deletes mostly belong to a principal).
async fn sweep_user(store: &Store, id: &str, emergency: bool, now: i64) {
    store
        .write(
            Change::CreatePrincipal(NewPrincipal {
                id: id.into(),
                name: id.into(),
                kind: portcullis_core::principal::PrincipalKind::User,
                display_name: id.into(),
                email: None,
                phone: None,
                guest_organisation: None,
                role_assignable: false,
                emergency,
                privileged: emergency,
                first_admin: false,
                created_at_us: now - 90 * DAY,
            }),
            vec![],
        )
        .await
        .expect("principal");
}

async fn device_code(store: &Store, tag: &str, expires_at_us: i64) {
    store
        .write(
            Change::CreateDeviceAuthorization(NewDeviceAuthorization {
                id: format!("dev-{tag}"),
                device_code_hash: format!("device-code-{tag}").into_bytes(),
                user_code: format!("CODE-{tag}"),
                client_id: "portcullis-cli".into(),
                created_at_us: expires_at_us - 10 * MINUTE,
                expires_at_us,
                interval_s: 5,
                client_ip: "192.0.2.1".into(),
                user_agent: "test".into(),
                max_pending_per_address: 1_000,
            }),
            vec![],
        )
        .await
        .expect("device code");
}

async fn ceremony(store: &Store, tag: &str, principal_id: &str, created_at_us: i64) {
    store
        .write(
            Change::CreateCeremony(portcullis_store::NewCeremony {
                id_hash: format!("ceremony-{tag}").into_bytes(),
                principal_id: principal_id.into(),
                kind: "authentication".into(),
                state: "{}".into(),
                factor_name: None,
                pending_signin_hash: None,
                at_us: created_at_us,
                client_ip: "192.0.2.1".into(),
                cap: None,
            }),
            vec![],
        )
        .await
        .expect("ceremony");
}

async fn decoy(store: &Store, tag: &str, created_at_us: i64) {
    store
        .write(
            Change::CreateDecoy {
                id_hash: format!("decoy-{tag}").into_bytes(),
                name: format!("nobody-{tag}"),
                client_ip: "192.0.2.1".into(),
                at_us: created_at_us,
                cap: PendingCap {
                    max: 1_000,
                    since_us: 0,
                },
            },
            vec![],
        )
        .await
        .expect("decoy");
}

async fn pending_signin(store: &Store, tag: &str, principal_id: &str, created_at_us: i64) {
    store
        .write(
            Change::CreatePendingSignIn {
                id_hash: format!("pending-{tag}").into_bytes(),
                principal_id: principal_id.into(),
                at_us: created_at_us,
            },
            vec![],
        )
        .await
        .expect("pending sign-in");
}

async fn throttle_failures(store: &Store, keys: Vec<String>, at_us: i64) {
    store
        .write(Change::RecordFailures { keys, at_us }, vec![])
        .await
        .expect("failures");
}

async fn revoked_jti(store: &Store, jti: &str, expires_at_us: i64) {
    store
        .write(
            Change::RevokeToken {
                jti: jti.into(),
                expires_at_us,
                at_us: expires_at_us - HOUR,
            },
            vec![],
        )
        .await
        .expect("revoked");
}

/// An accepted client assertion's id, accepted an hour before its expiry. Accepting one forgets
/// the ids expired by then, so the tests' live ids (a minute from `now`) forget none of theirs.
async fn assertion_jti(store: &Store, jti: &str, expires_at_us: i64) {
    store
        .write(
            Change::UseClientAssertion {
                principal_id: "svc-1".into(),
                jti: jti.into(),
                expires_at_us,
                at_us: expires_at_us - HOUR,
            },
            vec![],
        )
        .await
        .expect("assertion");
}

async fn authorization_code(store: &Store, tag: &str, principal_id: &str, created_at_us: i64) {
    store
        .write(
            Change::CreateAuthorizationCode(NewAuthorizationCode {
                id: format!("code-{tag}"),
                code_hash: format!("code-{tag}").into_bytes(),
                client_id: "client-1".into(),
                principal_id: principal_id.into(),
                session_id: "s-any".into(),
                redirect_uri: "https://rp.example/cb".into(),
                scope: "openid".into(),
                nonce: None,
                code_challenge: "challenge".into(),
                strength: portcullis_core::session::AuthStrength::Mfa,
                auth_time_us: created_at_us,
                created_at_us,
                expires_at_us: created_at_us + MINUTE,
                person_ip: "192.0.2.1".into(),
            }),
            vec![],
        )
        .await
        .expect("authorization code");
}

async fn refresh_token(
    store: &Store,
    tag: &str,
    family_id: &str,
    principal_id: &str,
    family_expires_at_us: i64,
) {
    let created_at_us = family_expires_at_us - 7 * DAY;
    store
        .write(
            Change::IssueRefreshToken(NewRefreshToken {
                id: format!("rt-{tag}"),
                token_hash: format!("refresh-{tag}").into_bytes(),
                family_id: family_id.into(),
                principal_id: principal_id.into(),
                client_id: "portcullis-cli".into(),
                strength: portcullis_core::session::AuthStrength::Mfa,
                auth_time_us: created_at_us,
                session_id: "s-any".into(),
                created_at_us,
                expires_at_us: created_at_us + 12 * HOUR,
                family_expires_at_us,
                scope: String::new(),
                access: Some((format!("access-{tag}"), created_at_us + 10 * MINUTE)),
                flow: Some("device_code".into()),
                person_ip: None,
            }),
            vec![],
        )
        .await
        .expect("refresh token");
}

async fn session(store: &Store, id: &str, principal_id: &str, created_at_us: i64) {
    store
        .write(
            Change::CreateSession(NewSession {
                id: id.into(),
                token_hash: format!("session-{id}").into_bytes(),
                principal_id: principal_id.into(),
                strength: portcullis_core::session::AuthStrength::Mfa,
                scope: "full".into(),
                created_at_us,
                strong_auth_at_us: Some(created_at_us),
                client_ip: "192.0.2.1".into(),
                user_agent: "test".into(),
                ends_at_us: None,
            }),
            vec![],
        )
        .await
        .expect("session");
}

async fn signin_address(store: &Store, principal_id: &str, address: &str, at_us: i64) {
    store
        .write(
            Change::RecordSignIn {
                principal_id: principal_id.into(),
                at_us,
                address: Some(address.into()),
            },
            vec![],
        )
        .await
        .expect("sign-in");
}

async fn the_sweep_deletes_device_codes_a_day_past_their_expiry(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    let cutoff = now - sweep_retention().device_codes_us;
    device_code(&store, "old", cutoff - MINUTE).await;
    // Expired too, but not yet for a day: it stays.
    device_code(&store, "recent", cutoff + MINUTE).await;
    assert_eq!(
        sweep_at(&store, now).await,
        only("device_authorizations", 1)
    );
    let read = |tag: &'static str| {
        let store = store.clone();
        async move {
            store
                .device_by_code_hash(format!("device-code-{tag}").as_bytes())
                .await
                .expect("read")
        }
    };
    assert!(read("old").await.is_none());
    assert_eq!(
        read("recent").await.map(|d| d.id),
        Some("dev-recent".to_owned())
    );
}

async fn the_sweep_deletes_webauthn_ceremonies_an_hour_after_creation(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    sweep_user(&store, "u-1", false, now).await;
    let cutoff = now - sweep_retention().ceremonies_us;
    ceremony(&store, "old", "u-1", cutoff - MINUTE).await;
    ceremony(&store, "recent", "u-1", cutoff + MINUTE).await;
    assert_eq!(sweep_at(&store, now).await, only("webauthn_ceremonies", 1));
    assert!(
        store
            .ceremony(b"ceremony-old")
            .await
            .expect("read")
            .is_none()
    );
    assert_eq!(
        store
            .ceremony(b"ceremony-recent")
            .await
            .expect("read")
            .map(|c| c.5),
        Some(cutoff + MINUTE)
    );
}

async fn the_sweep_deletes_webauthn_decoys_an_hour_after_creation(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    let cutoff = now - sweep_retention().ceremonies_us;
    decoy(&store, "old", cutoff - MINUTE).await;
    decoy(&store, "recent", cutoff + MINUTE).await;
    assert_eq!(sweep_at(&store, now).await, only("webauthn_decoys", 1));
    assert!(store.decoy(b"decoy-old").await.expect("read").is_none());
    assert_eq!(
        store.decoy(b"decoy-recent").await.expect("read"),
        Some(("nobody-recent".to_owned(), cutoff + MINUTE))
    );
}

async fn the_sweep_deletes_half_finished_sign_ins_an_hour_after_creation(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    sweep_user(&store, "u-1", false, now).await;
    let cutoff = now - sweep_retention().ceremonies_us;
    pending_signin(&store, "old", "u-1", cutoff - MINUTE).await;
    pending_signin(&store, "recent", "u-1", cutoff + MINUTE).await;
    assert_eq!(sweep_at(&store, now).await, only("pending_signins", 1));
    assert!(
        store
            .pending_signin(b"pending-old")
            .await
            .expect("read")
            .is_none()
    );
    assert_eq!(
        store.pending_signin(b"pending-recent").await.expect("read"),
        Some(("u-1".to_owned(), cutoff + MINUTE))
    );
}

async fn the_sweep_deletes_throttle_counters_their_forget_period_after_the_last_failure(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    let cutoff = now - sweep_retention().throttle_us;
    // The old counter's first failure is older still; its last one decides.
    throttle_failures(&store, vec!["ip:192.0.2.1".into()], cutoff - DAY).await;
    throttle_failures(&store, vec!["ip:192.0.2.1".into()], cutoff - MINUTE).await;
    throttle_failures(&store, vec!["ip:192.0.2.2".into()], cutoff - DAY).await;
    throttle_failures(&store, vec!["ip:192.0.2.2".into()], cutoff + MINUTE).await;
    assert_eq!(sweep_at(&store, now).await, only("throttle", 1));
    let left = store
        .throttle_counters(&["ip:192.0.2.1".to_owned(), "ip:192.0.2.2".to_owned()])
        .await
        .expect("counters");
    assert_eq!(left, vec![("ip:192.0.2.2".to_owned(), 2, cutoff + MINUTE)]);
}

async fn the_sweep_deletes_revoked_token_ids_at_their_expiry(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    revoked_jti(&store, "jti-expired", now - MINUTE).await;
    revoked_jti(&store, "jti-live", now + MINUTE).await;
    assert_eq!(sweep_at(&store, now).await, only("revoked_tokens", 1));
    assert!(!store.token_revoked("jti-expired").await.expect("read"));
    assert!(store.token_revoked("jti-live").await.expect("read"));
}

async fn the_sweep_deletes_client_assertion_ids_at_their_expiry(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    assertion_jti(&store, "jti-expired", now - MINUTE).await;
    assertion_jti(&store, "jti-live", now + MINUTE).await;
    let recorded = |jti: &'static str| {
        let sql = format!(
            "SELECT COUNT(*) FROM client_assertion_jtis WHERE principal_id = 'svc-1' AND jti = '{jti}'"
        );
        let db = &db;
        async move { db.count_rows(&sql).await }
    };
    assert_eq!(recorded("jti-expired").await, 1, "both recorded before");
    assert_eq!(
        sweep_at(&store, now).await,
        only("client_assertion_jtis", 1)
    );
    assert_eq!(recorded("jti-expired").await, 0);
    assert_eq!(recorded("jti-live").await, 1);
    // The live id still refuses a replay.
    let replay = store
        .write(
            Change::UseClientAssertion {
                principal_id: "svc-1".into(),
                jti: "jti-live".into(),
                expires_at_us: now + MINUTE,
                at_us: now,
            },
            vec![],
        )
        .await;
    assert!(matches!(replay, Err(StoreError::Conflict(_))), "{replay:?}");
}

async fn the_sweep_deletes_authorization_codes_their_retention_after_creation(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    sweep_user(&store, "u-1", false, now).await;
    let cutoff = now - sweep_retention().authorization_codes_us;
    authorization_code(&store, "old", "u-1", cutoff - MINUTE).await;
    // Long expired, but inside its retention (a used code can still revoke its family): it stays.
    authorization_code(&store, "recent", "u-1", cutoff + MINUTE).await;
    assert_eq!(sweep_at(&store, now).await, only("authorization_codes", 1));
    assert!(
        store
            .authorization_code_by_hash(b"code-old")
            .await
            .expect("read")
            .is_none()
    );
    assert_eq!(
        store
            .authorization_code_by_hash(b"code-recent")
            .await
            .expect("read")
            .map(|c| c.id),
        Some("code-recent".to_owned())
    );
}

async fn the_sweep_deletes_refresh_families_a_retention_past_their_absolute_end(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    sweep_user(&store, "u-1", false, now).await;
    let cutoff = now - sweep_retention().refresh_tokens_us;
    // Two families of two tokens each (a rotation: the first used, its successor live).
    for (family, end) in [
        ("fam-old", cutoff - MINUTE),
        ("fam-recent", cutoff + MINUTE),
    ] {
        refresh_token(&store, &format!("{family}-1"), family, "u-1", end).await;
        store
            .write(
                Change::UseRefreshToken {
                    id: format!("rt-{family}-1"),
                    at_us: end - 6 * DAY,
                },
                vec![],
            )
            .await
            .expect("rotate");
        refresh_token(&store, &format!("{family}-2"), family, "u-1", end).await;
    }
    assert_eq!(sweep_at(&store, now).await, only("refresh_tokens", 2));
    let read = |tag: &'static str| {
        let store = store.clone();
        async move {
            store
                .refresh_token_by_hash(format!("refresh-{tag}").as_bytes())
                .await
                .expect("read")
        }
    };
    assert!(read("fam-old-1").await.is_none());
    assert!(read("fam-old-2").await.is_none());
    let used = read("fam-recent-1").await.expect("the used token stays");
    assert!(used.used_at_us.is_some(), "so its reuse is still detected");
    assert_eq!(
        read("fam-recent-2").await.map(|t| t.family_id),
        Some("fam-recent".to_owned())
    );
}

async fn the_sweep_deletes_sessions_their_retention_after_creation(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    sweep_user(&store, "u-1", false, now).await;
    let cutoff = now - sweep_retention().sessions_us;
    session(&store, "s-old", "u-1", cutoff - MINUTE).await;
    session(&store, "s-recent", "u-1", cutoff + MINUTE).await;
    // Seen a moment ago, yet created before the cutoff: its age counts, not its last use.
    store
        .write(
            Change::TouchSession {
                id: "s-old".into(),
                at_us: now - MINUTE,
            },
            vec![],
        )
        .await
        .expect("touch");
    assert_eq!(sweep_at(&store, now).await, only("sessions", 1));
    assert!(store.session_by_id("s-old").await.expect("read").is_none());
    assert_eq!(
        store
            .session_by_id("s-recent")
            .await
            .expect("read")
            .map(|s| s.created_at_us),
        Some(cutoff + MINUTE)
    );
}

/// A break-glass account's sessions are never swept: they show its last use (and its drills).
async fn the_sweep_keeps_every_session_of_a_break_glass_account(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    sweep_user(&store, "u-1", false, now).await;
    sweep_user(&store, "bg-1", true, now).await;
    store
        .write(
            Change::CreateBreakGlass(NewBreakGlass {
                principal_id: "bg-1".into(),
                credential: "password".into(),
                custodians: r#"["a","b","c"]"#.into(),
                threshold: 2,
                key_holder: None,
                pin_holder: None,
                created_by: "user:admin".into(),
                created_at_us: now - 90 * DAY,
            }),
            vec![],
        )
        .await
        .expect("break-glass");
    let old = now - sweep_retention().sessions_us - 30 * DAY;
    session(&store, "s-bg-use", "bg-1", old).await;
    session(&store, "s-bg-drill", "bg-1", old + DAY).await;
    store
        .write(
            Change::RecordDrill {
                id: "drill-1".into(),
                principal_id: "bg-1".into(),
                session_id: "s-bg-drill".into(),
                at_us: old + DAY,
            },
            vec![],
        )
        .await
        .expect("drill");
    // An ordinary user's session as old is swept in the same run.
    session(&store, "s-user", "u-1", old).await;
    assert_eq!(sweep_at(&store, now).await, only("sessions", 1));
    assert!(store.session_by_id("s-user").await.expect("read").is_none());
    assert!(
        store
            .session_by_id("s-bg-use")
            .await
            .expect("read")
            .is_some()
    );
    assert!(
        store
            .session_by_id("s-bg-drill")
            .await
            .expect("read")
            .is_some()
    );
    let account = store
        .breakglass_account("bg-1")
        .await
        .expect("read")
        .expect("account");
    assert_eq!(
        account.last_use_us,
        Some(old),
        "its last use is still known"
    );
    assert_eq!(account.last_drill_us, Some(old + DAY));
}

/// A session that proved a drill is kept on its own, not only as a break-glass account's
/// (drills are a break-glass account's, which the rule above keeps anyway: this pins the
/// second rule, so neither goes unnoticed).
async fn the_sweep_keeps_a_session_recorded_as_a_drill(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    sweep_user(&store, "u-1", false, now).await;
    let old = now - sweep_retention().sessions_us - DAY;
    session(&store, "s-drill", "u-1", old).await;
    session(&store, "s-other", "u-1", old).await;
    store
        .write(
            Change::RecordDrill {
                id: "drill-1".into(),
                principal_id: "u-1".into(),
                session_id: "s-drill".into(),
                at_us: old,
            },
            vec![],
        )
        .await
        .expect("drill");
    assert_eq!(sweep_at(&store, now).await, only("sessions", 1));
    assert!(
        store
            .session_by_id("s-other")
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        store
            .session_by_id("s-drill")
            .await
            .expect("read")
            .is_some()
    );
}

async fn the_sweep_deletes_familiar_addresses_their_retention_after_the_last_success(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    sweep_user(&store, "u-1", false, now).await;
    let cutoff = now - sweep_retention().signin_addresses_us;
    signin_address(&store, "u-1", "192.0.2.1", cutoff - DAY).await;
    signin_address(&store, "u-1", "192.0.2.1", cutoff - MINUTE).await;
    // First seen before the cutoff, last successful after it: it stays.
    signin_address(&store, "u-1", "192.0.2.2", cutoff - DAY).await;
    signin_address(&store, "u-1", "192.0.2.2", cutoff + MINUTE).await;
    assert_eq!(sweep_at(&store, now).await, only("signin_addresses", 1));
    let known = |address: &'static str| {
        let store = store.clone();
        async move {
            store
                .familiar_address("u-1", address, 0)
                .await
                .expect("read")
        }
    };
    assert!(!known("192.0.2.1").await);
    assert!(known("192.0.2.2").await);
}

/// More expired rows than one batch: one sweep deletes them all (batch after batch until one
/// comes back short) and counts them all.
async fn the_sweep_deletes_more_than_one_batch_in_one_call(db: Db) {
    use portcullis_store::sweep::BATCH;
    let store = initialised(&db).await;
    let now = now_us();
    let cutoff = now - sweep_retention().throttle_us;
    let n = BATCH as usize + 1;
    throttle_failures(
        &store,
        (0..n).map(|i| format!("acct:flood-{i}")).collect(),
        cutoff - MINUTE,
    )
    .await;
    throttle_failures(&store, vec!["acct:fresh".into()], cutoff + MINUTE).await;
    assert_eq!(
        db.count_rows("SELECT COUNT(*) FROM throttle").await,
        n as i64 + 1
    );
    assert_eq!(sweep_at(&store, now).await, only("throttle", n as u64));
    assert_eq!(db.count_rows("SELECT COUNT(*) FROM throttle").await, 1);
    assert_eq!(
        store
            .throttle_counters(&["acct:fresh".to_owned()])
            .await
            .expect("read")
            .len(),
        1
    );
    assert!(sweep_at(&store, now).await.is_empty());
}

/// What the sweep returns (the `store.swept` event's counts): each table it deleted from, with
/// the number of its rows deleted, and no other table.
async fn the_sweep_counts_what_it_deleted_per_table(db: Db) {
    let store = initialised(&db).await;
    let now = now_us();
    let r = sweep_retention();
    sweep_user(&store, "u-1", false, now).await;
    // A different number of expired rows in every table (1 to 11), and one live row in each.
    let past = |retention: i64, i: usize| now - retention - MINUTE - i as i64;
    for i in 0..=1 {
        let at = if i < 1 {
            past(r.device_codes_us, i)
        } else {
            now
        };
        device_code(&store, &format!("{i}"), at).await;
    }
    for i in 0..=2 {
        let at = if i < 2 { past(r.ceremonies_us, i) } else { now };
        ceremony(&store, &format!("{i}"), "u-1", at).await;
    }
    for i in 0..=3 {
        let at = if i < 3 { past(r.ceremonies_us, i) } else { now };
        decoy(&store, &format!("{i}"), at).await;
    }
    for i in 0..=4 {
        let at = if i < 4 { past(r.ceremonies_us, i) } else { now };
        pending_signin(&store, &format!("{i}"), "u-1", at).await;
    }
    throttle_failures(
        &store,
        (0..5).map(|i| format!("ip:flood-{i}")).collect(),
        past(r.throttle_us, 0),
    )
    .await;
    throttle_failures(&store, vec!["ip:fresh".into()], now).await;
    for i in 0..=6 {
        let at = if i < 6 { past(0, i) } else { now + HOUR };
        revoked_jti(&store, &format!("revoked-{i}"), at).await;
    }
    for i in 0..=7 {
        // The live one is accepted an hour before its expiry, after the others expired.
        let at = if i < 7 { past(0, i) } else { now + MINUTE };
        assertion_jti(&store, &format!("assertion-{i}"), at).await;
    }
    for i in 0..=8 {
        let at = if i < 8 {
            past(r.authorization_codes_us, i)
        } else {
            now
        };
        authorization_code(&store, &format!("{i}"), "u-1", at).await;
    }
    for i in 0..=9 {
        let at = if i < 9 {
            past(r.refresh_tokens_us, i)
        } else {
            now + DAY
        };
        refresh_token(&store, &format!("{i}"), &format!("fam-{i}"), "u-1", at).await;
    }
    for i in 0..=10 {
        let at = if i < 10 { past(r.sessions_us, i) } else { now };
        session(&store, &format!("s-{i}"), "u-1", at).await;
    }
    for i in 0..=11 {
        let at = if i < 11 {
            past(r.signin_addresses_us, i)
        } else {
            now
        };
        signin_address(&store, "u-1", &format!("192.0.2.{i}"), at).await;
    }
    let events_before = count(&store).await;
    assert_eq!(
        sweep_at(&store, now).await,
        BTreeMap::from(
            [
                ("device_authorizations", 1),
                ("webauthn_ceremonies", 2),
                ("webauthn_decoys", 3),
                ("pending_signins", 4),
                ("throttle", 5),
                ("revoked_tokens", 6),
                ("client_assertion_jtis", 7),
                ("authorization_codes", 8),
                ("refresh_tokens", 9),
                ("sessions", 10),
                ("signin_addresses", 11),
            ]
            .map(|(t, n)| (t.to_owned(), n))
        )
    );
    assert_eq!(
        count(&store).await,
        events_before,
        "the sweep writes no event"
    );
    // Only live rows are left: a second sweep deletes nothing and reports nothing.
    assert!(sweep_at(&store, now).await.is_empty());
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

/// A role and its settings in one read: a custom role with its settings, a built-in name with
/// settings only, an unknown name with neither, and a name that only looks like SQL.
async fn a_role_and_its_settings_come_in_one_read(db: Db) {
    let store = initialised(&db).await;
    let now = OffsetDateTime::now_utc().unix_timestamp() * 1_000_000;
    store
        .write(
            Change::Many(vec![
                Change::CreateCustomRole {
                    slug: "db-reader".into(),
                    display_name: "DB reader".into(),
                    description: "reads".into(),
                    permissions: r#"["app:db.read"]"#.into(),
                    at_us: now,
                },
                Change::SetRoleSettings {
                    role: "db-reader".into(),
                    settings: r#"{"max":1}"#.into(),
                    at_us: now,
                },
                Change::SetRoleSettings {
                    role: "helpdesk-administrator".into(),
                    settings: r#"{"max":2}"#.into(),
                    at_us: now,
                },
            ]),
            vec![],
        )
        .await
        .expect("write");
    let (custom, settings) = store.role_with_settings("db-reader").await.expect("read");
    let custom = custom.expect("the custom role");
    assert_eq!(custom.slug, "db-reader");
    assert_eq!(custom.permissions, vec!["app:db.read".to_owned()]);
    assert_eq!(settings.as_deref(), Some(r#"{"max":1}"#));
    let (custom, settings) = store
        .role_with_settings("helpdesk-administrator")
        .await
        .expect("read");
    assert!(custom.is_none(), "built-in roles are not stored");
    assert_eq!(settings.as_deref(), Some(r#"{"max":2}"#));
    for unknown in ["nobody", "x' OR '1'='1", "é\u{202e}"] {
        assert_eq!(
            store.role_with_settings(unknown).await.expect("read"),
            (None, None),
            "{unknown}"
        );
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
    a_role_and_its_settings_come_in_one_read,
    deleting_every_checkpoint_and_rehashing_is_found,
    truncating_to_a_checkpoint_is_caught_only_with_the_anchor,
    deleting_a_middle_checkpoint_is_a_gap,
    editing_a_checkpoint_breaks_its_signature,
    too_many_events_after_the_last_checkpoint_is_broken,
    a_clean_chain_with_many_events_and_checkpoints_is_intact,
    legacy_checkpoints_still_verify,
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
    the_sweep_deletes_what_expired_and_nothing_else,
    the_sweep_deletes_device_codes_a_day_past_their_expiry,
    the_sweep_deletes_webauthn_ceremonies_an_hour_after_creation,
    the_sweep_deletes_webauthn_decoys_an_hour_after_creation,
    the_sweep_deletes_half_finished_sign_ins_an_hour_after_creation,
    the_sweep_deletes_throttle_counters_their_forget_period_after_the_last_failure,
    the_sweep_deletes_revoked_token_ids_at_their_expiry,
    the_sweep_deletes_client_assertion_ids_at_their_expiry,
    the_sweep_deletes_authorization_codes_their_retention_after_creation,
    the_sweep_deletes_refresh_families_a_retention_past_their_absolute_end,
    the_sweep_deletes_sessions_their_retention_after_creation,
    the_sweep_keeps_every_session_of_a_break_glass_account,
    the_sweep_keeps_a_session_recorded_as_a_drill,
    the_sweep_deletes_familiar_addresses_their_retention_after_the_last_success,
    the_sweep_deletes_more_than_one_batch_in_one_call,
    the_sweep_counts_what_it_deleted_per_table,
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
    // Like a server: the tenant's key loaded, so this process writes checkpoints too.
    store
        .initialise_tenant(
            &MasterKey::from_bytes(&[1u8; 32]).expect("key"),
            OffsetDateTime::now_utc(),
        )
        .await
        .expect("load tenant");
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
