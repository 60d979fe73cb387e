//! Service-account credentials and consent.
//!
//! Invariants: a client secret is shown once and stored as SHA-256; at most two are live so a
//! secret can be rotated without downtime; a public key (for `private_key_jwt`) is an Ed25519
//! or P-256 SubjectPublicKeyInfo checked before it is stored, at most five are live, and a
//! removed key's id is never given to another key; consent to application permissions is recorded
//! with who gave it and stays after that person's own role ends (no standing admin role is
//! needed for a daemon); an optional CIDR allow-list limits where the account may authenticate
//! from. Every change is audited (and alert-worthy: credentials of a non-human identity
//! changed). The credentials and networks of a privileged service account (one that holds or
//! is eligible for a privileged role) are managed only by the top tier (privilege model rule 6).

use crate::services::support::ConflictExt;
use portcullis_core::api::{
    AddClientKeyRequest, ClientKeyView, ClientSecretIssued, ClientSecretView, ConsentRequest,
    ConsentView, NetworksRequest, ServiceAccountDetail,
};
use portcullis_core::client_key::{ClientPublicKey, KeyId};
use portcullis_core::error::ErrorCode;
use portcullis_core::network::NetworkList;
use portcullis_core::principal::PrincipalKind;
use portcullis_core::roles::Permission;
use portcullis_core::roles::perm;
use portcullis_store::{Change, StoreError};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::services::accounts::get_principal;
use crate::services::caller::{Caller, event};
use crate::services::support::{conflict_to_exists, invalid, new_id};
use crate::state::AppState;
use crate::time_us::{rfc3339, us};
use portcullis_core::api::{CreateServiceAccountRequest, ServiceAccountView};
use portcullis_core::principal::{self, PrincipalName};
use portcullis_store::NewPrincipal;
use portcullis_store::accounts::Principal;

