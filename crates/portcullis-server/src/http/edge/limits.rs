//! What every request passes before a handler: request rate limits (tower_governor), the
//! request-body deadline, and the panic catcher.
//!
//! Invariants:
//! - Rate limits are keyed by the resolved client address (`edge::client`), IPv6 per /64; a
//!   refusal is `429` in the API's one error shape with `Retry-After`. The per-address limit is
//!   checked first, so one flooding address spends its own budget, not the global one.
//! - The sign-in endpoints ([`RATE_LIMIT_EXEMPT`]) are never rate limited here: break-glass must
//!   always get through (invariant 4) and people sharing an address must not lock each other
//!   out; they are protected by the bounded Argon2 queue and per-account/address throttles.
//! - A body that has not arrived within `body_timeout_seconds` of its head is answered `408`
//!   and the connection closed; handlers only ever see complete bodies.
//! - A panic in a handler becomes a `500` in the one error shape, logged; the connection lives.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::middleware::NoOpMiddleware;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use portcullis_core::error::ErrorCode;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};
use tower_governor::GovernorError;
use tower_governor::GovernorLayer;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::{GlobalKeyExtractor, KeyExtractor};

use crate::error::ApiError;

/// Requests the rate limiters never count: `(method, route)`, where a route ending in `/*`
/// covers every route below it. These are the sign-in endpoints. Why they are exempt:
/// break-glass accounts must always be able to sign in (invariant 4), and everyone behind one
/// NAT or reverse proxy shares an address, so a per-address (or global) request limit here
/// would let anyone lock everyone else — break-glass included — out by flooding. They are
/// protected instead by the bounded Argon2 queue (which reserves a permit for emergency
/// accounts) and by per-account and per-address sign-in throttles. The failed-recovery
/// report is made by a custodian before any credential exists, from wherever they are.
pub const RATE_LIMIT_EXEMPT: &[(&str, &str)] = &[
    ("POST", "/api/v1/signin"),
    ("POST", "/api/v1/signin/*"),
    ("POST", "/signin"),
    ("POST", "/signin/*"),
    ("POST", "/api/v1/breakglass/{name}/failed-recovery"),
];

/// Whether `method route` is in [`RATE_LIMIT_EXEMPT`].
pub fn is_exempt(method: &Method, route: &str) -> bool {
    RATE_LIMIT_EXEMPT.iter().any(|(m, pattern)| {
        *m == method.as_str()
            && match pattern.strip_suffix("/*") {
                Some(prefix) => route
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/')),
                None => route == *pattern,
            }
    })
}

/// Configured rates: `(requests per second, burst)`; a rate of 0 is off.
#[derive(Debug, Clone, Copy)]
pub struct RateLimitSettings {
    pub per_address: (u32, u32),
    pub global: (u32, u32),
}

/// The rate-limit key: the resolved client address, IPv6 per /64 (tower_governor's peer-IP
/// extractor, after the trusted-proxy resolution).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddressKey;

impl KeyExtractor for ClientAddressKey {
    type Key = IpAddr;

    fn extract<T>(&self, req: &axum::http::Request<T>) -> Result<IpAddr, GovernorError> {
        // Without a connection (an in-process router) everything shares one bucket.
        let ip = super::client::client_ip(req.extensions()).unwrap_or(Ipv4Addr::UNSPECIFIED.into());
        Ok(super::client::address_key(ip))
    }
}

/// The limiters, shared by every route (their state is per process; DESIGN.md).
#[derive(Clone)]
pub struct RateLimits {
    per_address: Option<Arc<GovernorConfig<ClientAddressKey, NoOpMiddleware>>>,
    global: Option<Arc<GovernorConfig<GlobalKeyExtractor, NoOpMiddleware>>>,
}

fn period(rate: u32) -> Duration {
    Duration::from_nanos((1_000_000_000 / u64::from(rate.max(1))).max(1))
}

impl RateLimits {
    pub fn new(s: RateLimitSettings) -> Self {
        let (rate, burst) = s.per_address;
        let per_address = (rate > 0)
            .then(|| {
                GovernorConfigBuilder::default()
                    .key_extractor(ClientAddressKey)
                    .period(period(rate))
                    .burst_size(burst.max(1))
                    .finish()
            })
            .flatten()
            .map(Arc::new);
        let (rate, burst) = s.global;
        let global = (rate > 0)
            .then(|| {
                GovernorConfigBuilder::default()
                    .key_extractor(GlobalKeyExtractor)
                    .period(period(rate))
                    .burst_size(burst.max(1))
                    .finish()
            })
            .flatten()
            .map(Arc::new);
        Self {
            per_address,
            global,
        }
    }

    /// Forgets addresses whose budget is full again, so the per-address table stays as large
    /// as the set of recently active clients (the limiter never forgets on its own).
    pub fn forget_idle(&self) {
        if let Some(c) = &self.per_address {
            c.limiter().retain_recent();
            c.limiter().shrink_to_fit();
        }
    }

    /// The tower layer that applies both limits to every request not exempt.
    pub fn layer(&self) -> RateLimitLayer {
        RateLimitLayer(self.clone())
    }
}

