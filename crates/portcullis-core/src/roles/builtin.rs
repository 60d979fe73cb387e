//! The built-in roles and the names custom roles take. Invariant: built-in roles are code, not
//! data, and a custom role can never take a built-in name.

use serde::{Deserialize, Serialize};

use super::RoleError;
use super::permission::{CATALOGUE, Permission, catalogue, perm};

/// The built-in roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuiltinRole {
    GlobalAdministrator,
    PrivilegedRoleAdministrator,
    SecurityAdministrator,
    SecurityReader,
    AuditReader,
    HelpdeskAdministrator,
    ServiceAdministrator,
}

impl BuiltinRole {
    pub const ALL: [BuiltinRole; 7] = [
        Self::GlobalAdministrator,
        Self::PrivilegedRoleAdministrator,
        Self::SecurityAdministrator,
        Self::SecurityReader,
        Self::AuditReader,
        Self::HelpdeskAdministrator,
        Self::ServiceAdministrator,
    ];

    pub fn slug(self) -> &'static str {
        match self {
            Self::GlobalAdministrator => "global-administrator",
            Self::PrivilegedRoleAdministrator => "privileged-role-administrator",
            Self::SecurityAdministrator => "security-administrator",
            Self::SecurityReader => "security-reader",
            Self::AuditReader => "audit-reader",
            Self::HelpdeskAdministrator => "helpdesk-administrator",
            Self::ServiceAdministrator => "service-administrator",
        }
    }

    pub fn display_name(self) -> &'static str {
        match self {
            Self::GlobalAdministrator => "Global Administrator",
            Self::PrivilegedRoleAdministrator => "Privileged Role Administrator",
            Self::SecurityAdministrator => "Security Administrator",
            Self::SecurityReader => "Security Reader",
            Self::AuditReader => "Audit Reader",
            Self::HelpdeskAdministrator => "Helpdesk Administrator",
            Self::ServiceAdministrator => "Service Administrator",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::GlobalAdministrator => {
                "Everything, including every application and target permission."
            }
            Self::PrivilegedRoleAdministrator => {
                "Roles, their settings, assignments, requests and role-assignable groups."
            }
            Self::SecurityAdministrator => {
                "Audit log, sign-in state of users and sessions, revoking grants; reads the rest."
            }
            Self::SecurityReader => "Reads everything the API shows; changes nothing.",
            Self::AuditReader => "Reads and verifies the audit log.",
            Self::HelpdeskAdministrator => {
                "Disables and enables users, revokes sessions, manages ordinary groups."
            }
            Self::ServiceAdministrator => "Service accounts.",
        }
    }

    pub fn from_slug(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.slug() == s)
    }

    /// The documented permission set.
    pub fn permissions(self) -> Vec<Permission> {
        match self.listed() {
            Some(names) => catalogue(names),
            None if self == Self::SecurityReader => CATALOGUE
                .iter()
                .filter_map(|(p, _)| Permission::parse(p).ok())
                .filter(Permission::is_read)
                .collect(),
            None => catalogue(&CATALOGUE.iter().map(|(p, _)| *p).collect::<Vec<_>>()),
        }
    }

    /// The names of the permissions of a role defined by a list (not Global Administrator or
    /// Security Reader, which follow the catalogue).
    pub(super) fn listed(self) -> Option<&'static [&'static str]> {
        Some(match self {
            Self::GlobalAdministrator | Self::SecurityReader => return None,
            Self::PrivilegedRoleAdministrator => &[
                perm::ROLES_READ,
                perm::ROLES_CREATE,
                perm::ROLES_DELETE,
                perm::ROLES_SETTINGS_UPDATE,
                perm::ASSIGNMENTS_READ,
                perm::ASSIGNMENTS_CREATE,
                perm::ASSIGNMENTS_DELETE,
                perm::REQUESTS_READ,
                perm::REQUESTS_REVOKE,
                perm::GROUPS_READ,
                perm::GROUPS_ROLE_ASSIGNABLE_UPDATE,
                perm::USERS_READ,
                perm::PRINCIPALS_CONTAIN,
                perm::REVIEWS_READ,
                perm::REVIEWS_MANAGE,
            ],
            Self::SecurityAdministrator => &[
                perm::POSTURE_READ,
                perm::REVIEWS_READ,
                perm::BREAKGLASS_READ,
                perm::CA_READ,
                perm::CA_MANAGE,
                perm::ALERTS_READ,
                perm::ALERTS_MANAGE,
                perm::AUDIT_READ,
                perm::AUDIT_CHECKPOINT,
                perm::KEYS_READ,
                perm::KEYS_ROTATE,
                perm::USERS_READ,
                perm::USERS_UPDATE,
                perm::SESSIONS_READ,
                perm::SESSIONS_REVOKE,
                perm::GROUPS_READ,
                perm::SERVICE_ACCOUNTS_READ,
                perm::CLIENTS_READ,
                perm::ROLES_READ,
                perm::ASSIGNMENTS_READ,
                perm::REQUESTS_READ,
                perm::REQUESTS_REVOKE,
            ],
            Self::AuditReader => &[perm::AUDIT_READ],
            Self::HelpdeskAdministrator => &[
                perm::USERS_READ,
                perm::USERS_UPDATE,
                perm::SESSIONS_READ,
                perm::SESSIONS_REVOKE,
                perm::GROUPS_READ,
                perm::GROUPS_MEMBERS_UPDATE,
            ],
            Self::ServiceAdministrator => &[
                perm::SERVICE_ACCOUNTS_READ,
                perm::SERVICE_ACCOUNTS_CREATE,
                perm::SERVICE_ACCOUNTS_CREDENTIALS,
                perm::CLIENTS_READ,
                perm::CLIENTS_MANAGE,
                perm::USERS_READ,
            ],
        })
    }

    /// Only Global Administrator also holds every free-form permission.
    pub fn grants_everything(self) -> bool {
        self == Self::GlobalAdministrator
    }
}

/// The name of a custom role.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoleName(String);

impl RoleName {
    pub fn parse(s: &str) -> Result<Self, RoleError> {
        let b = s.as_bytes();
        let ok = (2..=64).contains(&b.len())
            && b[0].is_ascii_lowercase()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
        if !ok {
            return Err(RoleError::BadRoleName(s.chars().take(80).collect()));
        }
        // The membership pseudo-role is reserved like a built-in name.
        if BuiltinRole::from_slug(s).is_some() || s == super::GROUP_MEMBER {
            return Err(RoleError::BuiltinName(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RoleName {
    type Error = RoleError;
    fn try_from(s: String) -> Result<Self, RoleError> {
        Self::parse(&s)
    }
}

impl From<RoleName> for String {
    fn from(r: RoleName) -> String {
        r.0
    }
}
