//! Alert channels and the outbox: how the writer raises alerts for the events it commits
//! (built-in and custom rules), aggregates them per rule and key, and fans them out into
//! messages (one per channel, one per recipient for SMS) inside its transaction; and the reads
//! of the delivery worker and of `portcullis alerts`.
//!
//! Invariants:
//! - Alerts, their aggregation state and their outbox rows commit with the events that raise
//!   them (invariant 1). The writer's transactions are serialised on the chain head across
//!   replicas, so every replica counts into the same window and one summary is due per
//!   channel and window (invariant 8); a summary is an ordinary outbox row, due when its
//!   window closes, which survives a restart and is claimed by one worker.
//! - Aggregation changes deliveries, never the audit log: every event stays in the chain.
//! - Failures and successes are aggregated apart: a flood of failed attempts cannot hide a
//!   successful break-glass sign-in in a summary delivered minutes later.
//! - A summary stops counting once a worker has claimed it: a later alert opens a new window
//!   (and is delivered at once) rather than being counted into a message already sent.

mod raise;
mod read;

pub(crate) use raise::Raise;
pub use raise::{alert_payload, channel_recipients, summary_payload};

use portcullis_core::alerts::CustomRule;

/// How the writer raises alerts.
#[derive(Debug, Clone, Copy)]
pub struct AlertSettings {
    /// Alerts of one rule and key after the first within this long are summarised.
    pub aggregation_window: time::Duration,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            aggregation_window: time::Duration::minutes(5),
        }
    }
}

/// The associated data a channel's full configuration is sealed with.
pub fn channel_config_aad(name: &str) -> String {
    format!("alert_channel_config:{name}")
}

/// Most custom alert rules (each is evaluated for every matching event inside the writer's
/// transaction).
pub const MAX_RULES: i64 = 100;

/// A custom rule as stored, with who made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRule {
    pub rule: CustomRule,
    pub created_by: String,
    pub created_at_us: i64,
}

macro_rules! rule_row {
    ($r:expr) => {{
        let outcome: Option<String> = $r.try_get("outcome")?;
        let group_by: String = $r.try_get("group_by")?;
        let severity: String = $r.try_get("severity")?;
        let count: i64 = $r.try_get("count")?;
        let window: i64 = $r.try_get("window_seconds")?;
        $crate::alerts::StoredRule {
            rule: portcullis_core::alerts::CustomRule {
                name: $r.try_get("name")?,
                action: $r.try_get("action")?,
                outcome: outcome
                    .as_deref()
                    .and_then(portcullis_core::audit::Outcome::parse),
                actor: $r.try_get("actor")?,
                target: $r.try_get("target")?,
                group_by: portcullis_core::alerts::GroupBy::parse(&group_by)
                    .unwrap_or(portcullis_core::alerts::GroupBy::Target),
                count: u32::try_from(count).unwrap_or(u32::MAX),
                window: time::Duration::seconds(window),
                severity: portcullis_core::alerts::Severity::parse(&severity)
                    .unwrap_or(portcullis_core::alerts::Severity::Warning),
            },
            created_by: $r.try_get("created_by")?,
            created_at_us: $r.try_get("created_at_us")?,
        }
    }};
}
pub(crate) use rule_row;

pub(crate) const RULE_COLS: &str = "name, action, outcome, actor, target, group_by, count, window_seconds, severity, created_by, created_at_us";

/// An alert channel as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertChannel {
    pub name: String,
    /// Kept as the stored text, unlike the enums of other rows: one channel row this version
    /// cannot read must not stop delivery on every other channel (the list would fail to
    /// decode); the delivery worker dead-letters that channel's messages with the reason.
    pub kind: String,
    pub config: String,
    pub sealed_secret: Option<Vec<u8>>,
    /// The full configuration, sealed under the master key with [`channel_config_aad`];
    /// `None` only for a row written before sealing that the server has not sealed yet.
    pub sealed_config: Option<Vec<u8>>,
    pub min_severity: String,
    pub created_by: String,
    pub created_at_us: i64,
}

/// An outbox message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub id: String,
    pub kind: String,
    pub topic: String,
    pub recipient: String,
    pub payload: String,
    pub channel: Option<String>,
    pub severity: Option<String>,
    pub state: String,
    pub attempts: i64,
    pub budget_from: i64,
    pub created_at_us: i64,
    pub next_attempt_at_us: i64,
    pub delivered_at_us: Option<i64>,
    pub last_error: Option<String>,
}

/// One recorded delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub attempt: i64,
    pub worker: String,
    pub started_at_us: i64,
    pub finished_at_us: i64,
    pub outcome: String,
    pub detail: Option<String>,
}
