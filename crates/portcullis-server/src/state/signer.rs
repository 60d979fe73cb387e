//! Token signing keys: one active key per algorithm — Ed25519 (`EdDSA`: access tokens, audit
//! checkpoints, ID tokens by default), P-256 (`ES256`) and RSA 2048 (`RS256`) for the ID tokens
//! of relying parties that ask for them — the public keys published in JWKS, and rotation.
//!
//! Invariants:
//! - Exactly one key per algorithm signs at a time; `kid` is set on every token so verifiers
//!   pick the key. Access tokens are always `EdDSA`.
//! - Every private key is sealed under the master key (`signing_key:{kid}`); a missing `ES256`
//!   or `RS256` key is created at start ([`missing_keys`]) in the transaction of the
//!   `server.started` event that records it; of replicas starting at once, one makes it.
//! - A rotated-out key stays published (and accepted) only while a token it signed can still
//!   be unexpired: until its successor was created plus the access-token lifetime plus a grace
//!   for verifiers' clocks (`signing_key_grace_seconds`, default 60). After that it leaves JWKS
//!   and verification (judged at each use, not at the next reload), so a token it signed is
//!   refused even if its `exp` were wrong.
//! - Rotation is one audited change that succeeds only if the key it replaces is still the
//!   active one (two racing rotations make one winner). Every replica reloads the key set every
//!   [`RELOAD_EVERY`], so a rotation on one reaches all without a restart.
//! - Verification picks the key by `kid` (which must be in the current set) and requires the
//!   algorithm of that key: a header naming another algorithm (`RS256` on an Ed25519 key),
//!   `alg: none`, HMAC (the public key used as a secret) and unknown keys are refused before
//!   any claim is read.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use portcullis_core::token::AccessClaims;
use portcullis_store::{Change, MasterKey, Store};
use sha2::Digest;
use time::{Duration, OffsetDateTime};

use crate::time_us::from_us;

/// How often each replica reloads the key set from the store.
pub const RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// The algorithms the tenant signs with, one active key each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SigningAlg {
    EdDSA,
    ES256,
    RS256,
}

impl SigningAlg {
    pub const ALL: [SigningAlg; 3] = [SigningAlg::EdDSA, SigningAlg::ES256, SigningAlg::RS256];

    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::EdDSA => "EdDSA",
            SigningAlg::ES256 => "ES256",
            SigningAlg::RS256 => "RS256",
        }
    }

    /// From the JWS `alg` name, exactly; anything else (`none`, `HS256`, …) is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    fn jwt(self) -> Algorithm {
        match self {
            SigningAlg::EdDSA => Algorithm::EdDSA,
            SigningAlg::ES256 => Algorithm::ES256,
            SigningAlg::RS256 => Algorithm::RS256,
        }
    }
}

