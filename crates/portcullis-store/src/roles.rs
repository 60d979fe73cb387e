//! Reads of just-in-time roles: custom roles, role settings, assignments, activation requests
//! and their decisions, grants in effect, expiry deadlines and the outbox. (Writes are
//! [`crate::Change`]s through the writer.)
//!
//! Grants in effect for a principal are (a) active assignments that have started and not ended,
//! made to the principal or to a role-assignable group it belongs to, and (b) active activation
//! requests whose end lies in the future. Expiry is the worker's job; reads never trust that
//! it has already run, so a grant past its end is never returned even if the worker is late.

use sqlx::Row;

use crate::{Result, Store, on_pool};

/// People (enabled users, not break-glass) with a live Global Administrator assignment at `/`
/// at `$1`, active or eligible, of their own or through a role-assignable group they belong to:
/// those who can still administer the tenant day to day (privilege model rule 3). A Global
/// Administrator at `/targets/x` does not count (rule 10).
pub(crate) const GA_REACHERS_SQL: &str = "SELECT COUNT(*) FROM principals u WHERE u.kind = 'user' AND u.enabled AND NOT u.emergency AND EXISTS (\
    SELECT 1 FROM role_assignments a JOIN principals h ON h.id = a.principal_id \
    WHERE a.role = 'global-administrator' AND a.scope = '/' AND a.ended_at_us IS NULL AND a.starts_at_us <= $1 \
    AND (a.ends_at_us IS NULL OR a.ends_at_us > $1) \
    AND (a.principal_id = u.id OR (h.kind = 'group' AND h.role_assignable AND EXISTS \
        (SELECT 1 FROM group_reach m WHERE m.group_id = h.id AND m.member_id = u.id AND (m.until_us IS NULL OR m.until_us > $1)))))";

/// A custom role as stored (permissions as a JSON array of strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomRole {
    pub slug: String,
    pub display_name: String,
    pub description: String,
    pub permissions: Vec<String>,
    pub created_at_us: i64,
}

/// An assignment as stored, with its principal's name and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub id: String,
    pub principal_id: String,
    pub principal_name: String,
    pub principal_kind: portcullis_core::principal::PrincipalKind,
    pub role: String,
    pub scope: String,
    pub kind: portcullis_core::roles::AssignmentKind,
    pub starts_at_us: i64,
    pub ends_at_us: Option<i64>,
    pub created_by: String,
    pub created_at_us: i64,
    pub ended_at_us: Option<i64>,
    pub end_reason: Option<String>,
}

/// An activation request as stored, with the requester's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationRequest {
    pub id: String,
    pub principal_id: String,
    pub principal_name: String,
    pub role: String,
    pub scope: String,
    pub eligibility_id: String,
    pub state: portcullis_core::activation::RequestState,
    pub duration_seconds: i64,
    pub justification: Option<String>,
    pub ticket: Option<String>,
    pub approvals_required: i64,
    pub created_at_us: i64,
    pub timeout_at_us: Option<i64>,
    pub activated_at_us: Option<i64>,
    pub ends_at_us: Option<i64>,
    pub closed_at_us: Option<i64>,
    pub closed_by: Option<String>,
    pub close_reason: Option<String>,
    /// When a scheduled activation starts (`None`: when it was approved or asked).
    pub starts_at_us: Option<i64>,
    /// For an extension request: the activation it extends.
    pub extends_id: Option<String>,
}

/// One approver's decision on a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub approver_id: String,
    pub approver_name: String,
    pub decision: String,
    pub reason: Option<String>,
    pub at_us: i64,
}

/// A grant in effect: a role at a scope, until `ends_at_us` (None: permanent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    pub role: String,
    pub scope: String,
    pub ends_at_us: Option<i64>,
    /// `assignment:ID` or `request:ID`.
    pub source: String,
    /// The permissions of the custom role the grant names, read in the same query (`None`: a
    /// built-in role, or a name that is no role any more), so a holder of a custom role costs
    /// no extra read.
    pub custom_permissions: Option<Vec<String>>,
}

/// A custom role's stored permissions (a JSON array of strings); `None` when there is none.
fn custom_permissions(raw: Option<String>) -> Option<Vec<String>> {
    raw.map(|p| serde_json::from_str(&p).unwrap_or_default())
}

