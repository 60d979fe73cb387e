//! Alert channels and rules: what raises the alarm and where it goes. Delivery itself is
//! [`crate::workers::alerts`].
//!
//! Invariants:
//! - Alerts are outbox rows written by the store in the same transaction as the event that
//!   raised them ([`portcullis_core::alerts::builtin`]); this module only delivers them.
//! - A worker claims a message with a conditional update before sending it, so of several
//!   replicas exactly one sends each attempt; a claim lapses after [`CLAIM_FOR`] so a replica
//!   that died mid-delivery does not strand it. Every attempt is recorded with its outcome.
//! - Failures are retried with capped exponential backoff; after `alert_max_attempts` the
//!   message is dead-lettered, and a dead-lettered critical alert is itself reported as a
//!   critical alert on every other channel (never recursively).
//! - Secrets: a channel's full configuration (URL path and query, every header value, the SMS
//!   body template) and a webhook's HMAC key are sealed with the master key (invariant 7);
//!   only the display fields of [`public_config`] are stored in clear. Rows written before
//!   sealing are sealed once at start-up ([`seal_legacy_channels`]). SMTP and SMS gateway
//!   credentials are environment variables named in the channel and read at delivery. None is
//!   logged, shown by the API, or written in an error.
//! - SMS cap: at most `sms_max_per_hour` messages per hour go to each number of an SMS channel
//!   (all numbers of a channel receive the same alerts, so this is also per channel); the
//!   claim decides it inside the serialised write, so replicas share the count. A message over
//!   the cap is `suppressed`, and the next one that goes out says how many were.
//! - Webhooks and SMS gateways get `X-Portcullis-Message-Id` so a receiver can drop the rare
//!   duplicate of a delivery whose answer was lost.

mod channels;
mod rules;

pub use channels::*;
pub use rules::*;

use portcullis_core::alerts::{Aggregate, Severity, validate_template};
use portcullis_core::api::{
    AlertAttemptView, AlertChannelView, AlertRuleView, AlertSummaryView, AlertView,
    CreateAlertChannelRequest, CreateAlertRuleRequest,
};
use portcullis_core::audit::NewAuditEvent;
use portcullis_core::error::ErrorCode;
use portcullis_core::roles::perm;
use portcullis_store::alerts::{AlertChannel, OutboxMessage, channel_config_aad};
use portcullis_store::{
    Change, MasterKey, NewAlertChannel, NewAlertRule, NewOutboxMessage, SealedChannel, Store,
    StoreError,
};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::services::caller::{Caller, event};
use crate::services::support::new_id;
use crate::state::AppState;
use crate::time_us::{rfc3339, us};

/// How long a claim holds before another worker may take the message over.
pub const CLAIM_FOR: time::Duration = time::Duration::seconds(60);

/// Most extra headers an SMS gateway channel may carry.
const MAX_HEADERS: usize = 16;

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg.into())
}

pub(crate) fn seal_aad(name: &str) -> String {
    format!("alert_channel:{name}")
}

/// https, or http on a loopback address (a local relay or gateway).
fn check_url(u: &str) -> Result<url::Url, ApiError> {
    let parsed = url::Url::parse(u).map_err(|_| bad(format!("{u} is not a URL")))?;
    let loopback = portcullis_core::oidc::is_loopback(&parsed);
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(
            "put no credentials in the URL; use headers with env:NAME",
        ));
    }
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if loopback => Ok(parsed),
        _ => Err(bad(format!(
            "{u}: use https (http only on a loopback address)"
        ))),
    }
}

/// The prefix every environment variable a channel names must carry: a channel can only read
/// variables an operator set for it, never the server's own (`PORTCULLIS_MASTER_KEY`,
/// `PORTCULLIS_DATABASE_URL`) or anything else in its environment, which a holder of
/// `alerts.manage` could otherwise have delivered to a receiver of their choosing.
pub const SECRET_ENV_PREFIX: &str = "PORTCULLIS_ALERT_SECRET_";

