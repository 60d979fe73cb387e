//! SSH user certificates from active grants (target kind `ssh-ca`): the CA keys, signing,
//! `ca.pub`, the KRL and rotation.
//!
//! Invariants:
//! - The CA private key is generated here, sealed under the master key (associated data
//!   `ssh_ca:TARGET:FINGERPRINT`) and opened only to sign; it is never in an answer, an error,
//!   a log line or an audit event.
//! - A certificate names exactly the principals of the caller's own live grants at the target
//!   (optionally one role's), ends no later than the earliest of them and the target's
//!   maximum, and is recorded with those grants in the same write that audits it; the store
//!   refuses the write if any grant ended meanwhile (so a certificate never escapes a revoke).
//! - Signing needs a full session (not an access token: a stolen bearer token mints nothing)
//!   with at least the strength each role used requires.
//! - `ca.pub` and the KRL are public, like a JWKS: servers fetch them without a credential,
//!   and neither says more than which serials are revoked.

use portcullis_core::api::{
    RotateSshCaRequest, SignSshRequest, SshCaKeyView, SshCaView, SshCertificateView,
};
use portcullis_core::error::ErrorCode;
use portcullis_core::roles::perm;
use portcullis_core::ssh::{self as rules, Krl};
use portcullis_store::ssh::{NewSshCaKey, NewSshCertificate, SshCaKey};
use portcullis_store::targets::Target;
use portcullis_store::{Change, MasterKey, StoreError};
use rand::RngCore;
use ssh_key::{HashAlg, PrivateKey, PublicKey};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::error::ApiError;
use crate::services::caller::{Caller, event};
use crate::state::AppState;
use crate::targets::ssh::{SshCa, options_of};
use crate::time_us::{from_us, rfc3339, us};

/// The target kind this module serves.
pub const KIND: &str = "ssh-ca";
/// How long a rotated-out key stays trusted when the rotation names no overlap.
pub const DEFAULT_OVERLAP: Duration = Duration::hours(24);

fn ca_aad(target: &str, fingerprint: &str) -> String {
    format!("ssh_ca:{target}:{fingerprint}")
}

/// A fresh Ed25519 CA key for `target`, its seed sealed.
pub fn new_ca_key(master: &MasterKey, target: &str, at_us: i64) -> NewSshCaKey {
    let mut seed = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(seed.as_mut());
    let pair = ssh_key::private::Ed25519Keypair::from_seed(&seed);
    let mut public = PublicKey::from(pair.public);
    public.set_comment(format!("portcullis-ca:{target}"));
    let fingerprint = public.fingerprint(HashAlg::Sha256).to_string();
    NewSshCaKey {
        target: target.to_owned(),
        sealed_private: master.seal(&ca_aad(target, &fingerprint), seed.as_ref()),
        public_key: public.to_openssh().unwrap_or_default(),
        fingerprint,
        at_us,
    }
}

fn open_ca_key(master: &MasterKey, target: &str, k: &SshCaKey) -> Result<PrivateKey, ApiError> {
    let seed = master
        .open(&ca_aad(target, &k.fingerprint), &k.sealed_private)
        .map_err(|_| ApiError::internal("the SSH CA key cannot be opened"))?;
    let seed: &[u8; 32] = seed
        .as_slice()
        .try_into()
        .map_err(|_| ApiError::internal("the SSH CA key is malformed"))?;
    Ok(PrivateKey::from(
        ssh_key::private::Ed25519Keypair::from_seed(seed),
    ))
}

/// The ssh-ca target `name`, or a 404 (also for a target of another kind).
async fn ssh_target(state: &AppState, name: &str) -> Result<(Target, SshCa), ApiError> {
    let t = state
        .store
        .target(name)
        .await?
        .filter(|t| t.kind == KIND)
        .ok_or_else(|| ApiError::not_found(format!("no ssh-ca target {name}")))?;
    let config: serde_json::Value = serde_json::from_str(&t.config).unwrap_or_default();
    let ca = SshCa::new(&config).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((t, ca))
}

fn trusted(k: &SshCaKey, now_us: i64) -> bool {
    k.trusted_until_us.is_none_or(|u| u > now_us)
}

