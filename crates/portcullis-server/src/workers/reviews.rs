//! The access-review worker: closes rounds at their end (undecided items get the review's
//! default, removals are applied), reminds reviewers once when a quarter of a round is left,
//! and opens the rounds a schedule makes due (`crate::services::reviews::run_due`).
//!
//! Invariants:
//! - It sleeps until the next review deadline in the store (a round's close or reminder, a
//!   review's next round), at most [`MAX_SLEEP`], and is woken early when a round opens in
//!   this process; a replica that did not open a round still acts on it at most a minute late.
//! - Every step is a conditional change (a round opens once, is reminded once and closes
//!   once), so with several replicas on one PostgreSQL each happens exactly once and the
//!   replica that loses the race writes nothing, not even an audit event.

use std::time::Duration;

use time::OffsetDateTime;

use crate::state::AppState;

/// The longest the worker sleeps without looking at the store (other replicas' rounds).
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// How long it waits after a failed round, or when a deadline stays due (a round that keeps
/// changing while it closes), so a stuck deadline does not spin.
const RETRY: Duration = Duration::from_secs(1);

/// Runs until `stop` resolves.
pub async fn run(state: AppState, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        let failed = match crate::services::reviews::run_due(&state).await {
            Ok(()) => false,
            Err(e) => {
                tracing::warn!(error = %e.message, "access-review round failed; retrying shortly");
                true
            }
        };
        let now = OffsetDateTime::now_utc();
        let sleep = match crate::services::reviews::next_deadline(&state).await {
            // Past already: what it names did not happen this time (retried after a pause).
            Ok(Some(at)) => Duration::try_from(at - now)
                .ok()
                .filter(|d| !d.is_zero())
                .unwrap_or(RETRY)
                .min(MAX_SLEEP),
            Ok(None) => MAX_SLEEP,
            Err(_) => RETRY,
        };
        let sleep = if failed { RETRY } else { sleep };
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = state.reviews_wake.notified() => {}
            _ = &mut stop => return,
        }
    }
}
