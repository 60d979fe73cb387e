//! Client public keys of service accounts and the rules for the client assertions signed
//! with them (`private_key_jwt`: RFC 7523 §2.2 and §3, OpenID Connect Core §9).
//!
//! Invariants:
//! - Only Ed25519 (`EdDSA`) and P-256 (`ES256`) keys in SubjectPublicKeyInfo form are
//!   accepted. DER is canonical, so the encoding is matched exactly: any other algorithm,
//!   curve, parameter or trailing byte is refused rather than guessed at. A private key given
//!   by mistake is refused with a message that says so (and never echoed).
//! - A key id names exactly one key of one account ([`KeyId`]: short, printable, no spaces).
//! - An assertion's claims are accepted only when `iss` and `sub` are both the client id,
//!   `aud` names this server, `exp` is present, not past and at most
//!   [`MAX_ASSERTION_LIFETIME`] ahead, `nbf`/`iat` (when present) are not in the future, and a
//!   `jti` is present. Replay is refused by the caller, which keeps each `jti` until
//!   [`AcceptedAssertion::keep_until`]; after that the `exp` check refuses the assertion anyway.
//! - Pure: the time is a parameter; signature verification belongs to the server (its JWT
//!   library), and happens before any claim here is looked at.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The furthest ahead an assertion's `exp` may be: a long-lived assertion is a bearer
/// credential that can be stolen and replayed elsewhere.
pub const MAX_ASSERTION_LIFETIME: Duration = Duration::minutes(5);

/// Allowed clock difference between the client and this server.
pub const CLOCK_SKEW: Duration = Duration::seconds(30);

/// The longest client assertion read at all.
pub const MAX_ASSERTION_LEN: usize = 8192;

/// The longest PEM text read at all.
const MAX_PEM_LEN: usize = 4096;

/// The signature algorithms a client key can have (the JWS `alg` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// Ed25519.
    EdDSA,
    /// ECDSA on P-256 with SHA-256.
    ES256,
}

impl KeyAlgorithm {
    pub const ALL: [KeyAlgorithm; 2] = [KeyAlgorithm::EdDSA, KeyAlgorithm::ES256];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::EdDSA => "EdDSA",
            KeyAlgorithm::ES256 => "ES256",
        }
    }

    /// From the JWS `alg` name; anything else (`none`, `HS256`, `RS256`, …) is `None`.
    /// `Ed25519` (the fully-specified name of RFC 9864, which Node's `openid-client` and
    /// `jose` write) is EdDSA with an Ed25519 key, the only EdDSA key there is here.
    pub fn parse(s: &str) -> Option<Self> {
        if s == "Ed25519" {
            return Some(KeyAlgorithm::EdDSA);
        }
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// Why a public key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "this is a private key: give the public key (e.g. `openssl pkey -in KEY -pubout`); the private key never leaves the client"
    )]
    PrivateKey,
    #[error("the public key must be PEM (-----BEGIN PUBLIC KEY-----, SubjectPublicKeyInfo)")]
    NotPem,
    #[error("the public key is too long")]
    TooLong,
    #[error("only Ed25519 and P-256 (ES256) public keys are accepted")]
    Unsupported,
    #[error("the Ed25519 public key is not a valid point")]
    InvalidPoint,
}

/// DER prefixes of the two accepted SubjectPublicKeyInfo shapes (RFC 8410, RFC 5480):
/// `SEQUENCE { SEQUENCE { OID id-Ed25519 } BIT STRING (32 bytes) }` and
/// `SEQUENCE { SEQUENCE { OID id-ecPublicKey, OID prime256v1 } BIT STRING (04 ‖ x ‖ y) }`.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// A client's public key: its algorithm and its SubjectPublicKeyInfo DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPublicKey {
    algorithm: KeyAlgorithm,
    spki: Vec<u8>,
}

