//! Authorisation by permission: the table that maps every route to what it needs, and the
//! layer that enforces it before any handler runs.
//!
//! Invariants:
//! - Every routed operation has an entry (a test compares this table with the router); a
//!   route without one is refused with a 500 rather than served unchecked (fail closed).
//!   `HEAD` is looked up as `GET`.
//! - Permissions come only from the caller's *active* grants (assignments and activations),
//!   at the tenant scope here; handlers of scoped operations check the exact scope again.
//! - The caller identified here is handed to the handler, so a request is authenticated once.
//! - Every `403` answered to an identified caller, by this table or by the handler, is audited
//!   as a refused attempt (crate::services::refusals; privilege model rule 9).

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use portcullis_core::roles::perm;

use crate::error::ApiError;
use crate::services::caller::Caller;
use crate::state::AppState;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health, sign-in, bootstrap with its own token).
    Public,
    /// Any signed-in session, registration-only included (own account, own requests; the
    /// handler decides what else, e.g. approvers are named by the role's settings).
    SignedIn,
    /// The bootstrap token while it is valid, or this permission.
    BootstrapOr(&'static str),
    /// This permission at the tenant scope.
    Permission(&'static str),
    /// A full session; the handler checks this permission at the operation's own scope, or
    /// lets the caller act on their own things without it.
    Scoped(&'static str),
    /// A full session; the rule is the domain's, not a permission: eligibility for requests,
    /// the role's approver list for decisions, ownership for cancel and deactivate.
    FullSession,
}

use Access::*;

/// Every route and what it needs.
#[rustfmt::skip]
pub const ROUTES: &[(&str, &str, Access)] = &[
    ("GET", "/healthz", Public),
    ("GET", "/readyz", Public),
    ("GET", "/metrics", Public),
    ("GET", "/api/v1/openapi.json", Public),
    ("GET", "/api/v1/audit/events", BootstrapOr(perm::AUDIT_READ)),
    ("GET", "/api/v1/audit/verify", BootstrapOr(perm::AUDIT_READ)),
    ("POST", "/api/v1/audit/verify", BootstrapOr(perm::AUDIT_READ)),
    ("GET", "/api/v1/posture", Permission(perm::POSTURE_READ)),
    ("POST", "/api/v1/audit/checkpoints", BootstrapOr(perm::AUDIT_CHECKPOINT)),
    ("GET", "/api/v1/keys", Permission(perm::KEYS_READ)),
    ("POST", "/api/v1/keys/rotate", Permission(perm::KEYS_ROTATE)),
    ("POST", "/api/v1/bootstrap", Public),
    // OAuth endpoints authenticate clients themselves (client credentials).
    ("GET", "/.well-known/openid-configuration", Public),
    ("GET", "/oauth2/jwks", Public),
    ("POST", "/oauth2/token", Public),
    ("POST", "/oauth2/introspect", Public),
    ("POST", "/oauth2/revoke", Public),
    ("POST", "/oauth2/device_authorization", Public),
    // Userinfo checks its bearer token itself (tokens of OpenID Connect clients).
    ("GET", "/oauth2/userinfo", Public),
    ("POST", "/oauth2/userinfo", Public),
    // Browser pages: the session is a cookie, checked by the handler with CSRF (crate::http::pages).
    ("GET", "/oauth2/authorize", Public),
    ("POST", "/oauth2/authorize", Public),
    ("POST", "/oauth2/authorize/consent", Public),
    ("GET", "/signin", Public),
    ("POST", "/signin", Public),
    ("POST", "/signin/totp", Public),
    ("POST", "/signin/webauthn", Public),
    ("GET", "/assets/webauthn.js", Public),
    ("GET", "/device", Public),
    ("POST", "/device", Public),
    ("GET", "/console", Public),
    ("POST", "/console/requests", Public),
    ("GET", "/console/requests/{id}", Public),
    ("POST", "/console/requests/{id}/decide", Public),
    ("POST", "/console/requests/{id}/deactivate", Public),
    ("POST", "/console/requests/{id}/extend", Public),
    ("POST", "/console/requests/{id}/cancel", Public),
    ("GET", "/console/approvals", Public),
    ("GET", "/console/reviews", Public),
    ("GET", "/console/reviews/{round}/{assignment}", Public),
    ("POST", "/console/reviews/{round}/{assignment}/decide", Public),
    ("GET", "/console/reauth", Public),
    ("POST", "/console/reauth", Public),
    ("POST", "/console/signout", Public),
    ("GET", "/console/audit", Public),
    ("GET", "/console/audit/{seq}", Public),
    ("GET", "/console/audit/verify", Public),
    ("GET", "/console/audit/export", Public),
    ("GET", "/console/breakglass", Public),
    ("GET", "/console/alerts", Public),
    ("GET", "/console/alerts/{id}", Public),
    ("POST", "/console/alerts/{id}/retry", Public),
    ("GET", "/console/admin/users", Public),
    ("POST", "/console/admin/users/{name}/enabled", Public),
    ("POST", "/console/admin/groups/{name}/members", Public),
    ("GET", "/console/admin/assignments", Public),
    ("POST", "/console/admin/assignments", Public),
    ("POST", "/console/admin/assignments/{id}/end", Public),
    ("GET", "/console/admin/roles", Public),
    ("GET", "/console/admin/roles/{role}", Public),
    ("POST", "/console/admin/roles/{role}", Public),
    ("GET", "/console/admin/policies", Public),
    ("GET", "/assets/console.css", Public),
    ("GET", "/assets/console.js", Public),
    // The handler requires a full session with at least `mfa`.
    ("POST", "/api/v1/device/approve", FullSession),
    ("POST", "/api/v1/device/deny", FullSession),
    ("POST", "/api/v1/signin", Public),
    ("POST", "/api/v1/signin/totp", Public),
    ("POST", "/api/v1/signin/webauthn", Public),
    ("POST", "/api/v1/signin/webauthn/finish", Public),
    ("POST", "/api/v1/signout", SignedIn),
    ("GET", "/api/v1/me", SignedIn),
    ("GET", "/api/v1/me/mfa", SignedIn),
    ("POST", "/api/v1/me/mfa/totp", SignedIn),
    ("POST", "/api/v1/me/mfa/totp/{id}/confirm", SignedIn),
    ("POST", "/api/v1/me/mfa/webauthn", SignedIn),
    ("POST", "/api/v1/me/mfa/webauthn/finish", SignedIn),
    ("DELETE", "/api/v1/me/mfa/{id}", SignedIn),
    ("POST", "/api/v1/me/password", SignedIn),
    // Sessions only (the handler refuses access tokens); throttled like sign-in.
    ("POST", "/api/v1/me/reauth", SignedIn),
    ("POST", "/api/v1/me/reauth/webauthn", SignedIn),
    ("GET", "/api/v1/sessions", SignedIn),
    ("DELETE", "/api/v1/sessions/{id}", Scoped(perm::SESSIONS_REVOKE)),
    ("POST", "/api/v1/users", Permission(perm::USERS_CREATE)),
    ("GET", "/api/v1/users", Permission(perm::USERS_READ)),
    ("GET", "/api/v1/users/{name}", Permission(perm::USERS_READ)),
    ("POST", "/api/v1/users/{name}/disable", Permission(perm::USERS_UPDATE)),
    ("POST", "/api/v1/users/{name}/enable", Permission(perm::USERS_UPDATE)),
    ("POST", "/api/v1/principals/{name}/contain", Permission(perm::PRINCIPALS_CONTAIN)),
    ("POST", "/api/v1/principals/{name}/release", Permission(perm::PRINCIPALS_CONTAIN)),
    ("GET", "/api/v1/users/{name}/sessions", Permission(perm::SESSIONS_READ)),
    ("POST", "/api/v1/groups", Permission(perm::GROUPS_CREATE)),
    ("GET", "/api/v1/groups", Permission(perm::GROUPS_READ)),
    ("POST", "/api/v1/groups/{name}/members", Scoped(perm::GROUPS_MEMBERS_UPDATE)),
    ("DELETE", "/api/v1/groups/{name}/members/{member}", Scoped(perm::GROUPS_MEMBERS_UPDATE)),
    ("POST", "/api/v1/service-accounts", Permission(perm::SERVICE_ACCOUNTS_CREATE)),
    ("GET", "/api/v1/service-accounts", Permission(perm::SERVICE_ACCOUNTS_READ)),
    ("GET", "/api/v1/service-accounts/{name}", Permission(perm::SERVICE_ACCOUNTS_READ)),
    ("POST", "/api/v1/service-accounts/{name}/secrets", Permission(perm::SERVICE_ACCOUNTS_CREDENTIALS)),
    ("DELETE", "/api/v1/service-accounts/{name}/secrets/{id}", Permission(perm::SERVICE_ACCOUNTS_CREDENTIALS)),
    ("POST", "/api/v1/service-accounts/{name}/consent", Permission(perm::SERVICE_ACCOUNTS_CONSENT)),
    ("PUT", "/api/v1/service-accounts/{name}/networks", Permission(perm::SERVICE_ACCOUNTS_CREDENTIALS)),
    ("POST", "/api/v1/service-accounts/{name}/keys", Permission(perm::SERVICE_ACCOUNTS_CREDENTIALS)),
    ("DELETE", "/api/v1/service-accounts/{name}/keys/{kid}", Permission(perm::SERVICE_ACCOUNTS_CREDENTIALS)),
    ("GET", "/api/v1/ca/policies", Permission(perm::CA_READ)),
    ("POST", "/api/v1/ca/policies", Permission(perm::CA_MANAGE)),
    ("GET", "/api/v1/ca/policies/{name}", Permission(perm::CA_READ)),
    ("DELETE", "/api/v1/ca/policies/{name}", Permission(perm::CA_MANAGE)),
    ("POST", "/api/v1/ca/policies/{name}/state", Permission(perm::CA_MANAGE)),
    ("GET", "/api/v1/ca/locations", Permission(perm::CA_READ)),
    ("POST", "/api/v1/ca/locations", Permission(perm::CA_MANAGE)),
    ("DELETE", "/api/v1/ca/locations/{name}", Permission(perm::CA_MANAGE)),
    ("POST", "/api/v1/ca/whatif", Permission(perm::CA_READ)),
    ("POST", "/api/v1/breakglass", Permission(perm::BREAKGLASS_MANAGE)),
    ("GET", "/api/v1/breakglass", Permission(perm::BREAKGLASS_READ)),
    ("POST", "/api/v1/breakglass/{name}/rotate", Permission(perm::BREAKGLASS_MANAGE)),
    ("POST", "/api/v1/breakglass/{name}/enrolment", Permission(perm::BREAKGLASS_MANAGE)),
    // The break-glass account itself, with the session it just signed in with.
    ("POST", "/api/v1/breakglass/drill", FullSession),
    // Reported by the CLI before any credential exists; audited and alerted, throttled per IP.
    ("POST", "/api/v1/breakglass/{name}/failed-recovery", Public),
    ("POST", "/api/v1/alerts/channels", Permission(perm::ALERTS_MANAGE)),
    ("GET", "/api/v1/alerts/channels", Permission(perm::ALERTS_READ)),
    ("DELETE", "/api/v1/alerts/channels/{name}", Permission(perm::ALERTS_MANAGE)),
    ("POST", "/api/v1/alerts/channels/{name}/test", Permission(perm::ALERTS_MANAGE)),
    ("GET", "/api/v1/alerts/rules", Permission(perm::ALERTS_READ)),
    ("POST", "/api/v1/alerts/rules", Permission(perm::ALERTS_MANAGE)),
    ("DELETE", "/api/v1/alerts/rules/{name}", Permission(perm::ALERTS_MANAGE)),
    ("GET", "/api/v1/alerts", Permission(perm::ALERTS_READ)),
    ("GET", "/api/v1/alerts/{id}", Permission(perm::ALERTS_READ)),
    ("POST", "/api/v1/alerts/{id}/retry", Permission(perm::ALERTS_MANAGE)),
    ("POST", "/api/v1/targets", Permission(perm::TARGETS_MANAGE)),
    ("GET", "/api/v1/targets", Permission(perm::TARGETS_READ)),
    ("GET", "/api/v1/targets/{name}", Permission(perm::TARGETS_READ)),
    ("DELETE", "/api/v1/targets/{name}", Permission(perm::TARGETS_MANAGE)),
    ("POST", "/api/v1/targets/{name}/test", Permission(perm::TARGETS_MANAGE)),
    ("GET", "/api/v1/targets/{name}/observe", Permission(perm::TARGETS_READ)),
    ("POST", "/api/v1/targets/{name}/reconcile", Permission(perm::TARGETS_MANAGE)),
    // The caller's own dynamic grant; the handler needs a fresh proof.
    ("POST", "/api/v1/targets/{name}/credentials", FullSession),
    ("POST", "/api/v1/targets/{name}/ssh/sign", FullSession),
    ("GET", "/api/v1/targets/{name}/ssh/ca.pub", Public),
    ("GET", "/api/v1/targets/{name}/ssh/krl", Public),
    ("POST", "/api/v1/targets/{name}/ssh/rotate", Permission(perm::TARGETS_MANAGE)),
    ("PUT", "/api/v1/targets/{name}/bindings/{role}", Permission(perm::TARGETS_MANAGE)),
    ("DELETE", "/api/v1/targets/{name}/bindings/{role}", Permission(perm::TARGETS_MANAGE)),
    ("GET", "/api/v1/targets/{name}/accounts", Permission(perm::TARGETS_MANAGE)),
    ("PUT", "/api/v1/targets/{name}/accounts/{principal}", Permission(perm::TARGETS_MANAGE)),
    ("DELETE", "/api/v1/targets/{name}/accounts/{principal}", Permission(perm::TARGETS_MANAGE)),
    ("GET", "/api/v1/target-ops", Permission(perm::TARGETS_READ)),
    ("GET", "/api/v1/target-ops/{id}", Permission(perm::TARGETS_READ)),
    ("POST", "/api/v1/target-ops/{id}/retry", Permission(perm::TARGETS_MANAGE)),
    ("POST", "/api/v1/clients", Permission(perm::CLIENTS_MANAGE)),
    ("GET", "/api/v1/clients", Permission(perm::CLIENTS_READ)),
    ("GET", "/api/v1/clients/{id}", Permission(perm::CLIENTS_READ)),
    ("DELETE", "/api/v1/clients/{id}", Permission(perm::CLIENTS_MANAGE)),
    ("POST", "/api/v1/clients/{id}/secrets", Permission(perm::CLIENTS_MANAGE)),
    ("DELETE", "/api/v1/clients/{id}/secrets/{secret_id}", Permission(perm::CLIENTS_MANAGE)),
    ("GET", "/api/v1/roles", SignedIn),
    ("POST", "/api/v1/roles", Permission(perm::ROLES_CREATE)),
    ("GET", "/api/v1/roles/{role}", SignedIn),
    ("DELETE", "/api/v1/roles/{role}", Permission(perm::ROLES_DELETE)),
    ("GET", "/api/v1/roles/{role}/settings", SignedIn),
    ("PUT", "/api/v1/roles/{role}/settings", Permission(perm::ROLES_SETTINGS_UPDATE)),
    ("GET", "/api/v1/assignments", Scoped(perm::ASSIGNMENTS_READ)),
    ("POST", "/api/v1/assignments", Scoped(perm::ASSIGNMENTS_CREATE)),
    ("DELETE", "/api/v1/assignments/{id}", Scoped(perm::ASSIGNMENTS_DELETE)),
    // The holder themselves (it only lowers privilege), or assignments.create and .delete.
    ("POST", "/api/v1/assignments/{id}/make-eligible", Scoped(perm::ASSIGNMENTS_CREATE)),
    ("POST", "/api/v1/requests", FullSession),
    ("GET", "/api/v1/requests", Scoped(perm::REQUESTS_READ)),
    ("GET", "/api/v1/requests/{id}", Scoped(perm::REQUESTS_READ)),
    ("POST", "/api/v1/requests/{id}/approve", FullSession),
    ("POST", "/api/v1/requests/{id}/deny", FullSession),
    ("POST", "/api/v1/requests/{id}/cancel", FullSession),
    ("POST", "/api/v1/requests/{id}/deactivate", FullSession),
    ("POST", "/api/v1/requests/{id}/extend", FullSession),
    // Four eyes: those who change role settings list them; another top-tier person decides
    // (the service checks), the requester may cancel their own.
    ("GET", "/api/v1/changes", Permission(perm::ROLES_SETTINGS_UPDATE)),
    ("GET", "/api/v1/changes/{id}", Permission(perm::ROLES_SETTINGS_UPDATE)),
    ("POST", "/api/v1/changes/{id}/approve", Permission(perm::ASSIGNMENTS_CREATE)),
    ("POST", "/api/v1/changes/{id}/deny", Permission(perm::ASSIGNMENTS_CREATE)),
    ("POST", "/api/v1/changes/{id}/cancel", FullSession),
    ("POST", "/api/v1/requests/{id}/revoke", Scoped(perm::REQUESTS_REVOKE)),
    ("POST", "/api/v1/reviews", Permission(perm::REVIEWS_MANAGE)),
    ("GET", "/api/v1/reviews", Permission(perm::REVIEWS_READ)),
    ("GET", "/api/v1/reviews/{id}", Permission(perm::REVIEWS_READ)),
    ("DELETE", "/api/v1/reviews/{id}", Permission(perm::REVIEWS_MANAGE)),
    ("POST", "/api/v1/reviews/{id}/start", Permission(perm::REVIEWS_MANAGE)),
    // A reviewer's own items; the handler decides who reviews what.
    ("GET", "/api/v1/reviews/items", FullSession),
    ("GET", "/api/v1/reviews/rounds/{id}", Scoped(perm::REVIEWS_READ)),
    ("POST", "/api/v1/reviews/rounds/{id}/close", Permission(perm::REVIEWS_MANAGE)),
    ("POST", "/api/v1/reviews/rounds/{id}/items/{assignment}/decide", FullSession),
    ("PUT", "/api/v1/users/{name}/manager", Permission(perm::USERS_UPDATE)),
];

/// What `method path` needs, if the table has it.
pub fn access_for(method: &str, path: &str) -> Option<Access> {
    ROUTES
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, a)| *a)
}

