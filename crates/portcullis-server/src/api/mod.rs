//! The HTTP API: routes, their OpenAPI description, and the middleware around them.
//!
//! Every route is registered through `utoipa-axum`'s `routes!`, so a route cannot exist without
//! its OpenAPI entry; a test compares the served document with the router's route table.

pub mod audit;
pub mod health;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use portcullis_store::Store;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub info: Arc<ServerInfo>,
}

/// Facts about this server fixed at start.
#[derive(Debug)]
pub struct ServerInfo {
    pub backend: &'static str,
    pub schema_version: i64,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Portcullis",
        description = "Privileged access server: just-in-time roles, break-glass accounts, tamper-evident audit."
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail))
)]
struct ApiDoc;

/// The routes and their OpenAPI document.
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(health::openapi_json))
        .routes(routes!(audit::list_events))
        .routes(routes!(audit::verify))
        .routes(routes!(audit::create_checkpoint))
        .split_for_parts()
}

/// The full application router.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let (routes, doc) = routes();
    let doc = Arc::new(doc);
    routes
        .layer(axum::Extension(doc))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn(crate::metrics::track))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}
