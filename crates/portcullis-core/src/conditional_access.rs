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

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use time::{Duration, OffsetDateTime};

use crate::network::NetworkList;
use crate::principal::PrincipalName;
use crate::roles::{BuiltinRole, RoleName};
use crate::session::AuthStrength;

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

// ---------------------------------------------------------------------------------------------
// File form
// ---------------------------------------------------------------------------------------------

/// A policy as written in a file or an API body, before validation. Values are kept as text so
/// that validation can report every problem at once; [`Policy::from_spec`] and
/// [`validate_policies`] turn it into a [`Policy`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<ConditionsSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<GrantSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionsSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principals: Option<SelectionSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applications: Option<SelectionSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locations: Option<SelectionSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strengths: Option<SelectionSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_flows: Option<SelectionSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectionSpec {
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_in_frequency_hours: Option<u32>,
}

// ---------------------------------------------------------------------------------------------
// Validated policy
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyState {
    Enabled,
    ReportOnly,
    Disabled,
}

impl PolicyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::ReportOnly => "report_only",
            Self::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "enabled" => Some(Self::Enabled),
            "report_only" => Some(Self::ReportOnly),
            "disabled" => Some(Self::Disabled),
            _ => None,
        }
    }
}

/// Who a policy is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PrincipalRef {
    /// Every user, members and guests (not service accounts).
    All,
    Members,
    Guests,
    ServiceAccounts,
    User(PrincipalName),
    ServiceAccount(PrincipalName),
    Group(PrincipalName),
    /// A role held active or eligible.
    Role(String),
    /// A role held active.
    ActiveRole(String),
}

impl PrincipalRef {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "all" => return Ok(Self::All),
            "members" => return Ok(Self::Members),
            "guests" => return Ok(Self::Guests),
            "service_accounts" => return Ok(Self::ServiceAccounts),
            _ => {}
        }
        let named = |field: &'static str, v: &str| {
            PrincipalName::parse(field, v).map_err(|e| format!("{s:?}: {e}"))
        };
        let role = |v: &str| {
            if is_role_slug(v) {
                Ok(v.to_owned())
            } else {
                Err(format!("{s:?}: {v:?} is not a role slug"))
            }
        };
        match s.split_once(':') {
            Some(("user", v)) => named("user name", v).map(Self::User),
            Some(("service_account", v)) => {
                named("service account name", v).map(Self::ServiceAccount)
            }
            Some(("group", v)) => named("group name", v).map(Self::Group),
            Some(("role", v)) => role(v).map(Self::Role),
            Some(("active_role", v)) => role(v).map(Self::ActiveRole),
            _ => Err(format!(
                "{s:?} is not a principal (use all, members, guests, service_accounts, \
                 user:NAME, service_account:NAME, group:NAME, role:ROLE or active_role:ROLE)"
            )),
        }
    }
}

impl fmt::Display for PrincipalRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::Members => f.write_str("members"),
            Self::Guests => f.write_str("guests"),
            Self::ServiceAccounts => f.write_str("service_accounts"),
            Self::User(n) => write!(f, "user:{n}"),
            Self::ServiceAccount(n) => write!(f, "service_account:{n}"),
            Self::Group(n) => write!(f, "group:{n}"),
            Self::Role(r) => write!(f, "role:{r}"),
            Self::ActiveRole(r) => write!(f, "active_role:{r}"),
        }
    }
}

/// Which application a policy is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ApplicationRef {
    All,
    Cli,
    Api,
    Client(String),
}

impl ApplicationRef {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(Self::All),
            "cli" => Ok(Self::Cli),
            "api" => Ok(Self::Api),
            _ => match s.strip_prefix("client:") {
                Some(id) => parse_client_id(id)
                    .map(Self::Client)
                    .map_err(|e| format!("{s:?}: {e}")),
                None => Err(format!(
                    "{s:?} is not an application (use all, cli, api or client:CLIENT_ID)"
                )),
            },
        }
    }
}

impl fmt::Display for ApplicationRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::Cli => f.write_str("cli"),
            Self::Api => f.write_str("api"),
            Self::Client(id) => write!(f, "client:{id}"),
        }
    }
}

/// Which networks a policy is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LocationRef {
    Any,
    Trusted,
    Untrusted,
    Named(PrincipalName),
}

impl LocationRef {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "any" => Ok(Self::Any),
            "trusted" => Ok(Self::Trusted),
            "untrusted" => Ok(Self::Untrusted),
            _ => PrincipalName::parse("location name", s)
                .map(Self::Named)
                .map_err(|e| format!("{s:?}: {e} (or use any, trusted, untrusted)")),
        }
    }
}

impl fmt::Display for LocationRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::Trusted => f.write_str("trusted"),
            Self::Untrusted => f.write_str("untrusted"),
            Self::Named(n) => write!(f, "{n}"),
        }
    }
}

/// An authentication flow a policy can be about (`conditions.authentication_flows`). One flow
/// today; the condition is a list so that more (Entra ID's "authentication transfer", say) can
/// be added without changing the file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthenticationFlow {
    /// The device authorization grant (RFC 8628): the device-code poll and every refresh of a
    /// family that started with a device code.
    DeviceCode,
}

impl AuthenticationFlow {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DeviceCode => "device_code",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "device_code" => Some(Self::DeviceCode),
            _ => None,
        }
    }
}

impl fmt::Display for AuthenticationFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn parse_flow_entry(s: &str) -> Result<AuthenticationFlow, String> {
    AuthenticationFlow::parse(s)
        .ok_or_else(|| format!("{s:?} is not an authentication flow (use device_code)"))
}

fn parse_strength_entry(s: &str) -> Result<AuthStrength, String> {
    AuthStrength::parse(s)
        .ok_or_else(|| format!("{s:?} is not a strength (use password, mfa or phishing_resistant)"))
}

