//! Roles, permissions, scopes and role settings.
//!
//! Invariants:
//! - A permission is either one of the API's own (`CATALOGUE`) or a free-form application or
//!   target permission (`app:NAME.ACTION`, `target:NAME.ACTION`); nothing else parses.
//! - Built-in roles are code, not data: they cannot be edited or deleted, and a custom role
//!   cannot take a built-in name.
//! - A role assigned at a scope applies there and below: `/` contains every scope.
//! - Role settings never let a role be activated with a password alone (at least `mfa`), and
//!   approval without an approver is refused.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::session::AuthStrength;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    #[error(
        "unknown permission {0:?} (see the catalogue, or use app:NAME.ACTION / target:NAME.ACTION)"
    )]
    UnknownPermission(String),
    #[error(
        "role name {0:?} must be 2 to 64 lowercase letters, digits or '-', starting with a letter"
    )]
    BadRoleName(String),
    #[error("{0} is a built-in role; built-in roles cannot be redefined")]
    BuiltinName(String),
    #[error("scope {0:?} must be /, /targets/NAME or /apps/NAME")]
    BadScope(String),
    #[error(
        "duration {0:?} must be a positive number with a unit: 90s, 15m, 8h or 30d (at most 3650d)"
    )]
    BadDuration(String),
    #[error("invalid role settings: {0}")]
    BadSettings(String),
}

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
    KEYS_READ = "keys.read": "list the token signing keys",
    KEYS_ROTATE = "keys.rotate": "rotate the token signing key",
    USERS_READ = "users.read": "list and show users",
    USERS_CREATE = "users.create": "create users",
    USERS_UPDATE = "users.update": "disable and enable users",
    SESSIONS_READ = "sessions.read": "list anyone's sessions",
    SESSIONS_REVOKE = "sessions.revoke": "revoke anyone's sessions",
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
}

