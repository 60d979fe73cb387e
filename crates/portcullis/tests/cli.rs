//! The `portcullis` binary end to end: configuration errors, `serve` as a real process with
//! graceful shutdown, the audit commands online and offline, and the CLI's commands against a
//! real server.
//!
//! One test binary; this file holds the module list. Each topic file in `tests/cli/` takes the
//! shared helpers with `use super::*;`:
//!
//! - `helpers.rs`: shared helpers: the binary, `serve`, running the CLI, SIGTERM, TOTP codes
//!   from `oathtool`, stdin, form posts, a server with a signed-in administrator
//! - `serve.rs`: configuration errors, `serve` defaults and graceful shutdown, TLS reload on SIGHUP
//! - `audit.rs`: `audit list` escaping, offline verification of a tampered copy with its anchor
//! - `accounts.rs`: TOTP against `oathtool`; accounts, roles, service accounts, keys by the CLI
//! - `tokens.rs`: OpenID Connect clients; `login --device` and where its refresh token lives
//! - `alerts.rs`: alert channels, deliveries and custom alert rules
//! - `breakglass.rs`: break-glass accounts
//! - `conditional_access.rs`: conditional-access locations and policies
//! - `contain.rs`: containment and its undo
//! - `changes.rs`: four eyes: a weakening recorded as a change request, listed, cancelled
//! - `reviews.rs`: access reviews, a manager, a reviewer's decision and the close
//! - `completions.rs`: shell completion scripts
//! - `backup.rs`: an online SQLite backup, verified, and the README's restore procedure
//! - `targets.rs`: targets, their secrets and bindings; SSH certificates through `portcullis ssh`
//!   against a real sshd (`sshd.rs` is the server tests' harness)

#[path = "cli/helpers.rs"]
mod helpers;
pub(crate) use helpers::*;

#[path = "cli/accounts.rs"]
mod accounts;
#[path = "cli/alerts.rs"]
mod alerts;
#[path = "cli/audit.rs"]
mod audit;
#[path = "cli/backup.rs"]
mod backup;
#[path = "cli/breakglass.rs"]
mod breakglass;
#[path = "cli/changes.rs"]
mod changes;
#[path = "cli/completions.rs"]
mod completions;
#[path = "cli/conditional_access.rs"]
mod conditional_access;
#[path = "cli/contain.rs"]
mod contain;
#[path = "cli/reviews.rs"]
mod reviews;
#[path = "cli/serve.rs"]
mod serve;
/// The real sshd of the server's SSH tests, shared.
#[path = "../../portcullis-server/tests/api/targets/sshd.rs"]
mod sshd;
#[path = "cli/targets.rs"]
mod targets;
#[path = "cli/tokens.rs"]
mod tokens;
