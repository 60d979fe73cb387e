//! Portcullis domain model and rules.
//!
//! Pure: no I/O, no async, no clock. Time is always a parameter, so every rule here can be
//! unit-tested without a database or a runtime.

#![deny(clippy::unwrap_used)]

pub mod activation;
pub mod alerts;
pub mod api;
pub mod audit;
pub mod breakglass;
pub mod client_key;
pub mod conditional_access;
pub mod device;
pub mod error;
pub mod factor;
#[cfg(test)]
mod fuzz;
pub mod governance;
pub mod network;
pub mod oidc;
pub mod password;
pub mod posture;
pub mod principal;
pub mod privilege;
pub mod reviews;
pub mod roles;
pub mod session;
pub mod ssh;
pub mod targets;
pub mod text;
pub mod throttle;
pub mod token;
pub mod totp;
