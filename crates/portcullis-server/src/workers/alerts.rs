//! The alert delivery worker: takes due outbox messages and sends them by SMTP, webhook or SMS
//! gateway (invariants in [`crate::services::alerts`]: one claim per attempt across replicas,
//! capped backoff, dead letters reported on every other channel, the SMS cap decided inside
//! the serialised write, secrets never logged).

use std::sync::Arc;
use std::time::Duration as StdDuration;

use hmac::{Hmac, Mac};
use portcullis_core::alerts::{Escape, Severity, backoff, render_template, suppressed_note};
use portcullis_core::audit::NewAuditEvent;
use portcullis_store::alerts::{AlertChannel, OutboxMessage, channel_config_aad};
use portcullis_store::{Change, MasterKey, NewOutboxMessage, OutboxAttempt, Store, StoreError};
use sha2::Sha256;
use time::OffsetDateTime;

use crate::services::accounts::new_id;
use crate::services::alerts::{CLAIM_FOR, recipients_of, seal_aad, text_of};
use crate::time_us::us;

/// Timeout of one HTTP or SMTP delivery.
const DELIVERY_TIMEOUT: StdDuration = StdDuration::from_secs(10);
/// How often the worker looks for due messages (retries, other replicas' alerts); alerts
/// this process writes wake it at once.
const POLL: StdDuration = StdDuration::from_millis(250);
/// Messages delivered at once by one worker.
const CONCURRENCY: usize = 16;

/// What delivery needs besides the store.
#[derive(Clone)]
pub struct Deliverer {
    store: Store,
    master: Arc<MasterKey>,
    http: reqwest::Client,
    worker: String,
    max_attempts: i64,
    sms_max_per_hour: i64,
}

