//! Raising alerts at write time: inside the writer's transaction, the rules are evaluated on the
//! committed events, aggregated per rule, key and outcome, and fanned out into outbox rows, so
//! alerts commit (or roll back) with the events that raise them.

use std::collections::HashMap;

use futures_core::future::BoxFuture;
use portcullis_core::alerts::{Aggregate, Alert, Severity, message_text};
use portcullis_core::audit::AuditEvent;
use rand::RngCore;
use sqlx::Row;
use time::OffsetDateTime;

use super::{AlertSettings, RULE_COLS, rule_row};
use crate::{Result, StoreError, micros};

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
    /// When it is due (a summary: when its window closes); `None` for now.
    pub due_us: Option<i64>,
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
                due_us: None,
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
            due_us: None,
        });
    }
    out
}

/// The payload of a summary: the summary as an alert, its text, and the aggregate.
pub fn summary_payload(agg: &Aggregate) -> serde_json::Value {
    serde_json::json!({
        "alert": agg.alert(),
        "text": agg.text(),
        "event": null,
        "aggregate": agg,
    })
}

/// The summary messages of a window: like [`messages_for`], due when the window closes.
fn summary_messages(agg: &Aggregate, channels: &[ChannelRow]) -> Vec<AlertMessage> {
    let a = agg.alert();
    let payload = summary_payload(agg).to_string();
    let mut out = Vec::new();
    for ch in channels {
        let min = Severity::parse(&ch.min_severity).unwrap_or(Severity::Info);
        if !a.severity.reaches(min) {
            continue;
        }
        for r in channel_recipients(&ch.name, &ch.kind, &ch.config) {
            out.push(AlertMessage {
                id: message_id(),
                topic: a.rule.clone(),
                recipient: r,
                payload: payload.clone(),
                channel: Some(ch.name.clone()),
                severity: a.severity.as_str().to_owned(),
                state: "pending",
                last_error: None,
                due_us: Some(agg.window_end_us),
            });
        }
    }
    if out.is_empty() {
        // As for single alerts: on record, dead-lettered with the reason.
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
            due_us: None,
        });
    }
    out
}

/// One (rule, key)'s window as the writer holds it while raising a batch's alerts.
struct Window {
    agg: Aggregate,
    /// Summary rows already in the outbox.
    summary_ids: Vec<String>,
    /// Summary rows to insert at the end of the batch.
    new_summary: Vec<AlertMessage>,
    dirty: bool,
    /// A worker claimed the summary already: the window takes no more alerts.
    closed: bool,
}

/// Raises the alerts of a batch's events inside the writer's transaction.
pub(crate) trait Raise {
    /// Evaluates the rules on `events` (already inserted), aggregates, and writes the outbox
    /// rows; `Ok(true)` when it wrote any.
    fn raise<'a>(
        &'a mut self,
        events: &'a [AuditEvent],
        settings: AlertSettings,
    ) -> BoxFuture<'a, Result<bool>>;
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

