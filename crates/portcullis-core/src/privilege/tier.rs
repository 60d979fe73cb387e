//! Tiers (rules 1 and 10): which roles are privileged or top tier, computed from permissions
//! only, and what an actor may hand out. Invariant: a custom role is classified exactly like a
//! built-in one with the same permissions, and only grants at `/` count at the tenant.

use crate::roles::perm;
use crate::roles::{BuiltinRole, Grant, Permission, Scope};

/// Permissions that make a role privileged (rule 1).
pub const PRIVILEGED_PERMISSIONS: &[&str] = &[
    // roles and their settings
    perm::ROLES_CREATE,
    perm::ROLES_DELETE,
    perm::ROLES_SETTINGS_UPDATE,
    // assignments, directly or through role-assignable groups
    perm::ASSIGNMENTS_CREATE,
    perm::ASSIGNMENTS_DELETE,
    perm::GROUPS_ROLE_ASSIGNABLE_UPDATE,
    // access reviews: their removals end assignments
    perm::REVIEWS_MANAGE,
    // conditional access, break-glass, keys, alert channels
    perm::CA_MANAGE,
    perm::BREAKGLASS_MANAGE,
    perm::KEYS_ROTATE,
    perm::ALERTS_MANAGE,
    // targets: binding a role to one decides what an activation grants in another system
    perm::TARGETS_MANAGE,
    // other principals' credentials and access: passwords of new users, disabling and
    // re-enabling, ending sessions, service-account secrets and keys, consent to application
    // permissions, relying parties and their secrets
    perm::USERS_CREATE,
    perm::USERS_UPDATE,
    perm::SESSIONS_REVOKE,
    perm::PRINCIPALS_CONTAIN,
    perm::SERVICE_ACCOUNTS_CREDENTIALS,
    perm::SERVICE_ACCOUNTS_CONSENT,
    perm::CLIENTS_MANAGE,
];

/// The permission whose holder is top tier: it assigns any role to anyone.
pub const TOP_TIER_PERMISSION: &str = perm::ASSIGNMENTS_CREATE;

/// How much a role (or an actor, by the roles they hold) can do to the tenant's privileges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Reads, or changes nothing that touches privileges or others' credentials.
    Ordinary,
    /// Changes roles, assignments, settings, policies, keys, channels or others' credentials.
    Privileged,
    /// Assigns roles (Global Administrator, Privileged Role Administrator, and any custom role
    /// with `assignments.create`).
    Top,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ordinary => "ordinary",
            Self::Privileged => "privileged",
            Self::Top => "top",
        }
    }

    pub fn is_privileged(self) -> bool {
        self >= Self::Privileged
    }
}

/// Whether one permission makes a role privileged.
pub fn is_privileged_permission(p: &str) -> bool {
    PRIVILEGED_PERMISSIONS.contains(&p)
}

impl BuiltinRole {
    /// The role's tier, computed from its permissions like any custom role's ([`tier_of`]).
    /// Defined here, with the tiers, so that `roles` does not depend on the privilege model.
    pub fn tier(self) -> Tier {
        tier_of(&self.permissions(), self.grants_everything())
    }
}

/// The tier of a role with `permissions` (`everything`: Global Administrator's every permission).
pub fn tier_of(permissions: &[Permission], everything: bool) -> Tier {
    if everything
        || permissions
            .iter()
            .any(|p| p.as_str() == TOP_TIER_PERMISSION)
    {
        Tier::Top
    } else if permissions
        .iter()
        .any(|p| is_privileged_permission(p.as_str()))
    {
        Tier::Privileged
    } else {
        Tier::Ordinary
    }
}

/// The highest tier among grants held at the tenant scope `/` itself. A role held at
/// `/targets/x` or `/apps/x` never counts as held at `/` (rule 10).
pub fn tier_at_tenant(grants: &[Grant]) -> Tier {
    let tenant = Scope::tenant();
    grants
        .iter()
        .filter(|g| g.scope == tenant)
        .map(|g| tier_of(&g.permissions, g.everything))
        .max()
        .unwrap_or(Tier::Ordinary)
}

/// The permissions of a role that an actor holding `grants` at the tenant cannot hand out:
/// empty when they may define or reconfigure it. Global Administrator's `everything` can only
/// be handed out by someone who has it.
pub fn missing_to_grant(
    grants: &[Grant],
    permissions: &[Permission],
    everything: bool,
) -> Vec<String> {
    let tenant = Scope::tenant();
    let held: Vec<&Grant> = grants.iter().filter(|g| g.scope == tenant).collect();
    if held.iter().any(|g| g.everything) {
        return Vec::new();
    }
    let mut missing: Vec<String> = permissions
        .iter()
        .filter(|p| !held.iter().any(|g| g.permissions.contains(p)))
        .map(|p| p.as_str().to_owned())
        .collect();
    if everything {
        missing.insert(0, "every permission (Global Administrator)".to_owned());
    }
    missing
}
