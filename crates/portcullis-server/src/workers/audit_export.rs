//! The SIEM export worker: delivers every audit event, in order, to the configured sink
//! (`crate::services::audit_export`), from a cursor kept in the database.
//!
//! Invariants:
//! - One replica of a group delivers a sink at a time: the holder of its lease
//!   ([`LEASE`], renewed with every batch and while idle). A stopping replica gives the lease
//!   up so another takes over at once; a killed one's lapses after [`LEASE`].
//! - The cursor moves only after a batch was delivered, only by the holder, and only from the
//!   position it read, so each event is delivered once per replica group. The window where a
//!   batch can go out twice is a crash (or a lost lease) between a delivery and the cursor's
//!   commit; a file sink closes even that window (it knows its own last line), and every
//!   message carries its `seq`, so a syslog receiver can drop a repeat.
//! - A batch is only written while the lease has more than [`RENEW_BELOW`] left, which is more
//!   than a delivery may take, so a lease never lapses in the middle of a delivery.
//! - Failures are retried with backoff (at most [`BACKOFF_MAX`] apart), logged, and recorded
//!   once per failing spell as an alert-worthy `audit.export_failed` event
//!   (`audit.export_recovered` when delivery works again).
//! - On stop the worker keeps delivering for at most [`DRAIN_FOR`] (the server's final events
//!   included), then releases the lease.

use std::time::Duration;

use portcullis_core::api::AuditEventView;
use portcullis_core::audit::{NewAuditEvent, Outcome};
use portcullis_store::{AuditFilter, Change, EXPORT_HELD, Store, StoreError};
use time::OffsetDateTime;

use crate::services::audit_export::Sink;
use crate::time_us::us;

/// How long a lease runs unless renewed.
pub const LEASE: Duration = Duration::from_secs(30);
/// The lease is renewed before a batch when less than this is left (more than a delivery's
/// connect and write timeouts together).
const RENEW_BELOW: Duration = Duration::from_secs(20);
/// How often a replica without the lease, or with nothing to deliver, looks again.
const POLL: Duration = Duration::from_secs(1);
/// Events delivered per batch.
const BATCH: i64 = 500;
/// Longest pause between failed attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// How long a stopping worker keeps delivering.
const DRAIN_FOR: Duration = Duration::from_secs(5);

/// One sink's exporter.
pub struct Exporter {
    pub sink: Sink,
    /// The sink's name (its row in the cursor table and its metric label).
    pub name: String,
    /// This replica, for the lease.
    pub holder: String,
}

fn micros(d: Duration) -> i64 {
    d.as_micros() as i64
}

