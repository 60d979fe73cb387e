//! Alert channels and the outbox: how an alert fans out into messages (one per channel, one
//! per recipient for SMS) inside the writer's transaction, and the reads of the delivery
//! worker and of `portcullis alerts`.

use portcullis_core::alerts::{Alert, CustomRule, Severity, message_text};
use portcullis_core::audit::AuditEvent;
use rand::RngCore;
use sqlx::Row;

use crate::{Result, Store, on_pool};

/// Most custom alert rules (each is evaluated for every matching event inside the writer's
/// transaction).
pub const MAX_RULES: i64 = 100;

/// A channel as the writer sees it when fanning out.
#[derive(Debug, Clone)]
pub(crate) struct ChannelRow {
    pub name: String,
    pub kind: String,
    pub config: String,
    pub min_severity: String,
}

/// An outbox row the writer inserts for an alert.
pub(crate) struct AlertMessage {
    pub id: String,
    pub topic: String,
    pub recipient: String,
    pub payload: String,
    pub channel: Option<String>,
    pub severity: String,
    pub state: &'static str,
    pub last_error: Option<String>,
}

fn message_id() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("m_{}", hex::encode(b))
}

/// Who a channel's messages go to: one row per number on an SMS channel, else the channel.
pub fn channel_recipients(name: &str, kind: &str, config: &str) -> Vec<String> {
    if kind == "sms" {
        serde_json::from_str::<serde_json::Value>(config)
            .ok()
            .and_then(|c| c.get("to").cloned())
            .and_then(|t| serde_json::from_value(t).ok())
            .unwrap_or_default()
    } else {
        vec![format!("channel:{name}")]
    }
}

/// The payload every channel renders from: the alert, the event, and its text.
pub fn alert_payload(e: &AuditEvent, a: &Alert) -> serde_json::Value {
    serde_json::json!({
        "alert": a,
        "text": message_text(a, e),
        "event": {
            "seq": e.seq, "time_us": e.time_us, "actor": e.actor, "action": e.action,
            "target": e.target, "outcome": e.outcome.as_str(), "details": e.details,
        },
    })
}

/// The messages for alert `a` of event `e`: one per channel it reaches (one per recipient on
/// SMS channels). With no channel to reach, one dead-lettered message says so, so the alert is
/// still on record and `portcullis alerts list` shows the gap.
pub(crate) fn messages_for(
    e: &AuditEvent,
    a: &Alert,
    channels: &[ChannelRow],
) -> Vec<AlertMessage> {
    let payload = alert_payload(e, a).to_string();
    let mut out = Vec::new();
    for ch in channels {
        let min = Severity::parse(&ch.min_severity).unwrap_or(Severity::Info);
        if !a.severity.reaches(min) {
            continue;
        }
        let recipients = channel_recipients(&ch.name, &ch.kind, &ch.config);
        for r in recipients {
            out.push(AlertMessage {
                id: message_id(),
                topic: a.rule.clone(),
                recipient: r,
                payload: payload.clone(),
                channel: Some(ch.name.clone()),
                severity: a.severity.as_str().to_owned(),
                state: "pending",
                last_error: None,
            });
        }
    }
    if out.is_empty() {
        out.push(AlertMessage {
            id: message_id(),
            topic: a.rule.clone(),
            recipient: "nobody".into(),
            payload,
            channel: None,
            severity: a.severity.as_str().to_owned(),
            state: "dead",
            last_error: Some(format!(
                "no alert channel receives {} alerts; add one (portcullis alerts channels add)",
                a.severity.as_str()
            )),
        });
    }
    out
}

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
    pub kind: String,
    pub config: String,
    pub sealed_secret: Option<Vec<u8>>,
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

const OUTBOX_COLS: &str = "id, kind, topic, recipient, payload, channel, severity, state, attempts, budget_from, created_at_us, next_attempt_at_us, delivered_at_us, last_error";

macro_rules! outbox_row {
    ($r:expr) => {
        OutboxMessage {
            id: $r.try_get("id")?,
            kind: $r.try_get("kind")?,
            topic: $r.try_get("topic")?,
            recipient: $r.try_get("recipient")?,
            payload: $r.try_get("payload")?,
            channel: $r.try_get("channel")?,
            severity: $r.try_get("severity")?,
            state: $r.try_get("state")?,
            attempts: $r.try_get("attempts")?,
            budget_from: $r.try_get("budget_from")?,
            created_at_us: $r.try_get("created_at_us")?,
            next_attempt_at_us: $r.try_get("next_attempt_at_us")?,
            delivered_at_us: $r.try_get("delivered_at_us")?,
            last_error: $r.try_get("last_error")?,
        }
    };
}

