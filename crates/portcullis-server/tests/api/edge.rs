//! The deployment edge (issue 14): public URL, TLS and its reload, trusted proxies, rate
//! limits, connection caps and timeouts, HEAD, metrics labels and help, panics.

use super::*;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A SQLite server with `tweak` applied (edge behaviour does not depend on the backend).
async fn edge_app(tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn_with(Backend::Sqlite, tweak)
        .await
        .expect("sqlite app")
}

fn addr_of(app: &TestApp) -> SocketAddr {
    app.base
        .trim_start_matches("http://")
        .parse()
        .expect("socket address")
}

/// A TCP connection to the server from the loopback address `from` (127.0.0.x).
async fn connect_from(app: &TestApp, from: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(from.parse().expect("ip"), 0))
        .expect("bind source address");
    socket.connect(addr_of(app)).await.expect("connect")
}

/// An HTTP client whose connections come from `from`.
fn client_from(from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from.parse::<IpAddr>().expect("ip"))
        .build()
        .expect("client")
}

/// Reads one HTTP/1.1 answer (with Content-Length) from `stream`: status, head, body.
async fn read_answer(stream: &mut TcpStream) -> (u16, String, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut chunk))
            .await
            .expect("answer in time")
            .expect("read");
        assert!(n > 0, "connection closed before an answer");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().expect("length"))
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut chunk))
            .await
            .expect("body in time")
            .expect("read");
        assert!(n > 0, "connection closed inside the body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned();
    (status, head, body)
}

