//! The hot paths' caches over the store (see `portcullis_store::cache` for the rules every one
//! follows: stamped with the store's epoch before the read, dropped once a write that can make
//! it stale commits on this replica, never used more than one second after the read began).
//!
//! What is cached, and why it is safe:
//! - `client_secrets`: a verified client secret, keyed by SHA-256 over the client id and the
//!   secret's own SHA-256 (the secret is never a key). Only successes are cached; a wrong secret
//!   is read and refused every time. Revoking the secret, disabling or deleting the account
//!   moves the epoch.
//! - `networks`, `consents`: a service account's allow-list and consented permissions.
//! - `grants`: a principal's grants and applying assignments as read at some instant; every use
//!   filters them again by its own `now`, so a grant that ends is gone to the microsecond
//!   without a write. An assignment scheduled to start later appears within one second.
//! - `principals`, `revoked`, `oauth_clients`: introspection's per-token reads (the subject,
//!   whether its `jti` was revoked, the relying party a scoped token belongs to).
//! - `ca_version`: the version of the conditional-access configuration, read before every
//!   enforcement.

use std::sync::Arc;

use portcullis_core::network::NetworkList;
use portcullis_store::Store;
use portcullis_store::accounts::Principal;
use portcullis_store::cache::Cache;
use portcullis_store::oidc::OAuthClient;
use portcullis_store::roles::{Assignment, GrantRow};

/// Entries per cache: far above the distinct principals and clients a tenant has, small in
/// memory (a full cache is emptied, never grown).
const CAPACITY: usize = 4096;

/// A principal's grants and applying assignments, as read at one instant.
pub type GrantsRead = Arc<(Vec<GrantRow>, Vec<Assignment>)>;

pub struct Caches {
    pub client_secrets: Cache<[u8; 32], Principal>,
    pub networks: Cache<String, NetworkList>,
    pub consents: Cache<String, Arc<Vec<String>>>,
    pub grants: Cache<String, GrantsRead>,
    pub principals: Cache<String, Option<Principal>>,
    pub revoked: Cache<String, bool>,
    pub oauth_clients: Cache<String, Option<OAuthClient>>,
    /// The version of the conditional-access configuration (the compiled set is kept per
    /// version in `settings::CaCache`).
    pub ca_version: Cache<(), i64>,
    /// The per-target operation counts `/metrics` shows: `/metrics` answers anyone, so a
    /// flood of scrapes costs one count per second, not one per request.
    pub target_stats: Cache<(), Arc<Vec<portcullis_store::targets::TargetStats>>>,
    /// The domain counts `/metrics` shows (grants, approvals, outbox, audit head,
    /// break-glass), for the same reason.
    pub domain_stats: Cache<(), Arc<portcullis_store::stats::DomainSnapshot>>,
    /// The posture findings per severity `/metrics` shows (high, medium, low).
    pub posture: Cache<(), Arc<[usize; 3]>>,
}

impl Caches {
    pub fn new(store: &Store) -> Self {
        let e = || store.epoch();
        Self {
            client_secrets: Cache::new(e(), CAPACITY),
            networks: Cache::new(e(), CAPACITY),
            consents: Cache::new(e(), CAPACITY),
            grants: Cache::new(e(), CAPACITY),
            principals: Cache::new(e(), CAPACITY),
            revoked: Cache::new(e(), CAPACITY),
            oauth_clients: Cache::new(e(), CAPACITY),
            ca_version: Cache::new(e(), 1),
            target_stats: Cache::new(e(), 1),
            domain_stats: Cache::new(e(), 1),
            posture: Cache::new(e(), 1),
        }
    }
}
