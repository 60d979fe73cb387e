//! The HTTP layer: routes, their OpenAPI description, the middleware around them, and the
//! only part of the server that imports axum.
//!
//! A handler parses its input, calls one service function and maps the result; the status of
//! every error code is chosen in one place ([`error::status_of`]). `v1/` holds one thin file per
//! resource of the JSON API, `oauth` the RFC 6749 wire format, `pages` the HTML a person sees,
//! `edge` the connection layer (TLS, proxies, limits) and `authz` the route table's permissions.
//!
//! Every route is registered through `utoipa-axum`'s `routes!`, so a route cannot exist without
//! its OpenAPI entry; a test compares the served document with the router's route table.

pub mod authz;
pub mod caller;
pub mod edge;
pub mod error;
pub mod metrics;
pub mod oauth;
pub mod openapi;
pub mod pages;
pub mod v1;

use v1::{
    accounts, alerts, audit, breakglass, ca, clients, device, governance, health, keys, me,
    reviews, roles, service_accounts, signin, ssh, targets,
};

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;
use pages::console;

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
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(health::openapi_json))
        .routes(routes!(audit::list_events))
        .routes(routes!(audit::verify, audit::verify_anchored))
        .routes(routes!(audit::create_checkpoint))
        .routes(routes!(audit::posture))
        .routes(routes!(signin::bootstrap))
        .routes(routes!(signin::password))
        .routes(routes!(signin::totp))
        .routes(routes!(signin::webauthn))
        .routes(routes!(signin::webauthn_finish))
        .routes(routes!(signin::signout))
        .routes(routes!(me::whoami))
        .routes(routes!(me::list_factors))
        .routes(routes!(me::enrol_totp))
        .routes(routes!(me::confirm_totp))
        .routes(routes!(me::webauthn_register))
        .routes(routes!(me::webauthn_register_finish))
        .routes(routes!(me::remove_factor))
        .routes(routes!(me::change_password))
        .routes(routes!(me::reauth))
        .routes(routes!(me::reauth_webauthn))
        .routes(routes!(me::list_sessions))
        .routes(routes!(me::revoke_session))
        .routes(routes!(accounts::create_user, accounts::list_users))
        .routes(routes!(accounts::get_user))
        .routes(routes!(accounts::disable_user))
        .routes(routes!(accounts::contain_principal))
        .routes(routes!(accounts::release_principal))
        .routes(routes!(accounts::enable_user))
        .routes(routes!(accounts::user_sessions))
        .routes(routes!(accounts::create_group, accounts::list_groups))
        .routes(routes!(accounts::add_member))
        .routes(routes!(accounts::remove_member))
        .routes(routes!(service_accounts::show))
        .routes(routes!(service_accounts::add_secret))
        .routes(routes!(service_accounts::remove_secret))
        .routes(routes!(service_accounts::consent))
        .routes(routes!(service_accounts::set_networks))
        .routes(routes!(service_accounts::add_key))
        .routes(routes!(service_accounts::remove_key))
        .routes(routes!(keys::list))
        .routes(routes!(keys::rotate))
        .routes(routes!(oauth::device_authorization))
        .routes(routes!(device::approve))
        .routes(routes!(device::deny))
        .routes(routes!(oauth::discovery))
        .routes(routes!(oauth::jwks))
        .routes(routes!(oauth::token))
        .routes(routes!(oauth::introspect))
        .routes(routes!(oauth::revoke))
        .routes(routes!(oauth::userinfo_get, oauth::userinfo_post))
        .routes(routes!(pages::authorize_get, pages::authorize_post))
        .routes(routes!(pages::consent_post))
        .routes(routes!(pages::signin_get, pages::signin_post))
        .routes(routes!(pages::signin_totp_post))
        .routes(routes!(pages::signin_webauthn_post))
        .routes(routes!(pages::webauthn_js))
        .routes(routes!(pages::device_get, pages::device_post))
        .routes(routes!(console::console_get))
        .routes(routes!(console::console_requests_post))
        .routes(routes!(console::console_request_get))
        .routes(routes!(console::console_decide_post))
        .routes(routes!(console::console_deactivate_post))
        .routes(routes!(console::console_extend_post))
        .routes(routes!(console::console_cancel_post))
        .routes(routes!(console::console_approvals_get))
        .routes(routes!(console::console_reviews_get))
        .routes(routes!(console::console_review_item_get))
        .routes(routes!(console::console_review_decide_post))
        .routes(routes!(
            console::console_reauth_get,
            console::console_reauth_post
        ))
        .routes(routes!(console::console_signout_post))
        .routes(routes!(console::console_audit_get))
        .routes(routes!(console::console_audit_event_get))
        .routes(routes!(console::console_audit_verify_get))
        .routes(routes!(console::console_audit_export_get))
        .routes(routes!(console::console_breakglass_get))
        .routes(routes!(console::console_alerts_get))
        .routes(routes!(console::console_alert_get))
        .routes(routes!(console::console_alert_retry_post))
        .routes(routes!(console::console_admin_users_get))
        .routes(routes!(console::console_admin_user_enabled_post))
        .routes(routes!(console::console_admin_group_member_post))
        .routes(routes!(
            console::console_admin_assignments_get,
            console::console_admin_assign_post
        ))
        .routes(routes!(console::console_admin_end_assignment_post))
        .routes(routes!(console::console_admin_roles_get))
        .routes(routes!(
            console::console_admin_role_get,
            console::console_admin_role_post
        ))
        .routes(routes!(console::console_admin_policies_get))
        .routes(routes!(console::console_css))
        .routes(routes!(console::console_js))
        .routes(routes!(alerts::add_channel, alerts::list_channels))
        .routes(routes!(alerts::remove_channel))
        .routes(routes!(alerts::list_rules, alerts::add_rule))
        .routes(routes!(alerts::remove_rule))
        .routes(routes!(alerts::test_channel))
        .routes(routes!(alerts::list))
        .routes(routes!(alerts::show))
        .routes(routes!(alerts::retry))
        .routes(routes!(targets::add, targets::list))
        .routes(routes!(targets::show, targets::remove))
        .routes(routes!(targets::test))
        .routes(routes!(targets::observe))
        .routes(routes!(targets::reconcile))
        .routes(routes!(targets::credentials))
        .routes(routes!(ssh::sign))
        .routes(routes!(ssh::ca_pub))
        .routes(routes!(ssh::krl))
        .routes(routes!(ssh::rotate))
        .routes(routes!(targets::bind, targets::unbind))
        .routes(routes!(targets::accounts))
        .routes(routes!(targets::set_account, targets::remove_account))
        .routes(routes!(targets::ops))
        .routes(routes!(targets::op))
        .routes(routes!(targets::retry))
        .routes(routes!(ca::list, ca::import))
        .routes(routes!(ca::show, ca::delete))
        .routes(routes!(ca::set_state))
        .routes(routes!(ca::locations, ca::set_location))
        .routes(routes!(ca::remove_location))
        .routes(routes!(ca::what_if))
        .routes(routes!(breakglass::create, breakglass::list))
        .routes(routes!(breakglass::rotate))
        .routes(routes!(breakglass::enrolment))
        .routes(routes!(breakglass::drill))
        .routes(routes!(breakglass::failed_recovery))
        .routes(routes!(clients::create_client, clients::list_clients))
        .routes(routes!(clients::get_client, clients::delete_client))
        .routes(routes!(clients::add_client_secret))
        .routes(routes!(clients::remove_client_secret))
        .routes(routes!(roles::list_roles, roles::create_role))
        .routes(routes!(roles::get_role, roles::delete_role))
        .routes(routes!(roles::get_settings, roles::update_settings))
        .routes(routes!(roles::list_assignments, roles::create_assignment))
        .routes(routes!(roles::delete_assignment))
        .routes(routes!(roles::make_eligible))
        .routes(routes!(roles::list_requests, roles::create_request))
        .routes(routes!(roles::get_request))
        .routes(routes!(roles::approve))
        .routes(routes!(roles::deny))
        .routes(routes!(roles::cancel))
        .routes(routes!(roles::deactivate))
        .routes(routes!(roles::extend_request))
        .routes(routes!(governance::list_changes))
        .routes(routes!(governance::get_change))
        .routes(routes!(governance::approve_change))
        .routes(routes!(governance::deny_change))
        .routes(routes!(governance::cancel_change))
        .routes(routes!(roles::revoke))
        .routes(routes!(reviews::create_review, reviews::list_reviews))
        .routes(routes!(reviews::get_review, reviews::delete_review))
        .routes(routes!(reviews::start_review))
        .routes(routes!(reviews::my_review_items))
        .routes(routes!(reviews::get_review_round))
        .routes(routes!(reviews::close_review_round))
        .routes(routes!(reviews::decide_review_item))
        .routes(routes!(reviews::set_manager))
        .routes(routes!(
            accounts::create_service_account,
            accounts::list_service_accounts
        ))
        .split_for_parts();
    openapi::finish(&mut doc);
    (router, doc)
}

