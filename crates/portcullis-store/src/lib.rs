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
pub mod breakglass;
mod changes;
pub mod conditional_access;
pub mod crypto;
pub mod device;
pub mod oidc;
pub mod roles;
pub mod sweep;
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
pub use changes::{
    BREAKGLASS_MINIMUM, CA_CHANGED, CaChange, Change, LAST_GLOBAL_ADMINISTRATOR, NewAlertChannel,
    NewAlertRule, NewAssignment, NewAuthorizationCode, NewBreakGlass, NewDeviceAuthorization,
    NewOAuthClient, NewOutboxMessage, NewPrincipal, NewRefreshToken, NewRequest, NewSession,
    OutboxAttempt, PendingCap, SealedChannel, THROTTLED, TOO_MANY_PENDING, TOO_MANY_RULES,
};
pub use crypto::MasterKey;
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
    ($backend:expr, $pool:ident => $body:expr) => {
        match $backend {
            $crate::Backend::Sqlite($pool) => $body,
            $crate::Backend::Postgres($pool) => $body,
        }
    };
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
    alerts_written: Arc<tokio::sync::Notify>,
    /// The cadence verification assumes where the chain records none.
    cadence: CheckpointCadence,
    /// Opened read-only on a schema before chained checkpoints (0016): read them as legacy.
    legacy_checkpoint_schema: bool,
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

/// Filters for listing audit events.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub outcome: Option<Outcome>,
    pub since_us: Option<i64>,
    pub until_us: Option<i64>,
    /// Only events with `seq` greater than this (paging).
    pub after_seq: Option<i64>,
    pub limit: i64,
}

/// What the tenant holds after [`Store::initialise_tenant`].
pub struct Tenant {
    pub created: bool,
    pub signing_key: ServerKey,
    /// Present only on the start that created the tenant: shown once, stored as a hash.
    pub bootstrap_token: Option<Zeroizing<String>>,
}