/// Whether the server closes `stream` (reads EOF or a reset) within `bound`; anything it sends
/// first is returned.
async fn closed_within(stream: &mut TcpStream, bound: Duration) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let mut chunk = [0u8; 1024];
    let end = tokio::time::Instant::now() + bound;
    loop {
        match tokio::time::timeout_at(end, stream.read(&mut chunk)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(seen),
            Ok(Ok(n)) => seen.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn error_code(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

// ----- public_url -----

/// Unset, the public URL follows the bound listener: discovery of a server on a random port
/// names that port (it used to say localhost:8080 whatever the listener).
async fn public_url_follows_the_listener(backend: Backend) {
    let Some(app) = spawn_with(backend, |c| c.public_url = None).await else {
        return;
    };
    let port = addr_of(&app).port();
    let d: serde_json::Value = app
        .http
        .get(format!("{}/.well-known/openid-configuration", app.base))
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("json");
    let own = format!("http://localhost:{port}");
    assert_eq!(d["issuer"], own.as_str());
    assert_eq!(d["jwks_uri"], format!("{own}/oauth2/jwks").as_str());
    assert_eq!(app.public_url, own);
    app.stop().await;
}

// ----- trusted proxies -----

/// The `client_ip` of the latest failed password sign-in for `user`.
async fn failed_signin_ip(app: &TestApp, user: &str) -> String {
    let events = app
        .client
        .audit_events(&EventFilter {
            action: Some("signin.password".into()),
            target: Some(format!("user:{user}")),
            limit: Some(100),
            ..Default::default()
        })
        .await
        .expect("events")
        .events;
    let last = events.last().expect("a sign-in event");
    last.details["client_ip"]
        .as_str()
        .expect("client_ip")
        .to_owned()
}

async fn failed_signin_with_forwarded_for(app: &TestApp, user: &str, xff: &str) {
    let resp = app
        .http
        .post(format!("{}/api/v1/signin", app.base))
        .header("x-forwarded-for", xff)
        .json(&serde_json::json!({ "username": user, "password": "not-the-password-1" }))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 401);
}

/// Without `trusted_proxies`, a client's own `X-Forwarded-For` changes nothing: throttling
/// and the audit trail see the TCP peer.
async fn forwarded_for_from_an_untrusted_peer_is_ignored(app: TestApp) {
    failed_signin_with_forwarded_for(&app, "nobody-a", "203.0.113.7").await;
    assert_eq!(failed_signin_ip(&app, "nobody-a").await, "127.0.0.1");
    app.stop().await;
}

/// From a trusted proxy the right-most address that is not itself a trusted proxy is the
/// client; what the client forged to its left is ignored.
async fn forwarded_for_from_a_trusted_proxy_is_believed(backend: Backend) {
    let Some(app) = spawn_with(backend, |c| {
        c.trusted_proxies = vec!["127.0.0.1/32"].into();
    })
    .await
    else {
        return;
    };
    failed_signin_with_forwarded_for(&app, "nobody-b", "198.51.100.1, 203.0.113.7").await;
    assert_eq!(failed_signin_ip(&app, "nobody-b").await, "203.0.113.7");
    // A chain through a second trusted hop.
    failed_signin_with_forwarded_for(&app, "nobody-c", "203.0.113.8, 127.0.0.1").await;
    assert_eq!(failed_signin_ip(&app, "nobody-c").await, "203.0.113.8");
    app.stop().await;
}

// ----- rate limits -----

/// Sends `GET /healthz` from `client` until a 429 (at most `n` times); the 429, if any.
async fn until_limited(
    client: &reqwest::Client,
    url: &str,
    xff: Option<&str>,
    n: usize,
) -> Option<reqwest::Response> {
    for _ in 0..n {
        let mut req = client.get(url);
        if let Some(x) = xff {
            req = req.header("x-forwarded-for", x);
        }
        let resp = req.send().await.expect("send");
        if resp.status().as_u16() == 429 {
            return Some(resp);
        }
        assert_eq!(resp.status().as_u16(), 200);
    }
    None
}

/// Over the per-address rate, requests get 429 in the one error shape with Retry-After;
/// another address is unaffected, and the sign-in endpoints of the limited address still
/// answer (break-glass must get through; a shared address must not lock anyone out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_address_rate_limit_spares_other_addresses_and_sign_in() {
    let app = edge_app(|c| {
        c.rate_limit_per_address = 1;
        c.rate_limit_per_address_burst = 3;
    })
    .await;
    let health = format!("{}/healthz", app.base);
    let one = client_from("127.0.0.1");
    let limited = until_limited(&one, &health, None, 20)
        .await
        .expect("the fourth request in a burst of three is refused");
    let retry: i64 = limited
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(retry >= 1);
    assert_eq!(error_code(limited).await, (429, "rate_limited".into()));
    // Another address has its own budget.
    let two = client_from("127.0.0.2");
    let resp = two.get(&health).send().await.expect("send");
    assert_eq!(resp.status().as_u16(), 200);
    // Sign-in and the failed-recovery report from the limited address are not rate limited.
    for _ in 0..3 {
        let resp = one
            .post(format!("{}/api/v1/signin", app.base))
            .json(&serde_json::json!({ "username": "someone", "password": "wrong-password-1" }))
            .send()
            .await
            .expect("send");
        assert_eq!(error_code(resp).await, (401, "invalid_credentials".into()));
        let resp = one
            .post(format!(
                "{}/api/v1/breakglass/nobody/failed-recovery",
                app.base
            ))
            .json(&serde_json::json!({}))
            .send()
            .await
            .expect("send");
        assert_ne!(error_code(resp).await.1, "rate_limited");
    }
    app.stop().await;
}

/// The global limit refuses every address once spent, but never sign-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_rate_limit_covers_all_addresses_but_not_sign_in() {
    let app = edge_app(|c| {
        c.rate_limit_per_address = 0;
        c.rate_limit_global = 1;
        c.rate_limit_global_burst = 3;
    })
    .await;
    let health = format!("{}/healthz", app.base);
    let one = client_from("127.0.0.1");
    until_limited(&one, &health, None, 20).await.expect("spent");
    let two = client_from("127.0.0.2");
    let resp = two.get(&health).send().await.expect("send");
    assert_eq!(error_code(resp).await, (429, "rate_limited".into()));
    let resp = two
        .post(format!("{}/api/v1/signin", app.base))
        .json(&serde_json::json!({ "username": "someone", "password": "wrong-password-1" }))
        .send()
        .await
        .expect("send");
    assert_eq!(error_code(resp).await, (401, "invalid_credentials".into()));
    app.stop().await;
}

