//! Reading alert rules, channels and the outbox, for the delivery worker and `portcullis alerts`:
//! plain reads on the pool, never part of the writer's transaction.

use sqlx::Row;

use super::{AlertChannel, Attempt, OutboxMessage, RULE_COLS, StoredRule, rule_row};
use crate::{Result, Store, on_pool};

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
            sealed_config: $r.try_get("sealed_config")?,
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
            for r in sqlx::query("SELECT name, kind, config, sealed_secret, sealed_config, min_severity, created_by, created_at_us FROM alert_channels ORDER BY name")
                .fetch_all(pool).await? {
                out.push(channel_row!(r));
            }
            Ok(out)
        })
    }

    /// The alert channel with this name.
    pub async fn alert_channel(&self, name: &str) -> Result<Option<AlertChannel>> {
        on_pool!(&self.backend, pool => {
            match sqlx::query("SELECT name, kind, config, sealed_secret, sealed_config, min_severity, created_by, created_at_us FROM alert_channels WHERE name = $1")
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

    /// How many SMS messages the cap held back before message `id` went out (they name it in
    /// `reported_in`).
    pub async fn suppressed_before(&self, id: &str) -> Result<i64> {
        on_pool!(&self.backend, pool => {
            Ok(sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE reported_in = $1")
                .bind(id).fetch_one(pool).await?)
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
