//! Service-account credential and consent routes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use portcullis_core::api::{
    AddClientKeyRequest, ClientKeyView, ClientSecretIssued, ConsentRequest, NetworksRequest,
    ServiceAccountDetail,
};

use crate::http::error::{ApiError, ApiJson, ErrorBody};
use crate::services::caller::Caller;
use crate::services::service_accounts as svc;
use crate::state::AppState;

/// A service account with its live client secrets (ids only), public keys and consents.
#[utoipa::path(get, path = "/api/v1/service-accounts/{name}", tag = "accounts", security(("bearer" = [])),
    params(("name" = String, Path, description = "service account name (its client_id)")),
    responses((status = 200, body = ServiceAccountDetail), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<ServiceAccountDetail>, ApiError> {
    Ok(Json(svc::detail(&state, &caller, &name).await?))
}

/// Add a client secret (shown once; at most two live).
#[utoipa::path(post, path = "/api/v1/service-accounts/{name}/secrets", tag = "accounts", security(("bearer" = [])),
    params(("name" = String, Path, description = "service account name")),
    responses((status = 201, body = ClientSecretIssued), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<ClientSecretIssued>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(svc::add_secret(&state, &caller, &name).await?),
    ))
}

/// Remove a client secret.
#[utoipa::path(delete, path = "/api/v1/service-accounts/{name}/secrets/{id}", tag = "accounts", security(("bearer" = [])),
    params(("name" = String, Path, description = "service account name"), ("id" = String, Path, description = "secret id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    svc::remove_secret(&state, &caller, &name, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Restrict the networks the account may authenticate from (CIDRs; an empty list: any).
#[utoipa::path(put, path = "/api/v1/service-accounts/{name}/networks", tag = "accounts", security(("bearer" = [])), request_body = NetworksRequest,
    params(("name" = String, Path, description = "service account name")),
    responses((status = 200, body = ServiceAccountDetail), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_networks(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<NetworksRequest>,
) -> Result<Json<ServiceAccountDetail>, ApiError> {
    Ok(Json(svc::set_networks(&state, &caller, &name, req).await?))
}

/// Consent to application permissions for a service account (recorded with who consented).
#[utoipa::path(post, path = "/api/v1/service-accounts/{name}/consent", tag = "accounts", security(("bearer" = [])), request_body = ConsentRequest,
    params(("name" = String, Path, description = "service account name")),
    responses((status = 200, body = ServiceAccountDetail), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn consent(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<ConsentRequest>,
) -> Result<Json<ServiceAccountDetail>, ApiError> {
    Ok(Json(svc::consent(&state, &caller, &name, req).await?))
}

/// Register a public key for `private_key_jwt` (PEM SubjectPublicKeyInfo, Ed25519 or P-256;
/// at most five live; a key id is never reused on an account).
#[utoipa::path(post, path = "/api/v1/service-accounts/{name}/keys", tag = "accounts", security(("bearer" = [])), request_body = AddClientKeyRequest,
    params(("name" = String, Path, description = "service account name")),
    responses((status = 201, body = ClientKeyView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<AddClientKeyRequest>,
) -> Result<(StatusCode, Json<ClientKeyView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(svc::add_key(&state, &caller, &name, req).await?),
    ))
}

/// Remove a public key: assertions signed with it are refused at once.
#[utoipa::path(delete, path = "/api/v1/service-accounts/{name}/keys/{kid}", tag = "accounts", security(("bearer" = [])),
    params(("name" = String, Path, description = "service account name"), ("kid" = String, Path, description = "key id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, kid)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    svc::remove_key(&state, &caller, &name, &kid).await?;
    Ok(StatusCode::NO_CONTENT)
}
