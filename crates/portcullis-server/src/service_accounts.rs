//! Service-account credentials and consent.
//!
//! Invariants: a client secret is shown once and stored as SHA-256; at most two are live so a
//! secret can be rotated without downtime; consent to application permissions is recorded
//! with who gave it and stays after that person's own role ends (no standing admin role is
//! needed for a daemon). Every change is audited (and alert-worthy: credentials of a
//! non-human identity changed).

use axum::http::StatusCode;
use portcullis_core::api::{
    ClientSecretIssued, ClientSecretView, ConsentRequest, ConsentView, ServiceAccountDetail,
};
use portcullis_core::error::ErrorCode;
use portcullis_core::principal::PrincipalKind;
use portcullis_core::roles::Permission;
use portcullis_store::{Change, StoreError};
use time::OffsetDateTime;

use crate::accounts::{get_principal, invalid, new_id, sa_view};
use crate::api::AppState;
use crate::auth::{Caller, event};
use crate::error::ApiError;
use crate::time_us::{rfc3339, us};

pub async fn detail(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<ServiceAccountDetail, ApiError> {
    caller.require("service_accounts.read")?;
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
    Ok(ServiceAccountDetail {
        client_id: p.name.clone(),
        account: sa_view(&p),
        secrets,
        consents,
    })
}

pub async fn add_secret(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<ClientSecretIssued, ApiError> {
    caller.require("service_accounts.credentials")?;
    let p = get_principal(state, name, PrincipalKind::ServiceAccount).await?;
    let (secret, hash) = crate::tokens::new_client_secret();
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
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::Conflict,
                "two client secrets are live already; remove the older one first (rotation: add, switch, remove)",
            ),
            other => other.into(),
        })?;
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
    caller.require("service_accounts.credentials")?;
    let p = get_principal(state, name, PrincipalKind::ServiceAccount).await?;
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
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::not_found("no such live client secret"),
            other => other.into(),
        })?;
    Ok(())
}

pub async fn consent(
    state: &AppState,
    caller: &Caller,
    name: &str,
    req: ConsentRequest,
) -> Result<ServiceAccountDetail, ApiError> {
    caller.require("service_accounts.consent")?;
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
