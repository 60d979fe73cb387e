//! One custodian's share and its text form (`pcbg1:…:<check>`). Invariant: the checksum is
//! verified before anything else is parsed, so a typo anywhere is reported as corruption.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::sealed::SealedCredential;
use super::{CHECK_LEN, KEY_LEN, MAX_CUSTODIANS, MIN_CUSTODIANS, SEP, SHARE_PREFIX};
use crate::principal::{PrincipalName, ValidationError};

/// One custodian's share of one break-glass account's key, with the sealed credential.
#[derive(Clone, PartialEq, Eq)]
pub struct Share {
    pub(super) account: PrincipalName,
    pub(super) custodian: PrincipalName,
    /// Shamir x-coordinate, 1..=total.
    pub(super) index: u8,
    pub(super) total: u8,
    pub(super) threshold: u8,
    /// Shamir y-values, one per key byte.
    pub(super) value: Zeroizing<Vec<u8>>,
    pub(super) sealed: SealedCredential,
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
