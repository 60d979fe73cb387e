//! The policy file form ([`PolicySpec`]) and the validated [`Policy`] with its references.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::principal::PrincipalName;
use crate::session::AuthStrength;

use super::*;

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

pub(super) fn parse_flow_entry(s: &str) -> Result<AuthenticationFlow, String> {
    AuthenticationFlow::parse(s)
        .ok_or_else(|| format!("{s:?} is not an authentication flow (use device_code)"))
}

pub(super) fn parse_strength_entry(s: &str) -> Result<AuthStrength, String> {
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
    pub(super) name: String,
    pub(super) description: Option<String>,
    pub(super) state: PolicyState,
    pub(super) conditions: Conditions,
    pub(super) grant: Option<GrantControl>,
    pub(super) sign_in_frequency_hours: Option<u32>,
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
