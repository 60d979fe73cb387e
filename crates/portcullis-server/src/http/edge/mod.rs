//! The deployment edge: how connections reach the router, and what every request passes on
//! the way (`client`, `limits`, `tls`).
//!
//! [`serve`] is the server's own accept loop (axum::serve has no connection caps or timeouts).
//! Invariants:
//! - Live connections are capped per client address (the TCP peer; IPv6 per /64). Over the cap
//!   a connection is closed at once (plain HTTP first gets a `429` in the API's error shape);
//!   other addresses are unaffected. Trusted proxies are not capped: they carry many clients.
//! - Slow clients are bounded: the TLS handshake, a new connection's first request head and
//!   every HTTP/1.1 request head (hyper's header-read timeout) within `header_read_timeout`; a
//!   connection with no request in flight is closed after `idle_timeout`; bodies have their own
//!   deadline (`limits::read_body_within`).
//! - Shutdown stops accepting, lets every connection finish its request, then returns.

pub mod client;
pub mod limits;
pub mod tls;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tower::Service;

pub use client::{ClientAddr, TrustedProxies};

/// Timeouts and caps of connections (configuration keys of the same names).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections_per_address: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections_per_address: 128,
        }
    }
}

/// What [`serve`] needs besides the listener and the router.
#[derive(Clone, Default)]
pub struct EdgeOptions {
    pub limits: ConnectionLimits,
    /// Not capped per address (their connections carry many clients).
    pub trusted_proxies: Arc<TrustedProxies>,
    /// TLS acceptor, when TLS is served directly.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Live connections per address key.
struct ConnectionCount {
    limit: usize,
    live: Mutex<HashMap<IpAddr, usize>>,
}

/// One counted connection; uncounted on drop.
struct Slot {
    count: Arc<ConnectionCount>,
    key: IpAddr,
}

impl ConnectionCount {
    fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let key = client::address_key(ip);
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let n = live.entry(key).or_insert(0);
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(Slot {
            count: self.clone(),
            key,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut live = self.count.live.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = live.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                live.remove(&self.key);
            }
        }
    }
}

/// The answer written to a plain-HTTP connection refused for the per-address cap.
fn refusal_bytes() -> Vec<u8> {
    let body = serde_json::json!({ "error": {
        "code": portcullis_core::error::ErrorCode::RateLimited.as_str(),
        "message": "too many connections from this address; close some and retry",
    }})
    .to_string();
    format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Accept errors that concern one connection only (the listener is fine).
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset | Interrupted
    )
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets open connections finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: EdgeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let count = Arc::new(ConnectionCount {
        limit: options.limits.max_connections_per_address.max(1),
        live: Mutex::default(),
    });
    let refusal = Arc::new(refusal_bytes());
    let options = Arc::new(options);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Every connection task holds a sender; `recv` returns `None` once all have ended.
    let (alive_tx, mut alive_rx) = tokio::sync::mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let peer_ip = peer.ip().to_canonical();
        let slot = if options.trusted_proxies.contains(peer_ip) {
            None
        } else {
            match count.try_acquire(peer_ip) {
                Some(s) => Some(s),
                None => {
                    metrics::counter!("http_connections_refused_total", "reason" => "per_address_cap")
                        .increment(1);
                    if options.tls.is_none() {
                        // Best effort and never waiting: the socket buffer takes it or not.
                        let _ = stream.try_write(&refusal);
                    }
                    drop(stream);
                    continue;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let options = options.clone();
        let stop = stop_rx.clone();
        let alive = alive_tx.clone();
        tokio::spawn(async move {
            connection(stream, peer, router, &options, stop).await;
            drop(slot);
            drop(alive);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive_tx);
    let _ = alive_rx.recv().await;
    Ok(())
}

/// One connection: the TLS handshake (bounded), then HTTP.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    options: &EdgeOptions,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let started = Instant::now();
    let limits = options.limits;
    match &options.tls {
        None => drive(stream, peer, router, limits, started, stop).await,
        Some(acceptor) => {
            match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => drive(tls, peer, router, limits, started, stop).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

/// Whether a request is in flight on a connection, and when it last changed.
struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `started` of the last request start or end.
    last_ms: AtomicU64,
    served: AtomicBool,
    changed: tokio::sync::Notify,
}

/// Marks a request in flight until dropped (also when the connection dies mid-request).
struct Busy(Arc<Activity>);

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.served.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.touch();
        Busy(self.clone())
    }

    /// When the connection is to be closed if nothing happens: `None` while a request is in
    /// flight; before the first request, the header-read timeout from the accept.
    fn deadline(&self, limits: ConnectionLimits) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        if !self.served.load(Ordering::Relaxed) {
            return Some(self.started + limits.header_read_timeout);
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        Some(self.started + last + limits.idle_timeout)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.touch();
        self.0.changed.notify_one();
    }
}

/// HTTP/1.1 or HTTP/2 on an established stream, until the client leaves, a timeout closes
/// it, or the server shuts down.
async fn drive<IO>(
    io: IO,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    started: Instant,
    mut stop: tokio::sync::watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity {
        started,
        in_flight: AtomicUsize::new(0),
        last_ms: AtomicU64::new(0),
        served: AtomicBool::new(false),
        changed: tokio::sync::Notify::new(),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let busy = activity.begin();
            let mut router = router.clone();
            async move {
                let resp = router.call(req).await;
                drop(busy);
                resp
            }
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        let deadline = activity.deadline(limits);
        let wait = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.changed(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = wait, if !closing => {
                // The deadline may have moved while sleeping; close only if it has passed.
                if activity.deadline(limits).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!(%peer, "closing an idle connection");
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
            () = activity.changed.notified(), if !closing => {}
        }
    }
}
