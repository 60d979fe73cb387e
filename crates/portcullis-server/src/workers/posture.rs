//! The daily posture digest: once a day across replicas (a periodic-job claim), the posture
//! report's counts and its high findings are recorded as a `posture.digest` event, which the
//! built-in rule sends to the alert channels (a warning while anything is high, else info).
//!
//! Invariants:
//! - At most one digest per day for the whole replica group; the claim and the event are one
//!   write.
//! - The first look comes [`FIRST_LOOK`] after start, so a server that starts and stops (tests,
//!   upgrades) records nothing extra; then every [`TICK`].

use std::time::Duration;

use portcullis_core::audit::NewAuditEvent;
use portcullis_store::{Change, StoreError};
use time::OffsetDateTime;

use crate::state::AppState;
use crate::time_us::us;

/// The periodic job's name.
pub const DIGEST_JOB: &str = "posture.digest";
/// How long after start the first digest may be sent.
const FIRST_LOOK: Duration = Duration::from_secs(600);
/// How often a replica looks whether the day's digest is due.
const TICK: Duration = Duration::from_secs(3600);

/// Sends the digest once a day until `stop` resolves.
pub async fn digest(state: AppState, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    let mut wait = FIRST_LOOK;
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = TICK;
        if let Err(e) = send(&state).await {
            tracing::warn!(error = ?e, "posture digest failed");
        }
    }
}

/// Records today's digest unless another replica (or this one) already did.
pub async fn send(state: &AppState) -> Result<(), crate::error::ApiError> {
    let now = OffsetDateTime::now_utc();
    let report = crate::services::posture::evaluate(state, now).await?;
    let high: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.severity == "high")
        .map(|f| format!("{}: {}", f.id, f.title))
        .collect();
    let ev = NewAuditEvent::new("system", DIGEST_JOB, "tenant").details(serde_json::json!({
        "high": report.high,
        "medium": report.medium,
        "low": report.low,
        "high_findings": high,
    }));
    let claim = Change::ClaimPeriodic {
        name: DIGEST_JOB.into(),
        not_before_us: us(now - time::Duration::days(1)),
        at_us: us(now),
    };
    match state.store.write(claim, vec![ev]).await {
        Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
