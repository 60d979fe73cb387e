//! Reads for containment (the writes are [`crate::Change::Contain`] and
//! [`crate::Change::Uncontain`]).

use crate::{Result, Store, on_pool};

/// What a containment of a principal cuts, counted just before it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cut {
    pub sessions: i64,
    /// Refresh-token families.
    pub refresh_tokens: i64,
    /// A service account's live client secrets and keys.
    pub client_credentials: i64,
    pub pending_requests: i64,
    pub active_requests: i64,
    pub active_assignments: i64,
    pub target_grants: i64,
    pub ssh_certificates: i64,
}

impl Store {
    /// What containing principal `id` at `now_us` would cut.
    pub async fn containment_cut(&self, id: &str, now_us: i64) -> Result<Cut> {
        on_pool!(&self.backend, pool => {
            let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql).bind(id).bind(now_us);
            Ok(Cut {
                sessions: count("SELECT COUNT(*) FROM sessions WHERE principal_id = $1 AND revoked_at_us IS NULL AND (ends_at_us IS NULL OR ends_at_us > $2)").fetch_one(pool).await?,
                refresh_tokens: count("SELECT COUNT(DISTINCT family_id) FROM refresh_tokens WHERE principal_id = $1 AND revoked_at_us IS NULL AND family_expires_at_us > $2").fetch_one(pool).await?,
                client_credentials: sqlx::query_scalar::<_, i64>("SELECT (SELECT COUNT(*) FROM client_secrets WHERE principal_id = $1 AND revoked_at_us IS NULL) + (SELECT COUNT(*) FROM client_keys WHERE principal_id = $1 AND revoked_at_us IS NULL)").bind(id).fetch_one(pool).await?,
                pending_requests: count("SELECT COUNT(*) FROM activation_requests WHERE principal_id = $1 AND state IN ('pending_approval', 'scheduled') AND created_at_us <= $2").fetch_one(pool).await?,
                active_requests: count("SELECT COUNT(*) FROM activation_requests WHERE principal_id = $1 AND state = 'active' AND ends_at_us > $2").fetch_one(pool).await?,
                active_assignments: count("SELECT COUNT(*) FROM role_assignments WHERE principal_id = $1 AND kind = 'active' AND ended_at_us IS NULL AND (ends_at_us IS NULL OR ends_at_us > $2)").fetch_one(pool).await?,
                target_grants: count("SELECT COUNT(*) FROM target_ops o WHERE o.principal_id = $1 AND o.op = 'grant' AND o.state <> 'superseded' AND o.created_at_us <= $2 AND NOT EXISTS (SELECT 1 FROM target_ops l WHERE l.grant_id = o.grant_id AND l.target = o.target AND l.id > o.id AND l.state <> 'superseded')").fetch_one(pool).await?,
                ssh_certificates: count("SELECT COUNT(*) FROM ssh_certificates WHERE principal_id = $1 AND revoked_at_us IS NULL AND valid_before_us > $2").fetch_one(pool).await?,
            })
        })
    }
}
