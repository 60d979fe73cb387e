//! Token signing keys: the active Ed25519 key that signs access tokens (and audit
//! checkpoints), the public keys published in JWKS, and rotation.
//!
//! Invariants:
//! - Exactly one key signs at a time; `kid` is set on every token so verifiers pick the key.
//! - A rotated-out key stays published (and accepted) only while a token it signed can still
//!   be unexpired: until its successor was created plus the access-token lifetime plus a grace
//!   for verifiers' clocks (`signing_key_grace_seconds`, default 60). After that it leaves JWKS
//!   and verification (judged at each use, not at the next reload), so a token it signed is
//!   refused even if its `exp` were wrong.
//! - Rotation is one audited change that succeeds only if the key it replaces is still the
//!   active one (two racing rotations make one winner). Every replica reloads the key set every
//!   [`RELOAD_EVERY`], so a rotation on one reaches all without a restart.
//! - Verification accepts only `EdDSA` with a `kid` in the current set; `alg: none`, HMAC
//!   (the public key used as a secret) and unknown keys are refused before any claim is read.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use portcullis_core::token::AccessClaims;
use portcullis_store::{MasterKey, Store};
use time::{Duration, OffsetDateTime};

use crate::time_us::from_us;

/// How often each replica reloads the key set from the store.
pub const RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// A key as listed by the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    pub key_id: String,
    pub created_at: OffsetDateTime,
    pub active: bool,
    /// For a retired key: when it leaves JWKS. `None` for the active key.
    pub published_until: Option<OffsetDateTime>,
}

/// Whether a key retired until `until` (`None`: active) may still be met at `now`.
fn published(until: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    until.is_none_or(|u| now < u)
}

impl KeyStatus {
    /// Whether verifiers may still meet this key (it is in JWKS) at `now`.
    pub fn published(&self, now: OffsetDateTime) -> bool {
        published(self.published_until, now)
    }
}

struct PublicKey {
    decoding: DecodingKey,
    jwk: serde_json::Value,
    /// `None` for the active key.
    until: Option<OffsetDateTime>,
}

impl PublicKey {
    fn published(&self, now: OffsetDateTime) -> bool {
        published(self.until, now)
    }
}

struct KeySet {
    kid: String,
    encoding: EncodingKey,
    public: HashMap<String, PublicKey>,
    status: Vec<KeyStatus>,
}

/// Signs and verifies access tokens with the tenant's current key set.
pub struct TokenSigner {
    keys: RwLock<Arc<KeySet>>,
    pub issuer: String,
    pub lifetime: Duration,
    /// Allowance for verifiers' clocks before a retired key leaves JWKS.
    pub grace: Duration,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("kid", &self.current().kid)
            .field("issuer", &self.issuer)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up token signing")]
pub struct SignerError;

impl TokenSigner {
    /// Loads the active key and the public keys still within their retention.
    pub async fn load(
        store: &Store,
        master: &MasterKey,
        issuer: String,
        lifetime: Duration,
        grace: Duration,
    ) -> Result<Self, SignerError> {
        let keys = key_set(store, master, lifetime + grace).await?;
        Ok(Self {
            keys: RwLock::new(Arc::new(keys)),
            issuer,
            lifetime,
            grace,
        })
    }

    /// Reads the key set again (a rotation here or on another replica; retirements due).
    pub async fn reload(&self, store: &Store, master: &MasterKey) -> Result<(), SignerError> {
        let keys = Arc::new(key_set(store, master, self.lifetime + self.grace).await?);
        if let Ok(mut k) = self.keys.write() {
            *k = keys;
        }
        Ok(())
    }