pub async fn detail(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<ServiceAccountDetail, ApiError> {
    caller.require(perm::SERVICE_ACCOUNTS_READ)?;
    let p = get_principal(state, name, PrincipalKind::ServiceAccount).await?;
    let secrets = state
        .store
        .client_secrets_of(&p.id)
        .await?
        .into_iter()
        .map(|s| ClientSecretView {
            id: s.id,
            created_at: rfc3339(s.created_at_us),
            created_by: s.created_by,
        })
        .collect();
    let keys = state
        .store
        .client_keys_of(&p.id)
        .await?
        .into_iter()
        .map(|k| key_view(&k))
        .collect();
    let consents = state
        .store
        .consents_of(&p.id)
        .await?
        .into_iter()
        .map(|c| ConsentView {
            permission: c.permission,
            granted_by: c.granted_by,
            granted_at: rfc3339(c.granted_at_us),
        })
        .collect();
    let allowed_networks = allowed_networks(state, &p.id).await?.to_strings();
    Ok(ServiceAccountDetail {
        client_id: p.name.clone(),
        account: sa_view(&p),
        secrets,
        keys,
        consents,
        allowed_networks,
    })
}

/// The networks a service account may authenticate from (empty: any).
pub async fn allowed_networks(
    state: &AppState,
    principal_id: &str,
) -> Result<NetworkList, ApiError> {
    match state.store.client_networks(principal_id).await? {
        None => Ok(NetworkList::default()),
        Some(json) => {
            let cidrs: Vec<String> = serde_json::from_str(&json).map_err(ApiError::internal)?;
            NetworkList::parse(&cidrs).map_err(ApiError::internal)
        }
    }
}

/// Restricts (or, with an empty list, stops restricting) where a service account may
/// authenticate from. Audited and alert-worthy: it changes who can use a credential.
pub async fn set_networks(
    state: &AppState,
    caller: &Caller,
    name: &str,
    req: NetworksRequest,
) -> Result<ServiceAccountDetail, ApiError> {
    caller.require(perm::SERVICE_ACCOUNTS_CREDENTIALS)?;
    let p = get_principal(state, name, PrincipalKind::ServiceAccount).await?;
    // A service account that holds or may hold a privileged role is the top tier's (rule 6).
    crate::services::privilege::require_may_manage(state, caller, &p, "manage its credentials")
        .await?;
    let list = NetworkList::parse(&req.cidrs).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let before = allowed_networks(state, &p.id).await?.to_strings();
    let after = list.to_strings();
    let now = OffsetDateTime::now_utc();
    let ev = event(
        caller,
        "service_account.networks_changed",
        format!("service_account:{}", p.name),
    )
    .details(serde_json::json!({ "before": before, "after": after, "alert": true }));
    let cidrs = (!list.is_empty())
        .then(|| serde_json::to_string(&after))
        .transpose()
        .map_err(ApiError::internal)?;
    state
        .store
        .write(
            Change::SetClientNetworks {
                principal_id: p.id.clone(),
                cidrs,
                by: caller.actor(),
                at_us: us(now),
            },
            vec![ev],
        )
        .await?;
    detail(state, caller, name).await
}

fn key_view(k: &portcullis_store::tokens::ClientKey) -> ClientKeyView {
    ClientKeyView {
        key_id: k.key_id.clone(),
        algorithm: k.algorithm.clone(),
        thumbprint: ClientPublicKey::from_spki_der(&k.public_key)
            .map(|key| key.thumbprint())
            .unwrap_or_default(),
        created_at: rfc3339(k.created_at_us),
        created_by: k.created_by.clone(),
    }
}

/// A public key checked and ready to store: the change that adds it and its audit event.
pub fn key_change(
    caller: &Caller,
    principal_id: &str,
    account: &str,
    req: &AddClientKeyRequest,
    at: OffsetDateTime,
) -> Result<(Change, portcullis_core::audit::NewAuditEvent), ApiError> {
    let key = ClientPublicKey::from_pem(&req.public_key)
        .map_err(|e| ApiError::new(ErrorCode::InvalidPublicKey, e.to_string()))?;
    let key_id = match req.key_id.as_deref() {
        Some(k) => KeyId::parse(k).map_err(invalid)?.to_string(),
        None => key.thumbprint(),
    };
    let ev = event(
        caller,
        "service_account.key_added",
        format!("service_account:{account}"),
    )
    .details(serde_json::json!({
        "key_id": key_id, "algorithm": key.algorithm().as_str(),
        "thumbprint": key.thumbprint(), "alert": true,
    }));
    let change = Change::AddClientKey {
        principal_id: principal_id.to_owned(),
        key_id,
        algorithm: key.algorithm().as_str().to_owned(),
        public_key: key.spki_der().to_vec(),
        created_by: caller.actor(),
        at_us: us(at),
    };
    Ok((change, ev))
}

/// What a refused key registration means to the caller.
pub fn key_conflict(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(_) => ApiError::new(
            ErrorCode::Conflict,
            "this key id has been used on this account, or five keys are live already",
        ),
        other => other.into(),
    }
}

pub async fn add_key(
    state: &AppState,
    caller: &Caller,
    name: &str,
    req: AddClientKeyRequest,
) -> Result<ClientKeyView, ApiError> {
    caller.require(perm::SERVICE_ACCOUNTS_CREDENTIALS)?;
    let p = get_principal(state, name, PrincipalKind::ServiceAccount).await?;
    // A service account that holds or may hold a privileged role is the top tier's (rule 6).
    crate::services::privilege::require_may_manage(state, caller, &p, "manage its credentials")
        .await?;
    crate::services::privilege::require_not_its_assigner(state, caller, &p).await?;
    let now = OffsetDateTime::now_utc();
    let (change, ev) = key_change(caller, &p.id, &p.name, &req, now)?;
    let Change::AddClientKey { key_id, .. } = &change else {
        return Err(ApiError::internal("unexpected change"));
    };
    let key_id = key_id.clone();
    state
        .store
        .write(change, vec![ev])
        .await
        .map_err(key_conflict)?;
    let k = state
        .store
        .client_key(&p.id, &key_id)
        .await?
        .ok_or_else(|| ApiError::internal("the key just added is missing"))?;
    Ok(key_view(&k))
}

