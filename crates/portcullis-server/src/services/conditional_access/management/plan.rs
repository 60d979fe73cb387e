//! Planning and applying one management edit: the whole resulting set is validated and put
//! through the lockout guard before anything is written, and the write is retried from the
//! top when another replica changed the set first.

use super::*;

/// What a management call wants to change, applied to the current configuration. Stored as
/// the payload of a change request when it weakens a policy of a privileged role.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "edit", content = "args", rename_all = "snake_case")]
pub(crate) enum Edit {
    Import(Vec<PolicySpec>),
    State(String, PolicyState),
    Delete(String),
    #[serde(skip)]
    PutLocation(NamedLocation),
    DeleteLocation(String),
}

pub(super) struct Planned {
    change: CaChange,
    events: Vec<NewAuditEvent>,
    result: CaImportResult,
    /// The policies as they would be.
    policies: Vec<Policy>,
}

pub(super) fn spec_json(p: &Policy) -> Result<String, ApiError> {
    serde_json::to_string(&p.to_spec()).map_err(ApiError::internal)
}

/// Applies `edit` to `loaded`, validates the result, runs the lockout guard and says what to
/// write. Errors are the caller's to see: validation, unknown names, lockout.
pub(super) async fn plan(
    state: &AppState,
    actor: &str,
    me: &Principal,
    loaded: &Loaded,
    edit: &Edit,
    force: bool,
) -> Result<Planned, ApiError> {
    let now = OffsetDateTime::now_utc();
    let mut policies: Vec<Policy> = loaded.policies.clone();
    let mut locations: Vec<NamedLocation> = loaded.locations.clone();
    let mut change = CaChange {
        expected_version: loaded.version,
        by: actor.to_owned(),
        at_us: us(now),
        ..Default::default()
    };
    let mut result = CaImportResult {
        created: vec![],
        updated: vec![],
        unchanged: vec![],
    };
    let mut events = Vec::new();
    let find =
        |ps: &[Policy], name: &str| ps.iter().position(|p| p.name().eq_ignore_ascii_case(name));
    match edit {
        Edit::Import(specs) => {
            // The whole resulting set is validated: names in the file and those kept.
            // Kept (stored) policies are not held to the exclusion-group rule they may predate
            // (see the module header); the new ones are.
            let kept: Vec<PolicySpec> = policies
                .iter()
                .filter(|p| !specs.iter().any(|s| s.name.eq_ignore_ascii_case(p.name())))
                .map(Policy::to_spec)
                .collect();
            let known = known_names(state, &locations).await?;
            let valid = validate_change(specs, &kept, &known)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            refuse_breakglass_includes(state, &valid[..specs.len()]).await?;
            for new in valid.into_iter().take(specs.len()) {
                let spec = spec_json(&new)?;
                match find(&policies, new.name()) {
                    Some(i) if spec_json(&policies[i])? == spec => {
                        result.unchanged.push(new.name().to_owned());
                        continue;
                    }
                    Some(i) => {
                        result.updated.push(new.name().to_owned());
                        events.push(
                            NewAuditEvent::new(actor, "ca.policy.updated", format!("ca_policy:{}", new.name()))
                                .details(serde_json::json!({ "policy": new.to_spec(), "before": policies[i].to_spec() })),
                        );
                        // Renamed only in letter case: the stored row goes, so one policy
                        // remains (names are unique ignoring case).
                        if policies[i].name() != new.name() {
                            change.delete_policies.push(policies[i].name().to_owned());
                        }
                        policies[i] = new.clone();
                    }
                    None => {
                        result.created.push(new.name().to_owned());
                        events.push(
                            NewAuditEvent::new(
                                actor,
                                "ca.policy.created",
                                format!("ca_policy:{}", new.name()),
                            )
                            .details(serde_json::json!({ "policy": new.to_spec() })),
                        );
                        policies.push(new.clone());
                    }
                }
                change.put_policies.push((
                    new.name().to_owned(),
                    new.state().as_str().to_owned(),
                    spec,
                ));
            }
        }
        Edit::State(name, to) => {
            let i = find(&policies, name).ok_or_else(|| {
                ApiError::not_found(format!("no conditional-access policy named {name}"))
            })?;
            let before = policies[i].state();
            let p = policies[i].clone().with_state(*to);
            if before == *to {
                result.unchanged.push(p.name().to_owned());
            } else {
                result.updated.push(p.name().to_owned());
                events.push(
                    NewAuditEvent::new(
                        actor,
                        "ca.policy.state_changed",
                        format!("ca_policy:{}", p.name()),
                    )
                    .details(serde_json::json!({ "from": before.as_str(), "to": to.as_str() })),
                );
                change.put_policies.push((
                    p.name().to_owned(),
                    to.as_str().to_owned(),
                    spec_json(&p)?,
                ));
            }
            policies[i] = p;
        }
        Edit::Delete(name) => {
            let i = find(&policies, name).ok_or_else(|| {
                ApiError::not_found(format!("no conditional-access policy named {name}"))
            })?;
            let p = policies.remove(i);
            result.updated.push(p.name().to_owned());
            events.push(
                NewAuditEvent::new(
                    actor,
                    "ca.policy.deleted",
                    format!("ca_policy:{}", p.name()),
                )
                .details(serde_json::json!({ "policy": p.to_spec() })),
            );
            change.delete_policies.push(p.name().to_owned());
        }
        Edit::PutLocation(l) => {
            let cidrs = l.networks().to_strings();
            match locations.iter().position(|x| x.name() == l.name()) {
                Some(i) if locations[i] == *l => {
                    result.unchanged.push(l.name().to_owned());
                    return Ok(Planned {
                        change,
                        events,
                        result,
                        policies,
                    });
                }
                Some(i) => {
                    result.updated.push(l.name().to_owned());
                    locations[i] = l.clone();
                }
                None => {
                    result.created.push(l.name().to_owned());
                    locations.push(l.clone());
                }
            }
            events.push(
                NewAuditEvent::new(
                    actor,
                    "ca.location.set",
                    format!("ca_location:{}", l.name()),
                )
                .details(
                    serde_json::json!({ "cidrs": cidrs, "trusted": l.trusted(), "alert": true }),
                ),
            );
            change.put_locations.push((
                l.name().to_owned(),
                serde_json::to_string(&cidrs).map_err(ApiError::internal)?,
                l.trusted(),
            ));
        }
        Edit::DeleteLocation(name) => {
            let i = locations
                .iter()
                .position(|x| x.name() == name.as_str())
                .ok_or_else(|| ApiError::not_found(format!("no named location {name}")))?;
            let users = policies_referencing_location(&policies, name);
            if !users.is_empty() {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    format!(
                        "named location {name} is used by {}; change or delete those policies first",
                        users.join(", ")
                    ),
                ));
            }
            locations.remove(i);
            result.updated.push(name.clone());
            events.push(
                NewAuditEvent::new(actor, "ca.location.removed", format!("ca_location:{name}"))
                    .details(serde_json::json!({ "alert": true })),
            );
            change.delete_locations.push(name.clone());
        }
    }
    if change.put_policies.is_empty()
        && change.delete_policies.is_empty()
        && change.put_locations.is_empty()
        && change.delete_locations.is_empty()
    {
        return Ok(Planned {
            change,
            events,
            result,
            policies,
        });
    }
    // Deleting a policy only relaxes the set: nothing to guard (and a tenant already past a
    // forced lock-out must be able to undo it).
    if matches!(edit, Edit::Delete(_)) {
        return Ok(Planned {
            change,
            events,
            result,
            policies,
        });
    }
    // The lockout guard, on the set as it would be.
    let compiled = CompiledPolicies::compile(&policies, &locations)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    // Administering Portcullis takes the API or the CLI; an administrator who could reach
    // only some relying party is locked out of Portcullis all the same.
    let clients: Vec<String> = Vec::new();
    let admins = global_admins(state, now).await?;
    let me_profile = AccountProfile {
        subject: subject(state, me, now).await?,
        strongest: strongest(state, me).await?,
    };
    if let Err(e) = check_lockout(&compiled, &clients, &admins, &me_profile) {
        if !(e.forcible() && force) {
            return Err(lockout_error(&e));
        }
        // Forced past (b): said in every event of the change (they alert as ca.policy.*).
        for ev in events.iter_mut() {
            if let Some(d) = ev.details.as_object_mut() {
                d.insert("forced".into(), true.into());
                d.insert(
                    "lockout".into(),
                    serde_json::to_value(&e).unwrap_or_default(),
                );
                d.insert("alert".into(), true.into());
            }
        }
        events.push(
            NewAuditEvent::new(actor, "ca.policy.lockout_forced", "tenant").details(
                serde_json::json!({
                    "lockout": e, "reason": e.to_string(),
                }),
            ),
        );
    }
    Ok(Planned {
        change,
        events,
        result,
        policies,
    })
}

