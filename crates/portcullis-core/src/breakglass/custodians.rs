//! Who holds the shares and how many must come together: [`Custodians`] (2..=16 distinct valid
//! names) and [`Threshold`] (1 ≤ t ≤ n, and t = 1 only when forced).

use super::{MAX_CUSTODIANS, MIN_CUSTODIANS};
use crate::principal::{PrincipalName, ValidationError};

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
    pub(super) t: u8,
    pub(super) n: u8,
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
