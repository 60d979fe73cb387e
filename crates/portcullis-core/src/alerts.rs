//! Alerts: the built-in rules that turn audit events into alerts, severities, the retry
//! schedule of deliveries, and the message shapes sent to channels.
//!
//! Invariants:
//! - Built-in rules are code, not data: they cannot be disabled or edited away. They fire on
//!   any break-glass activity, refresh-token reuse, a service account's interactive sign-in
//!   attempt, a Global Administrator assignment created or activated, a conditional-access
//!   policy changed, and any event its writer flagged alert-worthy (`"alert": true`).
//! - Critical alerts go to every channel; lower severities to the channels whose threshold
//!   they reach.
//! - A delivery is retried with capped exponential backoff and dead-lettered after the
//!   configured number of attempts; the schedule is a pure function of the attempt number.
//! - Values put into an SMS body template are escaped for the body's content type, so an
//!   event's text cannot change the request's structure.
//! - Aggregation: the first alert of a rule for one key (the event's target, or a custom
//!   rule's group-by key) and outcome in a window goes out at once; later ones in that window
//!   are counted into an [`Aggregate`] whose lists are bounded, so a flood costs one summary,
//!   never memory or messages in proportion to its size. Successes and failures are counted
//!   apart, so a flood of failures cannot hide a successful (break-glass) sign-in in a summary.

use serde::{Deserialize, Serialize};
use time::Duration;

use crate::audit::{AuditEvent, Outcome};

/// How bad an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "info" => Some(Self::Info),
            "warning" => Some(Self::Warning),
            "critical" => Some(Self::Critical),
            _ => None,
        }
    }
    /// Whether a channel with threshold `min` receives an alert of this severity.
    pub fn reaches(self, min: Severity) -> bool {
        self == Severity::Critical || self >= min
    }
}

/// An alert raised by a rule for one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// The rule's stable id, e.g. `breakglass.activity`.
    pub rule: String,
    pub severity: Severity,
    /// One line for a human: what happened, who, to what.
    pub summary: String,
}

/// The role whose creation or activation always alerts.
pub const GLOBAL_ADMINISTRATOR: &str = "global-administrator";

/// The built-in rule that fires for `e`, if any (the most specific one).
pub fn builtin(e: &AuditEvent) -> Option<Alert> {
    let d = &e.details;
    let flag = |k: &str| d.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
    let text = |k: &str| d.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let outcome = match e.outcome {
        Outcome::Success => "succeeded",
        Outcome::Failure => "failed",
    };
    let alert = |rule: &str, severity: Severity, summary: String| {
        Some(Alert {
            rule: rule.to_owned(),
            severity,
            summary,
        })
    };
    if flag("emergency") {
        return alert(
            "breakglass.activity",
            Severity::Critical,
            format!(
                "break-glass: {} {} by {} on {}",
                e.action, outcome, e.actor, e.target
            ),
        );
    }
    if e.action == "breakglass.drill_overdue" {
        let names: Vec<&str> = d
            .get("accounts")
            .and_then(|a| a.as_array())
            .map(|a| a.iter().filter_map(|n| n.as_str()).collect())
            .unwrap_or_default();
        return alert(
            "breakglass.drill_overdue",
            Severity::Warning,
            format!(
                "break-glass drill overdue for {}: run portcullis breakglass drill",
                names.join(", ")
            ),
        );
    }
    if e.action == "token.refresh_reuse" {
        return alert(
            "token.refresh_reuse",
            Severity::Critical,
            format!(
                "a rotated refresh token of {} was presented again; its family is revoked",
                e.target
            ),
        );
    }
    if text("reason") == "service_account_interactive_signin"
        || text("attempted_as") == "service_account"
    {
        return alert(
            "service_account.interactive_signin",
            Severity::Critical,
            format!(
                "interactive sign-in attempted with service account {}",
                e.target
            ),
        );
    }
    let global_admin =
        text("role") == GLOBAL_ADMINISTRATOR || e.target == format!("role:{GLOBAL_ADMINISTRATOR}");
    if global_admin
        && e.outcome == Outcome::Success
        && matches!(
            e.action.as_str(),
            "assignment.created" | "request.activated"
        )
    {
        return alert(
            "role.global_administrator",
            Severity::Critical,
            format!(
                "Global Administrator: {} by {} for {}",
                e.action, e.actor, e.target
            ),
        );
    }
    if e.action.starts_with("ca.policy.") {
        return alert(
            "conditional_access.changed",
            Severity::Critical,
            format!(
                "conditional access: {} by {} ({})",
                e.action, e.actor, e.target
            ),
        );
    }
    if flag("alert") {
        return alert(
            "flagged",
            Severity::Warning,
            format!("{} {} by {} on {}", e.action, outcome, e.actor, e.target),
        );
    }
    None
}

