//! Signing in with a split password: a fast keyed verifier instead of Argon2 (a random 100-character secret), never throttled before the check, and nobody changes the credential but a re-split.

use super::*;

/// The session of a break-glass account that signed in with its split password: full scope,
/// strength `mfa` (see the module header); takes the changes the password step gathered.
/// `None` (nothing taken) when `p` has no split password.
pub(crate) async fn password_signin(
    state: &AppState,
    client: &ClientInfo,
    p: &Principal,
    pending: &mut Vec<Change>,
    now: OffsetDateTime,
) -> Result<Option<SessionIssued>, ApiError> {
    let Some(a) = state.store.breakglass_account(&p.id).await? else {
        return Ok(None);
    };
    if a.credential != "password" {
        return Ok(None);
    }
    let completion = crate::services::identity::Completion {
        principal: p,
        client,
        strength: AuthStrength::Mfa,
        scope: SessionScope::Full,
        // Never subject to conditional access (invariant 4), so never bounded by it either.
        frequency: None,
        reason: "breakglass_split_password",
        details: serde_json::json!({ "strength": "mfa", "scope": "full", "credential": "split_password" }),
        changes: std::mem::take(pending),
        succeeded: None,
    };
    Ok(Some(
        crate::services::identity::complete_signin(state, completion, now).await?,
    ))
}

/// The fast verifier of a break-glass password: HMAC-SHA256 under the master key, bound to the
/// account. Slow hashing is for human-chosen passwords (invariant 7); a split password is 100
/// random characters, so this is as safe as Argon2 for it, and costs microseconds, which is
/// what keeps a break-glass sign-in out of the Argon2 queue a flood fills (invariant 4).
pub(crate) fn verifier(state: &AppState, principal_id: &str, password: &str) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(state.master.as_bytes()) else {
        return Vec::new();
    };
    mac.update(b"portcullis-breakglass-verifier\0");
    mac.update(principal_id.as_bytes());
    mac.update(b"\0");
    mac.update(password.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Checks a break-glass account's password: against its fast verifier when it has one
/// (constant time), else with Argon2 in the break-glass lane, in which case the verifier is
/// returned to be stored with the sign-in.
pub(crate) async fn verify_password(
    state: &AppState,
    p: &Principal,
    password: &SecretString,
    phc: Option<&str>,
) -> Result<(crate::services::passwords::Verified, Option<Change>), ApiError> {
    use secrecy::ExposeSecret;
    use subtle::ConstantTimeEq;
    let presented = verifier(state, &p.id, password.expose_secret());
    if let Some(stored) = state.store.breakglass_verifier(&p.id).await?
        && !stored.is_empty()
    {
        let ok = phc.is_some() && bool::from(stored.ct_eq(&presented));
        return Ok((
            crate::services::passwords::Verified {
                ok,
                needs_rehash: false,
            },
            None,
        ));
    }
    let v = state.passwords.verify_emergency(password, phc).await?;
    let upgrade = v.ok.then(|| Change::SetBreakGlassVerifier {
        principal_id: p.id.clone(),
        verifier: presented,
    });
    Ok((v, upgrade))
}

/// Refuses credential changes on a break-glass account made through the account's own
/// password or factor endpoints (see the module header); a FIDO2 account may register its
/// first security key.
pub(crate) async fn guard_own_credential(
    state: &AppState,
    p: &Principal,
    registering_webauthn: bool,
) -> Result<(), ApiError> {
    if !p.emergency {
        return Ok(());
    }
    let a = state.store.breakglass_account(&p.id).await?;
    let first_key = registering_webauthn
        && a.as_ref()
            .is_some_and(|a| a.credential == "fido2" && !a.has_credential);
    if first_key {
        return Ok(());
    }
    Err(credential_error(
        "a break-glass account's credential changes only by re-splitting it (portcullis breakglass rotate NAME) or by creating a new account",
    ))
}
