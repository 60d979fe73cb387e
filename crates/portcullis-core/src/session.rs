//! Authentication strength and session lifetimes.
//!
//! A session records how strongly its holder proved who they are. `password` < `mfa` <
//! `phishing_resistant`. Sessions end at the first of: idle timeout, absolute lifetime, revocation,
//! the user being disabled. A *registration-only* session (a privileged-capable account that has
//! no second factor yet) may do nothing but enrol one.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthStrength {
    Password,
    Mfa,
    PhishingResistant,
}

impl AuthStrength {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthStrength::Password => "password",
            AuthStrength::Mfa => "mfa",
            AuthStrength::PhishingResistant => "phishing_resistant",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "password" => Some(Self::Password),
            "mfa" => Some(Self::Mfa),
            "phishing_resistant" => Some(Self::PhishingResistant),
            _ => None,
        }
    }
}

/// What a session may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionScope {
    /// Everything the account may do.
    Full,
    /// Only enrolling a second factor (and reading oneself, signing out).
    RegistrationOnly,
}

impl SessionScope {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionScope::Full => "full",
            SessionScope::RegistrationOnly => "registration_only",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "full" => Some(Self::Full),
            "registration_only" => Some(Self::RegistrationOnly),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLifetimes {
    pub idle: Duration,
    pub absolute: Duration,
    pub registration_only: Duration,
    /// How long a half-finished sign-in (password accepted, second factor pending) lives.
    pub pending_signin: Duration,
}

impl Default for SessionLifetimes {
    fn default() -> Self {
        Self {
            idle: Duration::hours(1),
            absolute: Duration::hours(12),
            registration_only: Duration::minutes(15),
            pending_signin: Duration::minutes(5),
        }
    }
}

impl SessionLifetimes {
    /// When a session created at `created` with the given scope ends at the latest.
    pub fn absolute_end(&self, created: OffsetDateTime, scope: SessionScope) -> OffsetDateTime {
        match scope {
            SessionScope::Full => created + self.absolute,
            SessionScope::RegistrationOnly => created + self.registration_only,
        }
    }

    /// Whether a session is still alive at `now`.
    pub fn alive(
        &self,
        created: OffsetDateTime,
        last_seen: OffsetDateTime,
        scope: SessionScope,
        now: OffsetDateTime,
    ) -> bool {
        now < self.absolute_end(created, scope) && now - last_seen < self.idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strength_order() {
        assert!(AuthStrength::Password < AuthStrength::Mfa);
        assert!(AuthStrength::Mfa < AuthStrength::PhishingResistant);
        for s in [
            AuthStrength::Password,
            AuthStrength::Mfa,
            AuthStrength::PhishingResistant,
        ] {
            assert_eq!(AuthStrength::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn lifetimes() {
        let l = SessionLifetimes::default();
        let t0 = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        assert!(l.alive(t0, t0, SessionScope::Full, t0 + Duration::minutes(59)));
        assert!(
            !l.alive(t0, t0, SessionScope::Full, t0 + Duration::minutes(60)),
            "idle"
        );
        let late = t0 + Duration::hours(12);
        assert!(
            !l.alive(t0, late - Duration::minutes(1), SessionScope::Full, late),
            "absolute"
        );
        assert!(!l.alive(
            t0,
            t0 + Duration::minutes(14),
            SessionScope::RegistrationOnly,
            t0 + Duration::minutes(15)
        ));
    }
}
