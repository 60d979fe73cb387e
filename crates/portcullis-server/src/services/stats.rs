//! What `/metrics` says about the tenant, read at scrape time from the shared database (exact
//! across replicas): grants active per role, requests waiting for approval, the alert outbox
//! per channel, the audit chain's head and the age of its newest signed checkpoint, and the
//! break-glass readiness. Counts only: no names of people or accounts.
//!
//! `/metrics` answers anyone, so the counts go through a cache (`Caches::domain_stats`, the
//! store's rules: dropped by any write on this replica, never older than a second): a flood
//! of scrapes costs one set of reads per second, not one per request.

use std::sync::Arc;

use portcullis_store::stats::DomainSnapshot;
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::state::AppState;
use crate::time_us::us;

/// The domain's state (at most a second old) and the time of this scrape.
pub async fn domain(state: &AppState) -> Result<(Arc<DomainSnapshot>, i64), ApiError> {
    let now_us = us(OffsetDateTime::now_utc());
    let snapshot = state
        .caches
        .domain_stats
        .get_or_load(&(), async {
            let stats = state.store.domain_stats(now_us).await?;
            let readiness = crate::services::breakglass::readiness(state).await?;
            let checkpoint_at_us = state.store.newest_checkpoint().await?.map(|(_, at)| at);
            Ok::<_, ApiError>(Arc::new(DomainSnapshot {
                stats,
                breakglass_usable: readiness.breakglass_accounts,
                breakglass_required: readiness.breakglass_required,
                drills_overdue: readiness.drills_overdue,
                checkpoint_at_us,
            }))
        })
        .await?;
    Ok((snapshot, now_us))
}
