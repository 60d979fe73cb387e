//! Requests beside the typed client and their answers: raw TCP, form and JSON posts, error
//! bodies, refused calls; polling until something holds.

use super::*;

/// Sends `POST path` over a plain TCP connection with `Content-Length: declared` and no body,
/// then reads the whole answer; returns its status and body.
pub(crate) async fn raw_post_declaring_length(
    base: &str,
    path: &str,
    auth: &str,
    declared: usize,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("answer in time")
    .expect("read");
    let answer = String::from_utf8(answer).expect("utf-8 answer");
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

pub(crate) async fn form_post(
    app: &TestApp,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    app.http
        .post(format!("{}{path}", app.base))
        .form(form)
        .send()
        .await
        .expect("send")
}

pub(crate) async fn post_json(
    app: &TestApp,
    token: Option<&str>,
    path: &str,
    body: serde_json::Value,
) -> reqwest::Response {
    let mut rb = app.http.post(format!("{}{path}", app.base)).json(&body);
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    rb.send().await.expect("post")
}

/// A public JSON document (discovery, JWKS, the OpenAPI document), no credential.
pub(crate) async fn public_json(app: &TestApp, path: &str) -> serde_json::Value {
    let r = app
        .http
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.expect("json")
}

/// The `/metrics` page as text (it answers anyone).
pub(crate) async fn metrics_text(app: &TestApp) -> String {
    app.http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

pub(crate) async fn api_get(app: &TestApp, token: &str, path: &str) -> serde_json::Value {
    let r = app
        .http
        .get(format!("{}{path}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.expect("json")
}

pub(crate) async fn error_of(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.expect("error body");
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

pub(crate) fn refused(r: Result<impl std::fmt::Debug, ClientError>, code: &str, needle: &str) {
    let e = r.expect_err("refused");
    assert_eq!(e.code(), Some(code), "{e}");
    assert!(e.to_string().contains(needle), "{needle} not in {e}");
}

/// Polls `check` every 100 ms for up to `secs` seconds.
pub(crate) async fn eventually(what: &str, secs: u64, mut check: impl AsyncFnMut() -> bool) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}
