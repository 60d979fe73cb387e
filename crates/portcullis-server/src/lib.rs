//! Portcullis server: HTTP API, tenant initialisation and background work.
//!
//! One direction: `http` (axum, the wire formats) → `services` (the rules) → `state` and
//! `portcullis-store`; `workers` run beside `http` on the same services. Nothing under
//! `services/`, `workers/`, `state.rs` or `error.rs` imports axum or `crate::http`.
//!
//! [`Application::build`] does everything `portcullis serve` does up to accepting connections
//! (data directory, master key, store, migrations, tenant, start-up audit events) and binds the
//! listener, so tests get a real server on port 0.

#![deny(clippy::unwrap_used)]

pub mod app;
pub mod config;
pub mod error;
#[cfg(feature = "testing")]
pub mod graph_double;
pub mod http;
pub mod secrets;
pub mod services;
pub mod state;
pub mod targets;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time_us;
pub mod workers;

#[cfg(test)]
mod layering;

pub use app::{Application, BuildOptions, StartError};
pub use config::{Config, LogFormat};
