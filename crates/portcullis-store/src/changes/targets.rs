//! Targets, role bindings and target operations (the outbox of grants and revokes).
//!
//! Invariants:
//! - Every change that starts or ends a grant at a bound target writes its operation here, in
//!   its own transaction (invariant 1): [`grant_request`] when a request becomes active,
//!   [`grant_assignment`] for an active assignment, [`revoke_where`] when a grant ends for any
//!   reason (expiry, deactivation, revocation, the assignment's end, the person disabled,
//!   the binding removed). Nothing else decides what a target must hold.
//! - A revoke is written for every (grant, target) whose newest operation is a grant, from
//!   that grant's own record (not from the binding as it is now), so a binding changed or
//!   removed meanwhile cannot leave a right behind; a pending grant not yet claimed is
//!   superseded by it.
//! - An operation is claimed by one worker (conditional update, lapsing claim) and only after
//!   every earlier operation of the same grant and target finished, so a revoke never
//!   overtakes its grant.

use super::conflicts::conflict;
use super::sql::{Conn, args};
use crate::Result;

/// A new target (its secret, if any, already sealed).
#[derive(Debug, Clone)]
pub struct NewTarget {
    pub name: String,
    pub kind: String,
    /// JSON; holds no secret.
    pub config: String,
    pub sealed_secret: Option<Vec<u8>>,
    /// A `PORTCULLIS_TARGET_SECRET_*` variable that holds the secret instead.
    pub secret_env: Option<String>,
    /// `report` or `revert`.
    pub drift_mode: String,
    pub reconcile_interval_s: i64,
    pub created_by: String,
    pub at_us: i64,
}

/// A role bound to a target.
#[derive(Debug, Clone)]
pub struct NewBinding {
    pub role: String,
    pub target: String,
    /// JSON array of target-side rights.
    pub grants: String,
    /// `grant` or `dynamic`.
    pub mode: String,
    /// ssh-ca: JSON object of certificate options (extensions, force command).
    pub options: Option<String>,
    pub by: String,
    pub at_us: i64,
}

/// The credential an applied dynamic grant created (its password sealed).
#[derive(Debug, Clone)]
pub struct NewCredential {
    pub login: String,
    pub sealed_password: Vec<u8>,
}

/// A principal's own account at a target (`account: None` removes it: the target's login
/// template applies again).
#[derive(Debug, Clone)]
pub struct NewTargetAccount {
    pub target: String,
    pub principal_id: String,
    pub account: Option<String>,
    /// The account's id at the target (an Entra object id), if it has one.
    pub external_id: Option<String>,
    pub by: String,
    pub at_us: i64,
}

/// The outcome of one attempt at a target operation.
#[derive(Debug, Clone)]
pub struct TargetOpAttempt {
    pub id: i64,
    pub worker: String,
    /// The attempt's number (the operation's `attempts` after its claim).
    pub attempt: i64,
    pub started_at_us: i64,
    pub finished_at_us: i64,
    pub applied: bool,
    pub detail: Option<String>,
    /// For a failure: when to try again, or `None` to dead-letter.
    pub retry_at_us: Option<i64>,
    /// For a failure: record that it has been reported (alerted) once.
    pub reported: bool,
    /// For an applied dynamic grant: the login it created, to hand to its holder once.
    pub credential: Option<NewCredential>,
}

pub(crate) async fn add_target(c: &mut Conn<'_>, t: &NewTarget) -> Result<()> {
    let n = c.execute("INSERT INTO targets (name, kind, config, sealed_secret, secret_env, drift_mode, reconcile_interval_s, created_by, created_at_us, updated_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT DO NOTHING", args![&t.name, &t.kind, &t.config, &t.sealed_secret, &t.secret_env, &t.drift_mode, t.reconcile_interval_s, &t.created_by, t.at_us]).await?;
    if n == 0 {
        return Err(conflict("a target with that name exists"));
    }
    Ok(())
}

