//! The JSON API under `/api/v1` (and the health routes): one thin file per resource.
//!
//! Each handler parses its input with the extractors of [`crate::http::error`] and
//! [`crate::http::caller`], calls one function of [`crate::services`] and returns its result;
//! no handler holds a rule of its own.

pub mod accounts;
pub mod alerts;
pub mod audit;
pub mod breakglass;
pub mod ca;
pub mod clients;
pub mod device;
pub mod governance;
pub mod health;
pub mod keys;
pub mod me;
pub mod reviews;
pub mod roles;
pub mod service_accounts;
pub mod signin;
pub mod ssh;
pub mod targets;
