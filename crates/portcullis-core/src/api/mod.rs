//! Shapes of the HTTP API shared by the server (which serialises them and describes them in
//! OpenAPI with the `openapi` feature) and the client (which deserialises them), so the two
//! can never drift apart.
//!
//! One file per subject, every item re-exported here (`api::CreateUserRequest`):
//! - `errors`: the one error body of the API.
//! - `health`: liveness, readiness and the tenant's setup state.
//! - `audit`: audit events, chain verification, checkpoints and anchors.
//! - `signin`: bootstrap, sign-in, sessions, second factors and WebAuthn ceremonies.
//! - `accounts`: users, groups, service accounts and their credentials, OpenID Connect clients.
//! - `roles`: roles, their settings, assignments, activation requests and decisions.
//! - `tokens`: token signing keys and the device grant.
//! - `alerts`: alert channels, rules and messages.
//! - `breakglass`: break-glass accounts and their drills.
//! - `conditional_access`: conditional-access policies, named locations and what-if.
//! - `targets`: targets, role bindings, target operations, observation and reconciliation.
//! - `reviews`: access reviews, their rounds, items and decisions; a person's manager.

macro_rules! api_type {
    ($(#[$m:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(deny_unknown_fields)]
        pub struct $name { $($body)* }
    };
}

mod accounts;
mod alerts;
mod audit;
mod breakglass;
mod conditional_access;
mod errors;
mod governance;
mod health;
mod reviews;
mod roles;
mod signin;
mod targets;
mod tokens;

pub use accounts::*;
pub use alerts::*;
pub use audit::*;
pub use breakglass::*;
pub use conditional_access::*;
pub use errors::*;
pub use governance::*;
pub use health::*;
pub use reviews::*;
pub use roles::*;
pub use signin::*;
pub use targets::*;
pub use tokens::*;