/// Behind a trusted reverse proxy every client has its own budget (keyed by the resolved
/// address), and IPv6 clients are counted per /64.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_behind_a_trusted_proxy_have_their_own_budgets_ipv6_per_64() {
    let app = edge_app(|c| {
        c.trusted_proxies = vec!["127.0.0.1/32"].into();
        c.rate_limit_per_address = 1;
        c.rate_limit_per_address_burst = 3;
    })
    .await;
    let health = format!("{}/healthz", app.base);
    let proxy = client_from("127.0.0.1");
    until_limited(&proxy, &health, Some("203.0.113.7"), 20)
        .await
        .expect("first client limited");
    let other = proxy
        .get(&health)
        .header("x-forwarded-for", "203.0.113.8")
        .send()
        .await
        .expect("send");
    assert_eq!(
        other.status().as_u16(),
        200,
        "another client behind the proxy"
    );
    until_limited(&proxy, &health, Some("2001:db8:0:5::1"), 20)
        .await
        .expect("v6 client limited");
    let same_64 = proxy
        .get(&health)
        .header("x-forwarded-for", "2001:db8:0:5:ffff::2")
        .send()
        .await
        .expect("send");
    assert_eq!(error_code(same_64).await, (429, "rate_limited".into()));
    let next_64 = proxy
        .get(&health)
        .header("x-forwarded-for", "2001:db8:0:6::1")
        .send()
        .await
        .expect("send");
    assert_eq!(next_64.status().as_u16(), 200);
    app.stop().await;
}

// ----- slow and many connections -----

/// Connections over the per-address cap are refused at once; another address still gets
/// through, and a freed slot is usable again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_address_cap_are_refused() {
    let app = edge_app(|c| {
        c.max_connections_per_address = 2;
        c.header_read_timeout_seconds = 60;
    })
    .await;
    let first = connect_from(&app, "127.0.0.1").await;
    let mut second = connect_from(&app, "127.0.0.1").await;
    // Prove both are being served (accepted and counted) before the third arrives.
    second
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(read_answer(&mut second).await.0, 200);
    let mut third = connect_from(&app, "127.0.0.1").await;
    let seen = closed_within(&mut third, Duration::from_secs(20))
        .await
        .expect("the third connection is closed by the server");
    let seen = String::from_utf8_lossy(&seen);
    assert!(
        seen.is_empty() || seen.starts_with("HTTP/1.1 429"),
        "{seen}"
    );
    assert!(seen.is_empty() || seen.contains("rate_limited"), "{seen}");
    let resp = client_from("127.0.0.2")
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .expect("another address gets through");
    assert_eq!(resp.status().as_u16(), 200);
    // Freeing a slot lets the address in again (once the server has seen the close).
    drop(first);
    let mut served = false;
    for _ in 0..100 {
        let mut again = connect_from(&app, "127.0.0.1").await;
        if again
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .is_ok()
            && let Some(seen) = closed_within(&mut again, Duration::from_secs(5)).await
            && String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200")
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "the freed slot is usable");
    drop(second);
    app.stop().await;
}