pub(crate) async fn remove_target(c: &mut Conn<'_>, name: &str) -> Result<()> {
    // Its CA keys and certificates first (they refer to it); a refusal below undoes this too.
    super::ssh::remove_target(c, name).await?;
    c.execute("DELETE FROM target_accounts WHERE target = $1", args![name])
        .await?;
    let n = c.execute("DELETE FROM targets WHERE name = $1 AND NOT EXISTS (SELECT 1 FROM target_bindings WHERE target = $1) AND NOT EXISTS (SELECT 1 FROM target_ops WHERE target = $1 AND state = 'pending')", args![name]).await?;
    if n == 0 {
        return Err(conflict(
            "the target is gone, still bound to a role, or has operations pending",
        ));
    }
    Ok(())
}

/// Sets or removes a principal's account at a target. Conflicts while the principal holds
/// anything there (a grant whose newest operation is not an applied revoke, or anything
/// pending), so the reconciler's desired state and every operation of a live grant name the
/// same account; and when another principal has that account.
pub(crate) async fn set_target_account(c: &mut Conn<'_>, a: &NewTargetAccount) -> Result<()> {
    let held = c.count("SELECT COUNT(*) FROM target_ops o WHERE o.target = $1 AND o.principal_id = $2 AND o.state <> 'superseded' AND NOT (o.op = 'revoke' AND o.state = 'applied') AND NOT EXISTS (SELECT 1 FROM target_ops l WHERE l.grant_id = o.grant_id AND l.target = o.target AND l.id > o.id AND l.state <> 'superseded')", args![&a.target, &a.principal_id]).await?;
    if held > 0 {
        return Err(conflict(
            "the person holds grants at the target or has operations pending there: their account changes once those ended",
        ));
    }
    let Some(account) = &a.account else {
        let n = c
            .execute(
                "DELETE FROM target_accounts WHERE target = $1 AND principal_id = $2",
                args![&a.target, &a.principal_id],
            )
            .await?;
        if n == 0 {
            return Err(conflict("the person has no account of their own there"));
        }
        return Ok(());
    };
    let taken = c.count("SELECT COUNT(*) FROM target_accounts WHERE target = $1 AND principal_id <> $2 AND (LOWER(account) = LOWER($3) OR (external_id IS NOT NULL AND LOWER(external_id) = LOWER($4)))", args![&a.target, &a.principal_id, account, &a.external_id]).await?;
    if taken > 0 {
        return Err(conflict("another person has that account at the target"));
    }
    c.execute("INSERT INTO target_accounts (target, principal_id, account, external_id, created_by, created_at_us) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (target, principal_id) DO UPDATE SET account = excluded.account, external_id = excluded.external_id, created_by = excluded.created_by, created_at_us = excluded.created_at_us", args![&a.target, &a.principal_id, account, &a.external_id, &a.by, a.at_us]).await?;
    Ok(())
}

/// Binds `role` to `target` (or changes what it means there) and writes a grant for every
/// live grant of the role at the target.
pub(crate) async fn bind_role(c: &mut Conn<'_>, b: &NewBinding) -> Result<()> {
    let NewBinding {
        role,
        target,
        grants,
        mode,
        options,
        by,
        at_us,
    } = b;
    let (role, target, at_us) = (role.as_str(), target.as_str(), *at_us);
    c.execute("INSERT INTO target_bindings (role, target, grants, mode, options, created_by, created_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (role, target) DO UPDATE SET grants = excluded.grants, mode = excluded.mode, options = excluded.options, created_by = excluded.created_by, created_at_us = excluded.created_at_us", args![role, target, grants, mode, options, by, at_us]).await?;
    c.execute(
        REQUEST_GRANTS_OF_ROLE,
        args![role, target, at_us, "binding.changed"],
    )
    .await?;
    c.execute(
        ASSIGNMENT_GRANTS_OF_ROLE,
        args![role, target, at_us, "binding.changed"],
    )
    .await?;
    Ok(())
}