impl ClientPublicKey {
    /// From PEM text (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        if text.len() > MAX_PEM_LEN {
            return Err(KeyError::TooLong);
        }
        if text.contains("PRIVATE KEY-----") {
            return Err(KeyError::PrivateKey);
        }
        let body = text
            .trim()
            .strip_prefix("-----BEGIN PUBLIC KEY-----")
            .and_then(|t| t.strip_suffix("-----END PUBLIC KEY-----"))
            .ok_or(KeyError::NotPem)?;
        let b64: String = body.split_whitespace().collect();
        let der = STANDARD.decode(b64).map_err(|_| KeyError::NotPem)?;
        Self::from_spki_der(&der)
    }

    /// From SubjectPublicKeyInfo DER.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        if let Some(raw) = der.strip_prefix(&ED25519_SPKI_PREFIX[..])
            && raw.len() == 32
        {
            let bytes: [u8; 32] = raw.try_into().map_err(|_| KeyError::Unsupported)?;
            ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::InvalidPoint)?;
            return Ok(Self {
                algorithm: KeyAlgorithm::EdDSA,
                spki: der.to_vec(),
            });
        }
        // An uncompressed point, which must lie on the curve: a key that could never verify
        // anything is refused when it is registered, not discovered at the first sign-in.
        if let Some(point) = der.strip_prefix(&P256_SPKI_PREFIX[..])
            && point.len() == 65
            && point[0] == 0x04
        {
            p256::PublicKey::from_sec1_bytes(point).map_err(|_| KeyError::InvalidPoint)?;
            return Ok(Self {
                algorithm: KeyAlgorithm::ES256,
                spki: der.to_vec(),
            });
        }
        Err(KeyError::Unsupported)
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The SubjectPublicKeyInfo DER (what is stored).
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// The key itself: 32 bytes for Ed25519, the uncompressed point `04 ‖ x ‖ y` for P-256.
    pub fn raw(&self) -> &[u8] {
        let skip = match self.algorithm {
            KeyAlgorithm::EdDSA => ED25519_SPKI_PREFIX.len(),
            KeyAlgorithm::ES256 => P256_SPKI_PREFIX.len(),
        };
        self.spki.get(skip..).unwrap_or_default()
    }

    /// The public JWK (RFC 7517/8037), members in the lexicographic order RFC 7638 needs.
    fn jwk_members(&self) -> String {
        let raw = self.raw();
        match self.algorithm {
            KeyAlgorithm::EdDSA => format!(
                r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                URL_SAFE_NO_PAD.encode(raw)
            ),
            KeyAlgorithm::ES256 => {
                let x = raw.get(1..33).unwrap_or_default();
                let y = raw.get(33..65).unwrap_or_default();
                format!(
                    r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                    URL_SAFE_NO_PAD.encode(x),
                    URL_SAFE_NO_PAD.encode(y)
                )
            }
        }
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url): the default key id.
    pub fn thumbprint(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.jwk_members().as_bytes()))
    }
}

/// A validated key id: 1 to 64 of `A-Z a-z 0-9 . _ -`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a key id is 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'")]
pub struct KeyIdError;

impl KeyId {
    pub fn parse(s: &str) -> Result<Self, KeyIdError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(KeyIdError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a client assertion was refused: recorded in the audit event, never told to the caller
/// (who sees `invalid_client` whatever the reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionFailure {
    /// Not three base64url parts, bad JSON, a claim of the wrong type, no readable subject.
    Malformed,
    /// `alg` is not `EdDSA` or `ES256` (`none`, HMAC, RSA…), or not the registered key's.
    AlgorithmRefused,
    /// No `kid`, or no live key with that id registered to this client.
    UnknownKey,
    BadSignature,
    /// `iss` or `sub` is not the client id.
    WrongSubject,
    WrongAudience,
    MissingExpiry,
    Expired,
    /// `exp` is further ahead than [`MAX_ASSERTION_LIFETIME`].
    LifetimeTooLong,
    /// `nbf` or `iat` is in the future.
    NotYetValid,
    MissingJti,
    /// This `jti` was accepted before.
    Replayed,
}

impl AssertionFailure {
    /// What the client may be told (`error_description`): how to fix an assertion it made
    /// wrong (its lifetime, audience, times, `jti`, algorithm). Anything about accounts or
    /// keys (unknown key, bad signature, subject) stays the generic answer, so nobody learns
    /// which clients or keys exist.
    pub fn public_description(self) -> Option<String> {
        let lifetime = MAX_ASSERTION_LIFETIME.whole_seconds();
        Some(match self {
            Self::LifetimeTooLong => format!(
                "client assertion refused: exp is more than {lifetime} seconds ahead; make assertions that live at most {} minutes",
                lifetime / 60
            ),
            Self::Expired => "client assertion refused: it has expired (exp)".to_owned(),
            Self::MissingExpiry => "client assertion refused: it has no exp".to_owned(),
            Self::NotYetValid => {
                "client assertion refused: nbf or iat is in the future (check the client's clock)"
                    .to_owned()
            }
            Self::WrongAudience => {
                "client assertion refused: aud must be this server's token endpoint or issuer"
                    .to_owned()
            }
            Self::MissingJti => "client assertion refused: it has no jti".to_owned(),
            Self::Replayed => {
                "client assertion refused: this jti was used before; make a new assertion for each request"
                    .to_owned()
            }
            // A refused algorithm can be the registered key's other one: saying so would tell
            // which key ids exist.
            Self::AlgorithmRefused
            | Self::Malformed
            | Self::UnknownKey
            | Self::BadSignature
            | Self::WrongSubject => return None,
        })
    }

