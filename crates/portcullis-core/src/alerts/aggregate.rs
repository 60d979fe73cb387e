//! Aggregation: alerts of one rule, key and outcome held back within a window, and their
//! summary. Invariant: every list is bounded, so a flood costs one summary, never memory.

use serde::{Deserialize, Serialize};
use time::Duration;

use super::alert::{Alert, Severity};
use crate::audit::{AuditEvent, Outcome};

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
        "target.tenant_posture" => "findings about a connected tenant's emergency accounts".into(),
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
