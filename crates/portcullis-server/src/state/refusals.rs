//! Refused attempts as evidence (privilege model rule 9): every `403` answered to an
//! authenticated caller — a missing permission, a self-assignment, a refused approval, a
//! privileged person out of reach — is audited as `authz.refused`.
//!
//! Invariants:
//! - Aggregated per actor and action (method and route) per minute, so a flood cannot bury the
//!   log: the first refusal of a minute is written at once (`count: 1`), the others of that
//!   minute as one event with their `count` once the minute is over (by the next refusal of
//!   the same key, or by the flusher that runs every few seconds, or at shutdown). Custom alert
//!   rules count an event with `details.count` as that many.
//! - Memory is bounded by the keys of the current minute: a key whose window is flushed and
//!   over is forgotten.
//! - The windows are per process; with several replicas each writes its own summaries (the
//!   counts add up, nothing is lost or counted twice).

use std::collections::HashMap;
use std::sync::Mutex;

use portcullis_core::audit::{NewAuditEvent, Outcome};
use portcullis_store::Store;

/// One actor's refusals of one action in the current minute.
#[derive(Debug, Clone)]
struct Window {
    minute: i64,
    /// Refusals after the first (which was written when it happened).
    more: u64,
    /// The error code of the latest refusal.
    code: String,
}

/// The per-process aggregation of refusals.
#[derive(Debug, Default)]
pub struct Refusals {
    windows: Mutex<HashMap<(String, String, String), Window>>,
}

/// The audit event for `count` refusals of `method route` to `actor`.
fn refused_event(
    actor: &str,
    method: &str,
    route: &str,
    code: &str,
    count: u64,
    minute: i64,
) -> NewAuditEvent {
    let start = time::OffsetDateTime::from_unix_timestamp(minute.saturating_mul(60))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    NewAuditEvent::new(actor, "authz.refused", format!("route:{method} {route}"))
        .outcome(Outcome::Failure)
        .details(serde_json::json!({
            "method": method, "route": route, "code": code, "count": count, "minute": start,
        }))
}

impl Refusals {
    /// Records a refusal at `now_s` (Unix seconds); returns the events to write now: this
    /// refusal when it is the first of its minute, and the summary of the key's earlier minute.
    pub fn record(
        &self,
        actor: &str,
        method: &str,
        route: &str,
        code: &str,
        now_s: i64,
    ) -> Vec<NewAuditEvent> {
        let minute = now_s.div_euclid(60);
        let key = (actor.to_owned(), method.to_owned(), route.to_owned());
        let mut out = Vec::new();
        let Ok(mut windows) = self.windows.lock() else {
            // A poisoned lock must not lose the evidence: write each refusal.
            return vec![refused_event(actor, method, route, code, 1, minute)];
        };
        match windows.get_mut(&key) {
            Some(w) if w.minute == minute => {
                w.more += 1;
                w.code = code.to_owned();
            }
            other => {
                if let Some(w) = other
                    && w.more > 0
                {
                    out.push(refused_event(
                        actor, method, route, &w.code, w.more, w.minute,
                    ));
                }
                windows.insert(
                    key,
                    Window {
                        minute,
                        more: 0,
                        code: code.to_owned(),
                    },
                );
                out.push(refused_event(actor, method, route, code, 1, minute));
            }
        }
        out
    }

    /// The summaries of minutes that are over (all of them with `all`, at shutdown); their keys
    /// are forgotten.
    pub fn due(&self, now_s: i64, all: bool) -> Vec<NewAuditEvent> {
        let minute = now_s.div_euclid(60);
        let Ok(mut windows) = self.windows.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        windows.retain(|(actor, method, route), w| {
            if w.minute < minute || all {
                if w.more > 0 {
                    out.push(refused_event(
                        actor, method, route, &w.code, w.more, w.minute,
                    ));
                }
                false
            } else {
                true
            }
        });
        out
    }
}

/// Writes the summaries of finished minutes every few seconds until `stop`, then all.
pub async fn flusher(
    store: Store,
    refusals: std::sync::Arc<Refusals>,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        let done = tokio::select! {
            _ = &mut stop => true,
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => false,
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        for ev in refusals.due(now, done) {
            if let Err(e) = store.append(ev).await {
                tracing::warn!(error = %e, "could not record refused attempts");
            }
        }
        if done {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(ev: &NewAuditEvent) -> u64 {
        ev.details["count"].as_u64().unwrap_or(0)
    }

    #[test]
    fn the_first_refusal_of_a_minute_is_written_at_once() {
        let r = Refusals::default();
        let evs = r.record("user:eve", "POST", "/api/v1/assignments", "forbidden", 600);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].action, "authz.refused");
        assert_eq!(count(&evs[0]), 1);
        assert_eq!(evs[0].outcome, Outcome::Failure);
    }

    #[test]
    fn a_flood_becomes_one_summary_per_minute() {
        let r = Refusals::default();
        let mut written = Vec::new();
        for i in 0..500 {
            written.extend(r.record(
                "user:eve",
                "POST",
                "/api/v1/roles",
                "forbidden",
                600 + i % 60,
            ));
        }
        assert_eq!(written.len(), 1);
        // Nothing is due while the minute lasts.
        assert!(r.due(659, false).is_empty());
        let summary = r.due(660, false);
        assert_eq!(summary.len(), 1);
        assert_eq!(count(&summary[0]), 499);
        // Forgotten once flushed: memory stays bounded.
        assert!(r.due(720, true).is_empty());
    }

    #[test]
    fn the_next_minute_closes_the_earlier_one() {
        let r = Refusals::default();
        r.record(
            "user:eve",
            "DELETE",
            "/api/v1/assignments/{id}",
            "forbidden",
            0,
        );
        r.record(
            "user:eve",
            "DELETE",
            "/api/v1/assignments/{id}",
            "forbidden",
            10,
        );
        let evs = r.record(
            "user:eve",
            "DELETE",
            "/api/v1/assignments/{id}",
            "self_assignment",
            61,
        );
        let counts: Vec<u64> = evs.iter().map(count).collect();
        assert_eq!(counts, vec![1, 1]);
        assert_eq!(evs[0].details["code"], "forbidden");
        assert_eq!(evs[1].details["code"], "self_assignment");
    }

    #[test]
    fn actors_and_actions_are_counted_apart() {
        let r = Refusals::default();
        assert_eq!(r.record("user:eve", "POST", "/a", "forbidden", 5).len(), 1);
        assert_eq!(
            r.record("user:mallory", "POST", "/a", "forbidden", 5).len(),
            1
        );
        assert_eq!(r.record("user:eve", "GET", "/a", "forbidden", 5).len(), 1);
        assert_eq!(r.record("user:eve", "POST", "/a", "forbidden", 6).len(), 0);
        // Shutdown writes what is pending.
        let rest = r.due(7, true);
        assert_eq!(rest.len(), 1);
        assert_eq!(count(&rest[0]), 1);
    }
}
