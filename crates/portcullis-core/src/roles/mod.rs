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

mod assignment;
mod builtin;
mod permission;
mod settings;

#[cfg(test)]
mod tests;

pub use assignment::{AssignmentKind, GROUP_MEMBER, Grant, Scope, permits};
pub use builtin::{BuiltinRole, RoleName};
pub use permission::{CATALOGUE, Permission, perm};
pub use settings::{RoleSettings, format_duration, parse_duration};

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
    #[error("scope {0:?} must be /, /targets/NAME, /apps/NAME or /groups/NAME (group-member only)")]
    BadScope(String),
    #[error(
        "duration {0:?} must be a positive number with a unit: 90s, 15m, 8h or 30d (at most 3650d)"
    )]
    BadDuration(String),
    #[error("invalid role settings: {0}")]
    BadSettings(String),
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
