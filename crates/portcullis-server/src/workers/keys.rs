//! The signing-key reload: every [`RELOAD_EVERY`] each replica reloads the key set from the
//! store, so a rotation on one replica reaches all without a restart. A failed reload keeps the
//! keys already loaded.

use std::sync::Arc;

use portcullis_store::{MasterKey, Store};

use crate::services::keys::{RELOAD_EVERY, TokenSigner};

/// Reloads the key set every [`RELOAD_EVERY`] until `shutdown` resolves.
pub async fn reload_loop(
    signer: Arc<TokenSigner>,
    store: Store,
    master: Arc<MasterKey>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RELOAD_EVERY) => {}
            _ = &mut shutdown => return,
        }
        if signer.reload(&store, &master).await.is_err() {
            tracing::warn!("could not reload the signing keys; keeping the ones loaded");
        }
    }
}
