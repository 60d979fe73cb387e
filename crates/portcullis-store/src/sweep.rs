//! The sweep: deletes what has expired, so no table grows without bound — least of all from
//! unauthenticated requests (device codes, WebAuthn challenges and decoys, throttle counters
//! for invented names).
//!
//! Invariants:
//! - Only rows that can no longer change an answer are deleted: each table's retention
//!   ([`Retention`]) starts after the row stopped mattering (its expiry, its forget period, the
//!   end of the token family it could still revoke). The audit log and its checkpoints are never
//!   touched (append-only, invariant 2), nor the records of break-glass use.
//! - Deletes go in bounded batches (each its own short transaction), so a sweep after a flood
//!   never holds a long lock; `Store::sweep` loops until a batch comes back short.

use crate::{Backend, Result, Store};

/// How long each kind of expired row is kept (microseconds after the moment it stopped
/// mattering). Documented in README ("Retention").
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Device codes, after their expiry.
    pub device_codes_us: i64,
    /// WebAuthn ceremonies, decoys and half-finished sign-ins, after their creation.
    pub ceremonies_us: i64,
    /// Throttle counters, after their last failure (their forget period).
    pub throttle_us: i64,
    /// Authorization codes, after their creation (a used code can revoke its family while the
    /// family lives).
    pub authorization_codes_us: i64,
    /// Refresh tokens, after their family's absolute end.
    pub refresh_tokens_us: i64,
    /// Sessions (not of break-glass accounts), after their creation.
    pub sessions_us: i64,
    /// Familiar sign-in addresses, after their last success.
    pub signin_addresses_us: i64,
    /// SSH certificates (and the grants they rest on), after they expire: an expired
    /// certificate needs no revocation (the KRL lists only live ones); its issue stays in the
    /// audit log.
    pub ssh_certificates_us: i64,
}

/// Rows deleted per statement.
pub const BATCH: i64 = 5_000;

/// One table's delete: its name and the statement, which deletes at most [`BATCH`] rows whose
/// retention ran out before `$1` (`$2` is the batch size).
struct Sweep {
    table: &'static str,
    sql: &'static str,
    cutoff: fn(&Retention) -> i64,
}

const SWEEPS: &[Sweep] = &[
    Sweep {
        table: "device_authorizations",
        sql: "DELETE FROM device_authorizations WHERE id IN (SELECT id FROM device_authorizations WHERE expires_at_us < $1 LIMIT $2)",
        cutoff: |r| r.device_codes_us,
    },
    Sweep {
        table: "webauthn_ceremonies",
        sql: "DELETE FROM webauthn_ceremonies WHERE id_hash IN (SELECT id_hash FROM webauthn_ceremonies WHERE created_at_us < $1 LIMIT $2)",
        cutoff: |r| r.ceremonies_us,
    },
    Sweep {
        table: "webauthn_decoys",
        sql: "DELETE FROM webauthn_decoys WHERE id_hash IN (SELECT id_hash FROM webauthn_decoys WHERE created_at_us < $1 LIMIT $2)",
        cutoff: |r| r.ceremonies_us,
    },
    Sweep {
        table: "pending_signins",
        sql: "DELETE FROM pending_signins WHERE id_hash IN (SELECT id_hash FROM pending_signins WHERE created_at_us < $1 LIMIT $2)",
        cutoff: |r| r.ceremonies_us,
    },
    Sweep {
        table: "throttle",
        sql: "DELETE FROM throttle WHERE key IN (SELECT key FROM throttle WHERE last_failure_us < $1 LIMIT $2)",
        cutoff: |r| r.throttle_us,
    },
    Sweep {
        table: "revoked_tokens",
        sql: "DELETE FROM revoked_tokens WHERE jti IN (SELECT jti FROM revoked_tokens WHERE expires_at_us < $1 LIMIT $2)",
        cutoff: |_| 0,
    },
    Sweep {
        table: "client_assertion_jtis",
        sql: "DELETE FROM client_assertion_jtis WHERE (principal_id, jti) IN (SELECT principal_id, jti FROM client_assertion_jtis WHERE expires_at_us < $1 LIMIT $2)",
        cutoff: |_| 0,
    },
    Sweep {
        table: "authorization_codes",
        sql: "DELETE FROM authorization_codes WHERE id IN (SELECT id FROM authorization_codes WHERE created_at_us < $1 LIMIT $2)",
        cutoff: |r| r.authorization_codes_us,
    },
    Sweep {
        table: "refresh_tokens",
        sql: "DELETE FROM refresh_tokens WHERE id IN (SELECT id FROM refresh_tokens WHERE family_expires_at_us < $1 LIMIT $2)",
        cutoff: |r| r.refresh_tokens_us,
    },
    Sweep {
        table: "sessions",
        sql: "DELETE FROM sessions WHERE id IN (SELECT s.id FROM sessions s JOIN principals p ON p.id = s.principal_id WHERE s.created_at_us < $1 AND NOT p.emergency AND NOT EXISTS (SELECT 1 FROM breakglass_drills d WHERE d.session_id = s.id) LIMIT $2)",
        cutoff: |r| r.sessions_us,
    },
    Sweep {
        table: "ssh_certificates",
        sql: "DELETE FROM ssh_certificates WHERE (target, serial) IN (SELECT target, serial FROM ssh_certificates WHERE valid_before_us < $1 LIMIT $2)",
        cutoff: |r| r.ssh_certificates_us,
    },
    // The grants of certificates swept above (or of any certificate gone); `$1` only keeps the
    // statement's parameters those of the others.
    Sweep {
        table: "ssh_certificate_grants",
        sql: "DELETE FROM ssh_certificate_grants WHERE (target, serial, grant_id) IN (SELECT g.target, g.serial, g.grant_id FROM ssh_certificate_grants g WHERE $1 >= 0 AND NOT EXISTS (SELECT 1 FROM ssh_certificates c WHERE c.target = g.target AND c.serial = g.serial) LIMIT $2)",
        cutoff: |_| 0,
    },
    Sweep {
        table: "signin_addresses",
        sql: "DELETE FROM signin_addresses WHERE (principal_id, address) IN (SELECT principal_id, address FROM signin_addresses WHERE last_success_us < $1 LIMIT $2)",
        cutoff: |r| r.signin_addresses_us,
    },
];

impl Store {
    /// Deletes what expired before `now_us` by `retention`; the rows deleted per table (tables
    /// with none left out).
    pub async fn sweep(&self, now_us: i64, retention: &Retention) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        for s in SWEEPS {
            let before = now_us.saturating_sub((s.cutoff)(retention));
            let mut total = 0u64;
            loop {
                let n = match &self.backend {
                    Backend::Sqlite(pool) => sqlx::query(s.sql)
                        .bind(before)
                        .bind(BATCH)
                        .execute(pool)
                        .await?
                        .rows_affected(),
                    Backend::Postgres(pool) => sqlx::query(s.sql)
                        .bind(before)
                        .bind(BATCH)
                        .execute(pool)
                        .await?
                        .rows_affected(),
                };
                total += n;
                if n < BATCH as u64 {
                    break;
                }
            }
            if total > 0 {
                out.push((s.table.to_owned(), total));
            }
        }
        Ok(out)
    }
}
