//! An alert and its severity. Invariant: a critical alert reaches every channel, whatever the
//! channel's threshold.

use serde::{Deserialize, Serialize};

/// How bad an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "info" => Some(Self::Info),
            "warning" => Some(Self::Warning),
            "critical" => Some(Self::Critical),
            _ => None,
        }
    }
    /// Whether a channel with threshold `min` receives an alert of this severity.
    pub fn reaches(self, min: Severity) -> bool {
        self == Severity::Critical || self >= min
    }
}

/// An alert raised by a rule for one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// The rule's stable id, e.g. `breakglass.activity`.
    pub rule: String,
    pub severity: Severity,
    /// One line for a human: what happened, who, to what.
    pub summary: String,
}
