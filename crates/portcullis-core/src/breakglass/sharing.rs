//! Shamir sharing of the sealing key: [`split`] among the custodians and [`combine`] back.
//! Invariant: every share given is used, so a wrong one fails the AEAD instead of yielding a
//! wrong password.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::CryptoRngCore;
use zeroize::{Zeroize, Zeroizing};

use super::custodians::{Custodians, Threshold};
use super::sealed::{SealedCredential, aad};
use super::share::Share;
use super::{KEY_LEN, NONCE_LEN};
use crate::principal::PrincipalName;

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