macro_rules! raise_for {
    ($conn:ty, $weight:literal) => {
        impl Raise for $conn {
            fn raise<'a>(
                &'a mut self,
                events: &'a [AuditEvent],
                settings: AlertSettings,
            ) -> BoxFuture<'a, Result<bool>> {
                Box::pin(async move {
                    let c = self;
                    if events.is_empty() {
                        return Ok(false);
                    }
                    // Built-in rules, keyed by the event's target.
                    let mut alerts: Vec<(&AuditEvent, Alert, String)> = events
                        .iter()
                        .filter_map(|e| {
                            portcullis_core::alerts::builtin(e)
                                .map(|a| (e, a, portcullis_core::alerts::builtin_key(e)))
                        })
                        .collect();
                    // Custom rules: count this key's matching events in the rule's window
                    // (this batch's events are inserted already, so they count), fire once
                    // per window.
                    let sql = format!("SELECT {RULE_COLS} FROM alert_rules");
                    let mut rules = Vec::new();
                    for r in sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&mut *c).await? {
                        rules.push(rule_row!(r).rule);
                    }
                    for e in events {
                        for rule in &rules {
                            let Some(key) = rule.key_of(e) else { continue };
                            let since = e.time_us - rule.window.whole_microseconds() as i64;
                            // Fired already in this window: nothing to count (a primary-key
                            // read, so a burst costs one count per key and window).
                            let last: Option<i64> = sqlx::query_scalar("SELECT fired_at_us FROM alert_rule_fired WHERE rule = $1 AND key = $2")
                                .bind(&rule.name).bind(&key).fetch_optional(&mut *c).await?;
                            if last.is_some_and(|at| at > since) {
                                continue;
                            }
                            // Count no further than the threshold (served by the (action, time) index).
                            // An aggregated refusal (`authz.refused` with `details.count`) counts
                            // as the refusals it stands for; every other event as one.
                            let col = rule.group_by.as_str();
                            let weight = if rule.action == "authz.refused" { $weight } else { "1" };
                            let count_sql = format!("SELECT CAST(COALESCE(SUM(w), 0) AS BIGINT) FROM (SELECT {weight} AS w FROM audit_events WHERE action = $1 AND {col} = $7 AND time_us > $2 AND seq <= $3 AND (CAST($4 AS TEXT) IS NULL OR outcome = $4) AND (CAST($5 AS TEXT) IS NULL OR actor = $5) AND (CAST($6 AS TEXT) IS NULL OR target = $6) LIMIT $8) AS matching");
                            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql))
                                .bind(&rule.action).bind(since).bind(e.seq)
                                .bind(rule.outcome.map(|o| o.as_str())).bind(&rule.actor).bind(&rule.target).bind(&key)
                                .bind(i64::from(rule.count))
                                .fetch_one(&mut *c).await?;
                            if n < i64::from(rule.count) {
                                continue;
                            }
                            sqlx::query("INSERT INTO alert_rule_fired (rule, key, fired_at_us) VALUES ($1, $2, $3) ON CONFLICT (rule, key) DO UPDATE SET fired_at_us = excluded.fired_at_us")
                                .bind(&rule.name).bind(&key).bind(e.time_us).execute(&mut *c).await?;
                            let alert = rule.alert(&key, n);
                            alerts.push((e, alert, key));
                        }
                    }
                    if alerts.is_empty() {
                        return Ok(false);
                    }
                    let rows = sqlx::query("SELECT name, kind, config, min_severity FROM alert_channels ORDER BY name")
                        .fetch_all(&mut *c).await?;
                    let mut channels = Vec::with_capacity(rows.len());
                    for r in rows {
                        channels.push(ChannelRow {
                            name: r.try_get("name")?,
                            kind: r.try_get("kind")?,
                            config: r.try_get("config")?,
                            min_severity: r.try_get("min_severity")?,
                        });
                    }
                    let now_us = micros(OffsetDateTime::now_utc());
                    // Windows that have closed are forgotten: their summaries are in the
                    // outbox already, and the next alert of their key opens a new one.
                    let oldest = alerts.iter().map(|(e, _, _)| e.time_us).min().unwrap_or(now_us);
                    sqlx::query("DELETE FROM alert_aggregates WHERE window_end_us <= $1")
                        .bind(oldest).execute(&mut *c).await?;
                    let mut windows: HashMap<(String, String, &'static str), Window> = HashMap::new();
                    let mut immediate: Vec<AlertMessage> = Vec::new();
                    for (e, a, key) in alerts {
                        let k = (a.rule.clone(), key, e.outcome.as_str());
                        if !windows.contains_key(&k) {
                            let row = sqlx::query("SELECT summary_ids, detail FROM alert_aggregates WHERE rule = $1 AND key = $2 AND outcome = $3")
                                .bind(&k.0).bind(&k.1).bind(k.2).fetch_optional(&mut *c).await?;
                            if let Some(row) = row {
                                let ids: String = row.try_get("summary_ids")?;
                                let detail: String = row.try_get("detail")?;
                                let summary_ids: Vec<String> = serde_json::from_str(&ids)
                                    .map_err(|_| corrupt("an alert aggregate has unreadable summary ids"))?;
                                let agg: Aggregate = serde_json::from_str(&detail)
                                    .map_err(|_| corrupt("an alert aggregate is unreadable"))?;
                                let mut closed = false;
                                for id in &summary_ids {
                                    let attempts: Option<i64> = sqlx::query_scalar("SELECT attempts FROM outbox WHERE id = $1")
                                        .bind(id).fetch_optional(&mut *c).await?;
                                    closed |= attempts.is_some_and(|n| n > 0);
                                }
                                windows.insert(k.clone(), Window { agg, summary_ids, new_summary: Vec::new(), dirty: false, closed });
                            }
                        }
                        match windows.get_mut(&k) {
                            Some(w) if !w.closed && w.agg.covers(e.time_us) => {
                                w.agg.add(e);
                                w.dirty = true;
                                if w.summary_ids.is_empty() && w.new_summary.is_empty() {
                                    w.new_summary = summary_messages(&w.agg, &channels);
                                }
                            }
                            _ => {
                                immediate.extend(messages_for(e, &a, &channels));
                                let agg = Aggregate::open(&k.0, &k.1, e.outcome, a.severity, e.seq, e.time_us, settings.aggregation_window);
                                windows.insert(k, Window { agg, summary_ids: Vec::new(), new_summary: Vec::new(), dirty: true, closed: false });
                            }
                        }
                    }
                    let mut wrote = !immediate.is_empty();
                    for m in &immediate {
                        insert_message!(&mut *c, m, None, now_us);
                    }
                    for ((rule, key, outcome), w) in windows.iter_mut().filter(|(_, w)| w.dirty) {
                        let payload = summary_payload(&w.agg).to_string();
                        // Rows not yet claimed follow the count; a claimed one is final.
                        for id in &w.summary_ids {
                            sqlx::query("UPDATE outbox SET payload = $1 WHERE id = $2 AND attempts = 0")
                                .bind(&payload).bind(id).execute(&mut *c).await?;
                        }
                        for m in std::mem::take(&mut w.new_summary) {
                            insert_message!(&mut *c, &m, Some(payload.as_str()), now_us);
                            w.summary_ids.push(m.id);
                            wrote = true;
                        }
                        let ids = serde_json::to_string(&w.summary_ids)
                            .map_err(|_| corrupt("summary ids"))?;
                        let detail = serde_json::to_string(&w.agg)
                            .map_err(|_| corrupt("alert aggregate"))?;
                        sqlx::query("INSERT INTO alert_aggregates (rule, key, outcome, window_end_us, summary_ids, detail) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (rule, key, outcome) DO UPDATE SET window_end_us = excluded.window_end_us, summary_ids = excluded.summary_ids, detail = excluded.detail")
                            .bind(rule).bind(key).bind(*outcome).bind(w.agg.window_end_us).bind(ids).bind(detail)
                            .execute(&mut *c).await?;
                    }
                    Ok(wrote)
                })
            }
        }
    };
}

/// Inserts an alert message `$m` (with `$payload`, if `Some`, in place of its own).
macro_rules! insert_message {
    ($c:expr, $m:expr, $payload:expr, $now_us:expr) => {{
        let m: &AlertMessage = $m;
        let payload: Option<&str> = $payload;
        sqlx::query("INSERT INTO outbox (id, kind, topic, recipient, payload, created_at_us, next_attempt_at_us, channel, severity, state, last_error) VALUES ($1, 'alert', $2, $3, $4, $5, $6, $7, $8, $9, $10)")
            .bind(&m.id).bind(&m.topic).bind(&m.recipient).bind(payload.unwrap_or(&m.payload))
            .bind($now_us).bind(m.due_us.unwrap_or($now_us))
            .bind(&m.channel).bind(&m.severity).bind(m.state).bind(&m.last_error)
            .execute($c).await?;
    }};
}
raise_for!(
    sqlx::SqliteConnection,
    "COALESCE(CAST(json_extract(details, '$.count') AS INTEGER), 1)"
);
raise_for!(
    sqlx::PgConnection,
    "COALESCE((details::jsonb ->> 'count')::bigint, 1)"
);