/// An include/exclude pair; exclude beats include.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection<T> {
    pub include: Vec<T>,
    pub exclude: Vec<T>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conditions {
    pub principals: Selection<PrincipalRef>,
    /// `None`: every application.
    pub applications: Option<Selection<ApplicationRef>>,
    /// `None`: any network.
    pub locations: Option<Selection<LocationRef>>,
    /// `None`: any presented strength.
    pub strengths: Option<Selection<AuthStrength>>,
    /// `None`: every authentication flow.
    pub authentication_flows: Option<Selection<AuthenticationFlow>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantControl {
    Block,
    /// `Mfa` or `PhishingResistant`.
    Require(AuthStrength),
}

/// A validated policy. Built only by [`Policy::from_spec`] or [`validate_policies`] (or
/// deserialised through them), so every value is well-formed. Serialises as its [`PolicySpec`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PolicySpec", into = "PolicySpec")]
pub struct Policy {
    name: String,
    description: Option<String>,
    state: PolicyState,
    conditions: Conditions,
    grant: Option<GrantControl>,
    sign_in_frequency_hours: Option<u32>,
}

impl Policy {
    /// Checks the form of one policy (not whether the names it mentions exist: see
    /// [`validate_policies`]), reporting every problem.
    pub fn from_spec(spec: &PolicySpec) -> Result<Self, PolicyErrors> {
        let mut problems = Vec::new();
        let policy = parse_spec(spec, None, &mut problems);
        match policy {
            Some(p) if problems.is_empty() => Ok(p),
            _ => Err(PolicyErrors {
                problems: problems
                    .into_iter()
                    .map(|message| PolicyProblem {
                        index: None,
                        policy: Some(spec.name.clone()),
                        message,
                    })
                    .collect(),
            }),
        }
    }

    /// The file form; `Policy::from_spec(&p.to_spec()) == Ok(p)`.
    pub fn to_spec(&self) -> PolicySpec {
        fn sel<T: fmt::Display>(s: &Selection<T>) -> SelectionSpec {
            SelectionSpec {
                include: s.include.iter().map(ToString::to_string).collect(),
                exclude: s.exclude.iter().map(ToString::to_string).collect(),
            }
        }
        let c = &self.conditions;
        PolicySpec {
            name: self.name.clone(),
            description: self.description.clone(),
            state: self.state.as_str().to_owned(),
            conditions: Some(ConditionsSpec {
                principals: Some(sel(&c.principals)),
                applications: c.applications.as_ref().map(sel),
                locations: c.locations.as_ref().map(sel),
                strengths: c.strengths.as_ref().map(|s| SelectionSpec {
                    include: s.include.iter().map(|x| x.as_str().to_owned()).collect(),
                    exclude: s.exclude.iter().map(|x| x.as_str().to_owned()).collect(),
                }),
                authentication_flows: c.authentication_flows.as_ref().map(sel),
            }),
            grant: self.grant.map(|g| match g {
                GrantControl::Block => GrantSpec {
                    block: Some(true),
                    require: None,
                },
                GrantControl::Require(s) => GrantSpec {
                    block: None,
                    require: Some(s.as_str().to_owned()),
                },
            }),
            session: self.sign_in_frequency_hours.map(|h| SessionSpec {
                sign_in_frequency_hours: Some(h),
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    pub fn state(&self) -> PolicyState {
        self.state
    }

    pub fn conditions(&self) -> &Conditions {
        &self.conditions
    }

    pub fn grant(&self) -> Option<GrantControl> {
        self.grant
    }

    pub fn sign_in_frequency_hours(&self) -> Option<u32> {
        self.sign_in_frequency_hours
    }

    /// The same policy in another state (enable, disable, report-only).
    pub fn with_state(mut self, state: PolicyState) -> Self {
        self.state = state;
        self
    }

    /// Whether this policy names the location `name` in its conditions.
    pub fn references_location(&self, name: &str) -> bool {
        self.conditions.locations.as_ref().is_some_and(|s| {
            s.include
                .iter()
                .chain(&s.exclude)
                .any(|l| matches!(l, LocationRef::Named(n) if n.as_str() == name))
        })
    }
}

impl TryFrom<PolicySpec> for Policy {
    type Error = PolicyErrors;
    fn try_from(spec: PolicySpec) -> Result<Self, PolicyErrors> {
        Self::from_spec(&spec)
    }
}

impl From<Policy> for PolicySpec {
    fn from(p: Policy) -> Self {
        p.to_spec()
    }
}

/// The names of the policies that mention the named location `location` (the server refuses to
/// delete a location while this is not empty). `trusted` / `untrusted` are not references.
pub fn policies_referencing_location<'a>(policies: &'a [Policy], location: &str) -> Vec<&'a str> {
    policies
        .iter()
        .filter(|p| p.references_location(location))
        .map(Policy::name)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/// The names that exist in the tenant, for validating the references in policies. Built-in role
/// slugs are always known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownNames {
    pub users: HashSet<String>,
    pub service_accounts: HashSet<String>,
    pub groups: HashSet<String>,
    /// The role-assignable groups among `groups`: only these may appear in
    /// `principals.exclude` (privilege rule 4).
    pub role_assignable_groups: HashSet<String>,
    /// Custom role names.
    pub roles: HashSet<String>,
    /// Registered OIDC client ids.
    pub clients: HashSet<String>,
    /// Named locations.
    pub locations: HashSet<String>,
}

/// One problem found in a policy set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyProblem {
    /// Position in the submitted list, from 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// The policy's name as written, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    pub message: String,
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.index, &self.policy) {
            (Some(i), Some(p)) => write!(f, "policy #{} {p:?}: {}", i + 1, self.message),
            (Some(i), None) => write!(f, "policy #{}: {}", i + 1, self.message),
            (None, Some(p)) => write!(f, "policy {p:?}: {}", self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

/// Every problem found in a policy (set), never just the first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}", render_problems(.problems))]
pub struct PolicyErrors {
    pub problems: Vec<PolicyProblem>,
}

fn render_problems(problems: &[PolicyProblem]) -> String {
    let parts: Vec<String> = problems.iter().map(ToString::to_string).collect();
    match parts.len() {
        1 => parts.join(""),
        n => format!("{n} problems: {}", parts.join("; ")),
    }
}

/// Validates a whole set (an import, or the proposed set after a change): the form of each
/// policy, every name it mentions against `known`, duplicated names (case-insensitive) and the
/// size. Reports every problem at once.
pub fn validate_policies(
    specs: &[PolicySpec],
    known: &KnownNames,
) -> Result<Vec<Policy>, PolicyErrors> {
    let items: Vec<(usize, &PolicySpec)> = specs.iter().enumerate().collect();
    validate_indexed(&items, specs.len(), known, usize::MAX, Vec::new())
}

/// Validates the set a change would produce: `new` (the policies being written) by every rule
/// of [`validate_policies`], and `kept` (stored policies the change leaves as they are) by
/// every rule but the one that came after some of them were stored — an ordinary group in
/// `principals.exclude` (privilege rule 4). Such a stored policy keeps working with that
/// exclusion ignored (it fails closed, see the module header) until it is re-imported, so it
/// does not block unrelated changes. Returns the `new` policies, then the `kept` ones; problem
/// positions count `new` first, then `kept`.
pub fn validate_change(
    new: &[PolicySpec],
    kept: &[PolicySpec],
    known: &KnownNames,
) -> Result<Vec<Policy>, PolicyErrors> {
    let items: Vec<(usize, &PolicySpec)> = new.iter().chain(kept).enumerate().collect();
    validate_indexed(&items, items.len(), known, new.len(), Vec::new())
}

/// `legacy_from`: items at this position and after are stored policies, exempt from the
/// exclusion-group rule.
fn validate_indexed(
    items: &[(usize, &PolicySpec)],
    total: usize,
    known: &KnownNames,
    legacy_from: usize,
    mut problems: Vec<PolicyProblem>,
) -> Result<Vec<Policy>, PolicyErrors> {
    if total > MAX_POLICIES {
        problems.push(PolicyProblem {
            index: None,
            policy: None,
            message: format!("at most {MAX_POLICIES} policies, not {total}"),
        });
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    for &(index, spec) in items {
        let mut messages = Vec::new();
        let key = spec.name.trim().to_lowercase();
        match seen.get(&key) {
            Some(first) => messages.push(format!(
                "the name is already used by policy #{} (names are compared ignoring case)",
                first + 1
            )),
            None => {
                seen.insert(key, index);
            }
        }
        let policy = parse_spec(
            spec,
            Some(Known {
                names: known,
                exclusion_groups_checked: index < legacy_from,
            }),
            &mut messages,
        );
        if messages.is_empty()
            && let Some(p) = policy
        {
            out.push(p);
        }
        problems.extend(messages.into_iter().map(|message| PolicyProblem {
            index: Some(index),
            policy: Some(spec.name.clone()),
            message,
        }));
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        problems.sort_by_key(|p| p.index);
        Err(PolicyErrors { problems })
    }
}

fn is_role_slug(s: &str) -> bool {
    BuiltinRole::from_slug(s).is_some() || RoleName::parse(s).is_ok()
}

fn parse_client_id(id: &str) -> Result<String, String> {
    if id.is_empty() {
        return Err("a client id must not be empty".into());
    }
    if id.len() > CLIENT_ID_MAX {
        return Err(format!("a client id is at most {CLIENT_ID_MAX} characters"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("a client id may contain only letters, digits, '-', '_' and '.'".into());
    }
    Ok(id.to_owned())
}

fn check_text(field: &str, s: &str, max: usize, problems: &mut Vec<String>) {
    if s.trim().is_empty() {
        problems.push(format!("{field} must not be empty"));
    } else if s.trim() != s {
        problems.push(format!("{field} must not start or end with spaces"));
    }
    if s.chars().count() > max {
        problems.push(format!("{field} must be at most {max} characters"));
    }
    if crate::text::has_invisible_but_newlines(s) || (field == "name" && s.contains('\n')) {
        problems.push(format!("{field} must not contain control characters"));
    }
}

/// Parses one include/exclude section, pushing every problem; `None` when a problem was found.
fn parse_selection<T>(
    section: &str,
    spec: &SelectionSpec,
    wildcard: Option<&str>,
    parse: impl Fn(&str) -> Result<T, String>,
    check_known: impl Fn(&str, &T) -> Option<String>,
    problems: &mut Vec<String>,
) -> Option<Selection<T>> {
    let before = problems.len();
    if spec.include.is_empty() {
        problems.push(match wildcard {
            Some(w) => {
                format!("{section}.include must name at least one entry (\"{w}\" for every one)")
            }
            None => format!("{section}.include must name at least one entry"),
        });
    }
    let mut seen: HashMap<&str, &str> = HashMap::new();
    let mut lists: [Vec<T>; 2] = [Vec::new(), Vec::new()];
    for (which, entries) in [("include", &spec.include), ("exclude", &spec.exclude)] {
        if entries.len() > MAX_ENTRIES {
            problems.push(format!(
                "{section}.{which} has {} entries, at most {MAX_ENTRIES} are allowed",
                entries.len()
            ));
            continue;
        }
        for raw in entries {
            if wildcard == Some(raw.as_str()) {
                if which == "exclude" {
                    problems.push(format!(
                        "{section}.exclude must not contain {raw:?} (the policy would never apply)"
                    ));
                    continue;
                }
                if spec.include.len() > 1 {
                    problems.push(format!(
                        "{section}.include: {raw:?} stands alone (it already covers the other entries)"
                    ));
                    continue;
                }
            }
            if let Some(first) = seen.insert(raw.as_str(), which) {
                problems.push(if first == which {
                    format!("{section}.{which}: {raw:?} is listed more than once")
                } else {
                    format!("{section}: {raw:?} is both included and excluded")
                });
                continue;
            }
            match parse(raw) {
                Ok(v) => {
                    if let Some(msg) = check_known(which, &v) {
                        problems.push(format!("{section}.{which}: {msg}"));
                    }
                    lists[usize::from(which == "exclude")].push(v);
                }
                Err(e) => problems.push(format!("{section}.{which}: {e}")),
            }
        }
    }
    if problems.len() > before {
        return None;
    }
    let [include, exclude] = lists;
    Some(Selection { include, exclude })
}

/// The directory a policy is checked against.
#[derive(Clone, Copy)]
struct Known<'a> {
    names: &'a KnownNames,
    /// Whether a `principals.exclude` group must be role-assignable (not for stored policies,
    /// see [`validate_change`]).
    exclusion_groups_checked: bool,
}

fn parse_spec(
    spec: &PolicySpec,
    known: Option<Known<'_>>,
    problems: &mut Vec<String>,
) -> Option<Policy> {
    let before = problems.len();
    check_text("name", &spec.name, POLICY_NAME_MAX, problems);
    if let Some(d) = &spec.description {
        check_text("description", d, DESCRIPTION_MAX, problems);
    }
    let state = PolicyState::parse(&spec.state);
    if state.is_none() {
        problems.push(format!(
            "state {:?} is not one of enabled, report_only, disabled",
            spec.state
        ));
    }

    let empty = ConditionsSpec::default();
    let cs = spec.conditions.as_ref().unwrap_or(&empty);
    let principals = match &cs.principals {
        None => {
            problems.push(
                "conditions must name at least principals (a policy without conditions would \
                 apply to everyone)"
                    .into(),
            );
            None
        }
        Some(s) => parse_selection(
            "principals",
            s,
            Some("all"),
            PrincipalRef::parse,
            |which, p| {
                let Known {
                    names: k,
                    exclusion_groups_checked,
                } = known?;
                match p {
                    PrincipalRef::User(n) if !k.users.contains(n.as_str()) => {
                        Some(format!("unknown user {:?}", n.as_str()))
                    }
                    PrincipalRef::ServiceAccount(n) if !k.service_accounts.contains(n.as_str()) => {
                        Some(format!("unknown service account {:?}", n.as_str()))
                    }
                    PrincipalRef::Group(n) if !k.groups.contains(n.as_str()) => {
                        Some(format!("unknown group {:?}", n.as_str()))
                    }
                    PrincipalRef::Group(n)
                        if which == "exclude"
                            && exclusion_groups_checked
                            && !k.role_assignable_groups.contains(n.as_str()) =>
                    {
                        Some(format!(
                            "group {:?} is not role-assignable: membership of an exclusion \
                             group lifts the policy, so only a role-assignable group (which \
                             only role administrators can change) may be excluded",
                            n.as_str()
                        ))
                    }
                    PrincipalRef::Role(r) | PrincipalRef::ActiveRole(r)
                        if BuiltinRole::from_slug(r).is_none() && !k.roles.contains(r) =>
                    {
                        Some(format!("unknown role {r:?}"))
                    }
                    _ => None,
                }
            },
            problems,
        ),
    };
    let applications = cs.applications.as_ref().map(|s| {
        parse_selection(
            "applications",
            s,
            Some("all"),
            ApplicationRef::parse,
            |_, a| match (a, known) {
                (ApplicationRef::Client(id), Some(k)) if !k.names.clients.contains(id) => {
                    Some(format!("unknown client {id:?}"))
                }
                _ => None,
            },
            problems,
        )
    });
    let locations = cs.locations.as_ref().map(|s| {
        parse_selection(
            "locations",
            s,
            Some("any"),
            LocationRef::parse,
            |_, l| match (l, known) {
                (LocationRef::Named(n), Some(k)) if !k.names.locations.contains(n.as_str()) => {
                    Some(format!("unknown named location {:?}", n.as_str()))
                }
                _ => None,
            },
            problems,
        )
    });
    let strengths = cs.strengths.as_ref().map(|s| {
        if !s.exclude.is_empty() {
            problems.push(
                "strengths take no exclude: include the strengths the policy is about".into(),
            );
        }
        parse_selection(
            "strengths",
            s,
            None,
            parse_strength_entry,
            |_, _| None,
            problems,
        )
    });
    let authentication_flows = cs.authentication_flows.as_ref().map(|s| {
        if !s.exclude.is_empty() {
            problems.push(
                "authentication_flows take no exclude: include the flows the policy is about \
                 (leave the condition out for every flow)"
                    .into(),
            );
        }
        parse_selection(
            "authentication_flows",
            s,
            None,
            parse_flow_entry,
            |_, _| None,
            problems,
        )
    });

    let grant = match &spec.grant {
        None => None,
        Some(g) => match (g.block, &g.require) {
            (Some(true), None) => Some(GrantControl::Block),
            (None, Some(r)) => match AuthStrength::parse(r) {
                Some(s @ (AuthStrength::Mfa | AuthStrength::PhishingResistant)) => {
                    Some(GrantControl::Require(s))
                }
                _ => {
                    problems.push(format!(
                        "grant.require {r:?} is not one of mfa, phishing_resistant"
                    ));
                    None
                }
            },
            (Some(true), Some(_)) => {
                problems.push("grant: block and require exclude each other".into());
                None
            }
            (Some(false), _) => {
                problems.push(
                    "grant: \"block\": false is not a control (write {\"block\": true} or \
                     {\"require\": …}, or leave grant out)"
                        .into(),
                );
                None
            }
            (None, None) => {
                problems.push("grant must be {\"block\": true} or {\"require\": …}".into());
                None
            }
        },
    };
    let frequency = match &spec.session {
        None => None,
        Some(SessionSpec {
            sign_in_frequency_hours: None,
        }) => {
            problems.push("session must set sign_in_frequency_hours".into());
            None
        }
        Some(SessionSpec {
            sign_in_frequency_hours: Some(h),
        }) => {
            if (1..=MAX_SIGN_IN_FREQUENCY_HOURS).contains(h) {
                Some(*h)
            } else {
                problems.push(format!(
                    "session.sign_in_frequency_hours must be between 1 and \
                     {MAX_SIGN_IN_FREQUENCY_HOURS}, not {h}"
                ));
                None
            }
        }
    };
    if spec.grant.is_none() && spec.session.is_none() {
        problems.push("a policy needs a grant control, a session control, or both".into());
    }

    if problems.len() > before {
        return None;
    }
    Some(Policy {
        name: spec.name.clone(),
        description: spec.description.clone(),
        state: state?,
        conditions: Conditions {
            principals: principals?,
            applications: applications.flatten(),
            locations: locations.flatten(),
            strengths: strengths.flatten(),
            authentication_flows: authentication_flows.flatten(),
        },
        grant,
        sign_in_frequency_hours: frequency,
    })
}

// ---------------------------------------------------------------------------------------------
// Named locations
// ---------------------------------------------------------------------------------------------

/// A named location as written in an API body or a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedLocationSpec {
    pub name: String,
    pub cidrs: Vec<String>,
    #[serde(default)]
    pub trusted: bool,
}

/// A named set of networks (IPv4 and IPv6 CIDRs), possibly marked trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "NamedLocationSpec", into = "NamedLocationSpec")]
pub struct NamedLocation {
    name: PrincipalName,
    networks: NetworkList,
    nets: Vec<IpNet>,
    trusted: bool,
}

/// Why a named location was refused (every problem).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid named location: {}", .problems.join("; "))]
pub struct LocationError {
    pub problems: Vec<String>,
}

impl NamedLocation {
    /// Names follow the principal-name rules and may not be `any`, `trusted` or `untrusted`;
    /// the list needs at least one CIDR and follows [`NetworkList::parse`].
    pub fn parse<S: AsRef<str>>(
        name: &str,
        cidrs: &[S],
        trusted: bool,
    ) -> Result<Self, LocationError> {
        let mut problems = Vec::new();
        let parsed_name = match PrincipalName::parse("location name", name) {
            Ok(n) if RESERVED_LOCATION_NAMES.contains(&name) => {
                problems.push(format!(
                    "{name:?} is reserved in policies; choose another location name"
                ));
                Some(n)
            }
            Ok(n) => Some(n),
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        };
        let networks = if cidrs.is_empty() {
            problems.push("a named location needs at least one CIDR range".into());
            None
        } else {
            match NetworkList::parse(cidrs) {
                Ok(l) => Some(l),
                Err(e) => {
                    problems.push(e.to_string());
                    None
                }
            }
        };
        match (parsed_name, networks) {
            (Some(name), Some(networks)) if problems.is_empty() => {
                let nets = networks
                    .to_strings()
                    .iter()
                    .filter_map(|s| s.parse::<IpNet>().ok())
                    .collect();
                Ok(Self {
                    name,
                    networks,
                    nets,
                    trusted,
                })
            }
            _ => Err(LocationError { problems }),
        }
    }

    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    pub fn networks(&self) -> &NetworkList {
        &self.networks
    }

    pub fn trusted(&self) -> bool {
        self.trusted
    }

    /// Whether `ip` is inside (IPv4-mapped IPv6 judged as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        // `NetworkList::allows` is true for an empty list; `parse` refuses empty lists.
        !self.nets.is_empty() && self.networks.allows(ip)
    }
}

impl TryFrom<NamedLocationSpec> for NamedLocation {
    type Error = LocationError;
    fn try_from(s: NamedLocationSpec) -> Result<Self, LocationError> {
        Self::parse(&s.name, &s.cidrs, s.trusted)
    }
}

impl From<NamedLocation> for NamedLocationSpec {
    fn from(l: NamedLocation) -> Self {
        Self {
            name: l.name.as_str().to_owned(),
            cidrs: l.networks.to_strings(),
            trusted: l.trusted,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parse and export
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyFormat {
    Json,
    Yaml,
}

impl PolicyFormat {
    /// `json`, `yaml` or `yml` (case-insensitive).
    pub fn from_extension(ext: &str) -> Option<Self> {
        match ext.to_ascii_lowercase().as_str() {
            "json" => Some(Self::Json),
            "yaml" | "yml" => Some(Self::Yaml),
            _ => None,
        }
    }

    /// JSON when the text starts with `{` or `[`, YAML otherwise.
    pub fn detect(text: &str) -> Self {
        match text.trim_start().chars().next() {
            Some('{' | '[') => Self::Json,
            _ => Self::Yaml,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "JSON",
            Self::Yaml => "YAML",
        }
    }
}

impl fmt::Display for PolicyFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The text is not JSON/YAML at all, or not a policy or a list of policies.
    #[error("not a valid {format} policy file: {message}")]
    Syntax {
        format: PolicyFormat,
        message: String,
    },
    /// Malformed or invalid policies: every problem, each with its position.
    #[error("{0}")]
    Invalid(#[from] PolicyErrors),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("could not write the policies as {format}: {message}")]
pub struct ExportError {
    pub format: PolicyFormat,
    pub message: String,
}

/// Reads the policies of a file (one policy or a list), checking their structure (unknown
/// fields, wrong types) but not their content. Every malformed element is reported.
pub fn parse_policy_specs(
    text: &str,
    format: PolicyFormat,
) -> Result<Vec<PolicySpec>, ImportError> {
    let elements = split_elements(text, format)?;
    let mut specs = Vec::with_capacity(elements.len());
    let mut problems = Vec::new();
    for (index, e) in elements.into_iter().enumerate() {
        match e {
            Ok(s) => specs.push(s),
            Err((policy, message)) => problems.push(PolicyProblem {
                index: Some(index),
                policy,
                message,
            }),
        }
    }
    if problems.is_empty() {
        Ok(specs)
    } else {
        Err(ImportError::Invalid(PolicyErrors { problems }))
    }
}

/// Reads and validates a policy file against the known names: structure, form, references,
/// duplicated names — every problem at once.
pub fn import_policies(
    text: &str,
    format: PolicyFormat,
    known: &KnownNames,
) -> Result<Vec<Policy>, ImportError> {
    let elements = split_elements(text, format)?;
    let total = elements.len();
    let mut problems = Vec::new();
    let mut specs = Vec::with_capacity(total);
    for (index, e) in elements.into_iter().enumerate() {
        match e {
            Ok(s) => specs.push((index, s)),
            Err((policy, message)) => problems.push(PolicyProblem {
                index: Some(index),
                policy,
                message,
            }),
        }
    }
    let items: Vec<(usize, &PolicySpec)> = specs.iter().map(|(i, s)| (*i, s)).collect();
    Ok(validate_indexed(
        &items,
        total,
        known,
        usize::MAX,
        problems,
    )?)
}

/// Writes policies as a list in the file form; [`import_policies`] reads it back identically.
pub fn export_policies(policies: &[Policy], format: PolicyFormat) -> Result<String, ExportError> {
    let specs: Vec<PolicySpec> = policies.iter().map(Policy::to_spec).collect();
    let err = |message: String| ExportError { format, message };
    match format {
        PolicyFormat::Json => serde_json::to_string_pretty(&specs)
            .map(|s| s + "\n")
            .map_err(|e| err(e.to_string())),
        PolicyFormat::Yaml => serde_norway::to_string(&specs).map_err(|e| err(e.to_string())),
    }
}

type Element = Result<PolicySpec, (Option<String>, String)>;

fn split_elements(text: &str, format: PolicyFormat) -> Result<Vec<Element>, ImportError> {
    let syntax = |message: String| ImportError::Syntax { format, message };
    let shape = "expected a policy (an object) or a list of policies";
    match format {
        PolicyFormat::Json => {
            let value: serde_json::Value =
                serde_json::from_str(text).map_err(|e| syntax(e.to_string()))?;
            let items = match value {
                serde_json::Value::Array(items) => items,
                v @ serde_json::Value::Object(_) => vec![v],
                _ => return Err(syntax(shape.into())),
            };
            Ok(items
                .into_iter()
                .map(|v| {
                    let name = v.get("name").and_then(|n| n.as_str()).map(str::to_owned);
                    serde_json::from_value::<PolicySpec>(v).map_err(|e| (name, e.to_string()))
                })
                .collect())
        }
        PolicyFormat::Yaml => {
            let value: serde_norway::Value =
                serde_norway::from_str(text).map_err(|e| syntax(e.to_string()))?;
            let items = match value {
                serde_norway::Value::Sequence(items) => items,
                v @ serde_norway::Value::Mapping(_) => vec![v],
                _ => return Err(syntax(shape.into())),
            };
            Ok(items
                .into_iter()
                .map(|v| {
                    let name = v.get("name").and_then(|n| n.as_str()).map(str::to_owned);
                    serde_norway::from_value::<PolicySpec>(v).map_err(|e| (name, e.to_string()))
                })
                .collect())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sign-in context and decision
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    Member,
    Guest,
    ServiceAccount,
}

/// Who is signing in, as conditional access sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    pub kind: SubjectKind,
    pub name: String,
    /// Every group the subject is a member of (what `group:NAME` in `include` matches).
    #[serde(default)]
    pub groups: Vec<String>,
    /// The role-assignable groups among `groups`: only membership of these can exclude the
    /// subject from a policy (privilege rule 4). Left empty, no group exclusion applies
    /// (fail closed).
    #[serde(default)]
    pub role_assignable_groups: Vec<String>,
    /// Role slugs held active now **at the tenant scope `/`** (see [`Subject::with_roles`]).
    #[serde(default)]
    pub active_roles: Vec<String>,
    /// Role slugs held eligible **at the tenant scope `/`**.
    #[serde(default)]
    pub eligible_roles: Vec<String>,
    /// A break-glass account: no policy applies to it, ever.
    #[serde(default)]
    pub emergency: bool,
}

/// One role a principal holds, as the directory has it: an assignment (direct or through a
/// group) or an activation, at a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleHolding<'a> {
    pub role: &'a str,
    /// `/`, `/targets/NAME` or `/apps/NAME`.
    pub scope: &'a str,
    /// An active assignment or an activation; `false`: an eligible assignment.
    pub active: bool,
}

impl Subject {
    /// Sets `active_roles` and `eligible_roles` from what the principal holds, keeping only
    /// the roles held at the tenant scope `/` (privilege rule 10: a Global Administrator at
    /// `/targets/lab` is not a Global Administrator of the tenant, so `role:` and
    /// `active_role:` do not match it and the lockout guard does not count it). Sorted, no
    /// duplicates; an active holding does not also make the role eligible.
    pub fn with_roles<'a>(mut self, holdings: impl IntoIterator<Item = RoleHolding<'a>>) -> Self {
        let tenant = crate::roles::Scope::tenant();
        let mut active = Vec::new();
        let mut eligible = Vec::new();
        for h in holdings {
            if h.scope != tenant.as_str() {
                continue;
            }
            if h.active {
                active.push(h.role.to_owned());
            } else {
                eligible.push(h.role.to_owned());
            }
        }
        for v in [&mut active, &mut eligible] {
            v.sort();
            v.dedup();
        }
        self.active_roles = active;
        self.eligible_roles = eligible;
        self
    }

    /// Whether the subject holds `role` at `/`, active or eligible.
    pub fn holds(&self, role: &str) -> bool {
        self.active_roles
            .iter()
            .chain(&self.eligible_roles)
            .any(|r| r == role)
    }
}

/// The application a sign-in or session is for. Text form: `cli`, `api`, `client:CLIENT_ID`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Application {
    Cli,
    Api,
    Client(String),
}

impl Application {
    pub fn parse(s: &str) -> Result<Self, String> {
        match ApplicationRef::parse(s)? {
            ApplicationRef::Cli => Ok(Self::Cli),
            ApplicationRef::Api => Ok(Self::Api),
            ApplicationRef::Client(id) => Ok(Self::Client(id)),
            ApplicationRef::All => {
                Err("\"all\" is not an application (use cli, api or client:CLIENT_ID)".into())
            }
        }
    }
}

impl fmt::Display for Application {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cli => f.write_str("cli"),
            Self::Api => f.write_str("api"),
            Self::Client(id) => write!(f, "client:{id}"),
        }
    }
}

impl TryFrom<String> for Application {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<Application> for String {
    fn from(a: Application) -> String {
        a.to_string()
    }
}

/// Everything evaluation looks at (besides the clock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInContext {
    pub subject: Subject,
    pub application: Application,
    pub ip: IpAddr,
    /// The strength presented in this sign-in or session.
    pub strength: AuthStrength,
    /// When the subject last authenticated at `strength`; `None`: they are authenticating now.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub authenticated_at: Option<OffsetDateTime>,
    /// The flow the tokens come from, when it is one a policy can name (the device grant);
    /// `None` for every other sign-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<AuthenticationFlow>,
}

/// The decision. Serialised (flattened) as `{"outcome": "allow" | "block" | "require" |
/// "reauth_required", …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Allow,
    /// Every applying enabled policy that blocks.
    Block {
        policies: Vec<Arc<str>>,
    },
    /// The presented strength is too weak: authenticate at `strength` (the strongest
    /// requirement); `policies` are those the presented strength does not satisfy.
    Require {
        strength: AuthStrength,
        policies: Vec<Arc<str>>,
    },
    /// The last authentication is older than `max_age_hours` (the smallest frequency among the
    /// applying policies): authenticate again, at `strength` at least.
    ReauthRequired {
        strength: AuthStrength,
        max_age_hours: u32,
        policies: Vec<Arc<str>>,
    },
}

impl Outcome {
    pub fn is_allow(&self) -> bool {
        matches!(self, Self::Allow)
    }

    /// The policies responsible (empty for `Allow`).
    pub fn policies(&self) -> &[Arc<str>] {
        match self {
            Self::Allow => &[],
            Self::Block { policies }
            | Self::Require { policies, .. }
            | Self::ReauthRequired { policies, .. } => policies,
        }
    }
}

/// What one applying policy, alone, does to this sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum PolicyResult {
    /// Its controls are met.
    Satisfied,
    Block,
    Require {
        strength: AuthStrength,
    },
    ReauthRequired {
        max_age_hours: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditionKind {
    Principals,
    Applications,
    Locations,
    Strengths,
    AuthenticationFlows,
}

impl ConditionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Principals => "principals",
            Self::Applications => "applications",
            Self::Locations => "locations",
            Self::Strengths => "strengths",
            Self::AuthenticationFlows => "authentication_flows",
        }
    }
}

/// Whether a policy applied, and why (not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Applies(PolicyResult),
    Disabled,
    BreakGlass,
    /// No `include` entry of this condition matched.
    NotIncluded(ConditionKind),
    /// This `exclude` entry matched.
    Excluded {
        condition: ConditionKind,
        entry: Arc<str>,
    },
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Applies(PolicyResult::Satisfied) => {
                f.write_str("applies: every condition matched and its controls are met")
            }
            Self::Applies(PolicyResult::Block) => {
                f.write_str("applies: every condition matched; it blocks the sign-in")
            }
            Self::Applies(PolicyResult::Require { strength }) => write!(
                f,
                "applies: every condition matched; it requires {} and a weaker strength was \
                 presented",
                strength.as_str()
            ),
            Self::Applies(PolicyResult::ReauthRequired { max_age_hours }) => write!(
                f,
                "applies: every condition matched; the last authentication is older than \
                 {max_age_hours} h"
            ),
            Self::Disabled => f.write_str("disabled: not evaluated"),
            Self::BreakGlass => f.write_str(BREAK_GLASS_EXPLANATION),
            Self::NotIncluded(c) => f.write_str(match c {
                ConditionKind::Principals => "principals: the subject matches no included entry",
                ConditionKind::Applications => "applications: the application is not included",
                ConditionKind::Locations => {
                    "locations: the client address is in no included location"
                }
                ConditionKind::Strengths => "strengths: the presented strength is not included",
                ConditionKind::AuthenticationFlows => {
                    "authentication_flows: the sign-in does not use an included flow"
                }
            }),
            Self::Excluded { condition, entry } => {
                write!(f, "{}: excluded by {entry}", condition.as_str())
            }
        }
    }
}

