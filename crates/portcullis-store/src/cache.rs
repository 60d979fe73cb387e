//! Short-lived caches of values read from the store, for the hot paths (client authentication,
//! token issuance, introspection).
//!
//! Invariants:
//! - **Never stale on this replica.** Every value is stamped with the store's [`Epoch`] as it
//!   was *before* the value was read. The writer moves the epoch after committing a batch that
//!   holds a change which [`crate::Change::invalidates_caches`], and before it answers the
//!   callers of that batch. So once a write (a revoked secret, a disabled account, an ended
//!   grant) has returned, no value read before it is served again: a value read concurrently
//!   carries the older epoch and is dropped on its next use.
//! - **At most [`MAX_AGE`] stale across replicas and out-of-band writes.** A value is used for
//!   at most one second after the read began, whoever changed the database (another replica
//!   sharing the PostgreSQL database, an operator's SQL). One second of reuse is also what makes
//!   the cache pay: a daemon asking for a token thousands of times a second reads its rows
//!   once a second.
//! - **Bounded.** Each cache holds at most its capacity; when full, entries of older epochs or
//!   past their age go first, then everything (a flood of distinct keys costs reads, never
//!   memory).
//! - Keys are never secrets: a cache of verified credentials is keyed by a hash of them.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The longest a cached value is used after its read began.
pub const MAX_AGE: Duration = Duration::from_secs(1);

/// A counter moved by every committed write that can make a cached value stale.
#[derive(Debug, Clone, Default)]
pub struct Epoch(Arc<AtomicU64>);

impl Epoch {
    pub fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Called by the writer after a commit that invalidates, before it answers.
    pub(crate) fn advance(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

struct Entry<V> {
    epoch: u64,
    read_at: Instant,
    value: V,
}

/// A bounded map of values valid while the epoch they were read in is current and for at most
/// [`MAX_AGE`].
pub struct Cache<K, V> {
    epoch: Epoch,
    capacity: usize,
    max_age: Duration,
    map: Mutex<HashMap<K, Entry<V>>>,
}

impl<K: Eq + Hash + Clone, V: Clone> Cache<K, V> {
    pub fn new(epoch: Epoch, capacity: usize) -> Self {
        Self::with_max_age(epoch, capacity, MAX_AGE)
    }

    /// A cache whose values live shorter than [`MAX_AGE`] (never longer).
    pub fn with_max_age(epoch: Epoch, capacity: usize, max_age: Duration) -> Self {
        Self {
            epoch,
            capacity: capacity.max(1),
            max_age: max_age.min(MAX_AGE),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The cached value of `key`, if it is still valid.
    pub fn get(&self, key: &K) -> Option<V> {
        let epoch = self.epoch.current();
        let map = self.map.lock().ok()?;
        let e = map.get(key)?;
        (e.epoch == epoch && e.read_at.elapsed() < self.max_age).then(|| e.value.clone())
    }

    /// The value of `key`: cached, or read by `load` and kept if the read succeeded.
    pub async fn get_or_load<E, F>(&self, key: &K, load: F) -> Result<V, E>
    where
        F: std::future::Future<Output = Result<V, E>>,
    {
        if let Some(v) = self.get(key) {
            return Ok(v);
        }
        // Stamped before the read: a write that commits while it runs makes the value stale.
        let (epoch, read_at) = (self.epoch.current(), Instant::now());
        let value = load.await?;
        self.insert(key.clone(), epoch, read_at, value.clone());
        Ok(value)
    }

    fn insert(&self, key: K, epoch: u64, read_at: Instant, value: V) {
        let Ok(mut map) = self.map.lock() else {
            return;
        };
        if map.len() >= self.capacity && !map.contains_key(&key) {
            let current = self.epoch.current();
            let max_age = self.max_age;
            map.retain(|_, e| e.epoch == current && e.read_at.elapsed() < max_age);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(
            key,
            Entry {
                epoch,
                read_at,
                value,
            },
        );
    }

    /// How many entries are held (valid or not), for tests and metrics.
    pub fn len(&self) -> usize {
        self.map.lock().map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_value_read_before_the_epoch_moved_is_not_served() {
        let epoch = Epoch::default();
        let cache: Cache<u8, u8> = Cache::new(epoch.clone(), 8);
        let v: Result<u8, ()> = cache.get_or_load(&1, async { Ok(10) }).await;
        assert_eq!(v, Ok(10));
        assert_eq!(cache.get(&1), Some(10));
        epoch.advance();
        assert_eq!(cache.get(&1), None);
    }

    #[tokio::test]
    async fn a_write_committed_while_the_read_ran_makes_the_value_stale() {
        let epoch = Epoch::default();
        let cache: Cache<u8, u8> = Cache::new(epoch.clone(), 8);
        let e = epoch.clone();
        let v: Result<u8, ()> = cache
            .get_or_load(&1, async move {
                e.advance();
                Ok(10)
            })
            .await;
        assert_eq!(v, Ok(10));
        assert_eq!(cache.get(&1), None);
    }

    #[tokio::test]
    async fn a_value_is_not_served_past_its_age() {
        let cache: Cache<u8, u8> =
            Cache::with_max_age(Epoch::default(), 8, Duration::from_millis(20));
        let _: Result<u8, ()> = cache.get_or_load(&1, async { Ok(10) }).await;
        assert_eq!(cache.get(&1), Some(10));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(cache.get(&1), None);
    }

    #[test]
    fn no_cache_keeps_a_value_longer_than_max_age() {
        let cache: Cache<u8, u8> =
            Cache::with_max_age(Epoch::default(), 8, Duration::from_secs(60));
        assert_eq!(cache.max_age, MAX_AGE);
    }

    #[tokio::test]
    async fn a_failed_read_is_not_cached() {
        let cache: Cache<u8, u8> = Cache::new(Epoch::default(), 8);
        let v: Result<u8, &str> = cache.get_or_load(&1, async { Err("down") }).await;
        assert_eq!(v, Err("down"));
        assert!(cache.is_empty());
    }

    #[tokio::test]
    async fn a_full_cache_never_grows_past_its_capacity() {
        let cache: Cache<u32, u32> = Cache::new(Epoch::default(), 4);
        for k in 0..100u32 {
            let _: Result<u32, ()> = cache.get_or_load(&k, async move { Ok(k) }).await;
            assert!(cache.len() <= 4);
        }
        assert_eq!(cache.get(&99), Some(99));
    }
}
