//! The target worker: applies due target operations and reconciles each target on its
//! interval (rules in [`crate::services::targets`]).
//!
//! Invariants:
//! - Operations this process's writer commits wake the worker at once; other replicas'
//!   operations, retries and scheduled starts are found by a poll every [`POLL`], so a revoke
//!   is applied well within a second of its grant's end.
//! - Each operation is applied by one worker across replicas (the engine's claim), at most
//!   [`CONCURRENCY`] at once here; a stopping worker lets its attempts finish (at most
//!   [`DRAIN`]) so no claim is left behind.
//! - A target is reconciled by one replica per interval (a periodic-job claim, like the drill
//!   watch), first one interval after it was added, and reconciliations of different targets
//!   do not wait for each other.

use std::time::Duration;

use portcullis_store::{Change, Store};
use time::OffsetDateTime;

use crate::services::targets::Engine;
use crate::time_us::us;

/// How often the worker looks for due operations it was not woken for.
pub const POLL: Duration = Duration::from_millis(200);
/// Operations applied at once by one worker.
const CONCURRENCY: usize = 16;
/// How often the reconciler looks for targets whose interval has passed.
const RECONCILE_POLL: Duration = Duration::from_secs(1);

/// Applies operations until `shutdown` resolves.
pub async fn run(engine: Engine, store: Store, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut in_flight = tokio::task::JoinSet::new();
    loop {
        while in_flight.try_join_next().is_some() {}
        let now = OffsetDateTime::now_utc();
        match store.due_target_ops(us(now), CONCURRENCY as i64 * 4).await {
            Ok(due) => {
                for id in due {
                    let Ok(permit) = limit.clone().acquire_owned().await else {
                        return;
                    };
                    let engine = engine.clone();
                    in_flight.spawn(async move {
                        if let Err(e) = engine.attempt(id).await {
                            tracing::warn!(error = %e, operation = id, "target operation attempt failed");
                        }
                        drop(permit);
                    });
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read target operations"),
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = store.target_ops_written() => {}
            _ = &mut shutdown => break,
        }
    }
    // Attempts under way finish and record their outcome (each is bounded by its connector's
    // timeouts), so a stopped server leaves no claim to lapse; a killed one leaves claims that
    // lapse after the engine's CLAIM_FOR.
    let _ = tokio::time::timeout(DRAIN, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
}

/// How long a stopping worker waits for its attempts under way.
const DRAIN: Duration = Duration::from_secs(15);

/// Reconciles each target once per its interval until `shutdown` resolves.
pub async fn reconcile_loop(
    engine: Engine,
    store: Store,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut running: std::collections::HashMap<String, tokio::task::JoinHandle<()>> =
        std::collections::HashMap::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RECONCILE_POLL) => {}
            _ = &mut shutdown => return,
        }
        running.retain(|_, h| !h.is_finished());
        let Ok(targets) = store.targets().await else {
            continue;
        };
        for t in targets {
            let now = OffsetDateTime::now_utc();
            // The first reconciliation comes one interval after the target was added.
            if running.contains_key(&t.name)
                || us(now) - t.created_at_us < t.reconcile_interval_s * 1_000_000
            {
                continue;
            }
            let claim = Change::ClaimPeriodic {
                name: format!("target.reconcile:{}", t.name),
                not_before_us: us(now - time::Duration::seconds(t.reconcile_interval_s)),
                at_us: us(now),
            };
            if store.write(claim, vec![]).await.is_err() {
                continue;
            }
            let engine = engine.clone();
            let name = t.name.clone();
            running.insert(
                name,
                tokio::spawn(async move {
                    if let Err(e) = engine.reconcile(&t, "system:reconciler").await {
                        tracing::warn!(target = %t.name, error = %e, "reconciliation failed");
                    }
                }),
            );
        }
    }
}
