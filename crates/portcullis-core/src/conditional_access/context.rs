//! The sign-in context, the [`Decision`] and its explanation.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use time::OffsetDateTime;

use crate::session::AuthStrength;

use super::*;

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
