//! HTTP at the edge: HEAD answers like GET, metric labels are bounded and described, and a
//! panicking handler answers 500 while its connection lives on.

use super::*;
use tokio::io::AsyncWriteExt;

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
    let text = metrics_text(&app).await;
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

api_tests!(
    head_answers_like_get_everywhere,
    metrics_labels_are_bounded_and_described,
);
