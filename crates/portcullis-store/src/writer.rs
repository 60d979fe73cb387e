//! The single writer task: group commit of changes with their audit events.
//!
//! Each process has one writer. It takes every command waiting in its queue (up to
//! [`MAX_BATCH`]), opens one transaction, locks the chain head, applies each command in its own
//! savepoint (a failing change is rolled back alone and its caller gets the error), appends the
//! events, writes a signed checkpoint when one is due, commits, and only then answers the callers.
//! One durable commit thus serves many requests, which is how durable appends reach tens of
//! thousands per second without weakening durability.
//!
//! Checkpoints are chained: each links to the newest checkpoint read in the same transaction,
//! under the chain-head lock, so replicas on one database extend one checkpoint chain. A
//! checkpoint is due after `every_events` events, when a write forces one, or when `every`
//! has passed on either clock (monotonic, or wall clock: after a suspended VM resumes, the
//! first write is checkpointed at once). Once the checkpoint's transaction has committed it is
//! anchored ([`crate::anchor`]) before the callers are answered; a failed anchor is logged at
//! ERROR and recorded as an alert-worthy `audit.anchor_failed` event in the next batch (once
//! per failing spell; `audit.anchor_recovered` when it works again), never failing the write.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use portcullis_core::audit::{
    AnchorRecord, AuditEvent, Checkpoint, CheckpointCadence, CheckpointLink, NewAuditEvent, Outcome,
};
use sqlx::Row;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use crate::alerts::AlertSettings;
use crate::anchor::AnchorSink;
use crate::changes::Change;
use crate::changes::sql::{Conn, args, on_conn};
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

