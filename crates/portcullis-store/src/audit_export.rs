//! Reads of the SIEM export's cursors (`audit_export_cursors`; the writes are
//! [`crate::Change::ClaimAuditExport`], [`crate::Change::AdvanceAuditExport`] and
//! [`crate::Change::ReleaseAuditExport`]).

use sqlx::Row;

use crate::{Result, Store, on_pool};

/// Where one sink's export stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportCursor {
    pub sink: String,
    /// The last event delivered (0: none yet).
    pub seq: i64,
    /// The replica holding (or last holding) the lease.
    pub holder: String,
    pub lease_until_us: i64,
}

/// How far one sink's export is behind the chain's head.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportLag {
    pub sink: String,
    /// Events written and not yet delivered.
    pub events: i64,
    /// When the oldest of them was written (`None`: nothing is waiting).
    pub oldest_us: Option<i64>,
}

impl Store {
    /// The cursor of `sink`, if it was ever claimed.
    pub async fn audit_export_cursor(&self, sink: &str) -> Result<Option<ExportCursor>> {
        on_pool!(&self.backend, pool => {
            let Some(r) = sqlx::query("SELECT sink, seq, holder, lease_until_us FROM audit_export_cursors WHERE sink = $1")
                .bind(sink).fetch_optional(pool).await? else { return Ok(None) };
            Ok(Some(ExportCursor {
                sink: r.try_get("sink")?,
                seq: r.try_get("seq")?,
                holder: r.try_get("holder")?,
                lease_until_us: r.try_get("lease_until_us")?,
            }))
        })
    }

    /// Every sink's lag, by sink.
    pub async fn audit_export_lag(&self) -> Result<Vec<ExportLag>> {
        on_pool!(&self.backend, pool => {
            let rows = sqlx::query("SELECT c.sink, (SELECT COALESCE(MAX(seq), 0) FROM audit_events) - c.seq AS waiting, (SELECT MIN(e.time_us) FROM audit_events e WHERE e.seq = c.seq + 1) AS oldest FROM audit_export_cursors c ORDER BY c.sink")
                .fetch_all(pool).await?;
            rows.iter().map(|r| Ok(ExportLag {
                sink: r.try_get("sink")?,
                events: r.try_get("waiting")?,
                oldest_us: r.try_get("oldest")?,
            })).collect()
        })
    }
}
