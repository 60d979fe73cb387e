//! Reading the CA keys and certificates of `ssh-ca` targets: for signing, `ca.pub`, the KRL
//! and observation. Plain reads on the pool.

use sqlx::Row;

use crate::{Result, Store, on_pool};

pub use crate::changes::{NewSshCaKey, NewSshCertificate};

/// A CA key of a target.
#[derive(Debug, Clone)]
pub struct SshCaKey {
    pub fingerprint: String,
    pub public_key: String,
    pub sealed_private: Vec<u8>,
    pub created_at_us: i64,
    /// Set when a newer key took over signing.
    pub retired_at_us: Option<i64>,
    /// Until when servers should still trust it (after a rotation).
    pub trusted_until_us: Option<i64>,
}

/// A certificate not yet expired nor revoked.
#[derive(Debug, Clone)]
pub struct LiveSshCertificate {
    pub serial: i64,
    pub principal_name: String,
    /// JSON array of SSH principals.
    pub principals: String,
    /// `portcullis:<person>:<grant ids>`.
    pub key_id: String,
    pub valid_before_us: i64,
}

/// What a KRL of a target lists: per CA key (its public key line), the serials revoked and not
/// yet expired; and the KRL's version (the newest revocation ever, in microseconds).
#[derive(Debug, Clone, Default)]
pub struct Revocations {
    pub by_ca: Vec<(String, Vec<i64>)>,
    pub version_us: i64,
}

impl Store {
    /// A target's CA keys, newest first.
    pub async fn ssh_ca_keys(&self, target: &str) -> Result<Vec<SshCaKey>> {
        on_pool!(&self.backend, pool => {
            let mut out = Vec::new();
            for r in sqlx::query("SELECT fingerprint, public_key, sealed_private, created_at_us, retired_at_us, trusted_until_us FROM ssh_ca_keys WHERE target = $1 ORDER BY created_at_us DESC, fingerprint")
                .bind(target).fetch_all(pool).await? {
                out.push(SshCaKey {
                    fingerprint: r.try_get(0)?,
                    public_key: r.try_get(1)?,
                    sealed_private: r.try_get(2)?,
                    created_at_us: r.try_get(3)?,
                    retired_at_us: r.try_get(4)?,
                    trusted_until_us: r.try_get(5)?,
                });
            }
            Ok(out)
        })
    }

    /// The revoked certificates of `target` that have not expired at `now_us`, by CA key.
    pub async fn ssh_revocations(&self, target: &str, now_us: i64) -> Result<Revocations> {
        on_pool!(&self.backend, pool => {
            let mut out = Revocations::default();
            for r in sqlx::query("SELECT k.public_key, c.serial FROM ssh_certificates c JOIN ssh_ca_keys k ON k.target = c.target AND k.fingerprint = c.ca_fingerprint WHERE c.target = $1 AND c.revoked_at_us IS NOT NULL AND c.valid_before_us > $2 ORDER BY k.public_key, c.serial")
                .bind(target).bind(now_us).fetch_all(pool).await? {
                let ca: String = r.try_get(0)?;
                let serial: i64 = r.try_get(1)?;
                match out.by_ca.last_mut() {
                    Some((last, serials)) if *last == ca => serials.push(serial),
                    _ => out.by_ca.push((ca, vec![serial])),
                }
            }
            // The newest revocation ever, expired ones included: it never goes back when the
            // newest revoked certificate expires and leaves the list.
            out.version_us = sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(revoked_at_us) FROM ssh_certificates WHERE target = $1")
                .bind(target).fetch_one(pool).await?.unwrap_or(0);
            Ok(out)
        })
    }

    /// The certificates of `target` live at `now_us` (issued, not expired, not revoked).
    pub async fn ssh_live_certificates(
        &self,
        target: &str,
        now_us: i64,
    ) -> Result<Vec<LiveSshCertificate>> {
        on_pool!(&self.backend, pool => {
            let mut out = Vec::new();
            for r in sqlx::query("SELECT c.serial, p.name, c.principals, c.key_id, c.valid_before_us FROM ssh_certificates c JOIN principals p ON p.id = c.principal_id WHERE c.target = $1 AND c.revoked_at_us IS NULL AND c.valid_before_us > $2 ORDER BY c.serial")
                .bind(target).bind(now_us).fetch_all(pool).await? {
                out.push(LiveSshCertificate {
                    serial: r.try_get(0)?,
                    principal_name: r.try_get(1)?,
                    principals: r.try_get(2)?,
                    key_id: r.try_get(3)?,
                    valid_before_us: r.try_get(4)?,
                });
            }
            Ok(out)
        })
    }
}