/// The CA keys of an ssh-ca target and the `sshd_config` lines that trust them.
pub async fn view(state: &AppState, t: &Target) -> Result<SshCaView, ApiError> {
    let config: serde_json::Value = serde_json::from_str(&t.config).unwrap_or_default();
    let ca = SshCa::new(&config).map_err(|e| ApiError::internal(e.to_string()))?;
    let now = us(OffsetDateTime::now_utc());
    let keys = state
        .store
        .ssh_ca_keys(&t.name)
        .await?
        .into_iter()
        .filter(|k| trusted(k, now))
        .map(|k| SshCaKeyView {
            signing: k.retired_at_us.is_none(),
            public_key: k.public_key,
            fingerprint: k.fingerprint,
            created_at: rfc3339(k.created_at_us),
            trusted_until: k.trusted_until_us.map(rfc3339),
        })
        .collect();
    let n = &t.name;
    Ok(SshCaView {
        keys,
        max_validity_seconds: ca.max_validity_s,
        source_address: ca.source_address,
        sshd_config: format!(
            "# Portcullis ssh-ca target {n}: certificates from active grants, revoked by the KRL\n\
             TrustedUserCAKeys /etc/ssh/portcullis-{n}-ca.pub\n\
             RevokedKeys /etc/ssh/portcullis-{n}.krl\n\
             # principals a local account accepts, one per line (e.g. /etc/ssh/principals/root: root)\n\
             AuthorizedPrincipalsFile /etc/ssh/principals/%u\n"
        ),
    })
}

/// `ca.pub`: every CA key servers should trust now, one OpenSSH line each.
pub async fn ca_pub(state: &AppState, name: &str) -> Result<String, ApiError> {
    let (t, _) = ssh_target(state, name).await?;
    let now = us(OffsetDateTime::now_utc());
    let mut out = String::new();
    for k in state.store.ssh_ca_keys(&t.name).await? {
        if trusted(&k, now) {
            out.push_str(&k.public_key);
            out.push('\n');
        }
    }
    Ok(out)
}

/// The binary KRL of the target: every revoked certificate not yet expired.
pub async fn krl(state: &AppState, name: &str) -> Result<Vec<u8>, ApiError> {
    let (t, _) = ssh_target(state, name).await?;
    let now = OffsetDateTime::now_utc();
    let r = state.store.ssh_revocations(&t.name, us(now)).await?;
    let mut revoked = Vec::with_capacity(r.by_ca.len());
    for (line, serials) in r.by_ca {
        let blob = PublicKey::from_openssh(&line)
            .and_then(|k| k.to_bytes())
            .map_err(|_| ApiError::internal("a stored CA key does not parse"))?;
        revoked.push((blob, serials.into_iter().map(|s| s as u64).collect()));
    }
    Ok(Krl {
        version: r.version_us.max(0) as u64,
        generated_at: now.unix_timestamp().max(0) as u64,
        comment: format!("portcullis ssh-ca {}", t.name),
        revoked,
    }
    .encode())
}

/// Rotates the signing key: a new key signs from now on, the old ones stay in `ca.pub` for
/// the overlap (at least the longest certificate, so none in use loses its CA).
pub async fn rotate(
    state: &AppState,
    caller: &Caller,
    name: &str,
    req: RotateSshCaRequest,
) -> Result<SshCaView, ApiError> {
    caller.require(perm::TARGETS_MANAGE)?;
    let (t, ca) = ssh_target(state, name).await?;
    let overlap = match req.overlap.as_deref() {
        None => DEFAULT_OVERLAP,
        Some(d) => portcullis_core::roles::parse_duration(d)
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
    };
    if overlap.whole_seconds() < ca.max_validity_s || overlap > Duration::days(30) {
        return Err(ApiError::bad_request(format!(
            "overlap must be between the longest certificate ({} s) and 30 days",
            ca.max_validity_s
        )));
    }
    let now = us(OffsetDateTime::now_utc());
    let key = new_ca_key(&state.master, &t.name, now);
    let ev = event(caller, "target.ssh_ca_rotated", format!("target:{}", t.name)).details(
        serde_json::json!({ "fingerprint": key.fingerprint, "overlap_seconds": overlap.whole_seconds(), "alert": true }),
    );
    state
        .store
        .write(
            Change::AddSshCaKey {
                key,
                retire_until_us: Some(now + overlap.whole_microseconds() as i64),
            },
            vec![ev],
        )
        .await?;
    view(state, &t).await
}