/// What the router's outer layers need (crate::http::edge).
#[derive(Clone)]
pub struct RouterOptions {
    pub max_body_bytes: usize,
    /// A request body must arrive within this long of its head.
    pub body_timeout: std::time::Duration,
    /// Whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<edge::TrustedProxies>,
    pub rate_limits: edge::limits::RateLimits,
}

/// The full application router.
///
/// Layers run outside in (the last `.layer` first): metrics see every answer (500s from
/// panics included); the panic catcher; the client address is resolved before the rate limits
/// and everything else that keys on it; limits come before any body is read; the body is read
/// under its deadline after authorisation and before the handler.
pub fn router(state: AppState, options: &RouterOptions) -> Router {
    let (routes, doc) = routes();
    let doc = Arc::new(doc);
    let max_body_bytes = options.max_body_bytes;
    let body_timeout = options.body_timeout;
    let trusted = options.trusted_proxies.clone();
    routes
        // Inside authorisation: a caller refused there never gets a body read for them.
        .route_layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                edge::limits::read_body_within(body_timeout, max_body_bytes, req, next)
            },
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authz::authorize,
        ))
        .layer(axum::Extension(doc))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            setup_notice,
        ))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                refuse_declared_oversize(req, next, max_body_bytes)
            },
        ))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(options.rate_limits.layer())
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                edge::client::resolve_client(trusted.clone(), req, next)
            },
        ))
        .layer(edge::limits::catch_panics())
        .layer(axum::middleware::from_fn(metrics::track))
        .with_state(state)
}

/// Adds `Portcullis-Setup: NOTICE` to every API answer while the tenant is in its setup state
/// (fewer than two usable break-glass accounts), so every CLI call can say so.
async fn setup_notice(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let api = req.uri().path().starts_with("/api/");
    let mut resp = next.run(req).await;
    if api
        && let Some(notice) = crate::services::breakglass::setup_header(&state).await
        && let Ok(v) = axum::http::HeaderValue::from_str(&notice)
    {
        resp.headers_mut().insert("portcullis-setup", v);
    }
    resp
}

/// Answers `413` at once when the declared `Content-Length` is over the limit, before any of
/// the body is read or anyone is authenticated. (`DefaultBodyLimit` alone only notices once
/// the limit's worth of bytes has arrived; bodies without a declared length still meet it.)
async fn refuse_declared_oversize(
    req: axum::extract::Request,
    next: axum::middleware::Next,
    max_body_bytes: usize,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body_bytes as u64) {
        return error::ApiError::new(
            portcullis_core::error::ErrorCode::PayloadTooLarge,
            "request body is too large",
        )
        .into_response();
    }
    next.run(req).await
}
