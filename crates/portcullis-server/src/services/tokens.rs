//! The token service: service-account client authentication, access tokens (EdDSA JWTs),
//! verification for introspection, and revocation.
//!
//! Invariants:
//! - Service accounts authenticate only with client credentials: a client secret (a 256-bit
//!   random value shown once and stored as SHA-256; at most two are live, rotation without
//!   downtime) or a client assertion signed with a registered key (`private_key_jwt`, see
//!   [`crate::services::client_assertion`]). Every attempt, success or failure, is an audit event; failures are throttled
//!   per client and per IP like sign-ins.
//! - An access token carries the roles in effect when it was issued, and its `exp` is never
//!   later than the earliest end among them (invariant 3).
//! - Verification (in [`crate::services::keys`]) accepts only `EdDSA` with a `kid` of the current key
//!   set. Revoked `jti`s and disabled subjects are inactive.
//! - An access token's `aud` is the client it was issued to; introspection answers `active`
//!   only to that client, or to a service account holding `tokens.introspect`.

use std::sync::Arc;

use portcullis_core::audit::{NewAuditEvent, Outcome};
use portcullis_core::principal::PrincipalKind;
use portcullis_core::token::{AccessClaims, RoleClaim, access_token_expiry};
use portcullis_store::Store;
use portcullis_store::accounts::Principal;
use portcullis_store::crypto::token_hash;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::time_us::from_us;

pub use crate::services::keys::{SignerError, TokenSigner};

/// A new client secret: the value (shown once) and the hash stored.
pub fn new_client_secret() -> (String, Vec<u8>) {
    let value = format!("pcs_{}", portcullis_store::crypto::random_token().as_str());
    let hash = token_hash(&value);
    (value, hash)
}

/// A token id that does not reveal anything.
fn new_jti() -> String {
    let t = portcullis_store::crypto::random_token();
    hex::encode(&Sha256::digest(t.as_bytes())[..16])
}

/// Why client authentication failed, for the audit event (never told to the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthFailure {
    UnknownClient,
    WrongSecret,
    NotAServiceAccount,
    Disabled,
    /// Right credentials from a network outside the account's allow-list.
    NetworkNotAllowed,
    /// A `private_key_jwt` client assertion was refused.
    Assertion(portcullis_core::client_key::AssertionFailure),
}

impl ClientAuthFailure {
    pub fn reason(self) -> &'static str {
        match self {
            Self::UnknownClient => "unknown_client",
            Self::WrongSecret => "wrong_secret",
            Self::NotAServiceAccount => "not_a_service_account",
            Self::Disabled => "client_disabled",
            Self::NetworkNotAllowed => "network_not_allowed",
            Self::Assertion(f) => f.reason(),
        }
    }
}

/// Authenticates a service account by `client_id` (its name) and a client secret.
pub async fn authenticate_client(
    store: &Store,
    client_id: &str,
    secret: &str,
) -> Result<Principal, ClientAuthFailure> {
    let p = store
        .principal_by_name(client_id)
        .await
        .ok()
        .flatten()
        .ok_or(ClientAuthFailure::UnknownClient)?;
    if p.kind != PrincipalKind::ServiceAccount {
        return Err(ClientAuthFailure::NotAServiceAccount);
    }
    // The lookup is by the SHA-256 of a 256-bit random value: its timing tells nothing.
    let found = store
        .client_secret_by_hash(&token_hash(secret))
        .await
        .ok()
        .flatten();
    match found {
        Some((_, owner)) if owner == p.id => {}
        _ => return Err(ClientAuthFailure::WrongSecret),
    }
    if !p.enabled {
        return Err(ClientAuthFailure::Disabled);
    }
    Ok(p)
}

/// An access token for a service account: its roles now, its consented permissions.
pub async fn issue_for_service_account(
    state: &crate::state::AppState,
    p: &Principal,
    now: OffsetDateTime,
) -> Result<(String, AccessClaims), crate::error::ApiError> {
    let permissions = state
        .caches
        .consents
        .get_or_load(&p.id, async {
            let consents = state.store.consents_of(&p.id).await?;
            Ok::<_, portcullis_store::StoreError>(std::sync::Arc::new(
                consents.into_iter().map(|c| c.permission).collect(),
            ))
        })
        .await?
        .as_ref()
        .clone();
    issue(
        state,
        p,
        Issue {
            auth_time: None,
            client_id: p.name.clone(),
            permissions,
            amr: vec![],
            acr: "client_credentials".into(),
            scope: None,
            alg: crate::state::signer::SigningAlg::EdDSA,
        },
        now,
    )
    .await
}