    pub fn reason(self) -> &'static str {
        match self {
            Self::Malformed => "assertion_malformed",
            Self::AlgorithmRefused => "assertion_algorithm_refused",
            Self::UnknownKey => "assertion_unknown_key",
            Self::BadSignature => "assertion_bad_signature",
            Self::WrongSubject => "assertion_wrong_subject",
            Self::WrongAudience => "assertion_wrong_audience",
            Self::MissingExpiry => "assertion_missing_expiry",
            Self::Expired => "assertion_expired",
            Self::LifetimeTooLong => "assertion_lifetime_too_long",
            Self::NotYetValid => "assertion_not_yet_valid",
            Self::MissingJti => "assertion_missing_jti",
            Self::Replayed => "assertion_replayed",
        }
    }
}

/// `aud`: one string or several (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The claims of a client assertion this module looks at (others are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AssertionClaims {
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub aud: Option<Audience>,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
    pub iat: Option<i64>,
    pub jti: Option<String>,
}

/// An assertion whose claims passed: its `jti` must now be recorded until `keep_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedAssertion {
    pub jti: String,
    pub keep_until: OffsetDateTime,
}

fn unix(t: i64) -> Result<OffsetDateTime, AssertionFailure> {
    OffsetDateTime::from_unix_timestamp(t).map_err(|_| AssertionFailure::Malformed)
}