impl CheckpointPolicy {
    /// The cadence recorded in the checkpoints written under this policy.
    pub fn cadence(&self) -> CheckpointCadence {
        CheckpointCadence {
            events: self.every_events,
            seconds: i64::try_from(self.every.as_secs().max(1)).unwrap_or(i64::MAX),
        }
    }
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

/// What the writer wakes after a commit: this process's alert delivery and target workers, so
/// they start at once instead of at their next poll.
#[derive(Default)]
pub(crate) struct Wakeups {
    pub alerts: tokio::sync::Notify,
    pub targets: tokio::sync::Notify,
    /// Events were appended (for the SIEM export).
    pub audit: tokio::sync::Notify,
}

pub(crate) fn spawn(
    backend: Backend,
    server_key: Arc<RwLock<Option<ServerKey>>>,
    policy: CheckpointPolicy,
    alerts: AlertSettings,
    alerts_written: Arc<Wakeups>,
    anchors: Vec<Arc<dyn AnchorSink>>,
    epoch: crate::cache::Epoch,
) -> mpsc::Sender<Command> {
    let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
    tokio::spawn(run(
        backend,
        server_key,
        policy,
        alerts,
        alerts_written,
        (anchors, epoch),
        rx,
    ));
    tx
}

async fn run(
    backend: Backend,
    server_key: Arc<RwLock<Option<ServerKey>>>,
    policy: CheckpointPolicy,
    alerts: AlertSettings,
    alerts_written: Arc<Wakeups>,
    (anchors, epoch): (Vec<Arc<dyn AnchorSink>>, crate::cache::Epoch),
    mut rx: mpsc::Receiver<Command>,
) {
    let mut last_checkpoint = Instant::now();
    let mut last_checkpoint_wall = OffsetDateTime::now_utc();
    let mut anchoring = Anchoring::new(anchors.len());
    // The newest checkpoint's sequence number this writer knows of (other replicas only move it
    // forward): a batch that cannot be due by count, time or force skips reading it.
    let mut checkpoint_hint: i64 = 0;
    loop {
        let mut batch = Vec::new();
        // Events the writer raises itself (anchor failures) go first, without waiting.
        if !anchoring.pending.is_empty() {
            let (reply, _) = oneshot::channel();
            batch.push(Command {
                change: Change::None,
                events: std::mem::take(&mut anchoring.pending),
                reply,
            });
        } else {
            match tokio::time::timeout(policy.every, rx.recv()).await {
                Ok(Some(c)) => batch.push(c),
                Ok(None) => break,
                Err(_) => {}
            }
        }
        if !batch.is_empty() {
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(_) => break,
                }
            }
        }
        let time_due = last_checkpoint.elapsed() >= policy.every
            || OffsetDateTime::now_utc() - last_checkpoint_wall >= policy.every;
        if batch.is_empty() && !time_due {
            continue;
        }
        let key = server_key.read().ok().and_then(|k| k.clone());
        let invalidates = batch.iter().any(|c| c.change.invalidates_caches());
        let target_ops = batch.iter().any(|c| c.change.writes_target_ops());
        let appends = batch.iter().any(|c| !c.events.is_empty());
        let (replies, outcome) = apply_batch(
            &backend,
            batch,
            key.as_ref(),
            (policy, checkpoint_hint),
            alerts,
            time_due,
        )
        .await;
        match outcome {
            Ok(Written {
                checkpoint,
                wrote_alerts,
                newest_checkpoint,
            }) => {
                checkpoint_hint = checkpoint_hint
                    .max(newest_checkpoint)
                    .max(checkpoint.as_ref().map_or(0, |c| c.seq));
                if checkpoint.is_some() || time_due {
                    last_checkpoint = Instant::now();
                    last_checkpoint_wall = OffsetDateTime::now_utc();
                }
                if let Some(cp) = &checkpoint {
                    // After the commit, before the answers: when a write that forced a
                    // checkpoint returns, its anchor is on disk.
                    anchoring.anchor(&anchors, cp).await;
                }
                if invalidates {
                    // After the commit, before the answers: a caller that learns its change
                    // committed finds no cached value read before it (crate::cache).
                    epoch.advance();
                }
                if wrote_alerts {
                    // notify_one keeps the wake-up if the worker is busy delivering right now.
                    alerts_written.alerts.notify_one();
                }
                if target_ops {
                    alerts_written.targets.notify_one();
                }
                if appends || checkpoint.is_some() {
                    alerts_written.audit.notify_one();
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

/// The anchor sinks' state: which are failing, and the events to record about it.
struct Anchoring {
    failing: Vec<bool>,
    pending: Vec<NewAuditEvent>,
}

impl Anchoring {
    fn new(sinks: usize) -> Self {
        Self {
            failing: vec![false; sinks],
            pending: Vec::new(),
        }
    }

    async fn anchor(&mut self, sinks: &[Arc<dyn AnchorSink>], cp: &Checkpoint) {
        let Some(record) = AnchorRecord::of(cp) else {
            return;
        };
        for (i, sink) in sinks.iter().enumerate() {
            let (s, r) = (sink.clone(), record.clone());
            let result = tokio::task::spawn_blocking(move || s.append(&r))
                .await
                .unwrap_or_else(|_| Err("the anchor task failed".to_owned()));
            match result {
                Err(reason) => {
                    tracing::error!(seq = cp.seq, sink = sink.name(), %reason, "audit checkpoint not anchored");
                    if !self.failing[i] {
                        self.failing[i] = true;
                        self.pending.push(
                            NewAuditEvent::new("system", "audit.anchor_failed", "audit")
                                .outcome(Outcome::Failure)
                                .details(serde_json::json!({
                                    "alert": true,
                                    "sink": sink.name(),
                                    "checkpoint_seq": cp.seq,
                                    "error": reason,
                                })),
                        );
                    }
                }
                Ok(()) if self.failing[i] => {
                    self.failing[i] = false;
                    tracing::info!(
                        seq = cp.seq,
                        sink = sink.name(),
                        "audit anchoring works again"
                    );
                    self.pending.push(
                        NewAuditEvent::new("system", "audit.anchor_recovered", "audit").details(
                            serde_json::json!({ "sink": sink.name(), "checkpoint_seq": cp.seq }),
                        ),
                    );
                }
                Ok(()) => {}
            }
        }
    }
}

/// Whether `change` asks for a checkpoint at the end of its batch (also inside `Many`).
fn forces_checkpoint(change: &Change) -> bool {
    match change {
        Change::ForceCheckpoint => true,
        Change::Many(all) => all.iter().any(forces_checkpoint),
        _ => false,
    }
}

type Replies = Vec<(
    oneshot::Sender<Result<Vec<AuditEvent>>>,
    Result<Vec<AuditEvent>>,
)>;

/// What a committed batch wrote: its checkpoint, whether it raised alerts, and the newest
/// checkpoint's sequence number it saw (0 when it did not look).
struct Written {
    checkpoint: Option<Checkpoint>,
    wrote_alerts: bool,
    newest_checkpoint: i64,
}

async fn apply_batch(
    backend: &Backend,
    batch: Vec<Command>,
    key: Option<&ServerKey>,
    (policy, checkpoint_hint): (CheckpointPolicy, i64),
    alerts: AlertSettings,
    time_due: bool,
) -> (Replies, Result<Written>) {
    let mut replies: Replies = Vec::with_capacity(batch.len());
    let result: Result<Written> = async {
        crate::on_pool!(backend, pool => {
            let mut tx = match backend {
                // BEGIN IMMEDIATE takes SQLite's write lock up front: the head read below cannot
                // go stale under another process.
                Backend::Sqlite(_) => pool.begin_with("BEGIN IMMEDIATE").await?,
                Backend::Postgres(_) => pool.begin().await?,
            };
            let written = write_batch(
                &mut Conn::from(&mut *tx),
                Batch { commands: batch, key, policy, alerts, time_due, checkpoint_hint },
                &mut replies,
            )
            .await?;
            tx.commit().await?;
            Ok(written)
        })
    }
    .await;
    (replies, result)
}

/// One batch and how its transaction ends.
struct Batch<'k> {
    commands: Vec<Command>,
    key: Option<&'k ServerKey>,
    policy: CheckpointPolicy,
    alerts: AlertSettings,
    time_due: bool,
    checkpoint_hint: i64,
}

/// The steps of one batch inside its transaction, in order: lock the head, apply each change
/// in its savepoint and seal its events, insert the events, raise alerts, move the head, and
/// sign a checkpoint when one is due. Answers the checkpoint written and whether alerts were.
async fn write_batch(c: &mut Conn<'_>, batch: Batch<'_>, replies: &mut Replies) -> Result<Written> {
    let head = lock_head(c).await?;
    let forced = batch
        .commands
        .iter()
        .any(|cmd| forces_checkpoint(&cmd.change));
    let mut emergency = emergency_names(c, &batch.commands).await?;
    let sealed = apply_commands(c, batch.commands, head, &mut emergency, replies).await?;
    insert_events(c, &sealed).await?;
    // Alerts (built-in and custom rules, aggregated per rule and key) commit with the events
    // that raise them, so none is lost between an event and its delivery.
    let wrote_alerts =
        on_conn!(c, c => crate::alerts::Raise::raise(&mut **c, &sealed, batch.alerts).await?);
    let (seq, hash) = sealed.last().map_or(head, |e| (e.seq, e.hash));
    if seq != head.0 {
        c.execute(
            "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1",
            args![seq, &hash[..]],
        )
        .await?;
    }
    let due = Due {
        forced,
        time_due: batch.time_due,
    };
    let (checkpoint, newest_checkpoint) = match batch.key {
        // Not due by count (the newest checkpoint is at least the hint), time or force: no
        // need to read it.
        Some(_)
            if !forced
                && !batch.time_due
                && seq - batch.checkpoint_hint < batch.policy.every_events =>
        {
            (None, 0)
        }
        Some(key) => write_checkpoint(c, key, batch.policy, (seq, hash), due).await?,
        None => (None, 0),
    };
    Ok(Written {
        checkpoint,
        wrote_alerts,
        newest_checkpoint,
    })
}

/// Reads the chain's head under its lock (`FOR UPDATE`; SQLite's writer holds the database).
async fn lock_head(c: &mut Conn<'_>) -> Result<(i64, [u8; 32])> {
    let sql = match c {
        Conn::Sqlite(_) => "SELECT seq, hash FROM audit_head WHERE id = 1",
        Conn::Postgres(_) => "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE",
    };
    let (seq, hash): (i64, Vec<u8>) =
        on_conn!(c, c => sqlx::query_as(sql).fetch_one(&mut **c).await?);
    Ok((seq, to_hash(hash)?))
}

/// The names of the break-glass accounts, when any event of the batch names a user: every
/// event naming one (as actor or target) is tagged `emergency`, so the built-in critical rule
/// sees all of them, whatever code wrote the event. Other batches skip the (small, indexed)
/// read.
async fn emergency_names(c: &mut Conn<'_>, commands: &[Command]) -> Result<HashSet<String>> {
    if !commands
        .iter()
        .any(|cmd| cmd.events.iter().any(names_a_user))
    {
        return Ok(HashSet::new());
    }
    Ok(
        c.texts("SELECT name FROM principals WHERE emergency", args![])
            .await?
            .into_iter()
            .collect(),
    )
}

/// Applies each command's change in its own savepoint (so its failure rolls back alone) and
/// seals its events after the head in order. Each caller's answer goes to `replies`; the
/// events of the changes that applied are returned, to be inserted together.
async fn apply_commands(
    c: &mut Conn<'_>,
    commands: Vec<Command>,
    (mut seq, mut hash): (i64, [u8; 32]),
    emergency: &mut HashSet<String>,
    replies: &mut Replies,
) -> Result<Vec<AuditEvent>> {
    let mut pending: Vec<AuditEvent> = Vec::new();
    // Successes clearing throttle counters (one per issued token) are gathered while they come
    // one after another and cleared in one statement before the next other change, so the order
    // of changes to a counter stays the order of the commands.
    let mut resets = ThrottleResets::default();
    for cmd in commands {
        let step = match &cmd.change {
            // Pure appends cannot fail on their own and need no savepoint.
            Change::None | Change::ForceCheckpoint => Ok(()),
            // A plain delete that cannot conflict: without a savepoint of its own.
            Change::ResetThrottle { keys } => {
                resets.add(keys);
                Ok(())
            }
            other => {
                resets.flush(c).await?;
                crate::changes::apply::in_savepoint(c, other).await
            }
        };
        match step {
            Ok(()) => {
                new_emergency_names(&cmd.change, emergency);
                let now = OffsetDateTime::now_utc();
                let mut sealed = Vec::with_capacity(cmd.events.len());
                for mut ev in cmd.events {
                    storable(&mut ev);
                    tag_emergency(&mut ev, emergency);
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
    resets.flush(c).await?;
    Ok(pending)
}

/// Throttle counters to clear, gathered from consecutive [`Change::ResetThrottle`]s.
#[derive(Default)]
struct ThrottleResets(std::collections::BTreeSet<String>);

impl ThrottleResets {
    fn add(&mut self, keys: &[String]) {
        self.0.extend(keys.iter().cloned());
    }

    /// Clears the gathered counters in one statement (a failure fails the batch: it is not one
    /// caller's conflict but the database's).
    async fn flush(&mut self, c: &mut Conn<'_>) -> Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = std::mem::take(&mut self.0).into_iter().collect();
        for chunk in keys.chunks(INSERT_CHUNK) {
            on_conn!(c, c => {
                let mut q = sqlx::QueryBuilder::new("DELETE FROM throttle WHERE key IN (");
                let mut list = q.separated(", ");
                for key in chunk {
                    list.push_bind(key.clone());
                }
                q.push(")");
                q.build().execute(&mut **c).await?;
            });
        }
        Ok(())
    }
}

/// Inserts sealed events with multi-row INSERTs: a batch costs a handful of statements, not
/// several per caller.
async fn insert_events(c: &mut Conn<'_>, events: &[AuditEvent]) -> Result<()> {
    for chunk in events.chunks(INSERT_CHUNK) {
        on_conn!(c, c => {
        let mut q = sqlx::QueryBuilder::new(
            "INSERT INTO audit_events (seq, time_us, actor, action, target, outcome, details, prev_hash, hash) ",
        );
        q.push_values(chunk, |mut b, e| {
            b.push_bind(e.seq)
                .push_bind(e.time_us)
                .push_bind(e.actor.clone())
                .push_bind(e.action.clone())
                .push_bind(e.target.clone())
                .push_bind(e.outcome.as_str())
                .push_bind(e.details.to_string())
                .push_bind(e.prev_hash.to_vec())
                .push_bind(e.hash.to_vec());
        });
        q.build().execute(&mut **c).await?;
        });
    }
    Ok(())
}

/// When a checkpoint is due.
struct Due {
    forced: bool,
    time_due: bool,
}

/// Signs a checkpoint at the head when one is due, linked to the newest one (read under the
/// head lock). Answers it and the newest checkpoint's sequence number before it.
async fn write_checkpoint(
    c: &mut Conn<'_>,
    key: &ServerKey,
    policy: CheckpointPolicy,
    (seq, hash): (i64, [u8; 32]),
    due: Due,
) -> Result<(Option<Checkpoint>, i64)> {
    let last = on_conn!(c, c => {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM audit_checkpoints ORDER BY seq DESC LIMIT 1",
            crate::CHECKPOINT_COLS
        )))
        .fetch_optional(&mut **c)
        .await?;
        match row {
            Some(r) => Some((r.try_get::<i64, _>("seq")?, crate::checkpoint_from_row(&r))),
            None => None,
        }
    });
    let last_cp = last.as_ref().map_or(0, |(s, _)| *s);
    if seq <= last_cp || !(due.forced || seq - last_cp >= policy.every_events || due.time_due) {
        return Ok((None, last_cp));
    }
    let prev = match last.map(|(_, cp)| cp).transpose() {
        Ok(prev) => prev,
        // Someone edited the newest checkpoint so it no longer decodes: there is nothing
        // honest to link to. Writes go on; verification names the row.
        Err(e) => {
            tracing::error!(error = %e, "the newest audit checkpoint is malformed; no checkpoint written");
            return Ok((None, last_cp));
        }
    };
    let link = CheckpointLink::after(
        prev.as_ref(),
        micros(OffsetDateTime::now_utc()),
        policy.cadence(),
    );
    let cp = Checkpoint::sign(seq, hash, link, &key.key_id, &key.key);
    c.execute(
        "INSERT INTO audit_checkpoints (seq, hash, key_id, signature, created_at_us, prev_seq, prev_digest, cadence_events, cadence_seconds) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        args![
            cp.seq,
            &cp.hash[..],
            &cp.key_id,
            &cp.signature[..],
            link.created_at_us,
            link.prev_seq,
            &link.prev_digest[..],
            link.cadence.events,
            link.cadence.seconds
        ],
    )
    .await?;
    Ok((Some(cp), last_cp))
}

/// Makes an event storable on both backends before it is sealed: PostgreSQL refuses NUL in
/// text, and the events of a batch are inserted together, so one NUL from a request (the edges
/// refuse them; this is the depth behind them) must not fail everyone's writes. A NUL becomes
/// U+FFFD in the actor, action, target and every string and key of the details; the hash is
/// computed over what is stored.
fn storable(ev: &mut NewAuditEvent) {
    fn clean(s: &mut String) {
        if s.contains('\0') {
            *s = s.replace('\0', "\u{fffd}");
        }
    }
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => clean(s),
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            serde_json::Value::Object(o) => {
                if o.keys().any(|k| k.contains('\0')) {
                    let old = std::mem::take(o);
                    for (mut k, v) in old {
                        clean(&mut k);
                        o.insert(k, v);
                    }
                }
                o.values_mut().for_each(walk);
            }
            _ => {}
        }
    }
    clean(&mut ev.actor);
    clean(&mut ev.action);
    clean(&mut ev.target);
    walk(&mut ev.details);
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
