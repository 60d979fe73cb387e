//! Registered OpenID Connect clients (relying parties): registration, secrets, deletion, and
//! their authentication at the token endpoint.
//!
//! Invariants:
//! - A client id is a random `pcc_…` value, never a principal's name, so a relying party can
//!   never be confused with a service account or a person.
//! - A client's ID tokens are signed with the algorithm it chose at registration
//!   (`id_token_signed_response_alg`: EdDSA, ES256 or RS256; nothing else is stored).
//! - Redirect URIs are validated at registration ([`portcullis_core::oidc`]) and compared
//!   exactly at use.
//! - A confidential client has one or two live secrets (256-bit random, shown once, stored as
//!   SHA-256); a public client has none and authenticates with nothing but its PKCE verifier.
//! - Deleting a client revokes every refresh token issued to it and forgets consents, in the
//!   same transaction as its audit event.

use portcullis_core::api::CreateClientRequest;
use portcullis_core::api::{ClientCreated, ClientSecretIssued, ClientSecretView, ClientView};
use portcullis_core::error::ErrorCode;
use portcullis_core::oidc::{ClientKind, validate_redirect_uris};
use portcullis_core::roles::perm;
use portcullis_store::crypto::token_hash;
use portcullis_store::oidc::OAuthClient;
use portcullis_store::{Change, NewOAuthClient, StoreError};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::services::caller::{Caller, event};
use crate::services::keys::SigningAlg;
use crate::services::support::{invalid, new_id};
use crate::state::AppState;
use crate::time_us::{rfc3339, us};

