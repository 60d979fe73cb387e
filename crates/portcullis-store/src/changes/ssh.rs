//! SSH certificate authorities of `ssh-ca` targets: their keys, the certificates they issued,
//! and the revocations a KRL serves.
//!
//! Invariants:
//! - A certificate is recorded only while every grant it was made from is live, its principal
//!   enabled and its role still bound to the target: [`issue_certificate`] checks each with a
//!   conditional update of that row, so on PostgreSQL a concurrent deactivation, disabling or
//!   unbinding either waits for the issue to commit (and then revokes the certificate) or
//!   commits first (and the issue conflicts). No certificate escapes its grant's end.
//! - [`revoke_certificates_where`] runs in the same transaction as every end of a grant
//!   ([`super::targets::revoke_where`]): the KRL served after the change committed lists the
//!   certificate.

use super::conflicts::conflict;
use super::sql::{Conn, args};
use super::targets::Scope;
use crate::Result;

/// A CA key of an ssh-ca target (its private key sealed under the master key).
#[derive(Debug, Clone)]
pub struct NewSshCaKey {
    pub target: String,
    /// `SHA256:…` of the public key.
    pub fingerprint: String,
    /// The OpenSSH public key line.
    pub public_key: String,
    pub sealed_private: Vec<u8>,
    pub at_us: i64,
}

/// A certificate about to be handed out.
#[derive(Debug, Clone)]
pub struct NewSshCertificate {
    pub target: String,
    /// Below 2^53 (exact in JSON), never 0.
    pub serial: i64,
    pub ca_fingerprint: String,
    pub principal_id: String,
    pub key_id: String,
    /// JSON array of SSH principals.
    pub principals: String,
    /// `SHA256:…` of the certified public key.
    pub key_fingerprint: String,
    pub valid_after_us: i64,
    pub valid_before_us: i64,
    pub at_us: i64,
    /// The grants it was made from: (grant id, role).
    pub grants: Vec<(String, String)>,
}

/// Adds a CA key to `key.target`. With `retire_until_us` (a rotation), the keys that signed so
/// far stop signing now and stay trusted until then.
pub(crate) async fn add_ca_key(
    c: &mut Conn<'_>,
    key: &NewSshCaKey,
    retire_until_us: Option<i64>,
) -> Result<()> {
    if let Some(until) = retire_until_us {
        c.execute("UPDATE ssh_ca_keys SET retired_at_us = $2, trusted_until_us = $3 WHERE target = $1 AND retired_at_us IS NULL", args![&key.target, key.at_us, until]).await?;
    }
    c.execute("INSERT INTO ssh_ca_keys (target, fingerprint, public_key, sealed_private, created_at_us) VALUES ($1, $2, $3, $4, $5)", args![&key.target, &key.fingerprint, &key.public_key, key.sealed_private.as_slice(), key.at_us]).await?;
    Ok(())
}

