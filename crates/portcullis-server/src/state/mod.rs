//! What every part of the server shares: the store, the keys and the caches built at start.
//!
//! The bottom of the server: this module imports only `portcullis-core`, `portcullis-store`
//! and the value types of the parts it holds; services, workers and HTTP handlers take
//! `&AppState`, never the other way round.

pub mod caches;
pub mod passwords;
pub mod refusals;
pub mod settings;
pub mod signer;

use std::sync::Arc;

use portcullis_store::Store;

/// Shared state of every handler: one allocation, so the clone every middleware layer and
/// handler takes is one reference count, not one per part.
#[derive(Clone)]
pub struct AppState(Arc<Parts>);

impl AppState {
    pub fn new(parts: Parts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

/// What the state holds.
pub struct Parts {
    pub store: Store,
    pub info: Arc<ServerInfo>,
    /// Seals and opens secrets at rest (TOTP seeds).
    pub master: Arc<portcullis_store::MasterKey>,
    pub passwords: passwords::Passwords,
    pub lifetimes: portcullis_core::session::SessionLifetimes,
    /// Device-grant and refresh-token lifetimes.
    pub device: settings::DeviceSettings,
    /// The WebAuthn relying party (this server's origin).
    pub webauthn: Arc<webauthn_rs::Webauthn>,
    /// Signs and verifies access tokens.
    pub tokens: Arc<signer::TokenSigner>,
    /// Wakes the expiry worker when a nearer deadline appears.
    pub expiry_wake: Arc<tokio::sync::Notify>,
    /// Wakes the access-review worker when a round opens here (a nearer deadline).
    pub reviews_wake: Arc<tokio::sync::Notify>,
    /// The compiled conditional-access policies of the latest version seen.
    pub ca: Arc<settings::CaCache>,
    /// Break-glass drill settings and the cached setup state.
    pub breakglass: Arc<settings::BreakGlassSettings>,
    /// Refused attempts, aggregated per actor and action per minute before they are audited.
    pub refusals: Arc<refusals::Refusals>,
    /// The hot paths' short-lived caches over the store, invalidated by its writer.
    pub caches: Arc<caches::Caches>,
    /// How long a lone top-tier person's weakening change waits (`change_cooling_off`).
    pub change_cooling_off: time::Duration,
}

/// Facts about this server fixed at start.
#[derive(Debug)]
pub struct ServerInfo {
    pub backend: &'static str,
    pub schema_version: i64,
}
