//! The outbox and alert configuration: messages, channels (sealed at rest), custom rules (capped),
//! claims (one worker per message, SMS capped per number), attempts and retries.

use super::conflicts::{TOO_MANY_RULES, conflict};
use super::sql::{Conn, args};
use crate::Result;

/// A message for the outbox, delivered later by a worker.
#[derive(Debug, Clone)]
pub struct NewOutboxMessage {
    pub id: String,
    /// `notification` or `alert`.
    pub kind: String,
    pub topic: String,
    pub recipient: String,
    pub payload: String,
    pub at_us: i64,
    /// For alerts: the channel that delivers it, and the severity.
    pub channel: Option<String>,
    pub severity: Option<String>,
}

/// A new alert channel: what lists show in clear, the full configuration sealed.
#[derive(Debug, Clone)]
pub struct NewAlertChannel {
    pub name: String,
    /// `email`, `webhook` or `sms`.
    pub kind: String,
    /// JSON: the display fields only (no URL path or query, no header value, no template).
    pub config: String,
    pub sealed_secret: Option<Vec<u8>>,
    /// The full configuration (JSON), sealed under the master key with
    /// [`crate::alerts::channel_config_aad`].
    pub sealed_config: Vec<u8>,
    pub min_severity: String,
    pub created_by: String,
    pub created_at_us: i64,
}

/// A channel's configuration as sealed at start-up (see [`Change::SealAlertChannels`]).
#[derive(Debug, Clone)]
pub struct SealedChannel {
    pub name: String,
    /// The display fields (JSON).
    pub config: String,
    pub sealed_config: Vec<u8>,
}

/// A new custom alert rule (validated by the caller with
/// [`portcullis_core::alerts::CustomRule::validate`]).
#[derive(Debug, Clone)]
pub struct NewAlertRule {
    pub name: String,
    pub action: String,
    pub outcome: Option<String>,
    pub actor: Option<String>,
    pub target: Option<String>,
    pub group_by: String,
    pub count: i64,
    pub window_seconds: i64,
    pub severity: String,
    pub created_by: String,
    pub created_at_us: i64,
}

/// The end of one delivery attempt.
#[derive(Debug, Clone)]
pub struct OutboxAttempt {
    pub id: String,
    pub worker: String,
    /// The attempt's number (the message's `attempts` after its claim).
    pub attempt: i64,
    pub started_at_us: i64,
    pub finished_at_us: i64,
    pub delivered: bool,
    pub detail: Option<String>,
    /// For a failure: when to try again, or `None` to dead-letter.
    pub retry_at_us: Option<i64>,
}

pub(crate) async fn enqueue(c: &mut Conn<'_>, m: &NewOutboxMessage) -> Result<()> {
    c.execute("INSERT INTO outbox (id, kind, topic, recipient, payload, created_at_us, next_attempt_at_us, channel, severity) VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8)", args![&m.id, &m.kind, &m.topic, &m.recipient, &m.payload, m.at_us, &m.channel, &m.severity]).await?;

    Ok(())
}

pub(crate) async fn add_alert_channel(c: &mut Conn<'_>, ch: &NewAlertChannel) -> Result<()> {
    let n = c.execute("INSERT INTO alert_channels (name, kind, config, sealed_secret, sealed_config, min_severity, created_by, created_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING", args![&ch.name, &ch.kind, &ch.config, &ch.sealed_secret, &ch.sealed_config, &ch.min_severity, &ch.created_by, ch.created_at_us]).await?;
    if n == 0 {
        return Err(conflict("an alert channel with that name exists"));
    }

    Ok(())
}

pub(crate) async fn remove_alert_channel(c: &mut Conn<'_>, name: &str, at_us: i64) -> Result<()> {
    let n = c
        .execute("DELETE FROM alert_channels WHERE name = $1", args![name])
        .await?;
    if n == 0 {
        return Err(conflict("no such alert channel"));
    }
    c.execute("UPDATE outbox SET state = 'dead', last_error = 'the channel was removed', claimed_by = NULL, claimed_until_us = NULL, next_attempt_at_us = $2 WHERE channel = $1 AND state = 'pending'", args![name, at_us]).await?;

    Ok(())
}

pub(crate) async fn add_alert_rule(c: &mut Conn<'_>, r: &NewAlertRule) -> Result<()> {
    let rules: i64 = c.count("SELECT COUNT(*) FROM alert_rules", args![]).await?;
    if rules >= crate::alerts::MAX_RULES {
        return Err(conflict(TOO_MANY_RULES));
    }
    let n = c.execute("INSERT INTO alert_rules (name, action, outcome, actor, target, group_by, count, window_seconds, severity, created_by, created_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING", args![&r.name, &r.action, &r.outcome, &r.actor, &r.target, &r.group_by, r.count, r.window_seconds, &r.severity, &r.created_by, r.created_at_us]).await?;
    if n == 0 {
        return Err(conflict("an alert rule with that name exists"));
    }

    Ok(())
}

