//! Token signing keys: list them and rotate the active one (see [`crate::services::keys`]).

use axum::Json;
use axum::extract::State;
use portcullis_core::api::{SigningKeyRotated, SigningKeyView};
use portcullis_core::roles::perm;
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::IntoParams;

use crate::http::error::{ApiError, ApiQuery, ErrorBody};
use crate::services::caller::Caller;
use crate::state::AppState;
use crate::time_us::{rfc3339, us};

/// The signing keys the tenant has had, newest first; retired ones say until when they stay
/// in JWKS.
#[utoipa::path(get, path = "/api/v1/keys", tag = "keys", security(("bearer" = [])),
    responses((status = 200, body = Vec<SigningKeyView>), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<SigningKeyView>>, ApiError> {
    caller.require(perm::KEYS_READ)?;
    let now = OffsetDateTime::now_utc();
    Ok(Json(
        state
            .tokens
            .status()
            .into_iter()
            .map(|k| SigningKeyView {
                algorithm: k.algorithm.as_str().to_owned(),
                published: k.published(now),
                created_at: rfc3339(us(k.created_at)),
                active: k.active,
                published_until: k.published_until.map(|u| rfc3339(us(u))),
                key_id: k.key_id,
            })
            .collect(),
    ))
}

/// `POST /api/v1/keys/rotate?previous=KID`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RotateQuery {
    /// Rotate only if this key is still the active one (otherwise `409 conflict`).
    pub previous: Option<String>,
    /// The algorithm whose key to rotate: `EdDSA` (the default), `ES256` or `RS256`.
    pub algorithm: Option<String>,
}

/// Rotate the token signing key: a new key signs from now on, the previous one stays in
/// JWKS until every token it signed has expired.
#[utoipa::path(post, path = "/api/v1/keys/rotate", tag = "keys", security(("bearer" = [])), params(RotateQuery),
    responses((status = 200, body = SigningKeyRotated), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<RotateQuery>,
) -> Result<Json<SigningKeyRotated>, ApiError> {
    caller.require(perm::KEYS_ROTATE)?;
    let now = OffsetDateTime::now_utc();
    let alg = match q.algorithm.as_deref() {
        None => crate::services::keys::SigningAlg::EdDSA,
        Some(a) => crate::services::keys::SigningAlg::parse(a)
            .ok_or_else(|| ApiError::bad_request("algorithm must be EdDSA, ES256 or RS256"))?,
    };
    let (key_id, previous) =
        crate::services::keys::rotate_alg(&state, &caller.actor(), alg, q.previous.as_deref(), now)
            .await?;
    Ok(Json(SigningKeyRotated {
        key_id,
        previous_key_id: previous,
        previous_published_until: rfc3339(us(state.tokens.published_until(now))),
    }))
}
