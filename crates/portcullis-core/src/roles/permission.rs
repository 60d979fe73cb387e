//! Permissions: the API's own catalogue ([`perm`], [`CATALOGUE`]) and free-form application and
//! target permissions. Invariant: nothing else parses as a [`Permission`].

use serde::{Deserialize, Serialize};

use super::{RoleError, is_slug};

/// The API's own permissions: a constant each (in [`perm`], so a misspelt permission does not
/// compile) and the catalogue of them with what each allows.
macro_rules! permission_catalogue {
    ($($konst:ident = $name:literal: $what:literal,)*) => {
        /// The API's own permissions by name.
        pub mod perm {
            $(
                #[doc = $what]
                pub const $konst: &str = $name;
            )*
        }

        /// The API's own permissions, with what each allows.
        pub const CATALOGUE: &[(&str, &str)] = &[$((perm::$konst, $what)),*];
    };
}

permission_catalogue! {
    AUDIT_READ = "audit.read": "read and verify the audit log",
    AUDIT_CHECKPOINT = "audit.checkpoint": "write a signed audit checkpoint",
    POSTURE_READ = "posture.read": "read the posture report (SCuBA and PIM checks of this tenant)",
    KEYS_READ = "keys.read": "list the token signing keys",
    KEYS_ROTATE = "keys.rotate": "rotate the token signing key",
    USERS_READ = "users.read": "list and show users",
    USERS_CREATE = "users.create": "create users",
    USERS_UPDATE = "users.update": "disable and enable users",
    SESSIONS_READ = "sessions.read": "list anyone's sessions",
    SESSIONS_REVOKE = "sessions.revoke": "revoke anyone's sessions",
    PRINCIPALS_CONTAIN = "principals.contain": "contain a principal in one step (disable it, cut every session, token, request and grant) and end a containment",
    GROUPS_READ = "groups.read": "list and show groups",
    GROUPS_CREATE = "groups.create": "create groups",
    GROUPS_MEMBERS_UPDATE = "groups.members.update": "change the membership of ordinary groups",
    GROUPS_ROLE_ASSIGNABLE_UPDATE = "groups.role_assignable.update": "create role-assignable groups and change their membership",
    SERVICE_ACCOUNTS_READ = "service_accounts.read": "list service accounts",
    SERVICE_ACCOUNTS_CREATE = "service_accounts.create": "create service accounts",
    SERVICE_ACCOUNTS_CREDENTIALS = "service_accounts.credentials": "add and remove service-account client secrets and keys",
    SERVICE_ACCOUNTS_CONSENT = "service_accounts.consent": "consent to application permissions for a service account",
    CLIENTS_READ = "clients.read": "list and show registered OpenID Connect clients",
    CLIENTS_MANAGE = "clients.manage": "register and delete OpenID Connect clients and their secrets",
    ROLES_READ = "roles.read": "list roles and their settings",
    ROLES_CREATE = "roles.create": "create custom roles",
    ROLES_DELETE = "roles.delete": "delete custom roles",
    ROLES_SETTINGS_UPDATE = "roles.settings.update": "change role settings",
    ASSIGNMENTS_READ = "assignments.read": "list everyone's assignments",
    ASSIGNMENTS_CREATE = "assignments.create": "assign roles",
    ASSIGNMENTS_DELETE = "assignments.delete": "remove assignments",
    REQUESTS_READ = "requests.read": "list everyone's activation requests",
    REQUESTS_REVOKE = "requests.revoke": "end someone else's active grant",
    CA_READ = "ca.read": "list conditional-access policies and named locations; what-if",
    CA_MANAGE = "ca.manage": "change conditional-access policies and named locations",
    BREAKGLASS_READ = "breakglass.read": "list break-glass accounts, their custodians and drills",
    BREAKGLASS_MANAGE = "breakglass.manage": "create break-glass accounts and re-split their credentials",
    ALERTS_READ = "alerts.read": "list alert channels, rules and deliveries",
    ALERTS_MANAGE = "alerts.manage": "add and remove alert channels and rules; retry deliveries",
    TOKENS_INTROSPECT = "tokens.introspect": "introspect access tokens issued to other clients (resource servers)",
    TARGETS_READ = "targets.read": "list targets, their bindings and operations; observe a target",
    REVIEWS_READ = "reviews.read": "list access reviews, their rounds and every decision",
    REVIEWS_MANAGE = "reviews.manage": "create, start, close and delete access reviews (their removals end assignments)",
    TARGETS_MANAGE = "targets.manage": "add, remove and test targets; bind roles to them; reconcile; retry operations",
}

/// A permission: from the catalogue, or free-form for an application or target.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Permission(String);

impl Permission {
    pub fn parse(s: &str) -> Result<Self, RoleError> {
        if CATALOGUE.iter().any(|(p, _)| *p == s) {
            return Ok(Self(s.to_owned()));
        }
        let free = s
            .strip_prefix("app:")
            .or_else(|| s.strip_prefix("target:"))
            .and_then(|rest| rest.split_once('.'))
            .is_some_and(|(name, action)| {
                is_slug(name, 63) && !name.contains(['.', '_']) && is_slug(action, 63)
            });
        if free {
            Ok(Self(s.to_owned()))
        } else {
            Err(RoleError::UnknownPermission(s.chars().take(80).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(super) fn is_read(&self) -> bool {
        self.0.ends_with(".read") && !self.0.contains(':')
    }
}

impl TryFrom<String> for Permission {
    type Error = RoleError;
    fn try_from(s: String) -> Result<Self, RoleError> {
        Self::parse(&s)
    }
}

impl From<Permission> for String {
    fn from(p: Permission) -> String {
        p.0
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub(super) fn catalogue(names: &[&str]) -> Vec<Permission> {
    names
        .iter()
        .filter_map(|n| Permission::parse(n).ok())
        .collect()
}
