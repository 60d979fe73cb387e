//! SSH certificates of `ssh-ca` targets: sign, the CA's public keys, the KRL, rotation.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use portcullis_core::api::{RotateSshCaRequest, SignSshRequest, SshCaView, SshCertificateView};

use crate::http::error::{ApiError, ApiJson, ErrorBody};
use crate::services::caller::Caller;
use crate::services::targets::ssh as svc;
use crate::state::AppState;

/// Certify your public key for the principals of your active grants at the target. The
/// certificate ends with the earliest of those grants (and the target's maximum) and is
/// revoked (listed in the KRL) as soon as any of them ends.
#[utoipa::path(post, path = "/api/v1/targets/{name}/ssh/sign", tag = "targets", security(("bearer" = [])),
    params(("name" = String, Path, description = "ssh-ca target name")), request_body = SignSshRequest,
    responses((status = 200, body = SshCertificateView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn sign(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<SignSshRequest>,
) -> Result<Json<SshCertificateView>, ApiError> {
    Ok(Json(svc::sign(&state, &caller, &name, req).await?))
}

/// The CA public keys servers trust (`TrustedUserCAKeys`), one OpenSSH line each. Public.
#[utoipa::path(get, path = "/api/v1/targets/{name}/ssh/ca.pub", tag = "targets",
    params(("name" = String, Path, description = "ssh-ca target name")),
    responses((status = 200, content_type = "text/plain", body = String), (status = 404, body = ErrorBody)))]
pub async fn ca_pub(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let body = svc::ca_pub(&state, &name).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    ))
}

/// The OpenSSH key revocation list (`RevokedKeys`, binary, as `ssh-keygen -k` writes it):
/// the serials of revoked certificates not yet expired. Public.
#[utoipa::path(get, path = "/api/v1/targets/{name}/ssh/krl", tag = "targets",
    params(("name" = String, Path, description = "ssh-ca target name")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 404, body = ErrorBody)))]
pub async fn krl(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let body = svc::krl(&state, &name).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    ))
}

/// Rotate the CA: a new key signs from now on; the old one stays trusted for the overlap.
#[utoipa::path(post, path = "/api/v1/targets/{name}/ssh/rotate", tag = "targets", security(("bearer" = [])),
    params(("name" = String, Path, description = "ssh-ca target name")), request_body = RotateSshCaRequest,
    responses((status = 200, body = SshCaView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<RotateSshCaRequest>,
) -> Result<Json<SshCaView>, ApiError> {
    Ok(Json(svc::rotate(&state, &caller, &name, req).await?))
}
