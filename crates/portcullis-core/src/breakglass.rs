//! Break-glass credential splitting: a long random password for an emergency account, held k-of-n
//! by custodians so that no single person can use the account alone.
//!
//! How it works:
//!
//! 1. [`generate_password`] draws [`PASSWORD_LEN`] characters from a CSPRNG over the 56-character
//!    unambiguous [`ALPHABET`] (no `0 O o 1 l I`, no symbols, so it survives paper and shells):
//!    100 × log2(56) ≈ 580 bits of entropy.
//! 2. [`split`] draws a random 32-byte key `K`, seals the password with XChaCha20-Poly1305 under
//!    `K` (random 24-byte nonce, associated data `"portcullis-breakglass-v1\0" + account`), and
//!    splits `K` (not the password) with Shamir secret sharing over GF(256) (`vsss-rs`), one
//!    share per custodian, in custodian order, at x-coordinates 1..=n.
//! 3. [`combine`] checks the shares belong together, rebuilds `K` by Lagrange interpolation over
//!    *all* the shares given, and opens the seal.
//!
//! Invariants:
//!
//! - Any `threshold` shares rebuild the password; fewer learn nothing about `K` (Shamir), hence
//!   nothing about the password beyond its length.
//! - A wrong, altered or foreign share never yields a wrong password: bare Shamir would silently
//!   interpolate garbage, but garbage `K` fails the AEAD tag, so [`combine`] returns
//!   [`CombineError::WrongShares`]. A share of another account fails before that with a clear
//!   error, and even a share relabelled to the right account fails the AEAD (the account is in
//!   the associated data).
//! - Each share's text ([`Share::encode`]) carries the same sealed credential, so any `threshold`
//!   custodians can rebuild the password offline, without the server. The format is
//!   `pcbg1:<account>:<custodian>:<index>:<total>:<threshold>:<b64url(share)>:<b64url(nonce‖ciphertext)>:<check>`
//!   where `<check>` is the hex of the first 4 bytes of SHA-256 over everything before the last
//!   `:`. The separator is `:` because names may contain `.`; `<check>` catches typos and
//!   corruption ([`ShareError::Corrupted`]) before any combining. It is not a MAC: the AEAD is what
//!   authenticates.
//! - Custodians: 2..=16 distinct valid principal names. Threshold: 1 ≤ t ≤ n; t = 1 (every
//!   custodian alone holds the account) only when forced.
//! - Key material (`K`, share values, the password, encodings) lives in `Zeroizing` buffers.
//!
//! Pure: no I/O and no clock; randomness comes in as a `rand_core` 0.6 `CryptoRngCore`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::principal::{PrincipalName, ValidationError};

/// Length of a generated break-glass password, in characters.
pub const PASSWORD_LEN: usize = 100;

/// The password alphabet: letters and digits without the look-alikes `0 O o 1 l I` (56
/// characters, ≈ 5.81 bits each).
pub const ALPHABET: &[u8; 56] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";

/// Fewest and most custodians of one break-glass account.
pub const MIN_CUSTODIANS: usize = 2;
pub const MAX_CUSTODIANS: usize = 16;

/// Prefix (format version) of an encoded share.
pub const SHARE_PREFIX: &str = "pcbg1";

const AAD_PREFIX: &[u8] = b"portcullis-breakglass-v1\0";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const CHECK_LEN: usize = 4;
const SEP: char = ':';

/// Why a custodian list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustodianError {
    #[error("custodian {name:?}: {source}")]
    Name {
        name: String,
        #[source]
        source: ValidationError,
    },
    #[error("custodian {0} is listed twice; each custodian holds exactly one share")]
    Duplicate(PrincipalName),
    #[error("at least {MIN_CUSTODIANS} custodians are needed, got {0}")]
    TooFew(usize),
    #[error("at most {MAX_CUSTODIANS} custodians are allowed, got {0}")]
    TooMany(usize),
}

/// The people who each hold one share, in share order: 2..=16 distinct valid names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Custodians(Vec<PrincipalName>);