/// The built-in rules, as listed to people (they are code; see [`builtin`]).
pub const BUILTIN_RULES: &[(&str, Severity, &str)] = &[
    (
        "breakglass.activity",
        Severity::Critical,
        "any sign-in attempt or change on a break-glass account",
    ),
    (
        "breakglass.drill_overdue",
        Severity::Warning,
        "a break-glass account's last drill is older than the drill age (daily while it lasts)",
    ),
    (
        "token.refresh_reuse",
        Severity::Critical,
        "a rotated refresh token presented again",
    ),
    (
        "service_account.interactive_signin",
        Severity::Critical,
        "an interactive sign-in attempt with a service account",
    ),
    (
        "role.global_administrator",
        Severity::Critical,
        "a Global Administrator assignment created or activated",
    ),
    (
        "conditional_access.changed",
        Severity::Critical,
        "a conditional-access policy changed",
    ),
    (
        "flagged",
        Severity::Warning,
        "any event its writer marks alert-worthy",
    ),
];

/// What a custom rule counts events by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Target,
    Actor,
}

impl GroupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Target => "target",
            Self::Actor => "actor",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "target" => Some(Self::Target),
            "actor" => Some(Self::Actor),
            _ => None,
        }
    }
}

/// A custom rule: `count` events of `action` (filtered by outcome, actor, target) for one
/// key within `window` raise an alert, at most once per key per window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomRule {
    pub name: String,
    pub action: String,
    pub outcome: Option<Outcome>,
    pub actor: Option<String>,
    pub target: Option<String>,
    pub group_by: GroupBy,
    pub count: u32,
    pub window: Duration,
    pub severity: Severity,
}

/// Why a custom rule is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("name: 2 to 64 of a-z, 0-9, - and _")]
    Name,
    #[error("action: an audit action such as signin.password (a-z, 0-9, . and _)")]
    Action,
    #[error("count is between 1 and 10000")]
    Count,
    #[error("window is between 1 second and 7 days")]
    Window,
    #[error("{0} is at most 256 characters")]
    TooLong(&'static str),
}

