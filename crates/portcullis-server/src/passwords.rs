//! Password hashing with Argon2id (m = 19 MiB, t = 2, p = 1 at least: the OWASP parameters).
//!
//! Hashing is slow on purpose, so it runs on the blocking pool behind a semaphore with one permit
//! per core: a burst of sign-ins queues instead of starving the async executor. The queue is
//! bounded: a check that would wait behind more than `queue` others is refused at once
//! ([`HashError::Busy`], answered `503` with `Retry-After`), so a flood of sign-ins for invented
//! names cannot build a backlog of minutes that everyone behind it waits out. Break-glass
//! accounts have a lane of their own ([`Passwords::verify_emergency`]) that the flood never
//! enters (invariant 4). Unknown users are verified against a dummy hash, so "no such user" and
//! "wrong password" take the same time.
//! Parameters are stored in each PHC string; a hash made with weaker parameters than the current
//! ones is reported as needing a rehash, which sign-in does with the password it just checked.

use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed")]
    Failed,
    /// More password checks are waiting than the queue holds.
    #[error("too many sign-ins are being checked right now")]
    Busy,
}

/// Outcome of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub ok: bool,
    /// The stored hash used weaker parameters than the current ones.
    pub needs_rehash: bool,
}

#[derive(Clone)]
pub struct Passwords {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    /// One per core: the checks running now.
    permits: Semaphore,
    /// Running and waiting checks together; none free means the queue is full.
    admission: Semaphore,
    /// The break-glass lane: one check at a time, outside the queue.
    emergency: Semaphore,
    dummy_phc: String,
}

/// How many password checks may wait per core, by default, before more are refused.
pub const DEFAULT_QUEUE_PER_CORE: usize = 32;

impl Passwords {
    /// The OWASP parameters: m = 19 MiB, t = 2, p = 1.
    pub fn new() -> Result<Self, HashError> {
        let params = Params::new(19 * 1024, 2, 1, None).map_err(|_| HashError::Failed)?;
        Self::with_params(params)
    }

    pub fn with_params(params: Params) -> Result<Self, HashError> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::with_queue(params, cores * (1 + DEFAULT_QUEUE_PER_CORE))
    }

    /// With at most `queue` checks running or waiting at once (break-glass ones aside).
    pub fn with_queue(params: Params, queue: usize) -> Result<Self, HashError> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let dummy_phc = argon
            .hash_password(b"portcullis-dummy-password-for-unknown-users")
            .map_err(|_| HashError::Failed)?
            .to_string();
        Ok(Self {
            inner: Arc::new(Inner {
                params,
                permits: Semaphore::new(cores),
                admission: Semaphore::new(queue.max(1)),
                emergency: Semaphore::new(1),
                dummy_phc,
            }),
        })
    }

    fn argon(&self) -> Argon2<'static> {
        Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            self.inner.params.clone(),
        )
    }

    /// Hashes a password to a PHC string.
    pub async fn hash(&self, password: &SecretString) -> Result<String, HashError> {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| HashError::Failed)?;
        let argon = self.argon();
        let pw = SecretString::from(password.expose_secret().to_owned());
        tokio::task::spawn_blocking(move || {
            argon
                .hash_password(pw.expose_secret().as_bytes())
                .map(|h| h.to_string())
                .map_err(|_| HashError::Failed)
        })
        .await
        .map_err(|_| HashError::Failed)?
    }

    /// Checks a password against a stored hash, or against the dummy hash when there is none
    /// (so the caller cannot tell the cases apart by timing). `ok` is false in the dummy case.
    pub async fn verify(
        &self,
        password: &SecretString,
        phc: Option<&str>,
    ) -> Result<Verified, HashError> {
        let _queued = self
            .inner
            .admission
            .try_acquire()
            .map_err(|_| HashError::Busy)?;
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| HashError::Failed)?;
        self.check(password, phc).await
    }

    /// [`Passwords::verify`] for a break-glass account: its own lane, never refused as busy,
    /// never behind the queue of other sign-ins.
    pub async fn verify_emergency(
        &self,
        password: &SecretString,
        phc: Option<&str>,
    ) -> Result<Verified, HashError> {
        let _permit = self
            .inner
            .emergency
            .acquire()
            .await
            .map_err(|_| HashError::Failed)?;
        self.check(password, phc).await
    }

    async fn check(
        &self,
        password: &SecretString,
        phc: Option<&str>,
    ) -> Result<Verified, HashError> {
        let real = phc.is_some();
        let phc = phc.unwrap_or(&self.inner.dummy_phc).to_owned();
        let pw = SecretString::from(password.expose_secret().to_owned());
        let current = self.inner.params.clone();
        let argon = self.argon();
        tokio::task::spawn_blocking(move || {
            let parsed = PasswordHash::new(&phc).map_err(|_| HashError::Failed)?;
            let ok = argon
                .verify_password(pw.expose_secret().as_bytes(), &parsed)
                .is_ok();
            let needs_rehash = match Params::try_from(&parsed) {
                Ok(p) => {
                    p.m_cost() < current.m_cost()
                        || p.t_cost() < current.t_cost()
                        || p.p_cost() < current.p_cost()
                        || parsed.algorithm.as_str() != "argon2id"
                }
                Err(_) => true,
            };
            Ok(Verified {
                ok: ok && real,
                needs_rehash: ok && real && needs_rehash,
            })
        })
        .await
        .map_err(|_| HashError::Failed)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_at_once_but_never_break_glass() {
        let p = Passwords::with_queue(Params::new(8 * 1024, 1, 1, None).expect("params"), 2)
            .expect("p");
        let pw = SecretString::from("violet-kettle-orbit-93".to_owned());
        let phc = p.hash(&pw).await.expect("hash");
        // Hold the whole queue, as a flood would.
        let a = p.inner.admission.try_acquire().expect("slot");
        let b = p.inner.admission.try_acquire().expect("slot");
        assert!(matches!(
            p.verify(&pw, Some(&phc)).await,
            Err(HashError::Busy)
        ));
        assert!(p.verify_emergency(&pw, Some(&phc)).await.expect("lane").ok);
        drop((a, b));
        assert!(p.verify(&pw, Some(&phc)).await.expect("room again").ok);
    }

    #[tokio::test]
    async fn hash_verify_and_rehash() {
        let weak =
            Passwords::with_params(Params::new(8 * 1024, 1, 1, None).expect("params")).expect("p");
        let strong = Passwords::new().expect("p");
        let pw = SecretString::from("violet-kettle-orbit-93".to_owned());
        let phc = weak.hash(&pw).await.expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"), "{phc}");
        let v = strong.verify(&pw, Some(&phc)).await.expect("verify");
        assert_eq!(
            v,
            Verified {
                ok: true,
                needs_rehash: true
            }
        );
        let phc2 = strong.hash(&pw).await.expect("hash");
        assert!(
            phc2.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{phc2}"
        );
        assert_eq!(
            strong.verify(&pw, Some(&phc2)).await.expect("v"),
            Verified {
                ok: true,
                needs_rehash: false
            }
        );
        let wrong = SecretString::from("violet-kettle-orbit-94".to_owned());
        assert!(!strong.verify(&wrong, Some(&phc2)).await.expect("v").ok);
        assert!(
            !strong.verify(&pw, None).await.expect("v").ok,
            "no hash never verifies"
        );
    }
}
