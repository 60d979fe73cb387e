//! What a session must have proven (rules 7 and 8). Invariant: a credential change needs a
//! fresh proof, never an access token, and device-grant tokens carry at most `mfa`.

use time::{Duration, OffsetDateTime};

use crate::session::AuthStrength;

/// How recent the proof behind a credential change must be (rule 7).
pub const FRESH_PROOF_WINDOW: Duration = Duration::minutes(5);

/// The session asking to change a credential.
#[derive(Debug, Clone, Copy)]
pub struct ProofFacts {
    /// The caller presented an access token, not a session.
    pub access_token: bool,
    /// The session is registration-only (an account that had no second factor at sign-in).
    pub registration_only: bool,
    /// The account has a confirmed second factor now.
    pub has_factor: bool,
    /// When the session signed in.
    pub signed_in_at: OffsetDateTime,
    /// When a second factor was last proven in this session (sign-in or re-authentication).
    pub factor_proven_at: Option<OffsetDateTime>,
}

/// Why a credential change is refused (rule 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofRefusal {
    #[error(
        "credentials are changed from a signed-in session, never with an access token; sign in with your password and second factor"
    )]
    AccessToken,
    #[error(
        "this needs a fresh proof: re-authenticate with your password and a second factor (portcullis reauth, POST /api/v1/me/reauth) and retry within five minutes"
    )]
    Stale,
    #[error("this needs a fresh sign-in: sign in again and retry within five minutes")]
    StaleSignIn,
}

/// Rule 7: registering or removing a factor, or changing a password, needs a proof with an
/// existing factor within [`FRESH_PROOF_WINDOW`], or — for an account with no factor yet — a
/// registration-only session or a sign-in within the window. Access tokens never do.
pub fn check_fresh_proof(f: &ProofFacts, now: OffsetDateTime) -> Result<(), ProofRefusal> {
    if f.access_token {
        return Err(ProofRefusal::AccessToken);
    }
    let fresh = |at: OffsetDateTime| at <= now && now - at <= FRESH_PROOF_WINDOW;
    if f.has_factor {
        return match f.factor_proven_at {
            Some(at) if fresh(at) => Ok(()),
            _ => Err(ProofRefusal::Stale),
        };
    }
    if f.registration_only || fresh(f.signed_in_at) {
        Ok(())
    } else {
        Err(ProofRefusal::StaleSignIn)
    }
}

/// Rule 8: tokens from the device grant carry at most `mfa`, whatever the approving session
/// proved: the device itself proved nothing, and a phished approval must not hand out a
/// phishing-resistant strength.
pub fn device_grant_strength(approver: AuthStrength) -> AuthStrength {
    approver.min(AuthStrength::Mfa)
}