/// Certifies the caller's public key for the principals of their live grants at `target`.
pub async fn sign(
    state: &AppState,
    caller: &Caller,
    target: &str,
    req: SignSshRequest,
) -> Result<SshCertificateView, ApiError> {
    let me = caller.require_full()?;
    if me.is_access_token() {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "SSH certificates are issued to a signed-in session (portcullis login), not to an access token",
        ));
    }
    let key = rules::parse_user_key(&req.public_key)
        .map_err(|e| ApiError::new(ErrorCode::InvalidPublicKey, e.to_string()))?;
    let (t, ca) = ssh_target(state, target).await?;
    let now = OffsetDateTime::now_utc();
    let grants: Vec<_> = state
        .store
        .live_target_grants(&t.name, us(now))
        .await?
        .into_iter()
        .filter(|g| g.principal_name == me.principal.name.as_str())
        .filter(|g| req.role.as_deref().is_none_or(|r| r == g.role))
        .collect();
    if grants.is_empty() {
        return Err(ApiError::new(
            ErrorCode::NoActiveGrant,
            format!(
                "you hold no active grant at target {target}{}: activate a role bound to it at scope /targets/{target} first",
                req.role
                    .as_deref()
                    .map(|r| format!(" for role {r}"))
                    .unwrap_or_default()
            ),
        ));
    }
    // Each role's required strength: the session must still be as strong as activation needed.
    let roles = crate::services::grants::all_roles(state).await?;
    for g in &grants {
        if let Some(def) = roles.iter().find(|r| r.slug == g.role) {
            let settings = crate::services::roles::settings(state, def).await?;
            if me.strength < settings.required_strength {
                return Err(ApiError::new(
                    ErrorCode::StepUpRequired,
                    format!(
                        "role {} needs a session signed in with {}",
                        g.role,
                        settings.required_strength.as_str()
                    ),
                ));
            }
        }
    }
    let options: Vec<(Vec<String>, Option<String>)> = grants
        .iter()
        .map(|g| options_of(g.options.as_deref()))
        .collect();
    let extensions =
        rules::common_extensions(&options.iter().map(|(e, _)| e.clone()).collect::<Vec<_>>());
    let force_command =
        rules::common_force_command(&options.iter().map(|(_, f)| f.clone()).collect::<Vec<_>>())
            .map_err(|e| ApiError::bad_request(format!("{e} (--role)")))?;
    let mut principals: Vec<String> = grants
        .iter()
        .flat_map(|g| super::grants_of(&g.grants))
        .collect();
    principals.sort();
    principals.dedup();
    let ends: Vec<Option<OffsetDateTime>> =
        grants.iter().map(|g| g.ends_at_us.map(from_us)).collect();
    let validity =
        rules::validity(now, &ends, Duration::seconds(ca.max_validity_s)).ok_or_else(|| {
            ApiError::new(
                ErrorCode::NoActiveGrant,
                format!(
                    "your grant at target {target} ends in less than {} s: activate again",
                    rules::MIN_LIFETIME.whole_seconds()
                ),
            )
        })?;
    let grant_ids: Vec<&str> = grants.iter().map(|g| g.id.as_str()).collect();
    let key_id = rules::key_id(me.principal.name.as_str(), &grant_ids);
    // Exact in JSON and in every client: below 2^53, never 0.
    let serial = (rand::rngs::OsRng.next_u64() >> 11).max(1);

    let signing = state
        .store
        .ssh_ca_keys(&t.name)
        .await?
        .into_iter()
        .find(|k| k.retired_at_us.is_none())
        .ok_or_else(|| ApiError::internal("the ssh-ca target has no signing key"))?;
    let ca_key = open_ca_key(&state.master, &t.name, &signing)?;
    let mut nonce = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let cert = (|| -> ssh_key::Result<ssh_key::Certificate> {
        let mut b = ssh_key::certificate::Builder::new(
            nonce.to_vec(),
            key.key_data().clone(),
            validity.valid_after.unix_timestamp() as u64,
            validity.valid_before.unix_timestamp() as u64,
        )?;
        b.serial(serial)?
            .cert_type(ssh_key::certificate::CertType::User)?
            .key_id(key_id.clone())?;
        for p in &principals {
            b.valid_principal(p.clone())?;
        }
        for e in &extensions {
            b.extension(e.clone(), "")?;
        }
        if let Some(c) = &force_command {
            b.critical_option("force-command", c.clone())?;
        }
        if !ca.source_address.is_empty() {
            b.critical_option("source-address", ca.source_address.join(","))?;
        }
        b.comment(key_id.clone())?;
        b.sign(&ca_key)
    })()
    .map_err(|_| ApiError::internal("the certificate could not be signed"))?;
    let line = cert
        .to_openssh()
        .map_err(|_| ApiError::internal("the certificate could not be encoded"))?;

    let key_fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    let ev = event(caller, "ssh.certificate_issued", format!("target:{}", t.name)).details(
        serde_json::json!({
            "serial": serial, "key_id": key_id, "principals": principals,
            "valid_after": rfc3339(us(validity.valid_after)), "valid_before": rfc3339(us(validity.valid_before)),
            "extensions": extensions, "force_command": force_command,
            "grant_ids": grant_ids, "key_fingerprint": key_fingerprint, "ca": signing.fingerprint,
        }),
    );
    let record = NewSshCertificate {
        target: t.name.clone(),
        serial: serial as i64,
        ca_fingerprint: signing.fingerprint.clone(),
        principal_id: me.principal.id.to_string(),
        key_id: key_id.clone(),
        principals: serde_json::to_string(&principals).map_err(ApiError::internal)?,
        key_fingerprint,
        valid_after_us: us(validity.valid_after),
        valid_before_us: us(validity.valid_before),
        at_us: us(now),
        grants: grants
            .iter()
            .map(|g| (g.id.clone(), g.role.clone()))
            .collect(),
    };
    match state
        .store
        .write(Change::IssueSshCertificate(record), vec![ev])
        .await
    {
        Ok(_) => {}
        Err(StoreError::Conflict(m)) => return Err(ApiError::new(ErrorCode::Conflict, m)),
        Err(e) => return Err(e.into()),
    }
    Ok(SshCertificateView {
        target: t.name,
        certificate: line,
        serial,
        key_id,
        principals,
        valid_after: rfc3339(us(validity.valid_after)),
        valid_before: rfc3339(us(validity.valid_before)),
        extensions,
        force_command,
        grant_ids: grant_ids.iter().map(|g| (*g).to_owned()).collect(),
        ca_fingerprint: signing.fingerprint,
    })
}

