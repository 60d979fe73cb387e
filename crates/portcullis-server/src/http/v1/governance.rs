//! Change requests (four eyes on the PAM's own settings): list, show, approve, deny, cancel.

use axum::Json;
use axum::extract::{Path, State};
use portcullis_core::api::{ChangeDecisionRequest, ChangeRequestView};
use serde::Deserialize;

use crate::http::error::{ApiError, ApiJson, ApiQuery, ErrorBody};
use crate::services::caller::Caller;
use crate::services::governance as svc;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChangeQuery {
    /// `pending`, `applied`, `denied` or `cancelled`.
    pub state: Option<String>,
}

/// Change requests, newest first (`roles.settings.update`).
#[utoipa::path(get, path = "/api/v1/changes", tag = "governance", security(("bearer" = [])), params(ChangeQuery),
    responses((status = 200, body = Vec<ChangeRequestView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_changes(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ChangeQuery>,
) -> Result<Json<Vec<ChangeRequestView>>, ApiError> {
    Ok(Json(svc::list(&state, &caller, q.state.as_deref()).await?))
}

/// One change request.
#[utoipa::path(get, path = "/api/v1/changes/{id}", tag = "governance", security(("bearer" = [])),
    params(("id" = String, Path, description = "change request id")),
    responses((status = 200, body = ChangeRequestView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_change(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ChangeRequestView>, ApiError> {
    Ok(Json(svc::get(&state, &caller, &id).await?))
}

macro_rules! change_action {
    ($name:ident, $path:literal, $doc:literal, $f:path) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = "governance", security(("bearer" = [])), request_body = ChangeDecisionRequest,
            params(("id" = String, Path, description = "change request id")),
            responses((status = 200, body = ChangeRequestView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
                      (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
        pub async fn $name(
            State(state): State<AppState>,
            caller: Caller,
            Path(id): Path<String>,
            ApiJson(d): ApiJson<ChangeDecisionRequest>,
        ) -> Result<Json<ChangeRequestView>, ApiError> {
            Ok(Json($f(&state, &caller, &id, d).await?))
        }
    };
}

change_action!(
    approve_change,
    "/api/v1/changes/{id}/approve",
    "Approve a change request: it applies now (another top-tier person, never its requester).",
    svc::approve
);
change_action!(
    deny_change,
    "/api/v1/changes/{id}/deny",
    "Deny a change request (a reason is required): it never applies.",
    svc::deny
);
change_action!(
    cancel_change,
    "/api/v1/changes/{id}/cancel",
    "Cancel a change request (its requester, or a top-tier person).",
    svc::cancel
);