/// The layer: identifies the caller and checks the table before the handler runs.
pub async fn authorize(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(path) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
    else {
        return next.run(req).await;
    };
    // HEAD is GET without the body (axum answers it from the GET handler), so it needs what
    // GET needs.
    let method = if req.method() == axum::http::Method::HEAD {
        "GET"
    } else {
        req.method().as_str()
    };
    let Some(access) = access_for(method, &path) else {
        tracing::error!(route = %path, "route without an authorisation entry refused");
        return ApiError::internal("this route has no authorisation entry").into_response();
    };
    if access == Public {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let caller = match Caller::from_request_parts(&mut parts, &state).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let checked = match access {
        Public => Ok(()),
        SignedIn => caller.require_session().map(|_| ()),
        BootstrapOr(p) => caller.require_bootstrap_or(p),
        Permission(p) => caller.require(p).map(|_| ()),
        Scoped(_) | FullSession => caller.require_full().map(|_| ()),
    };
    let actor = caller.actor();
    let method = parts.method.as_str().to_owned();
    let resp = match checked {
        Err(e) => e.into_response(),
        Ok(()) => {
            parts.extensions.insert(caller);
            next.run(Request::from_parts(parts, body)).await
        }
    };
    // Refusals are evidence (privilege model rule 9), whether this table or the service
    // refused: audited, aggregated per actor and action per minute.
    if resp.status() == axum::http::StatusCode::FORBIDDEN {
        let code = resp
            .extensions()
            .get::<portcullis_core::error::ErrorCode>()
            .map_or("forbidden", |c| c.as_str());
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        for ev in state.refusals.record(&actor, &method, &path, code, now) {
            if let Err(e) = state.store.append(ev).await {
                tracing::warn!(error = %e, "could not record a refused attempt");
            }
        }
    }
    resp
}