pub(crate) async fn issue_certificate(c: &mut Conn<'_>, cert: &NewSshCertificate) -> Result<()> {
    let gone = || {
        conflict(
            "a grant this certificate rests on has ended, or its role is no longer bound to the target",
        )
    };
    let n = c
        .execute(
            "UPDATE principals SET enabled = enabled WHERE id = $1 AND enabled",
            args![&cert.principal_id],
        )
        .await?;
    if n == 0 {
        return Err(conflict("the principal is disabled"));
    }
    for (grant, role) in &cert.grants {
        let n = c
            .execute(
                "UPDATE target_bindings SET role = role WHERE role = $1 AND target = $2",
                args![role, &cert.target],
            )
            .await?;
        if n == 0 {
            return Err(gone());
        }
        let scope = format!("/targets/{}", cert.target);
        let n = c.execute("UPDATE activation_requests SET state = state WHERE id = $1 AND principal_id = $2 AND role = $3 AND scope = $4 AND state = 'active' AND ends_at_us >= $5", args![grant, &cert.principal_id, role, &scope, cert.valid_before_us]).await?;
        if n == 0 {
            let n = c.execute("UPDATE role_assignments SET ended_at_us = ended_at_us WHERE id = $1 AND principal_id = $2 AND role = $3 AND scope = $4 AND kind = 'active' AND ended_at_us IS NULL AND starts_at_us <= $5 AND (ends_at_us IS NULL OR ends_at_us >= $6)", args![grant, &cert.principal_id, role, &scope, cert.at_us, cert.valid_before_us]).await?;
            if n == 0 {
                return Err(gone());
            }
        }
        c.execute("INSERT INTO ssh_certificate_grants (target, serial, grant_id, role) VALUES ($1, $2, $3, $4)", args![&cert.target, cert.serial, grant, role]).await?;
    }
    let n = c.execute("INSERT INTO ssh_certificates (target, serial, ca_fingerprint, principal_id, key_id, principals, key_fingerprint, valid_after_us, valid_before_us, issued_at_us) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 WHERE EXISTS (SELECT 1 FROM ssh_ca_keys WHERE target = $1 AND fingerprint = $3 AND retired_at_us IS NULL) ON CONFLICT DO NOTHING", args![&cert.target, cert.serial, &cert.ca_fingerprint, &cert.principal_id, &cert.key_id, &cert.principals, &cert.key_fingerprint, cert.valid_after_us, cert.valid_before_us, cert.at_us]).await?;
    if n == 0 {
        return Err(conflict(
            "the serial is taken or the CA key was rotated meanwhile; sign again",
        ));
    }
    Ok(())
}

/// Revokes the live certificates `serials` of `target` (drift reverted by the reconciler).
pub(crate) async fn revoke_certificates(
    c: &mut Conn<'_>,
    target: &str,
    serials: &[i64],
    reason: &str,
    at_us: i64,
) -> Result<()> {
    for serial in serials {
        c.execute("UPDATE ssh_certificates SET revoked_at_us = $3, revoked_reason = $4 WHERE target = $1 AND serial = $2 AND revoked_at_us IS NULL", args![target, *serial, at_us, reason]).await?;
    }
    Ok(())
}

/// Revokes every certificate not yet expired that rests on a grant in `scope` (or, for a
/// principal, every one of theirs).
pub(crate) async fn revoke_certificates_where(
    c: &mut Conn<'_>,
    scope: Scope<'_>,
    reason: &str,
    at_us: i64,
) -> Result<()> {
    macro_rules! revoke {
        ($filter:literal, $($a:expr),+) => {
            c.execute(
                concat!(
                    "UPDATE ssh_certificates SET revoked_at_us = $1, revoked_reason = $2 WHERE revoked_at_us IS NULL AND valid_before_us > $1 AND ",
                    $filter
                ),
                args![at_us, reason, $($a),+],
            )
            .await?
        };
    }
    match scope {
        Scope::Grant(id) => revoke!(
            "EXISTS (SELECT 1 FROM ssh_certificate_grants g WHERE g.target = ssh_certificates.target AND g.serial = ssh_certificates.serial AND g.grant_id = $3)",
            id
        ),
        Scope::RequestsOf(eligibility) => revoke!(
            "EXISTS (SELECT 1 FROM ssh_certificate_grants g JOIN activation_requests r ON r.id = g.grant_id WHERE g.target = ssh_certificates.target AND g.serial = ssh_certificates.serial AND r.eligibility_id = $3)",
            eligibility
        ),
        Scope::Principal(id) => revoke!("principal_id = $3", id),
        Scope::RoleAtTarget(role, target) => revoke!(
            "target = $4 AND EXISTS (SELECT 1 FROM ssh_certificate_grants g WHERE g.target = ssh_certificates.target AND g.serial = ssh_certificates.serial AND g.role = $3)",
            role,
            target
        ),
    };
    Ok(())
}

/// Deletes what an ssh-ca target kept (its removal; no binding is left, so no certificate of
/// it can still be live and unrevoked).
pub(crate) async fn remove_target(c: &mut Conn<'_>, target: &str) -> Result<()> {
    for sql in [
        "DELETE FROM ssh_certificate_grants WHERE target = $1",
        "DELETE FROM ssh_certificates WHERE target = $1",
        "DELETE FROM ssh_ca_keys WHERE target = $1",
    ] {
        c.execute(sql, args![target]).await?;
    }
    Ok(())
}