/// A key as listed by the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    pub key_id: String,
    pub algorithm: SigningAlg,
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
    alg: SigningAlg,
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
    /// The active key of each algorithm.
    active: HashMap<SigningAlg, (String, EncodingKey)>,
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
            .field("kid", &self.active_kid())
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

    /// The id of the `EdDSA` key that signs now.
    pub fn active_kid(&self) -> String {
        self.active_kid_of(SigningAlg::EdDSA).unwrap_or_default()
    }

    /// The id of the key of `alg` that signs now.
    pub fn active_kid_of(&self, alg: SigningAlg) -> Option<String> {
        self.current().active.get(&alg).map(|(kid, _)| kid.clone())
    }

    /// The JWKS document (RFC 7517) of the keys a verifier may meet at `now`.
    pub fn jwks(&self, now: OffsetDateTime) -> serde_json::Value {
        let keys = self.current();
        let mut published: Vec<(&String, &PublicKey)> = keys
            .public
            .iter()
            .filter(|(_, k)| k.published(now))
            .collect();
        // The active keys first (EdDSA, ES256, RS256), then the newest retired ones.
        published.sort_by_key(|(_, k)| (k.until.is_some(), std::cmp::Reverse(k.until), k.alg));
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

    /// Signs an access token (`typ: at+jwt`, RFC 9068) with the active key of `alg` (EdDSA but
    /// for a relying party that registered another algorithm).
    pub fn sign(
        &self,
        claims: &AccessClaims,
        alg: SigningAlg,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        self.sign_typed(claims, "at+jwt", alg)
    }

    /// Signs an OpenID Connect ID token (`typ: JWT`) with the active key of `alg`.
    pub fn sign_id_token(
        &self,
        claims: &portcullis_core::token::IdClaims,
        alg: SigningAlg,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        self.sign_typed(claims, "JWT", alg)
    }

    fn sign_typed<T: serde::Serialize>(
        &self,
        claims: &T,
        typ: &str,
        alg: SigningAlg,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let keys = self.current();
        let (kid, encoding) = keys
            .active
            .get(&alg)
            .ok_or(jsonwebtoken::errors::ErrorKind::InvalidAlgorithm)?;
        let mut header = Header::new(alg.jwt());
        header.kid = Some(kid.clone());
        header.typ = Some(typ.into());
        jsonwebtoken::encode(&header, claims, encoding)
    }

    /// The claims of an access token this tenant signed that has not expired, or `None`. An
    /// access token's audience is the client it was issued to (privilege model rule 8), so
    /// `aud` must equal `client_id`; an ID token (`typ: JWT`) is never an access token.
    pub fn verify(&self, token: &str) -> Option<AccessClaims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.typ.as_deref() != Some("at+jwt") {
            return None;
        }
        let keys = self.current();
        let key = keys.public.get(header.kid.as_deref()?)?;
        // The key decides the algorithm, never the token's header.
        if header.alg != key.alg.jwt() || !key.published(OffsetDateTime::now_utc()) {
            return None;
        }
        let mut v = Validation::new(key.alg.jwt());
        let key = &key.decoding;
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

/// The keys from the store; a retired key is kept for `retention` after its successor (of
/// the same algorithm) came.
async fn key_set(
    store: &Store,
    master: &MasterKey,
    retention: Duration,
) -> Result<KeySet, SignerError> {
    let ed = store
        .reload_signing_key(master)
        .await
        .map_err(|_| SignerError)?;
    let der = ed.key.to_pkcs8_der().map_err(|_| SignerError)?;
    let mut active = HashMap::new();
    active.insert(
        SigningAlg::EdDSA,
        (ed.key_id.clone(), EncodingKey::from_ed_der(der.as_bytes())),
    );
    let mut active_ids = HashSet::from([ed.key_id.clone()]);
    for (alg, key_id, sealed) in store
        .sealed_active_signing_keys()
        .await
        .map_err(|_| SignerError)?
    {
        let Some(alg) = SigningAlg::parse(&alg).filter(|a| *a != SigningAlg::EdDSA) else {
            continue;
        };
        if active.contains_key(&alg) {
            continue;
        }
        let pkcs8 = master
            .open(&format!("signing_key:{key_id}"), &sealed)
            .map_err(|_| SignerError)?;
        let encoding = match alg {
            SigningAlg::ES256 => EncodingKey::from_ec_der(&pkcs8),
            _ => EncodingKey::from_rsa_der(pkcs1_of_pkcs8(&pkcs8).ok_or(SignerError)?),
        };
        active_ids.insert(key_id.clone());
        active.insert(alg, (key_id, encoding));
    }
    let mut public = HashMap::new();
    let mut status = Vec::new();
    // Newest first: each key was retired when the one before it of its algorithm was created.
    let mut successor_created: HashMap<SigningAlg, i64> = HashMap::new();
    for k in store.public_signing_keys().await.map_err(|_| SignerError)? {
        let Some(alg) = SigningAlg::parse(&k.algorithm) else {
            continue;
        };
        let is_active = active_ids.contains(&k.key_id);
        let until = if is_active {
            None
        } else {
            // A key that is not active and has no newer key cannot happen; treat it as
            // retired when it was created.
            Some(
                from_us(
                    successor_created
                        .get(&alg)
                        .copied()
                        .unwrap_or(k.created_at_us),
                ) + retention,
            )
        };
        successor_created.insert(alg, k.created_at_us);
        let Some((decoding, jwk)) = public_jwk(alg, &k.key_id, &k.public_key) else {
            continue;
        };
        status.push(KeyStatus {
            key_id: k.key_id.clone(),
            algorithm: alg,
            created_at: from_us(k.created_at_us),
            active: is_active,
            published_until: until,
        });
        public.insert(
            k.key_id.clone(),
            PublicKey {
                alg,
                decoding,
                jwk,
                until,
            },
        );
    }
    Ok(KeySet {
        active,
        public,
        status,
    })
}

/// The verification key and JWK of a stored public key: the raw Ed25519 key, the uncompressed
/// P-256 point, or the PKCS#1 `RSAPublicKey` DER.
fn public_jwk(
    alg: SigningAlg,
    kid: &str,
    public_key: &[u8],
) -> Option<(DecodingKey, serde_json::Value)> {
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    match alg {
        SigningAlg::EdDSA => Some((
            DecodingKey::from_ed_der(public_key),
            serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA",
                "kid": kid, "x": b64(public_key),
            }),
        )),
        SigningAlg::ES256 => {
            if public_key.len() != 65 || public_key[0] != 4 {
                return None;
            }
            Some((
                DecodingKey::from_ec_der(public_key),
                serde_json::json!({
                    "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                    "x": b64(&public_key[1..33]), "y": b64(&public_key[33..65]),
                }),
            ))
        }
        SigningAlg::RS256 => {
            let (n, e) = rsa_components(public_key)?;
            Some((
                DecodingKey::from_rsa_der(public_key),
                serde_json::json!({
                    "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                    "n": b64(n), "e": b64(e),
                }),
            ))
        }
    }
}