impl CustomRule {
    /// Checks a rule's fields.
    pub fn validate(&self) -> Result<(), RuleError> {
        let n = self.name.as_bytes();
        if !(2..=64).contains(&n.len())
            || !n
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_')
        {
            return Err(RuleError::Name);
        }
        let a = self.action.as_bytes();
        if a.is_empty()
            || a.len() > 128
            || !a
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'_')
        {
            return Err(RuleError::Action);
        }
        if !(1..=10_000).contains(&self.count) {
            return Err(RuleError::Count);
        }
        if self.window < Duration::seconds(1) || self.window > Duration::days(7) {
            return Err(RuleError::Window);
        }
        if self.actor.as_ref().is_some_and(|v| v.len() > 256) {
            return Err(RuleError::TooLong("actor"));
        }
        if self.target.as_ref().is_some_and(|v| v.len() > 256) {
            return Err(RuleError::TooLong("target"));
        }
        Ok(())
    }

    /// The key `e` counts under, if the rule matches it.
    pub fn key_of(&self, e: &AuditEvent) -> Option<String> {
        let matches = e.action == self.action
            && self.outcome.is_none_or(|o| o == e.outcome)
            && self.actor.as_ref().is_none_or(|a| *a == e.actor)
            && self.target.as_ref().is_none_or(|t| *t == e.target);
        matches.then(|| match self.group_by {
            GroupBy::Target => e.target.clone(),
            GroupBy::Actor => e.actor.clone(),
        })
    }

    /// The alert for `n` matching events for `key`.
    pub fn alert(&self, key: &str, n: i64) -> Alert {
        let outcome = self
            .outcome
            .map(|o| format!(" ({})", o.as_str()))
            .unwrap_or_default();
        Alert {
            rule: format!("custom:{}", self.name),
            severity: self.severity,
            summary: format!(
                "{n} × {}{outcome} for {key} within {} s",
                self.action,
                self.window.whole_seconds()
            ),
        }
    }
}

/// The key a built-in rule's alert is aggregated under: the event's target (the account
/// attacked, the policy changed), so a flood on one thing is one alert plus one summary.
pub fn builtin_key(e: &AuditEvent) -> String {
    e.target.clone()
}

/// Most distinct client addresses an [`Aggregate`] lists (more are counted as "more").
pub const MAX_LISTED_ADDRESSES: usize = 100;
/// Most distinct actors an [`Aggregate`] lists.
pub const MAX_LISTED_ACTORS: usize = 20;
/// Most distinct actions an [`Aggregate`] counts by name; the rest are counted as `other`.
pub const MAX_LISTED_ACTIONS: usize = 16;

/// The alerts of one rule and key held back within one window: what its summary says.
/// Every list is bounded, whatever the number of events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aggregate {
    pub rule: String,
    pub key: String,
    /// The outcome of the events counted (failures and successes are aggregated apart).
    pub outcome: Outcome,
    pub severity: Severity,
    /// The window: from the first (delivered) alert's event to that plus the window length.
    pub window_start_us: i64,
    pub window_end_us: i64,
    /// The event of the alert delivered at once.
    pub first_seq: i64,
    /// Alerts counted after the first.
    pub count: i64,
    /// Sequence numbers of the first and last counted events (0 while none).
    pub from_seq: i64,
    pub to_seq: i64,
    /// Distinct client addresses of the counted events (`client_ip`), at most
    /// [`MAX_LISTED_ADDRESSES`]; `more_addresses` when further ones were seen.
    pub addresses: Vec<String>,
    pub more_addresses: bool,
    pub actors: Vec<String>,
    pub more_actors: bool,
    /// Counted events per action (at most [`MAX_LISTED_ACTIONS`] names, then `other`).
    pub actions: std::collections::BTreeMap<String, i64>,
}

impl Aggregate {
    /// A window opened by the alert of event `first_seq` at `start_us`.
    pub fn open(
        rule: &str,
        key: &str,
        outcome: Outcome,
        severity: Severity,
        first_seq: i64,
        start_us: i64,
        window: Duration,
    ) -> Self {
        Self {
            rule: rule.to_owned(),
            key: key.to_owned(),
            outcome,
            severity,
            window_start_us: start_us,
            window_end_us: start_us.saturating_add(window.whole_microseconds() as i64),
            first_seq,
            count: 0,
            from_seq: 0,
            to_seq: 0,
            addresses: Vec::new(),
            more_addresses: false,
            actors: Vec::new(),
            more_actors: false,
            actions: Default::default(),
        }
    }

    /// Whether an alert of event time `at_us` falls in this window.
    pub fn covers(&self, at_us: i64) -> bool {
        at_us < self.window_end_us
    }

