//! Reads for the posture report (`portcullis posture`): the rows its checks judge, read at one
//! time. The rules themselves are `portcullis_core::posture`.

use sqlx::Row;

use crate::{Result, Store, on_pool};

/// A live assignment with what the checks need of its principal.
#[derive(Debug, Clone)]
pub struct AssignmentRow {
    pub role: String,
    pub scope: String,
    /// `eligible` or `active`.
    pub kind: String,
    pub ends_at_us: Option<i64>,
    pub created_at_us: i64,
    pub principal: String,
    /// `user`, `group` or `service_account`.
    pub principal_kind: String,
    pub emergency: bool,
    pub first_admin: bool,
    pub enabled: bool,
    pub principal_created_at_us: i64,
    pub last_sign_in_us: Option<i64>,
    /// The last activation through this eligibility.
    pub last_activated_us: Option<i64>,
}

/// The rows the posture checks read.
#[derive(Debug, Clone, Default)]
pub struct PostureRows {
    /// People who reach Global Administrator at `/` (directly or through a role-assignable
    /// group), not break-glass, with whether any of their assignments is active.
    pub global_admins: Vec<(String, bool)>,
    pub assignments: Vec<AssignmentRow>,
    /// Members of role-assignable groups, as `(group, member)`.
    pub group_members: Vec<(String, String)>,
    /// `(channel, last successful delivery)`.
    pub channels: Vec<(String, Option<i64>)>,
    /// `(person, role, activations since the window's start)`.
    pub activations: Vec<(String, String, i64)>,
}

impl Store {
    /// The posture rows at `now_us`, activations counted since `activations_since_us`.
    pub async fn posture_rows(
        &self,
        now_us: i64,
        activations_since_us: i64,
    ) -> Result<PostureRows> {
        on_pool!(&self.backend, pool => {
            let mut out = PostureRows::default();
            for r in sqlx::query("SELECT u.name, MAX(CASE WHEN a.kind = 'active' THEN 1 ELSE 0 END) AS standing FROM principals u JOIN role_assignments a ON a.role = 'global-administrator' AND a.scope = '/' AND a.ended_at_us IS NULL AND a.starts_at_us <= $1 AND (a.ends_at_us IS NULL OR a.ends_at_us > $1) JOIN principals h ON h.id = a.principal_id WHERE u.kind = 'user' AND u.enabled AND NOT u.emergency AND (a.principal_id = u.id OR (h.kind = 'group' AND h.role_assignable AND EXISTS (SELECT 1 FROM group_reach m WHERE m.group_id = h.id AND m.member_id = u.id AND (m.until_us IS NULL OR m.until_us > $1)))) GROUP BY u.name ORDER BY u.name")
                .bind(now_us).fetch_all(pool).await? {
                let standing: i32 = r.try_get("standing")?;
                out.global_admins.push((r.try_get("name")?, standing > 0));
            }
            for r in sqlx::query("SELECT a.role, a.scope, a.kind, a.ends_at_us, a.created_at_us, p.name, p.kind AS pkind, p.emergency, p.first_admin, p.enabled, p.created_at_us AS p_created, p.last_sign_in_us, (SELECT MAX(q.activated_at_us) FROM activation_requests q WHERE q.eligibility_id = a.id) AS last_activated FROM role_assignments a JOIN principals p ON p.id = a.principal_id WHERE a.ended_at_us IS NULL AND a.starts_at_us <= $1 AND (a.ends_at_us IS NULL OR a.ends_at_us > $1) ORDER BY p.name, a.role")
                .bind(now_us).fetch_all(pool).await? {
                out.assignments.push(AssignmentRow {
                    role: r.try_get("role")?,
                    scope: r.try_get("scope")?,
                    kind: r.try_get("kind")?,
                    ends_at_us: r.try_get("ends_at_us")?,
                    created_at_us: r.try_get("created_at_us")?,
                    principal: r.try_get("name")?,
                    principal_kind: r.try_get("pkind")?,
                    emergency: r.try_get("emergency")?,
                    first_admin: r.try_get("first_admin")?,
                    enabled: r.try_get("enabled")?,
                    principal_created_at_us: r.try_get("p_created")?,
                    last_sign_in_us: r.try_get("last_sign_in_us")?,
                    last_activated_us: r.try_get("last_activated")?,
                });
            }
            for r in sqlx::query("SELECT g.name AS g, u.name AS u FROM group_memberships m JOIN principals g ON g.id = m.group_id JOIN principals u ON u.id = m.member_id WHERE g.role_assignable ORDER BY g.name, u.name")
                .fetch_all(pool).await? {
                out.group_members.push((r.try_get("g")?, r.try_get("u")?));
            }
            for r in sqlx::query("SELECT c.name, (SELECT MAX(t.finished_at_us) FROM outbox o JOIN outbox_attempts t ON t.message_id = o.id WHERE o.channel = c.name AND t.outcome = 'delivered') AS ok FROM alert_channels c ORDER BY c.name")
                .fetch_all(pool).await? {
                out.channels.push((r.try_get("name")?, r.try_get("ok")?));
            }
            for r in sqlx::query("SELECT p.name, q.role, COUNT(*) AS n FROM activation_requests q JOIN principals p ON p.id = q.principal_id WHERE q.activated_at_us >= $1 GROUP BY p.name, q.role ORDER BY p.name, q.role")
                .bind(activations_since_us).fetch_all(pool).await? {
                out.activations.push((r.try_get("name")?, r.try_get("role")?, r.try_get("n")?));
            }
            Ok(out)
        })
    }
}
