//! End-to-end tests of the HTTP API: a real server on port 0, a temporary data directory
//! (SQLite) or a fresh PostgreSQL database, driven through `portcullis-client` and raw HTTP.
//!
//! One test binary; this file holds the two test macros and the module list. `api_tests!`
//! makes `sqlite::NAME` and `postgres::NAME` for `async fn NAME(app: TestApp)`;
//! `backend_tests!` makes `by_backend::{sqlite,postgres}::NAME` for
//! `async fn NAME(backend: Backend)`. Each topic file in `tests/api/` takes the shared helpers
//! with `use super::*;` and invokes the macros for its own tests:
//!
//! - `helpers/`: shared helpers: servers (`spawn`), sign-in, WebAuthn, roles, tokens, OpenID
//!   Connect and browsers, alert receivers and the SMTP sink, break-glass and conditional-access
//!   set-ups, plain HTTP and audit look-ups
//! - `startup.rs`: data directory, master key, bootstrap, restarts, health, OpenAPI, metrics, errors
//! - `signin/`: passwords and TOTP, throttling, WebAuthn, sign-in pages, a real browser
//! - `accounts.rs`: users, groups, service accounts, privileged accounts
//! - `activation_reads.rs`: the store reads one activation costs (at most four)
//! - `roles.rs`: just-in-time roles, approvals, expiry
//! - `scheduled_and_extended.rs`: activations that start later, extensions of active ones
//! - `tokens/`: client credentials, `private_key_jwt`, signing keys, networks, throttling
//! - `device_grant/`: device grant, refresh rotation, access tokens as API credentials
//! - `oidc/`: OpenID Connect relying parties and bad input
//! - `alerts.rs`: alert channels, delivery, dead letters, custom rules
//! - `breakglass/`: break-glass accounts: split custody, FIDO2, drills and alerts, throttling
//! - `conditional_access/`: conditional-access policies (validation, the lockout guard, sign-in, what-if, token grants, break-glass), a file per topic
//! - `containment.rs`: containing a principal in one step, its release, and the abuse refusals
//! - `four_eyes.rs`: weakening changes of privileged roles as change requests (approval,
//!   cooling-off, cancel, two replicas), of conditional-access policies and alert channels
//! - `group_membership.rs`: just-in-time membership of role-assignable groups
//! - `audit.rs`: audit list, verify, checkpoints
//! - `replicas.rs`: two replicas on one PostgreSQL
//! - `posture.rs`: the posture report, its counts on /metrics and the daily digest
//! - `privilege/`: the privilege model, as abuse tests, one file per rule
//! - `reviews/`: access reviews: who decides what, the close (defaults, removals, guards, two
//!   replicas), managers, the emails, the reviewer's console pages
//! - `ca_privilege.rs`: conditional access under the privilege model
//! - `alert_flood.rs`: alert floods and sealed channel configuration
//! - `audit_anchor.rs`: audit checkpoints anchored outside the database
//! - `audit_export.rs`: the SIEM export to a file and to a real rsyslog (TCP, TLS)
//! - `edge/`: the deployment edge: public URL, TLS, proxies, rate limits, timeouts
//! - `hostile/`: hostile traffic: floods, races, shared addresses, hostile input, caps, decoys
//! - `schemathesis.rs`: schemathesis (from PyPI) against every documented operation, as an
//!   administrator
//! - `targets/`: grants materialised in a real PostgreSQL and a webhook receiver, drift,
//!   unreachable targets, and the abuse and bad-input refusals
//!
//! A directory is one module: its `mod.rs` holds what its files share, and each file invokes the
//! macros for its own tests (`tokens::networks::service_account_networks_sqlite`, ...).

macro_rules! api_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::spawn_app(super::Backend::Sqlite).await.expect("sqlite app")).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(app) = super::spawn_app(super::Backend::Postgres).await else {
                        eprintln!("skipped: PORTCULLIS_TEST_DATABASE_URL is not set");
                        return;
                    };
                    super::$name(app).await
                }
            )*
        }
    };
}

/// `sqlite::NAME` and `postgres::NAME` tests for `async fn NAME(backend: Backend)`: for tests
/// that start their servers themselves (their own configuration, restarts). A function skips
/// PostgreSQL by itself when PORTCULLIS_TEST_DATABASE_URL is not set.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod by_backend {
            mod sqlite {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        super::super::$name(super::super::Backend::Sqlite).await
                    }
                )*
            }
            mod postgres {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        super::super::$name(super::super::Backend::Postgres).await
                    }
                )*
            }
        }
    };
}

#[path = "api/helpers/mod.rs"]
mod helpers;
pub(crate) use helpers::*;

#[path = "api/accounts.rs"]
mod accounts;
#[path = "api/activation_reads.rs"]
mod activation_reads;
#[path = "api/alert_flood.rs"]
mod alert_flood;
#[path = "api/alerts.rs"]
mod alerts;
#[path = "api/audit.rs"]
mod audit;
#[path = "api/audit_anchor.rs"]
mod audit_anchor;
#[path = "api/audit_export.rs"]
mod audit_export;
#[path = "api/breakglass/mod.rs"]
mod breakglass;
#[path = "api/ca_privilege.rs"]
mod ca_privilege;
#[path = "api/conditional_access/mod.rs"]
mod conditional_access;
#[path = "api/console/mod.rs"]
mod console;
#[path = "api/containment.rs"]
mod containment;
#[path = "api/device_grant/mod.rs"]
mod device_grant;
#[path = "api/edge/mod.rs"]
mod edge;
#[path = "api/four_eyes.rs"]
mod four_eyes;
#[path = "api/group_membership.rs"]
mod group_membership;
#[path = "api/hostile/mod.rs"]
mod hostile;
#[path = "api/oidc/mod.rs"]
mod oidc;
#[path = "api/posture.rs"]
mod posture;
#[path = "api/privilege/mod.rs"]
mod privilege;
#[path = "api/replicas.rs"]
mod replicas;
#[path = "api/reviews/mod.rs"]
mod reviews;
#[path = "api/roles.rs"]
mod roles;
#[path = "api/scheduled_and_extended.rs"]
mod scheduled_and_extended;
#[path = "api/schemathesis.rs"]
mod schemathesis;
#[path = "api/signin/mod.rs"]
mod signin;
#[path = "api/startup.rs"]
mod startup;
#[path = "api/targets/mod.rs"]
mod targets;
#[path = "api/tokens/mod.rs"]
mod tokens;
