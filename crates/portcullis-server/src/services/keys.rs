//! Signing-key operations: rotation (one audited compare-and-set change) and the key list.
//! The key set itself, its reload and verification are the state's ([`crate::state::signer`]).

pub use crate::state::signer::*;

use portcullis_store::Store;
use time::OffsetDateTime;

use crate::time_us::us;

/// Rotates the signing key: a new key signs from now on; the old one stays published for
/// the lifetime of its tokens. Returns the new key id.
/// With `expected`, only if that key is still the active one (compare-and-set, so a script
/// cannot rotate twice by accident); a lost race is a `conflict`.
pub async fn rotate(
    state: &crate::state::AppState,
    actor: &str,
    expected: Option<&str>,
    now: OffsetDateTime,
) -> Result<(String, String), crate::error::ApiError> {
    let previous = expected.map_or_else(|| state.tokens.active_kid(), str::to_owned);
    let (change, key_id) = Store::new_signing_key(&state.master, &previous, now);
    let event = portcullis_core::audit::NewAuditEvent::new(actor, "signing_key.rotated", "tenant")
        .details(serde_json::json!({
            "previous_key_id": previous,
            "key_id": key_id,
            "previous_published_until": crate::time_us::rfc3339(us(state.tokens.published_until(now))),
        }));
    match state.store.write(change, vec![event]).await {
        Ok(_) => {}
        Err(portcullis_store::StoreError::Conflict(_)) => {
            return Err(crate::error::ApiError::new(
                portcullis_core::error::ErrorCode::Conflict,
                format!("{previous} is not the active signing key (rotated already?)"),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    state
        .tokens
        .reload(&state.store, &state.master)
        .await
        .map_err(crate::error::ApiError::internal)?;
    Ok((key_id, previous))
}
