//! Alert channels, rules and messages.

use serde::{Deserialize, Serialize};

api_type! {
    /// `POST /api/v1/alerts/channels`: a channel alerts are delivered through. Which fields
    /// apply depends on `kind`; secrets never appear here except the webhook's HMAC key,
    /// which is sealed at rest and never shown again.
    pub struct CreateAlertChannelRequest {
        pub name: String,
        /// `email`, `webhook` or `sms`.
        pub kind: String,
        /// The least severity delivered (`info`, `warning`, `critical`; default `info`).
        /// Critical alerts go to every channel whatever its threshold.
        #[serde(default)]
        pub min_severity: Option<String>,
        /// email: `smtp://HOST:PORT` (plain, for a local relay), `smtp://HOST:PORT?tls=required`
        /// (STARTTLS) or `smtps://HOST:PORT` (implicit TLS). No credentials in the URL.
        #[serde(default)]
        pub smtp_url: Option<String>,
        /// email: the SMTP user; the password is read from the environment variable
        /// `password_env` names, at delivery time.
        #[serde(default)]
        pub smtp_username: Option<String>,
        #[serde(default)]
        pub password_env: Option<String>,
        /// email: the sender address.
        #[serde(default)]
        pub from: Option<String>,
        /// email: addresses; sms: E.164 numbers.
        #[serde(default)]
        pub to: Vec<String>,
        /// email: this channel also carries notifications to people (requests to approvers,
        /// decisions to requesters), to the addresses on their accounts.
        #[serde(default)]
        pub notifications: bool,
        /// webhook, sms: the URL (https, or http on loopback).
        #[serde(default)]
        pub url: Option<String>,
        /// webhook: `generic` (the default; the alert and its event as JSON) or `slack`
        /// (`{"text": …}`, also accepted by Teams incoming webhooks).
        #[serde(default)]
        pub shape: Option<String>,
        /// webhook: a key for the `X-Portcullis-Signature` HMAC-SHA256 header.
        #[serde(default)]
        pub secret: Option<String>,
        /// sms: `POST` (default) or `GET`.
        #[serde(default)]
        pub method: Option<String>,
        /// sms: request headers; a value `env:NAME` is read from the environment at delivery.
        #[serde(default)]
        pub headers: std::collections::BTreeMap<String, String>,
        /// sms: the body, with `{to}` and `{message}` (escaped for the content type).
        #[serde(default)]
        pub template: Option<String>,
    }
}

api_type! {
    /// An alert channel (no secret values).
    pub struct AlertChannelView {
        pub name: String,
        pub kind: String,
        pub min_severity: String,
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        pub config: serde_json::Value,
        /// Whether a webhook signing key is set.
        pub signed: bool,
        pub created_by: String,
        pub created_at: String,
    }
}

api_type! {
    /// One delivery attempt of an alert.
    pub struct AlertAttemptView {
        pub attempt: i64,
        pub worker: String,
        pub started_at: String,
        pub finished_at: String,
        /// `delivered` or `failed`.
        pub outcome: String,
        #[serde(default)]
        pub detail: Option<String>,
    }
}

api_type! {
    /// An alert (or notification) message and its delivery state.
    pub struct AlertView {
        pub id: String,
        /// `alert` or `notification`.
        pub kind: String,
        /// The rule (alerts) or topic (notifications).
        pub topic: String,
        #[serde(default)]
        pub severity: Option<String>,
        #[serde(default)]
        pub channel: Option<String>,
        pub recipient: String,
        /// `pending`, `delivered`, `dead`, or `suppressed` (an SMS over the channel's hourly
        /// cap: not sent, and counted in the next one that is).
        pub state: String,
        pub attempts: i64,
        pub created_at: String,
        pub next_attempt_at: String,
        #[serde(default)]
        pub delivered_at: Option<String>,
        #[serde(default)]
        pub last_error: Option<String>,
        /// The human text of the alert.
        pub text: String,
        /// With `show`: every attempt.
        #[serde(default)]
        pub history: Vec<AlertAttemptView>,
        /// For a summary (due when its window closes): the alerts it stands for.
        #[serde(default)]
        pub summary: Option<AlertSummaryView>,
    }
}

api_type! {
    /// The alerts of one rule and key that came after the first within a window and are
    /// delivered as one summary when the window closes. Lists are bounded.
    pub struct AlertSummaryView {
        pub rule: String,
        /// The target (or a custom rule's group-by key) the alerts are about.
        pub key: String,
        /// `failure` or `success`: the two are summarised apart.
        pub outcome: String,
        /// How many alerts the summary stands for (after the first, delivered at once).
        pub count: i64,
        /// Distinct client addresses among them (at most 100 listed).
        pub addresses: Vec<String>,
        /// More addresses were seen than are listed.
        pub more_addresses: bool,
        pub actors: Vec<String>,
        /// Events per audit action.
        pub actions: std::collections::BTreeMap<String, i64>,
        pub window_start: String,
        pub window_end: String,
    }
}

api_type! {
    /// `POST /api/v1/alerts/rules`: a custom rule — `count` events of `action` (optionally
    /// only with this outcome, actor or target) for one target (or actor) within `window`
    /// raise an alert, at most once per target per window.
    pub struct CreateAlertRuleRequest {
        pub name: String,
        /// An audit action, e.g. `signin.password`.
        pub action: String,
        /// `success` or `failure`; any when absent.
        #[serde(default)]
        pub outcome: Option<String>,
        #[serde(default)]
        pub actor: Option<String>,
        #[serde(default)]
        pub target: Option<String>,
        /// `target` (default) or `actor`.
        #[serde(default)]
        pub group_by: Option<String>,
        pub count: u32,
        /// Like `90s`, `5m`, `8h`, `1d` (at most 7 days).
        pub window: String,
        /// `info`, `warning` (default) or `critical`.
        #[serde(default)]
        pub severity: Option<String>,
    }
}

api_type! {
    /// An alert rule: built-in (cannot be removed) or custom.
    pub struct AlertRuleView {
        pub name: String,
        pub builtin: bool,
        pub severity: String,
        pub description: String,
        #[serde(default)]
        pub created_by: Option<String>,
        #[serde(default)]
        pub created_at: Option<String>,
    }
}
