//! Registered OpenID Connect clients: register, list, show, delete, and their secrets.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use portcullis_core::api::{ClientCreated, ClientSecretIssued, ClientView, CreateClientRequest};

use crate::http::error::{ApiError, ApiJson, ErrorBody};
use crate::services::caller::Caller;
use crate::services::clients as svc;
use crate::state::AppState;

/// Register a client. A confidential client's first secret is in the answer, once.
#[utoipa::path(post, path = "/api/v1/clients", tag = "oauth2", security(("bearer" = [])), request_body = CreateClientRequest,
    responses((status = 201, body = ClientCreated), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_client(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateClientRequest>,
) -> Result<(StatusCode, Json<ClientCreated>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(svc::create(&state, &caller, req).await?),
    ))
}

/// List registered clients.
#[utoipa::path(get, path = "/api/v1/clients", tag = "oauth2", security(("bearer" = [])),
    responses((status = 200, body = Vec<ClientView>), (status = 403, body = ErrorBody)))]
pub async fn list_clients(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ClientView>>, ApiError> {
    Ok(Json(svc::list(&state, &caller).await?))
}

/// One client, by client id or name.
#[utoipa::path(get, path = "/api/v1/clients/{id}", tag = "oauth2", security(("bearer" = [])),
    params(("id" = String, Path, description = "client id or name")),
    responses((status = 200, body = ClientView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_client(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ClientView>, ApiError> {
    Ok(Json(svc::show(&state, &caller, &id).await?))
}

/// Delete a client: its refresh tokens and consents end with it.
#[utoipa::path(delete, path = "/api/v1/clients/{id}", tag = "oauth2", security(("bearer" = [])),
    params(("id" = String, Path, description = "client id or name")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_client(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    svc::delete(&state, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add a secret to a confidential client (shown once; at most two live).
#[utoipa::path(post, path = "/api/v1/clients/{id}/secrets", tag = "oauth2", security(("bearer" = [])),
    params(("id" = String, Path, description = "client id or name")),
    responses((status = 201, body = ClientSecretIssued), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add_client_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<ClientSecretIssued>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(svc::add_secret(&state, &caller, &id).await?),
    ))
}

/// Remove a client secret.
#[utoipa::path(delete, path = "/api/v1/clients/{id}/secrets/{secret_id}", tag = "oauth2", security(("bearer" = [])),
    params(("id" = String, Path, description = "client id or name"), ("secret_id" = String, Path, description = "secret id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove_client_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, secret_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    svc::remove_secret(&state, &caller, &id, &secret_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
