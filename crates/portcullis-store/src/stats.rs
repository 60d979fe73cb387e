//! Counts of the domain for `/metrics`, read at scrape time from the shared database, so every
//! replica reports the tenant's exact state: grants active per role, requests waiting for
//! approval, the alert outbox per channel, and the audit chain's head.

use sqlx::Row;

use crate::{Result, Store, on_pool};

/// What `/metrics` reports of the domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainStats {
    /// (role, grants active now: activations and active assignments).
    pub active_grants: Vec<(String, i64)>,
    /// Activation requests waiting for approval.
    pub pending_approval: i64,
    /// (channel, or the message kind for notifications without one; messages pending; when
    /// the oldest of them was written).
    pub outbox_pending: Vec<(String, i64, i64)>,
    /// Deliveries dead-lettered.
    pub outbox_dead: i64,
    /// The audit chain's newest sequence number (0 when empty).
    pub audit_head_seq: i64,
    /// How far each SIEM export sink is behind the head.
    pub export_lag: Vec<crate::audit_export::ExportLag>,
}

/// The domain's state as one scrape reads it: the counts, the break-glass readiness and the
/// newest checkpoint's time (ages are taken at the scrape).
#[derive(Debug, Clone)]
pub struct DomainSnapshot {
    pub stats: DomainStats,
    pub breakglass_usable: i64,
    pub breakglass_required: i64,
    pub drills_overdue: i64,
    /// When the newest signed checkpoint was written (`None`: none yet).
    pub checkpoint_at_us: Option<i64>,
}

impl Store {
    /// The domain's counts at `now_us`.
    pub async fn domain_stats(&self, now_us: i64) -> Result<DomainStats> {
        let export_lag = self.audit_export_lag().await?;
        on_pool!(&self.backend, pool => {
            let mut s = DomainStats { export_lag, ..DomainStats::default() };
            for r in sqlx::query("SELECT role, COUNT(*) FROM (SELECT role FROM activation_requests WHERE state = 'active' AND ends_at_us > $1 UNION ALL SELECT role FROM role_assignments WHERE kind = 'active' AND ended_at_us IS NULL AND starts_at_us <= $1 AND (ends_at_us IS NULL OR ends_at_us > $1)) g GROUP BY role ORDER BY role")
                .bind(now_us).fetch_all(pool).await? {
                s.active_grants.push((r.try_get(0)?, r.try_get(1)?));
            }
            s.pending_approval = sqlx::query_scalar("SELECT COUNT(*) FROM activation_requests WHERE state = 'pending_approval'")
                .fetch_one(pool).await?;
            for r in sqlx::query("SELECT COALESCE(channel, kind) AS c, COUNT(*), MIN(created_at_us) FROM outbox WHERE state = 'pending' GROUP BY COALESCE(channel, kind) ORDER BY c")
                .fetch_all(pool).await? {
                s.outbox_pending.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
            }
            s.outbox_dead = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE state = 'dead'")
                .fetch_one(pool).await?;
            s.audit_head_seq = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM audit_events")
                .fetch_one(pool).await?;
            Ok(s)
        })
    }
}