    fn current(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The id of the key that signs now.
    pub fn active_kid(&self) -> String {
        self.current().kid.clone()
    }

    /// The JWKS document (RFC 7517) of the keys a verifier may meet at `now`.
    pub fn jwks(&self, now: OffsetDateTime) -> serde_json::Value {
        let keys = self.current();
        let mut published: Vec<(&String, &PublicKey)> = keys
            .public
            .iter()
            .filter(|(_, k)| k.published(now))
            .collect();
        // The active key first, then the newest retired ones.
        published.sort_by_key(|(_, k)| (k.until.is_some(), std::cmp::Reverse(k.until)));
        serde_json::json!({ "keys": published.into_iter().map(|(_, k)| k.jwk.clone()).collect::<Vec<_>>() })
    }

    /// When a key retired at `retired` leaves JWKS.
    pub fn published_until(&self, retired: OffsetDateTime) -> OffsetDateTime {
        retired + self.lifetime + self.grace
    }

    /// Every key the tenant has had, newest first, with its state.
    pub fn status(&self) -> Vec<KeyStatus> {
        self.current().status.clone()
    }

    /// Signs an access token (`typ: at+jwt`, RFC 9068).
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, jsonwebtoken::errors::Error> {
        self.sign_typed(claims, "at+jwt")
    }

    /// Signs an OpenID Connect ID token (`typ: JWT`).
    pub fn sign_id_token(
        &self,
        claims: &portcullis_core::token::IdClaims,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        self.sign_typed(claims, "JWT")
    }

    fn sign_typed<T: serde::Serialize>(
        &self,
        claims: &T,
        typ: &str,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let keys = self.current();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(keys.kid.clone());
        header.typ = Some(typ.into());
        jsonwebtoken::encode(&header, claims, &keys.encoding)
    }

    /// The claims of an access token this tenant signed that has not expired, or `None`. An
    /// access token's audience is the client it was issued to (privilege model rule 8), so
    /// `aud` must equal `client_id`; an ID token (`typ: JWT`) is never an access token.
    pub fn verify(&self, token: &str) -> Option<AccessClaims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.alg != Algorithm::EdDSA || header.typ.as_deref() != Some("at+jwt") {
            return None;
        }
        let keys = self.current();
        let key = keys.public.get(header.kid.as_deref()?)?;
        if !key.published(OffsetDateTime::now_utc()) {
            return None;
        }
        let key = &key.decoding;
        let mut v = Validation::new(Algorithm::EdDSA);
        // Checked below against the token's own client: every client is its own audience.
        v.validate_aud = false;
        v.set_issuer(&[&self.issuer]);
        v.leeway = 0;
        v.validate_nbf = true;
        jsonwebtoken::decode::<AccessClaims>(token, key, &v)
            .ok()
            .map(|d| d.claims)
            .filter(|c| c.aud == c.client_id)
    }
}

/// The keys from the store; a retired key is kept for `retention` after its successor came.
async fn key_set(
    store: &Store,
    master: &MasterKey,
    retention: Duration,
) -> Result<KeySet, SignerError> {
    let active = store
        .reload_signing_key(master)
        .await
        .map_err(|_| SignerError)?;
    let der = active.key.to_pkcs8_der().map_err(|_| SignerError)?;
    let encoding = EncodingKey::from_ed_der(der.as_bytes());
    let mut public = HashMap::new();
    let mut status = Vec::new();
    // Newest first: each key was retired when the one before it in this list was created.
    let mut successor_created: Option<i64> = None;
    for k in store.public_signing_keys().await.map_err(|_| SignerError)? {
        let is_active = k.key_id == active.key_id;
        let until = if is_active {
            None
        } else {
            // A key that is not active and has no newer key cannot happen; treat it as
            // retired when it was created.
            Some(from_us(successor_created.unwrap_or(k.created_at_us)) + retention)
        };
        successor_created = Some(k.created_at_us);
        status.push(KeyStatus {
            key_id: k.key_id.clone(),
            created_at: from_us(k.created_at_us),
            active: is_active,
            published_until: until,
        });
        public.insert(
            k.key_id.clone(),
            PublicKey {
                decoding: DecodingKey::from_ed_der(&k.public_key),
                jwk: serde_json::json!({
                    "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA",
                    "kid": k.key_id, "x": URL_SAFE_NO_PAD.encode(&k.public_key),
                }),
                until,
            },
        );
    }
    Ok(KeySet {
        kid: active.key_id,
        encoding,
        public,
        status,
    })
}