fn refusal(limit: &'static str, e: GovernorError) -> Response {
    metrics::counter!("http_rate_limited_total", "limit" => limit).increment(1);
    let (message, wait) = match (&e, limit) {
        (GovernorError::TooManyRequests { wait_time, .. }, "address") => (
            "too many requests from this address; retry later",
            *wait_time,
        ),
        (GovernorError::TooManyRequests { wait_time, .. }, _) => (
            "the server is taking too many requests; retry later",
            *wait_time,
        ),
        _ => ("too many requests; retry later", 1),
    };
    let wait = i64::try_from(wait).unwrap_or(i64::MAX);
    ApiError::new(ErrorCode::RateLimited, message)
        .retry_after(wait)
        .into_response()
}

/// See [`RateLimits::layer`].
#[derive(Clone)]
pub struct RateLimitLayer(RateLimits);

type Inner = BoxCloneSyncService<Request, Response, Infallible>;

impl<S> Layer<S> for RateLimitLayer
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    type Service = RateLimited<S>;

    fn layer(&self, inner: S) -> RateLimited<S> {
        let mut limited: Inner = BoxCloneSyncService::new(inner.clone());
        // Innermost first: the global limit is asked only once the address had budget.
        if let Some(c) = &self.0.global {
            let l = GovernorLayer::new(c.clone()).error_handler(|e| refusal("global", e));
            limited = BoxCloneSyncService::new(l.layer(limited));
        }
        if let Some(c) = &self.0.per_address {
            let l = GovernorLayer::new(c.clone()).error_handler(|e| refusal("address", e));
            limited = BoxCloneSyncService::new(l.layer(limited));
        }
        RateLimited {
            exempt: inner,
            limited,
        }
    }
}

/// A route with the limits in front of it, and a way around them for the exempt requests.
#[derive(Clone)]
pub struct RateLimited<S> {
    exempt: S,
    limited: Inner,
}

impl<S> Service<Request> for RateLimited<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Each call drives a clone to readiness itself (oneshot).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let exempt = req
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|p| is_exempt(req.method(), p.as_str()));
        if exempt {
            Box::pin(self.exempt.clone().oneshot(req))
        } else {
            Box::pin(self.limited.clone().oneshot(req))
        }
    }
}

/// Middleware: reads the whole body within `timeout` (and `limit` bytes) before the handler
/// runs. A slow body gets `408` and `Connection: close`; an oversized one `413`.
pub async fn read_body_within(
    timeout: Duration,
    limit: usize,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let collected = tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await;
    match collected {
        Ok(Ok(c)) => {
            next.run(Request::from_parts(parts, Body::from(c.to_bytes())))
                .await
        }
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            ApiError::new(ErrorCode::PayloadTooLarge, "request body is too large").into_response()
        }
        Ok(Err(_)) => ApiError::bad_request("the request body could not be read").into_response(),
        Err(_) => {
            let mut resp = ApiError::new(
                ErrorCode::RequestTimeout,
                "the request body did not arrive in time",
            )
            .into_response();
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            resp
        }
    }
}

/// The panic catcher: a handler that panics answers `500` in the one error shape (the panic
/// is logged at ERROR), instead of the connection being dropped.
pub fn catch_panics() -> tower_http::catch_panic::CatchPanicLayer<fn(PanicPayload) -> Response> {
    tower_http::catch_panic::CatchPanicLayer::custom(panic_response as fn(PanicPayload) -> Response)
}

/// What a panic carries.
pub type PanicPayload = Box<dyn std::any::Any + Send + 'static>;

fn panic_response(payload: PanicPayload) -> Response {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    // Bounded: a panic message can quote input.
    let what: String = what.chars().take(300).collect();
    metrics::counter!("http_panics_total").increment(1);
    ApiError::internal(format_args!("handler panicked: {what}")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_routes_are_exempt_and_nothing_else() {
        let post = Method::POST;
        for route in [
            "/api/v1/signin",
            "/api/v1/signin/totp",
            "/api/v1/signin/webauthn/finish",
            "/signin",
            "/signin/totp",
            "/api/v1/breakglass/{name}/failed-recovery",
        ] {
            assert!(is_exempt(&post, route), "{route}");
        }
        assert!(!is_exempt(&Method::GET, "/signin"));
        for route in [
            "/api/v1/signout",
            "/api/v1/signinx",
            "/oauth2/token",
            "/api/v1/breakglass/{name}/rotate",
        ] {
            assert!(!is_exempt(&post, route), "{route}");
        }
    }

    #[test]
    fn every_exemption_names_a_real_route() {
        // A renamed route must not silently lose (or keep) its exemption.
        for (m, pattern) in RATE_LIMIT_EXEMPT {
            let method: Method = m.parse().expect("method");
            assert!(
                crate::http::authz::ROUTES
                    .iter()
                    .any(|(rm, route, _)| *rm == *m && is_exempt(&method, route)),
                "{m} {pattern} matches no route"
            );
        }
    }
}
