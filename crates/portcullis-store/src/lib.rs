//! Portcullis persistence: one [`Store`] over SQLite (the embedded default) or PostgreSQL.
//!
//! Invariants kept here:
//! - **One transaction per change and its audit events** (DESIGN.md invariant 1): every write
//!   goes through [`Store::write`], which applies the [`Change`] and appends its events to the
//!   chain in the same transaction.
//! - **The chain is serialised across processes**: each write transaction first locks the single
//!   `audit_head` row (`FOR UPDATE` on PostgreSQL; `BEGIN IMMEDIATE` takes SQLite's write lock),
//!   so two servers on one database never fork the chain.
//! - **Group commit**: one writer task per process takes commands from a queue and applies as many
//!   as are waiting in one transaction (each in its own savepoint, so one failing change does not
//!   sink the others), and answers each caller only after the commit is durable.
//! - **Verification reads one snapshot** (a read transaction; `REPEATABLE READ` on
//!   PostgreSQL): keys, checkpoints and events as of one moment, so a checkpoint committed
//!   while the walk runs never looks like missing coverage. Rows that do not decode are
//!   reported as the fault they are, never as an error.
//! - Migrations are versioned per backend; a database whose schema is newer than this build
//!   knows is refused before anything is written.

#![deny(clippy::unwrap_used)]

pub mod accounts;
pub mod alerts;
pub mod anchor;
mod audit;
pub mod audit_export;
mod backup;
pub mod breakglass;
pub mod cache;
mod changes;
pub mod conditional_access;
pub mod containment;
pub mod crypto;
pub mod device;
pub mod governance;
pub mod oidc;
pub mod posture;
pub mod reviews;
pub mod roles;
pub mod ssh;
pub mod stats;
pub mod sweep;
pub mod targets;
mod tenant;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tokens;
mod writer;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ed25519_dalek::{SigningKey, VerifyingKey};
use portcullis_core::audit::{
    AuditEvent, ChainFault, ChainReport, ChainVerifier, Checkpoint, CheckpointCadence,
    CheckpointLink, NewAuditEvent, Outcome, Verification,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Row, SqlitePool};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use zeroize::Zeroizing;

pub use anchor::{AnchorFile, AnchorSink};
pub use audit::AuditFilter;
pub(crate) use audit::{CHAINED_CHECKPOINTS_SCHEMA, CHECKPOINT_COLS, checkpoint_from_row, to_hash};
pub use backup::backup_sqlite;
pub use changes::{
    ALREADY_CONTAINED, BREAKGLASS_MINIMUM, CA_CHANGED, CaChange, Change, Completed, DeviceDecision,
    EXPORT_HELD, LAST_GLOBAL_ADMINISTRATOR, NewAlertChannel, NewAlertRule, NewAssignment,
    NewAuthorizationCode, NewBreakGlass, NewCeremony, NewDeviceAuthorization, NewOAuthClient,
    NewOutboxMessage, NewPrincipal, NewRefreshToken, NewRequest, NewSession, NewTenant,
    NewTotpFactor, NewWebauthnFactor, OutboxAttempt, PendingCap, REQUEST_MOVED, RequestDecision,
    SealedChannel, THROTTLED, TOO_MANY_PENDING, TOO_MANY_RULES,
};
pub use changes::{CHANGE_MOVED, GovernanceChange, NewChangeRequest};
pub use changes::{
    ClosedItem, NewAccessReview, NewReviewItem, NewReviewRound, REVIEW_DECISIONS_MOVED,
    REVIEW_ITEM_MOVED, REVIEW_NOT_DUE, REVIEW_ROUND_NOT_OPEN, ReviewChange, ReviewClose,
};
pub use crypto::MasterKey;
pub use tenant::{BOOTSTRAP_TOKEN_LIFETIME, Tenant};
pub use writer::CheckpointPolicy;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Everything that can go wrong in the store. Messages name the problem without internals.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL must start with sqlite: or postgres://")]
    InvalidUrl,
    #[error("cannot reach the database: {0}")]
    Unreachable(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(
        "the database schema is at version {found}, newer than this build knows ({known}); upgrade portcullis"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error(
        "the master key does not open this tenant's secrets (wrong PORTCULLIS_MASTER_KEY or master.key)"
    )]
    WrongMasterKey,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A conditional change found the state moved on (lost a race): the message is one of the
    /// store's own fixed sentences, safe to show.
    #[error("conflicting write: {0}")]
    Conflict(String),
    /// The transaction holding the change failed as a whole (the database's error inside, for
    /// logs only); nothing of it was written.
    #[error("the transaction could not be committed: {0}")]
    CommitFailed(String),
    #[error("the store is shutting down")]
    Closed,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Clone)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A column that holds one of a core enum's values (`parse` gives `None` for anything else):
