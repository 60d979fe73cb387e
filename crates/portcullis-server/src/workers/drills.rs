//! The break-glass drill watch: once per `breakglass_drill_alert_every` across replicas (a
//! periodic-job claim), raises `breakglass.drill_overdue` for every account whose last drill
//! (or creation) is older than `breakglass_drill_max_age`. The event raises the critical alert
//! through the store's rules, so it reaches every channel like any emergency.

use portcullis_core::audit::NewAuditEvent;
use portcullis_store::{Change, Store, StoreError};
use time::{Duration, OffsetDateTime};

use crate::services::breakglass::{DRILL_JOB, drill_overdue};
use crate::time_us::us;

/// Once per `drill_alert_every` (across replicas), raises `breakglass.drill_overdue` for the
/// accounts whose drill is overdue; checks every minute (or sooner) until `stop` resolves.
pub async fn drill_watch(
    store: Store,
    max_age: Duration,
    every: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    // Often enough to notice within a minute (or within the age itself when it is shorter).
    let secs = max_age.min(every).whole_seconds().clamp(1, 60);
    let tick = std::time::Duration::from_secs(secs as u64);
    tokio::pin!(stop);
    loop {
        if let Err(e) = check_drills(&store, max_age, every).await {
            tracing::warn!(error = %e, "break-glass drill check failed");
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(tick) => {}
        }
    }
}

async fn check_drills(store: &Store, max_age: Duration, every: Duration) -> Result<(), StoreError> {
    let now = OffsetDateTime::now_utc();
    let overdue: Vec<String> = store
        .breakglass_accounts()
        .await?
        .iter()
        .filter(|a| drill_overdue(a, now, max_age))
        .map(|a| a.principal.name.clone())
        .collect();
    if overdue.is_empty() {
        return Ok(());
    }
    let ev = NewAuditEvent::new("system", DRILL_JOB, "tenant").details(serde_json::json!({
        "accounts": overdue, "max_age_days": max_age.whole_days(), "max_age_seconds": max_age.whole_seconds(),
    }));
    let claim = Change::ClaimPeriodic {
        name: DRILL_JOB.into(),
        not_before_us: us(now - every),
        at_us: us(now),
    };
    match store.write(claim, vec![ev]).await {
        Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e),
    }
}