fn check_env_name(n: &str) -> Result<(), ApiError> {
    let ok = n.len() > SECRET_ENV_PREFIX.len()
        && n.len() <= 64
        && n.starts_with(SECRET_ENV_PREFIX)
        && n.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "{}: a channel reads only environment variables named {SECRET_ENV_PREFIX}NAME (A-Z, 0-9, _; at most 64 characters)",
            n.chars().take(64).collect::<String>()
        )))
    }
}

/// Most recipients of one email or SMS channel (each SMS number is one message per alert).
const MAX_RECIPIENTS: usize = 20;

fn check_recipients(n: usize, what: &str) -> Result<(), ApiError> {
    if n == 0 {
        return Err(bad(format!("to: at least one {what}")));
    }
    if n > MAX_RECIPIENTS {
        return Err(bad(format!("to: at most {MAX_RECIPIENTS} recipients")));
    }
    Ok(())
}

/// Validates a request into the stored configuration (JSON) and the secret to seal.
fn channel_config(
    req: &CreateAlertChannelRequest,
) -> Result<(serde_json::Value, Option<String>), ApiError> {
    let none_of = |fields: &[(&str, bool)]| -> Result<(), ApiError> {
        for (f, set) in fields {
            if *set {
                return Err(bad(format!("{f} does not apply to a {} channel", req.kind)));
            }
        }
        Ok(())
    };
    match req.kind.as_str() {
        "email" => {
            none_of(&[
                ("url", req.url.is_some()),
                ("shape", req.shape.is_some()),
                ("secret", req.secret.is_some()),
                ("method", req.method.is_some()),
                ("headers", !req.headers.is_empty()),
                ("template", req.template.is_some()),
            ])?;
            let smtp = req
                .smtp_url
                .as_deref()
                .ok_or_else(|| bad("smtp_url is required"))?;
            let u = url::Url::parse(smtp).map_err(|_| bad(format!("{smtp} is not a URL")))?;
            if !matches!(u.scheme(), "smtp" | "smtps") || u.host_str().is_none() {
                return Err(bad(
                    "smtp_url is smtp://HOST:PORT[?tls=required] or smtps://HOST:PORT",
                ));
            }
            if !u.username().is_empty() || u.password().is_some() {
                return Err(bad(
                    "put no credentials in smtp_url; use smtp_username and password_env",
                ));
            }
            if let Some(n) = &req.password_env {
                check_env_name(n)?;
            }
            if req.password_env.is_some() != req.smtp_username.is_some() {
                return Err(bad("smtp_username and password_env go together"));
            }
            if req
                .smtp_username
                .as_ref()
                .is_some_and(|n| n.is_empty() || n.len() > 256)
            {
                return Err(bad("smtp_username is 1 to 256 characters"));
            }
            // A password never travels in the clear off this machine.
            let tls = u.scheme() == "smtps"
                || u.query_pairs().any(|(k, v)| k == "tls" && v == "required");
            if req.smtp_username.is_some() && !tls && !portcullis_core::oidc::is_loopback(&u) {
                return Err(bad(
                    "SMTP credentials need TLS: use smtps://HOST:PORT or smtp://HOST:PORT?tls=required (plain smtp only on a loopback relay)",
                ));
            }
            let from = portcullis_core::principal::parse_email(
                req.from.as_deref().ok_or_else(|| bad("from is required"))?,
            )
            .map_err(|e| bad(e.to_string()))?;
            check_recipients(req.to.len(), "address")?;
            let to = req
                .to
                .iter()
                .map(|t| portcullis_core::principal::parse_email(t).map_err(|e| bad(e.to_string())))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((
                serde_json::json!({
                    "smtp_url": smtp, "smtp_username": req.smtp_username,
                    "password_env": req.password_env, "from": from, "to": to,
                    "notifications": req.notifications,
                }),
                None,
            ))
        }
        "webhook" => {
            none_of(&[
                ("notifications", req.notifications),
                ("smtp_url", req.smtp_url.is_some()),
                ("from", req.from.is_some()),
                ("to", !req.to.is_empty()),
                ("method", req.method.is_some()),
                ("headers", !req.headers.is_empty()),
                ("template", req.template.is_some()),
            ])?;
            let url = req.url.as_deref().ok_or_else(|| bad("url is required"))?;
            check_url(url)?;
            let shape = req.shape.as_deref().unwrap_or("generic");
            if !matches!(shape, "generic" | "slack") {
                return Err(bad("shape is generic or slack"));
            }
            if let Some(s) = &req.secret
                && !(16..=256).contains(&s.len())
            {
                return Err(bad("a signing secret is 16 to 256 characters"));
            }
            Ok((
                serde_json::json!({ "url": url, "shape": shape }),
                req.secret.clone(),
            ))
        }
        "sms" => {
            none_of(&[
                ("notifications", req.notifications),
                ("smtp_url", req.smtp_url.is_some()),
                ("from", req.from.is_some()),
                ("shape", req.shape.is_some()),
                ("secret", req.secret.is_some()),
            ])?;
            let url = req.url.as_deref().ok_or_else(|| bad("url is required"))?;
            check_url(url)?;
            let method = req.method.as_deref().unwrap_or("POST").to_ascii_uppercase();
            if !matches!(method.as_str(), "POST" | "GET" | "PUT") {
                return Err(bad("method is POST, PUT or GET"));
            }
            check_recipients(req.to.len(), "phone number")?;
            let to = req
                .to
                .iter()
                .map(|t| portcullis_core::principal::parse_phone(t).map_err(|e| bad(e.to_string())))
                .collect::<Result<Vec<_>, _>>()?;
            let template = req
                .template
                .as_deref()
                .ok_or_else(|| bad("template is required"))?;
            validate_template(template).map_err(|e| bad(e.to_string()))?;
            if req.headers.len() > MAX_HEADERS {
                return Err(bad(format!("at most {MAX_HEADERS} headers")));
            }
            for (k, v) in &req.headers {
                if k.len() > 128 || v.len() > 1024 {
                    return Err(bad(format!(
                        "header {} is too long (names at most 128 bytes, values 1024)",
                        k.chars().take(40).collect::<String>()
                    )));
                }
                reqwest::header::HeaderName::from_bytes(k.as_bytes())
                    .map_err(|_| bad(format!("{k} is not a header name")))?;
                match v.strip_prefix("env:") {
                    Some(n) => check_env_name(n)?,
                    None => {
                        reqwest::header::HeaderValue::from_str(v)
                            .map_err(|_| bad(format!("the value of {k} is not a header value")))?;
                        if k.eq_ignore_ascii_case("authorization") {
                            return Err(bad(
                                "give Authorization as env:NAME so the credential stays out of the database",
                            ));
                        }
                    }
                }
            }
            Ok((
                serde_json::json!({
                    "url": url, "method": method, "to": to, "headers": req.headers, "template": template,
                }),
                None,
            ))
        }
        other => Err(bad(format!("{other}: kind is email, webhook or sms"))),
    }
}

