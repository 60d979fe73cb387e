//! The audit anchor webhook (`audit_anchor_webhook`): every checkpoint's anchor record is also
//! POSTed (JSON) to a URL outside the database's reach, e.g. a transparency log or a SIEM.
//!
//! Invariants:
//! - Never blocks or fails a write: the store's writer only enqueues the record (a full queue
//!   is reported like any failed anchor); a worker posts it with retries and backoff.
//! - A record that could not be delivered is logged at ERROR and, once per failing spell,
//!   recorded as an alert-worthy `audit.anchor_failed` event (`audit.anchor_recovered` when a
//!   delivery works again). The URL is never logged or recorded: it may carry a token.
//! - On shutdown the worker drains what is queued (including the final checkpoint's record)
//!   for a bounded time.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::audit::{AnchorRecord, NewAuditEvent, Outcome};
use portcullis_store::{AnchorSink, Store};
use tokio::sync::mpsc;

/// Records waiting for delivery; beyond this, new ones are reported as not anchored.
const QUEUE: usize = 1024;
/// Attempts per record while running, and the pause before each retry.
const BACKOFF: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the worker keeps draining the queue after the server stopped.
const DRAIN_FOR: Duration = Duration::from_secs(5);

/// The sink the store's writer calls: enqueues, never waits.
#[derive(Debug)]
pub struct WebhookAnchor {
    tx: mpsc::Sender<AnchorRecord>,
}

impl AnchorSink for WebhookAnchor {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn append(&self, record: &AnchorRecord) -> Result<(), String> {
        self.tx
            .try_send(record.clone())
            .map_err(|_| "the webhook queue is full or closed".to_owned())
    }
}

/// Posts queued records.
pub struct WebhookWorker {
    rx: mpsc::Receiver<AnchorRecord>,
    url: url::Url,
    http: reqwest::Client,
}

/// The sink and its worker for `url`.
pub fn webhook(url: url::Url) -> Result<(Arc<WebhookAnchor>, WebhookWorker), reqwest::Error> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    Ok((
        Arc::new(WebhookAnchor { tx }),
        WebhookWorker { rx, url, http },
    ))
}

impl WebhookWorker {
    /// Delivers until `shutdown` resolves, then drains the queue for [`DRAIN_FOR`].
    pub async fn run(mut self, store: Store, shutdown: impl std::future::Future<Output = ()>) {
        let mut failing = false;
        tokio::pin!(shutdown);
        loop {
            let record = tokio::select! {
                r = self.rx.recv() => match r {
                    Some(r) => r,
                    None => return,
                },
                _ = &mut shutdown => break,
            };
            let result = self.deliver(&record, &BACKOFF).await;
            self.report(&store, &record, result, &mut failing).await;
        }
        let drain = async {
            while let Some(record) = self.rx.recv().await {
                let result = self.deliver(&record, &[]).await;
                self.report(&store, &record, result, &mut failing).await;
            }
        };
        let _ = tokio::time::timeout(DRAIN_FOR, drain).await;
    }

    /// One attempt, then one more after each pause in `backoff`.
    async fn deliver(&self, record: &AnchorRecord, backoff: &[Duration]) -> Result<(), String> {
        let mut last = String::new();
        for pause in std::iter::once(None).chain(backoff.iter().map(Some)) {
            if let Some(p) = pause {
                tokio::time::sleep(*p).await;
            }
            match self.http.post(self.url.clone()).json(record).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => last = format!("the webhook answered {}", r.status().as_u16()),
                Err(e) if e.is_timeout() => last = "the webhook timed out".to_owned(),
                Err(_) => last = "the webhook could not be reached".to_owned(),
            }
        }
        Err(last)
    }

    async fn report(
        &self,
        store: &Store,
        record: &AnchorRecord,
        result: Result<(), String>,
        failing: &mut bool,
    ) {
        let event = match result {
            Err(reason) => {
                tracing::error!(seq = record.seq, %reason, "audit checkpoint not anchored to the webhook");
                if *failing {
                    return;
                }
                *failing = true;
                NewAuditEvent::new("system", "audit.anchor_failed", "audit")
                    .outcome(Outcome::Failure)
                    .details(serde_json::json!({
                        "alert": true,
                        "sink": "webhook",
                        "checkpoint_seq": record.seq,
                        "error": reason,
                    }))
            }
            Ok(()) if *failing => {
                *failing = false;
                NewAuditEvent::new("system", "audit.anchor_recovered", "audit")
                    .details(serde_json::json!({ "sink": "webhook", "checkpoint_seq": record.seq }))
            }
            Ok(()) => return,
        };
        if let Err(e) = store.append(event).await {
            tracing::error!(error = %e, "could not record the anchor webhook's state");
        }
    }
}