impl Custodians {
    /// Parses and validates custodian names (as principal names).
    pub fn parse<I, S>(names: I) -> Result<Self, CustodianError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let parsed = names
            .into_iter()
            .map(|n| {
                let n = n.as_ref();
                PrincipalName::parse("custodian", n).map_err(|source| CustodianError::Name {
                    name: n.to_owned(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(parsed)
    }

    /// Validates an already-parsed list: count and uniqueness.
    pub fn new(names: Vec<PrincipalName>) -> Result<Self, CustodianError> {
        if names.len() < MIN_CUSTODIANS {
            return Err(CustodianError::TooFew(names.len()));
        }
        if names.len() > MAX_CUSTODIANS {
            return Err(CustodianError::TooMany(names.len()));
        }
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(CustodianError::Duplicate(n.clone()));
            }
        }
        Ok(Self(names))
    }

    pub fn as_slice(&self) -> &[PrincipalName] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false (there are at least two); present for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why a threshold was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdError {
    #[error("threshold must be at least 1")]
    Zero,
    #[error(
        "threshold {threshold} is larger than the {custodians} custodians: the password could never be rebuilt"
    )]
    LargerThanCustodians { threshold: usize, custodians: usize },
    #[error(
        "threshold 1 with {custodians} custodians lets any one of them use the account alone; force it if that is really intended"
    )]
    OneOfMany { custodians: usize },
}

/// How many of the `n` custodians must come together: 1 ≤ t ≤ n, and t = 1 only when forced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    t: u8,
    n: u8,
}

impl Threshold {
    pub fn new(t: usize, custodians: &Custodians, force: bool) -> Result<Self, ThresholdError> {
        let n = custodians.len();
        if t == 0 {
            return Err(ThresholdError::Zero);
        }
        if t > n {
            return Err(ThresholdError::LargerThanCustodians {
                threshold: t,
                custodians: n,
            });
        }
        if t == 1 && n > 1 && !force {
            return Err(ThresholdError::OneOfMany { custodians: n });
        }
        // n ≤ MAX_CUSTODIANS (16), so both fit in a u8.
        Ok(Self {
            t: t as u8,
            n: n as u8,
        })
    }

    /// Shares needed.
    pub fn get(self) -> usize {
        usize::from(self.t)
    }

    /// Custodians this threshold was checked against.
    pub fn custodians(self) -> usize {
        usize::from(self.n)
    }
}

/// Generates a break-glass password: [`PASSWORD_LEN`] characters drawn uniformly (rejection
/// sampling, no modulo bias) from [`ALPHABET`]; 100 × log2(56) ≈ 580 bits.
///
/// The caller still runs [`crate::password::check`]: a generated password can, very rarely,
/// contain a short account name (≥ 3 characters, case-insensitive); draw again if so.
pub fn generate_password<R: CryptoRngCore + ?Sized>(rng: &mut R) -> Zeroizing<String> {
    // 224 = 4 × 56: bytes ≥ 224 are rejected so every character is equally likely.
    const LIMIT: u8 = (ALPHABET.len() * 4) as u8;
    let mut out = Zeroizing::new(String::with_capacity(PASSWORD_LEN));
    let mut buf = Zeroizing::new([0u8; 64]);
    while out.len() < PASSWORD_LEN {
        rng.fill_bytes(buf.as_mut());
        for &b in buf.iter() {
            if b < LIMIT && out.len() < PASSWORD_LEN {
                out.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
            }
        }
    }
    out
}

/// The password sealed under the split key: XChaCha20-Poly1305 nonce and ciphertext (with tag).
/// Not secret without the key; every share carries a copy.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedCredential {
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