/// Removes a binding and revokes what it granted.
pub(crate) async fn unbind_role(
    c: &mut Conn<'_>,
    role: &str,
    target: &str,
    at_us: i64,
) -> Result<()> {
    let n = c
        .execute(
            "DELETE FROM target_bindings WHERE role = $1 AND target = $2",
            args![role, target],
        )
        .await?;
    if n == 0 {
        return Err(conflict("the role is not bound to that target"));
    }
    revoke_where(
        c,
        Scope::RoleAtTarget(role, target),
        "binding.removed",
        at_us,
    )
    .await
}

const REQUEST_GRANTS_OF_ROLE: &str = "INSERT INTO target_ops (target, op, grant_id, principal_id, role, target_grants, mode, starts_at_us, ends_at_us, reason, due_at_us, next_attempt_at_us, created_at_us, account, account_id) SELECT b.target, 'grant', r.id, r.principal_id, r.role, b.grants, b.mode, COALESCE(r.activated_at_us, $3), r.ends_at_us, $4, $3, $3, $3, (SELECT ta.account FROM target_accounts ta WHERE ta.target = b.target AND ta.principal_id = r.principal_id), (SELECT ta.external_id FROM target_accounts ta WHERE ta.target = b.target AND ta.principal_id = r.principal_id) FROM activation_requests r JOIN target_bindings b ON b.role = r.role AND r.scope = '/targets/' || b.target JOIN principals p ON p.id = r.principal_id WHERE r.role = $1 AND b.target = $2 AND r.state = 'active' AND r.ends_at_us > $3 AND p.enabled";
const ASSIGNMENT_GRANTS_OF_ROLE: &str = "INSERT INTO target_ops (target, op, grant_id, principal_id, role, target_grants, mode, starts_at_us, ends_at_us, reason, due_at_us, next_attempt_at_us, created_at_us, account, account_id) SELECT b.target, 'grant', a.id, a.principal_id, a.role, b.grants, b.mode, a.starts_at_us, a.ends_at_us, $4, CASE WHEN a.starts_at_us > $3 THEN a.starts_at_us ELSE $3 END, $3, $3, (SELECT ta.account FROM target_accounts ta WHERE ta.target = b.target AND ta.principal_id = a.principal_id), (SELECT ta.external_id FROM target_accounts ta WHERE ta.target = b.target AND ta.principal_id = a.principal_id) FROM role_assignments a JOIN target_bindings b ON b.role = a.role AND a.scope = '/targets/' || b.target JOIN principals p ON p.id = a.principal_id WHERE a.role = $1 AND b.target = $2 AND a.kind = 'active' AND a.ended_at_us IS NULL AND (a.ends_at_us IS NULL OR a.ends_at_us > $3) AND p.kind <> 'group' AND p.enabled";

/// A request that became active: a grant at every target its role is bound to at its scope.
pub(crate) async fn grant_request(
    c: &mut Conn<'_>,
    request_id: &str,
    at_us: i64,
    reason: &str,
) -> Result<()> {
    c.execute("INSERT INTO target_ops (target, op, grant_id, principal_id, role, target_grants, mode, starts_at_us, ends_at_us, reason, due_at_us, next_attempt_at_us, created_at_us, account, account_id) SELECT b.target, 'grant', r.id, r.principal_id, r.role, b.grants, b.mode, COALESCE(r.activated_at_us, $2), r.ends_at_us, $3, $2, $2, $2, (SELECT ta.account FROM target_accounts ta WHERE ta.target = b.target AND ta.principal_id = r.principal_id), (SELECT ta.external_id FROM target_accounts ta WHERE ta.target = b.target AND ta.principal_id = r.principal_id) FROM activation_requests r JOIN target_bindings b ON b.role = r.role AND r.scope = '/targets/' || b.target JOIN principals p ON p.id = r.principal_id WHERE r.id = $1 AND r.state = 'active' AND p.enabled", args![request_id, at_us, reason]).await?;
    Ok(())
}

