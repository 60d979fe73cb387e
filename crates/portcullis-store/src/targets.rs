//! Reading targets, their bindings and operations, and the desired state of a target (the
//! live grants at it): plain reads on the pool, for the target worker, the reconciler and
//! `portcullis targets`.

use sqlx::Row;

use crate::{Result, Store, on_pool};

pub use crate::changes::{NewBinding, NewCredential, NewTarget, NewTargetAccount, TargetOpAttempt};

/// A target as stored (its secret sealed, never in `config`).
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub kind: String,
    pub config: String,
    pub sealed_secret: Option<Vec<u8>>,
    pub secret_env: Option<String>,
    pub drift_mode: String,
    pub reconcile_interval_s: i64,
    pub created_by: String,
    pub created_at_us: i64,
    pub updated_at_us: i64,
}

/// What a role means at a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub role: String,
    pub target: String,
    /// JSON array of target-side rights.
    pub grants: String,
    /// `grant` or `dynamic`.
    pub mode: String,
    /// ssh-ca: JSON object of certificate options.
    pub options: Option<String>,
    pub created_by: String,
    pub created_at_us: i64,
}

/// One target operation, with its principal's name.
#[derive(Debug, Clone)]
pub struct TargetOp {
    pub id: i64,
    pub target: String,
    /// `grant` or `revoke`.
    pub op: String,
    pub grant_id: String,
    pub principal_id: String,
    pub principal_name: String,
    pub role: String,
    /// JSON array of target-side rights.
    pub target_grants: String,
    /// `grant` or `dynamic`.
    pub mode: String,
    pub starts_at_us: i64,
    pub ends_at_us: Option<i64>,
    pub reason: String,
    /// `pending`, `applied`, `dead` or `superseded`.
    pub state: String,
    pub attempts: i64,
    pub budget_from: i64,
    pub due_at_us: i64,
    pub next_attempt_at_us: i64,
    pub last_error: Option<String>,
    pub failure_reported: bool,
    pub created_at_us: i64,
    pub applied_at_us: Option<i64>,
    /// The principal's own account at the target when the grant was written, if it had one
    /// (else the target's login template applies), and its id there.
    pub account: Option<String>,
    pub account_id: Option<String>,
}

/// One recorded attempt at an operation.
#[derive(Debug, Clone)]
pub struct OpAttempt {
    pub attempt: i64,
    pub worker: String,
    pub started_at_us: i64,
    pub finished_at_us: i64,
    pub outcome: String,
    pub detail: Option<String>,
}

/// A grant that lives now at a target: what the target must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveGrant {
    pub id: String,
    pub principal_name: String,
    pub role: String,
    /// JSON array of target-side rights (the binding's, now).
    pub grants: String,
    /// The binding's mode.
    pub mode: String,
    /// The binding's options (ssh-ca).
    pub options: Option<String>,
    pub starts_at_us: i64,
    pub ends_at_us: Option<i64>,
    /// The principal's own account at the target, if set, and its id there.
    pub account: Option<String>,
    pub account_id: Option<String>,
}

/// A principal's own account at a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetAccount {
    pub target: String,
    pub principal_id: String,
    pub principal_name: String,
    pub account: String,
    pub external_id: Option<String>,
    pub created_by: String,
    pub created_at_us: i64,
}

/// Operation counts of one target, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetStats {
    pub target: String,
    pub applied: i64,
    pub pending: i64,
    pub dead: i64,
    pub failed_attempts: i64,
    /// When the oldest pending revoke was written, if any.
    pub oldest_pending_revoke_us: Option<i64>,
}

const TARGET_COLS: &str = "name, kind, config, sealed_secret, secret_env, drift_mode, reconcile_interval_s, created_by, created_at_us, updated_at_us";
const OP_COLS: &str = "o.id, o.target, o.op, o.grant_id, o.principal_id, p.name AS principal_name, o.role, o.target_grants, o.mode, o.starts_at_us, o.ends_at_us, o.reason, o.state, o.attempts, o.budget_from, o.due_at_us, o.next_attempt_at_us, o.last_error, o.failure_reported, o.created_at_us, o.applied_at_us, o.account, o.account_id";