/// One entry of the explanation. Serialised as `{"policy", "state", "applies", "condition"?,
/// "reason", "result"?, "ignored_exclusions"?}`; `reason` is rendered only when serialised, so
/// evaluation stays cheap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyExplanation {
    pub policy: Arc<str>,
    pub state: PolicyState,
    pub verdict: Verdict,
    /// `group:NAME` entries of `principals.exclude` that the subject is a member of but that
    /// did not exclude them, because the group is not role-assignable (a stored policy from
    /// before privilege rule 4; see the module header). Empty almost always.
    pub ignored_exclusions: Vec<Arc<str>>,
}

impl PolicyExplanation {
    pub fn applies(&self) -> bool {
        matches!(self.verdict, Verdict::Applies(_))
    }

    pub fn reason(&self) -> String {
        let mut r = self.verdict.to_string();
        if !self.ignored_exclusions.is_empty() {
            let names: Vec<&str> = self.ignored_exclusions.iter().map(|e| &**e).collect();
            r.push_str(&format!(
                "; exclusion by {} not applied: not a role-assignable group (re-import the \
                 policy with a role-assignable group)",
                names.join(", ")
            ));
        }
        r
    }
}

impl Serialize for PolicyExplanation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("PolicyExplanation", 7)?;
        m.serialize_field("policy", &*self.policy)?;
        m.serialize_field("state", &self.state)?;
        m.serialize_field("applies", &self.applies())?;
        match &self.verdict {
            Verdict::NotIncluded(c) | Verdict::Excluded { condition: c, .. } => {
                m.serialize_field("condition", c)?;
            }
            _ => m.skip_field("condition")?,
        }
        m.serialize_field("reason", &self.reason())?;
        match &self.verdict {
            Verdict::Applies(r) => m.serialize_field("result", r)?,
            _ => m.skip_field("result")?,
        }
        if self.ignored_exclusions.is_empty() {
            m.skip_field("ignored_exclusions")?;
        } else {
            let names: Vec<&str> = self.ignored_exclusions.iter().map(|e| &**e).collect();
            m.serialize_field("ignored_exclusions", &names)?;
        }
        m.end()
    }
}

/// What a report-only policy would have done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportOnlyResult {
    pub policy: Arc<str>,
    #[serde(flatten)]
    pub result: PolicyResult,
}

/// The result of evaluating a sign-in (or a what-if).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    #[serde(flatten)]
    pub outcome: Outcome,
    pub break_glass: bool,
    /// The smallest sign-in frequency among applying enabled policies: the session must be
    /// re-authenticated this many hours after `authenticated_at`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sign_in_frequency_hours: Option<u32>,
    /// The enabled policies that applied (whatever they demanded).
    pub applied: Vec<Arc<str>>,
    /// Applying report-only policies and what each would have done; never enforced.
    pub report_only: Vec<ReportOnlyResult>,
    /// One entry per policy, in the order of the set, disabled and report-only included
    /// (what-if only: [`CompiledPolicies::evaluate`] leaves it empty, it is not enforced).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub explanation: Vec<PolicyExplanation>,
    /// [`BREAK_GLASS_EXPLANATION`] for a break-glass account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
}

// ---------------------------------------------------------------------------------------------
// Compiled policies and evaluation
// ---------------------------------------------------------------------------------------------

