//! The single writer task: group commit of changes with their audit events.
//!
//! Each process has one writer. It takes every command waiting in its queue (up to
//! [`MAX_BATCH`]), opens one transaction, locks the chain head, applies each command in its own
//! savepoint (a failing change is rolled back alone and its caller gets the error), appends the
//! events, writes a signed checkpoint when one is due, commits, and only then answers the callers.
//! One durable commit thus serves many requests, which is how durable appends reach tens of
//! thousands per second without weakening durability.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use portcullis_core::audit::{AuditEvent, Checkpoint, NewAuditEvent};
use sqlx::{Acquire, Row};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use crate::alerts::AlertSettings;
use crate::changes::Change;
use crate::{Backend, Result, ServerKey, StoreError, micros, to_hash};

/// Most commands applied in one transaction.
pub const MAX_BATCH: usize = 1024;
/// Rows per multi-row INSERT (9 parameters each; well under both backends' limits).
const INSERT_CHUNK: usize = 256;

/// When to write a signed checkpoint: every `every_events` events or every `every` interval,
/// whichever comes first (only if the chain grew since the last one).
#[derive(Debug, Clone, Copy)]
pub struct CheckpointPolicy {
    pub every_events: i64,
    pub every: Duration,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        Self {
            every_events: 1000,
            every: Duration::from_secs(60),
        }
    }
}

pub(crate) struct Command {
    pub change: Change,
    pub events: Vec<NewAuditEvent>,
    pub reply: oneshot::Sender<Result<Vec<AuditEvent>>>,
}

pub(crate) fn spawn(
    backend: Backend,
    server_key: Arc<RwLock<Option<ServerKey>>>,
    policy: CheckpointPolicy,
    alerts: AlertSettings,
    alerts_written: Arc<tokio::sync::Notify>,
) -> mpsc::Sender<Command> {
    let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
    tokio::spawn(run(backend, server_key, policy, alerts, alerts_written, rx));
    tx
}

async fn run(
    backend: Backend,
    server_key: Arc<RwLock<Option<ServerKey>>>,
    policy: CheckpointPolicy,
    alerts: AlertSettings,
    alerts_written: Arc<tokio::sync::Notify>,
    mut rx: mpsc::Receiver<Command>,
) {
    let mut last_checkpoint = Instant::now();
    loop {
        let first = match tokio::time::timeout(policy.every, rx.recv()).await {
            Ok(Some(c)) => Some(c),
            Ok(None) => break,
            Err(_) => None,
        };
        let mut batch = Vec::new();
        if let Some(c) = first {
            batch.push(c);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(_) => break,
                }
            }
        }
        let time_due = last_checkpoint.elapsed() >= policy.every;
        if batch.is_empty() && !time_due {
            continue;
        }
        let key = server_key.read().ok().and_then(|k| k.clone());
        let (replies, outcome) =
            apply_batch(&backend, batch, key.as_ref(), policy, alerts, time_due).await;
        match outcome {
            Ok((wrote_checkpoint, wrote_alerts)) => {
                if wrote_checkpoint || time_due {
                    last_checkpoint = Instant::now();
                }
                if wrote_alerts {
                    // notify_one keeps the wake-up if the worker is busy delivering right now.
                    alerts_written.notify_one();
                }
                for (reply, result) in replies {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "audit write transaction failed");
                let msg = e.to_string();
                for (reply, _) in replies {
                    let _ = reply.send(Err(StoreError::CommitFailed(msg.clone())));
                }
            }
        }
    }
}

type Replies = Vec<(
    oneshot::Sender<Result<Vec<AuditEvent>>>,
    Result<Vec<AuditEvent>>,
)>;

