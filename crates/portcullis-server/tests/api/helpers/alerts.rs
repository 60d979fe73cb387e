//! Alerts: an HTTP receiver standing in for webhooks and SMS gateways, channels, counting
//! alerts, and the SMTP sink (tests/support/smtp_sink.py) with its mailbox.

use super::*;

/// What a test receiver (webhook or SMS gateway) got.
#[derive(Default)]
pub(crate) struct Received {
    /// (path, headers, body) of each accepted request.
    pub(crate) requests: Vec<(String, axum::http::HeaderMap, String)>,
    /// Answer this many requests with 500 first.
    pub(crate) fail_next: usize,
    pub(crate) failed: usize,
}

pub(crate) type Inbox = std::sync::Arc<std::sync::Mutex<Received>>;

/// A real HTTP server on loopback (port 0, or `port` to come back on the same address) that
/// records what it receives; every answer closes the connection, so stopping it stops it.
pub(crate) async fn receiver(inbox: Inbox, port: u16) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind receiver");
    let port = listener.local_addr().expect("addr").port();
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: String| {
            let inbox = inbox.clone();
            async move {
                let mut r = inbox.lock().expect("inbox");
                let status = if r.fail_next > 0 {
                    r.fail_next -= 1;
                    r.failed += 1;
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    r.requests.push((uri.path().to_owned(), headers, body));
                    axum::http::StatusCode::OK
                };
                (status, [(axum::http::header::CONNECTION, "close")], "")
            }
        },
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, task)
}

pub(crate) async fn add_channel(
    app: &TestApp,
    token: &str,
    body: serde_json::Value,
) -> reqwest::Response {
    app.http
        .post(format!("{}/api/v1/alerts/channels", app.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("add channel")
}

/// A service account tried as a person: the built-in critical alert fires.
pub(crate) async fn sa_interactive_signin(app: &TestApp, admin: &Client, name: &str) {
    let _ = admin
        .create_service_account(&CreateServiceAccountRequest {
            name: name.into(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await;
    let r = app
        .http
        .post(format!("{}/api/v1/signin", app.base))
        .json(&serde_json::json!({ "username": name, "password": "any-password-at-all" }))
        .send()
        .await
        .expect("signin");
    assert_eq!(r.status(), 401);
}

/// How many alerts of `rule` the messages in `list` for `channel` (`None`: the records of
/// alerts no channel received) stand for: one each, a summary the alerts it counts.
pub(crate) fn covered(list: &serde_json::Value, rule: &str, channel: Option<&str>) -> i64 {
    alerts_of(list, rule)
        .iter()
        .filter(|a| a["channel"].as_str() == channel)
        .map(|a| a["summary"]["count"].as_i64().unwrap_or(1))
        .sum()
}

pub(crate) fn alerts_of(list: &serde_json::Value, rule: &str) -> Vec<serde_json::Value> {
    list.as_array()
        .expect("list")
        .iter()
        .filter(|a| a["topic"] == rule)
        .cloned()
        .collect()
}

pub(crate) async fn alert_count(app: &TestApp, token: &str, rule: &str) -> usize {
    alerts_of(&api_get(app, token, "/api/v1/alerts").await, rule).len()
}

/// The SMTP server the tests deliver to (aiosmtpd, see tests/support/smtp_sink.py): its port,
/// the directory it writes messages into, and the process. `None` where Python's aiosmtpd is
/// missing, unless PORTCULLIS_REQUIRE_SMTP says it must be there (CI).
pub(crate) fn smtp_sink() -> Option<(u16, tempfile::TempDir, std::process::Child)> {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tmp");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_sink.py");
    let spawned = std::process::Command::new("python3")
        .arg(script)
        .arg(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let required = std::env::var("PORTCULLIS_REQUIRE_SMTP").is_ok();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) if !required => {
            eprintln!("skipped: cannot run python3 ({e})");
            return None;
        }
        Err(e) => panic!("python3 is required: {e}"),
    };
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    let _ = std::io::BufReader::new(stdout).read_line(&mut line);
    match line.trim().strip_prefix("ready ") {
        Some(p) => Some((p.parse().expect("port"), dir, child)),
        None if !required => {
            let _ = child.kill();
            eprintln!("skipped: the SMTP sink did not start (pip install aiosmtpd)");
            None
        }
        None => panic!("the SMTP sink did not start (pip install aiosmtpd)"),
    }
}

/// Messages the SMTP sink accepted.
pub(crate) fn mailbox(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        if e.path().extension().is_some_and(|x| x == "json") {
            let text = std::fs::read_to_string(e.path()).expect("read");
            out.push(serde_json::from_str(&text).expect("json"));
        }
    }
    out
}