/// Something the expiry worker must do at `at_us`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deadline {
    /// An active request's grant ends.
    RequestExpires { id: String, at_us: i64 },
    /// A pending request was not decided in time.
    RequestTimesOut { id: String, at_us: i64 },
    /// A scheduled request's start.
    RequestStarts { id: String, at_us: i64 },
    /// An assignment (eligible or active) reaches its end.
    AssignmentEnds { id: String, at_us: i64 },
}

impl Deadline {
    pub fn at_us(&self) -> i64 {
        match self {
            Deadline::RequestExpires { at_us, .. }
            | Deadline::RequestTimesOut { at_us, .. }
            | Deadline::RequestStarts { at_us, .. }
            | Deadline::AssignmentEnds { at_us, .. } => *at_us,
        }
    }
}

/// A message waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub id: String,
    pub kind: String,
    pub topic: String,
    pub recipient: String,
    pub payload: String,
    pub created_at_us: i64,
    pub state: String,
}

const ASSIGNMENT_COLS: &str = "a.id, a.principal_id, p.name AS principal_name, p.kind AS principal_kind, a.role, a.scope, a.kind, a.starts_at_us, a.ends_at_us, a.created_by, a.created_at_us, a.ended_at_us, a.end_reason";
/// The assignments applying to principal `$1` at `$2`: its own and those of the
/// role-assignable groups it is a member of, live at that moment.
const APPLYING_TO: &str = "a.ended_at_us IS NULL AND a.starts_at_us <= $2 AND (a.ends_at_us IS NULL OR a.ends_at_us > $2) \
     AND (a.principal_id = $1 OR (p.kind = 'group' AND p.role_assignable AND EXISTS \
         (SELECT 1 FROM group_memberships m WHERE m.group_id = a.principal_id AND m.member_id = $1 AND (m.until_us IS NULL OR m.until_us > $2)))) \
     ORDER BY a.created_at_us, a.id";
const REQUEST_COLS: &str = "r.id, r.principal_id, p.name AS principal_name, r.role, r.scope, r.eligibility_id, r.state, r.duration_seconds, r.justification, r.ticket, r.approvals_required, r.created_at_us, r.timeout_at_us, r.activated_at_us, r.ends_at_us, r.closed_at_us, r.closed_by, r.close_reason, r.starts_at_us, r.extends_id";

macro_rules! assignment_row {
    ($r:expr) => {
        Assignment {
            id: $r.try_get("id")?,
            principal_id: $r.try_get("principal_id")?,
            principal_name: $r.try_get("principal_name")?,
            principal_kind: crate::decoded(
                $r.try_get::<String, _>("principal_kind")?,
                portcullis_core::principal::PrincipalKind::parse,
                "principal kind",
            )?,
            role: $r.try_get("role")?,
            scope: $r.try_get("scope")?,
            kind: crate::decoded(
                $r.try_get::<String, _>("kind")?,
                portcullis_core::roles::AssignmentKind::parse,
                "assignment kind",
            )?,
            starts_at_us: $r.try_get("starts_at_us")?,
            ends_at_us: $r.try_get("ends_at_us")?,
            created_by: $r.try_get("created_by")?,
            created_at_us: $r.try_get("created_at_us")?,
            ended_at_us: $r.try_get("ended_at_us")?,
            end_reason: $r.try_get("end_reason")?,
        }
    };
}

macro_rules! request_row {
    ($r:expr) => {
        ActivationRequest {
            id: $r.try_get("id")?,
            principal_id: $r.try_get("principal_id")?,
            principal_name: $r.try_get("principal_name")?,
            role: $r.try_get("role")?,
            scope: $r.try_get("scope")?,
            eligibility_id: $r.try_get("eligibility_id")?,
            state: crate::decoded(
                $r.try_get::<String, _>("state")?,
                portcullis_core::activation::RequestState::parse,
                "request state",
            )?,
            duration_seconds: $r.try_get("duration_seconds")?,
            justification: $r.try_get("justification")?,
            ticket: $r.try_get("ticket")?,
            approvals_required: $r.try_get::<i64, _>("approvals_required")?,
            created_at_us: $r.try_get("created_at_us")?,
            timeout_at_us: $r.try_get("timeout_at_us")?,
            activated_at_us: $r.try_get("activated_at_us")?,
            ends_at_us: $r.try_get("ends_at_us")?,
            closed_at_us: $r.try_get("closed_at_us")?,
            closed_by: $r.try_get("closed_by")?,
            close_reason: $r.try_get("close_reason")?,
            starts_at_us: $r.try_get("starts_at_us")?,
            extends_id: $r.try_get("extends_id")?,
        }
    };
}

