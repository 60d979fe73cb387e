//! Assignments: who may hold a role where, eligible or active (privilege model rule 2: nobody
//! hands out more than they hold, nobody assigns themselves), and making an active one eligible.

use super::*;
use crate::services::support::ConflictExt;
use portcullis_core::roles::AssignmentKind;

/// Refuses (403 `not_grantable`) when the caller does not hold, at the tenant, every permission
/// they would hand out by `what` (privilege model rule 2: nobody hands out more than they hold).
pub(super) fn require_grantable(
    me: &SessionCaller,
    permissions: &[Permission],
    everything: bool,
    what: &str,
) -> Result<(), ApiError> {
    let missing = privilege::missing_to_grant(&me.grants, permissions, everything);
    if missing.is_empty() {
        return Ok(());
    }
    Err(coded(
        ErrorCode::NotGrantable,
        format!(
            "you cannot {what} permissions you do not hold at /: {}",
            missing.join(", ")
        ),
    ))
}

/// The role-assignable groups `principal_id` belongs to: the only groups that confer roles or
/// make anyone an approver (ordinary groups are Helpdesk's to change).
pub(super) async fn role_assignable_groups(
    state: &AppState,
    principal_id: &str,
) -> Result<Vec<String>, ApiError> {
    Ok(state
        .store
        .groups_of(principal_id)
        .await?
        .into_iter()
        .filter(|g| g.role_assignable)
        .map(|g| g.name)
        .collect())
}

/// Privilege model rule 2 for a new assignment of `def` to `p` by `me`.
pub(super) async fn check_assignment(
    state: &AppState,
    caller: &Caller,
    me: &SessionCaller,
    p: &Principal,
    def: &RoleDef,
    active: bool,
) -> Result<(), ApiError> {
    let assignee = match p.kind.as_str() {
        "group" => Assignee::Group,
        "service_account" => Assignee::ServiceAccount,
        _ if p.emergency => Assignee::BreakGlass,
        _ => Assignee::Person,
    };
    let to_own_group = assignee == Assignee::Group
        && state
            .store
            .groups_of(&me.principal.id)
            .await?
            .iter()
            .any(|g| g.id == p.id);
    let to_managed_service_account = assignee == Assignee::ServiceAccount
        && state
            .store
            .manages_credentials_of(&p.id, &caller.actor())
            .await?;
    let facts = AssignmentFacts {
        to_self: p.id == me.principal.id,
        to_own_group,
        to_managed_service_account,
        assignee,
        role: def.tier(),
        active,
        actor: crate::services::privilege::tier(me),
    };
    privilege::check_assignment(&facts).map_err(|e| {
        let code = match e {
            AssignmentRefusal::ToSelf
            | AssignmentRefusal::ToOwnGroup
            | AssignmentRefusal::ToManagedServiceAccount => ErrorCode::SelfAssignment,
            AssignmentRefusal::PrivilegedActiveForPeople => ErrorCode::EligibleOnly,
            AssignmentRefusal::PrivilegedActiveNeedsTopTier => ErrorCode::Forbidden,
        };
        coded(code, e.to_string())
    })
}

/// The end of an assignment lasting `seconds` from `now`: positive, and representable (a huge
/// number is a clear 400, never an overflow).
pub(super) fn end_after(now: OffsetDateTime, seconds: i64) -> Result<OffsetDateTime, ApiError> {
    if seconds <= 0 {
        return Err(ApiError::bad_request("duration_seconds must be positive"));
    }
    now.checked_add(Duration::seconds(seconds))
        .filter(|e| e.year() <= 9999)
        .ok_or_else(|| ApiError::bad_request("duration_seconds is too large"))
}

pub(super) fn assignment_view(a: &Assignment) -> AssignmentView {
    AssignmentView {
        id: a.id.clone(),
        principal: format!("{}:{}", a.principal_kind, a.principal_name),
        role: a.role.clone(),
        scope: a.scope.clone(),
        kind: a.kind.as_str().to_owned(),
        starts_at: rfc3339(a.starts_at_us),
        ends_at: a.ends_at_us.map(rfc3339),
        created_by: a.created_by.clone(),
        ended_at: a.ended_at_us.map(rfc3339),
        end_reason: a.end_reason.clone(),
    }
}

