//! The sweep (finding 7): helpers that write one row of each swept table at a chosen time.

use super::*;

mod rules;
mod tables;

// The sweep, table by table. Each test writes one row past its table's retention and one just
// inside it (a minute either side of the cutoff), sweeps at `now`, and reads both back.

const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// The retention the sweep tests sweep with: every period differs from the others, so a table
/// swept by another table's retention leaves or deletes the wrong row.
fn sweep_retention() -> portcullis_store::sweep::Retention {
    portcullis_store::sweep::Retention {
        device_codes_us: DAY,
        ceremonies_us: HOUR,
        throttle_us: 36 * HOUR,
        authorization_codes_us: 8 * DAY,
        refresh_tokens_us: 2 * DAY,
        sessions_us: 30 * DAY,
        signin_addresses_us: 45 * DAY,
        ssh_certificates_us: 3 * DAY,
    }
}

pub(super) fn now_us() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64
}

/// Sweeps at `now` with [`sweep_retention`]: the rows deleted per table.
async fn sweep_at(store: &Store, now: i64) -> BTreeMap<String, u64> {
    let deleted = store.sweep(now, &sweep_retention()).await.expect("sweep");
    let tables: BTreeMap<String, u64> = deleted.iter().cloned().collect();
    assert_eq!(tables.len(), deleted.len(), "each table once: {deleted:?}");
    assert!(
        deleted.iter().all(|(_, n)| *n > 0),
        "tables with nothing deleted are left out: {deleted:?}"
    );
    tables
}

/// What a sweep that deleted `n` rows of `table` and nothing else returns.
fn only(table: &str, n: u64) -> BTreeMap<String, u64> {
    BTreeMap::from([(table.to_owned(), n)])
}

/// A user (the rows the sweep deletes mostly belong to a principal).
pub(super) async fn sweep_user(store: &Store, id: &str, emergency: bool, now: i64) {
    store
        .write(
            Change::CreatePrincipal(NewPrincipal {
                id: id.into(),
                name: id.into(),
                kind: portcullis_core::principal::PrincipalKind::User,
                display_name: id.into(),
                email: None,
                phone: None,
                guest_organisation: None,
                role_assignable: false,
                emergency,
                privileged: emergency,
                first_admin: false,
                created_at_us: now - 90 * DAY,
            }),
            vec![],
        )
        .await
        .expect("principal");
}

async fn device_code(store: &Store, tag: &str, expires_at_us: i64) {
    store
        .write(
            Change::CreateDeviceAuthorization(NewDeviceAuthorization {
                id: format!("dev-{tag}"),
                device_code_hash: format!("device-code-{tag}").into_bytes(),
                user_code: format!("CODE-{tag}"),
                client_id: "portcullis-cli".into(),
                created_at_us: expires_at_us - 10 * MINUTE,
                expires_at_us,
                interval_s: 5,
                client_ip: "192.0.2.1".into(),
                user_agent: "test".into(),
                max_pending_per_address: 1_000,
            }),
            vec![],
        )
        .await
        .expect("device code");
}

async fn ceremony(store: &Store, tag: &str, principal_id: &str, created_at_us: i64) {
    store
        .write(
            Change::CreateCeremony(portcullis_store::NewCeremony {
                id_hash: format!("ceremony-{tag}").into_bytes(),
                principal_id: principal_id.into(),
                kind: "authentication".into(),
                state: "{}".into(),
                factor_name: None,
                pending_signin_hash: None,
                at_us: created_at_us,
                client_ip: "192.0.2.1".into(),
                cap: None,
            }),
            vec![],
        )
        .await
        .expect("ceremony");
}

async fn decoy(store: &Store, tag: &str, created_at_us: i64) {
    store
        .write(
            Change::CreateDecoy {
                id_hash: format!("decoy-{tag}").into_bytes(),
                name: format!("nobody-{tag}"),
                client_ip: "192.0.2.1".into(),
                at_us: created_at_us,
                cap: PendingCap {
                    max: 1_000,
                    since_us: 0,
                },
            },
            vec![],
        )
        .await
        .expect("decoy");
}

