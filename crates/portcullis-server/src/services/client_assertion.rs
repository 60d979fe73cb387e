//! `private_key_jwt` client authentication (RFC 7523 §2.2, OpenID Connect Core §9): a service
//! account proves itself with a short-lived JWT signed by a key registered to it.
//!
//! Invariants:
//! - Nothing in an assertion is trusted before its signature is verified with a live key
//!   registered to the account it names. The unverified subject is used only to pick that
//!   account (and as the throttling and audit key); the header's `alg` must be `EdDSA` (or
//!   its fully-specified name `Ed25519`, RFC 9864) or `ES256` *and* the registered key's own
//!   algorithm, so `alg: none`, HMAC with the public key as the secret, RSA and algorithm
//!   confusion are refused before verification.
//! - A key registered to another account never authenticates this one: keys are looked up
//!   by (account, `kid`).
//! - The claims rules are [`portcullis_core::client_key::check_assertion`]; replay is refused
//!   by the caller, which records the `jti` in the same transaction as the outcome
//!   ([`portcullis_store::Change::UseClientAssertion`]).
//! - Every refusal is one [`ClientAuthFailure`] with a reason for the audit log; the caller of
//!   the endpoint sees `invalid_client`, with an `error_description` that says how to fix an
//!   assertion made wrong (lifetime, audience, times, replay, algorithm) and nothing about
//!   which clients or keys exist.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use portcullis_core::client_key::{
    AcceptedAssertion, AssertionClaims, AssertionFailure, ClientPublicKey, KeyAlgorithm,
    check_assertion,
};
use portcullis_core::principal::PrincipalKind;
use portcullis_store::Store;
use portcullis_store::accounts::Principal;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::services::tokens::ClientAuthFailure;

fn fail(f: AssertionFailure) -> ClientAuthFailure {
    ClientAuthFailure::Assertion(f)
}

/// One base64url JSON part of a compact JWS, parsed without any trust.
fn part<T: for<'de> Deserialize<'de>>(assertion: &str, index: usize) -> Option<T> {
    let text = assertion.split('.').nth(index)?;
    let raw = URL_SAFE_NO_PAD.decode(text).ok()?;
    serde_json::from_slice(&raw).ok()
}

#[derive(Deserialize)]
struct UntrustedHeader {
    alg: String,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct UntrustedSubject {
    sub: Option<String>,
}

/// The account an assertion claims to be from (its unverified `sub`), to find its keys and to
/// throttle and audit by. Trust nothing else about it.
pub fn claimed_client(assertion: &str) -> Option<String> {
    part::<UntrustedSubject>(assertion, 1)?
        .sub
        .filter(|s| !s.is_empty())
}

/// An assertion that authenticated its account; its `jti` is not yet recorded.
#[derive(Debug, Clone)]
pub struct VerifiedAssertion {
    pub principal: Principal,
    pub key_id: String,
    pub accepted: AcceptedAssertion,
}

/// Verifies a client assertion for `client_id`. `audiences` are the values of `aud` that name
/// this server.
pub async fn verify(
    store: &Store,
    client_id: &str,
    assertion: &str,
    audiences: &[&str],
    now: OffsetDateTime,
) -> Result<VerifiedAssertion, ClientAuthFailure> {
    if assertion.len() > portcullis_core::client_key::MAX_ASSERTION_LEN
        || assertion.split('.').count() != 3
    {
        return Err(fail(AssertionFailure::Malformed));
    }
    let p = store
        .principal_by_name(client_id)
        .await
        .ok()
        .flatten()
        .ok_or(ClientAuthFailure::UnknownClient)?;
    if p.kind != PrincipalKind::ServiceAccount {
        return Err(ClientAuthFailure::NotAServiceAccount);
    }
    let header: UntrustedHeader = part(assertion, 0).ok_or(fail(AssertionFailure::Malformed))?;
    let alg = KeyAlgorithm::parse(&header.alg).ok_or(fail(AssertionFailure::AlgorithmRefused))?;
    let kid = header.kid.ok_or(fail(AssertionFailure::UnknownKey))?;
    let stored = store
        .client_key(&p.id, &kid)
        .await
        .ok()
        .flatten()
        .ok_or(fail(AssertionFailure::UnknownKey))?;
    let key = ClientPublicKey::from_spki_der(&stored.public_key)
        .map_err(|_| fail(AssertionFailure::UnknownKey))?;
    if key.algorithm() != alg {
        return Err(fail(AssertionFailure::AlgorithmRefused));
    }
    if header.alg == "Ed25519" {
        let claims = verify_ed25519(assertion, key.raw())?;
        return finish(p, kid, &claims, audiences, now);
    }
    let (decoding, jws_alg) = match alg {
        KeyAlgorithm::EdDSA => (DecodingKey::from_ed_der(key.raw()), Algorithm::EdDSA),
        KeyAlgorithm::ES256 => (DecodingKey::from_ec_der(key.raw()), Algorithm::ES256),
    };
    // Only the signature here; the claims rules are core's, with the time passed in.
    let mut v = Validation::new(jws_alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let claims = match jsonwebtoken::decode::<AssertionClaims>(assertion, &decoding, &v) {
        Ok(d) => d.claims,
        Err(e) => {
            use jsonwebtoken::errors::ErrorKind;
            return Err(fail(match e.kind() {
                ErrorKind::InvalidSignature | ErrorKind::InvalidEcdsaKey => {
                    AssertionFailure::BadSignature
                }
                ErrorKind::InvalidAlgorithm => AssertionFailure::AlgorithmRefused,
                _ => AssertionFailure::Malformed,
            }));
        }
    };
    finish(p, kid, &claims, audiences, now)
}

/// The claims of an assertion whose header says `alg: Ed25519` (RFC 9864), once its
/// signature verifies with the registered Ed25519 key (`raw`, 32 bytes). jsonwebtoken knows
/// only the name `EdDSA`, so this one algorithm is checked here, strictly (no malleable
/// signatures).
fn verify_ed25519(assertion: &str, raw: &[u8]) -> Result<AssertionClaims, ClientAuthFailure> {
    let (signed, signature) = assertion
        .rsplit_once('.')
        .ok_or(fail(AssertionFailure::Malformed))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .ok()
        .and_then(|s| ed25519_dalek::Signature::from_slice(&s).ok())
        .ok_or(fail(AssertionFailure::BadSignature))?;
    let key = <[u8; 32]>::try_from(raw)
        .ok()
        .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())
        .ok_or(fail(AssertionFailure::UnknownKey))?;
    key.verify_strict(signed.as_bytes(), &signature)
        .map_err(|_| fail(AssertionFailure::BadSignature))?;
    part::<AssertionClaims>(assertion, 1).ok_or(fail(AssertionFailure::Malformed))
}

/// The claims rules (core's), then the account's state.
fn finish(
    p: Principal,
    kid: String,
    claims: &AssertionClaims,
    audiences: &[&str],
    now: OffsetDateTime,
) -> Result<VerifiedAssertion, ClientAuthFailure> {
    let accepted = check_assertion(claims, &p.name, audiences, now).map_err(fail)?;
    if !p.enabled {
        return Err(ClientAuthFailure::Disabled);
    }
    Ok(VerifiedAssertion {
        principal: p,
        key_id: kid,
        accepted,
    })
}