    /// Counts one more alert (of event `e`) into the summary.
    pub fn add(&mut self, e: &AuditEvent) {
        self.count += 1;
        if self.from_seq == 0 {
            self.from_seq = e.seq;
        }
        self.to_seq = e.seq;
        if let Some(ip) = e.details.get("client_ip").and_then(|v| v.as_str()) {
            add_bounded(
                &mut self.addresses,
                &mut self.more_addresses,
                ip,
                MAX_LISTED_ADDRESSES,
            );
        }
        add_bounded(
            &mut self.actors,
            &mut self.more_actors,
            &e.actor,
            MAX_LISTED_ACTORS,
        );
        let named = self.actions.contains_key(&e.action)
            || self.actions.keys().filter(|k| *k != "other").count() < MAX_LISTED_ACTIONS;
        let name = if named { e.action.as_str() } else { "other" };
        *self.actions.entry(name.to_owned()).or_insert(0) += 1;
    }

    /// The summary as an alert: "37 more break-glass attempts and changes (failed) for
    /// user:bg1 from 25 addresses within 5 minutes (signin.password ×30, …)".
    pub fn alert(&self) -> Alert {
        let from = match (self.addresses.len(), self.more_addresses) {
            (0, _) => String::new(),
            (n, true) => format!(" from more than {n} addresses"),
            (1, false) => " from 1 address".to_owned(),
            (n, false) => format!(" from {n} addresses"),
        };
        let actions: Vec<String> = self
            .actions
            .iter()
            .map(|(a, n)| format!("{a} ×{n}"))
            .collect();
        let window = Duration::microseconds(self.window_end_us - self.window_start_us);
        Alert {
            rule: self.rule.clone(),
            severity: self.severity,
            summary: format!(
                "{} more {} ({}) for {}{from} within {} ({}; audit events #{}–#{})",
                self.count,
                rule_noun(&self.rule),
                match self.outcome {
                    Outcome::Success => "succeeded",
                    Outcome::Failure => "failed",
                },
                self.key,
                describe_duration(window),
                actions.join(", "),
                self.from_seq,
                self.to_seq,
            ),
        }
    }

    /// The text of the summary as people read it.
    pub fn text(&self) -> String {
        let a = self.alert();
        format!(
            "[{}] {} (rule {}, summary of the alert for audit event #{})",
            a.severity.as_str().to_uppercase(),
            a.summary,
            a.rule,
            self.first_seq
        )
    }
}

fn add_bounded(list: &mut Vec<String>, more: &mut bool, v: &str, max: usize) {
    if list.iter().any(|x| x == v) {
        return;
    }
    if list.len() < max {
        list.push(v.to_owned());
    } else {
        *more = true;
    }
}

/// What a rule's alerts are about, in the plural, for summaries.
pub fn rule_noun(rule: &str) -> String {
    match rule {
        "breakglass.activity" => "break-glass attempts and changes".into(),
        "breakglass.drill_overdue" => "overdue-drill alerts".into(),
        "token.refresh_reuse" => "reused refresh tokens".into(),
        "service_account.interactive_signin" => {
            "interactive sign-in attempts with a service account".into()
        }
        "role.global_administrator" => "Global Administrator assignments or activations".into(),
        "conditional_access.changed" => "conditional-access changes".into(),
        "flagged" => "alert-worthy events".into(),
        other => format!("alerts of rule {other}"),
    }
}

