//! Access-review routes: reviews and their rounds, a reviewer's items and decisions, and a
//! person's manager (who reviews them in a `managers` review).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use portcullis_core::api::{
    CreateReviewRequest, ReviewDecisionRequest, ReviewItemView, ReviewRoundView, ReviewView,
    SetManagerRequest, UserView,
};

use crate::http::error::{ApiError, ApiJson, ErrorBody};
use crate::services::caller::Caller;
use crate::services::reviews as svc;
use crate::state::AppState;

/// Create an access review of a role (at a scope); its first round opens at once.
#[utoipa::path(post, path = "/api/v1/reviews", tag = "reviews", security(("bearer" = [])), request_body = CreateReviewRequest,
    responses((status = 201, body = ReviewView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create_review(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateReviewRequest>,
) -> Result<(StatusCode, Json<ReviewView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(svc::create_review(&state, &caller, req).await?),
    ))
}

/// Every access review (deleted ones too), with its rounds.
#[utoipa::path(get, path = "/api/v1/reviews", tag = "reviews", security(("bearer" = [])),
    responses((status = 200, body = Vec<ReviewView>), (status = 403, body = ErrorBody)))]
pub async fn list_reviews(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ReviewView>>, ApiError> {
    Ok(Json(svc::list_reviews(&state, &caller).await?))
}

/// One access review with its rounds.
#[utoipa::path(get, path = "/api/v1/reviews/{id}", tag = "reviews", security(("bearer" = [])),
    params(("id" = String, Path, description = "review id")),
    responses((status = 200, body = ReviewView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_review(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ReviewView>, ApiError> {
    Ok(Json(svc::get_review(&state, &caller, &id).await?))
}

/// Delete an access review: no more rounds; an open one is cancelled without applying anything.
#[utoipa::path(delete, path = "/api/v1/reviews/{id}", tag = "reviews", security(("bearer" = [])),
    params(("id" = String, Path, description = "review id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_review(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    svc::delete_review(&state, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Open a round of a review now (none may be open).
#[utoipa::path(post, path = "/api/v1/reviews/{id}/start", tag = "reviews", security(("bearer" = [])),
    params(("id" = String, Path, description = "review id")),
    responses((status = 200, body = ReviewView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn start_review(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ReviewView>, ApiError> {
    Ok(Json(svc::start_review(&state, &caller, &id).await?))
}

/// The items of open rounds the caller reviews.
#[utoipa::path(get, path = "/api/v1/reviews/items", tag = "reviews", security(("bearer" = [])),
    responses((status = 200, body = Vec<ReviewItemView>), (status = 403, body = ErrorBody)))]
pub async fn my_review_items(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ReviewItemView>>, ApiError> {
    Ok(Json(svc::my_items(&state, &caller).await?))
}

/// A round with its items (all of them with `reviews.read`, else those the caller reviews).
#[utoipa::path(get, path = "/api/v1/reviews/rounds/{id}", tag = "reviews", security(("bearer" = [])),
    params(("id" = String, Path, description = "round id")),
    responses((status = 200, body = ReviewRoundView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_review_round(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ReviewRoundView>, ApiError> {
    Ok(Json(svc::get_round(&state, &caller, &id).await?))
}

/// Close a round now: undecided items get the default and every removal is applied.
#[utoipa::path(post, path = "/api/v1/reviews/rounds/{id}/close", tag = "reviews", security(("bearer" = [])),
    params(("id" = String, Path, description = "round id")),
    responses((status = 200, body = ReviewRoundView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn close_review_round(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ReviewRoundView>, ApiError> {
    svc::close_round_now(&state, &caller, &id).await?;
    Ok(Json(svc::get_round(&state, &caller, &id).await?))
}

/// Decide an item: keep or remove, with a reason (never one's own access); applied at the
/// round's close.
#[utoipa::path(post, path = "/api/v1/reviews/rounds/{id}/items/{assignment}/decide", tag = "reviews", security(("bearer" = [])),
    params(("id" = String, Path, description = "round id"), ("assignment" = String, Path, description = "assignment id")),
    request_body = ReviewDecisionRequest,
    responses((status = 200, body = ReviewItemView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn decide_review_item(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, assignment)): Path<(String, String)>,
    ApiJson(req): ApiJson<ReviewDecisionRequest>,
) -> Result<Json<ReviewItemView>, ApiError> {
    Ok(Json(
        svc::decide(&state, &caller, &id, &assignment, req).await?,
    ))
}

/// Set or remove a person's manager (their reviewer in a `managers` review).
#[utoipa::path(put, path = "/api/v1/users/{name}/manager", tag = "accounts", security(("bearer" = [])),
    params(("name" = String, Path, description = "user name")),
    request_body = SetManagerRequest,
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_manager(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<SetManagerRequest>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(svc::set_manager(&state, &caller, &name, req).await?))
}