async fn apply_batch(
    backend: &Backend,
    batch: Vec<Command>,
    key: Option<&ServerKey>,
    policy: CheckpointPolicy,
    alerts: AlertSettings,
    time_due: bool,
) -> (Replies, Result<(bool, bool)>) {
    let mut replies: Replies = Vec::with_capacity(batch.len());
    let result: Result<(bool, bool)> = async {
        crate::on_pool!(backend, pool => {
            let mut tx = match backend {
                // BEGIN IMMEDIATE takes SQLite's write lock up front: the head read below cannot
                // go stale under another process.
                Backend::Sqlite(_) => pool.begin_with("BEGIN IMMEDIATE").await?,
                Backend::Postgres(_) => pool.begin().await?,
            };
            let head_sql = match backend {
                Backend::Sqlite(_) => "SELECT seq, hash FROM audit_head WHERE id = 1",
                Backend::Postgres(_) => "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE",
            };
            let head = sqlx::query(head_sql).fetch_one(&mut *tx).await?;
            let mut seq: i64 = head.try_get("seq")?;
            let mut hash = to_hash(head.try_get("hash")?)?;
            let start_seq = seq;
            let forced = batch.iter().any(|c| matches!(c.change, Change::ForceCheckpoint));
            // Every event naming a break-glass account (as actor or target) is tagged
            // `emergency`, so the built-in critical rule sees all of them, whatever code wrote
            // the event: sign-ins, failures, changes to the account or its credentials.
            // Only batches whose events name a user read the (small, indexed) list.
            let mut emergency: HashSet<String> = if batch.iter().any(|c| c.events.iter().any(names_a_user)) {
                sqlx::query_scalar::<_, String>("SELECT name FROM principals WHERE emergency")
                    .fetch_all(&mut *tx).await?.into_iter().collect()
            } else {
                HashSet::new()
            };
            // Events are sealed in order and inserted together at the end with multi-row
            // INSERTs: a batch costs a handful of statements, not several per caller.
            let mut pending: Vec<AuditEvent> = Vec::new();
            for cmd in batch {
                let step: Result<()> = async {
                    // Only a real state change can fail on its own; it gets a savepoint so its
                    // failure rolls back alone. Pure appends need none.
                    if !matches!(cmd.change, Change::None | Change::ForceCheckpoint) {
                        let mut sp = (&mut *tx).begin().await?;
                        crate::changes::Apply::apply(&mut *sp, &cmd.change).await?;
                        sp.commit().await?;
                    }
                    Ok(())
                }.await;
                match step {
                    Ok(()) => {
                        new_emergency_names(&cmd.change, &mut emergency);
                        let now = OffsetDateTime::now_utc();
                        let mut sealed = Vec::with_capacity(cmd.events.len());
                        for mut ev in cmd.events {
                            tag_emergency(&mut ev, &emergency);
                            let e = ev.seal(seq + 1, now, hash);
                            seq = e.seq;
                            hash = e.hash;
                            sealed.push(e);
                        }
                        pending.extend(sealed.iter().cloned());
                        replies.push((cmd.reply, Ok(sealed)));
                    }
                    Err(e) => replies.push((cmd.reply, Err(e))),
                }
            }
            for chunk in pending.chunks(INSERT_CHUNK) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO audit_events (seq, time_us, actor, action, target, outcome, details, prev_hash, hash) ",
                );
                q.push_values(chunk, |mut b, e| {
                    b.push_bind(e.seq).push_bind(e.time_us).push_bind(e.actor.clone())
                        .push_bind(e.action.clone()).push_bind(e.target.clone())
                        .push_bind(e.outcome.as_str()).push_bind(e.details.to_string())
                        .push_bind(e.prev_hash.to_vec()).push_bind(e.hash.to_vec());
                });
                q.build().execute(&mut *tx).await?;
            }
            // Alerts (built-in and custom rules, aggregated per rule and key) commit with the
            // events that raise them, so none is lost between an event and its delivery.
            let wrote_alerts = crate::alerts::Raise::raise(&mut *tx, &pending, alerts).await?;
            if seq != start_seq {
                sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
                    .bind(seq).bind(hash.to_vec()).execute(&mut *tx).await?;
            }
            let mut wrote_checkpoint = false;
            if let Some(key) = key {
                let last_cp: i64 = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS s FROM audit_checkpoints")
                    .fetch_one(&mut *tx).await?.try_get("s")?;
                if seq > last_cp && (forced || seq - last_cp >= policy.every_events || time_due) {
                    let cp = Checkpoint::sign(seq, hash, &key.key_id, &key.key);
                    sqlx::query("INSERT INTO audit_checkpoints (seq, hash, key_id, signature, created_at_us) VALUES ($1, $2, $3, $4, $5)")
                        .bind(cp.seq).bind(cp.hash.to_vec()).bind(&cp.key_id).bind(cp.signature.to_vec())
                        .bind(micros(OffsetDateTime::now_utc()))
                        .execute(&mut *tx).await?;
                    wrote_checkpoint = true;
                }
            }
            tx.commit().await?;
            Ok((wrote_checkpoint, wrote_alerts))
        })
    }
    .await;
    (replies, result)
}

/// Adds the names of emergency principals that `change` creates.
fn new_emergency_names(change: &Change, names: &mut HashSet<String>) {
    match change {
        Change::CreatePrincipal(p) if p.emergency => {
            names.insert(p.name.clone());
        }
        Change::Many(all) => all.iter().for_each(|c| new_emergency_names(c, names)),
        _ => {}
    }
}

/// Whether an event names a user (as actor, target or group member): only then can it be
/// about a break-glass account.
fn names_a_user(ev: &NewAuditEvent) -> bool {
    ev.actor.starts_with("user:")
        || ev.target.starts_with("user:")
        || ev
            .details
            .get("member")
            .and_then(|m| m.as_str())
            .is_some_and(|m| m.starts_with("user:"))
}

/// Sets `details.emergency = true` on an event whose actor, target or group `member` is
/// `user:NAME` for an emergency account `NAME`.
fn tag_emergency(ev: &mut NewAuditEvent, names: &HashSet<String>) {
    if names.is_empty() {
        return;
    }
    let named = |s: &str| s.strip_prefix("user:").is_some_and(|n| names.contains(n));
    let member = ev.details.get("member").and_then(|m| m.as_str());
    if !(named(&ev.actor) || named(&ev.target) || member.is_some_and(named)) {
        return;
    }
    if !ev.details.is_object() {
        ev.details = serde_json::json!({});
    }
    if let Some(d) = ev.details.as_object_mut() {
        d.insert("emergency".into(), true.into());
    }
}