/// What an access token says beyond the subject's roles.
pub struct Issue {
    /// Unix seconds of the person's last strong authentication, for step-up checks.
    pub auth_time: Option<i64>,
    pub client_id: String,
    pub permissions: Vec<String>,
    pub amr: Vec<String>,
    pub acr: String,
    /// OAuth scopes granted (OpenID Connect clients).
    pub scope: Option<String>,
    /// The algorithm it is signed with: EdDSA, or the one a relying party registered
    /// (`id_token_signed_response_alg` applies to its access tokens too).
    pub alg: crate::state::signer::SigningAlg,
}

/// An access token for `p` carrying its roles now; `exp` never past the earliest end among
/// them (invariant 3).
pub async fn issue(
    state: &crate::state::AppState,
    p: &Principal,
    what: Issue,
    now: OffsetDateTime,
) -> Result<(String, AccessClaims), crate::error::ApiError> {
    let (grants, _) = crate::services::grants::grant_rows(state, &p.id, now).await?;
    let signer: &Arc<TokenSigner> = &state.tokens;
    let exp = access_token_expiry(
        now,
        signer.lifetime,
        grants.iter().map(|g| g.ends_at_us.map(from_us)),
    );
    let claims = AccessClaims {
        iss: signer.issuer.clone(),
        sub: p.id.clone(),
        // Each client is its own audience (privilege model rule 8): the CLI's tokens say
        // `portcullis-cli`, a service account's its client id, a relying party's its client id.
        aud: what.client_id.clone(),
        iat: now.unix_timestamp(),
        nbf: now.unix_timestamp(),
        exp: exp.unix_timestamp(),
        jti: new_jti(),
        client_id: what.client_id,
        roles: grants
            .into_iter()
            .map(|g| RoleClaim {
                role: g.role,
                scope: g.scope,
                exp: g.ends_at_us.map(|e| e.div_euclid(1_000_000)),
            })
            .collect(),
        permissions: what.permissions,
        amr: what.amr,
        acr: what.acr,
        auth_time: what.auth_time,
        scope: what.scope,
    };
    let alg = what.alg;
    let token = signer
        .sign(&claims, alg)
        .map_err(crate::error::ApiError::internal)?;
    Ok((token, claims))
}

/// The audit event of a client-credentials attempt.
pub fn client_event(
    client_id: &str,
    outcome: Outcome,
    reason: &str,
    ip: &str,
    extra: serde_json::Value,
) -> NewAuditEvent {
    let mut details = serde_json::json!({ "reason": reason, "client_ip": ip });
    if let (Some(d), Some(e)) = (details.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            d.insert(k.clone(), v.clone());
        }
    }
    NewAuditEvent::new(
        format!("service_account:{client_id}"),
        "token.client_credentials",
        format!("service_account:{client_id}"),
    )
    .outcome(outcome)
    .details(details)
}

/// Whether the token `jti` was revoked (through the revoked-tokens cache).
pub async fn revoked(
    state: &crate::state::AppState,
    jti: &str,
) -> Result<bool, portcullis_store::StoreError> {
    state
        .caches
        .revoked
        .get_or_load(&jti.to_owned(), state.store.token_revoked(jti))
        .await
}

/// The principal with this id, for checks on every use of its tokens (through the principals
/// cache: disabling it moves the store's epoch).
pub async fn principal(
    state: &crate::state::AppState,
    id: &str,
) -> Result<Option<Principal>, portcullis_store::StoreError> {
    state
        .caches
        .principals
        .get_or_load(&id.to_owned(), state.store.principal_by_id(id))
        .await
}

/// Whether an access token issued at `iat` (seconds) to `p` is cut off by a containment: every
/// token issued up to the containment's second is refused, even once the account is released.
fn cut_off(p: &Principal, iat: i64) -> bool {
    p.tokens_valid_after_us
        .is_some_and(|cut| iat.saturating_mul(1_000_000) <= cut)
}

/// The subject of a verified access token while the token is still good: not revoked (by
/// `jti`), its principal enabled, and not cut off by a containment. Every place that accepts
/// an access token (the API, introspection, userinfo) asks this one question.
pub async fn live_subject(
    state: &crate::state::AppState,
    claims: &AccessClaims,
) -> Result<Option<Principal>, portcullis_store::StoreError> {
    if revoked(state, &claims.jti).await? {
        return Ok(None);
    }
    Ok(principal(state, &claims.sub)
        .await?
        .filter(|p| p.enabled && !cut_off(p, claims.iat)))
}

/// The registered OpenID Connect client `client_id`, if it exists (through its cache).
pub async fn oauth_client(
    state: &crate::state::AppState,
    client_id: &str,
) -> Result<Option<portcullis_store::oidc::OAuthClient>, portcullis_store::StoreError> {
    state
        .caches
        .oauth_clients
        .get_or_load(&client_id.to_owned(), state.store.oauth_client(client_id))
        .await
}