fn sql(s: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(s)
}

/// Which assignments to list.
#[derive(Debug, Clone, Default)]
pub struct AssignmentFilter {
    pub principal_id: Option<String>,
    pub role: Option<String>,
    /// Include ended assignments too.
    pub include_ended: bool,
}

/// Which requests to list.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    pub principal_id: Option<String>,
    pub state: Option<String>,
    pub limit: Option<i64>,
}

impl Store {
    pub async fn custom_roles(&self) -> Result<Vec<CustomRole>> {
        on_pool!(&self.backend, pool => {
            let rows = sqlx::query("SELECT slug, display_name, description, permissions, created_at_us FROM custom_roles ORDER BY slug")
                .fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let perms: String = r.try_get("permissions")?;
                out.push(CustomRole {
                    slug: r.try_get("slug")?,
                    display_name: r.try_get("display_name")?,
                    description: r.try_get("description")?,
                    permissions: serde_json::from_str(&perms).unwrap_or_default(),
                    created_at_us: r.try_get("created_at_us")?,
                });
            }
            Ok(out)
        })
    }

    /// A custom role by name (if one has it) and the stored settings of the role `slug`
    /// (built-in or custom), in one read.
    pub async fn role_with_settings(
        &self,
        slug: &str,
    ) -> Result<(Option<CustomRole>, Option<String>)> {
        on_pool!(&self.backend, pool => {
            let r = sqlx::query("SELECT c.slug, c.display_name, c.description, c.permissions, c.created_at_us, s.settings \
                 FROM (SELECT CAST($1 AS TEXT) AS slug) k \
                 LEFT JOIN custom_roles c ON c.slug = k.slug LEFT JOIN role_settings s ON s.role = k.slug")
                .bind(slug).fetch_one(pool).await?;
            let custom = match r.try_get::<Option<String>, _>("slug")? {
                Some(slug) => {
                    let perms: String = r.try_get("permissions")?;
                    Some(CustomRole {
                        slug,
                        display_name: r.try_get("display_name")?,
                        description: r.try_get("description")?,
                        permissions: serde_json::from_str(&perms).unwrap_or_default(),
                        created_at_us: r.try_get("created_at_us")?,
                    })
                }
                None => None,
            };
            Ok((custom, r.try_get("settings")?))
        })
    }

    pub async fn custom_role(&self, slug: &str) -> Result<Option<CustomRole>> {
        Ok(self
            .custom_roles()
            .await?
            .into_iter()
            .find(|r| r.slug == slug))
    }

    /// A role's stored settings (JSON), if they were ever changed from the defaults.
    pub async fn role_settings(&self, role: &str) -> Result<Option<String>> {
        on_pool!(&self.backend, pool => {
            match sqlx::query("SELECT settings FROM role_settings WHERE role = $1").bind(role).fetch_optional(pool).await? {
                Some(r) => Ok(Some(r.try_get("settings")?)),
                None => Ok(None),
            }
        })
    }

    pub async fn assignments(&self, f: &AssignmentFilter) -> Result<Vec<Assignment>> {
        let q = sql(format!(
            "SELECT {ASSIGNMENT_COLS} FROM role_assignments a JOIN principals p ON p.id = a.principal_id \
             WHERE ($1 IS NULL OR a.principal_id = $1) AND ($2 IS NULL OR a.role = $2) AND ($3 OR a.ended_at_us IS NULL) \
             ORDER BY a.created_at_us, a.id"
        ));
        on_pool!(&self.backend, pool => {
            let rows = sqlx::query(q).bind(f.principal_id.as_deref()).bind(f.role.as_deref()).bind(f.include_ended)
                .fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows { out.push(assignment_row!(r)); }
            Ok(out)
        })
    }

    pub async fn assignment(&self, id: &str) -> Result<Option<Assignment>> {
        let q = sql(format!(
            "SELECT {ASSIGNMENT_COLS} FROM role_assignments a JOIN principals p ON p.id = a.principal_id WHERE a.id = $1"
        ));
        on_pool!(&self.backend, pool => {
            match sqlx::query(q).bind(id).fetch_optional(pool).await? {
                Some(r) => Ok(Some(assignment_row!(r))),
                None => Ok(None),
            }
        })
    }

    /// How many people (enabled, not break-glass) can reach Global Administrator at `/` at
    /// `now_us` (see [`GA_REACHERS_SQL`]).
    pub async fn global_administrator_count(&self, now_us: i64) -> Result<i64> {
        on_pool!(&self.backend, pool => {
            Ok(sqlx::query_scalar::<_, i64>(GA_REACHERS_SQL).bind(now_us).fetch_one(pool).await?)
        })
    }

    /// Whether `actor` (an audit actor name such as `user:ada`) added a live client secret or
    /// key of `principal_id`: then they can act as that service account.
    pub async fn manages_credentials_of(&self, principal_id: &str, actor: &str) -> Result<bool> {
        on_pool!(&self.backend, pool => {
            Ok(sqlx::query_scalar::<_, i64>(
                "SELECT (SELECT COUNT(*) FROM client_secrets WHERE principal_id = $1 AND created_by = $2 AND revoked_at_us IS NULL) \
                 + (SELECT COUNT(*) FROM client_keys WHERE principal_id = $1 AND created_by = $2 AND revoked_at_us IS NULL)",
            )
            .bind(principal_id).bind(actor).fetch_one(pool).await? > 0)
        })
    }

    /// Whether `actor` created a live assignment of `principal_id` (its own, not through groups).
    pub async fn assigned_by(&self, principal_id: &str, actor: &str) -> Result<bool> {
        on_pool!(&self.backend, pool => {
            Ok(sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM role_assignments WHERE principal_id = $1 AND created_by = $2 AND ended_at_us IS NULL",
            )
            .bind(principal_id).bind(actor).fetch_one(pool).await? > 0)
        })
    }

    /// When `member_id`'s membership of `group_id` ends, if it is only just in time: the latest
    /// end of their active memberships; `None` for a permanent member or a non-member.
    pub async fn membership_end(
        &self,
        group_id: &str,
        member_id: &str,
        now_us: i64,
    ) -> Result<Option<i64>> {
        on_pool!(&self.backend, pool => {
            let ends: Vec<Option<i64>> = sqlx::query_scalar(
                "SELECT until_us FROM group_memberships WHERE group_id = $1 AND member_id = $2 AND (until_us IS NULL OR until_us > $3)")
                .bind(group_id).bind(member_id).bind(now_us).fetch_all(pool).await?;
            Ok(if ends.iter().any(Option::is_none) { None } else { ends.into_iter().flatten().max() })
        })
    }

    /// Live assignments that apply to a principal at `now_us`: its own, and those of the
    /// role-assignable groups it belongs to (ordinary groups confer nothing).
    pub async fn assignments_applying_to(
        &self,
        principal_id: &str,
        now_us: i64,
    ) -> Result<Vec<Assignment>> {
        let q = sql(format!(
            "SELECT {ASSIGNMENT_COLS} FROM role_assignments a JOIN principals p ON p.id = a.principal_id WHERE {APPLYING_TO}"
        ));
        on_pool!(&self.backend, pool => {
            let rows = sqlx::query(q).bind(principal_id).bind(now_us).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows { out.push(assignment_row!(r)); }
            Ok(out)
        })
    }

    /// Grants in effect for a principal at `now_us` (see the module header).
    pub async fn grants_of(&self, principal_id: &str, now_us: i64) -> Result<Vec<GrantRow>> {
        Ok(self
            .grants_and_assignments_of(principal_id, now_us)
            .await?
            .0)
    }

    /// The grants in effect for a principal at `now_us` and the assignments that apply to them
    /// (eligible ones too, which an activation looks for): two reads.
    pub async fn grants_and_assignments_of(
        &self,
        principal_id: &str,
        now_us: i64,
    ) -> Result<(Vec<GrantRow>, Vec<Assignment>)> {
        let q = sql(format!(
            "SELECT {ASSIGNMENT_COLS}, c.permissions AS custom_permissions FROM role_assignments a JOIN principals p ON p.id = a.principal_id \
             LEFT JOIN custom_roles c ON c.slug = a.role \
             WHERE {APPLYING_TO}"
        ));
        let mut assignments = Vec::new();
        let mut grants = Vec::new();
        on_pool!(&self.backend, pool => {
            for r in sqlx::query(q).bind(principal_id).bind(now_us).fetch_all(pool).await? {
                let a: Assignment = assignment_row!(r);
                if a.kind == portcullis_core::roles::AssignmentKind::Active {
                    grants.push(GrantRow {
                        role: a.role.clone(),
                        scope: a.scope.clone(),
                        ends_at_us: a.ends_at_us,
                        source: format!("assignment:{}", a.id),
                        custom_permissions: custom_permissions(r.try_get("custom_permissions")?),
                    });
                }
                assignments.push(a);
            }
        });
        grants.extend(self.active_requests_of(principal_id, now_us).await?);
        Ok((grants, assignments))
    }

    /// The grants of a principal's active activation requests at `now_us` (the other half of
    /// [`Store::grants_of`], for callers that already hold the applying assignments).
    pub async fn active_requests_of(
        &self,
        principal_id: &str,
        now_us: i64,
    ) -> Result<Vec<GrantRow>> {
        let mut out = Vec::new();
        on_pool!(&self.backend, pool => {
            let rows = sqlx::query("SELECT r.id, r.role, r.scope, r.ends_at_us, c.permissions AS custom_permissions FROM activation_requests r LEFT JOIN custom_roles c ON c.slug = r.role WHERE r.principal_id = $1 AND r.state = 'active' AND r.ends_at_us > $2")
                .bind(principal_id).bind(now_us).fetch_all(pool).await?;
            for r in rows {
                let id: String = r.try_get("id")?;
                out.push(GrantRow {
                    role: r.try_get("role")?,
                    scope: r.try_get("scope")?,
                    ends_at_us: r.try_get("ends_at_us")?,
                    source: format!("request:{id}"),
                    custom_permissions: custom_permissions(r.try_get("custom_permissions")?),
                });
            }
            Ok(out)
        })
    }

    pub async fn request(&self, id: &str) -> Result<Option<ActivationRequest>> {
        let q = sql(format!(
            "SELECT {REQUEST_COLS} FROM activation_requests r JOIN principals p ON p.id = r.principal_id WHERE r.id = $1"
        ));
        on_pool!(&self.backend, pool => {
            match sqlx::query(q).bind(id).fetch_optional(pool).await? {
                Some(r) => Ok(Some(request_row!(r))),
                None => Ok(None),
            }
        })
    }

    /// The extension of activation `id` waiting for approval, if any.
    pub async fn pending_extension_of(&self, id: &str) -> Result<Option<ActivationRequest>> {
        let q = sql(format!(
            "SELECT {REQUEST_COLS} FROM activation_requests r JOIN principals p ON p.id = r.principal_id \
             WHERE r.extends_id = $1 AND r.state = 'pending_approval'"
        ));
        on_pool!(&self.backend, pool => {
            match sqlx::query(q).bind(id).fetch_optional(pool).await? {
                Some(r) => Ok(Some(request_row!(r))),
                None => Ok(None),
            }
        })
    }

    /// Requests, newest first.
    pub async fn requests(&self, f: &RequestFilter) -> Result<Vec<ActivationRequest>> {
        let q = sql(format!(
            "SELECT {REQUEST_COLS} FROM activation_requests r JOIN principals p ON p.id = r.principal_id \
             WHERE ($1 IS NULL OR r.principal_id = $1) AND ($2 IS NULL OR r.state = $2) \
             ORDER BY r.created_at_us DESC, r.id LIMIT $3"
        ));
        on_pool!(&self.backend, pool => {
            let rows = sqlx::query(q).bind(f.principal_id.as_deref()).bind(f.state.as_deref()).bind(f.limit.unwrap_or(500))
                .fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows { out.push(request_row!(r)); }
            Ok(out)
        })
    }

    /// The open requests (pending approval, scheduled or active) made through eligible
    /// assignment `assignment_id`: what ending that assignment closes.
    pub async fn open_requests_of_eligibility(
        &self,
        assignment_id: &str,
    ) -> Result<Vec<ActivationRequest>> {
        let q = sql(format!(
            "SELECT {REQUEST_COLS} FROM activation_requests r JOIN principals p ON p.id = r.principal_id \
             WHERE r.eligibility_id = $1 AND r.state IN ('pending_approval', 'scheduled', 'active') ORDER BY r.created_at_us, r.id"
        ));
        on_pool!(&self.backend, pool => {
            let rows = sqlx::query(q).bind(assignment_id).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows { out.push(request_row!(r)); }
            Ok(out)
        })
    }

    /// The decisions on a request, oldest first.
    pub async fn decisions(&self, request_id: &str) -> Result<Vec<Decision>> {
        on_pool!(&self.backend, pool => {
            let rows = sqlx::query("SELECT d.approver_id, p.name, d.decision, d.reason, d.at_us FROM request_decisions d JOIN principals p ON p.id = d.approver_id WHERE d.request_id = $1 ORDER BY d.at_us")
                .bind(request_id).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(Decision {
                    approver_id: r.try_get("approver_id")?,
                    approver_name: r.try_get("name")?,
                    decision: r.try_get("decision")?,
                    reason: r.try_get("reason")?,
                    at_us: r.try_get("at_us")?,
                });
            }
            Ok(out)
        })
    }

    /// The earliest deadline the expiry worker must act on, if any.
    pub async fn next_deadline(&self) -> Result<Option<i64>> {
        on_pool!(&self.backend, pool => {
            let r = sqlx::query(
                "SELECT MIN(t) AS t FROM ( \
                   SELECT MIN(ends_at_us) AS t FROM activation_requests WHERE state = 'active' \
                   UNION ALL SELECT MIN(timeout_at_us) FROM activation_requests WHERE state = 'pending_approval' \
                   UNION ALL SELECT MIN(starts_at_us) FROM activation_requests WHERE state = 'scheduled' \
                   UNION ALL SELECT MIN(ends_at_us) FROM role_assignments WHERE ended_at_us IS NULL AND ends_at_us IS NOT NULL \
                 ) d",
            )
            .fetch_one(pool).await?;
            Ok(r.try_get::<Option<i64>, _>("t")?)
        })
    }

    /// Deadlines reached at `now_us`, earliest first, at most `limit` of each kind.
    pub async fn due(&self, now_us: i64, limit: i64) -> Result<Vec<Deadline>> {
        let mut out = Vec::new();
        on_pool!(&self.backend, pool => {
            for r in sqlx::query("SELECT id, ends_at_us FROM activation_requests WHERE state = 'active' AND ends_at_us <= $1 ORDER BY ends_at_us LIMIT $2")
                .bind(now_us).bind(limit).fetch_all(pool).await? {
                out.push(Deadline::RequestExpires { id: r.try_get("id")?, at_us: r.try_get("ends_at_us")? });
            }
            for r in sqlx::query("SELECT id, timeout_at_us FROM activation_requests WHERE state = 'pending_approval' AND timeout_at_us <= $1 ORDER BY timeout_at_us LIMIT $2")
                .bind(now_us).bind(limit).fetch_all(pool).await? {
                out.push(Deadline::RequestTimesOut { id: r.try_get("id")?, at_us: r.try_get("timeout_at_us")? });
            }
            for r in sqlx::query("SELECT id, starts_at_us FROM activation_requests WHERE state = 'scheduled' AND starts_at_us <= $1 ORDER BY starts_at_us LIMIT $2")
                .bind(now_us).bind(limit).fetch_all(pool).await? {
                out.push(Deadline::RequestStarts { id: r.try_get("id")?, at_us: r.try_get("starts_at_us")? });
            }
            for r in sqlx::query("SELECT id, ends_at_us FROM role_assignments WHERE ended_at_us IS NULL AND ends_at_us IS NOT NULL AND ends_at_us <= $1 ORDER BY ends_at_us LIMIT $2")
                .bind(now_us).bind(limit).fetch_all(pool).await? {
                out.push(Deadline::AssignmentEnds { id: r.try_get("id")?, at_us: r.try_get("ends_at_us")? });
            }
            Ok::<(), crate::StoreError>(())
        })?;
        out.sort_by_key(Deadline::at_us);
        Ok(out)
    }

    /// Outbox messages, oldest first.
    pub async fn outbox(&self, limit: i64) -> Result<Vec<OutboxMessage>> {
        on_pool!(&self.backend, pool => {
            let rows = sqlx::query("SELECT id, kind, topic, recipient, payload, created_at_us, state FROM outbox ORDER BY created_at_us, id LIMIT $1")
                .bind(limit).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(OutboxMessage {
                    id: r.try_get("id")?,
                    kind: r.try_get("kind")?,
                    topic: r.try_get("topic")?,
                    recipient: r.try_get("recipient")?,
                    payload: r.try_get("payload")?,
                    created_at_us: r.try_get("created_at_us")?,
                    state: r.try_get("state")?,
                });
            }
            Ok(out)
        })
    }
}
