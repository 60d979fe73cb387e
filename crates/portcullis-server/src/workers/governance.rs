//! The cooling-off of change requests (four eyes on the PAM's settings): once a second, each
//! replica applies the pending changes whose cooling-off is over. Each apply is the request's
//! conditional close written with the change, so across replicas a change applies once.

use crate::state::AppState;

/// How often due change requests are looked for: a change takes effect at most this late.
const EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs until `shutdown` resolves.
pub async fn run(state: AppState, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        if let Err(e) = crate::services::governance::apply_due(&state).await {
            tracing::warn!(error = %e.message, "applying due change requests failed; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = &mut shutdown => return,
        }
    }
}
