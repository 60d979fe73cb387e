//! Custom roles, assignments and activation requests. A request is created only while its
//! eligibility lives; decisions count approvals under the request's state; closes move from an
//! expected state (core's `activation::transition` chose it) or conflict; and the tenant never
//! loses its last way to Global Administrator.

use super::conflicts::{LAST_GLOBAL_ADMINISTRATOR, REQUEST_MOVED, conflict};
use super::sql::{Conn, args};
use super::targets::{self, Scope};
use crate::Result;

/// A new role assignment.
#[derive(Debug, Clone)]
pub struct NewAssignment {
    pub id: String,
    pub principal_id: String,
    pub role: String,
    pub scope: String,
    /// `eligible` or `active`.
    pub kind: portcullis_core::roles::AssignmentKind,
    pub starts_at_us: i64,
    pub ends_at_us: Option<i64>,
    pub created_by: String,
    pub created_at_us: i64,
}

/// A new activation request: pending approval, scheduled, active, or (an extension that
/// needed no approval) applied.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub id: String,
    pub principal_id: String,
    pub role: String,
    pub scope: String,
    pub eligibility_id: String,
    /// `pending_approval`, `scheduled`, `active` or `applied`.
    pub state: portcullis_core::activation::RequestState,
    pub duration_seconds: i64,
    pub justification: Option<String>,
    pub ticket: Option<String>,
    pub approvals_required: i64,
    pub created_at_us: i64,
    pub timeout_at_us: Option<i64>,
    pub activated_at_us: Option<i64>,
    pub ends_at_us: Option<i64>,
    /// A scheduled activation's start.
    pub starts_at_us: Option<i64>,
    /// An extension's activation.
    pub extends_id: Option<String>,
}

pub(crate) async fn create_custom_role(
    c: &mut Conn<'_>,
    slug: &str,
    display_name: &str,
    description: &str,
    permissions: &str,
    at_us: i64,
) -> Result<()> {
    let n = c.execute("INSERT INTO custom_roles (slug, display_name, description, permissions, created_at_us) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING", args![slug, display_name, description, permissions, at_us]).await?;
    if n == 0 {
        return Err(conflict("a role with that name exists"));
    }

    Ok(())
}

pub(crate) async fn delete_custom_role(c: &mut Conn<'_>, slug: &str) -> Result<()> {
    let n = c.execute("DELETE FROM custom_roles WHERE slug = $1 AND NOT EXISTS (SELECT 1 FROM role_assignments WHERE role = $1 AND ended_at_us IS NULL)", args![slug]).await?;
    if n == 0 {
        return Err(conflict("the role is gone or still assigned"));
    }
    c.execute("DELETE FROM role_settings WHERE role = $1", args![slug])
        .await?;

    Ok(())
}

pub(crate) async fn set_role_settings(
    c: &mut Conn<'_>,
    role: &str,
    settings: &str,
    at_us: i64,
) -> Result<()> {
    c.execute("INSERT INTO role_settings (role, settings, updated_at_us) VALUES ($1, $2, $3) ON CONFLICT (role) DO UPDATE SET settings = excluded.settings, updated_at_us = excluded.updated_at_us", args![role, settings, at_us]).await?;

    Ok(())
}

pub(crate) async fn create_assignment(c: &mut Conn<'_>, a: &NewAssignment) -> Result<()> {
    c.execute("INSERT INTO role_assignments (id, principal_id, role, scope, kind, starts_at_us, ends_at_us, created_by, created_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)", args![&a.id, &a.principal_id, &a.role, &a.scope, &a.kind, a.starts_at_us, a.ends_at_us, &a.created_by, a.created_at_us]).await?;
    targets::grant_assignment(c, &a.id, a.created_at_us).await?;

    Ok(())
}

pub(crate) async fn end_assignment(
    c: &mut Conn<'_>,
    id: &str,
    reason: &str,
    by: &str,
    at_us: i64,
) -> Result<()> {
    let n = c.execute("UPDATE role_assignments SET ended_at_us = $1, end_reason = $2 WHERE id = $3 AND ended_at_us IS NULL", args![at_us, reason, id]).await?;
    if n == 0 {
        return Err(conflict("assignment already ended"));
    }
    targets::revoke_where(c, Scope::RequestsOf(id), reason, at_us).await?;
    targets::revoke_where(c, Scope::Grant(id), reason, at_us).await?;
    c.execute("UPDATE activation_requests SET state = CASE state WHEN 'active' THEN 'revoked' ELSE 'cancelled' END, closed_at_us = $1, closed_by = $2, close_reason = $3 WHERE eligibility_id = $4 AND state IN ('pending_approval', 'scheduled', 'active')", args![at_us, by, reason, id]).await?;

    Ok(())
}