async fn pending_signin(store: &Store, tag: &str, principal_id: &str, created_at_us: i64) {
    store
        .write(
            Change::CreatePendingSignIn {
                id_hash: format!("pending-{tag}").into_bytes(),
                principal_id: principal_id.into(),
                at_us: created_at_us,
            },
            vec![],
        )
        .await
        .expect("pending sign-in");
}

async fn throttle_failures(store: &Store, keys: Vec<String>, at_us: i64) {
    store
        .write(Change::RecordFailures { keys, at_us }, vec![])
        .await
        .expect("failures");
}

async fn revoked_jti(store: &Store, jti: &str, expires_at_us: i64) {
    store
        .write(
            Change::RevokeToken {
                jti: jti.into(),
                expires_at_us,
                at_us: expires_at_us - HOUR,
            },
            vec![],
        )
        .await
        .expect("revoked");
}

/// An accepted client assertion's id, accepted an hour before its expiry. Accepting one forgets
/// the ids expired by then, so the tests' live ids (a minute from `now`) forget none of theirs.
async fn assertion_jti(store: &Store, jti: &str, expires_at_us: i64) {
    store
        .write(
            Change::UseClientAssertion {
                principal_id: "svc-1".into(),
                jti: jti.into(),
                expires_at_us,
                at_us: expires_at_us - HOUR,
            },
            vec![],
        )
        .await
        .expect("assertion");
}

async fn authorization_code(store: &Store, tag: &str, principal_id: &str, created_at_us: i64) {
    store
        .write(
            Change::CreateAuthorizationCode(NewAuthorizationCode {
                id: format!("code-{tag}"),
                code_hash: format!("code-{tag}").into_bytes(),
                client_id: "client-1".into(),
                principal_id: principal_id.into(),
                session_id: "s-any".into(),
                redirect_uri: "https://rp.example/cb".into(),
                scope: "openid".into(),
                nonce: None,
                code_challenge: "challenge".into(),
                strength: portcullis_core::session::AuthStrength::Mfa,
                auth_time_us: created_at_us,
                created_at_us,
                expires_at_us: created_at_us + MINUTE,
                person_ip: "192.0.2.1".into(),
            }),
            vec![],
        )
        .await
        .expect("authorization code");
}

async fn refresh_token(
    store: &Store,
    tag: &str,
    family_id: &str,
    principal_id: &str,
    family_expires_at_us: i64,
) {
    let created_at_us = family_expires_at_us - 7 * DAY;
    store
        .write(
            Change::IssueRefreshToken(NewRefreshToken {
                id: format!("rt-{tag}"),
                token_hash: format!("refresh-{tag}").into_bytes(),
                family_id: family_id.into(),
                principal_id: principal_id.into(),
                client_id: "portcullis-cli".into(),
                strength: portcullis_core::session::AuthStrength::Mfa,
                auth_time_us: created_at_us,
                session_id: "s-any".into(),
                created_at_us,
                expires_at_us: created_at_us + 12 * HOUR,
                family_expires_at_us,
                scope: String::new(),
                access: Some((format!("access-{tag}"), created_at_us + 10 * MINUTE)),
                flow: Some("device_code".into()),
                person_ip: None,
            }),
            vec![],
        )
        .await
        .expect("refresh token");
}

pub(super) async fn session(store: &Store, id: &str, principal_id: &str, created_at_us: i64) {
    store
        .write(
            Change::CreateSession(NewSession {
                id: id.into(),
                token_hash: format!("session-{id}").into_bytes(),
                principal_id: principal_id.into(),
                strength: portcullis_core::session::AuthStrength::Mfa,
                scope: "full".into(),
                created_at_us,
                strong_auth_at_us: Some(created_at_us),
                client_ip: "192.0.2.1".into(),
                user_agent: "test".into(),
                ends_at_us: None,
            }),
            vec![],
        )
        .await
        .expect("session");
}

async fn signin_address(store: &Store, principal_id: &str, address: &str, at_us: i64) {
    store
        .write(
            Change::RecordSignIn {
                principal_id: principal_id.into(),
                at_us,
                address: Some(address.into()),
            },
            vec![],
        )
        .await
        .expect("sign-in");
}
