//! Signing-key operations: rotation (one audited compare-and-set change) and the key list.
//! The key set itself, its reload and verification are the state's ([`crate::state::signer`]).

pub use crate::state::signer::*;

use portcullis_store::Store;
use time::OffsetDateTime;

use crate::time_us::us;

/// Rotates the `EdDSA` signing key (see [`rotate_alg`]).
pub async fn rotate(
    state: &crate::state::AppState,
    actor: &str,
    expected: Option<&str>,
    now: OffsetDateTime,
) -> Result<(String, String), crate::error::ApiError> {
    rotate_alg(state, actor, SigningAlg::EdDSA, expected, now).await
}

/// Rotates the signing key of `alg`: a new key signs from now on; the old one stays published
/// for the lifetime of its tokens. Returns the new key id and the previous one.
/// With `expected`, only if that key is still the active one (compare-and-set, so a script
/// cannot rotate twice by accident); a lost race is a `conflict`.
pub async fn rotate_alg(
    state: &crate::state::AppState,
    actor: &str,
    alg: SigningAlg,
    expected: Option<&str>,
    now: OffsetDateTime,
) -> Result<(String, String), crate::error::ApiError> {
    let previous = match expected {
        Some(e) => e.to_owned(),
        None => state.tokens.active_kid_of(alg).unwrap_or_default(),
    };
    let (change, key_id) = if alg == SigningAlg::EdDSA {
        Store::new_signing_key(&state.master, &previous, now)
    } else {
        let (key_id, public_key, sealed_private_key) =
            new_key(alg, &state.master).map_err(crate::error::ApiError::internal)?;
        let change = portcullis_store::Change::RotateSigningKey {
            previous: previous.clone(),
            algorithm: alg.as_str().to_owned(),
            key_id: key_id.clone(),
            public_key,
            sealed_private_key,
            at_us: us(now),
        };
        (change, key_id)
    };
    let event = portcullis_core::audit::NewAuditEvent::new(actor, "signing_key.rotated", "tenant")
        .details(serde_json::json!({
            "algorithm": alg.as_str(),
            "previous_key_id": previous,
            "key_id": key_id,
            "previous_published_until": crate::time_us::rfc3339(us(state.tokens.published_until(now))),
        }));
    match state.store.write(change, vec![event]).await {
        Ok(_) => {}
        Err(portcullis_store::StoreError::Conflict(_)) => {
            return Err(crate::error::ApiError::new(
                portcullis_core::error::ErrorCode::Conflict,
                format!(
                    "{previous} is not the active {} signing key (rotated already?)",
                    alg.as_str()
                ),
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
