//! What the server does, without HTTP: accounts, sign-in, roles, tokens, break-glass, alerts,
//! conditional access, targets, the audit log.
//!
//! Nothing here imports axum or `crate::http` (a unit test in `crate::layering` checks it): a
//! service takes `&AppState`, the caller, typed input and the time, and returns a typed result
//! or an error carrying an [`portcullis_core::error::ErrorCode`]; which HTTP status that code
//! means is decided once, in `crate::http::error`.

pub mod accounts;
pub mod alerts;
pub mod anchor;
pub mod audit;
pub mod audit_export;
pub mod breakglass;
pub mod caller;
pub mod changes;
pub mod client_assertion;
pub mod client_auth;
pub mod client_credentials;
pub mod clients;
pub mod conditional_access;
pub mod containment;
pub mod device;
pub mod governance;
pub mod grants;
pub mod identity;
pub mod keys;
pub mod oauth;
pub mod oidc;
pub mod posture;
pub mod privilege;
pub mod reviews;
pub mod roles;
pub mod service_accounts;
pub mod signin;
pub mod stats;
pub mod support;
pub mod targets;
pub mod tokens;
pub mod webauthn;

// Held by the state (the bottom of the server), named here too for the services that use them.
pub use crate::state::{passwords, refusals};