impl Deliverer {
    pub fn new(
        store: Store,
        master: Arc<MasterKey>,
        max_attempts: u32,
        sms_max_per_hour: u32,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            store,
            master,
            http,
            worker: new_id("w"),
            max_attempts: i64::from(max_attempts.max(1)),
            sms_max_per_hour: i64::from(sms_max_per_hour.max(1)),
        })
    }

    /// Delivers until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let limit = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = self.store.alerts_written() => {}
                _ = &mut shutdown => return,
            }
            let now = OffsetDateTime::now_utc();
            let due = match self.store.due_outbox(us(now), CONCURRENCY as i64 * 2).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the outbox");
                    continue;
                }
            };
            for id in due {
                let Ok(permit) = limit.clone().acquire_owned().await else {
                    return;
                };
                let me = self.clone();
                tokio::spawn(async move {
                    me.attempt(&id).await;
                    drop(permit);
                });
            }
        }
    }

    /// One attempt at one message: claim, send, record.
    pub async fn attempt(&self, id: &str) {
        let now = OffsetDateTime::now_utc();
        let claim = Change::ClaimOutbox {
            id: id.to_owned(),
            worker: self.worker.clone(),
            now_us: us(now),
            until_us: us(now + CLAIM_FOR),
            sms_max_per_hour: Some(self.sms_max_per_hour),
        };
        match self.store.write(claim, vec![]).await {
            Ok(_) => {}
            Err(StoreError::Conflict(_)) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim an outbox message");
                return;
            }
        }
        let m = match self.store.outbox_message(id).await {
            Ok(Some(m)) => m,
            _ => return,
        };
        // Over the SMS cap: the claim recorded it as suppressed; nothing to send.
        if m.state == "suppressed" {
            tracing::info!(message = %m.id, channel = ?m.channel, "SMS held back by the hourly cap");
            return;
        }
        let result = self.send(&m).await;
        let finished = OffsetDateTime::now_utc();
        let used = m.attempts - m.budget_from;
        let (delivered, detail, retry_at) = match &result {
            Ok(()) => (true, None, None),
            Err(e) if used < self.max_attempts => (
                false,
                Some(e.clone()),
                Some(us(
                    finished + backoff(u32::try_from(used).unwrap_or(u32::MAX))
                )),
            ),
            Err(e) => (false, Some(e.clone()), None),
        };
        let dead = !delivered && retry_at.is_none();
        let mut changes = vec![Change::FinishOutbox(OutboxAttempt {
            id: m.id.clone(),
            worker: self.worker.clone(),
            attempt: m.attempts,
            started_at_us: us(now),
            finished_at_us: us(finished),
            delivered,
            detail: detail.clone(),
            retry_at_us: retry_at,
        })];
        let mut events = Vec::new();
        if dead {
            events.push(
                NewAuditEvent::new(
                    "system:alerts",
                    "alert.dead_lettered",
                    format!("alert:{}", m.id),
                )
                .outcome(portcullis_core::audit::Outcome::Failure)
                .details(serde_json::json!({
                    "rule": m.topic, "channel": m.channel, "recipient": m.recipient,
                    "attempts": used, "last_error": detail,
                })),
            );
            // A critical alert nobody received is itself critical, on every other channel.
            let critical = m.severity.as_deref() == Some(Severity::Critical.as_str());
            if critical && m.topic != "alert.dead_lettered" {
                match self
                    .dead_letter_notices(&m, detail.as_deref().unwrap_or(""), finished)
                    .await
                {
                    Ok(notices) => changes.extend(notices),
                    // Without the channels the report cannot be queued: record nothing, so
                    // the claim lapses and the last attempt is made again later, report and all.
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the channels to report a dead letter");
                        return;
                    }
                }
            }
        }
        if let Err(e) = self.store.write(Change::Many(changes), events).await {
            tracing::warn!(error = %e, "cannot record a delivery attempt");
        }
    }

    async fn dead_letter_notices(
        &self,
        m: &OutboxMessage,
        error: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Change>, portcullis_store::StoreError> {
        let channels = self.store.alert_channels().await?;
        let text = format!(
            "[CRITICAL] a critical alert could not be delivered through channel {} to {}: {} (alert {}: {})",
            m.channel.as_deref().unwrap_or("-"),
            m.recipient,
            error,
            m.id,
            text_of(m),
        );
        let payload = serde_json::json!({
            "alert": { "rule": "alert.dead_lettered", "severity": "critical", "summary": text },
            "text": text,
            "event": null,
            "dead_lettered": m.id,
        });
        Ok(channels
            .iter()
            .filter(|c| Some(&c.name) != m.channel.as_ref())
            .flat_map(|c| {
                recipients_of(c).into_iter().map(|r| {
                    Change::Enqueue(NewOutboxMessage {
                        id: new_id("m"),
                        kind: "alert".into(),
                        topic: "alert.dead_lettered".into(),
                        recipient: r,
                        payload: payload.to_string(),
                        at_us: us(now),
                        channel: Some(c.name.clone()),
                        severity: Some("critical".into()),
                    })
                })
            })
            .collect())
    }

    /// Sends one message through its channel. The error is a short reason without secrets.
    async fn send(&self, m: &OutboxMessage) -> Result<(), String> {
        if m.kind == "notification" {
            return self.send_notification(m).await;
        }
        let Some(name) = &m.channel else {
            return Err("no channel".into());
        };
        let c = self
            .store
            .alert_channel(name)
            .await
            .map_err(|_| "cannot read the channel".to_owned())?
            .ok_or_else(|| "the channel was removed".to_owned())?;
        let config = self.full_config(&c)?;
        let payload: serde_json::Value =
            serde_json::from_str(&m.payload).map_err(|_| "unreadable payload".to_owned())?;
        let mut text = payload
            .get("text")
            .and_then(|t| t.as_str())
            .unwrap_or("")
            .to_owned();
        if c.kind == "sms" {
            // The messages the cap held back before this one (named by its claim).
            let held = self
                .store
                .suppressed_before(&m.id)
                .await
                .map_err(|_| "cannot read the outbox".to_owned())?;
            if held > 0 {
                text.push_str(&suppressed_note(held, self.sms_max_per_hour));
            }
        }
        match c.kind.as_str() {
            "webhook" => self.send_webhook(&c, &config, m, &payload, &text).await,
            "email" => send_email(&config, m, &payload, &text).await,
            "sms" => self.send_sms(&config, m, &text).await,
            other => Err(format!("unknown channel kind {other}")),
        }
    }

    /// A notification to people (`user:NAME`, `group:NAME`, or an address) by email, through
    /// the email channel that carries notifications.
    async fn send_notification(&self, m: &OutboxMessage) -> Result<(), String> {
        let channels = self
            .store
            .alert_channels()
            .await
            .map_err(|_| "cannot read the channels".to_owned())?;
        // `notifications` is a display field, in clear; the rest is opened for the one used.
        let channel = channels
            .iter()
            .filter(|c| c.kind == "email")
            .find(|c| {
                serde_json::from_str::<serde_json::Value>(&c.config)
                    .ok()
                    .and_then(|v| v.get("notifications").and_then(|n| n.as_bool()))
                    == Some(true)
            })
            .ok_or_else(|| {
                "no email channel carries notifications (add one with notifications)".to_owned()
            })?;
        let mut config = self.full_config(channel)?;
        let to = self.addresses_of(&m.recipient).await?;
        if let Some(o) = config.as_object_mut() {
            o.insert("to".into(), serde_json::json!(to));
        }
        let payload: serde_json::Value =
            serde_json::from_str(&m.payload).map_err(|_| "unreadable payload".to_owned())?;
        let text = notification_text(&m.topic, &payload);
        let wrapped =
            serde_json::json!({ "alert": { "summary": text }, "text": text, "event": payload });
        send_email(&config, m, &wrapped, &text).await
    }

    /// A channel's full configuration: opened from its sealed copy, or the clear one of a row
    /// written before sealing that start-up has not sealed yet.
    fn full_config(&self, c: &AlertChannel) -> Result<serde_json::Value, String> {
        let text = match &c.sealed_config {
            Some(sealed) => {
                let plain = self
                    .master
                    .open(&channel_config_aad(&c.name), sealed)
                    .map_err(|_| "cannot open the channel configuration".to_owned())?;
                String::from_utf8(plain.to_vec())
                    .map_err(|_| "unreadable channel configuration".to_owned())?
            }
            None => c.config.clone(),
        };
        serde_json::from_str(&text).map_err(|_| "unreadable channel configuration".to_owned())
    }

    async fn addresses_of(&self, recipient: &str) -> Result<Vec<String>, String> {
        let store_err = |_| "cannot read the directory".to_owned();
        if let Some(name) = recipient.strip_prefix("user:") {
            let p = self
                .store
                .principal_by_name(name)
                .await
                .map_err(store_err)?;
            return p
                .and_then(|p| p.email)
                .map(|e| vec![e])
                .ok_or_else(|| format!("{recipient} has no email address"));
        }
        if let Some(name) = recipient.strip_prefix("group:") {
            let g = self
                .store
                .principal_by_name(name)
                .await
                .map_err(store_err)?
                .ok_or_else(|| format!("no group {name}"))?;
            let emails: Vec<String> = self
                .store
                .group_members(&g.id)
                .await
                .map_err(store_err)?
                .into_iter()
                .filter(|p| p.enabled)
                .filter_map(|p| p.email)
                .collect();
            if emails.is_empty() {
                return Err(format!("no member of {recipient} has an email address"));
            }
            return Ok(emails);
        }
        portcullis_core::principal::parse_email(recipient)
            .map(|e| vec![e])
            .map_err(|_| format!("{recipient} is not a recipient"))
    }

    async fn send_webhook(
        &self,
        c: &AlertChannel,
        config: &serde_json::Value,
        m: &OutboxMessage,
        payload: &serde_json::Value,
        text: &str,
    ) -> Result<(), String> {
        let url = config.get("url").and_then(|u| u.as_str()).ok_or("no url")?;
        let body = match config.get("shape").and_then(|s| s.as_str()) {
            Some("slack") => serde_json::json!({ "text": text }),
            _ => {
                let mut p = payload.clone();
                if let Some(o) = p.as_object_mut() {
                    o.insert("id".into(), m.id.clone().into());
                }
                p
            }
        }
        .to_string();
        let mut rb = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("x-portcullis-message-id", &m.id);
        if let Some(sealed) = &c.sealed_secret {
            let key = self
                .master
                .open(&seal_aad(&c.name), sealed)
                .map_err(|_| "cannot open the signing key".to_owned())?;
            let t = OffsetDateTime::now_utc().unix_timestamp();
            rb = rb.header(
                "x-portcullis-signature",
                signature(key.as_slice(), t, &body),
            );
        }
        let r = rb.body(body).send().await.map_err(|e| http_error(&e))?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", r.status().as_u16()))
        }
    }

    async fn send_sms(
        &self,
        config: &serde_json::Value,
        m: &OutboxMessage,
        text: &str,
    ) -> Result<(), String> {
        let url = config.get("url").and_then(|u| u.as_str()).ok_or("no url")?;
        let method = config
            .get("method")
            .and_then(|u| u.as_str())
            .unwrap_or("POST");
        let template = config
            .get("template")
            .and_then(|u| u.as_str())
            .ok_or("no template")?;
        let mut content_type = "text/plain".to_owned();
        let mut headers = Vec::new();
        if let Some(h) = config.get("headers").and_then(|h| h.as_object()) {
            for (k, v) in h {
                let v = v.as_str().unwrap_or("");
                let value = match v.strip_prefix("env:") {
                    Some(n) => std::env::var(n)
                        .map_err(|_| format!("environment variable {n} is not set"))?,
                    None => v.to_owned(),
                };
                if k.eq_ignore_ascii_case("content-type") {
                    content_type = value.clone();
                }
                headers.push((k.clone(), value));
            }
        }
        let body = render_template(
            template,
            &m.recipient,
            text,
            Escape::for_content_type(&content_type),
        );
        let method =
            reqwest::Method::from_bytes(method.as_bytes()).map_err(|_| "bad method".to_owned())?;
        let mut rb = self
            .http
            .request(method, url)
            .header("x-portcullis-message-id", &m.id);
        for (k, v) in headers {
            rb = rb.header(k, v);
        }
        let r = rb.body(body).send().await.map_err(|e| http_error(&e))?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", r.status().as_u16()))
        }
    }
}

