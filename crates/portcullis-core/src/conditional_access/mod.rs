//! Conditional access: policies over *who* signs in, with *which application*, from *which
//! network* and with *which authentication strength*, and what they then demand (block, MFA,
//! phishing-resistant MFA, re-authentication after some hours). Pure: policies, named locations
//! and the sign-in context come in, a [`Decision`] with its explanation comes out; the clock is a
//! parameter.
//!
//! # File format (JSON or YAML; one policy or a list of them)
//!
//! ```json
//! {"name": "Block admins outside the office", "state": "enabled",
//!  "description": "optional free text",
//!  "conditions": {"principals":   {"include": ["role:global-administrator"], "exclude": ["group:approvers"]},
//!                 "applications": {"include": ["all"]},
//!                 "locations":    {"include": ["any"], "exclude": ["office"]},
//!                 "strengths":    {"include": ["password"]},
//!                 "authentication_flows": {"include": ["device_code"]}},
//!  "grant": {"block": true},
//!  "session": {"sign_in_frequency_hours": 12}}
//! ```
//!
//! - `state`: `enabled`, `report_only` (evaluated and reported, never enforced) or `disabled`.
//! - `conditions.principals` is required. Entries: `all` (every *user*, members and guests; not
//!   service accounts, as in Entra ID, so a "require MFA for all" baseline does not break
//!   daemons), `members`, `guests`, `service_accounts`, `user:NAME`, `service_account:NAME`,
//!   `group:NAME`, `role:ROLE` (the role held active **or eligible**, so an administrator is
//!   covered before activating) and `active_role:ROLE` (active only). A role counts only where
//!   it is held at the tenant scope `/` — directly or through a role-assignable group, by an
//!   active assignment, an activation or an eligible assignment; a role held at
//!   `/targets/x` or `/apps/x` never matches `role:`/`active_role:` (privilege rule 10: scope
//!   is part of a role). See [`Subject::with_roles`].
//! - A `group:NAME` in `principals.exclude` must be a **role-assignable** group (privilege
//!   rule 4): membership of an exclusion group lifts the policy, so only role administrators
//!   may change it (Helpdesk manages ordinary groups). Validation refuses an ordinary group
//!   there; a stored policy that excludes one (imported before the rule) is evaluated as if
//!   that exclusion were not there — it fails closed — and what-if says so
//!   ([`PolicyExplanation::ignored_exclusions`]). Ordinary groups may be *included*.
//! - `conditions.applications` (omitted: every application): `all`, `cli` (the Portcullis CLI),
//!   `api` (direct API / session use), `client:CLIENT_ID` (a registered OIDC client).
//! - `conditions.locations` (omitted: any network): `any`, `trusted` (inside any named location
//!   marked trusted), `untrusted` (inside none), or a named location's name.
//! - `conditions.strengths` (omitted: any strength): the strengths *presented* the policy is
//!   about: `password`, `mfa`, `phishing_resistant` (`include` only).
//! - `conditions.authentication_flows` (omitted: every flow): the authentication flows the
//!   policy is about, as Entra ID's "authentication flows" condition: `device_code` (token
//!   issuance from the device authorization grant — the device-code poll and every refresh of
//!   a family that started with a device code: `portcullis login --device` and its refresh
//!   tokens). `include` only; a list, so more flows can be added. A sign-in by any other flow
//!   (password or WebAuthn sign-in, authorization code, client credentials) carries no flow
//!   and never matches.
//! - Each condition has a non-empty `include` and an optional `exclude`; exclude beats include.
//!   A wildcard (`all`, `any`) stands alone in `include` and never appears in `exclude`; an entry
//!   appears once (never in both lists).
//! - `grant`: `{"block": true}`, `{"require": "mfa"}` or `{"require": "phishing_resistant"}`.
//!   `session`: `{"sign_in_frequency_hours": N}`, 1 ≤ N ≤ 8760. A policy has a grant, a session
//!   control, or both.
//! - Unknown fields are refused everywhere. Policy names are 1–128 characters, unique in a set
//!   ignoring case; at most [`MAX_POLICIES`] policies and [`MAX_ENTRIES`] entries per list.
//!   Export writes a list in this same form, and an export re-imports to identical policies.
//!
//! The same policy in YAML:
//!
//! ```yaml
//! - name: Block admins outside the office
//!   state: enabled
//!   conditions:
//!     principals: {include: [role:global-administrator], exclude: [group:approvers]}
//!     locations: {include: [any], exclude: [office]}
//!   grant: {block: true}
//! ```
//!
//! Named locations (managed separately): `{"name": "office", "cidrs": ["192.0.2.0/24",
//! "2001:db8::/48"], "trusted": true}`.
//!
//! # Evaluation
//!
//! Disabled policies are skipped (and explained as such). A policy *applies* when every
//! condition matches. Among applying enabled policies: any block wins; otherwise requirements
//! combine (the strongest wins; [`Outcome::Require`] when the presented strength falls short);
//! otherwise the smallest sign-in frequency wins ([`Outcome::ReauthRequired`] when the last
//! authentication is that old). Report-only policies are evaluated the same way but only reported
//! in [`Decision::report_only`]. The explanation has one entry per policy, in order, with the
//! condition that did not match.
//!
//! # Invariants
//!
//! - **Break-glass accounts are excluded from every policy by construction**: evaluation returns
//!   `Allow` for a subject with `emergency = true` before looking at any condition, and the
//!   lockout guard ignores them.
//! - Policies are validated (all problems reported at once) before they can exist as [`Policy`]
//!   values; [`CompiledPolicies`] refuses a policy naming an unknown location, so evaluation never
//!   meets a dangling name.
//! - A named location has at least one CIDR (an empty [`NetworkList`] would mean "everywhere");
//!   an IPv4 address carried in IPv6 (`::ffff:192.0.2.1`) is judged as IPv4.
//! - The lockout guard ([`check_lockout`]) refuses a policy set under which no Global
//!   Administrator holding the role at `/`, or the caller, could sign in from any network with
//!   any application (each by the flow it really uses: the API without a flow, the CLI through
//!   the device flow) using a factor they have; it probes one address in every distinct region
//!   formed by the named locations' ranges (which covers an address inside each location and
//!   addresses outside all of them, IPv4 and IPv6).
//!
//! # Layout
//!
//! - `policy`: the file form ([`PolicySpec`]) and the validated [`Policy`] with its references.
//! - `validation`: [`validate_policies`] and [`validate_change`], every problem at once.
//! - `locations`: named locations ([`NamedLocation`]), named CIDR lists, trusted or not.
//! - `import_export`: [`import_policies`] and [`export_policies`], JSON or YAML.
//! - `context`: the sign-in context ([`SignInContext`]), the [`Decision`] and its explanation.
//! - `compiled`: the compiled form of one policy and the facts derived from a sign-in context.
//! - `evaluate`: [`CompiledPolicies`]: compilation, evaluation and what-if.
//! - `lockout`: the lockout guard ([`check_lockout`]).
//! - `tests`: the unit tests.

mod compiled;
mod context;
mod evaluate;
mod import_export;
mod locations;
mod lockout;
#[cfg(doc)]
use crate::network::NetworkList;

mod policy;
#[cfg(test)]
mod tests;
mod validation;

use compiled::*;
pub use context::*;
pub use evaluate::*;
pub use import_export::*;
pub use locations::*;
pub use lockout::*;
pub use policy::*;
pub use validation::*;

/// The most policies one set (or one import) may hold.
pub const MAX_POLICIES: usize = 1000;
/// The most entries one `include` or `exclude` list may hold.
pub const MAX_ENTRIES: usize = 256;
/// The longest sign-in frequency accepted (one year).
pub const MAX_SIGN_IN_FREQUENCY_HOURS: u32 = 8760;
/// What the explanation says for a break-glass account.
pub const BREAK_GLASS_EXPLANATION: &str = "break-glass account: excluded from every policy";

const POLICY_NAME_MAX: usize = 128;
const DESCRIPTION_MAX: usize = 1024;
const CLIENT_ID_MAX: usize = 128;
const RESERVED_LOCATION_NAMES: [&str; 3] = ["any", "trusted", "untrusted"];
