//! Reading and verifying the audit chain: listing events, the checkpoints, and verification
//! over one snapshot (rows that do not decode are reported as faults, never as errors).

use super::*;

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

/// The first schema version with chained checkpoints.
pub(crate) const CHAINED_CHECKPOINTS_SCHEMA: i64 = 16;

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

impl Store {
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

    /// The newest checkpoint and when it was written (microseconds), if any.
    pub async fn newest_checkpoint(&self) -> Result<Option<(Checkpoint, i64)>> {
        let sql = format!(
            "SELECT {} FROM audit_checkpoints ORDER BY seq DESC LIMIT 1",
            self.checkpoint_cols()
        );
        on_pool!(&self.backend, pool => {
            match sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_optional(pool).await? {
                Some(r) => Ok(Some((checkpoint_from_row(&r)?, r.try_get::<i64, _>("created_at_us")?))),
                None => Ok(None),
            }
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
        self.verify_with_progress(anchors, &|_, _| {}).await
    }

    /// [`Store::verify`], calling `progress(walked, total)` after each page of events (`total`:
    /// the head when the walk began), for a progress indicator over a long chain.
    pub async fn verify_with_progress(
        &self,
        anchors: &[Checkpoint],
        progress: &(dyn Fn(i64, i64) + Sync),
    ) -> Result<Verification> {
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
            for r in sqlx::query("SELECT key_id, public_key FROM signing_keys WHERE algorithm = 'EdDSA'").fetch_all(&mut *tx).await? {
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
            let total: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM audit_events").fetch_one(&mut *tx).await?;
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
                progress(after, total);
            }
            tx.rollback().await?;
            Ok(verifier.finish(anchors))
        })
    }
}