const KEY_CHECK_AD: &str = "tenant:key-check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"portcullis master key check v1";
/// How long a bootstrap token stays valid.
pub const BOOTSTRAP_TOKEN_LIFETIME: time::Duration = time::Duration::hours(24);

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
                .connect_with(opts)
                .await
                .map_err(|e| StoreError::Unreachable(short_error(&e)))?;
            Backend::Sqlite(pool)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url).map_err(|_| StoreError::InvalidUrl)?;
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections)
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
        let alerts_written = Arc::new(tokio::sync::Notify::new());
        let writer = writer::spawn(
            backend.clone(),
            server_key.clone(),
            options.checkpoints,
            options.alerts,
            alerts_written.clone(),
            options.anchors,
        );
        Ok(Self {
            alerts_written,
            backend,
            writer,
            server_key,
            cadence: options.checkpoints.cadence(),
            legacy_checkpoint_schema: options.read_only
                && found.is_some_and(|v| v < CHAINED_CHECKPOINTS_SCHEMA),
        })
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
        self.alerts_written.notified().await;
    }

    /// Appends one event with no other state change.
    pub async fn append(&self, event: NewAuditEvent) -> Result<AuditEvent> {
        let mut v = self.write(Change::None, vec![event]).await?;
        v.pop()
            .ok_or_else(|| StoreError::Corrupt("writer returned no event".into()))
    }

    /// Creates the tenant on first start (signing key, key check, bootstrap token, and the
    /// `tenant.initialised` event in one transaction) or loads it, proving the master key right.
    /// Either way the chain's head is then checkpointed (if it is not already), so a tenant's
    /// chain is covered from its first event and the tail a crash left is covered before
    /// anything new is written: more than one event with no checkpoint at all is tampering.
    pub async fn initialise_tenant(
        &self,
        master: &MasterKey,
        now: OffsetDateTime,
    ) -> Result<Tenant> {
        for _ in 0..3 {
            if let Some(key) = self.load_tenant(master).await? {
                self.set_server_key(key.clone());
                self.write(Change::ForceCheckpoint, vec![]).await?;
                return Ok(Tenant {
                    created: false,
                    signing_key: key,
                    bootstrap_token: None,
                });
            }
            let signing = SigningKey::generate(&mut rand::rngs::OsRng);
            let key_id = format!(
                "k-{}",
                &hex::encode(signing.verifying_key().as_bytes())[..16]
            );
            let token = crypto::random_token();
            let change = Change::InitialiseTenant {
                created_at_us: micros(now),
                key_check: master.seal(KEY_CHECK_AD, KEY_CHECK_PLAINTEXT),
                key_id: key_id.clone(),
                public_key: signing.verifying_key().as_bytes().to_vec(),
                sealed_private_key: master
                    .seal(&format!("signing_key:{key_id}"), signing.as_bytes()),
                bootstrap_token_hash: crypto::token_hash(&token),
                bootstrap_expires_at_us: micros(now + BOOTSTRAP_TOKEN_LIFETIME),
            };
            let event = NewAuditEvent::new("system", "tenant.initialised", "tenant").details(
                serde_json::json!({"signing_key_id": key_id, "bootstrap_token_expires_at": (now + BOOTSTRAP_TOKEN_LIFETIME).unix_timestamp()}),
            );
            match self.write(change, vec![event]).await {
                Ok(_) => {
                    let key = ServerKey {
                        key_id,
                        key: Arc::new(signing),
                    };
                    self.set_server_key(key.clone());
                    self.write(Change::ForceCheckpoint, vec![]).await?;
                    return Ok(Tenant {
                        created: true,
                        signing_key: key,
                        bootstrap_token: Some(token),
                    });
                }
                // Another replica initialised it first: load what it wrote.
                Err(StoreError::Conflict(_) | StoreError::CommitFailed(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict(
            "tenant initialisation kept racing".into(),
        ))
    }

    async fn load_tenant(&self, master: &MasterKey) -> Result<Option<ServerKey>> {
        let row = on_pool!(&self.backend, pool => {
            sqlx::query("SELECT key_check FROM tenant WHERE id = 1").fetch_optional(pool).await?
                .map(|r| r.try_get::<Vec<u8>, _>("key_check")).transpose()?
        });
        let Some(check) = row else { return Ok(None) };
        match master.open(KEY_CHECK_AD, &check) {
            Ok(p) if p.as_slice() == KEY_CHECK_PLAINTEXT => {}
            _ => return Err(StoreError::WrongMasterKey),
        }
        let key_row = on_pool!(&self.backend, pool => {
            let r = sqlx::query("SELECT key_id, sealed_private_key FROM signing_keys WHERE active ORDER BY created_at_us DESC LIMIT 1")
                .fetch_optional(pool).await?;
            match r {
                Some(r) => Some((r.try_get::<String, _>("key_id")?, r.try_get::<Vec<u8>, _>("sealed_private_key")?)),
                None => None,
            }
        });
        let (key_id, sealed) = key_row
            .ok_or_else(|| StoreError::Corrupt("tenant has no active signing key".into()))?;
        let seed = master
            .open(&format!("signing_key:{key_id}"), &sealed)
            .map_err(|_| StoreError::WrongMasterKey)?;
        let seed: [u8; 32] = seed
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Corrupt("signing key has the wrong length".into()))?;
        Ok(Some(ServerKey {
            key_id,
            key: Arc::new(SigningKey::from_bytes(&seed)),
        }))
    }

    /// Loads the active signing key again (after a rotation here or on another replica) and
    /// makes it the one that signs checkpoints.
    pub async fn reload_signing_key(&self, master: &MasterKey) -> Result<ServerKey> {
        let key = self
            .load_tenant(master)
            .await?
            .ok_or_else(|| StoreError::Corrupt("the tenant is not initialised".into()))?;
        self.set_server_key(key.clone());
        Ok(key)
    }

    /// A new signing key, sealed under the master key, as a change that makes it active in
    /// place of `previous`; the key is returned so the caller can use it once written.
    pub fn new_signing_key(
        master: &MasterKey,
        previous: &str,
        now: OffsetDateTime,
    ) -> (Change, String) {
        let signing = SigningKey::generate(&mut rand::rngs::OsRng);
        let key_id = format!(
            "k-{}",
            &hex::encode(signing.verifying_key().as_bytes())[..16]
        );
        let change = Change::RotateSigningKey {
            previous: previous.to_owned(),
            key_id: key_id.clone(),
            public_key: signing.verifying_key().as_bytes().to_vec(),
            sealed_private_key: master.seal(&format!("signing_key:{key_id}"), signing.as_bytes()),
            at_us: micros(now),
        };
        (change, key_id)
    }

    fn set_server_key(&self, key: ServerKey) {
        if let Ok(mut k) = self.server_key.write() {
            *k = Some(key);
        }
    }

    /// Whether `token` is an unexpired, unused bootstrap token.
    pub async fn bootstrap_token_valid(&self, token: &str, now: OffsetDateTime) -> Result<bool> {
        let hash = crypto::token_hash(token);
        let found = on_pool!(&self.backend, pool => {
            sqlx::query("SELECT token_hash FROM bootstrap_tokens WHERE token_hash = $1 AND used_at_us IS NULL AND expires_at_us > $2")
                .bind(&hash).bind(micros(now)).fetch_optional(pool).await?
                .map(|r| r.try_get::<Vec<u8>, _>("token_hash")).transpose()?
        });
        Ok(found.is_some_and(|stored| {
            subtle::ConstantTimeEq::ct_eq(stored.as_slice(), hash.as_slice()).into()
        }))
    }

    /// Public keys of every signing key the tenant has had, for checkpoint verification.
    pub async fn verifying_keys(&self) -> Result<HashMap<String, VerifyingKey>> {
        let rows: Vec<(String, Vec<u8>)> = on_pool!(&self.backend, pool => {
            sqlx::query("SELECT key_id, public_key FROM signing_keys").fetch_all(pool).await?
                .into_iter().map(|r| Ok((r.try_get("key_id")?, r.try_get("public_key")?)))
                .collect::<Result<_, sqlx::Error>>()?
        });
        let mut out = HashMap::new();
        for (id, pk) in rows {
            let arr: [u8; 32] = pk.as_slice().try_into().map_err(|_| {
                StoreError::Corrupt(format!("public key {id} has the wrong length"))
            })?;
            let key = VerifyingKey::from_bytes(&arr)
                .map_err(|_| StoreError::Corrupt(format!("public key {id} is invalid")))?;
            out.insert(id, key);
        }
        Ok(out)
    }

    /// Audit events matching `filter`, in sequence order.
    pub async fn list_events(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>> {
        let limit = filter.limit.clamp(1, 10_000);
        on_pool!(&self.backend, pool => {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT seq, time_us, actor, action, target, outcome, details, prev_hash, hash FROM audit_events WHERE 1=1",
            );
            if let Some(v) = &filter.actor { q.push(" AND actor = ").push_bind(v.clone()); }
            if let Some(v) = &filter.action { q.push(" AND action = ").push_bind(v.clone()); }
            if let Some(v) = &filter.target { q.push(" AND target = ").push_bind(v.clone()); }
            if let Some(v) = filter.outcome { q.push(" AND outcome = ").push_bind(v.as_str()); }
            if let Some(v) = filter.since_us { q.push(" AND time_us >= ").push_bind(v); }
            if let Some(v) = filter.until_us { q.push(" AND time_us < ").push_bind(v); }
            if let Some(v) = filter.after_seq { q.push(" AND seq > ").push_bind(v); }
            q.push(" ORDER BY seq LIMIT ").push_bind(limit);
            let rows = q.build().fetch_all(pool).await?;
            rows.iter().map(event_from_row).collect()
        })
    }

    /// All checkpoints, in sequence order.
    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        let sql = format!(
            "SELECT {} FROM audit_checkpoints ORDER BY seq",
            self.checkpoint_cols()
        );
        on_pool!(&self.backend, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?;
            rows.iter().map(checkpoint_from_row).collect()
        })
    }

    fn checkpoint_cols(&self) -> &'static str {
        if self.legacy_checkpoint_schema {
            LEGACY_CHECKPOINT_COLS
        } else {
            CHECKPOINT_COLS
        }
    }

    /// Walks the whole chain and every checkpoint under this store's cadence, without
    /// anchors; `Ok(Err(fault))` names the first bad link.
    pub async fn verify_chain(&self) -> Result<std::result::Result<ChainReport, ChainFault>> {
        Ok(self.verify(&[]).await?.into_result())
    }

    /// Walks the whole chain and the checkpoint chain in one snapshot, applies the cadence
    /// rules (the newest checkpoint's recorded cadence, else this store's), and proves that
    /// every checkpoint in `anchors` (read back from outside the database) is here, identical.
    pub async fn verify(&self, anchors: &[Checkpoint]) -> Result<Verification> {
        const PAGE: i64 = 5_000;
        let cadence = self.cadence;
        let checkpoint_sql = format!(
            "SELECT {} FROM audit_checkpoints ORDER BY seq",
            self.checkpoint_cols()
        );
        on_pool!(&self.backend, pool => {
            // One snapshot for every read below (SQLite: a read transaction in WAL mode).
            let mut tx = match &self.backend {
                Backend::Sqlite(_) => pool.begin().await?,
                Backend::Postgres(_) => pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY").await?,
            };
            let mut keys = HashMap::new();
            for r in sqlx::query("SELECT key_id, public_key FROM signing_keys").fetch_all(&mut *tx).await? {
                // A key that does not decode verifies nothing: its checkpoints are reported.
                let (Ok(id), Ok(pk)) = (r.try_get::<String, _>("key_id"), r.try_get::<Vec<u8>, _>("public_key")) else { continue };
                let Ok(arr) = <[u8; 32]>::try_from(pk.as_slice()) else { continue };
                if let Ok(key) = VerifyingKey::from_bytes(&arr) {
                    keys.insert(id, key);
                }
            }
            let mut checkpoints = Vec::new();
            let mut undecodable = None;
            for r in sqlx::query(sqlx::AssertSqlSafe(checkpoint_sql)).fetch_all(&mut *tx).await? {
                match checkpoint_from_row(&r) {
                    Ok(c) => checkpoints.push(c),
                    Err(_) => {
                        let seq: i64 = r.try_get("seq")?;
                        undecodable.get_or_insert(ChainFault::BadCheckpointSignature { seq });
                    }
                }
            }
            let mut verifier = ChainVerifier::new(&checkpoints, &keys, cadence);
            if let Some(f) = undecodable {
                verifier.fail(f);
            }
            let mut after = 0i64;
            'pages: loop {
                let rows = sqlx::query("SELECT seq, time_us, actor, action, target, outcome, details, prev_hash, hash FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2")
                    .bind(after).bind(PAGE).fetch_all(&mut *tx).await?;
                if rows.is_empty() {
                    break;
                }
                for r in &rows {
                    let event = match event_from_row(r) {
                        Ok(e) => e,
                        Err(_) => {
                            // A row that does not even decode is as bad as an edited one.
                            let seq = r.try_get::<i64, _>("seq").unwrap_or(after + 1);
                            verifier.fail(ChainFault::HashMismatch { seq });
                            break 'pages;
                        }
                    };
                    after = event.seq;
                    if !verifier.push(&event) {
                        break 'pages;
                    }
                }
            }
            tx.rollback().await?;
            Ok(verifier.finish(anchors))
        })
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

