//! Sign-in routes: bootstrap, password, TOTP, sign-out.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use portcullis_core::api::{
    BootstrapRequest, PasswordSignInRequest, SignInResponse, TotpSignInRequest, UserView,
    WebauthnChallenge, WebauthnFinishRequest, WebauthnSignInRequest,
};

use portcullis_core::conditional_access::Application;

use crate::http::error::{ApiError, ApiJson, ErrorBody};
use crate::services::caller::{Caller, ClientInfo};
use crate::services::signin as svc;
use crate::state::AppState;

/// Redeem the bootstrap token: create the first administrator (password + TOTP).
#[utoipa::path(post, path = "/api/v1/bootstrap", tag = "signin", request_body = BootstrapRequest,
    responses((status = 201, body = UserView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn bootstrap(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(req): ApiJson<BootstrapRequest>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(svc::bootstrap(&state, &client, req).await?),
    ))
}

/// Sign in, first step: user name and password.
#[utoipa::path(post, path = "/api/v1/signin", tag = "signin", request_body = PasswordSignInRequest,
    responses((status = 200, body = SignInResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn password(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(req): ApiJson<PasswordSignInRequest>,
) -> Result<Json<SignInResponse>, ApiError> {
    Ok(Json(
        svc::password_step(&state, &client, &Application::Api, req).await?,
    ))
}

/// Sign in, second step: a TOTP code.
#[utoipa::path(post, path = "/api/v1/signin/totp", tag = "signin", request_body = TotpSignInRequest,
    responses((status = 200, body = SignInResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn totp(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(req): ApiJson<TotpSignInRequest>,
) -> Result<Json<SignInResponse>, ApiError> {
    Ok(Json(
        svc::totp_step(&state, &client, &Application::Api, req).await?,
    ))
}

/// Start a WebAuthn sign-in: with `signin_id` after the password, or with `username` alone
/// (passwordless). Answers the options for `navigator.credentials.get()`.
#[utoipa::path(post, path = "/api/v1/signin/webauthn", tag = "signin", request_body = WebauthnSignInRequest,
    responses((status = 200, body = WebauthnChallenge), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn webauthn(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(req): ApiJson<WebauthnSignInRequest>,
) -> Result<Json<WebauthnChallenge>, ApiError> {
    Ok(Json(
        crate::services::webauthn::start_signin(&state, &client, req).await?,
    ))
}

/// Finish a WebAuthn sign-in with the authenticator's assertion; the session has the
/// `phishing_resistant` strength.
#[utoipa::path(post, path = "/api/v1/signin/webauthn/finish", tag = "signin", request_body = WebauthnFinishRequest,
    responses((status = 200, body = SignInResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn webauthn_finish(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(req): ApiJson<WebauthnFinishRequest>,
) -> Result<Json<SignInResponse>, ApiError> {
    Ok(Json(
        crate::services::webauthn::finish_signin(&state, &client, &Application::Api, req).await?,
    ))
}

/// Sign out: revoke the session making the request.
#[utoipa::path(post, path = "/api/v1/signout", tag = "signin", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn signout(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    svc::signout(&state, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}