/// read once into the enum, and a value this version does not know is a decode error, never a
/// silent default.
pub(crate) fn decoded<T>(
    raw: String,
    parse: impl FnOnce(&str) -> Option<T>,
    what: &str,
) -> std::result::Result<T, sqlx::Error> {
    parse(&raw).ok_or_else(|| sqlx::Error::Decode(format!("unknown {what} {raw:?}").into()))
}

/// Runs the same block against whichever pool the store has; the SQL must be valid on both
/// (`$n` placeholders, `RETURNING`, `ON CONFLICT` are).
macro_rules! on_pool {
    ($backend:expr, $pool:ident => $body:expr) => {{
        $crate::count_read();
        match $backend {
            $crate::Backend::Sqlite($pool) => $body,
            $crate::Backend::Postgres($pool) => $body,
        }
    }};
}

/// Counts one use of the pool for [`testing::counting_reads`]; nothing without the `testing`
/// feature.
#[inline(always)]
pub(crate) fn count_read() {
    #[cfg(feature = "testing")]
    testing::note_read();
}
pub(crate) use on_pool;

/// The signing key used for checkpoints, shared with the writer once the tenant is loaded.
#[derive(Clone)]
pub struct ServerKey {
    pub key_id: String,
    pub key: Arc<SigningKey>,
}

/// The store: cheap to clone, one writer task per process.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    writer: mpsc::Sender<writer::Command>,
    server_key: Arc<RwLock<Option<ServerKey>>>,
    /// Notified when this process's writer commits alert messages, so the local delivery
    /// worker starts at once instead of at its next poll.
    alerts_written: Arc<writer::Wakeups>,
    /// The cadence verification assumes where the chain records none.
    cadence: CheckpointCadence,
    /// Opened read-only on a schema before chained checkpoints (0016): read them as legacy.
    legacy_checkpoint_schema: bool,
    /// Moved by every committed write that can make a cached read stale ([`cache`]).
    epoch: cache::Epoch,
}

/// Options for opening a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub checkpoints: CheckpointPolicy,
    /// Open an existing database without creating or migrating it (offline verification).
    pub read_only: bool,
    pub max_connections: u32,
    /// Where each committed checkpoint is also recorded, outside the database.
    pub anchors: Vec<Arc<dyn AnchorSink>>,
    /// How the writer raises alerts (the aggregation window).
    pub alerts: alerts::AlertSettings,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            checkpoints: CheckpointPolicy::default(),
            read_only: false,
            max_connections: 16,
            anchors: Vec::new(),
            alerts: alerts::AlertSettings::default(),
        }
    }
}

