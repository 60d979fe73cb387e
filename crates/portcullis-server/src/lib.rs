//! Portcullis server: HTTP API, tenant initialisation and background work.
//!
//! [`Application::build`] does everything `portcullis serve` does up to accepting connections
//! (data directory, master key, store, migrations, tenant, start-up audit events) and binds the
//! listener, so tests get a real server on port 0.

#![deny(clippy::unwrap_used)]

pub mod accounts;
pub mod alerts;
pub mod anchor;
pub mod api;
pub mod app;
pub mod auth;
pub mod authz;
pub mod breakglass;
pub mod client_assertion;
pub mod clients;
pub mod conditional_access;
pub mod config;
pub mod device;
pub mod edge;
pub mod error;
pub mod expiry;
pub mod keys;
pub mod metrics;
pub mod oidc;
pub mod passwords;
pub mod privilege;
pub mod refusals;
pub mod roles;
pub mod secrets;
pub mod service_accounts;
pub mod signin;
pub mod state;
pub mod sweeper;
pub mod time_us;
pub mod tokens;
pub mod ui;
pub mod webauthn;

pub use app::{Application, BuildOptions, StartError};
pub use config::{Config, LogFormat};
