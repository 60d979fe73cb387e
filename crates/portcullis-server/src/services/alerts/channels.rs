//! Alert channels: validation, sealed configuration, the clear view people see, tests.

use super::*;

/// Adds a channel. Audited as alert-worthy: it changes who hears about emergencies.
pub async fn add_channel(
    state: &AppState,
    caller: &Caller,
    req: CreateAlertChannelRequest,
) -> Result<AlertChannelView, ApiError> {
    caller.require(perm::ALERTS_MANAGE)?;
    let name = portcullis_core::principal::PrincipalName::parse("name", &req.name)
        .map_err(|e| bad(e.to_string()))?;
    let min = match req.min_severity.as_deref() {
        None => Severity::Info,
        Some(s) => {
            Severity::parse(s).ok_or_else(|| bad("min_severity is info, warning or critical"))?
        }
    };
    let (config, secret) = channel_config(&req)?;
    let sealed = secret
        .as_ref()
        .map(|s| state.master.seal(&seal_aad(name.as_str()), s.as_bytes()));
    let sealed_config = state.master.seal(
        &channel_config_aad(name.as_str()),
        config.to_string().as_bytes(),
    );
    let now = OffsetDateTime::now_utc();
    let change = Change::AddAlertChannel(NewAlertChannel {
        name: name.as_str().to_owned(),
        kind: req.kind.clone(),
        config: public_config(&config).to_string(),
        sealed_secret: sealed,
        sealed_config,
        min_severity: min.as_str().to_owned(),
        created_by: caller.actor(),
        created_at_us: us(now),
    });
    let ev = event(
        caller,
        "alert_channel.added",
        format!("alert_channel:{}", name.as_str()),
    )
    .details(serde_json::json!({
        "kind": req.kind, "min_severity": min.as_str(), "config": public_config(&config),
        "signed": secret.is_some(), "alert": true,
    }));
    match state.store.write(change, vec![ev]).await {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::new(
                ErrorCode::AlreadyExists,
                format!("an alert channel named {} exists", name.as_str()),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let c = state
        .store
        .alert_channel(name.as_str())
        .await?
        .ok_or_else(|| ApiError::internal("channel vanished"))?;
    Ok(channel_view(c))
}

pub async fn list_channels(
    state: &AppState,
    caller: &Caller,
) -> Result<Vec<AlertChannelView>, ApiError> {
    caller.require(perm::ALERTS_READ)?;
    Ok(state
        .store
        .alert_channels()
        .await?
        .into_iter()
        .map(channel_view)
        .collect())
}

/// Asks to remove a channel. Every channel receives critical alerts (a minimum severity is at
/// most `critical`), so removing one weakens who hears about emergencies: it is recorded as a
/// change request (four eyes, `crate::services::governance`), never applied on one word.
pub async fn remove_channel(state: &AppState, caller: &Caller, name: &str) -> Result<(), ApiError> {
    caller.require(perm::ALERTS_MANAGE)?;
    let c = state
        .store
        .alert_channel(name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no alert channel {name}")))?;
    Err(crate::services::changes::propose(
        state,
        caller,
        "remove_alert_channel",
        &format!("alert_channel:{}", c.name),
        serde_json::json!({ "channel": c.name, "kind": c.kind, "min_severity": c.min_severity }),
        vec!["critical_alert_channel_removed"],
    )
    .await)
}

/// Removes channel `name` as change request `close` says (approved, or its cooling-off over),
/// with the close and its event in the same write; its undelivered messages are dead-lettered.
/// A channel already gone is `not_found` (the request is then cancelled).
pub async fn apply_channel_removal(
    state: &AppState,
    actor: &str,
    name: &str,
    close: Change,
    close_event: NewAuditEvent,
) -> Result<(), ApiError> {
    if state.store.alert_channel(name).await?.is_none() {
        return Err(ApiError::not_found(format!("no alert channel {name}")));
    }
    let now = OffsetDateTime::now_utc();
    let ev = NewAuditEvent::new(
        actor,
        "alert_channel.removed",
        format!("alert_channel:{name}"),
    )
    .details(serde_json::json!({ "alert": true }));
    let remove = Change::RemoveAlertChannel {
        name: name.to_owned(),
        at_us: us(now),
    };
    match state
        .store
        .write(Change::Many(vec![close, remove]), vec![close_event, ev])
        .await
    {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict(m)) if m == portcullis_store::CHANGE_MOVED => {
            Err(crate::services::support::change_moved())
        }
        Err(StoreError::Conflict(_)) => {
            Err(ApiError::not_found(format!("no alert channel {name}")))
        }
        Err(e) => Err(e.into()),
    }
}

/// Queues a test message on one channel (delivered like any alert; follow it with `show`).
pub async fn test_channel(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<AlertView, ApiError> {
    caller.require(perm::ALERTS_MANAGE)?;
    let c = state
        .store
        .alert_channel(name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no alert channel {name}")))?;
    let now = OffsetDateTime::now_utc();
    let text = format!(
        "[TEST] Portcullis test message for channel {name}, sent by {}",
        caller.actor()
    );
    let payload = serde_json::json!({
        "alert": { "rule": "test", "severity": "info", "summary": text },
        "text": text,
        "event": null,
    });
    let recipients = recipients_of(&c);
    let mut changes = Vec::new();
    let mut first = None;
    for r in recipients {
        let id = new_id("m");
        first.get_or_insert(id.clone());
        changes.push(Change::Enqueue(NewOutboxMessage {
            id,
            kind: "alert".into(),
            topic: "test".into(),
            recipient: r,
            payload: payload.to_string(),
            at_us: us(now),
            channel: Some(c.name.clone()),
            severity: Some("info".into()),
        }));
    }
    let ev = event(
        caller,
        "alert_channel.tested",
        format!("alert_channel:{name}"),
    );
    state.store.write(Change::Many(changes), vec![ev]).await?;
    let id = first.ok_or_else(|| ApiError::internal("a channel without recipients"))?;
    show(state, caller, &id).await
}