pub(crate) fn from_micros(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(crate) fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

impl Store {
    /// Opens (creating the SQLite file if needed), checks the schema version and migrates.
    pub async fn open(url: &str, options: StoreOptions) -> Result<Self> {
        let backend = if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.trim_start_matches("//");
            let opts = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
                .map_err(|_| StoreError::InvalidUrl)?
                .create_if_missing(!options.read_only)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a commit that returned is on disk, also for the audit chain.
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(30))
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(options.max_connections)
                // A connection to a local file does not go stale: no ping (a round trip to the
                // connection's worker thread) before every use.
                .test_before_acquire(false)
                .connect_with(opts)
                .await
                .map_err(|e| StoreError::Unreachable(short_error(&e)))?;
            Backend::Sqlite(pool)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url).map_err(|_| StoreError::InvalidUrl)?;
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections)
                // No ping before every use (a network round trip per read): a connection the
                // server closed fails its next query and is dropped from the pool, so a
                // database restart costs the requests in flight, not a round trip on each.
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await
                .map_err(|e| StoreError::Unreachable(short_error(&e)))?;
            Backend::Postgres(pool)
        } else {
            return Err(StoreError::InvalidUrl);
        };
        let found = migrate(&backend, options.read_only).await?;
        let server_key = Arc::new(RwLock::new(None));
        let alerts_written = Arc::new(writer::Wakeups::default());
        let epoch = cache::Epoch::default();
        let writer = writer::spawn(
            backend.clone(),
            server_key.clone(),
            options.checkpoints,
            options.alerts,
            alerts_written.clone(),
            options.anchors,
            epoch.clone(),
        );
        Ok(Self {
            epoch,
            alerts_written,
            backend,
            writer,
            server_key,
            cadence: options.checkpoints.cadence(),
            legacy_checkpoint_schema: options.read_only
                && found.is_some_and(|v| v < CHAINED_CHECKPOINTS_SCHEMA),
        })
    }

    /// The epoch this store's writer moves on every commit that can make a cached read stale:
    /// what [`cache::Cache`]s built over this store are stamped with.
    pub fn epoch(&self) -> cache::Epoch {
        self.epoch.clone()
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// A cheap query: is the database reachable?
    pub async fn ping(&self) -> Result<()> {
        on_pool!(&self.backend, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Applies `change` and appends `events` in one transaction (group-committed with other
    /// waiting writes). Returns the sealed events once the commit is durable.
    pub async fn write(
        &self,
        change: Change,
        events: Vec<NewAuditEvent>,
    ) -> Result<Vec<AuditEvent>> {
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(writer::Command {
                change,
                events,
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Resolves when this process's writer commits alert messages (for the delivery worker;
    /// other replicas' alerts are found by polling).
    pub async fn alerts_written(&self) {
        self.alerts_written.alerts.notified().await;
    }

    /// Resolves when this process's writer commits a change that can write target operations
    /// (for the target worker; other replicas' operations are found by polling).
    pub async fn target_ops_written(&self) {
        self.alerts_written.targets.notified().await;
    }

    /// Resolves when this process's writer appends audit events (for the SIEM export; other
    /// replicas' events are found by polling).
    pub async fn audit_written(&self) {
        self.alerts_written.audit.notified().await;
    }

    /// Appends one event with no other state change.
    pub async fn append(&self, event: NewAuditEvent) -> Result<AuditEvent> {
        let mut v = self.write(Change::None, vec![event]).await?;
        v.pop()
            .ok_or_else(|| StoreError::Corrupt("writer returned no event".into()))
    }

    /// The value of a setting, if set.
    pub async fn setting(&self, key: &str) -> Result<Option<String>> {
        on_pool!(&self.backend, pool => {
            Ok(sqlx::query("SELECT value FROM settings WHERE key = $1").bind(key).fetch_optional(pool).await?
                .map(|r| r.try_get::<String, _>("value")).transpose()?)
        })
    }

    /// Stops the writer after the queued writes are done, then closes the pool.
    pub async fn close(self) {
        drop(self.writer);
        on_pool!(&self.backend, pool => pool.close().await);
    }
}

/// The connection error without credentials that might sit in the URL.
fn short_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Database(db) => db.message().to_owned(),
        sqlx::Error::PoolTimedOut => "timed out connecting".to_owned(),
        sqlx::Error::Tls(_) => "TLS error".to_owned(),
        other => other.to_string(),
    }
}

/// Checks (and unless `check_only`, applies) the migrations; returns the schema version found
/// before migrating (`None`: a fresh database).
async fn migrate(backend: &Backend, check_only: bool) -> Result<Option<i64>> {
    let migrator = match backend {
        Backend::Sqlite(_) => &SQLITE_MIGRATIONS,
        Backend::Postgres(_) => &POSTGRES_MIGRATIONS,
    };
    let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    // Refuse a newer schema before the migrator touches anything.
    let found: Option<i64> = on_pool!(backend, pool => {
        match sqlx::query("SELECT MAX(version) AS v FROM _sqlx_migrations").fetch_one(pool).await {
            Ok(r) => r.try_get::<Option<i64>, _>("v")?,
            Err(sqlx::Error::Database(_)) => None, // no migrations table yet: a fresh database
            Err(e) => return Err(e.into()),
        }
    });
    if let Some(found) = found
        && found > known
    {
        return Err(StoreError::SchemaTooNew { found, known });
    }
    if check_only {
        if found.is_none() {
            return Err(StoreError::Corrupt(
                "the database has no Portcullis schema".into(),
            ));
        }
        return Ok(found);
    }
    on_pool!(backend, pool => migrator.run(pool).await?);
    Ok(found)
}

/// The latest schema version this build knows for the backend of `url`.
pub fn known_schema_version(postgres: bool) -> i64 {
    let m = if postgres {
        &POSTGRES_MIGRATIONS
    } else {
        &SQLITE_MIGRATIONS
    };
    m.iter().map(|m| m.version).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_backends_know_the_same_schema_version() {
        assert_eq!(
            super::known_schema_version(true),
            super::known_schema_version(false)
        );
    }
}