pub(crate) async fn create_request(c: &mut Conn<'_>, r: &NewRequest) -> Result<()> {
    let live: Option<i64> = c.optional_int("SELECT CAST(1 AS BIGINT) FROM role_assignments WHERE id = $1 AND ended_at_us IS NULL AND (ends_at_us IS NULL OR ends_at_us > $2)", args![&r.eligibility_id, r.created_at_us]).await?;
    if live.is_none() {
        return Err(conflict("the eligible assignment has ended"));
    }
    let closed = r.state.is_terminal().then_some(r.created_at_us);
    c.execute("INSERT INTO activation_requests (id, principal_id, role, scope, eligibility_id, state, duration_seconds, justification, ticket, approvals_required, created_at_us, timeout_at_us, activated_at_us, ends_at_us, starts_at_us, extends_id, closed_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)", args![&r.id, &r.principal_id, &r.role, &r.scope, &r.eligibility_id, &r.state, r.duration_seconds, &r.justification, &r.ticket, r.approvals_required, r.created_at_us, r.timeout_at_us, r.activated_at_us, r.ends_at_us, r.starts_at_us, &r.extends_id, closed]).await?;
    if r.state == portcullis_core::activation::RequestState::Active {
        targets::grant_request(c, &r.id, r.created_at_us, "request.activated").await?;
    }

    Ok(())
}

/// What the last approval a request needs makes of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completed {
    /// Active from `at_us` until `ends_at_us`.
    Activate { at_us: i64, ends_at_us: i64 },
    /// Scheduled: its start is the request's own; it will end at `ends_at_us`.
    Schedule { ends_at_us: i64 },
    /// An extension applied: the activation it extends now ends at `ends_at_us` (moved by a
    /// [`super::Change::ExtendRequest`] in the same write).
    Apply { ends_at_us: i64 },
}

/// One approver's decision on a request.
#[derive(Debug, Clone)]
pub struct RequestDecision {
    pub request_id: String,
    pub approver_id: String,
    pub approve: bool,
    pub reason: Option<String>,
    pub approvals_before: i64,
    /// Set when this approval completes the request.
    pub completes: Option<Completed>,
    pub at_us: i64,
}

pub(crate) async fn decide_request(c: &mut Conn<'_>, d: &RequestDecision) -> Result<()> {
    let RequestDecision {
        request_id,
        approver_id,
        approve,
        reason,
        approvals_before,
        completes,
        at_us,
    } = d;
    let approve = *approve;
    let approvals_before = *approvals_before;
    let at_us = *at_us;

    let approvals: i64 = c
        .count(
            "SELECT COUNT(*) FROM request_decisions WHERE request_id = $1 AND decision = 'approve'",
            args![request_id],
        )
        .await?;
    let pending: Option<i64> = c.optional_int("SELECT CAST(1 AS BIGINT) FROM activation_requests WHERE id = $1 AND state = 'pending_approval'", args![request_id]).await?;
    if pending.is_none() {
        return Err(conflict("the request is no longer pending"));
    }
    if approvals != approvals_before {
        return Err(conflict("another approval arrived meanwhile"));
    }
    let n = c.execute("INSERT INTO request_decisions (request_id, approver_id, decision, reason, at_us) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING", args![request_id, approver_id, if approve { "approve" } else { "deny" }, reason, at_us]).await?;
    if n == 0 {
        return Err(conflict("this approver has decided already"));
    }
    if !approve {
        c.execute("UPDATE activation_requests SET state = 'denied', closed_at_us = $1, closed_by = $2, close_reason = $3 WHERE id = $4", args![at_us, approver_id, reason, request_id]).await?;
    } else {
        match *completes {
            None => {}
            Some(Completed::Activate {
                at_us: activated,
                ends_at_us: ends,
            }) => {
                c.execute("UPDATE activation_requests SET state = 'active', activated_at_us = $1, ends_at_us = $2 WHERE id = $3", args![activated, ends, request_id]).await?;
                targets::grant_request(c, request_id, at_us, "request.activated").await?;
            }
            Some(Completed::Schedule { ends_at_us: ends }) => {
                c.execute("UPDATE activation_requests SET state = 'scheduled', ends_at_us = $1 WHERE id = $2", args![ends, request_id]).await?;
            }
            Some(Completed::Apply { ends_at_us: ends }) => {
                c.execute("UPDATE activation_requests SET state = 'applied', ends_at_us = $1, closed_at_us = $2, closed_by = $3 WHERE id = $4", args![ends, at_us, approver_id, request_id]).await?;
            }
        }
    }

    Ok(())
}

pub(crate) async fn extend_request(
    c: &mut Conn<'_>,
    id: &str,
    from_end_us: i64,
    to_end_us: i64,
    at_us: i64,
) -> Result<()> {
    let n = c.execute("UPDATE activation_requests SET ends_at_us = $1 WHERE id = $2 AND state = 'active' AND ends_at_us = $3 AND ends_at_us > $4", args![to_end_us, id, from_end_us, at_us]).await?;
    if n == 0 {
        return Err(conflict("the activation ended or changed meanwhile"));
    }
    // The targets learn the new end (a dynamic login's VALID UNTIL); a grant applied twice
    // changes nothing else.
    targets::grant_request(c, id, at_us, "request.extended").await?;

    Ok(())
}