/// `targets test` of an ssh-ca target: a signing key exists and opens under the master key.
pub async fn check(state: &AppState, t: &Target) -> Vec<String> {
    match state.store.ssh_ca_keys(&t.name).await {
        Err(_) => vec!["the store cannot be read".into()],
        Ok(keys) => match keys.iter().find(|k| k.retired_at_us.is_none()) {
            None => vec!["no signing CA key".into()],
            Some(k) => match open_ca_key(&state.master, &t.name, k) {
                Ok(_) => Vec::new(),
                Err(_) => vec![format!(
                    "the CA key {} cannot be opened with this master key",
                    k.fingerprint
                )],
            },
        },
    }
}

/// What an ssh-ca target holds: each live certificate lets its person log in as each of its
/// principals (with the certificate's serial).
pub async fn live_rights(
    store: &portcullis_store::Store,
    target: &str,
    now_us: i64,
) -> Result<Vec<(crate::targets::Held, i64)>, StoreError> {
    Ok(store
        .ssh_live_certificates(target, now_us)
        .await?
        .into_iter()
        .flat_map(|c| {
            super::grants_of(&c.principals).into_iter().map(move |p| {
                (
                    crate::targets::Held {
                        holder: c.principal_name.clone(),
                        right: p,
                    },
                    c.serial,
                )
            })
        })
        .collect())
}
