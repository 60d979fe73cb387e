//! The caller's own account: who am I, second factors, password, sessions.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use portcullis_core::api::{
    FactorView, PasswordChangeRequest, ReauthRequest, Reauthenticated, SessionView,
    TotpConfirmRequest, TotpEnrolRequest, TotpEnrolment, WebauthnChallenge, WebauthnFinishRequest,
    WebauthnRegisterRequest, WhoAmI,
};

use crate::http::error::{ApiError, ApiJson, ErrorBody};
use crate::services::caller::{Caller, ClientInfo};
use crate::services::signin as svc;
use crate::state::AppState;

/// Who am I: account, session strength, roles held, warnings.
#[utoipa::path(get, path = "/api/v1/me", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)))]
pub async fn whoami(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<WhoAmI>, ApiError> {
    Ok(Json(svc::whoami(&state, &caller).await?))
}

/// My second factors.
#[utoipa::path(get, path = "/api/v1/me/mfa", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = Vec<FactorView>), (status = 401, body = ErrorBody)))]
pub async fn list_factors(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<FactorView>>, ApiError> {
    Ok(Json(svc::list_factors(&state, &caller).await?))
}

/// Start enrolling a TOTP authenticator (works in a registration-only session).
#[utoipa::path(post, path = "/api/v1/me/mfa/totp", tag = "me", security(("bearer" = [])), request_body = TotpEnrolRequest,
    responses((status = 201, body = TotpEnrolment), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn enrol_totp(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<TotpEnrolRequest>,
) -> Result<(StatusCode, Json<TotpEnrolment>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(svc::enrol_totp(&state, &caller, req).await?),
    ))
}

/// Confirm a TOTP enrolment with a current code.
#[utoipa::path(post, path = "/api/v1/me/mfa/totp/{id}/confirm", tag = "me", security(("bearer" = [])), request_body = TotpConfirmRequest,
    params(("id" = String, Path, description = "factor id")),
    responses((status = 200, body = FactorView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "the factor is already confirmed")))]
pub async fn confirm_totp(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<TotpConfirmRequest>,
) -> Result<Json<FactorView>, ApiError> {
    Ok(Json(
        svc::confirm_totp(&state, &caller, &id, &req.code).await?,
    ))
}

/// Start registering a passkey or security key (user verification required; works in a
/// registration-only session). Answers the options for `navigator.credentials.create()`.
#[utoipa::path(post, path = "/api/v1/me/mfa/webauthn", tag = "me", security(("bearer" = [])), request_body = WebauthnRegisterRequest,
    responses((status = 200, body = WebauthnChallenge), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn webauthn_register(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<WebauthnRegisterRequest>,
) -> Result<Json<WebauthnChallenge>, ApiError> {
    Ok(Json(
        crate::services::webauthn::start_registration(&state, &caller, req).await?,
    ))
}

/// Finish registering a passkey or security key with the authenticator's attestation.
#[utoipa::path(post, path = "/api/v1/me/mfa/webauthn/finish", tag = "me", security(("bearer" = [])), request_body = WebauthnFinishRequest,
    responses((status = 201, body = FactorView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn webauthn_register_finish(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<WebauthnFinishRequest>,
) -> Result<(StatusCode, Json<FactorView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(crate::services::webauthn::finish_registration(&state, &caller, req).await?),
    ))
}

/// Remove a second factor (never the last one of an account that needs MFA).
#[utoipa::path(delete, path = "/api/v1/me/mfa/{id}", tag = "me", security(("bearer" = [])),
    params(("id" = String, Path, description = "factor id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove_factor(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    svc::remove_factor(&state, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change my password (current password and a fresh TOTP code required).
#[utoipa::path(post, path = "/api/v1/me/password", tag = "me", security(("bearer" = [])), request_body = PasswordChangeRequest,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    ApiJson(req): ApiJson<PasswordChangeRequest>,
) -> Result<StatusCode, ApiError> {
    svc::change_password(&state, &caller, &client, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Re-authenticate (a fresh proof in this session): password and TOTP code, or a WebAuthn
/// answer to a challenge from `POST /api/v1/me/reauth/webauthn`. Credential changes need one
/// within five minutes; it also steps the session up to the strength proven.
#[utoipa::path(post, path = "/api/v1/me/reauth", tag = "me", security(("bearer" = [])), request_body = ReauthRequest,
    responses((status = 200, body = Reauthenticated), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn reauth(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    ApiJson(req): ApiJson<ReauthRequest>,
) -> Result<Json<Reauthenticated>, ApiError> {
    Ok(Json(
        svc::reauthenticate(&state, &caller, &client, req).await?,
    ))
}

/// A WebAuthn challenge for re-authentication with one of my passkeys or security keys.
#[utoipa::path(post, path = "/api/v1/me/reauth/webauthn", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = WebauthnChallenge), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn reauth_webauthn(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<WebauthnChallenge>, ApiError> {
    Ok(Json(
        crate::services::webauthn::start_reauth(&state, &caller).await?,
    ))
}

/// My live sessions.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = Vec<SessionView>), (status = 401, body = ErrorBody)))]
pub async fn list_sessions(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    Ok(Json(svc::list_sessions(&state, &caller, None).await?))
}

/// Revoke a session (mine, or anyone's for an administrator).
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "me", security(("bearer" = [])),
    params(("id" = String, Path, description = "session id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_session(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    svc::revoke_session(&state, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