/// Resolves `NAME`, `user:NAME`, `group:NAME` or `service_account:NAME`.
pub(super) async fn principal_ref(state: &AppState, r: &str) -> Result<Principal, ApiError> {
    let (kind, name) = match r.split_once(':') {
        Some((k, n)) if ["user", "group", "service_account"].contains(&k) => (k, n),
        Some(_) => {
            return Err(ApiError::bad_request(
                "principal must be NAME, user:NAME, group:NAME or service_account:NAME",
            ));
        }
        None => ("user", r),
    };
    let name = PrincipalName::parse("principal", name).map_err(invalid)?;
    match state.store.principal_by_name(name.as_str()).await? {
        Some(p) if p.kind.as_str() == kind => Ok(p),
        _ => Err(ApiError::not_found(format!("no {kind} named {name}"))),
    }
}

/// Just-in-time membership is handed out like membership itself: by those who change a
/// role-assignable group's members (the top tier), eligible only (an active membership is a
/// permanent one: `groups add`), to a user or service account (groups are not nested).
fn check_membership_eligibility(
    caller: &Caller,
    p: &Principal,
    kind: Option<&str>,
) -> Result<(), ApiError> {
    caller.require(perm::GROUPS_ROLE_ASSIGNABLE_UPDATE)?;
    if p.kind == portcullis_core::principal::PrincipalKind::Group {
        return Err(ApiError::bad_request(
            "groups cannot be nested: membership is for users and service accounts",
        ));
    }
    if kind.is_some_and(|k| k != "eligible") {
        return Err(ApiError::bad_request(
            "just-in-time membership is eligible only; a standing membership is portcullis groups add GROUP NAME",
        ));
    }
    Ok(())
}