macro_rules! target_row {
    ($r:expr) => {
        Target {
            name: $r.try_get("name")?,
            kind: $r.try_get("kind")?,
            config: $r.try_get("config")?,
            sealed_secret: $r.try_get("sealed_secret")?,
            secret_env: $r.try_get("secret_env")?,
            drift_mode: $r.try_get("drift_mode")?,
            reconcile_interval_s: $r.try_get("reconcile_interval_s")?,
            created_by: $r.try_get("created_by")?,
            created_at_us: $r.try_get("created_at_us")?,
            updated_at_us: $r.try_get("updated_at_us")?,
        }
    };
}

macro_rules! op_row {
    ($r:expr) => {
        TargetOp {
            id: $r.try_get("id")?,
            target: $r.try_get("target")?,
            op: $r.try_get("op")?,
            grant_id: $r.try_get("grant_id")?,
            principal_id: $r.try_get("principal_id")?,
            principal_name: $r.try_get("principal_name")?,
            role: $r.try_get("role")?,
            target_grants: $r.try_get("target_grants")?,
            mode: $r.try_get("mode")?,
            starts_at_us: $r.try_get("starts_at_us")?,
            ends_at_us: $r.try_get("ends_at_us")?,
            reason: $r.try_get("reason")?,
            state: $r.try_get("state")?,
            attempts: $r.try_get("attempts")?,
            budget_from: $r.try_get("budget_from")?,
            due_at_us: $r.try_get("due_at_us")?,
            next_attempt_at_us: $r.try_get("next_attempt_at_us")?,
            last_error: $r.try_get("last_error")?,
            failure_reported: $r.try_get("failure_reported")?,
            created_at_us: $r.try_get("created_at_us")?,
            applied_at_us: $r.try_get("applied_at_us")?,
            account: $r.try_get("account")?,
            account_id: $r.try_get("account_id")?,
        }
    };
}

impl Store {
    /// Every target, by name.
    pub async fn targets(&self) -> Result<Vec<Target>> {
        let sql = format!("SELECT {TARGET_COLS} FROM targets ORDER BY name");
        on_pool!(&self.backend, pool => {
            let mut out = Vec::new();
            for r in sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await? {
                out.push(target_row!(r));
            }
            Ok(out)
        })
    }

    pub async fn target(&self, name: &str) -> Result<Option<Target>> {
        let sql = format!("SELECT {TARGET_COLS} FROM targets WHERE name = $1");
        on_pool!(&self.backend, pool => {
            match sqlx::query(sqlx::AssertSqlSafe(sql)).bind(name).fetch_optional(pool).await? {
                Some(r) => Ok(Some(target_row!(r))),
                None => Ok(None),
            }
        })
    }

    /// The roles bound to `target`, by role.
    pub async fn target_bindings(&self, target: &str) -> Result<Vec<Binding>> {
        on_pool!(&self.backend, pool => {
            let mut out = Vec::new();
            for r in sqlx::query("SELECT role, target, grants, mode, options, created_by, created_at_us FROM target_bindings WHERE target = $1 ORDER BY role")
                .bind(target).fetch_all(pool).await? {
                out.push(Binding {
                    role: r.try_get("role")?,
                    target: r.try_get("target")?,
                    grants: r.try_get("grants")?,
                    mode: r.try_get("mode")?,
                    options: r.try_get("options")?,
                    created_by: r.try_get("created_by")?,
                    created_at_us: r.try_get("created_at_us")?,
                });
            }
            Ok(out)
        })
    }

    /// Ids of operations that may be claimed now (due, not claimed by a live worker, nothing
    /// earlier of the same grant pending), oldest first.
    pub async fn due_target_ops(&self, now_us: i64, limit: i64) -> Result<Vec<i64>> {
        on_pool!(&self.backend, pool => {
            Ok(sqlx::query_scalar("SELECT o.id FROM target_ops o WHERE o.state = 'pending' AND o.due_at_us <= $1 AND o.next_attempt_at_us <= $1 AND (o.claimed_until_us IS NULL OR o.claimed_until_us < $1) AND NOT EXISTS (SELECT 1 FROM target_ops e WHERE e.target = o.target AND e.grant_id = o.grant_id AND e.id < o.id AND e.state = 'pending') ORDER BY o.id LIMIT $2")
                .bind(now_us).bind(limit).fetch_all(pool).await?)
        })
    }

