//! The commands, one module (or folder) per command group, each with its clap arguments and
//! its handlers. `cli` dispatches to them; they talk to the server through `connect`'s client
//! and print through `output`, and none of them uses `cli`.

pub mod accounts;
pub mod alerts;
pub mod audit;
pub mod backup;
pub mod breakglass;
pub mod ca;
pub mod changes;
pub mod clients;
pub mod contain;
pub mod credentials;
pub mod keys;
pub mod posture;
pub mod reviews;
pub mod roles;
pub mod serve;
pub mod service_accounts;
pub mod signin;
pub mod ssh;
pub mod targets;