/// The exclusions of `p` the subject's membership would have met but for the group not being
/// role-assignable (for the explanation).
fn ignored_exclusions(p: &CompiledPolicy, s: &Subject) -> Vec<Arc<str>> {
    p.excluded_groups
        .iter()
        .filter(|(group, _)| {
            s.groups.iter().any(|g| **g == **group)
                && !s.role_assignable_groups.iter().any(|g| **g == **group)
        })
        .map(|(_, entry)| Arc::clone(entry))
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("; "))]
pub struct CompileError {
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PrincipalAtom {
    All,
    Members,
    Guests,
    ServiceAccounts,
    Bit(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ApplicationAtom {
    All,
    Cli,
    Api,
    Client(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LocationAtom {
    Any,
    Trusted,
    Untrusted,
    Named(u32),
}

#[derive(Debug, Clone)]
struct CompiledSelection<A> {
    include: Vec<A>,
    exclude: Vec<(A, Arc<str>)>,
}

#[derive(Debug, Clone)]
struct CompiledPolicy {
    name: Arc<str>,
    state: PolicyState,
    principals: CompiledSelection<PrincipalAtom>,
    applications: Option<CompiledSelection<ApplicationAtom>>,
    locations: Option<CompiledSelection<LocationAtom>>,
    strengths: Option<CompiledSelection<AuthStrength>>,
    flows: Option<CompiledSelection<AuthenticationFlow>>,
    grant: Option<GrantControl>,
    sign_in_frequency_hours: Option<u32>,
    /// The groups of `principals.exclude` (name, entry), to explain an exclusion that did not
    /// apply because the group is not role-assignable (what-if only).
    excluded_groups: Vec<(Arc<str>, Arc<str>)>,
}

#[derive(Debug, Clone, Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn with_capacity(bits: usize) -> Self {
        Self(vec![0; bits.div_ceil(64)])
    }

    fn set(&mut self, i: u32) {
        if let Some(w) = self.0.get_mut(i as usize / 64) {
            *w |= 1 << (i % 64);
        }
    }

    fn get(&self, i: u32) -> bool {
        self.0
            .get(i as usize / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

/// What evaluation derives from a context once, before looking at the policies.
struct Facts {
    kind: SubjectKind,
    principal: Bits,
    application: Option<ApplicationAtom>,
    locations: Bits,
    trusted: bool,
    strength: AuthStrength,
    flow: Option<AuthenticationFlow>,
}

impl Facts {
    fn principal(&self, a: &PrincipalAtom) -> bool {
        match *a {
            PrincipalAtom::All => self.kind != SubjectKind::ServiceAccount,
            PrincipalAtom::Members => self.kind == SubjectKind::Member,
            PrincipalAtom::Guests => self.kind == SubjectKind::Guest,
            PrincipalAtom::ServiceAccounts => self.kind == SubjectKind::ServiceAccount,
            PrincipalAtom::Bit(b) => self.principal.get(b),
        }
    }

    fn application(&self, a: &ApplicationAtom) -> bool {
        *a == ApplicationAtom::All || Some(*a) == self.application
    }

    fn location(&self, a: &LocationAtom) -> bool {
        match *a {
            LocationAtom::Any => true,
            LocationAtom::Trusted => self.trusted,
            LocationAtom::Untrusted => !self.trusted,
            LocationAtom::Named(i) => self.locations.get(i),
        }
    }
}

fn check_selection<A>(
    sel: &CompiledSelection<A>,
    kind: ConditionKind,
    matches: impl Fn(&A) -> bool,
) -> Result<(), Verdict> {
    if let Some((_, entry)) = sel.exclude.iter().find(|(a, _)| matches(a)) {
        return Err(Verdict::Excluded {
            condition: kind,
            entry: Arc::clone(entry),
        });
    }
    if sel.include.iter().any(matches) {
        Ok(())
    } else {
        Err(Verdict::NotIncluded(kind))
    }
}

impl CompiledPolicy {
    fn check(&self, f: &Facts) -> Result<(), Verdict> {
        check_selection(&self.principals, ConditionKind::Principals, |a| {
            f.principal(a)
        })?;
        if let Some(s) = &self.applications {
            check_selection(s, ConditionKind::Applications, |a| f.application(a))?;
        }
        if let Some(s) = &self.locations {
            check_selection(s, ConditionKind::Locations, |a| f.location(a))?;
        }
        if let Some(s) = &self.strengths {
            check_selection(s, ConditionKind::Strengths, |a| *a == f.strength)?;
        }
        if let Some(s) = &self.flows {
            check_selection(s, ConditionKind::AuthenticationFlows, |a| {
                Some(*a) == f.flow
            })?;
        }
        Ok(())
    }

    fn result(
        &self,
        strength: AuthStrength,
        authenticated_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> PolicyResult {
        match self.grant {
            Some(GrantControl::Block) => return PolicyResult::Block,
            Some(GrantControl::Require(s)) if strength < s => {
                return PolicyResult::Require { strength: s };
            }
            _ => {}
        }
        match (self.sign_in_frequency_hours, authenticated_at) {
            (Some(h), Some(t)) if now - t >= Duration::hours(i64::from(h)) => {
                PolicyResult::ReauthRequired { max_age_hours: h }
            }
            _ => PolicyResult::Satisfied,
        }
    }
}

#[derive(Debug, Clone)]
struct CompiledLocation {
    location: NamedLocation,
}

/// A policy set and the named locations, prepared once for fast evaluation: every name a policy
/// mentions is interned to a bit, so evaluating a sign-in costs one hash lookup per group/role
/// of the subject plus a few bit tests per policy.
#[derive(Debug, Clone)]
pub struct CompiledPolicies {
    policies: Vec<CompiledPolicy>,
    locations: Vec<CompiledLocation>,
    users: HashMap<String, u32>,
    service_accounts: HashMap<String, u32>,
    groups: HashMap<String, u32>,
    /// Groups named in `principals.exclude`: a bit set only for role-assignable membership,
    /// so an ordinary group never excludes anyone (privilege rule 4).
    exclusion_groups: HashMap<String, u32>,
    roles: HashMap<String, u32>,
    active_roles: HashMap<String, u32>,
    principal_bits: u32,
    clients: HashMap<String, u32>,
}

fn intern(map: &mut HashMap<String, u32>, next: &mut u32, key: &str) -> u32 {
    if let Some(&id) = map.get(key) {
        return id;
    }
    let id = *next;
    *next += 1;
    map.insert(key.to_owned(), id);
    id
}

impl CompiledPolicies {
    /// Prepares `policies` (in the order given: the explanation follows it) with the named
    /// locations. Refuses a policy that names a location not in `locations`, and two locations
    /// with one name.
    pub fn compile(policies: &[Policy], locations: &[NamedLocation]) -> Result<Self, CompileError> {
        let mut problems = Vec::new();
        let mut location_ids: HashMap<&str, u32> = HashMap::new();
        for (i, l) in locations.iter().enumerate() {
            let id = u32::try_from(i).unwrap_or(u32::MAX);
            if location_ids.insert(l.name(), id).is_some() {
                problems.push(format!("named location {:?} is defined twice", l.name()));
            }
        }
        let mut me = Self {
            policies: Vec::with_capacity(policies.len()),
            locations: locations
                .iter()
                .map(|l| CompiledLocation {
                    location: l.clone(),
                })
                .collect(),
            users: HashMap::new(),
            service_accounts: HashMap::new(),
            groups: HashMap::new(),
            exclusion_groups: HashMap::new(),
            roles: HashMap::new(),
            active_roles: HashMap::new(),
            principal_bits: 0,
            clients: HashMap::new(),
        };
        let mut next_client = 0u32;
        for p in policies {
            let c = &p.conditions;
            let principals = {
                // `exclude`: a group there matches only a role-assignable membership.
                let mut atom = |r: &PrincipalRef, exclude: bool| {
                    let next = &mut me.principal_bits;
                    match r {
                        PrincipalRef::All => PrincipalAtom::All,
                        PrincipalRef::Members => PrincipalAtom::Members,
                        PrincipalRef::Guests => PrincipalAtom::Guests,
                        PrincipalRef::ServiceAccounts => PrincipalAtom::ServiceAccounts,
                        PrincipalRef::User(n) => {
                            PrincipalAtom::Bit(intern(&mut me.users, next, n.as_str()))
                        }
                        PrincipalRef::ServiceAccount(n) => {
                            PrincipalAtom::Bit(intern(&mut me.service_accounts, next, n.as_str()))
                        }
                        PrincipalRef::Group(n) if exclude => {
                            PrincipalAtom::Bit(intern(&mut me.exclusion_groups, next, n.as_str()))
                        }
                        PrincipalRef::Group(n) => {
                            PrincipalAtom::Bit(intern(&mut me.groups, next, n.as_str()))
                        }
                        PrincipalRef::Role(r) => PrincipalAtom::Bit(intern(&mut me.roles, next, r)),
                        PrincipalRef::ActiveRole(r) => {
                            PrincipalAtom::Bit(intern(&mut me.active_roles, next, r))
                        }
                    }
                };
                CompiledSelection {
                    include: c
                        .principals
                        .include
                        .iter()
                        .map(|r| atom(r, false))
                        .collect(),
                    exclude: c
                        .principals
                        .exclude
                        .iter()
                        .map(|r| (atom(r, true), Arc::from(r.to_string())))
                        .collect(),
                }
            };
            let excluded_groups = c
                .principals
                .exclude
                .iter()
                .filter_map(|r| match r {
                    PrincipalRef::Group(n) => {
                        Some((Arc::from(n.as_str()), Arc::from(r.to_string())))
                    }
                    _ => None,
                })
                .collect();
            let applications = c.applications.as_ref().map(|s| {
                let mut atom = |a: &ApplicationRef| match a {
                    ApplicationRef::All => ApplicationAtom::All,
                    ApplicationRef::Cli => ApplicationAtom::Cli,
                    ApplicationRef::Api => ApplicationAtom::Api,
                    ApplicationRef::Client(id) => {
                        ApplicationAtom::Client(intern(&mut me.clients, &mut next_client, id))
                    }
                };
                CompiledSelection {
                    include: s.include.iter().map(&mut atom).collect(),
                    exclude: s
                        .exclude
                        .iter()
                        .map(|a| (atom(a), Arc::from(a.to_string())))
                        .collect(),
                }
            });
            let locations = c.locations.as_ref().map(|s| {
                let mut atom = |l: &LocationRef| match l {
                    LocationRef::Any => LocationAtom::Any,
                    LocationRef::Trusted => LocationAtom::Trusted,
                    LocationRef::Untrusted => LocationAtom::Untrusted,
                    LocationRef::Named(n) => match location_ids.get(n.as_str()) {
                        Some(&id) => LocationAtom::Named(id),
                        None => {
                            problems.push(format!(
                                "policy {:?} names unknown location {:?}",
                                p.name,
                                n.as_str()
                            ));
                            LocationAtom::Named(u32::MAX)
                        }
                    },
                };
                CompiledSelection {
                    include: s.include.iter().map(&mut atom).collect(),
                    exclude: s
                        .exclude
                        .iter()
                        .map(|l| (atom(l), Arc::from(l.to_string())))
                        .collect(),
                }
            });
            let strengths = c.strengths.as_ref().map(|s| CompiledSelection {
                include: s.include.clone(),
                exclude: s
                    .exclude
                    .iter()
                    .map(|x| (*x, Arc::from(x.as_str())))
                    .collect(),
            });
            let flows = c.authentication_flows.as_ref().map(|s| CompiledSelection {
                include: s.include.clone(),
                exclude: s
                    .exclude
                    .iter()
                    .map(|x| (*x, Arc::from(x.as_str())))
                    .collect(),
            });
            me.policies.push(CompiledPolicy {
                name: Arc::from(p.name.as_str()),
                state: p.state,
                principals,
                applications,
                locations,
                strengths,
                flows,
                grant: p.grant,
                sign_in_frequency_hours: p.sign_in_frequency_hours,
                excluded_groups,
            });
        }
        if problems.is_empty() {
            Ok(me)
        } else {
            Err(CompileError { problems })
        }
    }

    /// How many policies the set holds.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    fn facts(&self, ctx: &SignInContext) -> Facts {
        let s = &ctx.subject;
        let mut principal = Bits::with_capacity(self.principal_bits as usize);
        let names = if s.kind == SubjectKind::ServiceAccount {
            &self.service_accounts
        } else {
            &self.users
        };
        if let Some(&b) = names.get(s.name.as_str()) {
            principal.set(b);
        }
        for g in &s.groups {
            if let Some(&b) = self.groups.get(g.as_str()) {
                principal.set(b);
            }
        }
        for g in &s.role_assignable_groups {
            if let Some(&b) = self.exclusion_groups.get(g.as_str()) {
                principal.set(b);
            }
        }
        for r in &s.active_roles {
            if let Some(&b) = self.active_roles.get(r.as_str()) {
                principal.set(b);
            }
        }
        for r in s.active_roles.iter().chain(&s.eligible_roles) {
            if let Some(&b) = self.roles.get(r.as_str()) {
                principal.set(b);
            }
        }
        let application = match &ctx.application {
            Application::Cli => Some(ApplicationAtom::Cli),
            Application::Api => Some(ApplicationAtom::Api),
            Application::Client(id) => self
                .clients
                .get(id.as_str())
                .map(|&i| ApplicationAtom::Client(i)),
        };
        let mut locations = Bits::with_capacity(self.locations.len());
        let mut trusted = false;
        for (i, l) in self.locations.iter().enumerate() {
            if l.location.contains(ctx.ip) {
                locations.set(u32::try_from(i).unwrap_or(u32::MAX));
                trusted |= l.location.trusted();
            }
        }
        Facts {
            kind: s.kind,
            principal,
            application,
            locations,
            trusted,
            strength: ctx.strength,
            flow: ctx.flow,
        }
    }

    /// Evaluates a sign-in (or a session use) at `now`. See the module documentation for the
    /// rules; a break-glass subject gets `Allow` without any policy being looked at.
    pub fn evaluate(&self, ctx: &SignInContext, now: OffsetDateTime) -> Decision {
        self.run(ctx, now, false)
    }

    /// "What if": the same evaluation over a hypothetical context; the explanation has one entry
    /// per policy (disabled and report-only included) with its reason.
    pub fn what_if(&self, ctx: &SignInContext, now: OffsetDateTime) -> Decision {
        self.run(ctx, now, true)
    }

    fn run(&self, ctx: &SignInContext, now: OffsetDateTime, explain: bool) -> Decision {
        if ctx.subject.emergency {
            // By construction: nothing below runs for a break-glass account.
            return Decision {
                outcome: Outcome::Allow,
                break_glass: true,
                sign_in_frequency_hours: None,
                applied: Vec::new(),
                report_only: Vec::new(),
                explanation: if explain {
                    self.policies
                        .iter()
                        .map(|p| PolicyExplanation {
                            policy: Arc::clone(&p.name),
                            state: p.state,
                            verdict: Verdict::BreakGlass,
                            ignored_exclusions: Vec::new(),
                        })
                        .collect()
                } else {
                    Vec::new()
                },
                note: Some(BREAK_GLASS_EXPLANATION),
            };
        }
        let facts = self.facts(ctx);
        let mut explanation = Vec::with_capacity(if explain { self.policies.len() } else { 0 });
        let mut report_only = Vec::new();
        let mut applied = Vec::new();
        let mut blocked = Vec::new();
        let mut required: Option<AuthStrength> = None;
        let mut unmet = Vec::new();
        let mut frequency: Option<u32> = None;
        let mut stale = Vec::new();
        for p in &self.policies {
            let verdict = if p.state == PolicyState::Disabled {
                Verdict::Disabled
            } else {
                match p.check(&facts) {
                    Err(v) => v,
                    Ok(()) => {
                        let result = p.result(ctx.strength, ctx.authenticated_at, now);
                        if p.state == PolicyState::ReportOnly {
                            report_only.push(ReportOnlyResult {
                                policy: Arc::clone(&p.name),
                                result,
                            });
                        } else {
                            applied.push(Arc::clone(&p.name));
                            match p.grant {
                                Some(GrantControl::Block) => blocked.push(Arc::clone(&p.name)),
                                Some(GrantControl::Require(s)) => {
                                    required = required.max(Some(s));
                                    if ctx.strength < s {
                                        unmet.push(Arc::clone(&p.name));
                                    }
                                }
                                None => {}
                            }
                            if let Some(h) = p.sign_in_frequency_hours {
                                frequency = Some(frequency.map_or(h, |f| f.min(h)));
                                if let Some(t) = ctx.authenticated_at
                                    && now - t >= Duration::hours(i64::from(h))
                                {
                                    stale.push(Arc::clone(&p.name));
                                }
                            }
                        }
                        Verdict::Applies(result)
                    }
                }
            };
            if explain {
                let ignored_exclusions = if verdict == Verdict::Disabled {
                    Vec::new()
                } else {
                    ignored_exclusions(p, &ctx.subject)
                };
                explanation.push(PolicyExplanation {
                    policy: Arc::clone(&p.name),
                    state: p.state,
                    verdict,
                    ignored_exclusions,
                });
            }
        }
        let outcome = if !blocked.is_empty() {
            Outcome::Block { policies: blocked }
        } else if let (Some(strength), false) = (required, unmet.is_empty()) {
            Outcome::Require {
                strength,
                policies: unmet,
            }
        } else if let (Some(max_age_hours), false) = (frequency, stale.is_empty()) {
            Outcome::ReauthRequired {
                strength: required.unwrap_or(AuthStrength::Password),
                max_age_hours,
                policies: stale,
            }
        } else {
            Outcome::Allow
        };
        Decision {
            outcome,
            break_glass: false,
            sign_in_frequency_hours: frequency,
            applied,
            report_only,
            explanation,
            note: None,
        }
    }

    /// One address in every region of the address space where membership in the named
    /// locations is constant (IPv4 and IPv6): inside each location, in each overlap, and outside
    /// all of them.
    fn probe_addresses(&self) -> Vec<IpAddr> {
        let mut v4: BTreeSet<u32> = BTreeSet::from([0, u32::from(Ipv4Addr::new(203, 0, 113, 1))]);
        let mut v6: BTreeSet<u128> = BTreeSet::from([
            0,
            u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        ]);
        for l in &self.locations {
            for net in &l.location.nets {
                match net {
                    IpNet::V4(n) => {
                        v4.insert(u32::from(n.network()));
                        if let Some(after) = u32::from(n.broadcast()).checked_add(1) {
                            v4.insert(after);
                        }
                    }
                    IpNet::V6(n) => {
                        v6.insert(u128::from(n.network()));
                        if let Some(after) = u128::from(n.broadcast()).checked_add(1) {
                            v6.insert(after);
                        }
                    }
                }
            }
        }
        v4.into_iter()
            .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
            .chain(v6.into_iter().map(|a| IpAddr::V6(Ipv6Addr::from(a))))
            .collect()
    }

    /// Whether `account` could sign in somewhere (an application by the flow it is reached
    /// through) with some factor it has: `Ok`, or the policies that stood in its way.
    fn can_sign_in(
        &self,
        account: &AccountProfile,
        routes: &[(Application, Option<AuthenticationFlow>)],
        addresses: &[IpAddr],
    ) -> Result<(), BTreeSet<Arc<str>>> {
        // A fresh sign-in (`authenticated_at: None`): the clock plays no part.
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut responsible = BTreeSet::new();
        let mut ctx = SignInContext {
            subject: account.subject.clone(),
            application: Application::Api,
            ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            strength: AuthStrength::Password,
            authenticated_at: None,
            flow: None,
        };
        let strengths = [
            AuthStrength::Password,
            AuthStrength::Mfa,
            AuthStrength::PhishingResistant,
        ];
        for strength in strengths.into_iter().filter(|s| *s <= account.strongest) {
            ctx.strength = strength;
            for (app, flow) in routes {
                ctx.application = app.clone();
                ctx.flow = *flow;
                for ip in addresses {
                    ctx.ip = *ip;
                    let d = self.run(&ctx, now, false);
                    match d.outcome {
                        Outcome::Allow | Outcome::ReauthRequired { .. } => return Ok(()),
                        o => responsible.extend(o.policies().iter().cloned()),
                    }
                }
            }
        }
        Err(responsible)
    }
}

// ---------------------------------------------------------------------------------------------
// Lockout guard
// ---------------------------------------------------------------------------------------------

/// An account as the lockout guard sees it: who it is and the strongest factor it has
/// registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountProfile {
    pub subject: Subject,
    pub strongest: AuthStrength,
}

/// Why a proposed policy set is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "lockout", rename_all = "snake_case")]
pub enum LockoutError {
    /// (a) No Global Administrator could sign in from any network with any application using a
    /// factor they have. Never forcible.
    #[error(
        "refused: no Global Administrator could sign in from any network or application with \
         the factors they have registered (affected: {}); policies responsible: {}",
        .accounts.join(", "),
        .policies.join(", ")
    )]
    NoGlobalAdministrator {
        accounts: Vec<String>,
        policies: Vec<String>,
    },
    /// (b) The caller would lock themselves out. The server may let the caller force it.
    #[error(
        "refused: you ({account}) could not sign in from any network or application with the \
         factors you have registered; policies responsible: {}",
        .policies.join(", ")
    )]
    CallerLockedOut {
        account: String,
        policies: Vec<String>,
    },
}

impl LockoutError {
    /// Only a caller lock-out (b) may be forced.
    pub fn forcible(&self) -> bool {
        matches!(self, Self::CallerLockedOut { .. })
    }
}

/// The lockout guard: refuses `proposed` (the full set after the change, all states; only
/// enabled policies count) when (a) there are Global Administrators (not break-glass) and none of
/// them could sign in from any network — one address per region of the named locations, IPv4 and
/// IPv6, and addresses outside them all — with any application at any strength up to the
/// strongest factor they have; or (b) the caller could not. (a) is reported before (b).
/// Break-glass accounts are ignored: no policy applies to them.
///
/// Only candidates in `global_admins` whose subject holds Global Administrator at the tenant
/// scope `/` (active or eligible; [`Subject::with_roles`]) count as Global Administrators:
/// one at `/targets/x` cannot administer the tenant (privilege rule 10).
///
/// Each application is probed by the flow that really reaches it: `api` (the sign-in
/// endpoints) and each of `clients` without a flow, `cli` through the device flow (its only
/// way in). So a policy that blocks only the device flow for every administrator is no
/// lock-out (they sign in to the API), while one that blocks the API and another that blocks
/// the device flow together are.
pub fn check_lockout(
    proposed: &CompiledPolicies,
    clients: &[String],
    global_admins: &[AccountProfile],
    caller: &AccountProfile,
) -> Result<(), LockoutError> {
    let mut routes = vec![
        (Application::Api, None),
        (Application::Cli, Some(AuthenticationFlow::DeviceCode)),
    ];
    routes.extend(
        clients
            .iter()
            .map(|c| (Application::Client(c.clone()), None)),
    );
    let addresses = proposed.probe_addresses();
    let ga = BuiltinRole::GlobalAdministrator.slug();
    let admins: Vec<&AccountProfile> = global_admins
        .iter()
        .filter(|a| !a.subject.emergency && a.subject.holds(ga))
        .collect();
    if !admins.is_empty() {
        let mut responsible = BTreeSet::new();
        let mut someone = false;
        for a in &admins {
            match proposed.can_sign_in(a, &routes, &addresses) {
                Ok(()) => {
                    someone = true;
                    break;
                }
                Err(p) => responsible.extend(p),
            }
        }
        if !someone {
            return Err(LockoutError::NoGlobalAdministrator {
                accounts: admins.iter().map(|a| a.subject.name.clone()).collect(),
                policies: responsible.iter().map(|p| p.to_string()).collect(),
            });
        }
    }
    if !caller.subject.emergency
        && let Err(p) = proposed.can_sign_in(caller, &routes, &addresses)
    {
        return Err(LockoutError::CallerLockedOut {
            account: caller.subject.name.clone(),
            policies: p.iter().map(|p| p.to_string()).collect(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Enforcement decides exactly as what-if does; it only leaves the explanation out.
    #[test]
    fn evaluate_decides_as_what_if_without_the_explanation() {
        let policies = vec![
            simple("a", &["all"], json!({"require": "mfa"})),
            policy(json!({"name": "b", "state": "report_only",
                "conditions": {"principals": {"include": ["all"]}}, "grant": {"block": true}})),
            policy(json!({"name": "c", "state": "disabled",
                "conditions": {"principals": {"include": ["all"]}}, "grant": {"block": true}})),
        ];
        let compiled = compile(&policies);
        let ctx = ctx(member("ann"));
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let mut explained = compiled.what_if(&ctx, now);
        let enforced = compiled.evaluate(&ctx, now);
        assert_eq!(explained.explanation.len(), 3);
        assert!(enforced.explanation.is_empty());
        assert_eq!(enforced.applied, vec![Arc::<str>::from("a")]);
        explained.explanation.clear();
        assert_eq!(enforced, explained);
    }

    use serde_json::json;

    use super::*;

    fn t0() -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn policy(v: serde_json::Value) -> Policy {
        let spec: PolicySpec = serde_json::from_value(v).expect("spec");
        Policy::from_spec(&spec).expect("valid policy")
    }

    /// `{"name": name, "state": "enabled", "conditions": {"principals": {"include": [who]}}, grant}`
    fn simple(name: &str, who: &[&str], grant: serde_json::Value) -> Policy {
        policy(json!({"name": name, "state": "enabled",
            "conditions": {"principals": {"include": who}}, "grant": grant}))
    }

    fn locations() -> Vec<NamedLocation> {
        vec![
            NamedLocation::parse("office", &["192.0.2.0/24", "2001:db8:1::/48"], true)
                .expect("office"),
            NamedLocation::parse("partner-vpn", &["198.51.100.0/24"], false).expect("vpn"),
        ]
    }

    fn compile(ps: &[Policy]) -> CompiledPolicies {
        CompiledPolicies::compile(ps, &locations()).expect("compile")
    }

    fn member(name: &str) -> Subject {
        Subject {
            kind: SubjectKind::Member,
            name: name.into(),
            groups: Vec::new(),
            role_assignable_groups: Vec::new(),
            active_roles: Vec::new(),
            eligible_roles: Vec::new(),
            emergency: false,
        }
    }

    fn ctx(subject: Subject) -> SignInContext {
        SignInContext {
            subject,
            application: Application::Cli,
            ip: ip("203.0.113.9"),
            strength: AuthStrength::Password,
            authenticated_at: None,
            flow: None,
        }
    }

    fn names(ps: &[Arc<str>]) -> Vec<&str> {
        ps.iter().map(|p| &**p).collect()
    }

    fn applying(d: &Decision) -> Vec<&str> {
        d.explanation
            .iter()
            .filter(|e| e.applies())
            .map(|e| &*e.policy)
            .collect()
    }

    fn verdict<'a>(d: &'a Decision, policy: &str) -> &'a Verdict {
        &d.explanation
            .iter()
            .find(|e| &*e.policy == policy)
            .expect("explained")
            .verdict
    }

    #[test]
    fn block_wins_over_require() {
        let c = compile(&[
            simple("mfa for all", &["all"], json!({"require": "mfa"})),
            simple("block all", &["all"], json!({"block": true})),
            simple(
                "pr for all",
                &["all"],
                json!({"require": "phishing_resistant"}),
            ),
        ]);
        for strength in [AuthStrength::Password, AuthStrength::PhishingResistant] {
            let d = c.what_if(
                &SignInContext {
                    strength,
                    ..ctx(member("alice"))
                },
                t0(),
            );
            assert_eq!(
                d.outcome,
                Outcome::Block {
                    policies: vec![Arc::from("block all")]
                }
            );
        }
    }

    #[test]
    fn requirements_combine_and_the_strongest_wins() {
        let c = compile(&[
            simple("a mfa", &["all"], json!({"require": "mfa"})),
            simple(
                "b pr admins",
                &["group:admins"],
                json!({"require": "phishing_resistant"}),
            ),
            simple("c mfa", &["all"], json!({"require": "mfa"})),
        ]);
        let mut alice = member("alice");
        alice.groups = vec!["admins".into()];
        let at = |s: Subject, strength| {
            c.what_if(&SignInContext { strength, ..ctx(s) }, t0())
                .outcome
        };
        match at(alice.clone(), AuthStrength::Password) {
            Outcome::Require { strength, policies } => {
                assert_eq!(strength, AuthStrength::PhishingResistant);
                assert_eq!(names(&policies), ["a mfa", "b pr admins", "c mfa"]);
            }
            o => panic!("{o:?}"),
        }
        match at(alice.clone(), AuthStrength::Mfa) {
            Outcome::Require { strength, policies } => {
                assert_eq!(strength, AuthStrength::PhishingResistant);
                assert_eq!(names(&policies), ["b pr admins"]);
            }
            o => panic!("{o:?}"),
        }
        assert_eq!(at(alice, AuthStrength::PhishingResistant), Outcome::Allow);
        match at(member("bob"), AuthStrength::Password) {
            Outcome::Require { strength, policies } => {
                assert_eq!(strength, AuthStrength::Mfa);
                assert_eq!(names(&policies), ["a mfa", "c mfa"]);
            }
            o => panic!("{o:?}"),
        }
        assert_eq!(at(member("bob"), AuthStrength::Mfa), Outcome::Allow);
    }

    #[test]
    fn report_only_is_reported_but_never_enforced() {
        let c = compile(&[
            simple("mfa", &["all"], json!({"require": "mfa"})),
            policy(json!({"name": "trial block", "state": "report_only",
                "conditions": {"principals": {"include": ["all"]}}, "grant": {"block": true}})),
            policy(json!({"name": "trial pr", "state": "report_only",
                "conditions": {"principals": {"include": ["all"]}},
                "grant": {"require": "phishing_resistant"},
                "session": {"sign_in_frequency_hours": 1}})),
        ]);
        let d = c.what_if(
            &SignInContext {
                strength: AuthStrength::Mfa,
                authenticated_at: Some(t0() - Duration::hours(5)),
                ..ctx(member("alice"))
            },
            t0(),
        );
        assert_eq!(d.outcome, Outcome::Allow);
        assert_eq!(
            d.sign_in_frequency_hours, None,
            "report-only sets no frequency"
        );
        assert_eq!(
            d.report_only,
            [
                ReportOnlyResult {
                    policy: Arc::from("trial block"),
                    result: PolicyResult::Block
                },
                ReportOnlyResult {
                    policy: Arc::from("trial pr"),
                    result: PolicyResult::Require {
                        strength: AuthStrength::PhishingResistant
                    }
                },
            ]
        );
        assert_eq!(
            verdict(&d, "trial block"),
            &Verdict::Applies(PolicyResult::Block)
        );
        let v = serde_json::to_value(&d).expect("json");
        assert_eq!(
            v["report_only"][0],
            json!({"policy": "trial block", "effect": "block"})
        );
    }

    #[test]
    fn disabled_policies_are_skipped_but_explained() {
        let c = compile(&[policy(json!({"name": "off", "state": "disabled",
            "conditions": {"principals": {"include": ["all"]}}, "grant": {"block": true}}))]);
        let d = c.what_if(&ctx(member("alice")), t0());
        assert_eq!(d.outcome, Outcome::Allow);
        assert!(d.report_only.is_empty());
        assert_eq!(d.explanation.len(), 1);
        assert_eq!(verdict(&d, "off"), &Verdict::Disabled);
        assert_eq!(d.explanation[0].reason(), "disabled: not evaluated");
    }

    #[test]
    fn exclude_beats_include() {
        let c = compile(&[
            policy(json!({"name": "block but approvers", "state": "enabled",
                "conditions": {"principals": {"include": ["all"], "exclude": ["group:approvers"]}},
                "grant": {"block": true}})),
            policy(json!({"name": "admins but alice", "state": "enabled",
                "conditions": {"principals": {"include": ["group:approvers"], "exclude": ["user:alice"]}},
                "grant": {"block": true}})),
        ]);
        let mut alice = member("alice");
        alice.groups = vec!["approvers".into()];
        alice.role_assignable_groups = vec!["approvers".into()];
        let d = c.what_if(&ctx(alice), t0());
        assert_eq!(d.outcome, Outcome::Allow);
        assert_eq!(
            verdict(&d, "block but approvers"),
            &Verdict::Excluded {
                condition: ConditionKind::Principals,
                entry: Arc::from("group:approvers")
            }
        );
        assert_eq!(
            d.explanation[0].reason(),
            "principals: excluded by group:approvers"
        );
        assert!(matches!(
            verdict(&d, "admins but alice"),
            Verdict::Excluded { .. }
        ));
        let d = c.what_if(&ctx(member("bob")), t0());
        assert_eq!(names(d.outcome.policies()), ["block but approvers"]);
    }

    #[test]
    fn principals_match_users_groups_roles_guests_service_accounts_and_all() {
        let entries = [
            "all",
            "members",
            "guests",
            "service_accounts",
            "user:alice",
            "service_account:payroll",
            "group:ops",
            "role:global-administrator",
            "active_role:global-administrator",
        ];
        let ps: Vec<Policy> = entries
            .iter()
            .map(|e| simple(e, &[e], json!({"require": "mfa"})))
            .collect();
        let c = compile(&ps);

        let mut alice = member("alice");
        alice.groups = vec!["ops".into(), "unrelated".into()];
        alice.eligible_roles = vec!["global-administrator".into()];
        let d = c.what_if(&ctx(alice.clone()), t0());
        assert_eq!(
            applying(&d),
            [
                "all",
                "members",
                "user:alice",
                "group:ops",
                "role:global-administrator"
            ]
        );
        assert_eq!(
            verdict(&d, "guests"),
            &Verdict::NotIncluded(ConditionKind::Principals)
        );

        alice.eligible_roles.clear();
        alice.active_roles = vec!["global-administrator".into()];
        let d = c.what_if(&ctx(alice), t0());
        assert!(applying(&d).contains(&"active_role:global-administrator"));
        assert!(applying(&d).contains(&"role:global-administrator"));

        let guest = Subject {
            kind: SubjectKind::Guest,
            ..member("bob")
        };
        assert_eq!(applying(&c.what_if(&ctx(guest), t0())), ["all", "guests"]);

        // `all` means every user: a service account is matched only as one.
        let daemon = Subject {
            kind: SubjectKind::ServiceAccount,
            ..member("payroll")
        };
        assert_eq!(
            applying(&c.what_if(&ctx(daemon), t0())),
            ["service_accounts", "service_account:payroll"]
        );
        // A user named like a service account is not it, and vice versa.
        assert!(
            !applying(&c.what_if(&ctx(member("payroll")), t0()))
                .contains(&"service_account:payroll")
        );
    }

    #[test]
    fn locations_match_ipv4_ipv6_and_mapped_ipv4() {
        let c = compile(&[
            policy(json!({"name": "in office", "state": "enabled",
                "conditions": {"principals": {"include": ["all"]}, "locations": {"include": ["office"]}},
                "grant": {"require": "mfa"}})),
            policy(json!({"name": "outside office", "state": "enabled",
                "conditions": {"principals": {"include": ["all"]},
                               "locations": {"include": ["any"], "exclude": ["office"]}},
                "grant": {"block": true}})),
        ]);
        let at = |addr: &str| {
            let d = c.what_if(
                &SignInContext {
                    ip: ip(addr),
                    ..ctx(member("alice"))
                },
                t0(),
            );
            applying(&d)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        for inside in [
            "192.0.2.10",
            "2001:db8:1::5",
            "2001:db8:1:ffff::1",
            "::ffff:192.0.2.10",
        ] {
            assert_eq!(at(inside), ["in office"], "{inside}");
        }
        for outside in [
            "192.0.3.1",
            "10.0.0.1",
            "2001:db8:2::1",
            "::ffff:192.0.3.1",
            "::1",
        ] {
            assert_eq!(at(outside), ["outside office"], "{outside}");
        }
        let d = c.what_if(
            &SignInContext {
                ip: ip("192.0.2.10"),
                ..ctx(member("alice"))
            },
            t0(),
        );
        assert_eq!(
            verdict(&d, "outside office"),
            &Verdict::Excluded {
                condition: ConditionKind::Locations,
                entry: Arc::from("office")
            }
        );
    }

    #[test]
    fn trusted_and_untrusted_locations() {
        let c = compile(&[
            policy(json!({"name": "trusted", "state": "enabled",
                "conditions": {"principals": {"include": ["all"]}, "locations": {"include": ["trusted"]}},
                "grant": {"require": "mfa"}})),
            policy(json!({"name": "untrusted", "state": "enabled",
                "conditions": {"principals": {"include": ["all"]}, "locations": {"include": ["untrusted"]}},
                "grant": {"require": "mfa"}})),
            policy(json!({"name": "any but trusted", "state": "enabled",
                "conditions": {"principals": {"include": ["all"]},
                               "locations": {"include": ["any"], "exclude": ["trusted"]}},
                "grant": {"require": "mfa"}})),
        ]);
        let at = |addr: &str| {
            let d = c.what_if(
                &SignInContext {
                    ip: ip(addr),
                    ..ctx(member("alice"))
                },
                t0(),
            );
            applying(&d)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(at("192.0.2.1"), ["trusted"]);
        assert_eq!(at("2001:db8:1::1"), ["trusted"]);
        // Inside a named location that is not trusted, and outside every location.
        assert_eq!(at("198.51.100.7"), ["untrusted", "any but trusted"]);
        assert_eq!(at("203.0.113.1"), ["untrusted", "any but trusted"]);
    }

    #[test]
    fn applications_match() {
        let c = compile(&[
            policy(json!({"name": "cli", "state": "enabled",
                "conditions": {"principals": {"include": ["all"]}, "applications": {"include": ["cli"]}},
                "grant": {"require": "mfa"}})),
            policy(json!({"name": "api", "state": "enabled",
                "conditions": {"principals": {"include": ["all"]}, "applications": {"include": ["api"]}},
                "grant": {"require": "mfa"}})),
            policy(json!({"name": "wiki", "state": "enabled",
                "conditions": {"principals": {"include": ["all"]},
                               "applications": {"include": ["client:pcc_wiki"]}},
                "grant": {"require": "mfa"}})),
            policy(json!({"name": "all but cli", "state": "enabled",
                "conditions": {"principals": {"include": ["all"]},
                               "applications": {"include": ["all"], "exclude": ["cli"]}},
                "grant": {"require": "mfa"}})),
        ]);
        let at = |app: Application| {
            let d = c.what_if(
                &SignInContext {
                    application: app,
                    ..ctx(member("alice"))
                },
                t0(),
            );
            applying(&d)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(at(Application::Cli), ["cli"]);
        assert_eq!(at(Application::Api), ["api", "all but cli"]);
        assert_eq!(
            at(Application::Client("pcc_wiki".into())),
            ["wiki", "all but cli"]
        );
        assert_eq!(at(Application::Client("pcc_other".into())), ["all but cli"]);
        let d = c.what_if(&ctx(member("alice")), t0());
        assert_eq!(
            verdict(&d, "api"),
            &Verdict::NotIncluded(ConditionKind::Applications)
        );
    }

    #[test]
    fn strength_condition_matches_the_presented_strength() {
        let c = compile(&[policy(
            json!({"name": "no passwords from outside", "state": "enabled",
            "conditions": {"principals": {"include": ["all"]},
                           "locations": {"include": ["untrusted"]},
                           "strengths": {"include": ["password"]}},
            "grant": {"block": true}}),
        )]);
        let at = |strength, addr: &str| {
            c.what_if(
                &SignInContext {
                    strength,
                    ip: ip(addr),
                    ..ctx(member("alice"))
                },
                t0(),
            )
        };
        assert!(!at(AuthStrength::Password, "203.0.113.1").outcome.is_allow());
        assert!(at(AuthStrength::Password, "192.0.2.1").outcome.is_allow());
        let d = at(AuthStrength::Mfa, "203.0.113.1");
        assert!(d.outcome.is_allow());
        assert_eq!(
            verdict(&d, "no passwords from outside"),
            &Verdict::NotIncluded(ConditionKind::Strengths)
        );
        let with_exclude = spec(json!({"name": "x", "state": "enabled",
            "conditions": {"principals": {"include": ["all"]},
                           "strengths": {"include": ["password"], "exclude": ["mfa"]}},
            "grant": {"block": true}}));
        assert!(
            Policy::from_spec(&with_exclude)
                .expect_err("refused")
                .to_string()
                .contains("strengths take no exclude")
        );
    }

    #[test]
    fn sign_in_frequency_smallest_wins() {
        let c = compile(&[
            policy(json!({"name": "daily", "state": "enabled",
                "conditions": {"principals": {"include": ["all"]}},
                "session": {"sign_in_frequency_hours": 12}})),
            policy(json!({"name": "admins 4h", "state": "enabled",
                "conditions": {"principals": {"include": ["group:admins"]}},
                "grant": {"require": "mfa"},
                "session": {"sign_in_frequency_hours": 4}})),
        ]);
        let mut alice = member("alice");
        alice.groups = vec!["admins".into()];
        let at = |ago: Option<i64>, strength| {
            c.what_if(
                &SignInContext {
                    strength,
                    authenticated_at: ago.map(|h| t0() - Duration::hours(h)),
                    ..ctx(alice.clone())
                },
                t0(),
            )
        };
        let fresh = at(None, AuthStrength::Mfa);
        assert_eq!(fresh.outcome, Outcome::Allow);
        assert_eq!(fresh.sign_in_frequency_hours, Some(4));
        assert_eq!(at(Some(3), AuthStrength::Mfa).outcome, Outcome::Allow);
        assert_eq!(
            at(Some(4), AuthStrength::Mfa).outcome,
            Outcome::ReauthRequired {
                strength: AuthStrength::Mfa,
                max_age_hours: 4,
                policies: vec![Arc::from("admins 4h")]
            }
        );
        match at(Some(13), AuthStrength::Mfa).outcome {
            Outcome::ReauthRequired {
                max_age_hours,
                policies,
                ..
            } => {
                assert_eq!(max_age_hours, 4);
                assert_eq!(names(&policies), ["daily", "admins 4h"]);
            }
            o => panic!("{o:?}"),
        }
        // A missing requirement comes before re-authentication.
        assert!(matches!(
            at(Some(13), AuthStrength::Password).outcome,
            Outcome::Require { .. }
        ));
        let bob = c.what_if(
            &SignInContext {
                authenticated_at: Some(t0() - Duration::hours(5)),
                ..ctx(member("bob"))
            },
            t0(),
        );
        assert_eq!(bob.outcome, Outcome::Allow);
        assert_eq!(bob.sign_in_frequency_hours, Some(12));
    }

    #[test]
    fn break_glass_accounts_are_excluded_by_construction() {
        let c = compile(&[
            simple("block everyone", &["all"], json!({"block": true})),
            simple("block sos by name", &["user:sos-1"], json!({"block": true})),
            simple(
                "pr for admins",
                &["role:global-administrator"],
                json!({"require": "phishing_resistant"}),
            ),
        ]);
        let mut sos = member("sos-1");
        sos.active_roles = vec!["global-administrator".into()];
        let ordinary = c.what_if(&ctx(sos.clone()), t0());
        assert_eq!(
            names(ordinary.outcome.policies()),
            ["block everyone", "block sos by name"],
            "the policies would apply to the same account were it not break-glass"
        );

        sos.emergency = true;
        let d = c.what_if(&ctx(sos), t0());
        assert_eq!(d.outcome, Outcome::Allow);
        assert!(d.break_glass);
        assert_eq!(d.note, Some(BREAK_GLASS_EXPLANATION));
        assert_eq!(d.explanation.len(), 3);
        assert!(
            d.explanation
                .iter()
                .all(|e| e.verdict == Verdict::BreakGlass)
        );
        let v = serde_json::to_value(&d).expect("json");
        assert_eq!(v["outcome"], "allow");
        assert_eq!(
            v["explanation"][0]["reason"],
            "break-glass account: excluded from every policy"
        );
    }

    #[test]
    fn explanation_is_complete_for_what_if() {
        let c = compile(&[
            simple("applies", &["all"], json!({"require": "mfa"})),
            simple("other group", &["group:finance"], json!({"block": true})),
            policy(json!({"name": "trial", "state": "report_only",
                "conditions": {"principals": {"include": ["all"]}}, "grant": {"block": true}})),
            policy(json!({"name": "off", "state": "disabled",
                "conditions": {"principals": {"include": ["all"]}}, "grant": {"block": true}})),
        ]);
        let d = c.what_if(&ctx(member("alice")), t0());
        assert_eq!(d.explanation.len(), 4);
        let v = serde_json::to_value(&d).expect("json");
        assert_eq!(v["outcome"], "require");
        assert_eq!(v["strength"], "mfa");
        assert_eq!(v["policies"], json!(["applies"]));
        let e = &v["explanation"];
        assert_eq!(e[0]["applies"], true);
        assert_eq!(
            e[0]["result"],
            json!({"effect": "require", "strength": "mfa"})
        );
        assert_eq!(e[1]["applies"], false);
        assert_eq!(e[1]["condition"], "principals");
        assert_eq!(
            e[1]["reason"],
            "principals: the subject matches no included entry"
        );
        assert_eq!(e[2]["state"], "report_only");
        assert_eq!(e[2]["applies"], true);
        assert_eq!(e[3]["state"], "disabled");
        assert_eq!(e[3]["reason"], "disabled: not evaluated");
        for entry in e.as_array().expect("list") {
            assert!(entry["reason"].as_str().is_some_and(|r| !r.is_empty()));
        }
    }

    // --- lockout guard ---------------------------------------------------------------------

    fn admin(name: &str, active: bool, strongest: AuthStrength) -> AccountProfile {
        let mut s = member(name);
        if active {
            s.active_roles = vec!["global-administrator".into()];
        } else {
            s.eligible_roles = vec!["global-administrator".into()];
        }
        AccountProfile {
            subject: s,
            strongest,
        }
    }

    fn sos() -> AccountProfile {
        let mut a = admin("sos-1", true, AuthStrength::PhishingResistant);
        a.subject.emergency = true;
        a
    }

    fn admins() -> Vec<AccountProfile> {
        vec![
            admin("alice", true, AuthStrength::Mfa),
            admin("bob", false, AuthStrength::PhishingResistant),
            sos(),
        ]
    }

    fn caller() -> AccountProfile {
        AccountProfile {
            subject: Subject {
                groups: vec!["helpdesk".into()],
                ..member("carol")
            },
            strongest: AuthStrength::Mfa,
        }
    }

    fn guard(ps: &[Policy], locs: &[NamedLocation]) -> Result<(), LockoutError> {
        let c = CompiledPolicies::compile(ps, locs).expect("compile");
        check_lockout(&c, &["pcc_wiki".into()], &admins(), &caller())
    }

    #[test]
    fn lockout_guard_refuses_when_no_global_administrator_can_sign_in() {
        let e = guard(
            &[simple(
                "Block admins",
                &["role:global-administrator"],
                json!({"block": true}),
            )],
            &locations(),
        )
        .expect_err("refused");
        assert_eq!(
            e,
            LockoutError::NoGlobalAdministrator {
                accounts: vec!["alice".into(), "bob".into()],
                policies: vec!["Block admins".into()],
            }
        );
        assert!(!e.forcible());
        let text = e.to_string();
        assert!(
            text.contains("alice, bob") && text.contains("Block admins"),
            "{text}"
        );
        assert!(
            !text.contains("sos-1"),
            "break-glass accounts are not considered"
        );
    }

    #[test]
    fn lockout_guard_refuses_a_block_everyone_policy() {
        let e = guard(
            &[simple("Block everyone", &["all"], json!({"block": true}))],
            &[],
        )
        .expect_err("refused");
        assert!(
            matches!(e, LockoutError::NoGlobalAdministrator { ref policies, .. }
            if policies == &["Block everyone".to_owned()])
        );
        // And a policy with no conditions at all never gets this far.
        let spec: PolicySpec = serde_json::from_value(
            json!({"name": "Block everything", "state": "enabled", "grant": {"block": true}}),
        )
        .expect("spec");
        let err = Policy::from_spec(&spec).expect_err("refused").to_string();
        assert!(
            err.contains("conditions must name at least principals"),
            "{err}"
        );
    }

    #[test]
    fn lockout_guard_considers_the_strongest_factor_each_admin_has() {
        let pr = simple(
            "PR for admins",
            &["role:global-administrator"],
            json!({"require": "phishing_resistant"}),
        );
        // bob has a security key: fine.
        assert_eq!(guard(std::slice::from_ref(&pr), &locations()), Ok(()));
        // alice alone has only TOTP.
        let c = CompiledPolicies::compile(std::slice::from_ref(&pr), &locations()).expect("c");
        let e = check_lockout(
            &c,
            &[],
            &[admin("alice", true, AuthStrength::Mfa)],
            &caller(),
        )
        .expect_err("refused");
        assert_eq!(
            e,
            LockoutError::NoGlobalAdministrator {
                accounts: vec!["alice".into()],
                policies: vec!["PR for admins".into()],
            }
        );
    }

    #[test]
    fn lockout_guard_finds_the_one_network_or_application_left() {
        // Blocked everywhere except from the office.
        let outside = policy(
            json!({"name": "Block admins outside the office", "state": "enabled",
            "conditions": {"principals": {"include": ["role:global-administrator"]},
                           "locations": {"include": ["any"], "exclude": ["office"]}},
            "grant": {"block": true}}),
        );
        assert_eq!(guard(std::slice::from_ref(&outside), &locations()), Ok(()));
        // Blocked everywhere but in the trusted range nested inside an untrusted one.
        let nested = vec![
            NamedLocation::parse("campus", &["10.0.0.0/8"], false).expect("campus"),
            NamedLocation::parse("soc", &["10.1.0.0/16"], true).expect("soc"),
        ];
        let but_trusted = policy(json!({"name": "Only from trusted", "state": "enabled",
            "conditions": {"principals": {"include": ["all"]},
                           "locations": {"include": ["any"], "exclude": ["trusted"]}},
            "grant": {"block": true}}));
        assert_eq!(guard(std::slice::from_ref(&but_trusted), &nested), Ok(()));
        // With no trusted location at all it locks everyone out.
        assert!(guard(std::slice::from_ref(&but_trusted), &locations()[1..]).is_err());
        // Every IPv4 address blocked: IPv6 outside every location is still open.
        let v4 = vec![NamedLocation::parse("ipv4", &["0.0.0.0/0"], false).expect("v4")];
        let no_v4 = policy(json!({"name": "No IPv4", "state": "enabled",
            "conditions": {"principals": {"include": ["all"]}, "locations": {"include": ["ipv4"]}},
            "grant": {"block": true}}));
        assert_eq!(guard(std::slice::from_ref(&no_v4), &v4), Ok(()));
        // Everything blocked but one registered client.
        let but_wiki = policy(json!({"name": "Only the wiki", "state": "enabled",
            "conditions": {"principals": {"include": ["all"]},
                           "applications": {"include": ["all"], "exclude": ["client:pcc_wiki"]}},
            "grant": {"block": true}}));
        assert_eq!(guard(std::slice::from_ref(&but_wiki), &locations()), Ok(()));
        // Report-only and disabled policies lock nobody out.
        let trial = simple("Block all", &["all"], json!({"block": true}))
            .with_state(PolicyState::ReportOnly);
        assert_eq!(
            guard(
                &[trial.clone().with_state(PolicyState::Disabled), trial],
                &[]
            ),
            Ok(())
        );
    }

    #[test]
    fn probe_addresses_cover_each_location_and_the_outside() {
        let c = CompiledPolicies::compile(&[], &locations()).expect("compile");
        let probes = c.probe_addresses();
        for l in locations() {
            assert!(probes.iter().any(|p| l.contains(*p)), "{}", l.name());
        }
        let outside = |v6: bool| {
            probes
                .iter()
                .any(|p| p.is_ipv6() == v6 && locations().iter().all(|l| !l.contains(*p)))
        };
        assert!(outside(false) && outside(true));
        assert!(probes.contains(&ip("2001:db8:1::")) && probes.contains(&ip("2001:db8:2::")));
    }

    #[test]
    fn lockout_guard_refuses_a_caller_lockout_as_forcible() {
        let e = guard(
            &[simple(
                "Block helpdesk",
                &["group:helpdesk"],
                json!({"block": true}),
            )],
            &locations(),
        )
        .expect_err("refused");
        assert_eq!(
            e,
            LockoutError::CallerLockedOut {
                account: "carol".into(),
                policies: vec!["Block helpdesk".into()],
            }
        );
        assert!(e.forcible());
        assert!(e.to_string().contains("you (carol)"));
        // A break-glass caller is never locked out.
        let c = CompiledPolicies::compile(
            &[simple("Block everyone", &["all"], json!({"block": true}))],
            &[],
        )
        .expect("compile");
        assert_eq!(check_lockout(&c, &[], &[], &sos()), Ok(()));
        // When both happen, the unforcible one is reported.
        assert!(matches!(
            check_lockout(&c, &[], &admins(), &caller()),
            Err(LockoutError::NoGlobalAdministrator { .. })
        ));
    }

    // --- privilege rules 4 and 10, authentication flows -------------------------------------

    /// Rule 10: a role counts where it is held at `/` only; one held at a target or an
    /// application matches neither `role:` nor `active_role:`.
    #[test]
    fn a_role_held_below_the_tenant_matches_no_role_condition() {
        let c = compile(&[
            simple("GA", &["role:global-administrator"], json!({"block": true})),
            simple(
                "active DBA",
                &["active_role:db-operator"],
                json!({"block": true}),
            ),
        ]);
        let lab = member("lab-admin").with_roles([
            RoleHolding {
                role: "global-administrator",
                scope: "/targets/lab",
                active: false,
            },
            RoleHolding {
                role: "db-operator",
                scope: "/apps/billing",
                active: true,
            },
        ]);
        assert!(lab.active_roles.is_empty() && lab.eligible_roles.is_empty());
        assert!(!lab.holds("global-administrator"));
        assert_eq!(c.what_if(&ctx(lab), t0()).outcome, Outcome::Allow);
        let tenant = member("ada").with_roles([
            RoleHolding {
                role: "global-administrator",
                scope: "/",
                active: false,
            },
            RoleHolding {
                role: "db-operator",
                scope: "/",
                active: true,
            },
            RoleHolding {
                role: "db-operator",
                scope: "/targets/lab",
                active: true,
            },
        ]);
        assert_eq!(tenant.eligible_roles, ["global-administrator"]);
        assert_eq!(tenant.active_roles, ["db-operator"]);
        assert_eq!(
            names(c.what_if(&ctx(tenant), t0()).outcome.policies()),
            ["GA", "active DBA"]
        );
    }

    /// Finding 8: a Global Administrator eligible only at `/targets/lab` does not keep a
    /// policy that blocks every tenant-wide Global Administrator from being refused.
    #[test]
    fn lockout_guard_does_not_count_a_global_administrator_held_at_a_target() {
        let ada = AccountProfile {
            subject: member("ada").with_roles([RoleHolding {
                role: "global-administrator",
                scope: "/",
                active: true,
            }]),
            strongest: AuthStrength::PhishingResistant,
        };
        let lab_ga = AccountProfile {
            subject: member("bob").with_roles([RoleHolding {
                role: "global-administrator",
                scope: "/targets/lab",
                active: false,
            }]),
            strongest: AuthStrength::PhishingResistant,
        };
        let c = compile(&[policy(
            json!({"name": "everyone but bob", "state": "enabled",
            "conditions": {"principals": {"include": ["all"], "exclude": ["user:bob"]}},
            "grant": {"block": true}}),
        )]);
        // bob is handed over as a candidate (he holds a Global Administrator assignment) but
        // is not counted: only ada is, and she is blocked.
        assert_eq!(
            check_lockout(&c, &[], &[ada, lab_ga], &caller()),
            Err(LockoutError::NoGlobalAdministrator {
                accounts: vec!["ada".into()],
                policies: vec!["everyone but bob".into()],
            })
        );
    }

    /// Rule 4: membership of an ordinary group never excludes anyone (a stored policy from
    /// before the rule): the policy applies, and what-if says which exclusion was ignored.
    #[test]
    fn an_ordinary_exclusion_group_does_not_exclude() {
        let c = compile(&[policy(
            json!({"name": "block but helpdesk", "state": "enabled",
            "conditions": {"principals": {"include": ["all"], "exclude": ["group:helpdesk-staff"]}},
            "grant": {"block": true}}),
        )]);
        let mut alice = member("alice");
        alice.groups = vec!["helpdesk-staff".into()];
        let d = c.what_if(&ctx(alice.clone()), t0());
        assert_eq!(names(d.outcome.policies()), ["block but helpdesk"]);
        assert_eq!(
            c.evaluate(&ctx(alice.clone()), t0()).outcome,
            d.outcome,
            "enforced as explained"
        );
        let e = &d.explanation[0];
        assert_eq!(
            e.ignored_exclusions,
            [Arc::<str>::from("group:helpdesk-staff")]
        );
        assert!(
            e.reason()
                .contains("group:helpdesk-staff not applied: not a role-assignable group"),
            "{}",
            e.reason()
        );
        let v = serde_json::to_value(&d).expect("json");
        assert_eq!(
            v["explanation"][0]["ignored_exclusions"],
            json!(["group:helpdesk-staff"])
        );
        // A member of the same group when it is role-assignable is excluded.
        alice.role_assignable_groups = vec!["helpdesk-staff".into()];
        let d = c.what_if(&ctx(alice), t0());
        assert_eq!(d.outcome, Outcome::Allow);
        assert!(d.explanation[0].ignored_exclusions.is_empty());
        assert!(
            serde_json::to_value(&d).expect("json")["explanation"][0]
                .get("ignored_exclusions")
                .is_none()
        );
    }

    /// Rule 4 at import: an ordinary group in `principals.exclude` is refused with the reason;
    /// included it is fine; a stored policy excluding one does not block other changes.
    #[test]
    fn validation_refuses_an_ordinary_exclusion_group() {
        let ordinary = spec(json!({"name": "p", "state": "enabled",
            "conditions": {"principals": {"include": ["all"], "exclude": ["group:helpdesk-staff"]}},
            "grant": {"block": true}}));
        let e = validate_policies(std::slice::from_ref(&ordinary), &known())
            .expect_err("refused")
            .to_string();
        assert!(
            e.contains("principals.exclude: group \"helpdesk-staff\" is not role-assignable"),
            "{e}"
        );
        let included = spec(json!({"name": "q", "state": "enabled",
            "conditions": {"principals": {"include": ["group:helpdesk-staff"], "exclude": ["group:approvers"]}},
            "grant": {"require": "mfa"}}));
        assert!(validate_policies(std::slice::from_ref(&included), &known()).is_ok());
        // Kept as stored: accepted alongside a new policy; written anew: refused.
        let both = validate_change(
            std::slice::from_ref(&included),
            std::slice::from_ref(&ordinary),
            &known(),
        )
        .expect("a stored policy does not block the change");
        assert_eq!(
            both.iter().map(Policy::name).collect::<Vec<_>>(),
            ["q", "p"]
        );
        let e = validate_change(
            std::slice::from_ref(&ordinary),
            std::slice::from_ref(&included),
            &known(),
        )
        .expect_err("refused");
        assert_eq!(e.problems.len(), 1, "{e}");
        assert_eq!(e.problems[0].index, Some(0));
    }

    /// Rule 8: `authentication_flows: {include: [device_code]}` matches the device flow only.
    #[test]
    fn authentication_flows_match_the_device_flow_only() {
        let c = compile(&[policy(
            json!({"name": "no device flow for admins", "state": "enabled",
            "conditions": {"principals": {"include": ["role:global-administrator"]},
                           "authentication_flows": {"include": ["device_code"]}},
            "grant": {"block": true}}),
        )]);
        let ga = member("ada").with_roles([RoleHolding {
            role: "global-administrator",
            scope: "/",
            active: true,
        }]);
        let device = SignInContext {
            flow: Some(AuthenticationFlow::DeviceCode),
            ..ctx(ga.clone())
        };
        assert_eq!(
            names(c.what_if(&device, t0()).outcome.policies()),
            ["no device flow for admins"]
        );
        let api = SignInContext {
            application: Application::Api,
            strength: AuthStrength::Mfa,
            ..ctx(ga)
        };
        let d = c.what_if(&api, t0());
        assert_eq!(d.outcome, Outcome::Allow);
        assert_eq!(
            verdict(&d, "no device flow for admins"),
            &Verdict::NotIncluded(ConditionKind::AuthenticationFlows)
        );
        assert_eq!(
            d.explanation[0].reason(),
            "authentication_flows: the sign-in does not use an included flow"
        );
        // The context carries the flow in its serialised form (what-if input).
        let v = serde_json::to_value(&device).expect("json");
        assert_eq!(v["flow"], "device_code");
        assert_eq!(
            serde_json::from_value::<SignInContext>(v).expect("back"),
            device
        );
        // Malformed: an unknown flow, an exclude, nothing included.
        for (flows, needle) in [
            (
                json!({"include": ["magic_link"]}),
                "not an authentication flow",
            ),
            (
                json!({"include": ["device_code"], "exclude": ["device_code"]}),
                "take no exclude",
            ),
            (
                json!({"include": []}),
                "authentication_flows.include must name",
            ),
        ] {
            let e = Policy::from_spec(&spec(json!({"name": "f", "state": "enabled",
                "conditions": {"principals": {"include": ["all"]}, "authentication_flows": flows},
                "grant": {"block": true}})))
            .expect_err("refused")
            .to_string();
            assert!(e.contains(needle), "{needle:?} not in {e}");
        }
    }

    /// The guard probes each application by the flow that reaches it: blocking only the device
    /// flow leaves the API sign-in (no lock-out); blocking the API and, separately, the device
    /// flow leaves nothing.
    #[test]
    fn lockout_guard_probes_the_device_flow_and_the_api_sign_in() {
        let no_device = policy(json!({"name": "no device flow", "state": "enabled",
            "conditions": {"principals": {"include": ["role:global-administrator"]},
                           "authentication_flows": {"include": ["device_code"]}},
            "grant": {"block": true}}));
        let no_api = policy(json!({"name": "no api", "state": "enabled",
            "conditions": {"principals": {"include": ["role:global-administrator"]},
                           "applications": {"include": ["api"]}},
            "grant": {"block": true}}));
        let guard = |ps: &[Policy]| {
            let c = CompiledPolicies::compile(ps, &[]).expect("compile");
            check_lockout(&c, &[], &admins(), &caller())
        };
        assert_eq!(guard(std::slice::from_ref(&no_device)), Ok(()));
        assert_eq!(
            guard(std::slice::from_ref(&no_api)),
            Ok(()),
            "the CLI is left"
        );
        assert_eq!(
            guard(&[no_device, no_api]),
            Err(LockoutError::NoGlobalAdministrator {
                accounts: vec!["alice".into(), "bob".into()],
                policies: vec!["no api".into(), "no device flow".into()],
            })
        );
    }

    // --- validation, named locations --------------------------------------------------------

    fn known() -> KnownNames {
        let set = |xs: &[&str]| xs.iter().map(|s| (*s).to_owned()).collect();
        KnownNames {
            users: set(&["alice", "bob"]),
            service_accounts: set(&["payroll"]),
            groups: set(&["approvers", "admins", "helpdesk-staff"]),
            role_assignable_groups: set(&["approvers", "admins"]),
            roles: set(&["db-operator"]),
            clients: set(&["pcc_wiki"]),
            locations: set(&["office"]),
        }
    }

    fn spec(v: serde_json::Value) -> PolicySpec {
        serde_json::from_value(v).expect("spec")
    }

    #[test]
    fn validation_lists_every_unknown_name_at_once() {
        let e = validate_policies(
            &[spec(json!({"name": "p", "state": "enabled",
                "conditions": {
                    "principals": {"include": ["user:ghost", "group:nobody", "role:made-up",
                                               "service_account:cron", "user:alice",
                                               "role:global-administrator", "role:db-operator"],
                                   "exclude": ["group:aprovers"]},
                    "applications": {"include": ["client:pcc_gone", "cli"]},
                    "locations": {"include": ["nowhere", "office"]}},
                "grant": {"block": true}}))],
            &known(),
        )
        .expect_err("refused");
        assert_eq!(e.problems.len(), 7, "{e}");
        let text = e.to_string();
        for needle in [
            "unknown user \"ghost\"",
            "unknown group \"nobody\"",
            "unknown role \"made-up\"",
            "unknown service account \"cron\"",
            "unknown group \"aprovers\"",
            "unknown client \"pcc_gone\"",
            "unknown named location \"nowhere\"",
            "policy #1 \"p\"",
        ] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
    }

    #[test]
    fn validation_reports_every_malformed_entry_at_once() {
        let e = validate_policies(
            &[
                spec(json!({"name": " ", "state": "on",
                    "conditions": {
                        "principals": {"include": ["group:Bad Name", "wizard", "all"],
                                       "exclude": ["all"]},
                        "applications": {"include": ["desktop", "cli", "cli"]},
                        "locations": {"include": []},
                        "strengths": {"include": ["strong"]}},
                    "grant": {"require": "password"},
                    "session": {"sign_in_frequency_hours": 0}})),
                spec(
                    json!({"name": "no conditions", "state": "enabled", "grant": {"block": false}}),
                ),
                spec(json!({"name": "no controls", "state": "enabled",
                    "conditions": {"principals": {"include": ["all"]}}})),
            ],
            &known(),
        )
        .expect_err("refused");
        let text = e.to_string();
        for needle in [
            "name must not be empty",
            "state \"on\" is not one of enabled, report_only, disabled",
            "\"group:Bad Name\": group name",
            "\"wizard\" is not a principal",
            "\"all\" stands alone",
            "principals.exclude must not contain \"all\"",
            "\"desktop\" is not an application",
            "\"cli\" is listed more than once",
            "locations.include must name at least one entry (\"any\" for every one)",
            "\"strong\" is not a strength",
            "grant.require \"password\" is not one of mfa, phishing_resistant",
            "sign_in_frequency_hours must be between 1 and 8760, not 0",
            "policy #2 \"no conditions\": conditions must name at least principals",
            "\"block\": false is not a control",
            "policy #3 \"no controls\": a policy needs a grant control",
        ] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
    }

    #[test]
    fn duplicate_names_in_an_import_are_refused() {
        let text = r#"[
            {"name": "Require MFA", "state": "enabled",
             "conditions": {"principals": {"include": ["all"]}}, "grant": {"require": "mfa"}},
            {"name": "require mfa", "state": "disabled",
             "conditions": {"principals": {"include": ["all"]}}, "grant": {"require": "mfa"}}
        ]"#;
        let e = import_policies(text, PolicyFormat::Json, &known()).expect_err("refused");
        let ImportError::Invalid(e) = e else {
            panic!("{e:?}")
        };
        assert_eq!(e.problems.len(), 1);
        assert_eq!(e.problems[0].index, Some(1));
        assert!(e.problems[0].message.contains("already used by policy #1"));
    }

    #[test]
    fn unknown_fields_are_refused_in_json_and_yaml() {
        let json_text = r#"[
            {"name": "a", "state": "enabled", "colour": "red",
             "conditions": {"principals": {"include": ["all"]}}, "grant": {"block": true}},
            {"name": "b", "state": "enabled",
             "conditions": {"principal": {"include": ["all"]}}, "grant": {"block": true}}
        ]"#;
        let e = import_policies(json_text, PolicyFormat::Json, &known())
            .expect_err("refused")
            .to_string();
        assert!(e.contains("policy #1 \"a\": unknown field `colour`"), "{e}");
        assert!(
            e.contains("policy #2 \"b\": unknown field `principal`"),
            "{e}"
        );

        let yaml_text = "
- name: a
  state: enabled
  conditions:
    principals:
      include: [all]
      exclude_all: true
  grant:
    block: true
";
        let e = import_policies(yaml_text, PolicyFormat::Yaml, &known())
            .expect_err("refused")
            .to_string();
        assert!(e.contains("unknown field `exclude_all`"), "{e}");
        let e = parse_policy_specs("name: a\nstate: enabled\ngrnt: {}\n", PolicyFormat::Yaml)
            .expect_err("refused")
            .to_string();
        assert!(e.contains("unknown field `grnt`"), "{e}");
    }

    #[test]
    fn syntax_errors_and_shapes() {
        assert!(matches!(
            import_policies("{", PolicyFormat::Json, &known()),
            Err(ImportError::Syntax { .. })
        ));
        assert!(matches!(
            import_policies("42", PolicyFormat::Json, &known()),
            Err(ImportError::Syntax { .. })
        ));
        assert!(matches!(
            import_policies("- [unclosed", PolicyFormat::Yaml, &known()),
            Err(ImportError::Syntax { .. })
        ));
        let one = "name: One\nstate: enabled\nconditions:\n  principals:\n    include: [all]\ngrant:\n  require: mfa\n";
        let ps = import_policies(one, PolicyFormat::Yaml, &known()).expect("one");
        assert_eq!(ps.len(), 1);
        assert_eq!(
            ps[0].grant(),
            Some(GrantControl::Require(AuthStrength::Mfa))
        );
        assert_eq!(PolicyFormat::detect(" [ ]"), PolicyFormat::Json);
        assert_eq!(PolicyFormat::detect(one), PolicyFormat::Yaml);
        assert_eq!(
            PolicyFormat::from_extension("YML"),
            Some(PolicyFormat::Yaml)
        );
    }

    proptest::proptest! {
        /// Any text in any field: no panic, and whatever is accepted round-trips.
        #[test]
        fn arbitrary_entries_never_panic_and_accepted_ones_round_trip(
            state in "(enabled|report_only|disabled|[a-z_]{0,12})",
            principals in proptest::collection::vec(
                "(all|guests|members|service_accounts|(user|group|role|active_role|service_account|x):[a-z.\\-_A-Z0-9 ]{0,8})", 0..4),
            apps in proptest::collection::vec("(all|cli|api|client:[a-zA-Z0-9_.:\\- ]{0,6}|[a-z]{0,4})", 0..3),
            locs in proptest::collection::vec("(any|trusted|untrusted|[a-z\\-]{0,6}|[A-Z ]{0,3})", 0..3),
            require in "(mfa|phishing_resistant|password|[a-z]{0,5})",
            hours in proptest::option::of(0u32..10_000),
            flows in proptest::option::of(proptest::collection::vec("(device_code|[a-z_]{0,12})", 0..3)),
        ) {
            let spec = PolicySpec {
                name: "p".into(),
                description: None,
                state,
                conditions: Some(ConditionsSpec {
                    principals: Some(SelectionSpec { include: principals, exclude: Vec::new() }),
                    applications: Some(SelectionSpec { include: apps, exclude: Vec::new() }),
                    locations: Some(SelectionSpec { include: locs, exclude: Vec::new() }),
                    strengths: None,
                    authentication_flows: flows.map(|include| SelectionSpec { include, exclude: Vec::new() }),
                }),
                grant: Some(GrantSpec { block: None, require: Some(require) }),
                session: hours.map(|h| SessionSpec { sign_in_frequency_hours: Some(h) }),
            };
            if let Ok(p) = Policy::from_spec(&spec) {
                proptest::prop_assert_eq!(Policy::from_spec(&p.to_spec()), Ok(p));
            }
        }
    }

    #[test]
    fn the_documented_yaml_example_imports() {
        let yaml = "- name: Block admins outside the office
  state: enabled
  conditions:
    principals: {include: [role:global-administrator], exclude: [group:approvers]}
    locations: {include: [any], exclude: [office]}
  grant: {block: true}
";
        let ps = import_policies(yaml, PolicyFormat::Yaml, &known()).expect("valid");
        assert_eq!(ps[0].grant(), Some(GrantControl::Block));
        assert_eq!(
            ps[0].conditions().principals.exclude,
            [PrincipalRef::Group(
                PrincipalName::parse("g", "approvers").expect("name")
            )]
        );
    }

    fn rich_policies() -> Vec<Policy> {
        let text = r#"[
          {"name": "Block admins outside the office", "state": "enabled",
           "description": "Admins sign in from the office only.",
           "conditions": {"principals": {"include": ["role:global-administrator", "active_role:db-operator"],
                                         "exclude": ["group:approvers", "user:bob"]},
                          "applications": {"include": ["all"], "exclude": ["client:pcc_wiki"]},
                          "locations": {"include": ["any"], "exclude": ["office", "trusted"]},
                          "strengths": {"include": ["password", "mfa"]}},
           "grant": {"block": true}},
          {"name": "MFA for guests", "state": "report_only",
           "conditions": {"principals": {"include": ["guests", "service_account:payroll"]},
                          "applications": {"include": ["cli", "api"]},
                          "locations": {"include": ["untrusted"]},
                          "authentication_flows": {"include": ["device_code"]}},
           "grant": {"require": "phishing_resistant"},
           "session": {"sign_in_frequency_hours": 8}},
          {"name": "Daily re-auth", "state": "disabled",
           "conditions": {"principals": {"include": ["all"]}},
           "session": {"sign_in_frequency_hours": 24}}
        ]"#;
        import_policies(text, PolicyFormat::Json, &known()).expect("valid")
    }

    #[test]
    fn export_reimports_identically() {
        let policies = rich_policies();
        for format in [PolicyFormat::Json, PolicyFormat::Yaml] {
            let text = export_policies(&policies, format).expect("export");
            let again = import_policies(&text, format, &known()).expect("re-import");
            assert_eq!(again, policies, "{format}");
            assert_eq!(export_policies(&again, format).expect("export"), text);
        }
        // A Policy serialises as its file form and deserialises through validation.
        let v = serde_json::to_value(&policies[0]).expect("json");
        assert_eq!(v["grant"], json!({"block": true}));
        assert_eq!(
            serde_json::from_value::<Policy>(v).expect("back"),
            policies[0]
        );
        assert!(
            serde_json::from_value::<Policy>(json!({"name": "x", "state": "maybe",
            "conditions": {"principals": {"include": ["all"]}}, "grant": {"block": true}}))
            .is_err()
        );
    }

    #[test]
    fn named_locations_are_validated_and_references_found() {
        let e = NamedLocation::parse("Office", &["10.0.0.1/8", "x"], true)
            .expect_err("refused")
            .to_string();
        assert!(
            e.contains("location name must start with a lowercase letter"),
            "{e}"
        );
        assert!(
            e.contains("did you mean 10.0.0.0/8") && e.contains("\"x\""),
            "{e}"
        );
        let empty: [&str; 0] = [];
        assert!(NamedLocation::parse("nowhere", &empty, false).is_err());
        assert!(NamedLocation::parse("trusted", &["10.0.0.0/8"], false).is_err());
        let l: NamedLocation = serde_json::from_value(
            json!({"name": "lab", "cidrs": ["10.2.0.0/16"], "trusted": true}),
        )
        .expect("location");
        assert!(l.trusted() && l.contains(ip("::ffff:10.2.3.4")) && !l.contains(ip("10.3.0.1")));
        assert!(
            serde_json::from_value::<NamedLocation>(
                json!({"name": "lab", "cidrs": [], "extra": 1})
            )
            .is_err()
        );

        let policies = rich_policies();
        assert_eq!(
            policies_referencing_location(&policies, "office"),
            ["Block admins outside the office"]
        );
        assert!(policies_referencing_location(&policies, "partner-vpn").is_empty());

        let e = CompiledPolicies::compile(&policies, &[]).expect_err("unknown location");
        assert!(e.to_string().contains("unknown location \"office\""), "{e}");
        let twice = [locations()[0].clone(), locations()[0].clone()];
        assert!(CompiledPolicies::compile(&[], &twice).is_err());
    }

    #[test]
    fn context_and_application_serde() {
        let c: SignInContext = serde_json::from_value(json!({
            "subject": {"kind": "guest", "name": "eve", "groups": ["partners"]},
            "application": "client:pcc_wiki",
            "ip": "2001:db8::1",
            "strength": "mfa",
            "authenticated_at": "2026-01-01T10:00:00Z"
        }))
        .expect("context");
        assert_eq!(c.application, Application::Client("pcc_wiki".into()));
        assert!(c.authenticated_at.is_some());
        assert!(Application::parse("all").is_err());
        assert!(Application::parse("client:").is_err());
        assert_eq!(serde_json::to_value(Application::Cli).expect("json"), "cli");
    }
}