impl SealedCredential {
    /// `nonce ‖ ciphertext`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(NONCE_LEN + self.ciphertext.len());
        v.extend_from_slice(&self.nonce);
        v.extend_from_slice(&self.ciphertext);
        v
    }

    /// Parses `nonce ‖ ciphertext`; `None` if too short to hold a nonce and a tag.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, ciphertext) = b.split_at(NONCE_LEN);
        Some(Self {
            nonce: nonce.try_into().ok()?,
            ciphertext: ciphertext.to_vec(),
        })
    }

    fn open(&self, key: &[u8; KEY_LEN], account: &PrincipalName) -> Option<Zeroizing<Vec<u8>>> {
        let cipher = XChaCha20Poly1305::new(key.into());
        let aad = aad(account);
        cipher
            .decrypt(
                XNonce::from_slice(&self.nonce),
                Payload {
                    msg: &self.ciphertext,
                    aad: &aad,
                },
            )
            .ok()
            .map(Zeroizing::new)
    }
}

impl std::fmt::Debug for SealedCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedCredential")
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

fn aad(account: &PrincipalName) -> Vec<u8> {
    let mut aad = AAD_PREFIX.to_vec();
    aad.extend_from_slice(account.as_str().as_bytes());
    aad
}

/// One custodian's share of one break-glass account's key, with the sealed credential.
#[derive(Clone, PartialEq, Eq)]
pub struct Share {
    account: PrincipalName,
    custodian: PrincipalName,
    /// Shamir x-coordinate, 1..=total.
    index: u8,
    total: u8,
    threshold: u8,
    /// Shamir y-values, one per key byte.
    value: Zeroizing<Vec<u8>>,
    sealed: SealedCredential,
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Share")
            .field("account", &self.account)
            .field("custodian", &self.custodian)
            .field("index", &self.index)
            .field("total", &self.total)
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

/// Why a share's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    #[error("not a Portcullis break-glass share (expected it to start with \"{SHARE_PREFIX}:\")")]
    NotAShare,
    #[error("share is corrupted or mistyped: its checksum does not match; copy it again exactly")]
    Corrupted,
    #[error("share is malformed: {0}")]
    Malformed(&'static str),
    #[error("share names an invalid {field}: {source}")]
    Name {
        field: &'static str,
        #[source]
        source: ValidationError,
    },
}

impl Share {
    pub fn account(&self) -> &PrincipalName {
        &self.account
    }

    pub fn custodian(&self) -> &PrincipalName {
        &self.custodian
    }

    /// Position (1-based) of this share among the `total`.
    pub fn index(&self) -> u8 {
        self.index
    }

    pub fn total(&self) -> u8 {
        self.total
    }

    /// Shares needed to rebuild the password.
    pub fn threshold(&self) -> u8 {
        self.threshold
    }

    pub fn sealed(&self) -> &SealedCredential {
        &self.sealed
    }

    /// The text form, to write to the custodian's file or print once. Secret.
    pub fn encode(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(format!(
            "{SHARE_PREFIX}{SEP}{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}{SEP}",
            self.account, self.custodian, self.index, self.total, self.threshold
        ));
        B64.encode_string(self.value.as_slice(), &mut s);
        s.push(SEP);
        B64.encode_string(self.sealed.to_bytes(), &mut s);
        let check = checksum(&s);
        s.push(SEP);
        s.push_str(&check);
        s
    }