/// One DER element at the start of `input`: its tag, its contents and what follows it.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// `n` and `e` (big-endian, without a leading zero) of a PKCS#1 `RSAPublicKey`.
fn rsa_components(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (0x30, seq, _) = der_element(der)? else {
        return None;
    };
    let (0x02, n, rest) = der_element(seq)? else {
        return None;
    };
    let (0x02, e, _) = der_element(rest)? else {
        return None;
    };
    Some((strip_zero(n), strip_zero(e)))
}

/// A DER INTEGER's positive value without its sign byte.
fn strip_zero(v: &[u8]) -> &[u8] {
    match v.split_first() {
        Some((0, r)) if !r.is_empty() => r,
        _ => v,
    }
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo` (what jsonwebtoken signs with).
fn pkcs1_of_pkcs8(der: &[u8]) -> Option<&[u8]> {
    let (0x30, seq, _) = der_element(der)? else {
        return None;
    };
    let (0x02, _, rest) = der_element(seq)? else {
        return None;
    };
    let (0x30, _, rest) = der_element(rest)? else {
        return None;
    };
    let (0x04, key, _) = der_element(rest)? else {
        return None;
    };
    Some(key)
}

/// A new key of `alg` (`ES256` or `RS256`; Ed25519 keys come from
/// [`Store::new_signing_key`]): its id, public key as stored and private key sealed under the
/// master key.
pub fn new_key(
    alg: SigningAlg,
    master: &MasterKey,
) -> Result<(String, Vec<u8>, Vec<u8>), SignerError> {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair;
    let (public, pkcs8) = match alg {
        SigningAlg::ES256 => {
            let pair = aws_lc_rs::signature::EcdsaKeyPair::generate(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            )
            .map_err(|_| SignerError)?;
            let pkcs8 = pair.to_pkcs8v1().map_err(|_| SignerError)?;
            (pair.public_key().as_ref().to_vec(), pkcs8.as_ref().to_vec())
        }
        SigningAlg::RS256 => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|_| SignerError)?;
            let pkcs8 = pair.as_der().map_err(|_| SignerError)?;
            (pair.public_key().as_ref().to_vec(), pkcs8.as_ref().to_vec())
        }
        SigningAlg::EdDSA => return Err(SignerError),
    };
    let digest = sha2::Sha256::digest(&public);
    let key_id = format!(
        "k-{}-{}",
        alg.as_str().to_ascii_lowercase(),
        &hex::encode(digest)[..16]
    );
    let sealed = master.seal(&format!("signing_key:{key_id}"), &pkcs8);
    Ok((key_id, public, sealed))
}

/// The `ES256` and `RS256` keys a tenant does not have yet (a tenant from before they
/// existed, or a new one), as changes that each conflict if another replica made that key
/// first, with what the start's audit event records of them.
pub async fn missing_keys(
    store: &Store,
    master: &MasterKey,
    now: OffsetDateTime,
) -> Result<(Vec<Change>, Vec<serde_json::Value>), SignerError> {
    let have: HashSet<String> = store
        .sealed_active_signing_keys()
        .await
        .map_err(|_| SignerError)?
        .into_iter()
        .map(|(alg, _, _)| alg)
        .collect();
    let mut changes = Vec::new();
    let mut created = Vec::new();
    for alg in [SigningAlg::ES256, SigningAlg::RS256] {
        if have.contains(alg.as_str()) {
            continue;
        }
        let (key_id, public_key, sealed_private_key) = new_key(alg, master)?;
        created.push(serde_json::json!({ "algorithm": alg.as_str(), "key_id": key_id }));
        changes.push(Change::CreateSigningKey {
            algorithm: alg.as_str().to_owned(),
            key_id,
            public_key,
            sealed_private_key,
            at_us: crate::time_us::us(now),
        });
    }
    Ok((changes, created))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_keys_give_their_pkcs1_key_and_components() {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::signature::KeyPair;
        let pair =
            aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("generate");
        let pkcs8 = pair.as_der().expect("pkcs8");
        let pkcs1 = pkcs1_of_pkcs8(pkcs8.as_ref()).expect("pkcs1");
        assert!(aws_lc_rs::rsa::KeyPair::from_der(pkcs1).is_ok());
        let (n, e) = rsa_components(pair.public_key().as_ref()).expect("n, e");
        assert_eq!(n.len(), 256);
        assert_eq!(e, [1, 0, 1]);
        assert!(pkcs1_of_pkcs8(&[0x30, 0x82, 0xff]).is_none());
        assert!(rsa_components(&[]).is_none());
    }

    #[test]
    fn only_the_three_algorithms_parse() {
        for a in SigningAlg::ALL {
            assert_eq!(SigningAlg::parse(a.as_str()), Some(a));
        }
        for bad in ["none", "HS256", "eddsa", "RS512", "PS256", ""] {
            assert_eq!(SigningAlg::parse(bad), None, "{bad}");
        }
    }
}