pub async fn create_assignment(
    state: &AppState,
    caller: &Caller,
    req: CreateAssignmentRequest,
) -> Result<AssignmentView, ApiError> {
    let scope = match req.scope.as_deref() {
        Some(s) => Scope::parse(s).map_err(invalid)?,
        None => Scope::tenant(),
    };
    let me = caller.require_at(perm::ASSIGNMENTS_CREATE, &scope)?;
    let def = role_at(state, &req.role, &scope).await?;
    let p = principal_ref(state, &req.principal).await?;
    if def.group.is_some() {
        check_membership_eligibility(caller, &p, req.kind.as_deref())?;
    }
    if p.kind == portcullis_core::principal::PrincipalKind::Group && !p.role_assignable {
        return Err(ApiError::bad_request(format!(
            "group {} is not role-assignable; roles can only be assigned to role-assignable groups",
            p.name
        )));
    }
    let kind = match req.kind.as_deref().map(AssignmentKind::parse) {
        None => AssignmentKind::Eligible,
        Some(Some(k)) => k,
        Some(None) => return Err(ApiError::bad_request("kind must be eligible or active")),
    };
    let now = OffsetDateTime::now_utc();
    let ends = match (req.duration_seconds, req.ends_at.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give duration_seconds or ends_at, not both",
            ));
        }
        (Some(d), None) => Some(end_after(now, d)?),
        (None, Some(t)) => {
            let t = OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map_err(|_| ApiError::bad_request("ends_at must be an RFC 3339 time"))?;
            if t <= now {
                return Err(ApiError::bad_request("ends_at must be in the future"));
            }
            Some(t)
        }
        (None, None) => None,
    };
    let s = settings(state, &def).await?;
    let limit = if kind == AssignmentKind::Active {
        s.max_active_seconds
    } else {
        s.max_eligible_seconds
    };
    match (ends, limit) {
        (None, _)
            if kind == AssignmentKind::Active && !(s.allow_permanent_active || p.emergency) =>
        {
            return Err(ApiError::bad_request(format!(
                "permanent active assignments of {} are not allowed; give a duration (at most {})",
                def.slug,
                portcullis_core::roles::format_duration(Duration::seconds(limit.unwrap_or(0)))
            )));
        }
        (None, Some(max)) if kind == AssignmentKind::Eligible => {
            return Err(ApiError::bad_request(format!(
                "eligible assignments of {} may last at most {}",
                def.slug,
                portcullis_core::roles::format_duration(Duration::seconds(max))
            )));
        }
        (Some(e), Some(max)) if e - now > Duration::seconds(max) => {
            return Err(ApiError::bad_request(format!(
                "{kind} assignments of {} may last at most {}",
                def.slug,
                portcullis_core::roles::format_duration(Duration::seconds(max))
            )));
        }
        _ => {}
    }
    check_assignment(state, caller, me, &p, &def, kind == AssignmentKind::Active).await?;
    let id = new_id("a");
    let by = caller.actor();
    // Holding or being eligible for a privileged role makes an account privileged: from now on
    // it needs MFA before a full sign-in, and only the top tier manages it (rules 1 and 5).
    // Members of a group are marked with it; whoever joins later is marked on joining.
    let privileged_role = def.tier().is_privileged();
    let mut marks = Vec::new();
    if privileged_role {
        if p.kind == portcullis_core::principal::PrincipalKind::Group {
            for m in state.store.group_members(&p.id).await? {
                if !m.privileged {
                    marks.push(Change::MarkPrivileged { principal_id: m.id });
                }
            }
            // Those eligible to join are as good as members (they join at will).
            let scope = format!("/groups/{}", p.name);
            for a in state
                .store
                .assignments(&AssignmentFilter {
                    principal_id: None,
                    role: Some(portcullis_core::roles::GROUP_MEMBER.to_owned()),
                    include_ended: false,
                })
                .await?
            {
                if a.scope == scope {
                    marks.push(Change::MarkPrivileged {
                        principal_id: a.principal_id,
                    });
                }
            }
        } else if !p.privileged {
            marks.push(Change::MarkPrivileged {
                principal_id: p.id.clone(),
            });
        }
    }
    let create = Change::CreateAssignment(NewAssignment {
        id: id.clone(),
        principal_id: p.id.clone(),
        role: def.slug.clone(),
        scope: scope.as_str().to_owned(),
        kind,
        starts_at_us: us(now),
        ends_at_us: ends.map(us),
        created_by: by,
        created_at_us: us(now),
    });
    let change = Change::Many(std::iter::once(create).chain(marks).collect());
    let ev = event(
        caller,
        "assignment.created",
        format!("{}:{}", p.kind, p.name),
    )
    .details(serde_json::json!({
        "assignment_id": id, "role": def.slug, "scope": scope.as_str(), "kind": kind,
        "ends_at": ends.map(|e| rfc3339(us(e))),
        "principal_now_privileged": privileged_role && p.kind != portcullis_core::principal::PrincipalKind::Group,
        "role_tier": def.tier().as_str(),
    }));
    state.store.write(change, vec![ev]).await?;
    state.expiry_wake.notify_one();
    let a = state
        .store
        .assignment(&id)
        .await?
        .ok_or_else(|| ApiError::internal("assignment vanished"))?;
    Ok(assignment_view(&a))
}

pub async fn list_assignments(
    state: &AppState,
    caller: &Caller,
    principal: Option<&str>,
    role_filter: Option<&str>,
) -> Result<Vec<AssignmentView>, ApiError> {
    let me = caller.require_session()?;
    let principal_id = match principal {
        Some(r) => Some(principal_ref(state, r).await?.id),
        None => None,
    };
    let mine_only = principal_id.as_deref() == Some(me.principal.id.as_str());
    if !mine_only {
        caller.require(perm::ASSIGNMENTS_READ)?;
    }
    let list = state
        .store
        .assignments(&AssignmentFilter {
            principal_id,
            role: role_filter.map(str::to_owned),
            include_ended: false,
        })
        .await?;
    Ok(list.iter().map(assignment_view).collect())
}

