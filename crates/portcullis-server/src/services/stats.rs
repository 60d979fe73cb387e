//! What `/metrics` says about the tenant, read at scrape time from the shared database (exact
//! across replicas): grants active per role, requests waiting for approval, the alert outbox
//! per channel, the audit chain's head and the age of its newest signed checkpoint, and the
//! break-glass readiness. Counts only: no names of people or accounts.

use portcullis_store::stats::DomainStats;
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::state::AppState;
use crate::time_us::us;

/// The domain's state for one scrape.
#[derive(Debug, Clone)]
pub struct DomainSnapshot {
    pub stats: DomainStats,
    pub breakglass_usable: i64,
    pub breakglass_required: i64,
    pub drills_overdue: i64,
    /// Seconds since the newest signed checkpoint was written (`None`: none yet).
    pub seconds_since_checkpoint: Option<f64>,
    pub now_us: i64,
}

pub async fn domain(state: &AppState) -> Result<DomainSnapshot, ApiError> {
    let now_us = us(OffsetDateTime::now_utc());
    let stats = state.store.domain_stats(now_us).await?;
    let readiness = crate::services::breakglass::readiness(state).await?;
    let seconds_since_checkpoint = state
        .store
        .newest_checkpoint()
        .await?
        .map(|(_, at_us)| ((now_us - at_us).max(0)) as f64 / 1e6);
    Ok(DomainSnapshot {
        stats,
        breakglass_usable: readiness.breakglass_accounts,
        breakglass_required: readiness.breakglass_required,
        drills_overdue: readiness.drills_overdue,
        seconds_since_checkpoint,
        now_us,
    })
}