/// A slowloris client (headers trickled) and a silent one are cut off by the header-read
/// timeout; the server keeps answering others meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_silent_clients_are_cut_off() {
    let app = edge_app(|c| {
        c.header_read_timeout_seconds = 1;
        c.idle_timeout_seconds = 600;
    })
    .await;
    let mut silent = connect_from(&app, "127.0.0.1").await;
    let slow = connect_from(&app, "127.0.0.1").await;
    let (mut slow_read, mut slow_write) = slow.into_split();
    let closed = tokio::spawn(async move {
        let mut b = [0u8; 256];
        loop {
            match slow_read.read(&mut b).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    slow_write
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        .await
        .expect("write");
    let mut cut_off = false;
    // Up to 60 s of trickling, one header line every 250 ms; the timeout is 1 s.
    for i in 0..240 {
        if closed.is_finished() {
            cut_off = true;
            break;
        }
        let line = format!("X-Slow-{i}: 1\r\n");
        if slow_write.write_all(line.as_bytes()).await.is_err() {
            cut_off = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(cut_off, "the trickling client was cut off");
    assert!(
        closed_within(&mut silent, Duration::from_secs(30))
            .await
            .is_some(),
        "the silent client was cut off"
    );
    let resp = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .expect("others are served");
    assert_eq!(resp.status().as_u16(), 200);
    app.stop().await;
}

/// A kept-alive connection with no request in flight is closed after `idle_timeout_seconds`
/// (the header-read timeout is far longer here, so it is the idle timer that closes it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let app = edge_app(|c| {
        c.header_read_timeout_seconds = 120;
        c.idle_timeout_seconds = 1;
    })
    .await;
    let mut conn = connect_from(&app, "127.0.0.1").await;
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(read_answer(&mut conn).await.0, 200);
    let seen = closed_within(&mut conn, Duration::from_secs(60))
        .await
        .expect("closed while idle");
    assert!(seen.is_empty(), "{}", String::from_utf8_lossy(&seen));
    app.stop().await;
}

/// A body that does not arrive within `body_timeout_seconds` is answered 408 in the one
/// error shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_are_answered_408() {
    let app = edge_app(|c| c.body_timeout_seconds = 1).await;
    let mut conn = connect_from(&app, "127.0.0.1").await;
    conn.write_all(
        b"POST /api/v1/signin HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user",
    )
    .await
    .expect("write");
    let (status, head, body) = read_answer(&mut conn).await;
    assert_eq!(status, 408, "{head}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["error"]["code"], "request_timeout");
    app.stop().await;
}

// ----- HEAD, metrics, panics -----

/// `HEAD` answers like `GET` on every GET route (it used to be 500: no authorisation entry).
async fn head_answers_like_get_everywhere(app: TestApp) {
    let auth = format!("Bearer {}", app.token);
    for (method, route, _) in portcullis_server::http::authz::ROUTES {
        if *method != "GET" {
            continue;
        }
        let path: String = route
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        let url = format!("{}{path}", app.base);
        let get = app
            .http
            .get(&url)
            .header("authorization", &auth)
            .send()
            .await
            .expect("GET");
        let head = app
            .http
            .head(&url)
            .header("authorization", &auth)
            .send()
            .await
            .expect("HEAD");
        assert_ne!(head.status().as_u16(), 500, "HEAD {route}");
        assert_eq!(head.status(), get.status(), "HEAD and GET {route}");
        assert!(head.bytes().await.expect("body").is_empty(), "HEAD {route}");
    }
    app.stop().await;
}

/// Invented methods are counted as `OTHER`, so they cannot make `/metrics` grow; every
/// metric has `# HELP` text.
async fn metrics_labels_are_bounded_and_described(app: TestApp) {
    for i in 0..40 {
        let method =
            reqwest::Method::from_bytes(format!("INVENTED{i}X").as_bytes()).expect("method");
        let resp = app
            .http
            .request(method, format!("{}/healthz", app.base))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status().as_u16(), 405);
    }
    // Something that is refused by a limit, so its metric exists too.
    let text = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        !text.contains("INVENTED"),
        "invented methods are not labels"
    );
    assert!(text.contains("method=\"OTHER\""), "{text}");
    let helped: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let mut names = BTreeSet::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        names.insert(name);
    }
    assert!(!names.is_empty());
    for name in names {
        let base = ["_sum", "_count", "_bucket"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| helped.contains(b)))
            .unwrap_or(name);
        assert!(helped.contains(base), "{name} has no HELP text");
    }
    app.stop().await;
}

/// A handler that panics answers 500 in the one error shape, and the same connection then
/// serves the next request (a router built here around the server's own layer and accept
/// loop, so no panicking route ships).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_answers_500_and_the_connection_lives() {
    use axum::routing::get;
    let router = axum::Router::new()
        .route(
            "/boom",
            get(|| async {
                let v: Vec<u8> = Vec::new();
                // An out-of-bounds index, as a bug would.
                let x = v[std::hint::black_box(3)];
                x.to_string()
            }),
        )
        .route("/fine", get(|| async { "fine" }))
        .layer(portcullis_server::http::edge::limits::catch_panics());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(portcullis_server::http::edge::serve(
        listener,
        router,
        portcullis_server::http::edge::EdgeOptions::default(),
        async {
            let _ = rx.await;
        },
    ));
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    conn.write_all(b"GET /boom HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .expect("write");
    let (status, _, body) = read_answer(&mut conn).await;
    assert_eq!(status, 500);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["error"]["code"], "internal");
    assert!(
        !body.contains("index out of bounds"),
        "no internals: {body}"
    );
    conn.write_all(b"GET /fine HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .expect("same connection");
    let (status, _, body) = read_answer(&mut conn).await;
    assert_eq!((status, body.as_str()), (200, "fine"));
    drop(conn);
    let _ = tx.send(());
    server.await.expect("task").expect("serve");
}