/// A channel's configuration as people, the audit log and the database (in clear) see it: a
/// URL's path and query (where webhook services put their token, e.g. Slack's `/services/…`)
/// become `/…`, a literal header value other than a content type becomes `(set)` (`env:NAME`
/// references stay), an SMS body template (gateways may take their key in the body) becomes
/// `(set)`, and an SMTP URL loses any credentials. The sealed configuration keeps everything,
/// for delivery. Applying it twice changes nothing.
pub fn public_config(config: &serde_json::Value) -> serde_json::Value {
    let mut c = config.clone();
    if c.get("template").is_some_and(|t| t.is_string()) {
        c["template"] = "(set)".into();
    }
    if let Some(u) = c.get("smtp_url").and_then(|u| u.as_str())
        && let Ok(mut parsed) = url::Url::parse(u)
        && (!parsed.username().is_empty() || parsed.password().is_some())
    {
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        c["smtp_url"] = parsed.to_string().into();
    }
    if let Some(u) = c.get("url").and_then(|u| u.as_str())
        && let Ok(parsed) = url::Url::parse(u)
    {
        let tail = if parsed.path() == "/" && parsed.query().is_none() {
            "/"
        } else {
            "/…"
        };
        c["url"] = format!("{}{tail}", parsed.origin().ascii_serialization()).into();
    }
    if let Some(h) = c.get_mut("headers").and_then(|h| h.as_object_mut()) {
        for (k, v) in h.iter_mut() {
            let keep = k.eq_ignore_ascii_case("content-type")
                || k.eq_ignore_ascii_case("accept")
                || v.as_str().is_some_and(|s| s.starts_with("env:"));
            if !keep {
                *v = "(set)".into();
            }
        }
    }
    c
}

