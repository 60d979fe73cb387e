//! Password hashing with Argon2id (m = 19 MiB, t = 2, p = 1 at least: the OWASP parameters).
//!
//! Hashing is slow on purpose, so it runs on dedicated threads, one per core, never on the
//! async executor: a burst of sign-ins queues instead of starving it. The queue is bounded: a
//! check that would wait behind more than `queue` others is refused at once
//! ([`HashError::Busy`], answered `503` with `Retry-After`), so a flood of sign-ins for invented
//! names cannot build a backlog of minutes that everyone behind it waits out. Break-glass
//! accounts have a thread of their own ([`Passwords::verify_emergency`]) that the flood never
//! reaches (invariant 4). Unknown users are verified against a dummy hash, so "no such user" and
//! "wrong password" take the same time.
//!
//! Each thread keeps its Argon2 memory (19 MiB of blocks) and reuses it for every hash: a fresh
//! 19 MiB allocation per hash, freed on threads the allocator keeps arenas for, left a flooded
//! server at ~300 MB resident (glibc raises its mmap threshold after the first free and keeps
//! the rest); reused blocks keep it bounded (`benches/flood_memory.rs` in the `portcullis`
//! crate). Parameters are stored in each PHC string; a hash made with weaker parameters than the
//! current ones is reported as needing a rehash, which sign-in does with the password it just
//! checked.

use std::sync::{Arc, Mutex, mpsc};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use zeroize::Zeroizing;

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
    /// The hashing threads (one per core).
    workers: mpsc::Sender<Job>,
    /// The break-glass thread.
    emergency: mpsc::Sender<Job>,
    /// Running and waiting checks together; none free means the queue is full. A permit
    /// travels with its job and is released when the thread is done with it, so a client that
    /// hangs up does not make room for another while its check still waits.
    admission: Arc<Semaphore>,
    dummy_phc: String,
}

/// What a hashing thread is asked to do.
enum Work {
    Verify { phc: String, real: bool },
    Hash,
}

struct Job {
    password: Zeroizing<Vec<u8>>,
    work: Work,
    reply: oneshot::Sender<Result<Answer, HashError>>,
    /// The queue place of an ordinary check (none for break-glass and hashing).
    _admitted: Option<OwnedSemaphorePermit>,
}

enum Answer {
    Verified(Verified),
    Hashed(String),
}

/// How many password checks may wait per core, by default, before more are refused.
pub const DEFAULT_QUEUE_PER_CORE: usize = 32;

/// Starts `n` hashing threads serving one queue; they end when the last sender is dropped.
fn spawn_workers(n: usize, name: &str, params: &Params) -> Result<mpsc::Sender<Job>, HashError> {
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..n {
        let rx = rx.clone();
        let params = params.clone();
        std::thread::Builder::new()
            .name(format!("{name}-{i}"))
            .spawn(move || worker(&rx, &params))
            .map_err(|_| HashError::Failed)?;
    }
    Ok(tx)
}

/// A hashing thread: takes jobs until the queue closes, with one memory area for all of them.
fn worker(rx: &Mutex<mpsc::Receiver<Job>>, current: &Params) {
    let mut blocks: Vec<Block> = Vec::new();
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        if job.reply.is_closed() {
            // The caller is gone (the client hung up): nobody waits for this answer.
            continue;
        }
        let answer = match job.work {
            Work::Verify { phc, real } => verify_with(&mut blocks, &job.password, &phc, current)
                .map(|(ok, weaker)| {
                    Answer::Verified(Verified {
                        ok: ok && real,
                        needs_rehash: ok && real && weaker,
                    })
                }),
            Work::Hash => hash_with(&mut blocks, &job.password, current).map(Answer::Hashed),
        };
        let _ = job.reply.send(answer);
    }
}

/// `blocks` grown to the `count` an Argon2 run needs (never shrunk: the thread reuses them).
fn memory(blocks: &mut Vec<Block>, count: usize) -> &mut [Block] {
    if blocks.len() < count {
        blocks.resize(count, Block::default());
    }
    &mut blocks[..count]
}