/// What happens to a planned edit: a caller's edit is checked for weakenings (and becomes a
/// change request if it weakens); an approved change request's is written with its close.
pub(super) enum Then<'a> {
    Check(&'a Caller),
    Close(Box<(Change, NewAuditEvent)>),
}

/// Plans and writes `edit` as `actor` (the lockout guard also looks after `me`), again from
/// the top when another replica changed the set first.
pub(super) async fn plan_and_write(
    state: &AppState,
    actor: &str,
    me: &Principal,
    edit: &Edit,
    force: bool,
    then: Then<'_>,
) -> Result<CaImportResult, ApiError> {
    for _ in 0..RETRIES {
        let loaded = load(state).await?;
        let planned = plan(state, actor, me, &loaded, edit, force).await?;
        let (change, events) = match &then {
            Then::Check(_) if planned.events.is_empty() => return Ok(planned.result),
            Then::Check(caller) => {
                let weak =
                    privileged_weakenings(state, &loaded.policies, &planned.policies).await?;
                if !weak.is_empty() {
                    return Err(propose_edit(state, caller, edit, force, weak).await);
                }
                (Change::ConditionalAccess(planned.change), planned.events)
            }
            // Already as asked (another edit got there first): only the close is written.
            Then::Close(c) if planned.events.is_empty() => (c.0.clone(), vec![c.1.clone()]),
            Then::Close(c) => {
                let (close, ev) = &**c;
                let mut events = planned.events;
                events.push(ev.clone());
                (
                    Change::Many(vec![
                        Change::ConditionalAccess(planned.change),
                        close.clone(),
                    ]),
                    events,
                )
            }
        };
        match state.store.write(change, events).await {
            Ok(_) => return Ok(planned.result),
            Err(StoreError::Conflict(m)) if m == CA_CHANGED => continue,
            Err(StoreError::Conflict(m)) if m == portcullis_store::CHANGE_MOVED => {
                return Err(crate::services::support::change_moved());
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::new(
        ErrorCode::Conflict,
        "conditional access is being changed by someone else right now; try again",
    ))
}

/// Plans and writes a caller's `edit`.
pub(super) async fn apply(
    state: &AppState,
    caller: &Caller,
    edit: Edit,
    force: bool,
) -> Result<CaImportResult, ApiError> {
    let me = caller.require(perm::CA_MANAGE)?;
    plan_and_write(
        state,
        &caller.actor(),
        &me.principal,
        &edit,
        force,
        Then::Check(caller),
    )
    .await
}

/// The weakenings (per policy: `NAME: how`) of the enforced policies that apply to a
/// privileged role, going from `before` to `after`.
async fn privileged_weakenings(
    state: &AppState,
    before: &[Policy],
    after: &[Policy],
) -> Result<Vec<(String, Vec<&'static str>)>, ApiError> {
    let mut out = Vec::new();
    for old in before {
        let new = after
            .iter()
            .find(|p| p.name().eq_ignore_ascii_case(old.name()));
        let weak = portcullis_core::governance::policy_weakenings(old, new);
        if !weak.is_empty() && applies_to_privileged(state, old).await? {
            out.push((old.name().to_owned(), weak));
        }
    }
    Ok(out)
}

/// Records `edit` as a change request; the error to answer with.
async fn propose_edit(
    state: &AppState,
    caller: &Caller,
    edit: &Edit,
    force: bool,
    weak: Vec<(String, Vec<&'static str>)>,
) -> ApiError {
    let payload = match serde_json::to_value(edit) {
        Ok(mut v) => {
            v["force"] = force.into();
            v
        }
        Err(e) => return ApiError::internal(e),
    };
    let subject = weak
        .iter()
        .map(|(n, _)| format!("ca_policy:{n}"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut how: Vec<&'static str> = weak.into_iter().flat_map(|(_, w)| w).collect();
    how.sort_unstable();
    how.dedup();
    crate::services::changes::propose(state, caller, "ca_policy", &subject, payload, how).await
}
