//! Custom rules: `count` events of an action for one key within a window raise an alert.
//! Invariant: a rule is used only once [`CustomRule::validate`] accepts its fields.

use time::Duration;

use super::alert::{Alert, Severity};
use crate::audit::{AuditEvent, Outcome};

/// What a custom rule counts events by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Target,
    Actor,
}

impl GroupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Target => "target",
            Self::Actor => "actor",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "target" => Some(Self::Target),
            "actor" => Some(Self::Actor),
            _ => None,
        }
    }
}

/// A custom rule: `count` events of `action` (filtered by outcome, actor, target) for one
/// key within `window` raise an alert, at most once per key per window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomRule {
    pub name: String,
    pub action: String,
    pub outcome: Option<Outcome>,
    pub actor: Option<String>,
    pub target: Option<String>,
    pub group_by: GroupBy,
    pub count: u32,
    pub window: Duration,
    pub severity: Severity,
}

/// Why a custom rule is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("name: 2 to 64 of a-z, 0-9, - and _")]
    Name,
    #[error("action: an audit action such as signin.password (a-z, 0-9, . and _)")]
    Action,
    #[error("count is between 1 and 10000")]
    Count,
    #[error("window is between 1 second and 7 days")]
    Window,
    #[error("{0} is at most 256 characters")]
    TooLong(&'static str),
}

impl CustomRule {
    /// Checks a rule's fields.
    pub fn validate(&self) -> Result<(), RuleError> {
        let n = self.name.as_bytes();
        if !(2..=64).contains(&n.len())
            || !n
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_')
        {
            return Err(RuleError::Name);
        }
        let a = self.action.as_bytes();
        if a.is_empty()
            || a.len() > 128
            || !a
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'_')
        {
            return Err(RuleError::Action);
        }
        if !(1..=10_000).contains(&self.count) {
            return Err(RuleError::Count);
        }
        if self.window < Duration::seconds(1) || self.window > Duration::days(7) {
            return Err(RuleError::Window);
        }
        if self.actor.as_ref().is_some_and(|v| v.len() > 256) {
            return Err(RuleError::TooLong("actor"));
        }
        if self.target.as_ref().is_some_and(|v| v.len() > 256) {
            return Err(RuleError::TooLong("target"));
        }
        Ok(())
    }

    /// The key `e` counts under, if the rule matches it.
    pub fn key_of(&self, e: &AuditEvent) -> Option<String> {
        let matches = e.action == self.action
            && self.outcome.is_none_or(|o| o == e.outcome)
            && self.actor.as_ref().is_none_or(|a| *a == e.actor)
            && self.target.as_ref().is_none_or(|t| *t == e.target);
        matches.then(|| match self.group_by {
            GroupBy::Target => e.target.clone(),
            GroupBy::Actor => e.actor.clone(),
        })
    }

    /// The alert for `n` matching events for `key`.
    pub fn alert(&self, key: &str, n: i64) -> Alert {
        let outcome = self
            .outcome
            .map(|o| format!(" ({})", o.as_str()))
            .unwrap_or_default();
        Alert {
            rule: format!("custom:{}", self.name),
            severity: self.severity,
            summary: format!(
                "{n} × {}{outcome} for {key} within {} s",
                self.action,
                self.window.whole_seconds()
            ),
        }
    }
}