impl Exporter {
    /// Delivers until `stop` resolves, then drains for [`DRAIN_FOR`] and releases the lease.
    pub async fn run(mut self, store: Store, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut stopping: Option<tokio::time::Instant> = None;
        // Some(cursor, lease end) while this replica holds the lease.
        let mut held: Option<(i64, i64)> = None;
        let mut failing = false;
        let mut backoff = Duration::from_secs(1);
        loop {
            if stopping.is_some_and(|deadline| tokio::time::Instant::now() >= deadline) {
                break;
            }
            let now = us(OffsetDateTime::now_utc());
            if held.is_none_or(|(_, until)| until - now < micros(RENEW_BELOW)) {
                match self.claim(&store, now, held.map(|(c, _)| c)).await {
                    Ok(h) => held = Some(h),
                    Err(waiting) => {
                        held = None;
                        if stopping.is_some() {
                            break;
                        }
                        if let Some(reason) = waiting {
                            tracing::warn!(sink = %self.name, %reason, "audit export cannot take its lease");
                        }
                        wait(&mut stop, &mut stopping, POLL, None).await;
                        continue;
                    }
                }
            }
            let Some((cursor, _)) = held else { continue };
            let filter = AuditFilter {
                after_seq: Some(cursor),
                limit: BATCH,
                ..AuditFilter::default()
            };
            let events: Vec<AuditEventView> = match store.list_events(&filter).await {
                Ok(e) => e.into_iter().map(AuditEventView::from).collect(),
                Err(e) => {
                    tracing::warn!(sink = %self.name, error = %e, "audit export cannot read events");
                    wait(&mut stop, &mut stopping, POLL, None).await;
                    continue;
                }
            };
            let Some(last) = events.last().map(|e| e.seq) else {
                if stopping.is_some() {
                    break;
                }
                wait(&mut stop, &mut stopping, POLL, Some(&store)).await;
                continue;
            };
            match self.sink.deliver(&events).await {
                Ok(()) => {
                    backoff = Duration::from_secs(1);
                    let at = us(OffsetDateTime::now_utc());
                    let advance = Change::AdvanceAuditExport {
                        sink: self.name.clone(),
                        holder: self.holder.clone(),
                        from_seq: cursor,
                        to_seq: last,
                        at_us: at,
                        lease_until_us: at + micros(LEASE),
                    };
                    match store.write(advance, vec![]).await {
                        Ok(_) => held = Some((last, at + micros(LEASE))),
                        Err(e) => {
                            // Lost the lease (or the database): read the cursor again before
                            // anything more goes out.
                            tracing::warn!(sink = %self.name, error = %e, "audit export delivered a batch but could not record it");
                            held = None;
                        }
                    }
                    if failing {
                        failing = false;
                        self.record(&store, None, last).await;
                    }
                }
                Err(e) => {
                    tracing::error!(sink = %self.name, error = %e, after = cursor, "audit export delivery failed");
                    if !failing {
                        failing = true;
                        self.record(&store, Some(e.0.clone()), cursor).await;
                    }
                    if stopping.is_some() {
                        break;
                    }
                    wait(&mut stop, &mut stopping, backoff, None).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        if held.is_some() {
            let release = Change::ReleaseAuditExport {
                sink: self.name.clone(),
                holder: self.holder.clone(),
            };
            if let Err(e) = store.write(release, vec![]).await {
                tracing::warn!(sink = %self.name, error = %e, "audit export could not release its lease");
            }
        }
    }

    /// Takes or renews the lease; returns the cursor and the lease's end. `Err(None)`: another
    /// replica holds it; `Err(Some(reason))`: the database failed.
    async fn claim(
        &mut self,
        store: &Store,
        now: i64,
        known: Option<i64>,
    ) -> Result<(i64, i64), Option<String>> {
        let until = now + micros(LEASE);
        if known.is_none() {
            // A standby replica reads before it writes: no write a second while another holds it.
            match store.audit_export_cursor(&self.name).await {
                Ok(Some(c)) if c.holder != self.holder && c.lease_until_us > now => {
                    return Err(None);
                }
                Ok(_) => {}
                Err(e) => return Err(Some(e.to_string())),
            }
        }
        let claim = Change::ClaimAuditExport {
            sink: self.name.clone(),
            holder: self.holder.clone(),
            at_us: now,
            lease_until_us: until,
        };
        match store.write(claim, vec![]).await {
            Ok(_) => {}
            Err(StoreError::Conflict(c)) if c == EXPORT_HELD => return Err(None),
            Err(e) => return Err(Some(e.to_string())),
        }
        if let Some(cursor) = known {
            return Ok((cursor, until));
        }
        // Newly taken: where the group stands, and where the sink itself says it stands.
        let cursor = match store.audit_export_cursor(&self.name).await {
            Ok(Some(c)) => c.seq,
            Ok(None) => 0,
            Err(e) => return Err(Some(e.to_string())),
        };
        let held_by_sink = self.sink.resume_after().await.map_err(|e| Some(e.0))?;
        match held_by_sink {
            Some(seq) if seq > cursor => {
                // The sink got events whose delivery was never recorded (a crash in between):
                // record them now instead of sending them again.
                let head = store
                    .list_events(&AuditFilter {
                        after_seq: Some(seq - 1),
                        limit: 1,
                        ..AuditFilter::default()
                    })
                    .await
                    .map_err(|e| Some(e.to_string()))?;
                if head.is_empty() {
                    // The file claims events the database does not have: another tenant's
                    // file, or a restored database. Keep the cursor; say so.
                    tracing::error!(sink = %self.name, file_seq = seq, cursor, "the export file is ahead of the audit log; continuing from the database's cursor");
                    return Ok((cursor, until));
                }
                let advance = Change::AdvanceAuditExport {
                    sink: self.name.clone(),
                    holder: self.holder.clone(),
                    from_seq: cursor,
                    to_seq: seq,
                    at_us: now,
                    lease_until_us: until,
                };
                store
                    .write(advance, vec![])
                    .await
                    .map_err(|e| Some(e.to_string()))?;
                tracing::info!(sink = %self.name, from = cursor, to = seq, "audit export resumed after events the file already holds");
                Ok((seq, until))
            }
            _ => Ok((cursor, until)),
        }
    }

    /// Records the start (`Some(reason)`) or the end (`None`) of a failing spell.
    async fn record(&self, store: &Store, failure: Option<String>, seq: i64) {
        let event = match failure {
            Some(reason) => NewAuditEvent::new("system", "audit.export_failed", "audit")
                .outcome(Outcome::Failure)
                .details(serde_json::json!({
                    "alert": true,
                    "sink": self.name,
                    "after_seq": seq,
                    "error": reason,
                })),
            None => NewAuditEvent::new("system", "audit.export_recovered", "audit")
                .details(serde_json::json!({ "sink": self.name, "through_seq": seq })),
        };
        if let Err(e) = store.append(event).await {
            tracing::error!(error = %e, "could not record the audit export's state");
        }
    }
}

/// Waits `pause` (or, given the store, until this process appends events), or until `stop`
/// resolves (which starts the drain). Returns whether the stop arrived now.
async fn wait(
    stop: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    stopping: &mut Option<tokio::time::Instant>,
    pause: Duration,
    store: Option<&Store>,
) -> bool {
    if stopping.is_some() {
        // Draining: no waiting for new events beyond a short pause.
        tokio::time::sleep(pause.min(Duration::from_millis(100))).await;
        return false;
    }
    let appended = async {
        match store {
            Some(s) => s.audit_written().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::time::sleep(pause) => false,
        _ = appended => false,
        _ = stop.as_mut() => {
            *stopping = Some(tokio::time::Instant::now() + DRAIN_FOR);
            true
        }
    }
}
