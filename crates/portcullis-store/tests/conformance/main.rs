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

mod batches;
mod chain;
mod checkpoints;
mod decoding;
mod reviews;
mod roles;
mod sweep;
mod tenant;

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