// ----- TLS -----

struct TestCert {
    cert_pem: String,
    key_pem: String,
}

fn test_cert() -> TestCert {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    TestCert {
        cert_pem: c.cert.pem(),
        key_pem: c.signing_key.serialize_pem(),
    }
}

fn trusting(cert: &TestCert, addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(cert.cert_pem.as_bytes()).expect("pem"),
        )
        .resolve("localhost", addr)
        .build()
        .expect("client")
}

/// TLS is served from `tls_cert`/`tls_key` (the public URL then says https); a reload swaps
/// the certificate for new connections, and a failed reload keeps the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_served_and_reloaded() {
    let dir = tempfile::tempdir().expect("tmp");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (a, b) = (test_cert(), test_cert());
    std::fs::write(&cert_path, &a.cert_pem).expect("write");
    std::fs::write(&key_path, &a.key_pem).expect("write");
    let mut config = config_for(Backend::Sqlite, dir.path())
        .await
        .expect("config");
    config.public_url = None;
    config.tls_cert = Some(cert_path.clone());
    config.tls_key = Some(key_path.clone());
    let app = Application::build(config, BuildOptions::default())
        .await
        .expect("builds with TLS");
    let addr: SocketAddr = ([127, 0, 0, 1], app.port()).into();
    let own = format!("https://localhost:{}", app.port());
    assert_eq!(app.public_url(), own);
    let reloader = app.tls_reloader().expect("a reloader with TLS");
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let discovery = format!("{own}/.well-known/openid-configuration");
    let d: serde_json::Value = trusting(&a, addr)
        .get(&discovery)
        .send()
        .await
        .expect("https with certificate A")
        .json()
        .await
        .expect("json");
    assert_eq!(d["issuer"], own.as_str());
    assert!(
        trusting(&b, addr).get(&discovery).send().await.is_err(),
        "B is not served yet"
    );

    std::fs::write(&cert_path, &b.cert_pem).expect("write");
    std::fs::write(&key_path, &b.key_pem).expect("write");
    reloader.reload().expect("reload B");
    let resp = trusting(&b, addr)
        .get(&discovery)
        .send()
        .await
        .expect("https with certificate B after the reload");
    assert_eq!(resp.status().as_u16(), 200);

    // A key that does not belong to the certificate, then garbage: refused, B stays.
    std::fs::write(&key_path, &a.key_pem).expect("write");
    let e = reloader.reload().expect_err("mismatched key");
    assert!(e.to_string().contains("does not belong"), "{e}");
    std::fs::write(&cert_path, "not a certificate").expect("write");
    assert!(reloader.reload().is_err(), "garbage");
    let resp = trusting(&b, addr)
        .get(&discovery)
        .send()
        .await
        .expect("B still served");
    assert_eq!(resp.status().as_u16(), 200);
    let _ = tx.send(());
    server.await.expect("task").expect("serve");
}

/// Unreadable TLS files fail the start clearly, before anything is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_files_fail_the_start_and_write_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut config = config_for(Backend::Sqlite, dir.path())
        .await
        .expect("config");
    config.tls_cert = Some(dir.path().join("missing-cert.pem"));
    config.tls_key = Some(dir.path().join("missing-key.pem"));
    let e = Application::build(config.clone(), BuildOptions::default())
        .await
        .err()
        .expect("refused");
    assert!(matches!(e, StartError::Tls(_)), "{e}");
    assert!(e.to_string().contains("missing-cert.pem"), "{e}");
    assert!(!config.data_dir.exists(), "nothing written");
}

api_tests!(
    forwarded_for_from_an_untrusted_peer_is_ignored,
    head_answers_like_get_everywhere,
    metrics_labels_are_bounded_and_described,
);

backend_tests!(
    public_url_follows_the_listener,
    forwarded_for_from_a_trusted_proxy_is_believed,
);