/// The first schema version with chained checkpoints.
const CHAINED_CHECKPOINTS_SCHEMA: i64 = 16;

/// Columns of a checkpoint row, in the order [`checkpoint_from_row`] reads them.
pub(crate) const CHECKPOINT_COLS: &str = "seq, hash, key_id, signature, created_at_us, prev_seq, prev_digest, cadence_events, cadence_seconds";
/// The same from a schema before 0016 (offline verification of an old database).
const LEGACY_CHECKPOINT_COLS: &str = "seq, hash, key_id, signature, created_at_us, NULL AS prev_seq, NULL AS prev_digest, NULL AS cadence_events, NULL AS cadence_seconds";

/// A checkpoint row: legacy when every link column is NULL, chained when none is.
pub(crate) fn checkpoint_from_row<R: Row>(r: &R) -> Result<Checkpoint>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Vec<u8>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<Vec<u8>>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let seq: i64 = r.try_get("seq")?;
    let bad = || StoreError::Corrupt(format!("checkpoint {seq} is malformed"));
    let created_at_us: i64 = r.try_get("created_at_us")?;
    let link = match (
        r.try_get::<Option<i64>, _>("prev_seq")?,
        r.try_get::<Option<Vec<u8>>, _>("prev_digest")?,
        r.try_get::<Option<i64>, _>("cadence_events")?,
        r.try_get::<Option<i64>, _>("cadence_seconds")?,
    ) {
        (None, None, None, None) => None,
        (Some(prev_seq), Some(digest), Some(events), Some(seconds)) => Some(CheckpointLink {
            prev_seq,
            prev_digest: digest.as_slice().try_into().map_err(|_| bad())?,
            created_at_us,
            cadence: CheckpointCadence { events, seconds },
        }),
        _ => return Err(bad()),
    };
    Ok(Checkpoint {
        seq,
        hash: r
            .try_get::<Vec<u8>, _>("hash")?
            .as_slice()
            .try_into()
            .map_err(|_| bad())?,
        key_id: r.try_get("key_id")?,
        signature: r
            .try_get::<Vec<u8>, _>("signature")?
            .as_slice()
            .try_into()
            .map_err(|_| bad())?,
        link,
    })
}

pub(crate) fn to_hash(v: Vec<u8>) -> Result<[u8; 32]> {
    v.as_slice()
        .try_into()
        .map_err(|_| StoreError::Corrupt("hash has the wrong length".into()))
}

fn event_from_row<R: Row>(r: &R) -> Result<AuditEvent>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Vec<u8>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let outcome: String = r.try_get("outcome")?;
    let details: String = r.try_get("details")?;
    let seq: i64 = r.try_get("seq")?;
    Ok(AuditEvent {
        seq,
        time_us: r.try_get("time_us")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        target: r.try_get("target")?,
        outcome: Outcome::parse(&outcome)
            .ok_or_else(|| StoreError::Corrupt(format!("event {seq} has an unknown outcome")))?,
        details: serde_json::from_str(&details)
            .map_err(|_| StoreError::Corrupt(format!("event {seq} has invalid details")))?,
        prev_hash: to_hash(r.try_get("prev_hash")?)?,
        hash: to_hash(r.try_get("hash")?)?,
    })
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