/// A duration for people: "5 minutes", "10 seconds", "1 hour", "90 seconds".
pub fn describe_duration(d: Duration) -> String {
    let s = d.whole_seconds();
    let (n, unit) = if s != 0 && s % 86_400 == 0 {
        (s / 86_400, "day")
    } else if s != 0 && s % 3600 == 0 {
        (s / 3600, "hour")
    } else if s != 0 && s % 60 == 0 {
        (s / 60, "minute")
    } else {
        (s, "second")
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// How long the SMS cap counts messages over.
pub const SMS_CAP_PERIOD: Duration = Duration::hours(1);

/// What an SMS that goes out says about those the cap held back before it.
pub fn suppressed_note(n: i64, cap: i64) -> String {
    let what = if n == 1 {
        "message was"
    } else {
        "messages were"
    };
    format!(
        " [+{n} earlier {what} not sent: SMS cap of {cap} per hour; portcullis alerts list --state suppressed]"
    )
}

/// When attempt `n` (1-based) failed, how long until the next: 5 s, 10 s, 20 s, … capped at
/// one hour.
pub fn backoff(n: u32) -> Duration {
    let exp = n.saturating_sub(1).min(20);
    let secs = 5i64.saturating_mul(1i64 << exp);
    Duration::seconds(secs.min(3600))
}

/// How values are escaped into a body template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Inside a JSON string literal (the template supplies the quotes).
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// Plain text.
    Plain,
}

impl Escape {
    /// The escaping for a `Content-Type`.
    pub fn for_content_type(ct: &str) -> Self {
        let ct = ct.to_ascii_lowercase();
        if ct.starts_with("application/json") {
            Self::Json
        } else if ct.starts_with("application/x-www-form-urlencoded") {
            Self::Form
        } else {
            Self::Plain
        }
    }

    fn apply(self, s: &str) -> String {
        match self {
            Self::Json => {
                let quoted = serde_json::Value::String(s.to_owned()).to_string();
                quoted[1..quoted.len() - 1].to_owned()
            }
            Self::Form => form_encode(s),
            Self::Plain => s.to_owned(),
        }
    }
}

fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Why a body template is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("the template must contain {{message}}")]
    NoMessage,
    #[error("the template is at most 2000 characters")]
    TooLong,
}

/// Checks an SMS body template at registration.
pub fn validate_template(t: &str) -> Result<(), TemplateError> {
    if t.len() > 2000 {
        return Err(TemplateError::TooLong);
    }
    if !t.contains("{message}") {
        return Err(TemplateError::NoMessage);
    }
    Ok(())
}

