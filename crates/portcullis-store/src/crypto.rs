//! Secrets at rest: the master key and AEAD sealing (XChaCha20-Poly1305).
//!
//! Every sealed value is bound to its record by associated data (the record id), so a sealed
//! blob copied onto another row does not open. The master key is zeroized when dropped and never
//! printed (`Debug` is redacted).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Length of a master key in bytes.
pub const MASTER_KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;

/// The key that seals every other secret.
pub struct MasterKey(Zeroizing<[u8; MASTER_KEY_LEN]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// Opening a sealed value failed: wrong key, wrong record, or tampered data.
#[derive(Debug, thiserror::Error)]
#[error("sealed data does not open with this master key (wrong key or tampered data)")]
pub struct OpenError;

impl MasterKey {
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(k.as_mut());
        Self(k)
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; MASTER_KEY_LEN] = bytes.try_into().ok()?;
        Some(Self(Zeroizing::new(arr)))
    }

    pub fn as_bytes(&self) -> &[u8; MASTER_KEY_LEN] {
        &self.0
    }

    /// Seals `plaintext` for the record `ad`: `nonce ‖ ciphertext ‖ tag`.
    pub fn seal(&self, ad: &str, plaintext: &[u8]) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new(self.0.as_ref().into());
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: ad.as_bytes(),
                },
            )
            // Encryption only fails for messages larger than the cipher's limit (256 GiB).
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, ad: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        if sealed.len() < NONCE_LEN {
            return Err(OpenError);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let cipher = XChaCha20Poly1305::new(self.0.as_ref().into());
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: ad.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| OpenError)
    }
}

/// SHA-256 of a token: how 256-bit random tokens are stored (DESIGN.md invariant 7).
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A fresh 256-bit random token, base64url without padding.
pub fn random_token() -> Zeroizing<String> {
    use base64::Engine;
    let mut b = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(b.as_mut());
    Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_binding() {
        let k = MasterKey::generate();
        let sealed = k.seal("rec-1", b"secret");
        assert_eq!(
            k.open("rec-1", &sealed).expect("opens").as_slice(),
            b"secret"
        );
        assert!(k.open("rec-2", &sealed).is_err(), "bound to its record");
        assert!(
            MasterKey::generate().open("rec-1", &sealed).is_err(),
            "wrong key"
        );
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(k.open("rec-1", &tampered).is_err());
        assert!(k.open("rec-1", &[1, 2, 3]).is_err());
    }

    #[test]
    fn debug_is_redacted() {
        let k = MasterKey::from_bytes(&[0x41; 32]).expect("32 bytes");
        assert_eq!(format!("{k:?}"), "MasterKey(<redacted>)");
    }
}
