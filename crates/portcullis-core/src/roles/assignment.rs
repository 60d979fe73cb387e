//! Where and how a role applies: assignment kinds, scopes and the grants in effect. Invariant:
//! a role assigned at a scope applies there and below, and `/` contains every scope.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::permission::Permission;
use super::{RoleError, is_slug};

/// Whether an assignment grants its role standing (`active`) or only lets the holder activate
/// it just in time (`eligible`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignmentKind {
    Eligible,
    Active,
}

impl AssignmentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eligible => "eligible",
            Self::Active => "active",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "eligible" => Some(Self::Eligible),
            "active" => Some(Self::Active),
            _ => None,
        }
    }
}

impl std::fmt::Display for AssignmentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The pseudo-role of just-in-time group membership (PIM for Groups): an eligible assignment of
/// it at `/groups/NAME` lets its holder activate membership of role-assignable group `NAME`
/// like a role. It grants no permission itself; the active membership does what permanent
/// membership does. No custom role may take the name.
pub const GROUP_MEMBER: &str = "group-member";

/// Where a role applies: `/`, `/targets/NAME` or `/apps/NAME`; and `/groups/NAME`, where only
/// [`GROUP_MEMBER`] is assigned.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Scope(String);

impl Scope {
    pub fn tenant() -> Self {
        Self("/".to_owned())
    }

    pub fn parse(s: &str) -> Result<Self, RoleError> {
        if s == "/" {
            return Ok(Self::tenant());
        }
        let name = s
            .strip_prefix("/targets/")
            .or_else(|| s.strip_prefix("/apps/"))
            .or_else(|| s.strip_prefix("/groups/"));
        match name {
            Some(n) if is_slug(n, 63) => Ok(Self(s.to_owned())),
            _ => Err(RoleError::BadScope(s.chars().take(80).collect())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The group of a `/groups/NAME` scope (where membership is activated).
    pub fn group(&self) -> Option<&str> {
        self.0.strip_prefix("/groups/")
    }

    /// Whether a role assigned here applies at `other` (here and below).
    pub fn contains(&self, other: &Scope) -> bool {
        self.0 == "/" || self.0 == other.0
    }
}

impl TryFrom<String> for Scope {
    type Error = RoleError;
    fn try_from(s: String) -> Result<Self, RoleError> {
        Self::parse(&s)
    }
}

impl From<Scope> for String {
    fn from(s: Scope) -> String {
        s.0
    }
}

/// A grant in effect: a role's permissions at a scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub role: String,
    pub permissions: Vec<Permission>,
    /// Global Administrator: every permission, free-form ones included.
    pub everything: bool,
    pub scope: Scope,
    pub ends_at: Option<OffsetDateTime>,
}

/// Whether `grants` hold `permission` at `scope`.
pub fn permits(grants: &[Grant], permission: &str, scope: &Scope) -> bool {
    grants.iter().any(|g| {
        g.scope.contains(scope)
            && (g.everything || g.permissions.iter().any(|p| p.as_str() == permission))
    })
}