pub async fn delete_assignment(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(), ApiError> {
    let not_found = || ApiError::not_found("no such live assignment");
    if id.len() > 80 {
        return Err(not_found());
    }
    let a = state.store.assignment(id).await?.ok_or_else(not_found)?;
    if a.ended_at_us.is_some() {
        return Err(not_found());
    }
    let scope = Scope::parse(&a.scope).map_err(ApiError::internal)?;
    caller.require_at(perm::ASSIGNMENTS_DELETE, &scope)?;
    // A Global Administrator assignment: a break-glass account's not below the two-account
    // minimum; anyone else's not if it is the last way to Global Administrator at `/`.
    // Just-in-time membership of a group may be someone's way to Global Administrator.
    let guard = if a.role == portcullis_core::roles::GROUP_MEMBER {
        Some(Guard::GlobalAdministrator)
    } else if a.role == portcullis_core::alerts::GLOBAL_ADMINISTRATOR {
        let emergency = a.principal_kind == portcullis_core::principal::PrincipalKind::User
            && state
                .store
                .principal_by_id(&a.principal_id)
                .await?
                .is_some_and(|p| p.emergency);
        Some(if emergency {
            Guard::BreakGlassMinimum
        } else {
            Guard::GlobalAdministrator
        })
    } else {
        None
    };
    // A request made through it can move on (expire, be decided) between the read of the
    // requests and the write: then the write conflicts with REQUEST_MOVED and is planned again.
    let moved = || {
        ApiError::new(
            ErrorCode::Conflict,
            "a request made through this assignment kept changing; try again",
        )
    };
    for _ in 0..3 {
        match remove_once(state, caller, &a, guard, &moved).await {
            Err(e) if e.code == ErrorCode::Conflict && e.message == moved().message => continue,
            other => return other,
        }
    }
    Err(moved())
}

/// One attempt of [`delete_assignment`]: the requests made through `a` close first, each with
/// its own event (core's state machine names the end state); then the assignment ends.
async fn remove_once(
    state: &AppState,
    caller: &Caller,
    a: &Assignment,
    guard: Option<Guard>,
    moved: &impl Fn() -> ApiError,
) -> Result<(), ApiError> {
    let not_found = || ApiError::not_found("no such live assignment");
    let on_conflict = |m: String| {
        if m == portcullis_store::REQUEST_MOVED {
            moved()
        } else {
            not_found()
        }
    };
    let now = OffsetDateTime::now_utc();
    let ev = event(caller, "assignment.removed", format!("{}:{}", a.principal_kind, a.principal_name))
        .details(serde_json::json!({ "assignment_id": a.id, "role": a.role, "scope": a.scope, "kind": a.kind }));
    let (mut changes, closed) =
        closing_requests_of(&state.store, a, &caller.actor(), "removed", now).await?;
    changes.push(Change::EndAssignment {
        id: a.id.clone(),
        reason: "removed".into(),
        by: caller.actor(),
        at_us: us(now),
    });
    let change = Change::Many(changes);
    if let Some(guard) = guard {
        return crate::services::privilege::write_guarded_with(
            state,
            change,
            ev,
            closed,
            guard,
            on_conflict,
        )
        .await;
    }
    match state
        .store
        .write(change, std::iter::once(ev).chain(closed).collect())
        .await
    {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict(m)) => Err(on_conflict(m)),
        Err(e) => Err(e.into()),
    }
}

