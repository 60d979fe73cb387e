//! Alert rules: the built-in ones and custom counting rules.

use super::*;

/// Built-in rules first (they cannot be removed), then the custom ones.
pub async fn list_rules(state: &AppState, caller: &Caller) -> Result<Vec<AlertRuleView>, ApiError> {
    caller.require(perm::ALERTS_READ)?;
    let mut out: Vec<AlertRuleView> = portcullis_core::alerts::BUILTIN_RULES
        .iter()
        .map(|(name, severity, what)| AlertRuleView {
            name: (*name).to_owned(),
            builtin: true,
            severity: severity.as_str().to_owned(),
            description: (*what).to_owned(),
            created_by: None,
            created_at: None,
        })
        .collect();
    for r in state.store.alert_rules().await? {
        out.push(rule_view(
            &r.rule,
            Some(r.created_by),
            Some(r.created_at_us),
        ));
    }
    Ok(out)
}

pub(super) fn rule_view(
    r: &portcullis_core::alerts::CustomRule,
    by: Option<String>,
    at: Option<i64>,
) -> AlertRuleView {
    let mut filters = Vec::new();
    if let Some(o) = r.outcome {
        filters.push(format!("outcome {}", o.as_str()));
    }
    if let Some(a) = &r.actor {
        filters.push(format!("actor {a}"));
    }
    if let Some(t) = &r.target {
        filters.push(format!("target {t}"));
    }
    let filters = if filters.is_empty() {
        String::new()
    } else {
        format!(" ({})", filters.join(", "))
    };
    AlertRuleView {
        name: format!("custom:{}", r.name),
        builtin: false,
        severity: r.severity.as_str().to_owned(),
        description: format!(
            "{} × {}{filters} for one {} within {} s",
            r.count,
            r.action,
            r.group_by.as_str(),
            r.window.whole_seconds()
        ),
        created_by: by,
        created_at: at.map(rfc3339),
    }
}

/// Adds a custom rule. Audited as alert-worthy (it changes what raises the alarm).
pub async fn add_rule(
    state: &AppState,
    caller: &Caller,
    req: CreateAlertRuleRequest,
) -> Result<AlertRuleView, ApiError> {
    use portcullis_core::alerts::{CustomRule, GroupBy};
    caller.require(perm::ALERTS_MANAGE)?;
    let outcome = match req.outcome.as_deref() {
        None => None,
        Some(o) => Some(
            portcullis_core::audit::Outcome::parse(o)
                .ok_or_else(|| bad("outcome is success or failure"))?,
        ),
    };
    let rule = CustomRule {
        name: req.name.clone(),
        action: req.action.clone(),
        outcome,
        actor: req.actor.clone(),
        target: req.target.clone(),
        group_by: GroupBy::parse(req.group_by.as_deref().unwrap_or("target"))
            .ok_or_else(|| bad("group_by is target or actor"))?,
        count: req.count,
        window: portcullis_core::roles::parse_duration(&req.window)
            .map_err(|e| bad(e.to_string()))?,
        severity: Severity::parse(req.severity.as_deref().unwrap_or("warning"))
            .ok_or_else(|| bad("severity is info, warning or critical"))?,
    };
    rule.validate().map_err(|e| bad(e.to_string()))?;
    let now = OffsetDateTime::now_utc();
    let view = rule_view(&rule, Some(caller.actor()), Some(us(now)));
    let change = Change::AddAlertRule(NewAlertRule {
        name: rule.name.clone(),
        action: rule.action.clone(),
        outcome: rule.outcome.map(|o| o.as_str().to_owned()),
        actor: rule.actor.clone(),
        target: rule.target.clone(),
        group_by: rule.group_by.as_str().to_owned(),
        count: i64::from(rule.count),
        window_seconds: rule.window.whole_seconds(),
        severity: rule.severity.as_str().to_owned(),
        created_by: caller.actor(),
        created_at_us: us(now),
    });
    let ev = event(
        caller,
        "alert_rule.added",
        format!("alert_rule:{}", rule.name),
    )
    .details(
        serde_json::json!({ "rule": view.description, "severity": view.severity, "alert": true }),
    );
    match state.store.write(change, vec![ev]).await {
        Ok(_) => Ok(view),
        Err(StoreError::Conflict(m)) if m == portcullis_store::TOO_MANY_RULES => {
            Err(ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "at most {} custom alert rules; remove one first",
                    portcullis_store::alerts::MAX_RULES
                ),
            ))
        }
        Err(StoreError::Conflict(_)) => Err(ApiError::new(
            ErrorCode::AlreadyExists,
            format!("an alert rule named {} exists", rule.name),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Removes a custom rule (built-in ones cannot be). Alert-worthy.
pub async fn remove_rule(state: &AppState, caller: &Caller, name: &str) -> Result<(), ApiError> {
    caller.require(perm::ALERTS_MANAGE)?;
    if portcullis_core::alerts::BUILTIN_RULES
        .iter()
        .any(|(n, _, _)| *n == name)
    {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("{name} is a built-in rule; built-in rules cannot be removed"),
        ));
    }
    let name = name.strip_prefix("custom:").unwrap_or(name);
    let ev = event(caller, "alert_rule.removed", format!("alert_rule:{name}"))
        .details(serde_json::json!({ "alert": true }));
    match state
        .store
        .write(
            Change::RemoveAlertRule {
                name: name.to_owned(),
            },
            vec![ev],
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict(_)) => Err(ApiError::not_found(format!("no alert rule {name}"))),
        Err(e) => Err(e.into()),
    }
}