/// `t=UNIX,v1=HEX`: HMAC-SHA256 over `UNIX.BODY`, so a receiver checks both the body and its
/// freshness.
pub fn signature(key: &[u8], t: i64, body: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A transport error in a few words, never the URL's secrets (there are none in it anyway).
/// The webhook target connector words its transport errors with it too.
pub(crate) fn http_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        "request failed".into()
    }
}

async fn send_email(
    config: &serde_json::Value,
    m: &OutboxMessage,
    payload: &serde_json::Value,
    text: &str,
) -> Result<(), String> {
    use lettre::message::header::ContentType;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let smtp = config
        .get("smtp_url")
        .and_then(|u| u.as_str())
        .ok_or("no smtp_url")?;
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp)
        .map_err(|_| "unusable smtp_url".to_owned())?
        .timeout(Some(DELIVERY_TIMEOUT));
    if let (Some(user), Some(env)) = (
        config.get("smtp_username").and_then(|u| u.as_str()),
        config.get("password_env").and_then(|u| u.as_str()),
    ) {
        let pw =
            std::env::var(env).map_err(|_| format!("environment variable {env} is not set"))?;
        builder = builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
            user.to_owned(),
            pw,
        ));
    }
    let transport = builder.build();
    let from = config
        .get("from")
        .and_then(|u| u.as_str())
        .ok_or("no from")?;
    let severity = m.severity.as_deref().unwrap_or("info").to_uppercase();
    let summary = payload
        .pointer("/alert/summary")
        .and_then(|s| s.as_str())
        .unwrap_or(&m.topic);
    let mut msg = Message::builder()
        .from(from.parse().map_err(|_| "bad from address".to_owned())?)
        .subject(format!("[Portcullis {severity}] {summary}"))
        .header(ContentType::TEXT_PLAIN);
    for to in config
        .get("to")
        .and_then(|t| t.as_array())
        .into_iter()
        .flatten()
    {
        let to = to.as_str().ok_or("bad recipient")?;
        msg = msg.to(to.parse().map_err(|_| "bad recipient address".to_owned())?);
    }
    let body = format!(
        "{text}\n\nMessage id: {}\nEvent: {}\n",
        m.id,
        payload
            .get("event")
            .map(|e| e.to_string())
            .unwrap_or_default()
    );
    let msg = msg
        .body(body)
        .map_err(|_| "cannot build the message".to_owned())?;
    match transport.send(msg).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_permanent() => Err(format!("SMTP refused: {}", smtp_code(&e))),
        Err(e) if e.is_transient() => Err(format!("SMTP temporary failure: {}", smtp_code(&e))),
        Err(_) => Err("cannot reach the SMTP server".into()),
    }
}