/// The client with this id or name, or 404.
pub async fn find(state: &AppState, id_or_name: &str) -> Result<OAuthClient, ApiError> {
    if let Some(c) = state.store.oauth_client(id_or_name).await? {
        return Ok(c);
    }
    state
        .store
        .oauth_client_by_name(id_or_name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no client {id_or_name}")))
}

async fn view(state: &AppState, c: OAuthClient) -> Result<ClientView, ApiError> {
    let secrets = state
        .store
        .oauth_client_secrets(&c.client_id)
        .await?
        .into_iter()
        .map(|s| ClientSecretView {
            id: s.id,
            created_at: rfc3339(s.created_at_us),
            created_by: s.created_by,
        })
        .collect();
    Ok(ClientView {
        client_id: c.client_id,
        name: c.name,
        kind: c.kind,
        redirect_uris: c.redirect_uris,
        created_by: c.created_by,
        created_at: rfc3339(c.created_at_us),
        secrets,
        id_token_signed_response_alg: id_token_alg(&c.id_token_alg).as_str().to_owned(),
    })
}

/// The algorithm a client's ID tokens are signed with (stored `None`: EdDSA).
pub fn id_token_alg(stored: &Option<String>) -> SigningAlg {
    stored
        .as_deref()
        .and_then(SigningAlg::parse)
        .unwrap_or(SigningAlg::EdDSA)
}

/// Registers a client; a confidential one gets its first secret, shown once.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    req: CreateClientRequest,
) -> Result<ClientCreated, ApiError> {
    caller.require(perm::CLIENTS_MANAGE)?;
    let name = portcullis_core::principal::parse_display_name(&req.name).map_err(invalid)?;
    validate_redirect_uris(&req.redirect_uris).map_err(invalid)?;
    let alg = match req.id_token_signed_response_alg.as_deref() {
        None => SigningAlg::EdDSA,
        Some(a) => SigningAlg::parse(a).ok_or_else(|| {
            ApiError::bad_request("id_token_signed_response_alg must be EdDSA, ES256 or RS256")
        })?,
    };
    let kind = if req.public {
        ClientKind::Public
    } else {
        ClientKind::Confidential
    };
    let now = OffsetDateTime::now_utc();
    let client_id = new_id("pcc");
    let uris = serde_json::to_string(&req.redirect_uris).map_err(ApiError::internal)?;
    let mut changes = vec![Change::CreateOAuthClient(NewOAuthClient {
        client_id: client_id.clone(),
        name: name.clone(),
        kind: kind.as_str().to_owned(),
        redirect_uris: uris,
        created_by: caller.actor(),
        created_at_us: us(now),
        id_token_alg: (alg != SigningAlg::EdDSA).then(|| alg.as_str().to_owned()),
    })];
    let mut secret = None;
    if kind == ClientKind::Confidential {
        let (value, hash) = crate::services::tokens::new_client_secret();
        changes.push(Change::AddOAuthClientSecret {
            id: new_id("cs"),
            client_id: client_id.clone(),
            secret_hash: hash,
            created_by: caller.actor(),
            at_us: us(now),
        });
        secret = Some(value);
    }
    let ev =
        event(caller, "client.created", format!("client:{client_id}")).details(serde_json::json!({
            "name": name, "kind": kind.as_str(), "redirect_uris": req.redirect_uris,
            "id_token_signed_response_alg": alg.as_str(),
        }));
    match state.store.write(Change::Many(changes), vec![ev]).await {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::new(
                ErrorCode::AlreadyExists,
                format!("a client named {name} exists"),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let c = find(state, &client_id).await?;
    Ok(ClientCreated {
        client: view(state, c).await?,
        client_secret: secret,
    })
}

pub async fn list(state: &AppState, caller: &Caller) -> Result<Vec<ClientView>, ApiError> {
    caller.require(perm::CLIENTS_READ)?;
    let mut out = Vec::new();
    for c in state.store.oauth_clients().await? {
        out.push(view(state, c).await?);
    }
    Ok(out)
}

pub async fn show(state: &AppState, caller: &Caller, id: &str) -> Result<ClientView, ApiError> {
    caller.require(perm::CLIENTS_READ)?;
    let c = find(state, id).await?;
    view(state, c).await
}

/// Deletes a client: its refresh tokens stop working at once; its access tokens are refused
/// by userinfo and introspection from now on (their client is gone).
pub async fn delete(state: &AppState, caller: &Caller, id: &str) -> Result<(), ApiError> {
    caller.require(perm::CLIENTS_MANAGE)?;
    let c = find(state, id).await?;
    let now = OffsetDateTime::now_utc();
    let ev = event(caller, "client.deleted", format!("client:{}", c.client_id))
        .details(serde_json::json!({ "name": c.name }));
    match state
        .store
        .write(
            Change::DeleteOAuthClient {
                client_id: c.client_id.clone(),
                at_us: us(now),
            },
            vec![ev],
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict(_)) => Err(ApiError::not_found(format!("no client {id}"))),
        Err(e) => Err(e.into()),
    }
}

/// Adds a secret to a confidential client (at most two live, so rotation has no downtime).
pub async fn add_secret(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<ClientSecretIssued, ApiError> {
    caller.require(perm::CLIENTS_MANAGE)?;
    let c = find(state, id).await?;
    if c.kind != ClientKind::Confidential.as_str() {
        return Err(ApiError::bad_request(
            "a public client has no secrets; it proves itself with PKCE",
        ));
    }
    let now = OffsetDateTime::now_utc();
    let (value, hash) = crate::services::tokens::new_client_secret();
    let secret_id = new_id("cs");
    let ev = event(
        caller,
        "client.secret_added",
        format!("client:{}", c.client_id),
    )
    .details(serde_json::json!({ "secret_id": secret_id }));
    let change = Change::AddOAuthClientSecret {
        id: secret_id.clone(),
        client_id: c.client_id.clone(),
        secret_hash: hash,
        created_by: caller.actor(),
        at_us: us(now),
    };
    match state.store.write(change, vec![ev]).await {
        Ok(_) => Ok(ClientSecretIssued {
            id: secret_id,
            client_id: c.client_id,
            client_secret: value,
        }),
        Err(StoreError::Conflict(_)) => Err(ApiError::new(
            ErrorCode::Conflict,
            "two secrets are live already; remove the old one first",
        )),
        Err(e) => Err(e.into()),
    }
}

pub async fn remove_secret(
    state: &AppState,
    caller: &Caller,
    id: &str,
    secret_id: &str,
) -> Result<(), ApiError> {
    caller.require(perm::CLIENTS_MANAGE)?;
    let c = find(state, id).await?;
    let now = OffsetDateTime::now_utc();
    let ev = event(
        caller,
        "client.secret_removed",
        format!("client:{}", c.client_id),
    )
    .details(serde_json::json!({ "secret_id": secret_id }));
    let change = Change::RevokeOAuthClientSecret {
        id: secret_id.to_owned(),
        client_id: c.client_id.clone(),
        at_us: us(now),
    };
    match state.store.write(change, vec![ev]).await {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict(_)) => Err(ApiError::not_found(format!(
            "no live secret {secret_id} on this client"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Why a registered client failed to authenticate (for the audit event only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFailure {
    UnknownClient,
    WrongSecret,
    /// A confidential client presented no secret.
    SecretRequired,
    /// A public client presented a secret (it has none).
    PublicWithSecret,
}

impl ClientFailure {
    pub fn reason(self) -> &'static str {
        match self {
            Self::UnknownClient => "unknown_client",
            Self::WrongSecret => "wrong_secret",
            Self::SecretRequired => "secret_required",
            Self::PublicWithSecret => "public_client_with_secret",
        }
    }
}

/// Authenticates a registered client: a confidential one by a live secret, a public one by
/// presenting none.
pub async fn authenticate(
    state: &AppState,
    client_id: &str,
    secret: Option<&str>,
) -> Result<OAuthClient, ClientFailure> {
    let c = state
        .store
        .oauth_client(client_id)
        .await
        .ok()
        .flatten()
        .ok_or(ClientFailure::UnknownClient)?;
    match (ClientKind::parse(&c.kind), secret) {
        (Some(ClientKind::Public), None) => Ok(c),
        (Some(ClientKind::Public), Some(_)) => Err(ClientFailure::PublicWithSecret),
        (Some(ClientKind::Confidential), None) => Err(ClientFailure::SecretRequired),
        (Some(ClientKind::Confidential), Some(s)) => {
            // Looked up by the SHA-256 of a 256-bit random value: its timing tells nothing.
            let owner = state
                .store
                .oauth_client_by_secret_hash(&token_hash(s))
                .await
                .ok()
                .flatten();
            if owner.as_deref() == Some(c.client_id.as_str()) {
                Ok(c)
            } else {
                Err(ClientFailure::WrongSecret)
            }
        }
        (None, _) => Err(ClientFailure::UnknownClient),
    }
}