pub(crate) async fn remove_alert_rule(c: &mut Conn<'_>, name: &str) -> Result<()> {
    let n = c
        .execute("DELETE FROM alert_rules WHERE name = $1", args![name])
        .await?;
    if n == 0 {
        return Err(conflict("no such alert rule"));
    }
    c.execute("DELETE FROM alert_rule_fired WHERE rule = $1", args![name])
        .await?;

    Ok(())
}

pub(crate) async fn claim_outbox(
    c: &mut Conn<'_>,
    id: &str,
    worker: &str,
    now_us: i64,
    until_us: i64,
    sms_max_per_hour: Option<i64>,
) -> Result<()> {
    let n = c.execute("UPDATE outbox SET claimed_by = $1, claimed_until_us = $2, attempts = attempts + 1, first_attempt_at_us = COALESCE(first_attempt_at_us, $4) WHERE id = $3 AND state = 'pending' AND next_attempt_at_us <= $4 AND (claimed_until_us IS NULL OR claimed_until_us < $4)", args![worker, until_us, id, now_us]).await?;
    if n == 0 {
        return Err(conflict("claimed elsewhere or not due"));
    }
    if let Some(max) = sms_max_per_hour {
        // Only an SMS message's first attempt takes a place under the cap.
        let sms = c.optional_texts("SELECT o.channel, o.recipient FROM outbox o JOIN alert_channels ch ON ch.name = o.channel WHERE o.id = $1 AND o.kind = 'alert' AND ch.kind = 'sms' AND o.attempts = 1", args![id]).await?;
        if let Some((channel, recipient)) = sms {
            let since =
                now_us - portcullis_core::alerts::SMS_CAP_PERIOD.whole_microseconds() as i64;
            let sent: i64 = c.count("SELECT COUNT(*) FROM outbox WHERE channel = $1 AND recipient = $2 AND first_attempt_at_us > $3 AND id <> $4", args![&channel, &recipient, since, id]).await?;
            if sent >= max {
                c.execute("UPDATE outbox SET state = 'suppressed', attempts = attempts - 1, first_attempt_at_us = NULL, claimed_by = NULL, claimed_until_us = NULL, next_attempt_at_us = $2, last_error = $3 WHERE id = $1", args![id, now_us, format!("not sent: the SMS cap of {max} messages per hour to this number was reached")]).await?;
            } else {
                c.execute("UPDATE outbox SET reported_in = $1 WHERE channel = $2 AND recipient = $3 AND state = 'suppressed' AND reported_in IS NULL", args![id, &channel, &recipient]).await?;
            }
        }
    }

    Ok(())
}

pub(crate) async fn seal_alert_channels(c: &mut Conn<'_>, all: &Vec<SealedChannel>) -> Result<()> {
    for ch in all {
        let n = c.execute("UPDATE alert_channels SET config = $1, sealed_config = $2 WHERE name = $3 AND sealed_config IS NULL", args![&ch.config, &ch.sealed_config, &ch.name]).await?;
        if n == 0 {
            return Err(conflict("the channel is sealed already"));
        }
    }

    Ok(())
}

pub(crate) async fn finish_outbox(c: &mut Conn<'_>, a: &OutboxAttempt) -> Result<()> {
    let (state, next) = match (a.delivered, a.retry_at_us) {
        (true, _) => ("delivered", a.finished_at_us),
        (false, Some(at)) => ("pending", at),
        (false, None) => ("dead", a.finished_at_us),
    };
    let n = c.execute("UPDATE outbox SET state = $1, next_attempt_at_us = $2, last_error = $3, delivered_at_us = $4, claimed_by = NULL, claimed_until_us = NULL WHERE id = $5 AND claimed_by = $6 AND state = 'pending'", args![state, next, if a.delivered { None } else { a.detail.clone() }, a.delivered.then_some(a.finished_at_us), &a.id, &a.worker]).await?;
    if n == 0 {
        return Err(conflict("the claim was lost"));
    }
    c.execute("INSERT INTO outbox_attempts (message_id, attempt, worker, started_at_us, finished_at_us, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)", args![&a.id, a.attempt, &a.worker, a.started_at_us, a.finished_at_us, if a.delivered { "delivered" } else { "failed" }, &a.detail]).await?;

    Ok(())
}

pub(crate) async fn retry_outbox(c: &mut Conn<'_>, id: &str, at_us: i64) -> Result<()> {
    let n = c.execute("UPDATE outbox SET state = 'pending', next_attempt_at_us = $1, budget_from = attempts WHERE id = $2 AND state = 'dead' AND channel IN (SELECT name FROM alert_channels)", args![at_us, id]).await?;
    if n == 0 {
        return Err(conflict(
            "not a dead-lettered message of an existing channel",
        ));
    }

    Ok(())
}