/// An active assignment at a bound target: a grant there, due when the assignment starts.
/// Assignments to groups are not materialised in targets (a person activates through one).
pub(crate) async fn grant_assignment(c: &mut Conn<'_>, id: &str, at_us: i64) -> Result<()> {
    c.execute("INSERT INTO target_ops (target, op, grant_id, principal_id, role, target_grants, mode, starts_at_us, ends_at_us, reason, due_at_us, next_attempt_at_us, created_at_us, account, account_id) SELECT b.target, 'grant', a.id, a.principal_id, a.role, b.grants, b.mode, a.starts_at_us, a.ends_at_us, 'assignment.created', CASE WHEN a.starts_at_us > $2 THEN a.starts_at_us ELSE $2 END, $2, $2, (SELECT ta.account FROM target_accounts ta WHERE ta.target = b.target AND ta.principal_id = a.principal_id), (SELECT ta.external_id FROM target_accounts ta WHERE ta.target = b.target AND ta.principal_id = a.principal_id) FROM role_assignments a JOIN target_bindings b ON b.role = a.role AND a.scope = '/targets/' || b.target JOIN principals p ON p.id = a.principal_id WHERE a.id = $1 AND a.kind = 'active' AND a.ended_at_us IS NULL AND p.kind <> 'group' AND p.enabled", args![id, at_us]).await?;
    Ok(())
}

/// A re-enabled principal: a grant for each of its live grants at bound targets.
pub(crate) async fn grant_principal(
    c: &mut Conn<'_>,
    principal_id: &str,
    at_us: i64,
) -> Result<()> {
    c.execute("INSERT INTO target_ops (target, op, grant_id, principal_id, role, target_grants, mode, starts_at_us, ends_at_us, reason, due_at_us, next_attempt_at_us, created_at_us, account, account_id) SELECT b.target, 'grant', r.id, r.principal_id, r.role, b.grants, b.mode, COALESCE(r.activated_at_us, $2), r.ends_at_us, 'principal.enabled', $2, $2, $2, (SELECT ta.account FROM target_accounts ta WHERE ta.target = b.target AND ta.principal_id = r.principal_id), (SELECT ta.external_id FROM target_accounts ta WHERE ta.target = b.target AND ta.principal_id = r.principal_id) FROM activation_requests r JOIN target_bindings b ON b.role = r.role AND r.scope = '/targets/' || b.target WHERE r.principal_id = $1 AND r.state = 'active' AND r.ends_at_us > $2", args![principal_id, at_us]).await?;
    c.execute("INSERT INTO target_ops (target, op, grant_id, principal_id, role, target_grants, mode, starts_at_us, ends_at_us, reason, due_at_us, next_attempt_at_us, created_at_us, account, account_id) SELECT b.target, 'grant', a.id, a.principal_id, a.role, b.grants, b.mode, a.starts_at_us, a.ends_at_us, 'principal.enabled', CASE WHEN a.starts_at_us > $2 THEN a.starts_at_us ELSE $2 END, $2, $2, (SELECT ta.account FROM target_accounts ta WHERE ta.target = b.target AND ta.principal_id = a.principal_id), (SELECT ta.external_id FROM target_accounts ta WHERE ta.target = b.target AND ta.principal_id = a.principal_id) FROM role_assignments a JOIN target_bindings b ON b.role = a.role AND a.scope = '/targets/' || b.target JOIN principals p ON p.id = a.principal_id WHERE a.principal_id = $1 AND a.kind = 'active' AND a.ended_at_us IS NULL AND (a.ends_at_us IS NULL OR a.ends_at_us > $2) AND p.kind <> 'group'", args![principal_id, at_us]).await?;
    Ok(())
}