    /// Parses [`Share::encode`]'s text (surrounding whitespace is ignored). The checksum is
    /// verified first, so a typo anywhere is reported as [`ShareError::Corrupted`].
    pub fn parse(text: &str) -> Result<Self, ShareError> {
        let text = text.trim();
        if !text.starts_with(SHARE_PREFIX) || !text[SHARE_PREFIX.len()..].starts_with(SEP) {
            return Err(ShareError::NotAShare);
        }
        let (body, check) = text.rsplit_once(SEP).ok_or(ShareError::Corrupted)?;
        let expected = checksum(body);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            check.as_bytes(),
            expected.as_bytes(),
        )) {
            return Err(ShareError::Corrupted);
        }
        let fields: Vec<&str> = body.split(SEP).collect();
        let [
            _,
            account,
            custodian,
            index,
            total,
            threshold,
            value,
            sealed,
        ] = fields[..]
        else {
            return Err(ShareError::Malformed("wrong number of fields"));
        };
        let name = |field, s| {
            PrincipalName::parse(field, s).map_err(|source| ShareError::Name { field, source })
        };
        let account = name("account", account)?;
        let custodian = name("custodian", custodian)?;
        let num = |s: &str, what| s.parse::<u8>().map_err(|_| ShareError::Malformed(what));
        let index = num(index, "index is not a number")?;
        let total = num(total, "total is not a number")?;
        let threshold = num(threshold, "threshold is not a number")?;
        if !(MIN_CUSTODIANS..=MAX_CUSTODIANS).contains(&usize::from(total)) {
            return Err(ShareError::Malformed("total out of range"));
        }
        if index == 0 || index > total {
            return Err(ShareError::Malformed("index out of range"));
        }
        if threshold == 0 || threshold > total {
            return Err(ShareError::Malformed("threshold out of range"));
        }
        let value = Zeroizing::new(
            B64.decode(value)
                .map_err(|_| ShareError::Malformed("share value is not base64url"))?,
        );
        if value.len() != KEY_LEN {
            return Err(ShareError::Malformed("share value has the wrong length"));
        }
        let sealed = B64
            .decode(sealed)
            .map_err(|_| ShareError::Malformed("sealed credential is not base64url"))?;
        let sealed = SealedCredential::from_bytes(&sealed)
            .ok_or(ShareError::Malformed("sealed credential is too short"))?;
        Ok(Self {
            account,
            custodian,
            index,
            total,
            threshold,
            value,
            sealed,
        })
    }
}

fn checksum(body: &str) -> String {
    hex::encode(&Sha256::digest(body.as_bytes())[..CHECK_LEN])
}

/// Why splitting failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("the password to split is empty")]
    EmptyPassword,
    #[error("threshold was checked against {checked} custodians but {given} were given")]
    ThresholdMismatch { checked: usize, given: usize },
    #[error("sealing the credential failed")]
    Seal,
    #[error("secret sharing failed: {0}")]
    Sharing(String),
}

/// Seals `password` under a fresh random key and splits the key among `custodians`, any
/// `threshold` of whom can rebuild it. Returns the sealed credential (also carried by every
/// share) and one share per custodian, in custodian order.
pub fn split<R: CryptoRngCore + ?Sized>(
    account: &PrincipalName,
    password: &str,
    custodians: &Custodians,
    threshold: Threshold,
    rng: &mut R,
) -> Result<(SealedCredential, Vec<Share>), SplitError> {
    if password.is_empty() {
        return Err(SplitError::EmptyPassword);
    }
    let n = custodians.len();
    if threshold.custodians() != n {
        return Err(SplitError::ThresholdMismatch {
            checked: threshold.custodians(),
            given: n,
        });
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    rng.fill_bytes(key.as_mut());
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let ciphertext = XChaCha20Poly1305::new(key.as_ref().into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: password.as_bytes(),
                aad: &aad(account),
            },
        )
        .map_err(|_| SplitError::Seal)?;
    let sealed = SealedCredential { nonce, ciphertext };

    // Each raw share is `[x, y_0 .. y_31]` with x = 1..=n.
    let raw: Vec<Zeroizing<Vec<u8>>> = if threshold.get() == 1 {
        // vsss-rs refuses threshold 1; a degree-0 polynomial makes every share the key itself.
        (1..=threshold.n)
            .map(|x| {
                let mut v = Zeroizing::new(Vec::with_capacity(KEY_LEN + 1));
                v.push(x);
                v.extend_from_slice(key.as_ref());
                v
            })
            .collect()
    } else {
        vsss_rs::Gf256::split_bytes(threshold.get(), n, key.as_ref(), RngBridge(rng))
            .map_err(|e| SplitError::Sharing(e.to_string()))?
            .into_iter()
            .map(Zeroizing::new)
            .collect()
    };

    let shares = raw
        .iter()
        .zip(custodians.as_slice())
        .map(|(r, custodian)| Share {
            account: account.clone(),
            custodian: custodian.clone(),
            index: r[0],
            total: threshold.n,
            threshold: threshold.t,
            value: Zeroizing::new(r[1..].to_vec()),
            sealed: sealed.clone(),
        })
        .collect::<Vec<_>>();
    debug_assert!(
        shares
            .iter()
            .enumerate()
            .all(|(i, s)| usize::from(s.index) == i + 1 && s.value.len() == KEY_LEN)
    );
    Ok((sealed, shares))
}

