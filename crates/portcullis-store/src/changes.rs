//! State changes: each is applied inside the writer's transaction, together with its audit
//! events (invariant 1). A change that finds the world not as it expected (a row already there,
//! a conditional update that matched nothing) fails with [`StoreError::Conflict`] and is rolled
//! back alone, so races between replicas resolve to exactly one winner.

use futures_core::future::BoxFuture;
use time::OffsetDateTime;

use crate::{Result, StoreError, micros};

/// A new principal row.
#[derive(Debug, Clone)]
pub struct NewPrincipal {
    pub id: String,
    pub name: String,
    /// `user`, `group` or `service_account`.
    pub kind: String,
    pub display_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Set for guests: their home organisation.
    pub guest_organisation: Option<String>,
    pub role_assignable: bool,
    pub emergency: bool,
    pub privileged: bool,
    pub first_admin: bool,
    pub created_at_us: i64,
}

/// A new session row (the token itself is never stored, only its hash).
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub token_hash: Vec<u8>,
    pub principal_id: String,
    pub strength: String,
    pub scope: String,
    pub created_at_us: i64,
    pub strong_auth_at_us: Option<i64>,
    pub client_ip: String,
    pub user_agent: String,
}

/// A state change applied in the same transaction as its audit events.
#[derive(Debug, Clone)]
pub enum Change {
    /// Only the audit events.
    None,
    /// Several changes, all or nothing.
    Many(Vec<Change>),
    /// Writes a signed checkpoint at the end of this batch, whatever the policy says.
    ForceCheckpoint,
    /// Sets a configuration value.
    SetSetting {
        key: String,
        value: String,
    },
    /// Creates the tenant; conflicts if it already exists.
    InitialiseTenant {
        created_at_us: i64,
        key_check: Vec<u8>,
        key_id: String,
        public_key: Vec<u8>,
        sealed_private_key: Vec<u8>,
        bootstrap_token_hash: Vec<u8>,
        bootstrap_expires_at_us: i64,
    },
    /// Marks the bootstrap token used; conflicts unless it is unused and unexpired.
    RedeemBootstrapToken {
        token_hash: Vec<u8>,
        at_us: i64,
    },
    /// Creates a principal; conflicts if the name is taken.
    CreatePrincipal(NewPrincipal),
    /// Enables or disables a principal; disabling revokes its sessions.
    SetPrincipalEnabled {
        id: String,
        enabled: bool,
        at_us: i64,
    },
    /// Records a successful sign-in.
    RecordSignIn {
        principal_id: String,
        at_us: i64,
    },
    AddGroupMember {
        group_id: String,
        member_id: String,
        at_us: i64,
    },
    /// Conflicts if the member was not in the group.
    RemoveGroupMember {
        group_id: String,
        member_id: String,
    },
    /// Sets (or replaces) a password hash (PHC string).
    SetPassword {
        principal_id: String,
        phc: String,
        at_us: i64,
    },
    /// Adds a TOTP factor (unconfirmed until a code proves the enrolment).
    AddTotpFactor {
        id: String,
        principal_id: String,
        name: String,
        sealed_secret: Vec<u8>,
        confirmed: bool,
        last_step: Option<i64>,
        at_us: i64,
    },
    /// Accepts a TOTP time step: conflicts if that step (or a later one) was already used,
    /// which is what stops a code from working twice, also across replicas.
    AcceptTotpStep {
        factor_id: String,
        step: i64,
        confirm: bool,
        at_us: i64,
    },
    /// Conflicts if the factor does not exist for that principal.
    RemoveFactor {
        id: String,
        principal_id: String,
    },
    CreateSession(NewSession),
    /// Conflicts if the session is unknown or already revoked.
    RevokeSession {
        id: String,
        at_us: i64,
    },
    /// Revokes every live session of a principal, but `except`.
    RevokeSessionsOf {
        principal_id: String,
        except: Option<String>,
        at_us: i64,
    },
    /// Updates a session's last activity (no audit event needed).
    TouchSession {
        id: String,
        at_us: i64,
    },
    /// Stores a half-finished sign-in (password accepted, second factor pending).
    CreatePendingSignIn {
        id_hash: Vec<u8>,
        principal_id: String,
        at_us: i64,
    },
    /// Consumes it; conflicts if it is gone (used, or never existed).
    ConsumePendingSignIn {
        id_hash: Vec<u8>,
    },
    /// One more failure on each throttle key.
    RecordFailures {
        keys: Vec<String>,
        at_us: i64,
    },
    /// Forgets the failures of these keys (after a success).
    ResetThrottle {
        keys: Vec<String>,
    },
}