fn is_slug(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'.' | b'_')
        })
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

    fn is_read(&self) -> bool {
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

fn catalogue(names: &[&str]) -> Vec<Permission> {
    names
        .iter()
        .filter_map(|n| Permission::parse(n).ok())
        .collect()
}

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
    fn listed(self) -> Option<&'static [&'static str]> {
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
            ],
            Self::SecurityAdministrator => &[
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
        if BuiltinRole::from_slug(s).is_some() {
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

/// Where a role applies: `/`, `/targets/NAME` or `/apps/NAME`.
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
            .or_else(|| s.strip_prefix("/apps/"));
        match name {
            Some(n) if is_slug(n, 63) => Ok(Self(s.to_owned())),
            _ => Err(RoleError::BadScope(s.chars().take(80).collect())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
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

const MAX_DAYS: i64 = 3650;

/// `90s`, `15m`, `8h`, `30d`.
pub fn parse_duration(s: &str) -> Result<Duration, RoleError> {
    let bad = || RoleError::BadDuration(s.chars().take(40).collect());
    // Split before the last character (not byte): a multi-byte unit is refused, never a panic.
    let cut = s.char_indices().last().map_or(0, |(i, _)| i);
    let (digits, unit) = s.split_at(cut);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => None,
    }
    .ok_or_else(bad)?;
    if secs <= 0 || secs > MAX_DAYS * 86_400 {
        return Err(bad());
    }
    Ok(Duration::seconds(secs))
}

/// The largest exact unit: 3600 s → `1h`, 90 s → `90s`.
pub fn format_duration(d: Duration) -> String {
    let s = d.whole_seconds();
    if s != 0 && s % 86_400 == 0 {
        format!("{}d", s / 86_400)
    } else if s != 0 && s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s != 0 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

mod strength_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::session::AuthStrength;

    pub fn serialize<S: Serializer>(s: &AuthStrength, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<AuthStrength, D::Error> {
        let s = String::deserialize(de)?;
        AuthStrength::parse(&s).ok_or_else(|| serde::de::Error::custom("unknown strength"))
    }
}

/// How a role may be assigned and activated. Durations in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSettings {
    pub max_activation: i64,
    #[serde(with = "strength_serde")]
    pub required_strength: AuthStrength,
    pub require_justification: bool,
    pub require_ticket: bool,
    pub require_approval: bool,
    /// `user:NAME` or `group:NAME`.
    pub approvers: Vec<String>,
    pub approvals_required: u32,
    /// None: permanent eligible assignments allowed.
    pub max_eligible_seconds: Option<i64>,
    /// None: no limit on active assignments' duration.
    pub max_active_seconds: Option<i64>,
    pub allow_permanent_active: bool,
    /// `user:NAME`, `group:NAME` or an email address.
    pub notify: Vec<String>,
}

impl RoleSettings {
    /// The defaults: 8 h activations (1 h for Global Administrator), `mfa` (`phishing_resistant`
    /// for Global and Privileged Role Administrator), justification required, no ticket,
    /// approval only for Global Administrator, active assignments at most 180 days and never
    /// permanent.
    pub fn defaults_for(role: Option<BuiltinRole>) -> Self {
        use BuiltinRole::*;
        let ga = role == Some(GlobalAdministrator);
        let strong = matches!(
            role,
            Some(GlobalAdministrator | PrivilegedRoleAdministrator)
        );
        Self {
            max_activation: if ga { 3600 } else { 8 * 3600 },
            required_strength: if strong {
                AuthStrength::PhishingResistant
            } else {
                AuthStrength::Mfa
            },
            require_justification: true,
            require_ticket: false,
            require_approval: ga,
            approvers: Vec::new(),
            approvals_required: 1,
            max_eligible_seconds: None,
            max_active_seconds: Some(180 * 86_400),
            allow_permanent_active: false,
            notify: Vec::new(),
        }
    }

    pub fn validate(&self) -> Result<(), RoleError> {
        let bad = |m: &str| Err(RoleError::BadSettings(m.to_owned()));
        if !(60..=86_400).contains(&self.max_activation) {
            return bad("maximum activation must be between 1 minute and 24 hours");
        }
        // A role is never activated on a password alone: that would make "JIT with MFA" moot.
        if self.required_strength < AuthStrength::Mfa {
            return bad("required strength must be mfa or phishing_resistant");
        }
        if !(1..=10).contains(&self.approvals_required) {
            return bad("approvals required must be between 1 and 10");
        }
        if self.require_approval && self.approvers.is_empty() {
            return bad("approval is required but no approver is named");
        }
        for d in [self.max_eligible_seconds, self.max_active_seconds]
            .into_iter()
            .flatten()
        {
            if d <= 0 {
                return bad("maximum assignment durations must be positive");
            }
        }
        for a in &self.approvers {
            let ok = a
                .split_once(':')
                .filter(|(k, _)| *k == "user" || *k == "group")
                .is_some_and(|(_, n)| {
                    crate::principal::PrincipalName::parse("approver", n).is_ok()
                });
            if !ok {
                return Err(RoleError::BadSettings(format!(
                    "approver {a:?} must be user:NAME or group:NAME"
                )));
            }
        }
        for n in &self.notify {
            let ok = match n.split_once(':') {
                Some((k, name)) if k == "user" || k == "group" => {
                    crate::principal::PrincipalName::parse("recipient", name).is_ok()
                }
                _ => crate::principal::parse_email(n).is_ok(),
            };
            if !ok {
                return Err(RoleError::BadSettings(format!(
                    "notify entry {n:?} must be user:NAME, group:NAME or an email address"
                )));
            }
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Each permission of the catalogue once, each a valid permission, each constant in it.
    #[test]
    fn the_catalogue_names_each_permission_once() {
        let names: Vec<&str> = CATALOGUE.iter().map(|(p, _)| *p).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "a permission is listed twice");
        for p in &names {
            assert!(Permission::parse(p).is_ok(), "{p}");
        }
        for p in [
            perm::AUDIT_READ,
            perm::GROUPS_ROLE_ASSIGNABLE_UPDATE,
            perm::TOKENS_INTROSPECT,
        ] {
            assert!(names.contains(&p), "{p}");
        }
    }

    #[test]
    fn permissions_parse_from_catalogue_or_free_form() {
        for ok in [
            perm::AUDIT_READ,
            "app:payroll.admin",
            "target:prod-db.connect",
            "app:x.y.z",
        ] {
            assert!(Permission::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "audit",
            "audit.write",
            "app:",
            "app:payroll",
            "app:Pay.admin",
            "app:.x",
            "user:x.y",
            "app:a b.c",
            "target:x.Y",
        ] {
            assert!(Permission::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn builtin_permission_sets() {
        let has = |r: BuiltinRole, p: &str| {
            permits(
                &[Grant {
                    role: r.slug().into(),
                    permissions: r.permissions(),
                    everything: r.grants_everything(),
                    scope: Scope::tenant(),
                    ends_at: None,
                }],
                p,
                &Scope::tenant(),
            )
        };
        assert!(has(BuiltinRole::GlobalAdministrator, perm::USERS_CREATE));
        assert!(has(BuiltinRole::GlobalAdministrator, "app:payroll.admin"));
        assert!(has(BuiltinRole::AuditReader, perm::AUDIT_READ));
        assert!(!has(BuiltinRole::AuditReader, perm::USERS_CREATE));
        assert!(!has(
            BuiltinRole::PrivilegedRoleAdministrator,
            "app:payroll.admin"
        ));
        assert!(has(
            BuiltinRole::PrivilegedRoleAdministrator,
            perm::GROUPS_ROLE_ASSIGNABLE_UPDATE
        ));
        assert!(!has(
            BuiltinRole::HelpdeskAdministrator,
            perm::GROUPS_ROLE_ASSIGNABLE_UPDATE
        ));
        assert!(has(BuiltinRole::SecurityReader, perm::ROLES_READ));
        assert!(!has(BuiltinRole::SecurityReader, perm::ROLES_CREATE));
        assert!(!BuiltinRole::AuditReader.tier().is_privileged());
        for r in BuiltinRole::ALL {
            assert_eq!(BuiltinRole::from_slug(r.slug()), Some(r));
            assert!(!r.permissions().is_empty());
            // Every listed name is in the catalogue: none is dropped silently.
            if let Some(names) = r.listed() {
                assert_eq!(r.permissions().len(), names.len(), "{r:?}");
            }
        }
        assert!(has(BuiltinRole::SecurityAdministrator, perm::ALERTS_MANAGE));
        assert!(has(BuiltinRole::SecurityReader, perm::ALERTS_READ));
    }

    #[test]
    fn custom_role_names() {
        assert!(RoleName::parse("payroll-admin").is_ok());
        assert!(matches!(
            RoleName::parse("global-administrator"),
            Err(RoleError::BuiltinName(_))
        ));
        for bad in [
            "",
            "a",
            "Payroll",
            "1abc",
            "pay roll",
            "x".repeat(65).as_str(),
        ] {
            assert!(RoleName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scopes_contain_themselves_and_below() {
        let t = Scope::tenant();
        let db = Scope::parse("/targets/prod-db").expect("scope");
        let app = Scope::parse("/apps/payroll").expect("scope");
        assert!(t.contains(&db) && t.contains(&app) && t.contains(&t));
        assert!(db.contains(&db) && !db.contains(&t) && !db.contains(&app));
        for bad in [
            "",
            "/x",
            "/targets/",
            "/targets/A",
            "targets/x",
            "/targets/x/y",
            "//",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
        let g = Grant {
            role: "r".into(),
            permissions: vec![Permission::parse(perm::ASSIGNMENTS_CREATE).expect("p")],
            everything: false,
            scope: db.clone(),
            ends_at: None,
        };
        assert!(permits(
            std::slice::from_ref(&g),
            perm::ASSIGNMENTS_CREATE,
            &db
        ));
        assert!(!permits(
            std::slice::from_ref(&g),
            perm::ASSIGNMENTS_CREATE,
            &t
        ));
    }

    #[test]
    fn durations() {
        for (s, secs) in [
            ("90s", 90),
            ("15m", 900),
            ("8h", 28_800),
            ("30d", 2_592_000),
            ("1m", 60),
        ] {
            let d = parse_duration(s).expect(s);
            assert_eq!(d.whole_seconds(), secs);
        }
        assert_eq!(format_duration(Duration::seconds(3600)), "1h");
        assert_eq!(format_duration(Duration::seconds(90)), "90s");
        assert_eq!(format_duration(Duration::days(2)), "2d");
        for s in ["1h", "90s", "15m", "30d"] {
            assert_eq!(format_duration(parse_duration(s).expect(s)), s);
        }
        for bad in [
            "",
            "0s",
            "-1h",
            "1",
            "h",
            "1 h",
            " 1h",
            "1w",
            "99999999999999999999d",
            "3651d",
            "1.5h",
            "5é",
            "é",
            "5\u{202e}h",
            "1h\0",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_defaults_and_validation() {
        let ga = RoleSettings::defaults_for(Some(BuiltinRole::GlobalAdministrator));
        assert_eq!(ga.max_activation, 3600);
        assert_eq!(ga.required_strength, AuthStrength::PhishingResistant);
        assert!(ga.require_approval);
        let pra = RoleSettings::defaults_for(Some(BuiltinRole::PrivilegedRoleAdministrator));
        assert_eq!(pra.required_strength, AuthStrength::PhishingResistant);
        assert!(!pra.require_approval);
        let custom = RoleSettings::defaults_for(None);
        assert_eq!(custom.max_activation, 8 * 3600);
        assert_eq!(custom.required_strength, AuthStrength::Mfa);
        assert!(
            custom.require_justification
                && !custom.require_ticket
                && !custom.allow_permanent_active
        );
        assert!(custom.validate().is_ok());
        // GA needs an approver before its defaults validate.
        assert!(ga.validate().is_err());
        let mut s = custom.clone();
        s.max_activation = 59;
        assert!(s.validate().is_err());
        let mut s = custom.clone();
        s.required_strength = AuthStrength::Password;
        assert!(s.validate().is_err());
        let mut s = custom.clone();
        s.approvals_required = 0;
        assert!(s.validate().is_err());
        let mut s = custom.clone();
        s.approvers = vec!["alice".into()];
        assert!(s.validate().is_err());
        let mut s = custom.clone();
        s.notify = vec!["not an address".into()];
        assert!(s.validate().is_err());
        let mut s = custom;
        s.require_approval = true;
        s.approvers = vec!["group:approvers".into()];
        s.notify = vec!["user:bob".into(), "secops@example.org".into()];
        assert!(s.validate().is_ok());
        let json = serde_json::to_string(&s).expect("json");
        assert!(json.contains("\"mfa\""));
        assert_eq!(
            serde_json::from_str::<RoleSettings>(&json).expect("back"),
            s
        );
    }
}