/// Why the shares did not rebuild the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CombineError {
    #[error("no shares given")]
    NoShares,
    #[error(
        "the share of custodian {custodian} belongs to break-glass account {found}, not {expected}"
    )]
    OtherAccount {
        expected: PrincipalName,
        found: PrincipalName,
        custodian: PrincipalName,
    },
    #[error("custodian {0} gave more than one share; each custodian counts once")]
    DuplicateCustodian(PrincipalName),
    #[error("share number {0} was given twice")]
    DuplicateIndex(u8),
    #[error(
        "the shares come from different splits (their sealed credentials or thresholds differ); use shares from the same, latest split"
    )]
    DifferentSplits,
    #[error("{needed} shares are needed to rebuild the password, only {given} given")]
    NotEnough { given: usize, needed: usize },
    #[error(
        "the shares do not open the sealed credential: at least one share is wrong or was altered"
    )]
    WrongShares,
    #[error("the opened credential is not valid UTF-8")]
    NotUtf8,
}

/// Rebuilds the password of `account` from `shares`. All shares given are used, so one wrong
/// share among them makes the whole attempt fail with [`CombineError::WrongShares`] rather than
/// being silently outvoted; never returns a wrong password.
pub fn combine(
    account: &PrincipalName,
    shares: &[Share],
) -> Result<Zeroizing<String>, CombineError> {
    let first = shares.first().ok_or(CombineError::NoShares)?;
    for s in shares {
        if &s.account != account {
            return Err(CombineError::OtherAccount {
                expected: account.clone(),
                found: s.account.clone(),
                custodian: s.custodian.clone(),
            });
        }
    }
    for (i, s) in shares.iter().enumerate() {
        let earlier = &shares[..i];
        if earlier.iter().any(|e| e.custodian == s.custodian) {
            return Err(CombineError::DuplicateCustodian(s.custodian.clone()));
        }
        if earlier.iter().any(|e| e.index == s.index) {
            return Err(CombineError::DuplicateIndex(s.index));
        }
        if s.sealed != first.sealed
            || s.threshold != first.threshold
            || s.total != first.total
            || s.value.len() != KEY_LEN
        {
            return Err(CombineError::DifferentSplits);
        }
    }
    let needed = usize::from(first.threshold);
    if shares.len() < needed {
        return Err(CombineError::NotEnough {
            given: shares.len(),
            needed,
        });
    }

    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    if shares.len() == 1 {
        // Only reachable with threshold 1: the share is the key.
        key.copy_from_slice(&first.value);
    } else {
        let raw: Vec<Vec<u8>> = shares
            .iter()
            .map(|s| {
                let mut v = Vec::with_capacity(KEY_LEN + 1);
                v.push(s.index);
                v.extend_from_slice(&s.value);
                v
            })
            .collect();
        let result = vsss_rs::Gf256::combine_bytes(&raw);
        for mut r in raw {
            r.zeroize();
        }
        let mut k = Zeroizing::new(result.map_err(|_| CombineError::WrongShares)?);
        if k.len() != KEY_LEN {
            k.zeroize();
            return Err(CombineError::WrongShares);
        }
        key.copy_from_slice(&k);
    }

    let mut plain = first
        .sealed
        .open(&key, account)
        .ok_or(CombineError::WrongShares)?;
    match std::str::from_utf8(&plain) {
        Ok(s) => Ok(Zeroizing::new(s.to_owned())),
        Err(_) => {
            plain.zeroize();
            Err(CombineError::NotUtf8)
        }
    }
}

/// Adapts a `rand_core` 0.6 CSPRNG (the workspace's) to the `rand_core` 0.10 traits vsss-rs 6
/// takes.
struct RngBridge<'a, R: ?Sized>(&'a mut R);