fn channel_view(c: AlertChannel) -> AlertChannelView {
    AlertChannelView {
        config: public_config(&serde_json::from_str(&c.config).unwrap_or(serde_json::Value::Null)),
        signed: c.sealed_secret.is_some(),
        name: c.name,
        kind: c.kind,
        min_severity: c.min_severity,
        created_by: c.created_by,
        created_at: rfc3339(c.created_at_us),
    }
}

pub(crate) fn recipients_of(c: &AlertChannel) -> Vec<String> {
    portcullis_store::alerts::channel_recipients(&c.name, &c.kind, &c.config)
}

pub(crate) fn text_of(m: &OutboxMessage) -> String {
    serde_json::from_str::<serde_json::Value>(&m.payload)
        .ok()
        .and_then(|p| p.get("text").and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_else(|| m.topic.clone())
}

/// What a summary stands for, from its payload's aggregate.
fn summary_of(m: &OutboxMessage) -> Option<AlertSummaryView> {
    let p: serde_json::Value = serde_json::from_str(&m.payload).ok()?;
    let agg: Aggregate = serde_json::from_value(p.get("aggregate")?.clone()).ok()?;
    Some(AlertSummaryView {
        rule: agg.rule,
        key: agg.key,
        outcome: agg.outcome.as_str().to_owned(),
        count: agg.count,
        addresses: agg.addresses,
        more_addresses: agg.more_addresses,
        actors: agg.actors,
        actions: agg.actions,
        window_start: rfc3339(agg.window_start_us),
        window_end: rfc3339(agg.window_end_us),
    })
}

fn view(m: OutboxMessage, history: Vec<AlertAttemptView>) -> AlertView {
    AlertView {
        summary: summary_of(&m),
        text: text_of(&m),
        id: m.id,
        kind: m.kind,
        topic: m.topic,
        severity: m.severity,
        channel: m.channel,
        recipient: m.recipient,
        state: m.state,
        attempts: m.attempts,
        created_at: rfc3339(m.created_at_us),
        next_attempt_at: rfc3339(m.next_attempt_at_us),
        delivered_at: m.delivered_at_us.map(rfc3339),
        last_error: m.last_error,
        history,
    }
}

pub async fn list(
    state: &AppState,
    caller: &Caller,
    state_filter: Option<&str>,
) -> Result<Vec<AlertView>, ApiError> {
    caller.require(perm::ALERTS_READ)?;
    if let Some(s) = state_filter
        && !matches!(s, "pending" | "delivered" | "dead" | "suppressed")
    {
        return Err(bad("state is pending, delivered, dead or suppressed"));
    }
    Ok(state
        .store
        .outbox_messages(None, state_filter, 500)
        .await?
        .into_iter()
        .map(|m| view(m, vec![]))
        .collect())
}

pub async fn show(state: &AppState, caller: &Caller, id: &str) -> Result<AlertView, ApiError> {
    caller.require(perm::ALERTS_READ)?;
    let m = state
        .store
        .outbox_message(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no alert {id}")))?;
    let history = state
        .store
        .outbox_attempts(id)
        .await?
        .into_iter()
        .map(|a| AlertAttemptView {
            attempt: a.attempt,
            worker: a.worker,
            started_at: rfc3339(a.started_at_us),
            finished_at: rfc3339(a.finished_at_us),
            outcome: a.outcome,
            detail: a.detail,
        })
        .collect();
    Ok(view(m, history))
}

/// Puts a dead-lettered message back in the queue with a fresh budget of attempts.
pub async fn retry(state: &AppState, caller: &Caller, id: &str) -> Result<AlertView, ApiError> {
    caller.require(perm::ALERTS_MANAGE)?;
    let now = OffsetDateTime::now_utc();
    let ev = event(caller, "alert.retried", format!("alert:{id}"));
    match state
        .store
        .write(
            Change::RetryOutbox {
                id: id.to_owned(),
                at_us: us(now),
            },
            vec![ev],
        )
        .await
    {
        Ok(_) => show(state, caller, id).await,
        Err(StoreError::Conflict(_)) => Err(ApiError::new(
            ErrorCode::Conflict,
            format!("{id} is not a dead-lettered alert with a channel"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Seals the configuration of every channel stored in clear by a version before sealing:
/// once, in one write with its `alert_channels.sealed` event (names only). Idempotent: with
/// nothing to seal it writes nothing, and a replica that lost the race to seal the same rows
/// finds them sealed. Returns how many channels it sealed.
pub async fn seal_legacy_channels(store: &Store, master: &MasterKey) -> Result<usize, StoreError> {
    let mut sealed = Vec::new();
    for c in store.alert_channels().await? {
        if c.sealed_config.is_some() {
            continue;
        }
        let Ok(full) = serde_json::from_str::<serde_json::Value>(&c.config) else {
            tracing::warn!(channel = %c.name, "an alert channel's configuration is unreadable; left as it is");
            continue;
        };
        sealed.push(SealedChannel {
            config: public_config(&full).to_string(),
            sealed_config: master.seal(&channel_config_aad(&c.name), c.config.as_bytes()),
            name: c.name,
        });
    }
    if sealed.is_empty() {
        return Ok(0);
    }
    let names: Vec<String> = sealed.iter().map(|c| c.name.clone()).collect();
    let ev = NewAuditEvent::new("system", "alert_channels.sealed", "alert_channels").details(
        serde_json::json!({ "channels": names, "reason": "configuration stored in clear before this version" }),
    );
    match store
        .write(Change::SealAlertChannels(sealed), vec![ev])
        .await
    {
        Ok(_) => Ok(names.len()),
        // Another replica sealed them first.
        Err(StoreError::Conflict(_)) => Ok(0),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clear_configuration_holds_no_secret_and_is_stable() {
        let full = serde_json::json!({
            "url": "https://sms.example.com/v1/send?api_key=K3Y", "method": "POST",
            "to": ["+15550100"], "template": "key=T3MPLATE&to={to}&text={message}",
            "headers": {"X-Api-Key": "H3ADER", "Content-Type": "application/x-www-form-urlencoded",
                        "Authorization": "env:PORTCULLIS_ALERT_SECRET_SMS"},
        });
        let shown = public_config(&full);
        let text = shown.to_string();
        for secret in ["K3Y", "T3MPLATE", "H3ADER", "/v1/send"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(shown["url"], "https://sms.example.com/…");
        assert_eq!(shown["to"], serde_json::json!(["+15550100"]));
        assert_eq!(
            shown["headers"]["Authorization"],
            "env:PORTCULLIS_ALERT_SECRET_SMS"
        );
        assert_eq!(
            public_config(&shown),
            shown,
            "applying it again changes nothing"
        );
        let mail =
            public_config(&serde_json::json!({"smtp_url": "smtps://u:pw@mail.example.com:465"}));
        assert_eq!(mail["smtp_url"], "smtps://mail.example.com:465");
    }
}