pub async fn remove_key(
    state: &AppState,
    caller: &Caller,
    name: &str,
    key_id: &str,
) -> Result<(), ApiError> {
    caller.require(perm::SERVICE_ACCOUNTS_CREDENTIALS)?;
    let p = get_principal(state, name, PrincipalKind::ServiceAccount).await?;
    // A service account that holds or may hold a privileged role is the top tier's (rule 6).
    crate::services::privilege::require_may_manage(state, caller, &p, "manage its credentials")
        .await?;
    let now = OffsetDateTime::now_utc();
    let ev = event(
        caller,
        "service_account.key_removed",
        format!("service_account:{}", p.name),
    )
    .details(serde_json::json!({ "key_id": key_id, "alert": true }));
    state
        .store
        .write(
            Change::RemoveClientKey {
                principal_id: p.id.clone(),
                key_id: key_id.to_owned(),
                at_us: us(now),
            },
            vec![ev],
        )
        .await
        .on_conflict(|| ApiError::not_found("no such live public key"))?;
    Ok(())
}

pub async fn add_secret(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<ClientSecretIssued, ApiError> {
    caller.require(perm::SERVICE_ACCOUNTS_CREDENTIALS)?;
    let p = get_principal(state, name, PrincipalKind::ServiceAccount).await?;
    // A service account that holds or may hold a privileged role is the top tier's (rule 6).
    crate::services::privilege::require_may_manage(state, caller, &p, "manage its credentials")
        .await?;
    crate::services::privilege::require_not_its_assigner(state, caller, &p).await?;
    let (secret, hash) = crate::services::tokens::new_client_secret();
    let id = new_id("cs");
    let now = OffsetDateTime::now_utc();
    let ev = event(
        caller,
        "service_account.secret_added",
        format!("service_account:{}", p.name),
    )
    .details(serde_json::json!({ "secret_id": id, "alert": true }));
    state
        .store
        .write(
            Change::AddClientSecret { id: id.clone(), principal_id: p.id.clone(), secret_hash: hash, created_by: caller.actor(), at_us: us(now) },
            vec![ev],
        )
        .await
        .on_conflict(|| ApiError::new(ErrorCode::Conflict,
                "two client secrets are live already; remove the older one first (rotation: add, switch, remove)",
            ))?;
    Ok(ClientSecretIssued {
        id,
        client_id: p.name,
        client_secret: secret,
    })
}

pub async fn remove_secret(
    state: &AppState,
    caller: &Caller,
    name: &str,
    id: &str,
) -> Result<(), ApiError> {
    caller.require(perm::SERVICE_ACCOUNTS_CREDENTIALS)?;
    let p = get_principal(state, name, PrincipalKind::ServiceAccount).await?;
    // A service account that holds or may hold a privileged role is the top tier's (rule 6).
    crate::services::privilege::require_may_manage(state, caller, &p, "manage its credentials")
        .await?;
    let now = OffsetDateTime::now_utc();
    let ev = event(
        caller,
        "service_account.secret_removed",
        format!("service_account:{}", p.name),
    )
    .details(serde_json::json!({ "secret_id": id, "alert": true }));
    state
        .store
        .write(
            Change::RevokeClientSecret {
                id: id.to_owned(),
                principal_id: p.id.clone(),
                at_us: us(now),
            },
            vec![ev],
        )
        .await
        .on_conflict(|| ApiError::not_found("no such live client secret"))?;
    Ok(())
}

pub async fn consent(
    state: &AppState,
    caller: &Caller,
    name: &str,
    req: ConsentRequest,
) -> Result<ServiceAccountDetail, ApiError> {
    caller.require(perm::SERVICE_ACCOUNTS_CONSENT)?;
    let p = get_principal(state, name, PrincipalKind::ServiceAccount).await?;
    if req.permissions.is_empty() || req.permissions.len() > 100 {
        return Err(ApiError::bad_request("give 1 to 100 permissions"));
    }
    let mut perms = Vec::new();
    for s in &req.permissions {
        let perm = Permission::parse(s).map_err(invalid)?;
        if !perms.contains(&perm.as_str().to_owned()) {
            perms.push(perm.as_str().to_owned());
        }
    }
    let now = OffsetDateTime::now_utc();
    let ev = event(
        caller,
        "service_account.consent_granted",
        format!("service_account:{}", p.name),
    )
    .details(serde_json::json!({ "permissions": perms, "alert": true }));
    state
        .store
        .write(
            Change::GrantConsent {
                principal_id: p.id.clone(),
                permissions: perms,
                granted_by: caller.actor(),
                at_us: us(now),
            },
            vec![ev],
        )
        .await?;
    detail(state, caller, name).await
}

/// Creates a service account (no password, no interactive sign-in), with its first public key
/// when one is given.
pub async fn create_service_account(
    state: &AppState,
    caller: &Caller,
    req: CreateServiceAccountRequest,
) -> Result<ServiceAccountView, ApiError> {
    caller.require(perm::SERVICE_ACCOUNTS_CREATE)?;
    let name = PrincipalName::parse("name", &req.name).map_err(invalid)?;
    let display_name = match req.display_name.as_deref() {
        Some(d) => principal::parse_display_name(d).map_err(invalid)?,
        None => name.to_string(),
    };
    let now = OffsetDateTime::now_utc();
    let id = new_id("sa");
    let change = Change::CreatePrincipal(NewPrincipal {
        id: id.clone(),
        name: name.to_string(),
        kind: PrincipalKind::ServiceAccount,
        display_name,
        email: None,
        phone: None,
        guest_organisation: None,
        role_assignable: false,
        emergency: false,
        privileged: false,
        first_admin: false,
        created_at_us: us(now),
    });
    let mut events = vec![event(
        caller,
        "service_account.created",
        format!("service_account:{name}"),
    )];
    // A public key given with the account is registered in the same step: the account never
    // exists half made.
    let change = match &req.public_key {
        Some(pem) => {
            caller.require(perm::SERVICE_ACCOUNTS_CREDENTIALS)?;
            let key_req = portcullis_core::api::AddClientKeyRequest {
                public_key: pem.clone(),
                key_id: req.key_id.clone(),
            };
            let (add_key, ev) = key_change(caller, &id, name.as_str(), &key_req, now)?;
            events.push(ev);
            Change::Many(vec![change, add_key])
        }
        None if req.key_id.is_some() => {
            return Err(ApiError::bad_request("key_id needs public_key"));
        }
        None => change,
    };
    state.store.write(change, events).await.map_err(|e| {
        conflict_to_exists(e, "a user, group or service account with that name exists")
    })?;
    let p = get_principal(state, name.as_str(), PrincipalKind::ServiceAccount).await?;
    Ok(sa_view(&p))
}

pub fn sa_view(p: &Principal) -> ServiceAccountView {
    ServiceAccountView {
        id: p.id.clone(),
        name: p.name.clone(),
        display_name: p.display_name.clone(),
        enabled: p.enabled,
        created_at: rfc3339(p.created_at_us),
    }
}

pub async fn list_service_accounts(
    state: &AppState,
    caller: &Caller,
) -> Result<Vec<ServiceAccountView>, ApiError> {
    caller.require(perm::SERVICE_ACCOUNTS_READ)?;
    Ok(state
        .store
        .principals(PrincipalKind::ServiceAccount.as_str())
        .await?
        .iter()
        .map(sa_view)
        .collect())
}