/// Which grants a revoke is for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// One grant (a request's or an assignment's id), at every target it was granted in.
    Grant(&'a str),
    /// The active requests resting on an eligible assignment.
    RequestsOf(&'a str),
    /// Everything a principal holds in targets.
    Principal(&'a str),
    /// A role's grants at one target.
    RoleAtTarget(&'a str, &'a str),
}

/// Writes a revoke for every (grant, target) in `scope` whose newest operation is a grant,
/// with that grant's rights, and supersedes grants not yet claimed that it follows.
pub(crate) async fn revoke_where(
    c: &mut Conn<'_>,
    scope: Scope<'_>,
    reason: &str,
    at_us: i64,
) -> Result<()> {
    macro_rules! revoke {
        ($filter:literal, $($a:expr),+) => {
            c.execute(
                concat!(
                    "INSERT INTO target_ops (target, op, grant_id, principal_id, role, target_grants, mode, starts_at_us, ends_at_us, reason, due_at_us, next_attempt_at_us, created_at_us, account, account_id) SELECT o.target, 'revoke', o.grant_id, o.principal_id, o.role, o.target_grants, o.mode, o.starts_at_us, o.ends_at_us, $1, $2, $2, $2, o.account, o.account_id FROM target_ops o WHERE ",
                    $filter,
                    " AND o.op = 'grant' AND o.state <> 'superseded' AND NOT EXISTS (SELECT 1 FROM target_ops l WHERE l.grant_id = o.grant_id AND l.target = o.target AND l.id > o.id AND l.state <> 'superseded')"
                ),
                args![reason, at_us, $($a),+],
            )
            .await?
        };
    }
    let written = match scope {
        Scope::Grant(id) => revoke!("o.grant_id = $3", id),
        Scope::RequestsOf(eligibility) => revoke!(
            "o.grant_id IN (SELECT r.id FROM activation_requests r WHERE r.eligibility_id = $3 AND r.state = 'active')",
            eligibility
        ),
        Scope::Principal(id) => revoke!("o.principal_id = $3", id),
        Scope::RoleAtTarget(role, target) => revoke!("o.role = $3 AND o.target = $4", role, target),
    };
    // Certificates resting on these grants are revoked here, whatever the operations say: the
    // KRL served once this commits lists them.
    super::ssh::revoke_certificates_where(c, scope, reason, at_us).await?;
    if written == 0 {
        // Nothing held at any target (the common case of a grant no binding names): no grant
        // can wait to be superseded by a revoke just written, and the expiry and deactivation
        // paths pay one statement, not two.
        return Ok(());
    }
    // A grant nobody has started applying, followed by its revoke: never apply it.
    c.execute("UPDATE target_ops SET state = 'superseded' WHERE op = 'grant' AND state = 'pending' AND (claimed_until_us IS NULL OR claimed_until_us < $1) AND EXISTS (SELECT 1 FROM target_ops o WHERE o.grant_id = target_ops.grant_id AND o.target = target_ops.target AND o.op = 'revoke' AND o.id > target_ops.id AND o.state = 'pending')", args![at_us]).await?;
    Ok(())
}

pub(crate) async fn claim_target_op(
    c: &mut Conn<'_>,
    id: i64,
    worker: &str,
    now_us: i64,
    until_us: i64,
) -> Result<()> {
    let n = c.execute("UPDATE target_ops SET claimed_by = $2, claimed_until_us = $4, attempts = attempts + 1 WHERE id = $1 AND state = 'pending' AND due_at_us <= $3 AND next_attempt_at_us <= $3 AND (claimed_until_us IS NULL OR claimed_until_us < $3) AND NOT EXISTS (SELECT 1 FROM target_ops e WHERE e.target = target_ops.target AND e.grant_id = target_ops.grant_id AND e.id < target_ops.id AND e.state = 'pending')", args![id, worker, now_us, until_us]).await?;
    if n == 0 {
        return Err(conflict(
            "the operation is not due, claimed elsewhere or finished",
        ));
    }
    Ok(())
}

pub(crate) async fn finish_target_op(c: &mut Conn<'_>, a: &TargetOpAttempt) -> Result<()> {
    let (state, next) = match (a.applied, a.retry_at_us) {
        (true, _) => ("applied", a.finished_at_us),
        (false, Some(at)) => ("pending", at),
        (false, None) => ("dead", a.finished_at_us),
    };
    let n = c.execute("UPDATE target_ops SET state = $1, next_attempt_at_us = $2, last_error = $3, applied_at_us = $4, claimed_by = NULL, claimed_until_us = NULL, failure_reported = (failure_reported OR $5) WHERE id = $6 AND claimed_by = $7 AND state = 'pending'", args![state, next, if a.applied { None } else { a.detail.clone() }, a.applied.then_some(a.finished_at_us), a.reported, a.id, &a.worker]).await?;
    if n == 0 {
        return Err(conflict("the claim was lost"));
    }
    c.execute("INSERT INTO target_op_attempts (op_id, attempt, worker, started_at_us, finished_at_us, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)", args![a.id, a.attempt, &a.worker, a.started_at_us, a.finished_at_us, if a.applied { "applied" } else { "failed" }, &a.detail]).await?;
    if a.applied {
        // A dynamic grant's credential replaces any earlier one of the grant (a re-applied
        // grant sets a new password); a revoke deletes it.
        c.execute("DELETE FROM target_credentials WHERE (target, grant_id) IN (SELECT target, grant_id FROM target_ops WHERE id = $1)", args![a.id]).await?;
        if let Some(cred) = &a.credential {
            c.execute("INSERT INTO target_credentials (target, grant_id, login, sealed_password, created_at_us) SELECT target, grant_id, $2, $3, $4 FROM target_ops WHERE id = $1 AND op = 'grant'", args![a.id, &cred.login, cred.sealed_password.as_slice(), a.finished_at_us]).await?;
        }
    }
    Ok(())
}

/// A dead operation gets a fresh budget of attempts, due now.
pub(crate) async fn retry_target_op(c: &mut Conn<'_>, id: i64, at_us: i64) -> Result<()> {
    let n = c.execute("UPDATE target_ops SET state = 'pending', budget_from = attempts, next_attempt_at_us = $2, failure_reported = FALSE WHERE id = $1 AND state = 'dead' AND (op = 'revoke' OR NOT EXISTS (SELECT 1 FROM target_ops l WHERE l.grant_id = target_ops.grant_id AND l.target = target_ops.target AND l.id > target_ops.id))", args![id, at_us]).await?;
    if n == 0 {
        return Err(conflict(
            "only a dead operation can be retried, and a grant only while nothing followed it",
        ));
    }
    Ok(())
}

/// The reconciler found a live grant missing from its target: apply it again.
pub(crate) async fn reapply_grant(
    c: &mut Conn<'_>,
    target: &str,
    grant_id: &str,
    at_us: i64,
) -> Result<()> {
    // Only when nothing for this grant is pending already (the worker will apply that).
    c.execute("INSERT INTO target_ops (target, op, grant_id, principal_id, role, target_grants, mode, starts_at_us, ends_at_us, reason, due_at_us, next_attempt_at_us, created_at_us, account, account_id) SELECT o.target, 'grant', o.grant_id, o.principal_id, o.role, o.target_grants, o.mode, o.starts_at_us, o.ends_at_us, 'reconcile.missing', $3, $3, $3, o.account, o.account_id FROM target_ops o WHERE o.target = $1 AND o.grant_id = $2 AND o.op = 'grant' AND o.state = 'applied' AND NOT EXISTS (SELECT 1 FROM target_ops l WHERE l.grant_id = o.grant_id AND l.target = o.target AND l.id > o.id AND l.state <> 'superseded')", args![target, grant_id, at_us]).await?;
    Ok(())
}

/// Hands a dynamic grant's credential out once: conflicts when there is none or it was.
pub(crate) async fn take_credential(
    c: &mut Conn<'_>,
    target: &str,
    grant_id: &str,
    at_us: i64,
) -> Result<()> {
    let n = c.execute("UPDATE target_credentials SET fetched_at_us = $3 WHERE target = $1 AND grant_id = $2 AND fetched_at_us IS NULL", args![target, grant_id, at_us]).await?;
    if n == 0 {
        return Err(conflict(
            "no credential waits for this grant: it was handed out already, or not made yet",
        ));
    }
    Ok(())
}
