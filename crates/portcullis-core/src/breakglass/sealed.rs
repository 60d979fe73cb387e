//! The password sealed under the split key (XChaCha20-Poly1305). Invariant: the account is in
//! the associated data, so a credential opens only for the account it was sealed for.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use super::{AAD_PREFIX, KEY_LEN, NONCE_LEN, TAG_LEN};
use crate::principal::PrincipalName;

/// The password sealed under the split key: XChaCha20-Poly1305 nonce and ciphertext (with tag).
/// Not secret without the key; every share carries a copy.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedCredential {
    pub(super) nonce: [u8; NONCE_LEN],
    pub(super) ciphertext: Vec<u8>,
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

    pub(super) fn open(
        &self,
        key: &[u8; KEY_LEN],
        account: &PrincipalName,
    ) -> Option<Zeroizing<Vec<u8>>> {
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

pub(super) fn aad(account: &PrincipalName) -> Vec<u8> {
    let mut aad = AAD_PREFIX.to_vec();
    aad.extend_from_slice(account.as_str().as_bytes());
    aad
}