/// Turns a live active assignment into an eligible one (same principal, role and scope), in one
/// transaction. It only lowers privilege, so the holder may do it for themselves (the way the
/// first administrator's standing Global Administrator becomes eligible); anyone else needs
/// `assignments.create` and `assignments.delete` at its scope. Break-glass accounts keep their
/// standing role.
pub async fn make_eligible(
    state: &AppState,
    caller: &Caller,
    id: &str,
    req: MakeEligibleRequest,
) -> Result<AssignmentView, ApiError> {
    let me = caller.require_full()?;
    let not_found = || ApiError::not_found("no such live active assignment");
    if id.len() > 80 {
        return Err(not_found());
    }
    let a = state.store.assignment(id).await?.ok_or_else(not_found)?;
    let now = OffsetDateTime::now_utc();
    if a.ended_at_us.is_some()
        || a.kind != portcullis_core::roles::AssignmentKind::Active
        || a.ends_at_us.is_some_and(|e| e <= us(now))
    {
        return Err(not_found());
    }
    let scope = Scope::parse(&a.scope).map_err(ApiError::internal)?;
    if a.principal_id != me.principal.id {
        caller.require_at(perm::ASSIGNMENTS_CREATE, &scope)?;
        caller.require_at(perm::ASSIGNMENTS_DELETE, &scope)?;
    }
    let p = state
        .store
        .principal_by_id(&a.principal_id)
        .await?
        .ok_or_else(not_found)?;
    if p.emergency {
        return Err(coded(
            ErrorCode::Conflict,
            "a break-glass account keeps its standing Global Administrator role",
        ));
    }
    let def = role_of(state, &a.role, &a.scope).await?;
    let s = settings(state, &def).await?;
    let ends = req
        .duration_seconds
        .map(|d| end_after(now, d))
        .transpose()?;
    if let Some(max) = s.max_eligible_seconds
        && ends.is_none_or(|e| e - now > Duration::seconds(max))
    {
        return Err(ApiError::bad_request(format!(
            "eligible assignments of {} may last at most {}",
            def.slug,
            portcullis_core::roles::format_duration(Duration::seconds(max))
        )));
    }
    let new_id = new_id("a");
    let change = Change::Many(vec![
        Change::CreateAssignment(NewAssignment {
            id: new_id.clone(),
            principal_id: p.id.clone(),
            role: a.role.clone(),
            scope: a.scope.clone(),
            kind: AssignmentKind::Eligible,
            starts_at_us: us(now),
            ends_at_us: ends.map(us),
            created_by: caller.actor(),
            created_at_us: us(now),
        }),
        Change::EndAssignment {
            id: a.id.clone(),
            reason: "made_eligible".into(),
            by: caller.actor(),
            at_us: us(now),
        },
    ]);
    let ev = event(
        caller,
        "assignment.made_eligible",
        format!("{}:{}", p.kind, p.name),
    )
    .details(serde_json::json!({
        "ended_assignment_id": a.id, "assignment_id": new_id, "role": a.role, "scope": a.scope,
        "ends_at": ends.map(|e| rfc3339(us(e))),
    }));
    state
        .store
        .write(change, vec![ev])
        .await
        .on_conflict(not_found)?;
    state.expiry_wake.notify_one();
    let made = state
        .store
        .assignment(&new_id)
        .await?
        .ok_or_else(|| ApiError::internal("assignment vanished"))?;
    Ok(assignment_view(&made))
}

/// Changes that close `member`'s open requests resting on `group`'s assignments (for when
/// the member leaves the group), and their ids.
pub async fn close_requests_via_group(
    state: &AppState,
    group: &Principal,
    member: &Principal,
    caller: &Caller,
    now: OffsetDateTime,
) -> Result<(Vec<Change>, Vec<String>), ApiError> {
    if !group.role_assignable {
        return Ok((Vec::new(), Vec::new()));
    }
    let group_assignments: Vec<String> = state
        .store
        .assignments(&AssignmentFilter {
            principal_id: Some(group.id.clone()),
            ..Default::default()
        })
        .await?
        .into_iter()
        .map(|a| a.id)
        .collect();
    let mut changes = Vec::new();
    let mut ids = Vec::new();
    for r in state
        .store
        .requests(&RequestFilter {
            principal_id: Some(member.id.clone()),
            ..Default::default()
        })
        .await?
    {
        if !group_assignments.contains(&r.eligibility_id) {
            continue;
        }
        // Core's state machine: a pending or scheduled request is cancelled (it granted
        // nothing yet), an active grant revoked.
        let event = match r.state {
            RequestState::PendingApproval | RequestState::Scheduled => RequestEvent::Cancel,
            _ => RequestEvent::Revoke,
        };
        let Ok(to) = activation::transition(r.state, &event) else {
            continue;
        };
        changes.push(Change::CloseRequest {
            id: r.id.clone(),
            from: r.state,
            to,
            by: caller.actor(),
            reason: Some("left_role_assignable_group".into()),
            at_us: us(now),
        });
        ids.push(r.id);
    }
    Ok((changes, ids))
}
