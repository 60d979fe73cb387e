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

use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

mod custodians;
mod sealed;
mod share;
mod sharing;

#[cfg(test)]
mod tests;

pub use custodians::{CustodianError, Custodians, Threshold, ThresholdError};
pub use sealed::SealedCredential;
pub use share::{Share, ShareError};
pub use sharing::{CombineError, SplitError, combine, split};

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