impl<R: CryptoRngCore + ?Sized> rand_core_010::TryRng for RngBridge<'_, R> {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.0.next_u32())
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.0.next_u64())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.0.fill_bytes(dst);
        Ok(())
    }
}

impl<R: CryptoRngCore + ?Sized> rand_core_010::TryCryptoRng for RngBridge<'_, R> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn rng(seed: u64) -> StdRng {
        StdRng::seed_from_u64(seed)
    }

    fn name(s: &str) -> PrincipalName {
        PrincipalName::parse("name", s).expect("valid name")
    }

    fn custodians(n: usize) -> Custodians {
        Custodians::parse((0..n).map(|i| format!("custodian.{i}"))).expect("valid custodians")
    }

    fn setup(n: usize, t: usize, seed: u64) -> (PrincipalName, Zeroizing<String>, Vec<Share>) {
        let mut r = rng(seed);
        let account = name("bg.one");
        let password = generate_password(&mut r);
        let cs = custodians(n);
        let th = Threshold::new(t, &cs, t == 1).expect("valid threshold");
        let (_, shares) = split(&account, &password, &cs, th, &mut r).expect("split");
        (account, password, shares)
    }

    fn roundtrip(s: &Share) -> Share {
        Share::parse(&s.encode()).expect("parses")
    }

    #[test]
    fn password_is_long_and_unambiguous() {
        let mut r = rng(1);
        let a = generate_password(&mut r);
        let b = generate_password(&mut r);
        assert!(a.chars().count() >= 100);
        assert_eq!(a.len(), PASSWORD_LEN);
        assert!(a.bytes().all(|c| ALPHABET.contains(&c)));
        assert!(!a.contains(['0', 'O', 'o', '1', 'l', 'I']));
        assert_ne!(*a, *b);
        // Uses most of the alphabet (a biased or stuck generator would not).
        let distinct: std::collections::BTreeSet<char> = a.chars().chain(b.chars()).collect();
        assert!(distinct.len() > 40, "{}", distinct.len());
    }

    #[test]
    fn alphabet_is_unique_and_entropy_holds() {
        let set: std::collections::BTreeSet<u8> = ALPHABET.iter().copied().collect();
        assert_eq!(set.len(), ALPHABET.len());
        assert!(PASSWORD_LEN as f64 * (ALPHABET.len() as f64).log2() > 550.0);
    }

    #[test]
    fn any_three_of_five_rebuild() {
        let (account, password, shares) = setup(5, 3, 2);
        let mut count = 0;
        for mask in 0u32..32 {
            let subset: Vec<Share> = (0..5)
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| roundtrip(&shares[i]))
                .collect();
            let got = combine(&account, &subset);
            if subset.len() >= 3 {
                assert_eq!(
                    got.expect("rebuilds").as_str(),
                    password.as_str(),
                    "{mask:b}"
                );
                count += 1;
            } else if subset.is_empty() {
                assert_eq!(got, Err(CombineError::NoShares));
            } else {
                assert_eq!(
                    got,
                    Err(CombineError::NotEnough {
                        given: subset.len(),
                        needed: 3
                    })
                );
            }
        }
        assert_eq!(count, 10 + 5 + 1);
    }

    #[test]
    fn fewer_than_threshold_are_refused_and_would_not_open() {
        let (account, _, shares) = setup(4, 3, 3);
        assert_eq!(
            combine(&account, &shares[..2]),
            Err(CombineError::NotEnough {
                given: 2,
                needed: 3
            })
        );
        // Lying about the threshold does not help: two shares interpolate a wrong key.
        let lied: Vec<Share> = shares[..2]
            .iter()
            .map(|s| Share {
                threshold: 2,
                ..s.clone()
            })
            .collect();
        assert_eq!(combine(&account, &lied), Err(CombineError::WrongShares));
    }

    #[test]
    fn share_of_another_account_is_refused() {
        let (account, _, shares) = setup(3, 2, 4);
        let (_, _, others) = {
            let mut r = rng(5);
            let other = name("bg.two");
            let cs = custodians(3);
            let th = Threshold::new(2, &cs, false).expect("threshold");
            let (s, sh) = split(&other, "secret", &cs, th, &mut r).expect("split");
            (other, s, sh)
        };
        let err = combine(&account, &[shares[0].clone(), others[1].clone()]).expect_err("refused");
        assert_eq!(
            err,
            CombineError::OtherAccount {
                expected: name("bg.one"),
                found: name("bg.two"),
                custodian: name("custodian.1"),
            }
        );
        assert!(err.to_string().contains("bg.two"), "{err}");
        // Relabelled to the right account: the account is in the AEAD's associated data.
        let relabelled: Vec<Share> = others[..2]
            .iter()
            .map(|s| Share {
                account: account.clone(),
                ..s.clone()
            })
            .collect();
        let relabelled: Vec<Share> = relabelled.iter().map(roundtrip).collect();
        assert_eq!(
            combine(&account, &relabelled),
            Err(CombineError::WrongShares)
        );
    }

    #[test]
    fn corrupted_share_is_refused_by_checksum() {
        let (_, _, shares) = setup(3, 2, 6);
        let text = shares[0].encode();
        // Flip one character in every position of the payload part (after "pcbg1:").
        for pos in SHARE_PREFIX.len() + 1..text.len() {
            let mut bytes = text.as_bytes().to_vec();
            bytes[pos] = if bytes[pos] == b'A' { b'B' } else { b'A' };
            let bad = String::from_utf8(bytes).expect("ascii");
            let err = Share::parse(&bad).expect_err("corrupted");
            assert_eq!(err, ShareError::Corrupted, "position {pos}");
        }
        let mut bytes = text.as_bytes().to_vec();
        let mid = bytes.len() / 2;
        bytes[mid] = if bytes[mid] == b'x' { b'y' } else { b'x' };
        let bad = String::from_utf8(bytes).expect("ascii");
        assert_eq!(Share::parse(&bad), Err(ShareError::Corrupted));
        assert!(
            Share::parse(&bad)
                .expect_err("x")
                .to_string()
                .contains("corrupted")
        );
        assert_eq!(Share::parse("hello"), Err(ShareError::NotAShare));
        assert_eq!(
            Share::parse(&text[..text.len() - 3]),
            Err(ShareError::Corrupted)
        );
        assert_eq!(
            Share::parse(&format!("  {}\n", text.as_str())),
            Ok(shares[0].clone())
        );
    }

    #[test]
    fn altered_share_with_valid_checksum_fails_loudly() {
        let (account, _, shares) = setup(5, 3, 7);
        let mut altered = shares[1].clone();
        altered.value[5] ^= 0x01;
        let altered = roundtrip(&altered); // checksum recomputed: it parses
        assert_eq!(
            combine(
                &account,
                &[shares[0].clone(), altered.clone(), shares[2].clone()]
            ),
            Err(CombineError::WrongShares)
        );
        // A wrong share is not outvoted by extra good ones either.
        assert_eq!(
            combine(
                &account,
                &[
                    shares[0].clone(),
                    altered,
                    shares[2].clone(),
                    shares[3].clone()
                ]
            ),
            Err(CombineError::WrongShares)
        );
    }

    #[test]
    fn duplicates_and_mixed_splits_are_refused() {
        let (account, _, shares) = setup(3, 2, 8);
        assert_eq!(
            combine(&account, &[shares[0].clone(), shares[0].clone()]),
            Err(CombineError::DuplicateCustodian(name("custodian.0")))
        );
        let renamed = Share {
            custodian: name("mallory"),
            ..shares[0].clone()
        };
        assert_eq!(
            combine(&account, &[shares[0].clone(), renamed]),
            Err(CombineError::DuplicateIndex(1))
        );
        let (_, _, again) = setup(3, 2, 9); // same account and custodians, new split
        assert_eq!(
            combine(&account, &[shares[0].clone(), again[1].clone()]),
            Err(CombineError::DifferentSplits)
        );
    }

    #[test]
    fn custodian_rules() {
        assert_eq!(
            Custodians::parse(["alice", "bob", "alice"]),
            Err(CustodianError::Duplicate(name("alice")))
        );
        assert_eq!(Custodians::parse(["alice"]), Err(CustodianError::TooFew(1)));
        assert_eq!(
            Custodians::parse((0..17).map(|i| format!("c{i}"))),
            Err(CustodianError::TooMany(17))
        );
        assert!(matches!(
            Custodians::parse(["alice", "Bob"]),
            Err(CustodianError::Name { ref name, .. }) if name == "Bob"
        ));
        assert!(matches!(
            Custodians::parse(["alice", "b:c"]),
            Err(CustodianError::Name { .. })
        ));
        assert_eq!(custodians(16).len(), 16);
    }

    #[test]
    fn threshold_rules() {
        let cs = custodians(3);
        assert_eq!(Threshold::new(0, &cs, true), Err(ThresholdError::Zero));
        assert_eq!(
            Threshold::new(4, &cs, true),
            Err(ThresholdError::LargerThanCustodians {
                threshold: 4,
                custodians: 3
            })
        );
        assert_eq!(
            Threshold::new(1, &cs, false),
            Err(ThresholdError::OneOfMany { custodians: 3 })
        );
        assert_eq!(Threshold::new(1, &cs, true).map(Threshold::get), Ok(1));
        assert_eq!(Threshold::new(3, &cs, false).map(Threshold::get), Ok(3));
        assert_eq!(Threshold::new(2, &cs, false).map(Threshold::get), Ok(2));
        let th = Threshold::new(2, &cs, false).expect("threshold");
        assert_eq!(
            split(&name("bg"), "pw", &custodians(4), th, &mut rng(0)).map(|_| ()),
            Err(SplitError::ThresholdMismatch {
                checked: 3,
                given: 4
            })
        );
    }

    #[test]
    fn forced_threshold_one_gives_each_custodian_the_account() {
        let (account, password, shares) = setup(3, 1, 10);
        for s in &shares {
            assert_eq!(
                combine(&account, std::slice::from_ref(s))
                    .expect("one share suffices")
                    .as_str(),
                password.as_str()
            );
        }
        assert_eq!(
            combine(&account, &shares).expect("all shares").as_str(),
            password.as_str()
        );
    }

    #[test]
    fn encoding_shape_and_roundtrip() {
        let (_, _, shares) = setup(3, 2, 11);
        let text = shares[2].encode();
        let fields: Vec<&str> = text.split(':').collect();
        assert_eq!(fields.len(), 9);
        assert_eq!(
            &fields[..6],
            ["pcbg1", "bg.one", "custodian.2", "3", "3", "2"]
        );
        assert_eq!(fields[8].len(), 8);
        assert_eq!(roundtrip(&shares[2]), shares[2]);
        let debug = format!("{:?}", shares[2]);
        assert!(!debug.contains(fields[6]), "Debug leaks the share value");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn any_threshold_subset_rebuilds(
            n in 2usize..=16,
            t_frac in 0.0f64..1.0,
            seed in any::<u64>(),
            pick in any::<u64>(),
        ) {
            let t = 2 + ((n - 1) as f64 * t_frac) as usize; // 2..=n
            let t = t.min(n);
            let (account, password, shares) = setup(n, t, seed);
            // A pseudo-random subset of exactly t shares, in shuffled order.
            let mut idx: Vec<usize> = (0..n).collect();
            let mut p = pick;
            for i in (1..n).rev() {
                idx.swap(i, (p % (i as u64 + 1)) as usize);
                p = p.rotate_left(7) ^ 0x9e37_79b9_7f4a_7c15;
            }
            let subset: Vec<Share> = idx[..t].iter().map(|&i| roundtrip(&shares[i])).collect();
            let rebuilt = combine(&account, &subset).expect("rebuilds");
            prop_assert_eq!(rebuilt.as_str(), password.as_str());
            prop_assert_eq!(
                combine(&account, &subset[..t - 1]),
                Err(CombineError::NotEnough { given: t - 1, needed: t })
            );
        }
    }
}
