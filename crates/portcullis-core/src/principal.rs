//! Principals: users (members and partner guests), groups and service accounts, and the
//! validated names and contact details they carry.
//!
//! Names are parsed at the edge into newtypes (`UserName::parse`), so a value of the type is
//! always valid: 1–64 characters, lowercase ASCII letters, digits, `.`, `-`, `_`, starting with
//! a letter. One namespace for users, groups and service accounts keeps `user:NAME` and
//! `group:NAME` references in policies unambiguous and audit actors unique.

use serde::{Deserialize, Serialize};

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} must be at most {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("{field} {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
}

/// The maximum length of a principal name.
pub const NAME_MAX: usize = 64;

/// A principal name (user, group or service account).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct PrincipalName(String);

impl PrincipalName {
    pub fn parse(field: &'static str, s: &str) -> Result<Self, ValidationError> {
        if s.is_empty() {
            return Err(ValidationError::Empty { field });
        }
        if s.chars().count() > NAME_MAX {
            return Err(ValidationError::TooLong {
                field,
                max: NAME_MAX,
            });
        }
        let mut chars = s.chars();
        if !chars.next().is_some_and(|c| c.is_ascii_lowercase()) {
            return Err(ValidationError::Invalid {
                field,
                reason: "must start with a lowercase letter",
            });
        }
        if !chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'))
        {
            return Err(ValidationError::Invalid {
                field,
                reason: "may contain only lowercase letters, digits, '.', '-' and '_'",
            });
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PrincipalName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PrincipalName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse("name", &s).map_err(serde::de::Error::custom)
    }
}

/// A display name: 1–128 characters, no control, bidirectional or invisible characters.
pub fn parse_display_name(s: &str) -> Result<String, ValidationError> {
    free_text("display_name", s, 128)
}

/// An organisation name (a guest's home organisation).
pub fn parse_organisation(s: &str) -> Result<String, ValidationError> {
    free_text("home_organisation", s, 128)
}

fn free_text(field: &'static str, s: &str, max: usize) -> Result<String, ValidationError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(ValidationError::Empty { field });
    }
    if t.chars().count() > max {
        return Err(ValidationError::TooLong { field, max });
    }
    if crate::text::has_invisible(t) {
        return Err(ValidationError::Invalid {
            field,
            reason: "must not contain control, bidirectional or invisible characters",
        });
    }
    Ok(t.to_owned())
}

/// An email address, checked for shape only (one `@`, a dot in the domain, no spaces).
pub fn parse_email(s: &str) -> Result<String, ValidationError> {
    let field = "email";
    let t = s.trim();
    if t.is_empty() {
        return Err(ValidationError::Empty { field });
    }
    if t.len() > 254 {
        return Err(ValidationError::TooLong { field, max: 254 });
    }
    let bad = ValidationError::Invalid {
        field,
        reason: "must look like name@example.org",
    };
    let (local, domain) = t.split_once('@').ok_or(bad.clone())?;
    if local.is_empty()
        || domain.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || t.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad);
    }
    Ok(t.to_owned())
}

/// A phone number in E.164 form (`+` then 8–15 digits), for SMS alerts.
pub fn parse_phone(s: &str) -> Result<String, ValidationError> {
    let t = s.trim();
    let digits = t.strip_prefix('+').unwrap_or("");
    if digits.len() < 8 || digits.len() > 15 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(ValidationError::Invalid {
            field: "phone",
            reason: "must be in E.164 form, e.g. +41791234567",
        });
    }
    Ok(t.to_owned())
}

/// Members belong to this tenant; guests are partner or MSP staff with their own account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UserKind {
    Member,
    Guest { home_organisation: String },
}

/// The kind of a principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    User,
    Group,
    ServiceAccount,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::Group => "group",
            PrincipalKind::ServiceAccount => "service_account",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Self::User),
            "group" => Some(Self::Group),
            "service_account" => Some(Self::ServiceAccount),
            _ => None,
        }
    }
}

impl std::fmt::Display for PrincipalKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(PrincipalName::parse("name", "alice").is_ok());
        assert!(PrincipalName::parse("name", "a.b-c_9").is_ok());
        assert_eq!(
            PrincipalName::parse("name", ""),
            Err(ValidationError::Empty { field: "name" })
        );
        assert!(PrincipalName::parse("name", &"a".repeat(65)).is_err());
        assert!(PrincipalName::parse("name", &"a".repeat(64)).is_ok());
        for bad in [
            "Alice", "9lives", "al ice", "al/ice", "élise", "a\u{0}b", "-x",
        ] {
            assert!(PrincipalName::parse("name", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn contact_details() {
        assert!(parse_email("alice@example.org").is_ok());
        for bad in [
            "alice",
            "@example.org",
            "a@b",
            "a b@example.org",
            "a@@example.org",
            "a@example.",
        ] {
            assert!(parse_email(bad).is_err(), "{bad}");
        }
        assert!(parse_phone("+41791234567").is_ok());
        for bad in ["41791234567", "+12", "+4179abc4567", "+1234567890123456"] {
            assert!(parse_phone(bad).is_err(), "{bad}");
        }
        assert!(parse_display_name("Alice Example").is_ok());
        assert!(parse_display_name("  ").is_err());
        assert!(parse_display_name("a\nb").is_err());
    }
}
