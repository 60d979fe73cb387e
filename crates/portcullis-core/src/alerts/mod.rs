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

mod aggregate;
mod alert;
mod builtin_rules;
mod custom_rules;
mod delivery;

#[cfg(test)]
mod tests;

pub use aggregate::{
    Aggregate, MAX_LISTED_ACTIONS, MAX_LISTED_ACTORS, MAX_LISTED_ADDRESSES, describe_duration,
    rule_noun,
};
pub use alert::{Alert, Severity};
pub use builtin_rules::{BUILTIN_RULES, GLOBAL_ADMINISTRATOR, builtin, builtin_key};
pub use custom_rules::{CustomRule, GroupBy, RuleError};
pub use delivery::{
    Escape, SMS_CAP_PERIOD, TemplateError, backoff, message_text, render_template, suppressed_note,
    validate_template,
};
