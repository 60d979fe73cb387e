//! The built-in rules: code, not data, so they cannot be disabled or edited away. Invariant:
//! the listing people see ([`BUILTIN_RULES`]) names exactly the rules [`builtin`] fires.

use super::alert::{Alert, Severity};
use crate::audit::{AuditEvent, Outcome};

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
    if e.action == "breakglass.entra_signin" {
        return alert(
            "breakglass.activity",
            Severity::Critical,
            format!(
                "break-glass: Entra sign-in of {} {} from {} to {}{}",
                text("upn"),
                outcome,
                text("ip"),
                text("app"),
                match text("failure_reason") {
                    "" => String::new(),
                    r => format!(" ({r})"),
                }
            ),
        );
    }
    if matches!(e.action.as_str(), "change.requested" | "change.applied")
        && e.outcome == Outcome::Success
    {
        return alert(
            "governance.change",
            Severity::Critical,
            format!(
                "weakening change of {} {}: {} ({})",
                text("subject"),
                if e.action == "change.requested" {
                    "requested"
                } else {
                    "applied"
                },
                e.target,
                text("how")
            ),
        );
    }
    if e.action == "principal.contained" && e.outcome == Outcome::Success && !flag("emergency") {
        return alert(
            "principal.contained",
            Severity::Critical,
            format!("{} contained by {}: {}", e.target, e.actor, text("reason")),
        );
    }
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
    if e.action == "posture.digest" {
        let n = |k: &str| d.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        return alert(
            "posture.digest",
            if n("high") > 0 {
                Severity::Warning
            } else {
                Severity::Info
            },
            format!(
                "daily posture: {} high, {} medium, {} low findings (portcullis posture)",
                n("high"),
                n("medium"),
                n("low")
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
            "assignment.created" | "request.activated" | "request.extended"
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
    if e.action == "target.drift" {
        return alert(
            "target.drift",
            Severity::Critical,
            format!(
                "drift at {}: {} holds {} without a grant from Portcullis{}",
                e.target,
                text("holder"),
                text("right"),
                if flag("reverted") { " (reverted)" } else { "" }
            ),
        );
    }
    if e.action == "target.tenant_finding" {
        return alert(
            "target.tenant_posture",
            Severity::Critical,
            format!("tenant {}: {}", e.target, text("message")),
        );
    }
    if matches!(
        e.action.as_str(),
        "target.revoke_failed" | "target.operation_dead"
    ) {
        return alert(
            "target.failure",
            Severity::Critical,
            format!(
                "{} at {}: {} of {} for {} ({})",
                e.action,
                e.target,
                text("op"),
                text("role"),
                text("person"),
                text("error")
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
        "governance.change",
        Severity::Critical,
        "a weakening change of the PAM's settings requested, and when it takes effect",
    ),
    (
        "posture.digest",
        Severity::Warning,
        "the daily posture digest (warning with high findings, info otherwise)",
    ),
    (
        "principal.contained",
        Severity::Critical,
        "a principal contained (portcullis contain)",
    ),
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
        "target.drift",
        Severity::Critical,
        "a right found at a target that no grant of Portcullis gave (drift)",
    ),
    (
        "target.tenant_posture",
        Severity::Critical,
        "a connected tenant's emergency accounts need attention (fewer than two, not Global Administrator, not excluded from a conditional-access policy)",
    ),
    (
        "target.failure",
        Severity::Critical,
        "a revoke at a target failed (retried without limit), or a grant was dead-lettered",
    ),
    (
        "flagged",
        Severity::Warning,
        "any event its writer marks alert-worthy",
    ),
];

/// The key a built-in rule's alert is aggregated under: the event's target (the account
/// attacked, the policy changed), so a flood on one thing is one alert plus one summary.
pub fn builtin_key(e: &AuditEvent) -> String {
    e.target.clone()
}