/// Checks the claims of an assertion whose signature has been verified. `audiences` are the
/// values that name this server (the token endpoint URL and the issuer).
pub fn check_assertion(
    claims: &AssertionClaims,
    client_id: &str,
    audiences: &[&str],
    now: OffsetDateTime,
) -> Result<AcceptedAssertion, AssertionFailure> {
    if claims.iss.as_deref() != Some(client_id) || claims.sub.as_deref() != Some(client_id) {
        return Err(AssertionFailure::WrongSubject);
    }
    let aud_ok = match &claims.aud {
        Some(Audience::One(a)) => audiences.contains(&a.as_str()),
        Some(Audience::Many(list)) => list.iter().any(|a| audiences.contains(&a.as_str())),
        None => false,
    };
    if !aud_ok {
        return Err(AssertionFailure::WrongAudience);
    }
    let exp = unix(claims.exp.ok_or(AssertionFailure::MissingExpiry)?)?;
    // Checked arithmetic: an `exp` at the edge of what a date can hold is malformed, not a
    // panic (the claims are the client's to choose).
    let keep_until = exp
        .checked_add(CLOCK_SKEW)
        .ok_or(AssertionFailure::Malformed)?;
    if keep_until <= now {
        return Err(AssertionFailure::Expired);
    }
    if now
        .checked_add(MAX_ASSERTION_LIFETIME + CLOCK_SKEW)
        .is_some_and(|latest| exp > latest)
    {
        return Err(AssertionFailure::LifetimeTooLong);
    }
    let future = now.checked_add(CLOCK_SKEW);
    for t in [claims.nbf, claims.iat].into_iter().flatten() {
        let t = unix(t)?;
        if future.is_some_and(|f| t > f) {
            return Err(AssertionFailure::NotYetValid);
        }
    }
    let jti = match claims.jti.as_deref() {
        Some(j) if !j.is_empty() && j.len() <= 256 => j.to_owned(),
        _ => return Err(AssertionFailure::MissingJti),
    };
    Ok(AcceptedAssertion { jti, keep_until })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAOifSAHpI/Bbd1Ph4zrVIBIE7wusG6b4KarcPLJQn6IQ=\n-----END PUBLIC KEY-----\n";
    const P256_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE0C0YtPUHEHk30PhAdYYJCldTdCza\neJQm4aEY3M7vtfKMFbDr1RDKKAof/3MhkPzULMNAbBZTMkrWMiciZ1f5fQ==\n-----END PUBLIC KEY-----\n";
    // RSA 512-bit, only to be refused.
    const RSA_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAMuE1sjZ/XPc0Y+mtCrjm48/Cy0bVGaE\nHhcW2f8tR0//5DGTJPvGNVSnockoMFhH6qVWuo5dVt8zy4P5Va3lbsECAwEAAQ==\n-----END PUBLIC KEY-----\n";

    #[test]
    fn accepts_ed25519_and_p256_spki() {
        let ed = ClientPublicKey::from_pem(ED_PEM).expect("ed25519");
        assert_eq!(ed.algorithm(), KeyAlgorithm::EdDSA);
        assert_eq!(ed.raw().len(), 32);
        let ec = ClientPublicKey::from_pem(P256_PEM).expect("p-256");
        assert_eq!(ec.algorithm(), KeyAlgorithm::ES256);
        assert_eq!(ec.raw().len(), 65);
        assert_eq!(ec.raw()[0], 4);
        assert_eq!(ed.thumbprint().len(), 43);
        assert_ne!(ed.thumbprint(), ec.thumbprint());
        assert!(KeyId::parse(&ed.thumbprint()).is_ok());
        // The same key with its last coordinate byte changed is off the curve: refused.
        let mut off = ec.spki_der().to_vec();
        if let Some(last) = off.last_mut() {
            *last ^= 1;
        }
        assert_eq!(
            ClientPublicKey::from_spki_der(&off),
            Err(KeyError::InvalidPoint)
        );
    }

    #[test]
    fn thumbprint_matches_rfc_8037_example() {
        // RFC 8037 appendix A.3: the thumbprint of the appendix A.2 key.
        let x = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .expect("b64");
        let mut der = ED25519_SPKI_PREFIX.to_vec();
        der.extend_from_slice(&x);
        let k = ClientPublicKey::from_spki_der(&der).expect("key");
        assert_eq!(
            k.thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn refuses_other_keys_and_encodings() {
        assert_eq!(
            ClientPublicKey::from_pem(RSA_PEM),
            Err(KeyError::Unsupported)
        );
        assert_eq!(
            ClientPublicKey::from_pem(
                "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----"
            ),
            Err(KeyError::PrivateKey)
        );
        assert_eq!(ClientPublicKey::from_pem("garbage"), Err(KeyError::NotPem));
        assert_eq!(
            ClientPublicKey::from_pem("-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----"),
            Err(KeyError::NotPem)
        );
        let mut der = STANDARD
            .decode("MCowBQYDK2VwAyEAOifSAHpI/Bbd1Ph4zrVIBIE7wusG6b4KarcPLJQn6IQ=")
            .expect("b64");
        der.push(0);
        assert_eq!(
            ClientPublicKey::from_spki_der(&der),
            Err(KeyError::Unsupported)
        );
        assert_eq!(
            ClientPublicKey::from_spki_der(&[]),
            Err(KeyError::Unsupported)
        );
        assert_eq!(
            ClientPublicKey::from_pem(&"A".repeat(5000)),
            Err(KeyError::TooLong)
        );
    }

    #[test]
    fn key_ids() {
        assert!(KeyId::parse("k1.2024-01_a").is_ok());
        for bad in ["", "a b", "ü", &"a".repeat(65), "a/b"] {
            assert!(KeyId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn algorithms_are_only_eddsa_and_es256() {
        assert_eq!(KeyAlgorithm::parse("EdDSA"), Some(KeyAlgorithm::EdDSA));
        assert_eq!(KeyAlgorithm::parse("ES256"), Some(KeyAlgorithm::ES256));
        for bad in ["none", "HS256", "RS256", "ES384", "eddsa", ""] {
            assert_eq!(KeyAlgorithm::parse(bad), None, "{bad}");
        }
    }

    const AUD: [&str; 2] = ["https://pam.example/oauth2/token", "https://pam.example"];

    fn good(now: OffsetDateTime) -> AssertionClaims {
        AssertionClaims {
            iss: Some("nightly".into()),
            sub: Some("nightly".into()),
            aud: Some(Audience::One(AUD[0].into())),
            exp: Some((now + Duration::minutes(2)).unix_timestamp()),
            nbf: Some(now.unix_timestamp()),
            iat: Some(now.unix_timestamp()),
            jti: Some("j1".into()),
        }
    }

    #[test]
    fn claims_rules() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("t");
        let ok = check_assertion(&good(now), "nightly", &AUD, now).expect("accepted");
        assert_eq!(ok.jti, "j1");
        assert_eq!(ok.keep_until, now + Duration::minutes(2) + CLOCK_SKEW);

        let mut c = good(now);
        c.aud = Some(Audience::Many(vec!["other".into(), AUD[1].into()]));
        assert!(check_assertion(&c, "nightly", &AUD, now).is_ok());

        type Tweak = Box<dyn Fn(&mut AssertionClaims)>;
        let cases: Vec<(Tweak, AssertionFailure)> = vec![
            (
                Box::new(|c| c.iss = Some("other".into())),
                AssertionFailure::WrongSubject,
            ),
            (Box::new(|c| c.sub = None), AssertionFailure::WrongSubject),
            (
                Box::new(|c| c.aud = Some(Audience::One("https://evil".into()))),
                AssertionFailure::WrongAudience,
            ),
            (
                Box::new(|c| c.aud = Some(Audience::Many(vec![]))),
                AssertionFailure::WrongAudience,
            ),
            (Box::new(|c| c.aud = None), AssertionFailure::WrongAudience),
            (Box::new(|c| c.exp = None), AssertionFailure::MissingExpiry),
            (
                Box::new(move |c| c.exp = Some((now - Duration::minutes(1)).unix_timestamp())),
                AssertionFailure::Expired,
            ),
            (
                Box::new(move |c| c.exp = Some((now + Duration::minutes(10)).unix_timestamp())),
                AssertionFailure::LifetimeTooLong,
            ),
            (
                Box::new(|c| c.exp = Some(i64::MAX)),
                AssertionFailure::Malformed,
            ),
            (
                Box::new(move |c| c.nbf = Some((now + Duration::minutes(2)).unix_timestamp())),
                AssertionFailure::NotYetValid,
            ),
            (
                Box::new(move |c| c.iat = Some((now + Duration::minutes(2)).unix_timestamp())),
                AssertionFailure::NotYetValid,
            ),
            (Box::new(|c| c.jti = None), AssertionFailure::MissingJti),
            (
                Box::new(|c| c.jti = Some(String::new())),
                AssertionFailure::MissingJti,
            ),
            (
                Box::new(|c| c.jti = Some("x".repeat(257))),
                AssertionFailure::MissingJti,
            ),
        ];
        for (tweak, want) in cases {
            let mut c = good(now);
            tweak(&mut c);
            assert_eq!(
                check_assertion(&c, "nightly", &AUD, now),
                Err(want),
                "{c:?}"
            );
        }
        // Within the allowed skew is fine.
        let mut c = good(now);
        c.exp = Some((now - Duration::seconds(10)).unix_timestamp());
        assert!(check_assertion(&c, "nightly", &AUD, now).is_ok());
    }

    /// Times at the edge of what a date holds are refused, never a panic (the property test in
    /// `fuzz` found `exp + skew` overflowing).
    #[test]
    fn edge_dates_are_malformed_or_refused() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("t");
        let mut c = good(now);
        c.exp = Some(253_402_300_799); // 9999-12-31T23:59:59Z
        assert_eq!(
            check_assertion(&c, "nightly", &AUD, now),
            Err(AssertionFailure::Malformed)
        );
        let mut c = good(now);
        c.iat = Some(253_402_300_799);
        assert_eq!(
            check_assertion(&c, "nightly", &AUD, now),
            Err(AssertionFailure::NotYetValid)
        );
        let late = OffsetDateTime::from_unix_timestamp(253_402_300_600).expect("t");
        let mut c = good(late);
        c.exp = Some(253_402_300_660);
        assert!(check_assertion(&c, "nightly", &AUD, late).is_ok());
    }

    #[test]
    fn claims_parse_one_or_many_audiences() {
        let one: AssertionClaims =
            serde_json::from_str(r#"{"iss":"a","sub":"a","aud":"x","exp":1,"jti":"j","extra":1}"#)
                .expect("one");
        assert_eq!(one.aud, Some(Audience::One("x".into())));
        let many: AssertionClaims = serde_json::from_str(r#"{"aud":["x","y"]}"#).expect("many");
        assert_eq!(many.aud, Some(Audience::Many(vec!["x".into(), "y".into()])));
        assert!(serde_json::from_str::<AssertionClaims>(r#"{"exp":"soon"}"#).is_err());
    }
}