macro_rules! channel_row {
    ($r:expr) => {
        AlertChannel {
            name: $r.try_get("name")?,
            kind: $r.try_get("kind")?,
            config: $r.try_get("config")?,
            sealed_secret: $r.try_get("sealed_secret")?,
            min_severity: $r.try_get("min_severity")?,
            created_by: $r.try_get("created_by")?,
            created_at_us: $r.try_get("created_at_us")?,
        }
    };
}

impl Store {
    /// Every custom alert rule, by name.
    pub async fn alert_rules(&self) -> Result<Vec<StoredRule>> {
        let sql = format!("SELECT {RULE_COLS} FROM alert_rules ORDER BY name");
        on_pool!(&self.backend, pool => {
            let mut out = Vec::new();
            for r in sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await? {
                out.push(rule_row!(r));
            }
            Ok(out)
        })
    }

    /// Every alert channel, by name.
    pub async fn alert_channels(&self) -> Result<Vec<AlertChannel>> {
        on_pool!(&self.backend, pool => {
            let mut out = Vec::new();
            for r in sqlx::query("SELECT name, kind, config, sealed_secret, min_severity, created_by, created_at_us FROM alert_channels ORDER BY name")
                .fetch_all(pool).await? {
                out.push(channel_row!(r));
            }
            Ok(out)
        })
    }

    /// The alert channel with this name.
    pub async fn alert_channel(&self, name: &str) -> Result<Option<AlertChannel>> {
        on_pool!(&self.backend, pool => {
            match sqlx::query("SELECT name, kind, config, sealed_secret, min_severity, created_by, created_at_us FROM alert_channels WHERE name = $1")
                .bind(name).fetch_optional(pool).await? {
                Some(r) => Ok(Some(channel_row!(r))),
                None => Ok(None),
            }
        })
    }

    /// Ids of pending messages that are due and not claimed by a live worker, oldest due
    /// first.
    pub async fn due_outbox(&self, now_us: i64, limit: i64) -> Result<Vec<String>> {
        on_pool!(&self.backend, pool => {
            Ok(sqlx::query_scalar("SELECT id FROM outbox WHERE state = 'pending' AND next_attempt_at_us <= $1 AND (claimed_until_us IS NULL OR claimed_until_us < $1) ORDER BY next_attempt_at_us LIMIT $2")
                .bind(now_us).bind(limit).fetch_all(pool).await?)
        })
    }

    pub async fn outbox_message(&self, id: &str) -> Result<Option<OutboxMessage>> {
        let sql = format!("SELECT {OUTBOX_COLS} FROM outbox WHERE id = $1");
        on_pool!(&self.backend, pool => {
            match sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await? {
                Some(r) => Ok(Some(outbox_row!(r))),
                None => Ok(None),
            }
        })
    }

    /// Messages newest first, optionally of one kind and state.
    pub async fn outbox_messages(
        &self,
        kind: Option<&str>,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<OutboxMessage>> {
        let sql = format!(
            "SELECT {OUTBOX_COLS} FROM outbox WHERE (CAST($1 AS TEXT) IS NULL OR kind = $1) AND (CAST($2 AS TEXT) IS NULL OR state = $2) ORDER BY created_at_us DESC, id LIMIT $3"
        );
        on_pool!(&self.backend, pool => {
            let mut out = Vec::new();
            for r in sqlx::query(sqlx::AssertSqlSafe(sql)).bind(kind).bind(state).bind(limit).fetch_all(pool).await? {
                out.push(outbox_row!(r));
            }
            Ok(out)
        })
    }

    /// The recorded attempts of a message, in order.
    pub async fn outbox_attempts(&self, id: &str) -> Result<Vec<Attempt>> {
        on_pool!(&self.backend, pool => {
            let mut out = Vec::new();
            for r in sqlx::query("SELECT attempt, worker, started_at_us, finished_at_us, outcome, detail FROM outbox_attempts WHERE message_id = $1 ORDER BY attempt")
                .bind(id).fetch_all(pool).await? {
                out.push(Attempt {
                    attempt: r.try_get("attempt")?,
                    worker: r.try_get("worker")?,
                    started_at_us: r.try_get("started_at_us")?,
                    finished_at_us: r.try_get("finished_at_us")?,
                    outcome: r.try_get("outcome")?,
                    detail: r.try_get("detail")?,
                });
            }
            Ok(out)
        })
    }
}