/// Whether `password` matches `phc`, and whether `phc` used weaker parameters than `current`.
fn verify_with(
    blocks: &mut Vec<Block>,
    password: &[u8],
    phc: &str,
    current: &Params,
) -> Result<(bool, bool), HashError> {
    let parsed = PasswordHash::new(phc).map_err(|_| HashError::Failed)?;
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return Err(HashError::Failed);
    };
    let algorithm =
        Algorithm::try_from(parsed.algorithm.as_str()).map_err(|_| HashError::Failed)?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(|_| HashError::Failed)?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).map_err(|_| HashError::Failed)?;
    let count = params.block_count();
    let weaker = params.m_cost() < current.m_cost()
        || params.t_cost() < current.t_cost()
        || params.p_cost() < current.p_cost()
        || algorithm != Algorithm::Argon2id;
    let mut out = Zeroizing::new(vec![0u8; expected.as_bytes().len()]);
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt, &mut out, memory(blocks, count))
        .map_err(|_| HashError::Failed)?;
    Ok((bool::from(out.ct_eq(expected.as_bytes())), weaker))
}

/// A new PHC string for `password` with the `current` parameters and a random salt.
fn hash_with(
    blocks: &mut Vec<Block>,
    password: &[u8],
    current: &Params,
) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let mut out = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, current.clone())
        .hash_password_into_with_memory(
            password,
            &salt,
            out.as_mut(),
            memory(blocks, current.block_count()),
        )
        .map_err(|_| HashError::Failed)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(current).map_err(|_| HashError::Failed)?,
        salt: Some(Salt::new(&salt).map_err(|_| HashError::Failed)?),
        hash: Some(Output::new(out.as_ref()).map_err(|_| HashError::Failed)?),
    };
    Ok(phc.to_string())
}

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
        let mut blocks = Vec::new();
        let dummy_phc = hash_with(
            &mut blocks,
            b"portcullis-dummy-password-for-unknown-users",
            &params,
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                workers: spawn_workers(cores, "argon2", &params)?,
                emergency: spawn_workers(1, "argon2-breakglass", &params)?,
                admission: Arc::new(Semaphore::new(queue.max(1))),
                dummy_phc,
            }),
        })
    }

    async fn run(
        &self,
        lane: &mpsc::Sender<Job>,
        password: &SecretString,
        work: Work,
        admitted: Option<OwnedSemaphorePermit>,
    ) -> Result<Answer, HashError> {
        let (reply, answer) = oneshot::channel();
        lane.send(Job {
            password: Zeroizing::new(password.expose_secret().as_bytes().to_vec()),
            work,
            reply,
            _admitted: admitted,
        })
        .map_err(|_| HashError::Failed)?;
        answer.await.map_err(|_| HashError::Failed)?
    }

    /// Hashes a password to a PHC string.
    pub async fn hash(&self, password: &SecretString) -> Result<String, HashError> {
        match self
            .run(&self.inner.workers, password, Work::Hash, None)
            .await?
        {
            Answer::Hashed(phc) => Ok(phc),
            Answer::Verified(_) => Err(HashError::Failed),
        }
    }

    /// Checks a password against a stored hash, or against the dummy hash when there is none
    /// (so the caller cannot tell the cases apart by timing). `ok` is false in the dummy case.
    pub async fn verify(
        &self,
        password: &SecretString,
        phc: Option<&str>,
    ) -> Result<Verified, HashError> {
        let admitted = self
            .inner
            .admission
            .clone()
            .try_acquire_owned()
            .map_err(|_| HashError::Busy)?;
        self.check(&self.inner.workers, password, phc, Some(admitted))
            .await
    }

    /// [`Passwords::verify`] for a break-glass account: its own thread, never refused as busy,
    /// never behind the queue of other sign-ins.
    pub async fn verify_emergency(
        &self,
        password: &SecretString,
        phc: Option<&str>,
    ) -> Result<Verified, HashError> {
        self.check(&self.inner.emergency, password, phc, None).await
    }

    async fn check(
        &self,
        lane: &mpsc::Sender<Job>,
        password: &SecretString,
        phc: Option<&str>,
        admitted: Option<OwnedSemaphorePermit>,
    ) -> Result<Verified, HashError> {
        let work = Work::Verify {
            real: phc.is_some(),
            phc: phc.unwrap_or(&self.inner.dummy_phc).to_owned(),
        };
        match self.run(lane, password, work, admitted).await? {
            Answer::Verified(v) => Ok(v),
            Answer::Hashed(_) => Err(HashError::Failed),
        }
    }
}

impl From<HashError> for crate::error::ApiError {
    fn from(e: HashError) -> Self {
        match e {
            // A full queue of password checks: come back in a moment (invariant 4 keeps
            // break-glass accounts out of this queue).
            HashError::Busy => Self::new(
                portcullis_core::error::ErrorCode::Unavailable,
                "too many sign-ins are being checked right now; try again in a moment",
            )
            .retry_after(1),
            other => Self::internal(other),
        }
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
