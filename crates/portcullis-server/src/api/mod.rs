//! The HTTP API: routes, their OpenAPI description, and the middleware around them.
//!
//! Every route is registered through `utoipa-axum`'s `routes!`, so a route cannot exist without
//! its OpenAPI entry; a test compares the served document with the router's route table.

pub mod accounts;
pub mod audit;
pub mod health;
pub mod me;
pub mod signin;

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
    /// Seals and opens secrets at rest (TOTP seeds).
    pub master: Arc<portcullis_store::MasterKey>,
    pub passwords: crate::passwords::Passwords,
    pub lifetimes: portcullis_core::session::SessionLifetimes,
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
        .routes(routes!(signin::bootstrap))
        .routes(routes!(signin::password))
        .routes(routes!(signin::totp))
        .routes(routes!(signin::signout))
        .routes(routes!(me::whoami))
        .routes(routes!(me::list_factors))
        .routes(routes!(me::enrol_totp))
        .routes(routes!(me::confirm_totp))
        .routes(routes!(me::remove_factor))
        .routes(routes!(me::change_password))
        .routes(routes!(me::list_sessions))
        .routes(routes!(me::revoke_session))
        .routes(routes!(accounts::create_user, accounts::list_users))
        .routes(routes!(accounts::get_user))
        .routes(routes!(accounts::disable_user))
        .routes(routes!(accounts::enable_user))
        .routes(routes!(accounts::user_sessions))
        .routes(routes!(accounts::create_group, accounts::list_groups))
        .routes(routes!(accounts::add_member))
        .routes(routes!(accounts::remove_member))
        .routes(routes!(
            accounts::create_service_account,
            accounts::list_service_accounts
        ))
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