/// The body for one recipient: `{to}` and `{message}` replaced, each value escaped.
pub fn render_template(t: &str, to: &str, message: &str, escape: Escape) -> String {
    // One pass, so a value that contains "{message}" is not substituted again.
    let mut out = String::with_capacity(t.len() + message.len());
    let mut rest = t;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(r) = tail.strip_prefix("{to}") {
            out.push_str(&escape.apply(to));
            rest = r;
        } else if let Some(r) = tail.strip_prefix("{message}") {
            out.push_str(&escape.apply(message));
            rest = r;
        } else {
            out.push('{');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// The text of an alert as people read it (email body, SMS, chat).
pub fn message_text(a: &Alert, e: &AuditEvent) -> String {
    format!(
        "[{}] {} (rule {}, audit event #{})",
        a.severity.as_str().to_uppercase(),
        a.summary,
        a.rule,
        e.seq
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(action: &str, target: &str, outcome: Outcome, details: serde_json::Value) -> AuditEvent {
        AuditEvent {
            seq: 7,
            time_us: 0,
            actor: "user:ada".into(),
            action: action.into(),
            target: target.into(),
            outcome,
            details,
            prev_hash: [0; 32],
            hash: [0; 32],
        }
    }

    #[test]
    fn builtin_rules_fire_where_they_must() {
        let cases = [
            (
                ev(
                    "signin.password",
                    "user:bg1",
                    Outcome::Failure,
                    serde_json::json!({"emergency": true}),
                ),
                Some(("breakglass.activity", Severity::Critical)),
            ),
            (
                ev(
                    "token.refresh_reuse",
                    "user:ada",
                    Outcome::Failure,
                    serde_json::json!({}),
                ),
                Some(("token.refresh_reuse", Severity::Critical)),
            ),
            (
                ev(
                    "signin.password",
                    "user:payroll",
                    Outcome::Failure,
                    serde_json::json!({"reason": "service_account_interactive_signin"}),
                ),
                Some(("service_account.interactive_signin", Severity::Critical)),
            ),
            (
                ev(
                    "assignment.created",
                    "user:bob",
                    Outcome::Success,
                    serde_json::json!({"role": "global-administrator"}),
                ),
                Some(("role.global_administrator", Severity::Critical)),
            ),
            (
                ev(
                    "request.activated",
                    "user:bob",
                    Outcome::Success,
                    serde_json::json!({"role": "global-administrator"}),
                ),
                Some(("role.global_administrator", Severity::Critical)),
            ),
            (
                ev(
                    "request.activated",
                    "user:bob",
                    Outcome::Success,
                    serde_json::json!({"role": "audit-reader"}),
                ),
                None,
            ),
            (
                ev(
                    "ca.policy.updated",
                    "policy:x",
                    Outcome::Success,
                    serde_json::json!({}),
                ),
                Some(("conditional_access.changed", Severity::Critical)),
            ),
            (
                ev(
                    "service_account.secret_added",
                    "service_account:x",
                    Outcome::Success,
                    serde_json::json!({"alert": true}),
                ),
                Some(("flagged", Severity::Warning)),
            ),
            (
                ev(
                    "signin.password",
                    "user:ada",
                    Outcome::Failure,
                    serde_json::json!({"reason": "wrong_password"}),
                ),
                None,
            ),
            (
                ev(
                    "signin.password",
                    "user:payroll",
                    Outcome::Failure,
                    serde_json::json!({"reason": "throttled", "attempted_as": "service_account"}),
                ),
                Some(("service_account.interactive_signin", Severity::Critical)),
            ),
            (
                ev(
                    "signin.password",
                    "user:bg2",
                    Outcome::Failure,
                    serde_json::json!({"reason": "throttled", "emergency": true}),
                ),
                Some(("breakglass.activity", Severity::Critical)),
            ),
        ];
        for (e, want) in cases {
            let got = builtin(&e).map(|a| (a.rule, a.severity));
            assert_eq!(
                got.as_ref().map(|(r, s)| (r.as_str(), *s)),
                want,
                "{}",
                e.action
            );
        }
    }

    #[test]
    fn custom_rules_match_and_validate() {
        let rule = CustomRule {
            name: "failed-signins".into(),
            action: "signin.password".into(),
            outcome: Some(Outcome::Failure),
            actor: None,
            target: None,
            group_by: GroupBy::Target,
            count: 10,
            window: Duration::minutes(5),
            severity: Severity::Warning,
        };
        assert_eq!(rule.validate(), Ok(()));
        let e = ev(
            "signin.password",
            "user:ada",
            Outcome::Failure,
            serde_json::json!({}),
        );
        assert_eq!(rule.key_of(&e).as_deref(), Some("user:ada"));
        let ok = ev(
            "signin.password",
            "user:ada",
            Outcome::Success,
            serde_json::json!({}),
        );
        assert_eq!(rule.key_of(&ok), None);
        let other = ev(
            "signin.totp",
            "user:ada",
            Outcome::Failure,
            serde_json::json!({}),
        );
        assert_eq!(rule.key_of(&other), None);
        let by_actor = CustomRule {
            group_by: GroupBy::Actor,
            ..rule.clone()
        };
        assert_eq!(by_actor.key_of(&e).as_deref(), Some("user:ada"));
        assert_eq!(rule.alert("user:ada", 10).rule, "custom:failed-signins");
        for bad in [
            CustomRule {
                name: "X".into(),
                ..rule.clone()
            },
            CustomRule {
                action: "Sign In".into(),
                ..rule.clone()
            },
            CustomRule {
                count: 0,
                ..rule.clone()
            },
            CustomRule {
                window: Duration::days(8),
                ..rule.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn critical_reaches_every_channel() {
        assert!(Severity::Critical.reaches(Severity::Critical));
        assert!(Severity::Warning.reaches(Severity::Info));
        assert!(!Severity::Info.reaches(Severity::Warning));
        assert!(!Severity::Warning.reaches(Severity::Critical));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::seconds(5));
        assert_eq!(backoff(2), Duration::seconds(10));
        assert_eq!(backoff(4), Duration::seconds(40));
        assert_eq!(backoff(30), Duration::hours(1));
        assert_eq!(backoff(u32::MAX), Duration::hours(1));
    }

    #[test]
    fn aggregates_count_and_stay_bounded() {
        let mut agg = Aggregate::open(
            "breakglass.activity",
            "user:bg1",
            Outcome::Failure,
            Severity::Critical,
            7,
            1_000_000,
            Duration::minutes(5),
        );
        assert!(agg.covers(1_000_000 + 299_999_999));
        assert!(!agg.covers(1_000_000 + 300_000_000));
        for i in 0..500 {
            let mut e = ev(
                if i % 2 == 0 {
                    "signin.password"
                } else {
                    "signin.breakglass_recovery"
                },
                "user:bg1",
                Outcome::Failure,
                serde_json::json!({"client_ip": format!("10.0.0.{}", i % 25), "emergency": true}),
            );
            e.seq = 10 + i;
            agg.add(&e);
        }
        assert_eq!(agg.count, 500);
        assert_eq!((agg.from_seq, agg.to_seq), (10, 509));
        assert_eq!(agg.addresses.len(), 25);
        assert!(!agg.more_addresses);
        assert_eq!(agg.actions["signin.password"], 250);
        let text = agg.text();
        assert!(
            text.starts_with("[CRITICAL] 500 more break-glass attempts and changes (failed) for user:bg1 from 25 addresses within 5 minutes (signin.breakglass_recovery ×250, signin.password ×250"),
            "{text}"
        );
        // A flood from many addresses and actions stays bounded.
        for i in 0..1000 {
            let mut e = ev(
                &format!("action.n{i}"),
                "user:bg1",
                Outcome::Failure,
                serde_json::json!({"client_ip": format!("10.1.{}.{}", i / 250, i % 250)}),
            );
            e.actor = format!("user:a{i}");
            agg.add(&e);
        }
        assert_eq!(agg.addresses.len(), MAX_LISTED_ADDRESSES);
        assert!(agg.more_addresses && agg.more_actors);
        assert_eq!(agg.actors.len(), MAX_LISTED_ACTORS);
        assert_eq!(agg.actions.len(), MAX_LISTED_ACTIONS + 1);
        assert!(agg.actions["other"] > 900);
        assert!(agg.text().contains("from more than 100 addresses"));
    }

    #[test]
    fn durations_read_like_words() {
        assert_eq!(describe_duration(Duration::minutes(5)), "5 minutes");
        assert_eq!(describe_duration(Duration::seconds(1)), "1 second");
        assert_eq!(describe_duration(Duration::seconds(90)), "90 seconds");
        assert_eq!(describe_duration(Duration::hours(1)), "1 hour");
    }

    #[test]
    fn templates_escape_values() {
        let t = r#"{"to":"{to}","text":"{message}"}"#;
        let body = render_template(t, "+15550100", "a \"quoted\" {message}\n", Escape::Json);
        let v: serde_json::Value = serde_json::from_str(&body).expect("still JSON");
        assert_eq!(v["text"], "a \"quoted\" {message}\n");
        assert_eq!(v["to"], "+15550100");
        let form = render_template("To={to}&Body={message}", "+1 555", "x&y=z", Escape::Form);
        assert_eq!(form, "To=%2B1+555&Body=x%26y%3Dz");
        assert_eq!(
            validate_template("no placeholder"),
            Err(TemplateError::NoMessage)
        );
    }
}
