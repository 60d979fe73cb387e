//! The token service: service-account client authentication, access tokens (EdDSA JWTs),
//! verification for introspection, and revocation.
//!
//! Invariants:
//! - Service accounts authenticate only with client credentials: a client secret (a 256-bit
//!   random value shown once and stored as SHA-256; at most two are live, rotation without
//!   downtime) or a client assertion signed with a registered key (`private_key_jwt`, see
//!   [`crate::client_assertion`]). Every attempt, success or failure, is an audit event; failures are throttled
//!   per client and per IP like sign-ins.
//! - An access token carries the roles in effect when it was issued, and its `exp` is never
//!   later than the earliest end among them (invariant 3).
//! - Verification accepts only `EdDSA` with a `kid` this tenant issued; `alg: none`, HMAC
//!   (the public key used as a secret) and unknown keys are refused before any claim is read.
//!   Revoked `jti`s and disabled subjects are inactive.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use portcullis_core::audit::{NewAuditEvent, Outcome};
use portcullis_core::principal::PrincipalKind;
use portcullis_core::token::{AccessClaims, RoleClaim, access_token_expiry};
use portcullis_store::accounts::Principal;
use portcullis_store::crypto::token_hash;
use portcullis_store::{ServerKey, Store};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::time_us::{from_us, us};

/// The audience of access tokens issued for the Portcullis API and relying parties alike.
pub const AUDIENCE: &str = "portcullis";

/// Signs and verifies access tokens.
pub struct TokenSigner {
    kid: String,
    encoding: EncodingKey,
    /// Every key this tenant has had, by `kid`.
    decoding: HashMap<String, DecodingKey>,
    jwks: serde_json::Value,
    pub issuer: String,
    pub lifetime: Duration,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up token signing")]
pub struct SignerError;

impl TokenSigner {
    /// From the tenant's active key and the public halves of every key it has had.
    pub async fn load(
        store: &Store,
        active: &ServerKey,
        issuer: String,
        lifetime: Duration,
    ) -> Result<Self, SignerError> {
        let der = active.key.to_pkcs8_der().map_err(|_| SignerError)?;
        let encoding = EncodingKey::from_ed_der(der.as_bytes());
        let mut decoding = HashMap::new();
        let mut keys = Vec::new();
        for k in store.public_signing_keys().await.map_err(|_| SignerError)? {
            decoding.insert(k.key_id.clone(), DecodingKey::from_ed_der(&k.public_key));
            keys.push(serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA",
                "kid": k.key_id, "x": URL_SAFE_NO_PAD.encode(&k.public_key),
            }));
        }
        Ok(Self {
            kid: active.key_id.clone(),
            encoding,
            decoding,
            jwks: serde_json::json!({ "keys": keys }),
            issuer,
            lifetime,
        })
    }

    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }

    pub fn sign(&self, claims: &AccessClaims) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }

    /// The claims of a token this tenant signed that has not expired, or `None`.
    pub fn verify(&self, token: &str) -> Option<AccessClaims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.alg != Algorithm::EdDSA {
            return None;
        }
        let key = self.decoding.get(header.kid.as_deref()?)?;
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_audience(&[AUDIENCE]);
        v.set_issuer(&[&self.issuer]);
        v.leeway = 0;
        v.validate_nbf = true;
        jsonwebtoken::decode::<AccessClaims>(token, key, &v)
            .ok()
            .map(|d| d.claims)
    }
}

/// A new client secret: the value (shown once) and the hash stored.
pub fn new_client_secret() -> (String, Vec<u8>) {
    let value = format!("pcs_{}", portcullis_store::crypto::random_token().as_str());
    let hash = token_hash(&value);
    (value, hash)
}

/// A token id that does not reveal anything.
fn new_jti() -> String {
    let t = portcullis_store::crypto::random_token();
    hex::encode(&Sha256::digest(t.as_bytes())[..16])
}

/// Why client authentication failed, for the audit event (never told to the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthFailure {
    UnknownClient,
    WrongSecret,
    NotAServiceAccount,
    Disabled,
    /// A `private_key_jwt` client assertion was refused.
    Assertion(portcullis_core::client_key::AssertionFailure),
}

impl ClientAuthFailure {
    pub fn reason(self) -> &'static str {
        match self {
            Self::UnknownClient => "unknown_client",
            Self::WrongSecret => "wrong_secret",
            Self::NotAServiceAccount => "not_a_service_account",
            Self::Disabled => "client_disabled",
            Self::Assertion(f) => f.reason(),
        }
    }
}

/// Authenticates a service account by `client_id` (its name) and a client secret.
pub async fn authenticate_client(
    store: &Store,
    client_id: &str,
    secret: &str,
) -> Result<Principal, ClientAuthFailure> {
    let p = store
        .principal_by_name(client_id)
        .await
        .ok()
        .flatten()
        .ok_or(ClientAuthFailure::UnknownClient)?;
    if p.kind != PrincipalKind::ServiceAccount.as_str() {
        return Err(ClientAuthFailure::NotAServiceAccount);
    }
    // The lookup is by the SHA-256 of a 256-bit random value: its timing tells nothing.
    let found = store
        .client_secret_by_hash(&token_hash(secret))
        .await
        .ok()
        .flatten();
    match found {
        Some((_, owner)) if owner == p.id => {}
        _ => return Err(ClientAuthFailure::WrongSecret),
    }
    if !p.enabled {
        return Err(ClientAuthFailure::Disabled);
    }
    Ok(p)
}

/// An access token for a service account: its roles now, its consented permissions.
pub async fn issue_for_service_account(
    state: &crate::api::AppState,
    p: &Principal,
    now: OffsetDateTime,
) -> Result<(String, AccessClaims), crate::error::ApiError> {
    let grants = state.store.grants_of(&p.id, us(now)).await?;
    let permissions = state
        .store
        .consents_of(&p.id)
        .await?
        .into_iter()
        .map(|c| c.permission)
        .collect();
    let signer: &Arc<TokenSigner> = &state.tokens;
    let exp = access_token_expiry(
        now,
        signer.lifetime,
        grants.iter().map(|g| g.ends_at_us.map(from_us)),
    );
    let claims = AccessClaims {
        iss: signer.issuer.clone(),
        sub: p.id.clone(),
        aud: AUDIENCE.into(),
        iat: now.unix_timestamp(),
        nbf: now.unix_timestamp(),
        exp: exp.unix_timestamp(),
        jti: new_jti(),
        client_id: p.name.clone(),
        roles: grants
            .into_iter()
            .map(|g| RoleClaim {
                role: g.role,
                scope: g.scope,
                exp: g.ends_at_us.map(|e| e.div_euclid(1_000_000)),
            })
            .collect(),
        permissions,
        amr: vec![],
        acr: "client_credentials".into(),
    };
    let token = signer
        .sign(&claims)
        .map_err(crate::error::ApiError::internal)?;
    Ok((token, claims))
}

/// The audit event of a client-credentials attempt.
pub fn client_event(
    client_id: &str,
    outcome: Outcome,
    reason: &str,
    ip: &str,
    extra: serde_json::Value,
) -> NewAuditEvent {
    let mut details = serde_json::json!({ "reason": reason, "client_ip": ip });
    if let (Some(d), Some(e)) = (details.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            d.insert(k.clone(), v.clone());
        }
    }
    NewAuditEvent::new(
        format!("service_account:{client_id}"),
        "token.client_credentials",
        format!("service_account:{client_id}"),
    )
    .outcome(outcome)
    .details(details)
}
