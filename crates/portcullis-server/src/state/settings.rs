//! Settings and caches the state holds for the services: the device grant's lifetimes,
//! break-glass drill settings with the cached setup state, and the compiled conditional-access
//! set of the latest version seen. Plain data; the rules that use them are in the services.

use std::sync::Arc;
use std::sync::{Mutex, RwLock};
use std::time::Instant;

use portcullis_core::conditional_access::{CompiledPolicies, NamedLocation, Policy};
use portcullis_core::device::RefreshLifetimes;
use portcullis_store::conditional_access::CaSnapshot;
use time::Duration;

/// Settings of the device grant and refresh tokens.
#[derive(Debug, Clone, Copy)]
pub struct DeviceSettings {
    pub code_lifetime: Duration,
    pub refresh: RefreshLifetimes,
}

/// Drill settings and the cached setup state.
pub struct BreakGlassSettings {
    pub drill_max_age: Duration,
    pub drill_alert_every: Duration,
    pub(crate) cached: Mutex<Option<(Instant, Option<String>)>>,
}

impl BreakGlassSettings {
    pub fn new(drill_max_age: Duration, drill_alert_every: Duration) -> Self {
        Self {
            drill_max_age,
            drill_alert_every,
            cached: Mutex::new(None),
        }
    }

    pub(crate) fn forget(&self) {
        if let Ok(mut c) = self.cached.lock() {
            *c = None;
        }
    }
}

/// A compiled configuration and the version it was read at.
pub struct Loaded {
    pub version: i64,
    pub snapshot: CaSnapshot,
    pub policies: Vec<Policy>,
    pub locations: Vec<NamedLocation>,
    pub compiled: CompiledPolicies,
}

/// The compiled set of the latest version this process has seen.
#[derive(Default)]
pub struct CaCache {
    pub(crate) current: RwLock<Option<Arc<Loaded>>>,
}
