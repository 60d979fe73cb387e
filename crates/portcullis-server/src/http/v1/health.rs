//! Liveness, readiness, metrics and the OpenAPI document.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use portcullis_core::api::{Health, Ready};
use portcullis_core::error::ErrorCode;

use crate::http::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// The database is reachable and migrated; `tenant` says whether setup is complete (two
/// usable break-glass accounts) and which break-glass drills are overdue.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, body = Ready),
    (status = 503, body = ErrorBody, description = "database unreachable"),
))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    state.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check failed");
        ApiError::new(ErrorCode::Unavailable, "the database is unreachable")
    })?;
    let tenant = crate::services::breakglass::readiness(&state).await?;
    Ok(Json(Ready {
        status: "ready".into(),
        database: "ok".into(),
        backend: state.info.backend.into(),
        schema_version: state.info.schema_version,
        tenant: Some(tenant),
    }))
}

/// Prometheus metrics in text format.
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut body = crate::http::metrics::handle()
        .map(|h| h.render())
        .unwrap_or_default();
    // This tenant's target operations, read at scrape time (exact across replicas).
    // The tenant's domain: grants, approvals, the outbox, the audit chain, break-glass.
    match crate::services::stats::domain(&state).await {
        Ok((d, now_us)) => body.push_str(&crate::http::metrics::domain_lines(&d, now_us)),
        Err(e) => tracing::warn!(error = ?e, "cannot read the domain counts"),
    }
    match crate::services::posture::counts(&state).await {
        Ok(c) => body.push_str(&crate::http::metrics::posture_lines(&c)),
        Err(e) => tracing::warn!(error = ?e, "cannot evaluate the posture"),
    }
    match crate::services::targets::stats(&state).await {
        Ok((stats, now_us)) => body.push_str(&crate::http::metrics::target_lines(&stats, now_us)),
        Err(e) => tracing::warn!(error = ?e, "cannot read target operation counts"),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", responses((status = 200, content_type = "application/json")))]
pub async fn openapi_json(
    axum::Extension(doc): axum::Extension<Arc<utoipa::openapi::OpenApi>>,
) -> impl IntoResponse {
    Json(doc.as_ref().clone())
}