pub(crate) async fn start_request(c: &mut Conn<'_>, id: &str, at_us: i64) -> Result<()> {
    let n = c.execute("UPDATE activation_requests SET state = 'active', activated_at_us = $1 WHERE id = $2 AND state = 'scheduled' AND ends_at_us > $1 \
        AND EXISTS (SELECT 1 FROM principals p WHERE p.id = activation_requests.principal_id AND p.enabled) \
        AND EXISTS (SELECT 1 FROM role_assignments a JOIN principals g ON g.id = a.principal_id WHERE a.id = activation_requests.eligibility_id \
            AND a.ended_at_us IS NULL AND (a.ends_at_us IS NULL OR a.ends_at_us > $1) \
            AND (a.principal_id = activation_requests.principal_id OR (g.kind = 'group' AND g.role_assignable AND EXISTS \
                (SELECT 1 FROM group_memberships m WHERE m.group_id = a.principal_id AND m.member_id = activation_requests.principal_id AND (m.until_us IS NULL OR m.until_us > $1)))))", args![at_us, id]).await?;
    if n == 0 {
        return Err(conflict(REQUEST_MOVED));
    }
    targets::grant_request(c, id, at_us, "request.activated").await?;

    Ok(())
}

pub(crate) async fn close_request(
    c: &mut Conn<'_>,
    id: &str,
    from: portcullis_core::activation::RequestState,
    to: portcullis_core::activation::RequestState,
    by: &str,
    reason: Option<&str>,
    at_us: i64,
) -> Result<()> {
    // An expiry holds only for a request whose end has come: one an extension moved meanwhile
    // is left alone (its new end is a deadline of its own).
    let expires = to == portcullis_core::activation::RequestState::Expired;
    let n = c.execute("UPDATE activation_requests SET state = $1, closed_at_us = $2, closed_by = $3, close_reason = $4 WHERE id = $5 AND state = $6 AND (NOT $7 OR ends_at_us <= $2)", args![to, at_us, by, reason, id, from, expires]).await?;
    if n == 0 {
        return Err(conflict(REQUEST_MOVED));
    }
    if from == portcullis_core::activation::RequestState::Active {
        let reason = format!("request.{}", to.as_str());
        targets::revoke_where(c, Scope::Grant(id), &reason, at_us).await?;
        end_membership_dependents(c, id, by, at_us).await?;
    }

    Ok(())
}

/// When request `id` was a just-in-time group membership and its holder is no longer a member
/// otherwise, ends what rested on the membership, as leaving the group does: their requests
/// through the group's eligible assignments are cancelled (pending, scheduled) or revoked
/// (active, with every target grant), `left_role_assignable_group`. In the membership's own
/// transaction, so no path that ends a membership (expiry, deactivation, revocation, its
/// eligibility removed, a review) can leave a role held through it.
async fn end_membership_dependents(c: &mut Conn<'_>, id: &str, by: &str, at_us: i64) -> Result<()> {
    let Some((member, group)) = c
        .optional_texts("SELECT r.principal_id, g.id FROM activation_requests r JOIN principals g ON g.kind = 'group' AND r.scope = '/groups/' || g.name WHERE r.id = $1 AND r.role = 'group-member'", args![id])
        .await?
    else {
        return Ok(());
    };
    let still = c
        .count("SELECT COUNT(*) FROM group_memberships m WHERE m.group_id = $1 AND m.member_id = $2 AND (m.until_us IS NULL OR m.until_us > $3)", args![&group, &member, at_us])
        .await?;
    if still > 0 {
        return Ok(());
    }
    for held in c
        .texts("SELECT r.id FROM activation_requests r JOIN role_assignments a ON a.id = r.eligibility_id WHERE r.principal_id = $1 AND a.principal_id = $2 AND r.state = 'active'", args![&member, &group])
        .await?
    {
        targets::revoke_where(c, Scope::Grant(&held), "left_role_assignable_group", at_us).await?;
    }
    c.execute("UPDATE activation_requests SET state = CASE WHEN state = 'active' THEN 'revoked' ELSE 'cancelled' END, closed_at_us = $1, closed_by = $2, close_reason = 'left_role_assignable_group' WHERE principal_id = $3 AND state IN ('pending_approval', 'scheduled', 'active') AND eligibility_id IN (SELECT a.id FROM role_assignments a WHERE a.principal_id = $4)", args![at_us, by, &member, &group]).await?;
    Ok(())
}

pub(crate) async fn require_global_administrator(
    c: &mut Conn<'_>,
    before: i64,
    at_us: i64,
) -> Result<()> {
    c.lock_rows("SELECT a.id FROM role_assignments a WHERE a.role = 'global-administrator' AND a.ended_at_us IS NULL ORDER BY a.id").await?;
    let n = c.count(crate::roles::GA_REACHERS_SQL, args![at_us]).await?;
    if portcullis_core::privilege::refuses_last_global_administrator(before, n) {
        return Err(conflict(LAST_GLOBAL_ADMINISTRATOR));
    }

    Ok(())
}