/// The text of a notification to a person.
fn notification_text(topic: &str, p: &serde_json::Value) -> String {
    let f = |k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or("-").to_owned();
    match topic {
        "request.approval_needed" => format!(
            "{} asks to activate {} at {}; approve or deny in the console:\n{}\nor with: portcullis approve {}",
            f("requester"),
            f("role"),
            f("scope"),
            f("console"),
            f("request_id")
        ),
        "request.decided" => format!(
            "your request {} for {} at {} was {} by {}",
            f("request_id"),
            f("role"),
            f("scope"),
            if p.get("approved").and_then(|a| a.as_bool()) == Some(true) {
                "approved"
            } else {
                "denied"
            },
            f("decided_by")
        ),
        "review.opened" => format!(
            "an access review of {} at {} needs your decision on {} assignment(s) by {}; keep or remove each in the console:\n{}\nor with: portcullis reviews list --to-decide",
            f("role"),
            f("scope"),
            p.get("items").and_then(|n| n.as_u64()).unwrap_or(0),
            f("closes_at"),
            f("console")
        ),
        "review.reminder" => format!(
            "reminder: {} assignment(s) of {} at {} still wait for a decision; the review closes at {} and undecided ones get its default:\n{}",
            p.get("undecided").and_then(|n| n.as_u64()).unwrap_or(0),
            f("role"),
            f("scope"),
            f("closes_at"),
            f("console")
        ),
        other => format!("{other}: {p}"),
    }
}

fn smtp_code(e: &lettre::transport::smtp::Error) -> String {
    e.status()
        .map(|c| c.to_string())
        .unwrap_or_else(|| "no status".into())
}