/// Applies a [`Change`] on a connection of either backend.
pub(crate) trait Apply {
    fn apply<'a>(&'a mut self, change: &'a Change) -> BoxFuture<'a, Result<()>>;
}

fn conflict(what: &str) -> StoreError {
    StoreError::Conflict(what.to_owned())
}

macro_rules! apply_for {
    ($conn:ty) => {
        impl Apply for $conn {
            fn apply<'a>(&'a mut self, change: &'a Change) -> BoxFuture<'a, Result<()>> {
                Box::pin(async move {
                    let c = self;
                    match change {
                        Change::None | Change::ForceCheckpoint => {}
                        Change::Many(all) => {
                            for one in all {
                                c.apply(one).await?;
                            }
                        }
                        Change::SetSetting { key, value } => {
                            sqlx::query("INSERT INTO settings (key, value, updated_at_us) VALUES ($1, $2, $3) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at_us = excluded.updated_at_us")
                                .bind(key).bind(value).bind(micros(OffsetDateTime::now_utc()))
                                .execute(&mut *c).await?;
                        }
                        Change::InitialiseTenant { created_at_us, key_check, key_id, public_key, sealed_private_key, bootstrap_token_hash, bootstrap_expires_at_us } => {
                            let n = sqlx::query("INSERT INTO tenant (id, created_at_us, key_check) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING")
                                .bind(*created_at_us).bind(key_check).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("tenant already initialised"));
                            }
                            sqlx::query("INSERT INTO signing_keys (key_id, public_key, sealed_private_key, created_at_us, active) VALUES ($1, $2, $3, $4, TRUE)")
                                .bind(key_id).bind(public_key).bind(sealed_private_key).bind(*created_at_us)
                                .execute(&mut *c).await?;
                            sqlx::query("INSERT INTO bootstrap_tokens (id, token_hash, expires_at_us) VALUES ('bootstrap', $1, $2)")
                                .bind(bootstrap_token_hash).bind(*bootstrap_expires_at_us)
                                .execute(&mut *c).await?;
                        }
                        Change::RedeemBootstrapToken { token_hash, at_us } => {
                            let n = sqlx::query("UPDATE bootstrap_tokens SET used_at_us = $1 WHERE token_hash = $2 AND used_at_us IS NULL AND expires_at_us > $1")
                                .bind(*at_us).bind(token_hash).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("bootstrap token already used or expired"));
                            }
                        }
                        Change::CreatePrincipal(p) => {
                            let n = sqlx::query("INSERT INTO principals (id, name, kind, display_name, email, phone, guest_organisation, role_assignable, emergency, privileged, first_admin, enabled, created_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, TRUE, $12) ON CONFLICT (name) DO NOTHING")
                                .bind(&p.id).bind(&p.name).bind(&p.kind).bind(&p.display_name).bind(&p.email).bind(&p.phone)
                                .bind(&p.guest_organisation).bind(p.role_assignable).bind(p.emergency).bind(p.privileged)
                                .bind(p.first_admin).bind(p.created_at_us)
                                .execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("name already taken"));
                            }
                        }
                        Change::SetPrincipalEnabled { id, enabled, at_us } => {
                            sqlx::query("UPDATE principals SET enabled = $1 WHERE id = $2")
                                .bind(*enabled).bind(id).execute(&mut *c).await?;
                            if !*enabled {
                                sqlx::query("UPDATE sessions SET revoked_at_us = $1 WHERE principal_id = $2 AND revoked_at_us IS NULL")
                                    .bind(*at_us).bind(id).execute(&mut *c).await?;
                            }
                        }
                        Change::RecordSignIn { principal_id, at_us } => {
                            sqlx::query("UPDATE principals SET last_sign_in_us = $1 WHERE id = $2")
                                .bind(*at_us).bind(principal_id).execute(&mut *c).await?;
                        }
                        Change::AddGroupMember { group_id, member_id, at_us } => {
                            let n = sqlx::query("INSERT INTO group_members (group_id, member_id, added_at_us) VALUES ($1, $2, $3) ON CONFLICT (group_id, member_id) DO NOTHING")
                                .bind(group_id).bind(member_id).bind(*at_us).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("already a member"));
                            }
                        }
                        Change::RemoveGroupMember { group_id, member_id } => {
                            let n = sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND member_id = $2")
                                .bind(group_id).bind(member_id).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("not a member"));
                            }
                        }
                        Change::SetPassword { principal_id, phc, at_us } => {
                            sqlx::query("INSERT INTO passwords (principal_id, phc, updated_at_us) VALUES ($1, $2, $3) ON CONFLICT (principal_id) DO UPDATE SET phc = excluded.phc, updated_at_us = excluded.updated_at_us")
                                .bind(principal_id).bind(phc).bind(*at_us).execute(&mut *c).await?;
                        }
                        Change::AddTotpFactor { id, principal_id, name, sealed_secret, confirmed, last_step, at_us } => {
                            let n = sqlx::query("INSERT INTO mfa_factors (id, principal_id, kind, name, sealed_secret, confirmed, last_step, created_at_us) VALUES ($1, $2, 'totp', $3, $4, $5, $6, $7) ON CONFLICT (principal_id, name) DO NOTHING")
                                .bind(id).bind(principal_id).bind(name).bind(sealed_secret).bind(*confirmed).bind(*last_step).bind(*at_us)
                                .execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("a factor with that name exists"));
                            }
                        }
                        Change::AcceptTotpStep { factor_id, step, confirm, at_us } => {
                            let n = sqlx::query("UPDATE mfa_factors SET last_step = $1, last_used_us = $2, confirmed = (confirmed OR $3) WHERE id = $4 AND (last_step IS NULL OR last_step < $1)")
                                .bind(*step).bind(*at_us).bind(*confirm).bind(factor_id)
                                .execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("totp step already used"));
                            }
                        }
                        Change::RemoveFactor { id, principal_id } => {
                            let n = sqlx::query("DELETE FROM mfa_factors WHERE id = $1 AND principal_id = $2")
                                .bind(id).bind(principal_id).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("no such factor"));
                            }
                        }
                        Change::CreateSession(s) => {
                            sqlx::query("INSERT INTO sessions (id, token_hash, principal_id, strength, scope, created_at_us, last_seen_us, strong_auth_at_us, client_ip, user_agent) VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9)")
                                .bind(&s.id).bind(&s.token_hash).bind(&s.principal_id).bind(&s.strength).bind(&s.scope)
                                .bind(s.created_at_us).bind(s.strong_auth_at_us).bind(&s.client_ip).bind(&s.user_agent)
                                .execute(&mut *c).await?;
                        }
                        Change::RevokeSession { id, at_us } => {
                            let n = sqlx::query("UPDATE sessions SET revoked_at_us = $1 WHERE id = $2 AND revoked_at_us IS NULL")
                                .bind(*at_us).bind(id).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("no such live session"));
                            }
                        }
                        Change::RevokeSessionsOf { principal_id, except, at_us } => {
                            sqlx::query("UPDATE sessions SET revoked_at_us = $1 WHERE principal_id = $2 AND revoked_at_us IS NULL AND id <> $3")
                                .bind(*at_us).bind(principal_id).bind(except.as_deref().unwrap_or("")).execute(&mut *c).await?;
                        }
                        Change::TouchSession { id, at_us } => {
                            sqlx::query("UPDATE sessions SET last_seen_us = $1 WHERE id = $2 AND last_seen_us < $1")
                                .bind(*at_us).bind(id).execute(&mut *c).await?;
                        }
                        Change::CreatePendingSignIn { id_hash, principal_id, at_us } => {
                            sqlx::query("INSERT INTO pending_signins (id_hash, principal_id, created_at_us) VALUES ($1, $2, $3)")
                                .bind(id_hash).bind(principal_id).bind(*at_us).execute(&mut *c).await?;
                        }
                        Change::ConsumePendingSignIn { id_hash } => {
                            let n = sqlx::query("DELETE FROM pending_signins WHERE id_hash = $1")
                                .bind(id_hash).execute(&mut *c).await?.rows_affected();
                            if n == 0 {
                                return Err(conflict("sign-in already completed or unknown"));
                            }
                        }
                        Change::RecordFailures { keys, at_us } => {
                            for key in keys {
                                sqlx::query("INSERT INTO throttle (key, failures, last_failure_us) VALUES ($1, 1, $2) ON CONFLICT (key) DO UPDATE SET failures = throttle.failures + 1, last_failure_us = excluded.last_failure_us")
                                    .bind(key).bind(*at_us).execute(&mut *c).await?;
                            }
                        }
                        Change::ResetThrottle { keys } => {
                            for key in keys {
                                sqlx::query("DELETE FROM throttle WHERE key = $1").bind(key).execute(&mut *c).await?;
                            }
                        }
                    }
                    Ok(())
                })
            }
        }
    };
}

apply_for!(sqlx::SqliteConnection);
apply_for!(sqlx::PgConnection);
