//! WebAuthn/FIDO2 with `webauthn-rs`: passkeys and security keys, as a second factor after the
//! password or alone (passwordless).
//!
//! Invariants:
//! - Every credential is registered and used with **user verification required** (a PIN or
//!   biometric on the authenticator), so every WebAuthn sign-in has the `phishing_resistant`
//!   strength: the signature is bound to this server's origin and proves possession plus a
//!   second factor held by the authenticator. Security keys that cannot verify the user are
//!   refused at registration rather than registered as something weaker.
//! - The relying-party id is the host of `public_url`; an assertion made for another
//!   origin (another host, scheme or port) is refused.
//! - Ceremonies (the challenge and its server-side state) are stored in the database so any
//!   replica can finish them, expire after `signin_step_seconds`, belong to one principal and
//!   are consumed by their first finish, successful or not: a replayed answer finds nothing.
//! - The signature counter must move forward (unless the authenticator keeps none, i.e. 0);
//!   `webauthn-rs` checks it against the credential as it was when the ceremony started, and
//!   the store's conditional update checks it against the stored value, so two answers racing
//!   from a cloned authenticator cannot both win.
//! - Credentials are sealed at rest under the master key like TOTP seeds.
//! - Every sign-in attempt is an audit event with its reason; failures count towards the
//!   throttle like wrong passwords.

mod reauth;
mod registration;
mod signin;

pub use reauth::*;
pub use registration::*;
pub use signin::*;

use portcullis_core::api::{
    FactorView, Reauthenticated, SignInResponse, WebauthnChallenge, WebauthnFinishRequest,
    WebauthnRegisterRequest, WebauthnSignInRequest,
};
use portcullis_core::audit::Outcome;
use portcullis_core::error::ErrorCode;
use portcullis_core::principal::{PrincipalKind, PrincipalName};
use portcullis_core::session::{AuthStrength, SessionScope};
use portcullis_store::accounts::Principal;
use portcullis_store::crypto::token_hash;
use portcullis_store::{Change, StoreError};
use rand::RngCore;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid, WebauthnError,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};

use crate::error::ApiError;
use crate::services::caller::{Caller, ClientInfo, event};
use crate::services::identity::{
    Attempt, factor_name, factor_view, invalid_credentials, signin_event,
};
use crate::services::support::{invalid, new_id};
use crate::state::AppState;
use crate::time_us::{from_us, us};

const REGISTER: &str = "register";
const SIGNIN: &str = "signin";
const REAUTH: &str = "reauth";

/// The relying party for `origin` (its host is the relying-party id).
pub fn relying_party(origin: &Url) -> Result<Webauthn, WebauthnError> {
    let rp_id = origin.host_str().ok_or(WebauthnError::Configuration)?;
    WebauthnBuilder::new(rp_id, origin)?
        .rp_name("Portcullis")
        .build()
}

/// The WebAuthn user handle: derived from the principal id, so it is stable, reveals neither
/// name nor email, and differs between tenants.
fn user_handle(principal_id: &str) -> Uuid {
    let d = Sha256::digest(format!("portcullis-webauthn-user:{principal_id}"));
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    Uuid::from_bytes(b)
}

fn webauthn_failed(msg: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::WebauthnFailed, msg)
}

fn ceremony_gone() -> ApiError {
    ApiError::new(
        ErrorCode::Unauthenticated,
        "this WebAuthn ceremony has expired or was already finished; start again",
    )
}

/// Why an assertion or attestation was refused, in words safe to show and to audit.
fn describe(e: &WebauthnError) -> &'static str {
    match e {
        WebauthnError::InvalidRPOrigin => "origin_mismatch",
        WebauthnError::InvalidRPIDHash => "rp_id_mismatch",
        WebauthnError::MismatchedChallenge => "challenge_mismatch",
        WebauthnError::UserNotVerified => "user_not_verified",
        WebauthnError::UserNotPresent => "user_not_present",
        WebauthnError::CredentialPossibleCompromise => "counter_did_not_advance",
        WebauthnError::AuthenticationFailure => "bad_signature",
        WebauthnError::InvalidClientDataType => "wrong_ceremony_type",
        WebauthnError::CredentialNotFound => "credential_not_allowed",
        _ => "verification_failed",
    }
}

fn check_ceremony_id(id: &str) -> Result<(), ApiError> {
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request("ceremony_id is malformed"));
    }
    Ok(())
}

/// The confirmed WebAuthn credentials of a principal with their factor ids.
async fn passkeys(
    state: &AppState,
    principal_id: &str,
) -> Result<Vec<(String, Passkey)>, ApiError> {
    let mut out = Vec::new();
    for f in state.store.factors(principal_id).await? {
        if f.kind != portcullis_core::factor::FactorKind::Webauthn || !f.confirmed {
            continue;
        }
        let raw = state
            .master
            .open(&format!("mfa_factor:{}", f.id), &f.sealed_secret)
            .map_err(ApiError::internal)?;
        let pk: Passkey = serde_json::from_slice(&raw)
            .map_err(|_| ApiError::internal("stored WebAuthn credential unreadable"))?;
        out.push((f.id, pk));
    }
    Ok(out)
}

/// A stored ceremony, checked for kind and age.
struct Ceremony {
    id_hash: Vec<u8>,
    principal_id: String,
    state: String,
    factor_name: Option<String>,
    pending_signin_hash: Option<Vec<u8>>,
}

async fn load_ceremony(
    state: &AppState,
    ceremony_id: &str,
    kind: &str,
    now: OffsetDateTime,
) -> Result<Ceremony, ApiError> {
    check_ceremony_id(ceremony_id)?;
    let id_hash = token_hash(ceremony_id);
    let (principal_id, k, st, factor_name, pending_signin_hash, created) = state
        .store
        .ceremony(&id_hash)
        .await?
        .ok_or_else(ceremony_gone)?;
    if k != kind || now - from_us(created) > state.lifetimes.pending_signin {
        return Err(ceremony_gone());
    }
    Ok(Ceremony {
        id_hash,
        principal_id,
        state: st,
        factor_name,
        pending_signin_hash,
    })
}

/// A fresh ceremony id (256 random bits, hex) and the hash it is stored under.
fn new_ceremony_id() -> (String, Vec<u8>) {
    let mut raw = zeroize::Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(raw.as_mut());
    let id = hex::encode(raw.as_ref());
    let h = token_hash(&id);
    (id, h)
}