    /// When the next pending operation falls due (a scheduled assignment's start, a retry).
    pub async fn next_target_op_due(&self) -> Result<Option<i64>> {
        on_pool!(&self.backend, pool => {
            Ok(sqlx::query_scalar("SELECT MIN(CASE WHEN due_at_us > next_attempt_at_us THEN due_at_us ELSE next_attempt_at_us END) FROM target_ops WHERE state = 'pending'")
                .fetch_one(pool).await?)
        })
    }

    pub async fn target_op(&self, id: i64) -> Result<Option<TargetOp>> {
        let sql = format!(
            "SELECT {OP_COLS} FROM target_ops o JOIN principals p ON p.id = o.principal_id WHERE o.id = $1"
        );
        on_pool!(&self.backend, pool => {
            match sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await? {
                Some(r) => Ok(Some(op_row!(r))),
                None => Ok(None),
            }
        })
    }

    /// Operations newest first, optionally of one target and one state.
    pub async fn target_ops(
        &self,
        target: Option<&str>,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<TargetOp>> {
        let sql = format!(
            "SELECT {OP_COLS} FROM target_ops o JOIN principals p ON p.id = o.principal_id WHERE (CAST($1 AS TEXT) IS NULL OR o.target = $1) AND (CAST($2 AS TEXT) IS NULL OR o.state = $2) ORDER BY o.id DESC LIMIT $3"
        );
        on_pool!(&self.backend, pool => {
            let mut out = Vec::new();
            for r in sqlx::query(sqlx::AssertSqlSafe(sql)).bind(target).bind(state).bind(limit).fetch_all(pool).await? {
                out.push(op_row!(r));
            }
            Ok(out)
        })
    }

    /// The rights every grant operation of one grant at one target carried before `before`
    /// (JSON arrays): what its revoke must take away, whatever the binding says now.
    pub async fn granted_rights(
        &self,
        target: &str,
        grant_id: &str,
        before: i64,
    ) -> Result<Vec<String>> {
        on_pool!(&self.backend, pool => {
            Ok(sqlx::query_scalar("SELECT target_grants FROM target_ops WHERE target = $1 AND grant_id = $2 AND op = 'grant' AND id < $3 ORDER BY id")
                .bind(target).bind(grant_id).bind(before).fetch_all(pool).await?)
        })
    }

    /// The recorded attempts of an operation, in order.
    pub async fn target_op_attempts(&self, id: i64) -> Result<Vec<OpAttempt>> {
        on_pool!(&self.backend, pool => {
            let mut out = Vec::new();
            for r in sqlx::query("SELECT attempt, worker, started_at_us, finished_at_us, outcome, detail FROM target_op_attempts WHERE op_id = $1 ORDER BY attempt")
                .bind(id).fetch_all(pool).await? {
                out.push(OpAttempt {
                    attempt: r.try_get("attempt")?,
                    worker: r.try_get("worker")?,
                    started_at_us: r.try_get("started_at_us")?,
                    finished_at_us: r.try_get("finished_at_us")?,
                    outcome: r.try_get("outcome")?,
                    detail: r.try_get("detail")?,
                });
            }
            Ok(out)
        })
    }

    /// The grants that live at `target` at `now_us` (active requests and active assignments of
    /// enabled principals at `/targets/NAME` whose role is bound to it): the desired state.
    pub async fn live_target_grants(&self, target: &str, now_us: i64) -> Result<Vec<LiveGrant>> {
        on_pool!(&self.backend, pool => {
            let mut out = Vec::new();
            for r in sqlx::query("SELECT r.id, p.name, r.role, b.grants, b.mode, b.options, COALESCE(r.activated_at_us, r.created_at_us) AS starts_at_us, r.ends_at_us, ta.account, ta.external_id FROM activation_requests r JOIN target_bindings b ON b.role = r.role AND r.scope = '/targets/' || b.target JOIN principals p ON p.id = r.principal_id LEFT JOIN target_accounts ta ON ta.target = b.target AND ta.principal_id = r.principal_id WHERE b.target = $1 AND r.state = 'active' AND r.ends_at_us > $2 AND p.enabled UNION ALL SELECT a.id, p.name, a.role, b.grants, b.mode, b.options, a.starts_at_us, a.ends_at_us, ta.account, ta.external_id FROM role_assignments a JOIN target_bindings b ON b.role = a.role AND a.scope = '/targets/' || b.target JOIN principals p ON p.id = a.principal_id LEFT JOIN target_accounts ta ON ta.target = b.target AND ta.principal_id = a.principal_id WHERE b.target = $1 AND a.kind = 'active' AND a.ended_at_us IS NULL AND a.starts_at_us <= $2 AND (a.ends_at_us IS NULL OR a.ends_at_us > $2) AND p.kind <> 'group' AND p.enabled ORDER BY 1")
                .bind(target).bind(now_us).fetch_all(pool).await? {
                out.push(LiveGrant {
                    id: r.try_get(0)?,
                    principal_name: r.try_get(1)?,
                    role: r.try_get(2)?,
                    grants: r.try_get(3)?,
                    mode: r.try_get(4)?,
                    options: r.try_get(5)?,
                    starts_at_us: r.try_get(6)?,
                    ends_at_us: r.try_get(7)?,
                    account: r.try_get(8)?,
                    account_id: r.try_get(9)?,
                });
            }
            Ok(out)
        })
    }

    /// The principals' own accounts at `target`, by principal name.
    pub async fn target_accounts(&self, target: &str) -> Result<Vec<TargetAccount>> {
        on_pool!(&self.backend, pool => {
            let mut out = Vec::new();
            for r in sqlx::query("SELECT ta.target, ta.principal_id, p.name, ta.account, ta.external_id, ta.created_by, ta.created_at_us FROM target_accounts ta JOIN principals p ON p.id = ta.principal_id WHERE ta.target = $1 ORDER BY p.name")
                .bind(target).fetch_all(pool).await? {
                out.push(TargetAccount {
                    target: r.try_get(0)?,
                    principal_id: r.try_get(1)?,
                    principal_name: r.try_get(2)?,
                    account: r.try_get(3)?,
                    external_id: r.try_get(4)?,
                    created_by: r.try_get(5)?,
                    created_at_us: r.try_get(6)?,
                });
            }
            Ok(out)
        })
    }

    /// A dynamic grant's credential: the login and its sealed password, and whether it was
    /// handed out already.
    pub async fn target_credential(
        &self,
        target: &str,
        grant_id: &str,
    ) -> Result<Option<(String, Vec<u8>, bool)>> {
        on_pool!(&self.backend, pool => {
            match sqlx::query("SELECT login, sealed_password, fetched_at_us FROM target_credentials WHERE target = $1 AND grant_id = $2")
                .bind(target).bind(grant_id).fetch_optional(pool).await? {
                Some(r) => {
                    let fetched: Option<i64> = r.try_get("fetched_at_us")?;
                    Ok(Some((r.try_get("login")?, r.try_get("sealed_password")?, fetched.is_some())))
                }
                None => Ok(None),
            }
        })
    }

    /// Operation counts per target.
    pub async fn target_stats(&self) -> Result<Vec<TargetStats>> {
        on_pool!(&self.backend, pool => {
            let mut out = Vec::new();
            for r in sqlx::query("SELECT t.name, (SELECT COUNT(*) FROM target_ops o WHERE o.target = t.name AND o.state = 'applied') AS applied, (SELECT COUNT(*) FROM target_ops o WHERE o.target = t.name AND o.state = 'pending') AS pending, (SELECT COUNT(*) FROM target_ops o WHERE o.target = t.name AND o.state = 'dead') AS dead, (SELECT COUNT(*) FROM target_op_attempts a JOIN target_ops o ON o.id = a.op_id WHERE o.target = t.name AND a.outcome = 'failed') AS failed, (SELECT MIN(o.created_at_us) FROM target_ops o WHERE o.target = t.name AND o.state = 'pending' AND o.op = 'revoke') AS oldest FROM targets t ORDER BY t.name")
                .fetch_all(pool).await? {
                out.push(TargetStats {
                    target: r.try_get(0)?,
                    applied: r.try_get(1)?,
                    pending: r.try_get(2)?,
                    dead: r.try_get(3)?,
                    failed_attempts: r.try_get(4)?,
                    oldest_pending_revoke_us: r.try_get(5)?,
                });
            }
            Ok(out)
        })
    }
}
