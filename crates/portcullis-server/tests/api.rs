//! End-to-end tests of the HTTP API: a real server on port 0, a temporary data directory
//! (SQLite) or a fresh PostgreSQL database, driven through `portcullis-client` and raw HTTP.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;

use base64::Engine;
use portcullis_client::{Client, EventFilter};
use portcullis_server::{Application, BuildOptions, Config, StartError};
use portcullis_store::testing::fresh_postgres_url;
use secrecy::SecretString;
use tokio::sync::oneshot;

struct TestApp {
    base: String,
    client: Client,
    anonymous: Client,
    token: String,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
    dir: tempfile::TempDir,
    config: Config,
    /// The server's public URL (issuer), without a trailing slash.
    public_url: String,
}

impl TestApp {
    async fn stop(mut self) -> (tempfile::TempDir, Config, String) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(d) = self.done.take() {
            d.await.expect("server task");
        }
        (self.dir, self.config, self.token.clone())
    }
}

#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

async fn config_for(backend: Backend, dir: &std::path::Path) -> Option<Config> {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.join("data"),
        // The origin the test browser claims (`origin()`), as a deployment behind another
        // address would set it; `public_url_follows_the_listener` checks the unset default.
        public_url: Some("http://localhost:8080".into()),
        ..Config::default()
    };
    if let Backend::Postgres = backend {
        config.database_url = Some(SecretString::from(fresh_postgres_url().await?));
    }
    Some(config)
}

/// Starts a server; `token` is the bootstrap token of an earlier start on the same tenant.
async fn start(config: Config, dir: tempfile::TempDir, token: Option<String>) -> TestApp {
    let app = Application::build(config.clone(), BuildOptions::default())
        .await
        .expect("server builds");
    let created = app.bootstrap_token().map(str::to_owned);
    assert_eq!(
        created.is_some(),
        token.is_none(),
        "a token is created on the first start only"
    );
    let token = created.or(token).unwrap_or_default();
    let base = format!("http://127.0.0.1:{}", app.port());
    let public_url = app.public_url().to_owned();
    let (tx, rx) = oneshot::channel::<()>();
    let done = tokio::spawn(async move {
        app.run_until(async {
            let _ = rx.await;
        })
        .await
        .expect("serve");
    });
    TestApp {
        client: Client::new(&base, Some(SecretString::from(token.clone()))).expect("client"),
        anonymous: Client::new(&base, None).expect("client"),
        base,
        token,
        http: reqwest::Client::new(),
        stop: Some(tx),
        done: Some(done),
        dir,
        config,
        public_url,
    }
}

async fn spawn_app(backend: Backend) -> Option<TestApp> {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_for(backend, dir.path()).await?;
    Some(start(config, dir, None).await)
}

/// Sends `POST path` over a plain TCP connection with `Content-Length: declared` and no body,
/// then reads the whole answer; returns its status and body.
async fn raw_post_declaring_length(
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

async fn event_count(app: &TestApp) -> usize {
    app.client
        .audit_events(&EventFilter {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("list")
        .events
        .len()
}

async fn health_and_readiness(app: TestApp) {
    assert_eq!(app.anonymous.health().await.expect("healthz").status, "ok");
    let ready = app.anonymous.ready().await.expect("readyz");
    assert_eq!(ready.status, "ready");
    assert_eq!(
        ready.schema_version,
        portcullis_store::known_schema_version(false)
    );
    app.stop().await;
}

async fn errors_have_one_shape(app: TestApp) {
    let before = event_count(&app).await;
    let url = |p: &str| format!("{}{}", app.base, p);
    let check = |status: u16, code: &'static str| {
        move |resp: reqwest::Response| async move {
            assert_eq!(resp.status().as_u16(), status);
            let body: serde_json::Value = resp.json().await.expect("json error body");
            assert_eq!(body["error"]["code"], code, "{body}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
        }
    };
    check(404, "not_found")(
        app.http
            .get(url("/api/v1/nope"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    check(405, "method_not_allowed")(app.http.delete(url("/healthz")).send().await.expect("send"))
        .await;
    let cp = url("/api/v1/audit/checkpoints");
    let auth = format!("Bearer {}", app.token);
    // Every code has one status: a body that is not the operation's JSON, by syntax or by
    // shape, is a 422 `invalid_json`.
    check(422, "invalid_json")(
        app.http
            .post(&cp)
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .body("{\"reason\": ")
            .send()
            .await
            .expect("send"),
    )
    .await;
    check(415, "unsupported_media_type")(
        app.http
            .post(&cp)
            .header("authorization", &auth)
            .header("content-type", "text/plain")
            .body("{\"reason\": \"x\"}")
            .send()
            .await
            .expect("send"),
    )
    .await;
    check(422, "invalid_json")(
        app.http
            .post(&cp)
            .header("authorization", &auth)
            .json(&serde_json::json!({"reason": 5}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    check(422, "invalid_json")(
        app.http
            .post(&cp)
            .header("authorization", &auth)
            .json(&serde_json::json!({"reason": "x", "extra": 1}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    // A body over the limit. The server answers 413 from the declared length without reading
    // the body and then closes the connection; a client still writing a large body can see that
    // close as a reset before it reads the answer (a race of TCP, not of the server). So declare
    // the length and send no body: the answer then always arrives whole.
    let (status, body) =
        raw_post_declaring_length(&app.base, "/api/v1/audit/checkpoints", &auth, 200 * 1024).await;
    assert_eq!(status, 413, "{body}");
    let err: serde_json::Value = serde_json::from_str(&body).expect("error json");
    assert_eq!(err["error"]["code"], "payload_too_large", "{body}");
    check(400, "invalid_request")(
        app.http
            .post(&cp)
            .header("authorization", &auth)
            .json(&serde_json::json!({"reason": "   "}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    check(400, "invalid_request")(
        app.http
            .get(url("/api/v1/audit/events?limit=abc"))
            .header("authorization", &auth)
            .send()
            .await
            .expect("send"),
    )
    .await;
    check(400, "invalid_request")(
        app.http
            .get(url("/api/v1/audit/events?since=yesterday"))
            .header("authorization", &auth)
            .send()
            .await
            .expect("send"),
    )
    .await;
    check(400, "invalid_request")(
        app.http
            .get(url("/api/v1/audit/events?outcome=maybe"))
            .header("authorization", &auth)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(event_count(&app).await, before, "bad input changed nothing");
    app.stop().await;
}

async fn the_bootstrap_token_is_the_only_credential(app: TestApp) {
    let err = app
        .anonymous
        .audit_verify()
        .await
        .expect_err("no credential");
    assert_eq!(err.code(), Some("unauthenticated"));
    let wrong = Client::new(
        &app.base,
        Some(SecretString::from("not-the-token".to_owned())),
    )
    .expect("client");
    assert_eq!(
        wrong
            .audit_events(&EventFilter::default())
            .await
            .expect_err("wrong")
            .code(),
        Some("unauthenticated")
    );
    let resp = app
        .http
        .get(format!("{}/api/v1/audit/verify", app.base))
        .header("authorization", "Basic Zm9vOmJhcg==")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    assert!(app.client.audit_verify().await.expect("verify").ok);
    app.stop().await;
}

async fn audit_list_filters_verify_and_checkpoint(app: TestApp) {
    let all = app
        .client
        .audit_events(&EventFilter::default())
        .await
        .expect("list")
        .events;
    let actions: Vec<&str> = all.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["tenant.initialised", "server.started", "config.changed"]
    );
    let created = app
        .client
        .audit_checkpoint("before backup")
        .await
        .expect("checkpoint");
    assert_eq!(created.seq, 4);
    let by_actor = app
        .client
        .audit_events(&EventFilter {
            actor: Some("bootstrap-token".into()),
            ..Default::default()
        })
        .await
        .expect("list")
        .events;
    assert_eq!(by_actor.len(), 1);
    assert_eq!(by_actor[0].details["reason"], "before backup");
    let paged = app
        .client
        .audit_events(&EventFilter {
            limit: Some(2),
            ..Default::default()
        })
        .await
        .expect("page");
    assert_eq!(paged.events.len(), 2);
    assert_eq!(paged.next_after, Some(2));
    let future = app
        .client
        .audit_events(&EventFilter {
            since: Some("2999-01-01T00:00:00Z".into()),
            ..Default::default()
        })
        .await
        .expect("list");
    assert!(future.events.is_empty());
    let v = app.client.audit_verify().await.expect("verify");
    assert!(v.ok);
    assert_eq!(v.events, Some(4));
    assert_eq!(
        v.checkpoints,
        Some(3),
        "the ones at tenant creation (1) and start (3), and the requested one (4)"
    );
    assert_eq!(v.last_checkpoint_seq, Some(4));
    app.stop().await;
}

async fn openapi_lists_every_route(app: TestApp) {
    let doc: serde_json::Value = app
        .http
        .get(format!("{}/api/v1/openapi.json", app.base))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            documented.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    // The router's table, written out: a route added without documentation fails here.
    let routed: BTreeSet<String> = [
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /api/v1/openapi.json",
        "GET /api/v1/audit/events",
        "GET /api/v1/audit/verify",
        "POST /api/v1/audit/verify",
        "POST /api/v1/audit/checkpoints",
        "GET /api/v1/keys",
        "POST /api/v1/keys/rotate",
        "POST /api/v1/bootstrap",
        "POST /api/v1/signin",
        "POST /api/v1/signin/totp",
        "POST /api/v1/signin/webauthn",
        "POST /api/v1/signin/webauthn/finish",
        "POST /api/v1/signout",
        "GET /api/v1/me",
        "GET /api/v1/me/mfa",
        "POST /api/v1/me/mfa/totp",
        "POST /api/v1/me/mfa/totp/{id}/confirm",
        "POST /api/v1/me/mfa/webauthn",
        "POST /api/v1/me/mfa/webauthn/finish",
        "DELETE /api/v1/me/mfa/{id}",
        "POST /api/v1/me/password",
        "GET /api/v1/sessions",
        "DELETE /api/v1/sessions/{id}",
        "POST /api/v1/users",
        "GET /api/v1/users",
        "GET /api/v1/users/{name}",
        "POST /api/v1/users/{name}/disable",
        "POST /api/v1/users/{name}/enable",
        "GET /api/v1/users/{name}/sessions",
        "POST /api/v1/groups",
        "GET /api/v1/groups",
        "POST /api/v1/groups/{name}/members",
        "DELETE /api/v1/groups/{name}/members/{member}",
        "POST /api/v1/service-accounts",
        "GET /api/v1/service-accounts",
        "GET /api/v1/service-accounts/{name}",
        "POST /api/v1/service-accounts/{name}/secrets",
        "DELETE /api/v1/service-accounts/{name}/secrets/{id}",
        "POST /api/v1/service-accounts/{name}/consent",
        "PUT /api/v1/service-accounts/{name}/networks",
        "POST /api/v1/service-accounts/{name}/keys",
        "DELETE /api/v1/service-accounts/{name}/keys/{kid}",
        "GET /.well-known/openid-configuration",
        "GET /oauth2/jwks",
        "POST /oauth2/token",
        "POST /oauth2/introspect",
        "POST /oauth2/revoke",
        "POST /oauth2/device_authorization",
        "GET /oauth2/userinfo",
        "POST /oauth2/userinfo",
        "GET /oauth2/authorize",
        "POST /oauth2/authorize",
        "POST /oauth2/authorize/consent",
        "GET /signin",
        "POST /signin",
        "POST /signin/totp",
        "POST /signin/webauthn",
        "GET /assets/webauthn.js",
        "GET /device",
        "POST /device",
        "POST /api/v1/alerts/channels",
        "GET /api/v1/alerts/channels",
        "DELETE /api/v1/alerts/channels/{name}",
        "POST /api/v1/alerts/channels/{name}/test",
        "GET /api/v1/alerts/rules",
        "POST /api/v1/alerts/rules",
        "DELETE /api/v1/alerts/rules/{name}",
        "GET /api/v1/alerts",
        "GET /api/v1/alerts/{id}",
        "POST /api/v1/alerts/{id}/retry",
        "GET /api/v1/ca/policies",
        "POST /api/v1/ca/policies",
        "GET /api/v1/ca/policies/{name}",
        "DELETE /api/v1/ca/policies/{name}",
        "POST /api/v1/ca/policies/{name}/state",
        "GET /api/v1/ca/locations",
        "POST /api/v1/ca/locations",
        "DELETE /api/v1/ca/locations/{name}",
        "POST /api/v1/ca/whatif",
        "POST /api/v1/breakglass",
        "GET /api/v1/breakglass",
        "POST /api/v1/breakglass/{name}/rotate",
        "POST /api/v1/breakglass/{name}/enrolment",
        "POST /api/v1/breakglass/drill",
        "POST /api/v1/breakglass/{name}/failed-recovery",
        "POST /api/v1/clients",
        "GET /api/v1/clients",
        "GET /api/v1/clients/{id}",
        "DELETE /api/v1/clients/{id}",
        "POST /api/v1/clients/{id}/secrets",
        "DELETE /api/v1/clients/{id}/secrets/{secret_id}",
        "POST /api/v1/device/approve",
        "POST /api/v1/device/deny",
        "GET /api/v1/roles",
        "POST /api/v1/roles",
        "GET /api/v1/roles/{role}",
        "DELETE /api/v1/roles/{role}",
        "GET /api/v1/roles/{role}/settings",
        "PUT /api/v1/roles/{role}/settings",
        "GET /api/v1/assignments",
        "POST /api/v1/assignments",
        "DELETE /api/v1/assignments/{id}",
        "GET /api/v1/requests",
        "POST /api/v1/requests",
        "GET /api/v1/requests/{id}",
        "POST /api/v1/requests/{id}/approve",
        "POST /api/v1/requests/{id}/deny",
        "POST /api/v1/requests/{id}/cancel",
        "POST /api/v1/requests/{id}/deactivate",
        "POST /api/v1/requests/{id}/revoke",
        "POST /api/v1/assignments/{id}/make-eligible",
        "POST /api/v1/me/reauth",
        "POST /api/v1/me/reauth/webauthn",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(documented, routed);
    // And every documented route is really served (neither 404 nor 405).
    for entry in &documented {
        let (method, path) = entry.split_once(' ').expect("entry");
        let path = path
            .replace("{id}", "x")
            .replace("{name}", "x")
            .replace("{role}", "x")
            .replace("{kid}", "x")
            .replace("{member}", "y");
        let resp = app
            .http
            .request(
                method.parse().expect("method"),
                format!("{}{path}", app.base),
            )
            .send()
            .await
            .expect("send");
        assert!(
            ![404, 405].contains(&resp.status().as_u16()),
            "{entry} is not routed"
        );
    }
    app.stop().await;
}

async fn metrics_count_requests_per_route(app: TestApp) {
    app.anonymous.health().await.expect("healthz");
    let text = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    assert!(text.contains("http_requests_total"), "{text}");
    assert!(text.contains("route=\"/healthz\""), "{text}");
    assert!(text.contains("http_request_duration_seconds"), "{text}");
    app.stop().await;
}

async fn restart_keeps_the_chain_and_records_config_changes(app: TestApp) {
    let (dir, mut config, token) = app.stop().await;
    let again = start(config.clone(), dir, Some(token)).await;
    let events = again
        .client
        .audit_events(&EventFilter::default())
        .await
        .expect("list")
        .events;
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "tenant.initialised",
            "server.started",
            "config.changed",
            "server.stopped",
            "server.started"
        ],
        "an unchanged configuration is not recorded again"
    );
    let (dir, _, token) = again.stop().await;
    config.audit_checkpoint_events = 50;
    let third = start(config, dir, Some(token)).await;
    let changed = third
        .client
        .audit_events(&EventFilter {
            action: Some("config.changed".into()),
            ..Default::default()
        })
        .await
        .expect("list")
        .events;
    assert_eq!(changed.len(), 2);
    assert_eq!(
        changed[1].details["before"]["audit_checkpoint_events"],
        1000
    );
    assert_eq!(changed[1].details["after"]["audit_checkpoint_events"], 50);
    assert!(third.client.audit_verify().await.expect("verify").ok);
    third.stop().await;
}

// ---------------------------------------------------------------- accounts and sign-in

use portcullis_core::api::{
    BootstrapRequest, CreateGroupRequest, CreateServiceAccountRequest, CreateUserRequest,
    GroupMemberRequest, PasswordChangeRequest, PasswordSignInRequest, TotpConfirmRequest,
    TotpEnrolRequest, TotpSignInRequest,
};
use portcullis_core::totp;

const ADMIN_PW: &str = "violet-kettle-orbit-93";
const ADMIN_SECRET: &[u8] = b"portcullis-test-totp-secret";

fn now_unix() -> u64 {
    time::OffsetDateTime::now_utc().unix_timestamp() as u64
}

/// A code for `offset` steps from now (step +1 is accepted and always newer than a code
/// accepted just before).
fn code(secret: &[u8], offset: i64) -> String {
    totp::generate(secret, (now_unix() as i64 + offset * 30) as u64).expect("code")
}

async fn bootstrap_admin(app: &TestApp) {
    app.anonymous
        .bootstrap(&BootstrapRequest {
            token: app.token.clone(),
            username: "root-admin".into(),
            display_name: "Root Admin".into(),
            email: Some("root@example.org".into()),
            password: ADMIN_PW.into(),
            totp_secret: totp::base32(ADMIN_SECRET),
            totp_code: code(ADMIN_SECRET, 0),
        })
        .await
        .expect("bootstrap");
}

/// Signs in with password and TOTP; `offset` picks the code's step.
async fn sign_in(app: &TestApp, user: &str, pw: &str, secret: &[u8], offset: i64) -> Client {
    let r = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: user.into(),
            password: pw.into(),
        })
        .await
        .expect("password step");
    assert_eq!(r.status, "mfa_required");
    let r = app
        .anonymous
        .signin_totp(&TotpSignInRequest {
            signin_id: r.signin_id.expect("id"),
            code: code(secret, offset),
        })
        .await
        .expect("totp step");
    assert_eq!(r.status, "signed_in");
    let s = r.session.expect("session");
    assert_eq!(s.strength, "mfa");
    app.anonymous.with_token(Some(SecretString::from(s.token)))
}

async fn admin(app: &TestApp) -> Client {
    bootstrap_admin(app).await;
    sign_in(app, "root-admin", ADMIN_PW, ADMIN_SECRET, 1).await
}

async fn bootstrap_makes_the_first_admin_once(app: TestApp) {
    let admin = admin(&app).await;
    let me = admin.whoami().await.expect("whoami");
    assert!(me.user.first_admin);
    assert_eq!(me.user.mfa, ["totp"]);
    assert_eq!(
        (
            me.roles[0].role.as_str(),
            me.roles[0].scope.as_str(),
            me.roles[0].seconds_left
        ),
        ("global-administrator", "/", None)
    );
    assert!(me.warnings.iter().any(|w| w.contains("standing")));
    assert!(!me.warnings.is_empty(), "the standing role is called out");
    // The token stopped working, for bootstrap and as a credential.
    let again = app
        .anonymous
        .bootstrap(&BootstrapRequest {
            token: app.token.clone(),
            username: "second".into(),
            display_name: "Second".into(),
            email: None,
            password: ADMIN_PW.into(),
            totp_secret: totp::base32(ADMIN_SECRET),
            totp_code: code(ADMIN_SECRET, 0),
        })
        .await
        .expect_err("reuse");
    assert_eq!(again.code(), Some("bootstrap_unavailable"));
    assert_eq!(
        app.client
            .audit_verify()
            .await
            .expect_err("token dead")
            .code(),
        Some("unauthenticated")
    );
    // The administrator reads the audit log now.
    let v = admin.audit_verify().await.expect("verify");
    assert!(v.ok);
    let events = admin
        .audit_events(&EventFilter {
            action: Some("bootstrap.redeemed".into()),
            ..Default::default()
        })
        .await
        .expect("list")
        .events;
    assert_eq!(events.len(), 1);
    assert!(!format!("{events:?}").contains(ADMIN_PW));
    app.stop().await;
}

async fn totp_codes_work_once(app: TestApp) {
    bootstrap_admin(&app).await;
    let _first = sign_in(&app, "root-admin", ADMIN_PW, ADMIN_SECRET, 1).await;
    let r = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "root-admin".into(),
            password: ADMIN_PW.into(),
        })
        .await
        .expect("password");
    let err = app
        .anonymous
        .signin_totp(&TotpSignInRequest {
            signin_id: r.signin_id.clone().expect("id"),
            code: code(ADMIN_SECRET, 1),
        })
        .await
        .expect_err("replayed");
    assert_eq!(err.code(), Some("code_replayed"));
    for bad in ["12a456", "1234567", ""] {
        let err = app
            .anonymous
            .signin_totp(&TotpSignInRequest {
                signin_id: r.signin_id.clone().expect("id"),
                code: bad.into(),
            })
            .await
            .expect_err("malformed");
        assert_eq!(err.code(), Some("invalid_request"), "{bad:?}");
    }
    app.stop().await;
}

async fn sign_in_bad_input_and_indistinguishable_failures(app: TestApp) {
    let admin = admin(&app).await;
    let before = admin
        .audit_events(&EventFilter {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("l")
        .events
        .len();
    for (user, pw) in [
        ("", "x"),
        (&"a".repeat(65) as &str, "x"),
        ("alice", ""),
        ("Alice Smith", "x"),
    ] {
        let err = app
            .anonymous
            .signin_password(&PasswordSignInRequest {
                username: user.into(),
                password: pw.into(),
            })
            .await
            .expect_err("bad input");
        assert_eq!(err.code(), Some("invalid_request"), "{user:?}");
    }
    let huge = "p".repeat(5000);
    let err = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "alice".into(),
            password: huge,
        })
        .await
        .expect_err("overlong");
    assert_eq!(err.code(), Some("invalid_request"));
    let after = admin
        .audit_events(&EventFilter {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("l")
        .events
        .len();
    assert_eq!(before, after, "bad input changed nothing");
    // Invalid UTF-8 in the body is refused as bad JSON (422 `invalid_json`, like every body
    // that is not the operation's JSON).
    let resp = app
        .http
        .post(format!("{}/api/v1/signin", app.base))
        .header("content-type", "application/json")
        .body(b"{\"username\": \"\xff\xfe\", \"password\": \"x\"}".to_vec())
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 422);
    // Unknown user and wrong password answer identically.
    let a = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "nobody".into(),
            password: "whatever-it-is".into(),
        })
        .await
        .expect_err("unknown");
    let b = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "root-admin".into(),
            password: "whatever-it-is".into(),
        })
        .await
        .expect_err("wrong");
    assert_eq!(format!("{a}"), format!("{b}"));
    assert_eq!(a.code(), Some("invalid_credentials"));
    let failures = admin
        .audit_events(&EventFilter {
            action: Some("signin.password".into()),
            outcome: Some("failure".into()),
            ..Default::default()
        })
        .await
        .expect("list")
        .events;
    let reasons: Vec<&str> = failures
        .iter()
        .filter_map(|e| e.details["reason"].as_str())
        .collect();
    assert_eq!(
        reasons,
        ["unknown_user", "wrong_password"],
        "the log tells them apart"
    );
    app.stop().await;
}

async fn throttling_slows_down_and_never_locks_out(app: TestApp) {
    bootstrap_admin(&app).await;
    let mut saw_429 = None;
    for _ in 0..12 {
        let resp = app
            .http
            .post(format!("{}/api/v1/signin", app.base))
            .json(&serde_json::json!({"username": "root-admin", "password": "not-the-password"}))
            .send()
            .await
            .expect("send");
        if resp.status() == 429 {
            saw_429 = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body: serde_json::Value = resp.json().await.expect("json");
            assert_eq!(body["error"]["code"], "too_many_attempts");
            break;
        }
        assert_eq!(resp.status(), 401);
    }
    let retry: i64 = saw_429.expect("throttled").parse().expect("seconds");
    assert!((1..=900).contains(&retry));
    // Even the right password waits…
    let err = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "root-admin".into(),
            password: ADMIN_PW.into(),
        })
        .await
        .expect_err("still throttled");
    assert_eq!(err.code(), Some("too_many_attempts"));
    // …but only for a while: no permanent lockout.
    tokio::time::sleep(std::time::Duration::from_secs(retry as u64 + 1)).await;
    let ok = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "root-admin".into(),
            password: ADMIN_PW.into(),
        })
        .await
        .expect("allowed again");
    assert_eq!(ok.status, "mfa_required");
    app.stop().await;
}

async fn users_groups_and_service_accounts(app: TestApp) {
    let admin = admin(&app).await;
    let weak = admin
        .create_user(&CreateUserRequest {
            name: "alice".into(),
            display_name: "Alice".into(),
            email: Some("alice@example.org".into()),
            phone: None,
            guest_organisation: None,
            privileged: false,
            password: "password1234".into(),
        })
        .await
        .expect_err("weak");
    assert_eq!(weak.code(), Some("password_policy"));
    let named = admin
        .create_user(&CreateUserRequest {
            name: "alice".into(),
            display_name: "Alice".into(),
            email: None,
            phone: None,
            guest_organisation: None,
            privileged: false,
            password: "alice-ocean-tiger-52".into(),
        })
        .await
        .expect_err("contains name");
    assert_eq!(named.code(), Some("password_policy"));
    let short_priv = admin
        .create_user(&CreateUserRequest {
            name: "bob".into(),
            display_name: "Bob".into(),
            email: None,
            phone: None,
            guest_organisation: None,
            privileged: true,
            password: "tangerine-kt9".into(),
        })
        .await
        .expect_err("privileged needs 15");
    assert_eq!(short_priv.code(), Some("password_policy"));
    let alice = admin
        .create_user(&CreateUserRequest {
            name: "alice".into(),
            display_name: "Alice".into(),
            email: Some("alice@example.org".into()),
            phone: Some("+41791234567".into()),
            guest_organisation: None,
            privileged: false,
            password: "orbit-lantern-97-quay".into(),
        })
        .await
        .expect("alice");
    assert_eq!(alice.kind, "member");
    let guest = admin
        .create_user(&CreateUserRequest {
            name: "gina.msp".into(),
            display_name: "Gina (MSP)".into(),
            email: None,
            phone: None,
            guest_organisation: Some("Contoso MSP".into()),
            privileged: true,
            password: "harbor-violet-mango-81".into(),
        })
        .await
        .expect("guest");
    assert_eq!(guest.kind, "guest");
    let dup = admin
        .create_user(&CreateUserRequest {
            name: "alice".into(),
            display_name: "Alice 2".into(),
            email: None,
            phone: None,
            guest_organisation: None,
            privileged: false,
            password: "orbit-lantern-97-quay".into(),
        })
        .await
        .expect_err("dup");
    assert_eq!(dup.code(), Some("already_exists"));
    for bad in ["Alice", "", "a b"] {
        let e = admin
            .create_user(&CreateUserRequest {
                name: bad.into(),
                display_name: "x".into(),
                email: None,
                phone: None,
                guest_organisation: None,
                privileged: false,
                password: "orbit-lantern-97-quay".into(),
            })
            .await
            .expect_err("bad name");
        assert_eq!(e.code(), Some("invalid_request"), "{bad:?}");
    }
    let g = admin
        .create_group(&CreateGroupRequest {
            name: "approvers".into(),
            display_name: None,
            role_assignable: true,
        })
        .await
        .expect("group");
    assert!(g.role_assignable);
    let g = admin
        .add_group_member(
            "approvers",
            &GroupMemberRequest {
                member: "alice".into(),
            },
        )
        .await
        .expect("add");
    assert_eq!(g.members, ["alice"]);
    assert_eq!(
        admin
            .add_group_member(
                "approvers",
                &GroupMemberRequest {
                    member: "alice".into()
                }
            )
            .await
            .expect_err("twice")
            .code(),
        Some("already_exists")
    );
    assert_eq!(
        admin
            .add_group_member(
                "approvers",
                &GroupMemberRequest {
                    member: "nobody".into()
                }
            )
            .await
            .expect_err("unknown")
            .code(),
        Some("not_found")
    );
    assert_eq!(
        admin.user("alice").await.expect("show").groups,
        ["approvers"]
    );
    let g = admin
        .remove_group_member("approvers", "alice")
        .await
        .expect("remove");
    assert!(g.members.is_empty());
    assert_eq!(
        admin
            .remove_group_member("approvers", "alice")
            .await
            .expect_err("not member")
            .code(),
        Some("not_found")
    );
    admin
        .create_service_account(&CreateServiceAccountRequest {
            name: "backup-daemon".into(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await
        .expect("sa");
    assert_eq!(admin.service_accounts().await.expect("list").len(), 1);
    // Service accounts cannot sign in interactively; the attempt is marked for an alert.
    let err = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "backup-daemon".into(),
            password: "anything-at-all".into(),
        })
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Some("invalid_credentials"));
    let ev = admin
        .audit_events(&EventFilter {
            actor: Some("user:backup-daemon".into()),
            ..Default::default()
        })
        .await
        .expect("l")
        .events;
    assert_eq!(
        ev[0].details["reason"],
        "service_account_interactive_signin"
    );
    assert_eq!(ev[0].details["alert"], true);
    // A non-admin cannot administer.
    let r = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "alice".into(),
            password: "orbit-lantern-97-quay".into(),
        })
        .await
        .expect("alice signs in");
    assert_eq!(r.status, "signed_in");
    let s = r.session.expect("session");
    assert_eq!(
        (s.strength.as_str(), s.scope.as_str()),
        ("password", "full")
    );
    let alice_c = app.anonymous.with_token(Some(SecretString::from(s.token)));
    assert_eq!(
        alice_c.users().await.expect_err("not admin").code(),
        Some("forbidden")
    );
    // Disabling ends her sessions at once and stops sign-in.
    admin.disable_user("alice").await.expect("disable");
    assert_eq!(
        alice_c.whoami().await.expect_err("revoked").code(),
        Some("unauthenticated")
    );
    let err = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "alice".into(),
            password: "orbit-lantern-97-quay".into(),
        })
        .await
        .expect_err("disabled");
    assert_eq!(err.code(), Some("account_disabled"));
    app.stop().await;
}

async fn privileged_accounts_register_mfa_first(app: TestApp) {
    let admin = admin(&app).await;
    admin
        .create_user(&CreateUserRequest {
            name: "pat".into(),
            display_name: "Pat".into(),
            email: None,
            phone: None,
            guest_organisation: None,
            privileged: true,
            password: "harbor-violet-mango-81".into(),
        })
        .await
        .expect("pat");
    let r = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "pat".into(),
            password: "harbor-violet-mango-81".into(),
        })
        .await
        .expect("signin");
    let s = r.session.expect("session");
    assert_eq!(s.scope, "registration_only");
    let pat = app.anonymous.with_token(Some(SecretString::from(s.token)));
    assert_eq!(pat.sessions().await.map(|v| v.len()).unwrap_or(0), 1);
    let me = pat.whoami().await.expect("whoami");
    assert!(me.warnings.iter().any(|w| w.contains("registration-only")));
    let enrol = pat
        .mfa_enrol_totp(&TotpEnrolRequest {
            name: "phone".into(),
        })
        .await
        .expect("enrol");
    assert!(enrol.otpauth_uri.starts_with("otpauth://totp/"));
    let secret = totp::base32_decode(&enrol.secret).expect("base32");
    let err = pat
        .mfa_confirm_totp(
            &enrol.factor_id,
            &TotpConfirmRequest {
                code: "000000".into(),
            },
        )
        .await;
    if let Err(e) = err {
        assert_eq!(e.code(), Some("invalid_code"));
    }
    // Steps strictly increase: confirm with the previous step, sign in with the current one,
    // and the password change can use the next one.
    pat.mfa_confirm_totp(
        &enrol.factor_id,
        &TotpConfirmRequest {
            code: code(&secret, -1),
        },
    )
    .await
    .expect("confirm");
    let factors = pat.mfa_list().await.expect("list");
    assert!(factors[0].confirmed);
    let pat_full = sign_in(&app, "pat", "harbor-violet-mango-81", &secret, 0).await;
    // The last factor of an account that needs MFA cannot be removed.
    assert_eq!(
        pat_full
            .mfa_remove(&enrol.factor_id)
            .await
            .expect_err("last")
            .code(),
        Some("last_factor")
    );
    // Password change needs the current password and a fresh code; other sessions end.
    let change = |current: &str, new: &str, c: String| PasswordChangeRequest {
        current_password: current.into(),
        new_password: new.into(),
        code: Some(c),
    };
    let weak = pat_full
        .change_password(&change("harbor-violet-mango-81", "short", code(&secret, 1)))
        .await
        .expect_err("policy");
    assert_eq!(weak.code(), Some("password_policy"));
    let wrong = pat_full
        .change_password(&change(
            "not-it-at-all",
            "quartz-meadow-falcon-27",
            code(&secret, 1),
        ))
        .await
        .expect_err("wrong current");
    assert_eq!(wrong.code(), Some("invalid_credentials"));
    let replay = pat_full
        .change_password(&change(
            "harbor-violet-mango-81",
            "quartz-meadow-falcon-27",
            code(&secret, 0),
        ))
        .await
        .expect_err("used step");
    assert_eq!(replay.code(), Some("code_replayed"));
    pat_full
        .change_password(&change(
            "harbor-violet-mango-81",
            "quartz-meadow-falcon-27",
            code(&secret, 1),
        ))
        .await
        .expect("changed");
    assert_eq!(
        pat.whoami()
            .await
            .expect_err("other session revoked")
            .code(),
        Some("unauthenticated")
    );
    assert!(
        pat_full.whoami().await.is_ok(),
        "the session that changed it stays"
    );
    let old = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "pat".into(),
            password: "harbor-violet-mango-81".into(),
        })
        .await
        .expect_err("old password");
    assert_eq!(old.code(), Some("invalid_credentials"));
    // Sessions: list and revoke.
    let mine = admin.sessions().await.expect("sessions");
    assert!(mine.iter().any(|s| s.current));
    let pats = admin
        .user_sessions("pat")
        .await
        .expect("admin sees pat's sessions");
    for s in &pats {
        admin.revoke_session(&s.id).await.expect("admin revokes");
    }
    assert_eq!(
        pat_full.whoami().await.expect_err("revoked").code(),
        Some("unauthenticated")
    );
    assert_eq!(
        admin
            .revoke_session("s_nope")
            .await
            .expect_err("unknown")
            .code(),
        Some("not_found")
    );
    admin.signout().await.expect("signout");
    assert_eq!(
        admin.whoami().await.expect_err("signed out").code(),
        Some("unauthenticated")
    );
    app.stop().await;
}

macro_rules! api_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::spawn_app(super::Backend::Sqlite).await.expect("sqlite app")).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(app) = super::spawn_app(super::Backend::Postgres).await else {
                        eprintln!("skipped: PORTCULLIS_TEST_DATABASE_URL is not set");
                        return;
                    };
                    super::$name(app).await
                }
            )*
        }
    };
}

/// `sqlite::NAME` and `postgres::NAME` tests for `async fn NAME(backend: Backend)`: for tests
/// that start their servers themselves (their own configuration, restarts). A function skips
/// PostgreSQL by itself when PORTCULLIS_TEST_DATABASE_URL is not set.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod by_backend {
            mod sqlite {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        super::super::$name(super::super::Backend::Sqlite).await
                    }
                )*
            }
            mod postgres {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        super::super::$name(super::super::Backend::Postgres).await
                    }
                )*
            }
        }
    };
}

#[path = "api/privilege.rs"]
mod privilege;

#[path = "api/alert_flood.rs"]
mod alert_flood;
#[path = "api/audit_anchor.rs"]
mod audit_anchor;
#[path = "api/edge.rs"]
mod edge;
#[path = "api/hostile.rs"]
mod hostile;

backend_tests!(
    breakglass_drills_overdue_alert,
    breakglass_alert_reaches_every_channel,
    oidc_relying_party,
    device_approved_in_the_browser,
    email_alerts_dead_letters_and_restarts,
);

api_tests!(
    channel_urls_are_not_shown,
    breakglass_accounts_are_not_throttled_per_account,
    conditional_access_policies_and_enforcement,
    breakglass_accounts_split_sign_in_and_alert,
    breakglass_fido2_account,
    access_tokens_are_api_credentials,
    long_running_clients_refresh_by_themselves,
    device_grant_and_refresh_rotation,
    health_and_readiness,
    errors_have_one_shape,
    the_bootstrap_token_is_the_only_credential,
    audit_list_filters_verify_and_checkpoint,
    openapi_lists_every_route,
    metrics_count_requests_per_route,
    restart_keeps_the_chain_and_records_config_changes,
    bootstrap_makes_the_first_admin_once,
    totp_codes_work_once,
    sign_in_bad_input_and_indistinguishable_failures,
    throttling_slows_down_and_never_locks_out,
    users_groups_and_service_accounts,
    privileged_accounts_register_mfa_first,
    webauthn_passkeys_sign_in_and_refuse_forgeries,
    jit_roles_activate_approve_and_expire,
    racing_approvers_make_exactly_one_activation,
    service_account_client_credentials,
    service_account_private_key_jwt,
    oidc_bad_input,
    security_key_on_the_sign_in_page,
    alerts_reach_webhooks_and_sms_through_failures,
    throttled_attempts_still_alert,
    custom_alert_rules_count_within_a_window,
);

#[tokio::test]
async fn data_dir_and_master_key_are_private() {
    let app = spawn_app(Backend::Sqlite).await.expect("app");
    let data = app.config.data_dir.clone();
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("master.key")), 0o600);
    assert_eq!(mode(&data.join("portcullis.db")), 0o600);
    let (_dir, config, _) = app.stop().await;
    // A world-readable master.key is refused with a clear error.
    std::fs::set_permissions(
        data.join("master.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let err = Application::build(config.clone(), BuildOptions::default())
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, StartError::Secrets(_)), "{err}");
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

#[tokio::test]
async fn wrong_master_key_fails_start_and_changes_nothing() {
    let app = spawn_app(Backend::Sqlite).await.expect("app");
    let before = event_count(&app).await;
    let (dir, mut config, token) = app.stop().await;
    let other = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    config.master_key = Some(SecretString::from(other));
    let err = Application::build(config.clone(), BuildOptions::default())
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, StartError::Store(_)), "{err}");
    assert!(err.to_string().contains("master key"), "{err}");
    config.master_key = Some(SecretString::from("not base64!".to_owned()));
    assert!(matches!(
        Application::build(config.clone(), BuildOptions::default())
            .await
            .err(),
        Some(StartError::Secrets(_))
    ));
    config.master_key = None;
    let app = start(config, dir, Some(token)).await;
    // server.stopped from the clean stop and server.started now; the refused starts wrote nothing.
    assert_eq!(event_count(&app).await, before + 2);
    app.stop().await;
}

#[tokio::test]
async fn bootstrap_token_file_is_private_and_new() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = config_for(Backend::Sqlite, dir.path())
        .await
        .expect("config");
    let path = dir.path().join("token");
    let app = Application::build(
        config,
        BuildOptions {
            bootstrap_token_file: Some(path.clone()),
        },
    )
    .await
    .expect("build");
    let written = std::fs::read_to_string(&path).expect("token file");
    assert_eq!(written.trim(), app.bootstrap_token().expect("created"));
    assert_eq!(
        std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
        0o600
    );
}

/// Two servers (replicas) of one tenant on the PostgreSQL database at `url`.
async fn two_replicas(url: &str) -> (TestApp, TestApp) {
    two_replicas_with(url, |_| {}).await
}

/// Two replicas on one database, each configured by `tweak` as well.
async fn two_replicas_with(url: &str, tweak: impl Fn(&mut Config)) -> (TestApp, TestApp) {
    let key = base64::engine::general_purpose::STANDARD.encode([5u8; 32]);
    let mk = |dir: &tempfile::TempDir| {
        let mut c = Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            data_dir: dir.path().join("data"),
            database_url: Some(SecretString::from(url.to_owned())),
            master_key: Some(SecretString::from(key.clone())),
            ..Config::default()
        };
        tweak(&mut c);
        c
    };
    let d1 = tempfile::tempdir().expect("tmp");
    let a = start(mk(&d1), d1, None).await;
    let d2 = tempfile::tempdir().expect("tmp");
    let b = start(mk(&d2), d2, Some(a.token.clone())).await;
    (a, b)
}

#[tokio::test]
async fn two_servers_on_one_postgres_keep_one_chain() {
    let Some(url) = fresh_postgres_url().await else {
        eprintln!("skipped: PORTCULLIS_TEST_DATABASE_URL is not set");
        return;
    };
    let (a, b) = two_replicas(&url).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let c = if i % 2 == 0 {
            a.client.clone()
        } else {
            b.client.clone()
        };
        tasks.push(tokio::spawn(async move {
            c.audit_checkpoint(&format!("writer {i}"))
                .await
                .expect("write")
                .seq
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.expect("join"));
    }
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 40, "each write got its own sequence number");
    let v = b.client.audit_verify().await.expect("verify");
    assert!(v.ok, "{v:?}");
    assert!(v.checkpoints.unwrap_or(0) >= 1);
    a.stop().await;
    b.stop().await;
}

// ---- WebAuthn: a software passkey from webauthn-authenticator-rs plays the browser and the
// authenticator; every refusal below is made by the server.

use portcullis_client::ClientError;
use portcullis_core::api::{
    WebauthnChallenge, WebauthnFinishRequest, WebauthnRegisterRequest, WebauthnSignInRequest,
};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};

/// The origin the test "browser" claims; the harness's `public_url` (config_for).
fn origin() -> Url {
    Url::parse("http://localhost:8080").expect("origin")
}

async fn create_privileged(admin: &Client, name: &str, pw: &str) {
    admin
        .create_user(&CreateUserRequest {
            name: name.into(),
            display_name: name.to_uppercase(),
            email: None,
            phone: None,
            guest_organisation: None,
            privileged: true,
            password: pw.into(),
        })
        .await
        .expect("create user");
}

/// Password sign-in of an account without a second factor: a registration-only session.
async fn registration_session(app: &TestApp, name: &str, pw: &str) -> Client {
    let r = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: name.into(),
            password: pw.into(),
        })
        .await
        .expect("password");
    let s = r.session.expect("session");
    assert_eq!(s.scope, "registration_only");
    app.anonymous.with_token(Some(SecretString::from(s.token)))
}

fn creation(c: &WebauthnChallenge) -> CreationChallengeResponse {
    serde_json::from_value(c.options.clone()).expect("creation options")
}

fn request(c: &WebauthnChallenge) -> RequestChallengeResponse {
    serde_json::from_value(c.options.clone()).expect("request options")
}

async fn register(
    me: &Client,
    key: &mut SoftPasskey,
    name: &str,
) -> portcullis_core::api::FactorView {
    let c = me
        .mfa_webauthn_register(&WebauthnRegisterRequest { name: name.into() })
        .await
        .expect("start registration");
    let cred = key
        .do_registration(origin(), creation(&c))
        .expect("authenticator registers");
    me.mfa_webauthn_register_finish(&WebauthnFinishRequest {
        ceremony_id: c.ceremony_id,
        credential: serde_json::to_value(cred).expect("json"),
    })
    .await
    .expect("finish registration")
}

async fn passwordless(app: &TestApp, user: &str) -> WebauthnChallenge {
    app.anonymous
        .signin_webauthn(&WebauthnSignInRequest {
            signin_id: None,
            username: Some(user.into()),
        })
        .await
        .expect("start sign-in")
}

async fn finish(
    app: &TestApp,
    ceremony_id: &str,
    credential: serde_json::Value,
) -> Result<portcullis_core::api::SignInResponse, ClientError> {
    app.anonymous
        .signin_webauthn_finish(&WebauthnFinishRequest {
            ceremony_id: ceremony_id.into(),
            credential,
        })
        .await
}

fn answer(key: &mut SoftPasskey, c: &WebauthnChallenge, at: Url) -> serde_json::Value {
    serde_json::to_value(
        key.do_authentication(at, request(c))
            .expect("authenticator signs"),
    )
    .expect("json")
}

/// Flips one bit in the middle of a base64url field of the credential's response.
fn tamper(mut cred: serde_json::Value, field: &str) -> serde_json::Value {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let s = cred["response"][field]
        .as_str()
        .expect("field")
        .trim_end_matches('=')
        .to_owned();
    let mut raw = URL_SAFE_NO_PAD.decode(s).expect("b64");
    let mid = raw.len() / 2;
    raw[mid] ^= 0x01;
    cred["response"][field] = serde_json::Value::String(URL_SAFE_NO_PAD.encode(raw));
    cred
}

fn refused(r: Result<impl std::fmt::Debug, ClientError>, code: &str, needle: &str) {
    let e = r.expect_err("refused");
    assert_eq!(e.code(), Some(code), "{e}");
    assert!(e.to_string().contains(needle), "{needle} not in {e}");
}

async fn webauthn_passkeys_sign_in_and_refuse_forgeries(app: TestApp) {
    let admin = admin(&app).await;
    create_privileged(&admin, "wes", "copper-lantern-river-42").await;
    let wes = registration_session(&app, "wes", "copper-lantern-river-42").await;

    // Registration: an authenticator that did not verify the user is refused, as is one
    // answering for another origin; neither leaves a factor behind.
    let c = wes
        .mfa_webauthn_register(&WebauthnRegisterRequest {
            name: "no-pin".into(),
        })
        .await
        .expect("start");
    let mut opts = c.options.clone();
    opts["publicKey"]["authenticatorSelection"]["userVerification"] = "discouraged".into();
    let mut no_uv = SoftPasskey::new(false);
    let cred = no_uv
        .do_registration(origin(), serde_json::from_value(opts).expect("opts"))
        .expect("registers without UV");
    refused(
        wes.mfa_webauthn_register_finish(&WebauthnFinishRequest {
            ceremony_id: c.ceremony_id.clone(),
            credential: serde_json::to_value(cred).expect("json"),
        })
        .await,
        "webauthn_failed",
        "user_not_verified",
    );
    let mut key = SoftPasskey::new(true);
    let c = wes
        .mfa_webauthn_register(&WebauthnRegisterRequest {
            name: "yubikey".into(),
        })
        .await
        .expect("start");
    // Same relying-party id, another port: a different origin.
    let elsewhere = Url::parse("http://localhost:9999").expect("url");
    let cred = key
        .do_registration(elsewhere, creation(&c))
        .expect("registers");
    refused(
        wes.mfa_webauthn_register_finish(&WebauthnFinishRequest {
            ceremony_id: c.ceremony_id.clone(),
            credential: serde_json::to_value(cred).expect("json"),
        })
        .await,
        "webauthn_failed",
        "origin_mismatch",
    );
    assert!(wes.mfa_list().await.expect("list").is_empty());

    let mut key = SoftPasskey::new(true);
    let f = register(&wes, &mut key, "yubikey").await;
    assert_eq!((f.kind.as_str(), f.confirmed), ("webauthn", true));
    // The same name twice is refused before any ceremony starts.
    let dup = wes
        .mfa_webauthn_register(&WebauthnRegisterRequest {
            name: "yubikey".into(),
        })
        .await
        .expect_err("dup");
    assert_eq!(dup.code(), Some("already_exists"));

    // Passwordless sign-in: phishing-resistant, full session.
    let c = passwordless(&app, "wes").await;
    let good = answer(&mut key, &c, origin());
    let s = finish(&app, &c.ceremony_id, good.clone())
        .await
        .expect("signed in")
        .session
        .expect("session");
    assert_eq!(
        (s.strength.as_str(), s.scope.as_str()),
        ("phishing_resistant", "full")
    );
    // The same answer again: the ceremony was spent.
    refused(
        finish(&app, &c.ceremony_id, good).await,
        "unauthenticated",
        "already finished",
    );

    // A tampered signature, and an assertion made for another port of the same host.
    let c = passwordless(&app, "wes").await;
    let cred = answer(&mut key, &c, origin());
    refused(
        finish(&app, &c.ceremony_id, tamper(cred, "signature")).await,
        "webauthn_failed",
        "bad_signature",
    );
    let c = passwordless(&app, "wes").await;
    let other_port = Url::parse("http://localhost:9999").expect("url");
    let cred = answer(&mut key, &c, other_port);
    refused(
        finish(&app, &c.ceremony_id, cred).await,
        "webauthn_failed",
        "origin_mismatch",
    );

    // Bad input changes nothing: the ceremony still works afterwards.
    let c = passwordless(&app, "wes").await;
    refused(
        finish(&app, "not-hex", serde_json::json!({})).await,
        "invalid_request",
        "ceremony_id",
    );
    refused(
        finish(&app, &c.ceremony_id, serde_json::json!({"id": 5})).await,
        "invalid_request",
        "assertion",
    );
    let both = app
        .anonymous
        .signin_webauthn(&WebauthnSignInRequest {
            signin_id: Some("a".repeat(64)),
            username: Some("wes".into()),
        })
        .await;
    refused(both, "invalid_request", "not both");
    let cred = answer(&mut key, &c, origin());
    assert!(finish(&app, &c.ceremony_id, cred).await.is_ok());

    // Another user's challenge: answering xena's ceremony with wes's key is refused, and
    // wes's own ceremony is untouched by it.
    create_privileged(&admin, "xena", "marble-thistle-ocean-17").await;
    let xena = registration_session(&app, "xena", "marble-thistle-ocean-17").await;
    let mut xkey = SoftPasskey::new(true);
    register(&xena, &mut xkey, "token").await;
    let cx = passwordless(&app, "xena").await;
    let cw = passwordless(&app, "wes").await;
    let wes_answer = answer(&mut key, &cw, origin());
    refused(
        finish(&app, &cx.ceremony_id, wes_answer.clone()).await,
        "webauthn_failed",
        "",
    );
    assert!(finish(&app, &cw.ceremony_id, wes_answer).await.is_ok());

    // A counter that goes backwards (what a cloned authenticator produces): two ceremonies
    // answered in order, finished in reverse; the older answer is refused.
    let a = passwordless(&app, "wes").await;
    let b = passwordless(&app, "wes").await;
    let older = answer(&mut key, &a, origin());
    let newer = answer(&mut key, &b, origin());
    assert!(finish(&app, &b.ceremony_id, newer).await.is_ok());
    refused(
        finish(&app, &a.ceremony_id, older).await,
        "webauthn_failed",
        "counter",
    );

    // An assertion without user verification is refused even if the key signs it.
    let mut opts = passwordless(&app, "xena").await;
    let cid = opts.ceremony_id.clone();
    opts.options["publicKey"]["userVerification"] = "discouraged".into();
    // Asked without UV, xena's key signs without verifying her; the server's policy, kept
    // server-side in the ceremony, still requires it.
    let cred = serde_json::to_value(
        xkey.do_authentication(
            origin(),
            serde_json::from_value(opts.options).expect("opts"),
        )
        .expect("signs"),
    )
    .expect("json");
    refused(
        finish(&app, &cid, cred).await,
        "webauthn_failed",
        "user_not_verified",
    );

    // Second factor after the password: the pending sign-in is spent with it.
    let r = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "wes".into(),
            password: "copper-lantern-river-42".into(),
        })
        .await
        .expect("password");
    assert_eq!(r.status, "mfa_required");
    assert_eq!(r.factors, ["webauthn"]);
    let signin_id = r.signin_id.expect("id");
    let start = |id: String| WebauthnSignInRequest {
        signin_id: Some(id),
        username: None,
    };
    let c = app
        .anonymous
        .signin_webauthn(&start(signin_id.clone()))
        .await
        .expect("start");
    let cred = answer(&mut key, &c, origin());
    let s = finish(&app, &c.ceremony_id, cred)
        .await
        .expect("2fa")
        .session
        .expect("session");
    assert_eq!(s.strength, "phishing_resistant");
    refused(
        app.anonymous.signin_webauthn(&start(signin_id)).await,
        "unauthenticated",
        "expired or was completed",
    );

    // Passwordless for an unknown user or one without a passkey: a decoy challenge (shaped like
    // a real one) whose answer is refused and audited like a wrong one.
    let c = passwordless(&app, "wes").await;
    let mut forged = answer(&mut key, &c, origin());
    forged["id"] = "c3RyYW5nZXI".into();
    forged["rawId"] = "c3RyYW5nZXI".into();
    for who in ["nobody", "root-admin"] {
        let decoy = passwordless(&app, who).await;
        refused(
            finish(&app, &decoy.ceremony_id, forged.clone()).await,
            "webauthn_failed",
            "credential_not_allowed",
        );
    }

    // The only factor of a privileged account cannot be removed.
    let wes_full = app.anonymous.with_token(Some(SecretString::from(s.token)));
    refused(wes_full.mfa_remove(&f.id).await, "last_factor", "");

    // Password change: a fresh WebAuthn sign-in stands in for the second factor; a TOTP
    // session without a code does not.
    let no_code = |current: &str| PasswordChangeRequest {
        current_password: current.into(),
        new_password: "saffron-glacier-pylon-66".into(),
        code: None,
    };
    refused(
        admin.change_password(&no_code(ADMIN_PW)).await,
        "step_up_required",
        "passkey",
    );
    wes_full
        .change_password(&no_code("copper-lantern-river-42"))
        .await
        .expect("changed with a fresh passkey sign-in");

    // Every attempt is in the audit log with its reason.
    let events = admin
        .audit_events(&EventFilter {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("events")
        .events;
    let reasons: BTreeSet<String> = events
        .iter()
        .filter(|e| {
            e.action == "signin.webauthn"
                || e.action == "signin.completed"
                || e.action == "mfa.webauthn_registered"
        })
        .filter_map(|e| e.details["reason"].as_str().map(str::to_owned))
        .collect();
    for r in [
        "bad_signature",
        "origin_mismatch",
        "user_not_verified",
        "replayed_or_counter_did_not_advance",
        "passwordless_webauthn",
        "password_and_webauthn",
        "no_passkey_or_unknown_user",
    ] {
        assert!(reasons.contains(r), "{r} missing from {reasons:?}");
    }
    app.stop().await;
}

async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config_for(backend, dir.path()).await?;
    tweak(&mut config);
    Some(start(config, dir, None).await)
}

/// Ceremonies and pending sign-ins end after `signin_step_seconds`.
async fn webauthn_ceremonies_expire(backend: Backend) {
    let Some(app) = spawn_with(backend, |c| c.signin_step_seconds = 1).await else {
        return;
    };
    let admin = admin(&app).await;
    create_privileged(&admin, "wes", "copper-lantern-river-42").await;
    let wes = registration_session(&app, "wes", "copper-lantern-river-42").await;
    let mut key = SoftPasskey::new(true);
    register(&wes, &mut key, "yubikey").await;
    let c = passwordless(&app, "wes").await;
    let cred = answer(&mut key, &c, origin());
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    refused(
        finish(&app, &c.ceremony_id, cred).await,
        "unauthenticated",
        "expired",
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webauthn_ceremonies_expire_sqlite() {
    webauthn_ceremonies_expire(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webauthn_ceremonies_expire_postgres() {
    webauthn_ceremonies_expire(Backend::Postgres).await;
}

// ---- Just-in-time roles.

use portcullis_core::api::{
    CreateActivationRequest, CreateAssignmentRequest, DecisionRequest, RoleSettingsUpdate,
};

/// A user with a confirmed TOTP factor, signed in with it (strength `mfa`).
async fn mfa_user(app: &TestApp, admin: &Client, name: &str, pw: &str) -> (Client, Vec<u8>) {
    let secret = user_with_totp(app, admin, name, name.to_uppercase(), None, pw).await;
    (sign_in(app, name, pw, &secret, 0).await, secret)
}

/// A privileged user with a confirmed TOTP factor (its code for step -1 used); the secret.
async fn user_with_totp(
    app: &TestApp,
    admin: &Client,
    name: &str,
    display_name: String,
    email: Option<String>,
    pw: &str,
) -> Vec<u8> {
    admin
        .create_user(&CreateUserRequest {
            name: name.into(),
            display_name,
            email,
            phone: None,
            guest_organisation: None,
            privileged: true,
            password: pw.into(),
        })
        .await
        .expect("create user");
    let reg = registration_session(app, name, pw).await;
    let enrol = reg
        .mfa_enrol_totp(&TotpEnrolRequest {
            name: "phone".into(),
        })
        .await
        .expect("enrol");
    let secret = totp::base32_decode(&enrol.secret).expect("b32");
    // The code is for the step before the current one; if a step boundary passes between
    // computing it and the server checking it, it is two steps old and refused: try once more.
    for last_try in [false, true] {
        let step = now_unix() / 30;
        let r = reg
            .mfa_confirm_totp(
                &enrol.factor_id,
                &TotpConfirmRequest {
                    code: code(&secret, -1),
                },
            )
            .await;
        match r {
            Ok(_) => break,
            Err(e) if !last_try && now_unix() / 30 != step => {
                eprintln!("retrying TOTP confirmation across a step boundary: {e:?}");
            }
            Err(e) => panic!("confirm: {e:?}"),
        }
    }
    secret
}

/// `name` (a privileged person with TOTP) holding `role` now: made eligible by `admin`, then
/// activated just in time with MFA (people never hold privileged roles standing).
async fn holder(app: &TestApp, admin: &Client, name: &str, role: &str) -> (Client, Vec<u8>) {
    let (c, secret) = mfa_user(app, admin, name, "quartz-harbor-lantern-71").await;
    admin
        .create_assignment(&eligible(name, role, None))
        .await
        .expect("eligible");
    let r = c
        .request_activation(&ask(role, 3600, Some("abuse test")))
        .await
        .expect("activate");
    assert_eq!(r.state, "active", "{role} activates without approval");
    (c, secret)
}

fn ask(role: &str, secs: i64, why: Option<&str>) -> CreateActivationRequest {
    CreateActivationRequest {
        role: role.into(),
        scope: None,
        duration_seconds: secs,
        justification: why.map(str::to_owned),
        ticket: None,
    }
}

fn eligible(principal: &str, role: &str, secs: Option<i64>) -> CreateAssignmentRequest {
    CreateAssignmentRequest {
        principal: principal.into(),
        role: role.into(),
        scope: None,
        kind: Some("eligible".into()),
        duration_seconds: secs,
        ends_at: None,
    }
}

async fn jit_roles_activate_approve_and_expire(app: TestApp) {
    let admin = admin(&app).await;
    let (ivy, _) = mfa_user(&app, &admin, "ivy", "amber-willow-canyon-58").await;
    let (jon, _) = mfa_user(&app, &admin, "jon", "cobalt-meadow-lantern-39").await;

    // Nobody holds a role by default.
    let denied = ivy.users().await.expect_err("no role");
    assert_eq!(denied.code(), Some("forbidden"));
    assert!(denied.to_string().contains("users.read"), "{denied}");
    assert!(ivy.whoami().await.expect("me").roles.is_empty());

    // Eligible, then activated just in time.
    admin
        .create_assignment(&eligible("ivy", "helpdesk-administrator", None))
        .await
        .expect("eligible");
    let bad = [
        (
            ask("helpdesk-administrator", 3600, None),
            "justification_required",
        ),
        (
            ask("helpdesk-administrator", 0, Some("x")),
            "invalid_request",
        ),
        (
            ask("helpdesk-administrator", -60, Some("x")),
            "invalid_request",
        ),
        (
            ask("helpdesk-administrator", 9 * 3600, Some("x")),
            "duration_too_long",
        ),
        (ask("no-such-role", 3600, Some("x")), "not_found"),
        (ask("security-reader", 3600, Some("x")), "not_eligible"),
    ];
    for (req, code_) in bad {
        let e = ivy.request_activation(&req).await.expect_err("refused");
        assert_eq!(e.code(), Some(code_), "{e}");
    }
    let mut scoped = ask("helpdesk-administrator", 3600, Some("x"));
    scoped.scope = Some("/nowhere".into());
    assert_eq!(
        ivy.request_activation(&scoped)
            .await
            .expect_err("scope")
            .code(),
        Some("invalid_request")
    );
    let r = ivy
        .request_activation(&ask(
            "helpdesk-administrator",
            3600,
            Some("ticket INC-7: reset a password"),
        ))
        .await
        .expect("activated");
    assert_eq!(r.state, "active");
    assert!(
        ivy.users().await.is_ok(),
        "the active grant gives users.read"
    );
    let me = ivy.whoami().await.expect("me");
    let left = me.roles[0].seconds_left.expect("bounded");
    assert!((3590..=3600).contains(&left), "{left}");
    // Deactivating early is always allowed; the permission goes with it.
    ivy.deactivate(&r.id, &DecisionRequest::default())
        .await
        .expect("deactivate");
    assert_eq!(
        ivy.users().await.expect_err("gone").code(),
        Some("forbidden")
    );

    // Approval: a role-assignable group of approvers that includes the requester.
    admin
        .create_group(&portcullis_core::api::CreateGroupRequest {
            name: "approvers".into(),
            display_name: None,
            role_assignable: true,
        })
        .await
        .expect("group");
    for m in ["ivy", "jon"] {
        admin
            .add_group_member("approvers", &GroupMemberRequest { member: m.into() })
            .await
            .expect("member");
    }
    admin
        .update_role_settings(
            "security-reader",
            &RoleSettingsUpdate {
                require_approval: Some(true),
                approvers: Some(vec!["group:approvers".into()]),
                ..Default::default()
            },
        )
        .await
        .expect("settings");
    admin
        .create_assignment(&eligible("ivy", "security-reader", None))
        .await
        .expect("eligible");
    let r = ivy
        .request_activation(&ask("security-reader", 3600, Some("quarterly review")))
        .await
        .expect("pending");
    assert_eq!(r.state, "pending_approval");
    let own = ivy
        .approve(&r.id, &DecisionRequest::default())
        .await
        .expect_err("self");
    assert_eq!(own.code(), Some("self_approval"));
    let ok = jon
        .approve(&r.id, &DecisionRequest::default())
        .await
        .expect("approved");
    assert_eq!(
        (ok.state.as_str(), ok.approvals.as_slice()),
        ("active", &["jon".to_owned()][..])
    );
    let twice = jon
        .approve(&r.id, &DecisionRequest::default())
        .await
        .expect_err("twice");
    assert_eq!(twice.code(), Some("already_decided"));
    let deny_late = jon
        .deny(
            &r.id,
            &DecisionRequest {
                reason: Some("no".into()),
            },
        )
        .await
        .expect_err("decided");
    assert_eq!(deny_late.code(), Some("already_decided"));
    // Cancelled requests cannot be approved.
    ivy.deactivate(&r.id, &DecisionRequest::default())
        .await
        .expect("deactivate");
    let r2 = ivy
        .request_activation(&ask("security-reader", 3600, Some("again")))
        .await
        .expect("pending");
    ivy.cancel_request(&r2.id, &DecisionRequest::default())
        .await
        .expect("cancel");
    let late = jon
        .approve(&r2.id, &DecisionRequest::default())
        .await
        .expect_err("cancelled");
    assert_eq!(late.code(), Some("already_decided"));
    // Leaving the role-assignable group is not a way around it, and removing the last
    // eligible path while a request is pending fails that request cleanly.
    let r3 = ivy
        .request_activation(&ask("security-reader", 3600, Some("third")))
        .await
        .expect("pending");
    let elig = admin
        .create_assignment(&eligible("ivy", "audit-reader", Some(3)))
        .await
        .expect("short eligibility");
    let sr = app
        .anonymous
        .with_token(None)
        .roles()
        .await
        .expect_err("roles need a session");
    assert_eq!(sr.code(), Some("unauthenticated"));
    // Expiry: the grant ends with its 3-second eligibility, removed by the worker on time.
    let short = ivy
        .request_activation(&ask("audit-reader", 3600, Some("look at the log")))
        .await
        .expect("active");
    assert_eq!(short.state, "active");
    assert!(ivy.audit_events(&EventFilter::default()).await.is_ok());
    tokio::time::sleep(std::time::Duration::from_millis(4500)).await;
    assert_eq!(
        ivy.audit_events(&EventFilter::default())
            .await
            .expect_err("expired")
            .code(),
        Some("forbidden")
    );
    let after = ivy.activation_request(&short.id).await.expect("request");
    assert_eq!(after.state, "expired");
    let _ = elig;
    let pending = ivy.activation_request(&r3.id).await.expect("r3");
    assert_eq!(pending.state, "pending_approval");
    admin
        .delete_assignment(&admin_assignment_id(&admin, "ivy", "security-reader").await)
        .await
        .expect("unassign");
    let gone = ivy.activation_request(&r3.id).await.expect("r3");
    assert_eq!(
        (gone.state.as_str(), gone.close_reason.as_deref()),
        ("cancelled", Some("removed"))
    );
    let e = jon
        .approve(&r3.id, &DecisionRequest::default())
        .await
        .expect_err("closed");
    assert_eq!(e.code(), Some("already_decided"));

    // Global Administrator needs approval by default, and names no approver yet: said
    // plainly instead of leaving a request nobody can approve.
    admin
        .create_assignment(&eligible("ivy", "global-administrator", Some(3600)))
        .await
        .expect("eligible for GA");
    let e = ivy
        .request_activation(&ask("global-administrator", 600, Some("break fix")))
        .await
        .expect_err("no approvers");
    assert_eq!(e.code(), Some("conflict"));
    assert!(e.to_string().contains("names no approver"), "{e}");

    // Eligibility for a role that changes state makes an account privileged: MFA before a
    // full sign-in from then on. A reader role does not.
    admin
        .create_user(&CreateUserRequest {
            name: "sam".into(),
            display_name: "Sam".into(),
            email: None,
            phone: None,
            guest_organisation: None,
            privileged: false,
            password: "juniper-castle-ember-12".into(),
        })
        .await
        .expect("sam");
    admin
        .create_assignment(&eligible("sam", "audit-reader", None))
        .await
        .expect("reader");
    assert!(!admin.user("sam").await.expect("sam").privileged);
    admin
        .create_assignment(&eligible("sam", "helpdesk-administrator", None))
        .await
        .expect("helpdesk");
    assert!(admin.user("sam").await.expect("sam").privileged);
    let sam = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "sam".into(),
            password: "juniper-castle-ember-12".into(),
        })
        .await
        .expect("sam signs in");
    assert_eq!(sam.session.expect("session").scope, "registration_only");

    // The audit log has the trail, the expiry by the worker included.
    let events = admin
        .audit_events(&EventFilter {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("events")
        .events;
    for action in [
        "assignment.created",
        "request.created",
        "request.activated",
        "request.approved",
        "request.deactivated",
        "request.cancelled",
        "request.expired",
        "assignment.removed",
    ] {
        assert!(
            events.iter().any(|e| e.action == action),
            "{action} missing"
        );
    }
    let activations = events
        .iter()
        .filter(|e| e.action == "request.activated" && e.details["request_id"] == r.id.as_str())
        .count();
    assert_eq!(activations, 1);
    app.stop().await;
}

async fn admin_assignment_id(admin: &Client, principal: &str, role: &str) -> String {
    admin
        .assignments()
        .await
        .expect("assignments")
        .into_iter()
        .find(|a| a.principal == format!("user:{principal}") && a.role == role)
        .map(|a| a.id)
        .expect("assignment")
}

#[test]
fn every_route_has_an_authorisation_entry() {
    let router_doc = portcullis_server::http::routes().1;
    let mut documented = BTreeSet::new();
    for (path, item) in router_doc.paths.paths.iter() {
        let item = serde_json::to_value(item).expect("json");
        for method in item.as_object().expect("item").keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let table: BTreeSet<(String, String)> = portcullis_server::http::authz::ROUTES
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(
        documented, table,
        "routes and the authorisation table differ"
    );
}

async fn racing_approvers_make_exactly_one_activation(app: TestApp) {
    let admin = admin(&app).await;
    let (ivy, _) = mfa_user(&app, &admin, "ivy", "amber-willow-canyon-58").await;
    let mut approvers = Vec::new();
    for (n, pw) in [
        ("jon", "cobalt-meadow-lantern-39"),
        ("kim", "saffron-ridge-otter-71"),
        ("leo", "granite-harbor-violet-24"),
    ] {
        approvers.push(mfa_user(&app, &admin, n, pw).await.0);
    }
    // An approver with a password-only session (not privileged, no second factor).
    admin
        .create_user(&CreateUserRequest {
            name: "pat".into(),
            display_name: "Pat".into(),
            email: None,
            phone: None,
            guest_organisation: None,
            privileged: false,
            password: "quartz-meadow-falcon-27".into(),
        })
        .await
        .expect("pat");
    let r = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "pat".into(),
            password: "quartz-meadow-falcon-27".into(),
        })
        .await
        .expect("pat signs in");
    let pat = app
        .anonymous
        .with_token(Some(SecretString::from(r.session.expect("session").token)));
    admin
        .create_group(&portcullis_core::api::CreateGroupRequest {
            name: "approvers".into(),
            display_name: None,
            role_assignable: true,
        })
        .await
        .expect("group");
    for m in ["jon", "kim", "leo", "pat"] {
        admin
            .add_group_member("approvers", &GroupMemberRequest { member: m.into() })
            .await
            .expect("member");
    }
    admin
        .create_assignment(&eligible("ivy", "security-reader", None))
        .await
        .expect("eligible");
    let settings = |n: u32| RoleSettingsUpdate {
        require_approval: Some(true),
        approvers: Some(vec!["group:approvers".into()]),
        approvals_required: Some(n),
        ..Default::default()
    };
    for required in [2u32, 1] {
        admin
            .update_role_settings("security-reader", &settings(required))
            .await
            .expect("settings");
        let r = ivy
            .request_activation(&ask("security-reader", 1800, Some("audit prep")))
            .await
            .expect("pending");
        assert_eq!(r.state, "pending_approval");
        let weak = pat
            .approve(&r.id, &DecisionRequest::default())
            .await
            .expect_err("password-only approver");
        assert_eq!(weak.code(), Some("step_up_required"));
        // One status per code, wherever it is answered (RFC 9470's step-up is a 401).
        assert_eq!(weak.status(), Some(401));
        let d = DecisionRequest::default();
        let (a, b, c) = tokio::join!(
            approvers[0].approve(&r.id, &d),
            approvers[1].approve(&r.id, &d),
            approvers[2].approve(&r.id, &d)
        );
        let results = [a, b, c];
        let ok = results.iter().filter(|x| x.is_ok()).count();
        assert_eq!(
            ok, required as usize,
            "exactly the needed approvals are accepted"
        );
        for e in results.iter().filter_map(|x| x.as_ref().err()) {
            assert_eq!(e.code(), Some("already_decided"), "{e}");
        }
        let now = ivy.activation_request(&r.id).await.expect("request");
        assert_eq!(
            (now.state.as_str(), now.approvals.len()),
            ("active", required as usize)
        );
        let events = admin
            .audit_events(&EventFilter {
                limit: Some(1000),
                ..Default::default()
            })
            .await
            .expect("events")
            .events;
        let of = |action: &str| {
            events
                .iter()
                .filter(|e| e.action == action && e.details["request_id"] == r.id.as_str())
                .count()
        };
        assert_eq!(of("request.activated"), 1, "one activation");
        assert_eq!(
            of("request.approved"),
            required as usize,
            "one event per accepted approval"
        );
        ivy.deactivate(&r.id, &DecisionRequest::default())
            .await
            .expect("deactivate");
    }
    app.stop().await;
}

// ---- Token service: client credentials for service accounts.

#[derive(serde::Serialize, serde::Deserialize)]
struct TheirClaims {
    client_id: String,
    roles: Vec<serde_json::Value>,
    permissions: Vec<String>,
    acr: String,
}

async fn token_request(
    app: &TestApp,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> reqwest::Response {
    let mut rb = app
        .http
        .post(format!("{}/oauth2/token", app.base))
        .form(form);
    if let Some((u, p)) = basic {
        rb = rb.basic_auth(u, Some(p));
    }
    rb.send().await.expect("send")
}

async fn access_token(app: &TestApp, id: &str, secret: &str) -> String {
    let r = token_request(
        app,
        &[("grant_type", "client_credentials")],
        Some((id, secret)),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["token_type"], "Bearer");
    body["access_token"].as_str().expect("token").to_owned()
}

async fn oauth_error(r: reqwest::Response, status: u16, error: &str) {
    assert_eq!(r.status().as_u16(), status);
    if status == 401 {
        assert!(r.headers().contains_key("www-authenticate"));
    }
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"], error, "{body}");
}

async fn introspect(app: &TestApp, id: &str, secret: &str, token: &str) -> serde_json::Value {
    let r = app
        .http
        .post(format!("{}/oauth2/introspect", app.base))
        .basic_auth(id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

async fn service_account_client_credentials(app: TestApp) {
    use jwt_simple::prelude::*;
    let admin = admin(&app).await;
    admin
        .create_service_account(&portcullis_core::api::CreateServiceAccountRequest {
            name: "payroll-sync".into(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await
        .expect("sa");
    // Its credentials are a Service Administrator's to manage; its roles the Global
    // Administrator's to assign (who holds a service account's secret never assigns it roles).
    let (sam, _) = holder(&app, &admin, "sam", "service-administrator").await;
    let s1 = sam
        .add_client_secret("payroll-sync")
        .await
        .expect("secret 1");
    let s2 = sam
        .add_client_secret("payroll-sync")
        .await
        .expect("secret 2");
    assert_eq!(s1.client_id, "payroll-sync");
    let third = sam
        .add_client_secret("payroll-sync")
        .await
        .expect_err("two at most");
    assert_eq!(third.code(), Some("conflict"));
    let detail = admin.service_account("payroll-sync").await.expect("detail");
    assert_eq!(detail.secrets.len(), 2);
    assert!(
        !serde_json::to_string(&detail)
            .expect("json")
            .contains(&s1.client_secret)
    );

    // Basic and post authentication both work.
    let t1 = access_token(&app, "payroll-sync", &s1.client_secret).await;
    let r = token_request(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "payroll-sync"),
            ("client_secret", &s2.client_secret),
        ],
        None,
    )
    .await;
    assert_eq!(r.status(), 200);

    // Another JWT library verifies the token against the published JWKS.
    let discovery: serde_json::Value = app
        .http
        .get(format!("{}/.well-known/openid-configuration", app.base))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(discovery["issuer"], "http://localhost:8080");
    let jwks: serde_json::Value = app
        .http
        .get(format!("{}/oauth2/jwks", app.base))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let verify = |token: &str| -> Result<JWTClaims<TheirClaims>, String> {
        let meta = Token::decode_metadata(token).map_err(|e| e.to_string())?;
        let kid = meta.key_id().ok_or("no kid")?.to_owned();
        let jwk = jwks["keys"]
            .as_array()
            .and_then(|k| k.iter().find(|k| k["kid"] == kid.as_str()))
            .ok_or("unknown kid")?;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let raw = URL_SAFE_NO_PAD
            .decode(jwk["x"].as_str().ok_or("no x")?)
            .map_err(|e| e.to_string())?;
        let pk = Ed25519PublicKey::from_bytes(&raw).map_err(|e| e.to_string())?;
        let opts = VerificationOptions {
            allowed_issuers: Some(HashSet::from_strings(&["http://localhost:8080"])),
            // Each client is its own audience.
            allowed_audiences: Some(HashSet::from_strings(&["payroll-sync"])),
            ..Default::default()
        };
        pk.verify_token::<TheirClaims>(token, Some(opts))
            .map_err(|e| e.to_string())
    };
    let c = verify(&t1).expect("verifies");
    assert_eq!(
        (c.custom.client_id.as_str(), c.custom.acr.as_str()),
        ("payroll-sync", "client_credentials")
    );
    assert!(c.custom.roles.is_empty(), "no role by default");

    // Roles and consent travel in the token; exp never passes the earliest role's end.
    admin
        .create_assignment(&CreateAssignmentRequest {
            principal: "service_account:payroll-sync".into(),
            role: "audit-reader".into(),
            scope: None,
            kind: Some("active".into()),
            duration_seconds: Some(120),
            ends_at: None,
        })
        .await
        .expect("active role for 2 minutes");
    admin
        .consent(
            "payroll-sync",
            &portcullis_core::api::ConsentRequest {
                permissions: vec!["app:payroll.read".into()],
            },
        )
        .await
        .expect("consent");
    let bad_consent = admin
        .consent(
            "payroll-sync",
            &portcullis_core::api::ConsentRequest {
                permissions: vec!["payroll".into()],
            },
        )
        .await
        .expect_err("not a permission");
    assert_eq!(bad_consent.code(), Some("invalid_request"));
    let t2 = access_token(&app, "payroll-sync", &s1.client_secret).await;
    let c = verify(&t2).expect("verifies");
    assert_eq!(c.custom.roles[0]["role"], "audit-reader");
    assert_eq!(c.custom.permissions, ["app:payroll.read"]);
    let exp = c.expires_at.expect("exp").as_secs() as i64;
    let role_end = c.custom.roles[0]["exp"].as_i64().expect("role exp");
    assert!(exp <= role_end, "token exp {exp} after role end {role_end}");
    assert!(exp - (now_unix() as i64) <= 121);

    // Refusals, each in OAuth's error shape and changing nothing.
    oauth_error(
        token_request(
            &app,
            &[("grant_type", "client_credentials")],
            Some(("payroll-sync", "pcs_wrong")),
        )
        .await,
        401,
        "invalid_client",
    )
    .await;
    oauth_error(
        token_request(
            &app,
            &[("grant_type", "client_credentials")],
            Some(("nobody", "pcs_wrong")),
        )
        .await,
        401,
        "invalid_client",
    )
    .await;
    oauth_error(
        token_request(
            &app,
            &[("grant_type", "client_credentials")],
            Some(("root-admin", ADMIN_PW)),
        )
        .await,
        401,
        "invalid_client",
    )
    .await;
    oauth_error(
        token_request(&app, &[], Some(("payroll-sync", &s1.client_secret))).await,
        400,
        "invalid_request",
    )
    .await;
    oauth_error(
        token_request(
            &app,
            &[("grant_type", "password")],
            Some(("payroll-sync", &s1.client_secret)),
        )
        .await,
        400,
        "unsupported_grant_type",
    )
    .await;
    oauth_error(
        token_request(
            &app,
            &[
                ("grant_type", "client_credentials"),
                ("grant_type", "client_credentials"),
            ],
            Some(("payroll-sync", &s1.client_secret)),
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    let r = app
        .http
        .post(format!("{}/oauth2/token", app.base))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .expect("send");
    oauth_error(r, 400, "invalid_request").await;

    // Introspection: real tokens are active; forged ones never are.
    let i = introspect(&app, "payroll-sync", &s2.client_secret, &t2).await;
    assert_eq!(
        (i["active"].as_bool(), i["client_id"].as_str()),
        (Some(true), Some("payroll-sync"))
    );
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = t2.split('.').nth(1).expect("payload");
    let none = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#)
    );
    let kid = jwks["keys"][0]["kid"].as_str().expect("kid");
    let public = URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["x"].as_str().expect("x"))
        .expect("b64");
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json");
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = Some(kid.to_owned());
    let hmac = jsonwebtoken::encode(
        &h,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&public),
    )
    .expect("hs256");
    let mut tampered = t2.clone();
    tampered.pop();
    tampered.push(if t2.ends_with('A') { 'B' } else { 'A' });
    for forged in [none.as_str(), hmac.as_str(), tampered.as_str(), "garbage"] {
        assert_eq!(
            introspect(&app, "payroll-sync", &s2.client_secret, forged).await["active"],
            false,
            "{forged}"
        );
        assert!(verify(forged).is_err());
    }
    // Revocation (RFC 7009) makes the token inactive; revoking again is fine.
    for _ in 0..2 {
        let r = app
            .http
            .post(format!("{}/oauth2/revoke", app.base))
            .basic_auth("payroll-sync", Some(&s1.client_secret))
            .form(&[("token", t2.as_str())])
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        introspect(&app, "payroll-sync", &s2.client_secret, &t2).await["active"],
        false
    );
    assert_eq!(
        introspect(&app, "payroll-sync", &s2.client_secret, &t1).await["active"],
        true
    );

    // Rotation: remove the first secret; it stops working at once, the second goes on.
    admin
        .remove_client_secret("payroll-sync", &s1.id)
        .await
        .expect("remove");
    oauth_error(
        token_request(
            &app,
            &[("grant_type", "client_credentials")],
            Some(("payroll-sync", &s1.client_secret)),
        )
        .await,
        401,
        "invalid_client",
    )
    .await;
    let _ = access_token(&app, "payroll-sync", &s2.client_secret).await;

    let events = admin
        .audit_events(&EventFilter {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("events")
        .events;
    let cc: Vec<_> = events
        .iter()
        .filter(|e| e.action == "token.client_credentials")
        .collect();
    for reason in [
        "issued",
        "wrong_secret",
        "unknown_client",
        "not_a_service_account",
        "token_revoked",
    ] {
        assert!(
            cc.iter().any(|e| e.details["reason"] == reason),
            "{reason} missing"
        );
    }
    assert!(
        cc.iter()
            .any(|e| e.details["reason"] == "not_a_service_account" && e.details["alert"] == true)
    );
    assert!(
        !serde_json::to_string(&events)
            .expect("json")
            .contains(&s2.client_secret),
        "no secret in the audit log"
    );
    app.stop().await;
}

// ---- Signing-key rotation.

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let jwks: serde_json::Value = app
        .http
        .get(format!("{}/oauth2/jwks", app.base))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

fn kid_of(token: &str) -> String {
    jwt_simple::prelude::Token::decode_metadata(token)
        .expect("metadata")
        .key_id()
        .expect("kid")
        .to_owned()
}

/// `keys rotate`: new tokens are signed by the new key at once; the old key stays in JWKS,
/// and its tokens stay valid, until they have all expired, then it is gone and refused.
/// Two rotations racing from the same key make exactly one new key.
async fn signing_keys_rotate_and_retire(backend: Backend) {
    let Some(app) = spawn_with(backend, |c| {
        c.access_token_seconds = 10;
        c.signing_key_grace_seconds = 1;
    })
    .await
    else {
        return;
    };
    let admin = admin(&app).await;
    admin
        .create_service_account(&portcullis_core::api::CreateServiceAccountRequest {
            name: "rotation-probe".into(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await
        .expect("sa");
    let s = admin
        .add_client_secret("rotation-probe")
        .await
        .expect("secret");
    let keys = admin.signing_keys().await.expect("keys");
    assert_eq!(keys.len(), 1);
    assert!(keys[0].active && keys[0].published);
    let k1 = keys[0].key_id.clone();
    let old = access_token(&app, "rotation-probe", &s.client_secret).await;
    assert_eq!(kid_of(&old), k1);

    // Without the permission: refused, nothing changes.
    let sa_token = old.clone();
    let r = app
        .http
        .post(format!("{}/api/v1/keys/rotate", app.base))
        .bearer_auth(&sa_token)
        .send()
        .await
        .expect("send");
    assert!(matches!(r.status().as_u16(), 401 | 403), "{}", r.status());
    assert_eq!(admin.signing_keys().await.expect("keys").len(), 1);

    let rotated = admin.rotate_signing_key(None).await.expect("rotate");
    assert_eq!(rotated.previous_key_id, k1);
    let k2 = rotated.key_id.clone();
    assert_ne!(k1, k2);
    let new = access_token(&app, "rotation-probe", &s.client_secret).await;
    assert_eq!(kid_of(&new), k2, "new tokens use the new key at once");
    assert_eq!(jwks_kids(&app).await, [k2.clone(), k1.clone()]);
    for t in [&old, &new] {
        assert_eq!(
            introspect(&app, "rotation-probe", &s.client_secret, t).await["active"],
            true
        );
    }
    let keys = admin.signing_keys().await.expect("keys");
    assert_eq!(keys.len(), 2);
    assert!(keys[0].active && keys[0].key_id == k2);
    assert!(!keys[1].active && keys[1].published && keys[1].published_until.is_some());

    // Racing rotations from k2: one winner, the other told plainly.
    let (a, b) = tokio::join!(
        admin.rotate_signing_key(Some(&k2)),
        admin.rotate_signing_key(Some(&k2))
    );
    let outcomes = [a.is_ok(), b.is_ok()];
    assert_eq!(
        outcomes.iter().filter(|ok| **ok).count(),
        1,
        "exactly one rotation wins"
    );
    let loser = a.err().or(b.err()).expect("one lost");
    assert_eq!(loser.code(), Some("conflict"), "{loser}");
    assert_eq!(admin.signing_keys().await.expect("keys").len(), 3);

    // After the lifetime of k1's tokens (10 s) and the grace (1 s), k1 is gone from JWKS
    // and a token it signed is refused.
    tokio::time::sleep(std::time::Duration::from_millis(11_500)).await;
    let kids = jwks_kids(&app).await;
    assert!(!kids.contains(&k1), "{kids:?}");
    assert_eq!(
        introspect(&app, "rotation-probe", &s.client_secret, &old).await["active"],
        false
    );
    let keys = admin.signing_keys().await.expect("keys");
    assert!(!keys[2].published, "k1 is listed as no longer published");

    // Every rotation is in the audit log.
    let events = admin
        .audit_events(&EventFilter {
            action: Some("signing_key.rotated".into()),
            ..Default::default()
        })
        .await
        .expect("events")
        .events;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].details["previous_key_id"], k1.as_str());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_rotate_and_retire_sqlite() {
    signing_keys_rotate_and_retire(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_rotate_and_retire_postgres() {
    signing_keys_rotate_and_retire(Backend::Postgres).await;
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The token endpoint answer to a client assertion.
async fn assertion_request(app: &TestApp, assertion: &str) -> reqwest::Response {
    token_request(
        app,
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ],
        None,
    )
    .await
}

/// Audit events after `cursor`, moving it past them.
async fn events_since(
    admin: &Client,
    cursor: &mut i64,
) -> Vec<portcullis_core::api::AuditEventView> {
    let page = admin
        .audit_events(&EventFilter {
            after: Some(*cursor),
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("events");
    if let Some(last) = page.events.last() {
        *cursor = last.seq;
    }
    page.events
}

async fn service_account_private_key_jwt(app: TestApp) {
    use jwt_simple::prelude::*;
    let admin = admin(&app).await;
    let ed = Ed25519KeyPair::generate().with_key_id("ed-1");
    let ec = ES256KeyPair::generate().with_key_id("ec-1");
    let other = Ed25519KeyPair::generate().with_key_id("other-1");
    let ed_pem = ed.public_key().to_pem();

    // Registration: with the account in one step, then another key; bad keys refused.
    admin
        .create_service_account(&CreateServiceAccountRequest {
            name: "nightly".into(),
            display_name: None,
            public_key: Some(ed_pem.clone()),
            key_id: Some("ed-1".into()),
        })
        .await
        .expect("sa with key");
    let k = admin
        .add_client_key(
            "nightly",
            &portcullis_core::api::AddClientKeyRequest {
                public_key: ec.public_key().to_pem().expect("pem"),
                key_id: Some("ec-1".into()),
            },
        )
        .await
        .expect("es256 key");
    assert_eq!((k.key_id.as_str(), k.algorithm.as_str()), ("ec-1", "ES256"));
    admin
        .create_service_account(&CreateServiceAccountRequest {
            name: "other-daemon".into(),
            display_name: None,
            public_key: Some(other.public_key().to_pem()),
            key_id: Some("other-1".into()),
        })
        .await
        .expect("other sa");
    let bad_key = |pem: String, kid: Option<&str>| portcullis_core::api::AddClientKeyRequest {
        public_key: pem,
        key_id: kid.map(str::to_owned),
    };
    let e = admin
        .add_client_key("nightly", &bad_key(ed.to_pem(), None))
        .await
        .expect_err("a private key");
    assert_eq!(e.code(), Some("invalid_public_key"));
    assert!(!e.to_string().contains(&ed.to_pem()), "never echoed");
    let e = admin
        .add_client_key("nightly", &bad_key("garbage".into(), None))
        .await
        .expect_err("not pem");
    assert_eq!(e.code(), Some("invalid_public_key"));
    let e = admin
        .add_client_key("nightly", &bad_key(ed_pem.clone(), Some("ed-1")))
        .await
        .expect_err("kid taken");
    assert_eq!(e.code(), Some("conflict"));
    let e = admin
        .add_client_key("nightly", &bad_key(ed_pem.clone(), Some("a b")))
        .await
        .expect_err("bad kid");
    assert_eq!(e.code(), Some("invalid_request"));
    let e = admin
        .create_service_account(&CreateServiceAccountRequest {
            name: "half-made".into(),
            display_name: None,
            public_key: Some("garbage".into()),
            key_id: None,
        })
        .await
        .expect_err("bad key at creation");
    assert_eq!(e.code(), Some("invalid_public_key"));
    assert!(
        admin.service_account("half-made").await.is_err(),
        "no account without its key"
    );
    let detail = admin.service_account("nightly").await.expect("detail");
    let kids: Vec<&str> = detail.keys.iter().map(|k| k.key_id.as_str()).collect();
    assert_eq!(kids, ["ed-1", "ec-1"]);
    assert!(detail.secrets.is_empty());

    // Discovery names the method and its algorithms.
    let discovery: serde_json::Value = app
        .http
        .get(format!("{}/.well-known/openid-configuration", app.base))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert!(
        discovery["token_endpoint_auth_methods_supported"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m == "private_key_jwt"))
    );
    assert_eq!(
        discovery["token_endpoint_auth_signing_alg_values_supported"],
        serde_json::json!(["EdDSA", "ES256"])
    );
    let issuer = discovery["issuer"].as_str().expect("issuer").to_owned();
    let endpoint = discovery["token_endpoint"]
        .as_str()
        .expect("endpoint")
        .to_owned();

    let claims = |jti: &str| {
        Claims::create(Duration::from_mins(2))
            .with_issuer("nightly")
            .with_subject("nightly")
            .with_audience(&endpoint)
            .with_jwt_id(jti)
    };
    let ok = |r: reqwest::Response| async move {
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.expect("json");
        body["access_token"].as_str().expect("token").to_owned()
    };

    // Both algorithms work, and the issuer is an accepted audience too.
    let first = ed.sign(claims("j-1")).expect("sign");
    let token = ok(assertion_request(&app, &first).await).await;
    ok(assertion_request(&app, &ec.sign(claims("j-2")).expect("sign")).await).await;
    let to_issuer = Claims::create(Duration::from_mins(2))
        .with_issuer("nightly")
        .with_subject("nightly")
        .with_audience(&issuer)
        .with_jwt_id("j-3");
    ok(assertion_request(&app, &ed.sign(to_issuer).expect("sign")).await).await;
    // With client_id given as well (RFC 7523 §3 allows it).
    let r = token_request(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "nightly"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &ed.sign(claims("j-4")).expect("sign")),
        ],
        None,
    )
    .await;
    ok(r).await;

    // Introspection and revocation accept assertions too, each used once.
    let intro = |assertion: String, token: String| {
        let http = app.http.clone();
        let url = format!("{}/oauth2/introspect", app.base);
        async move {
            http.post(url)
                .form(&[
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", assertion.as_str()),
                    ("token", token.as_str()),
                ])
                .send()
                .await
                .expect("send")
        }
    };
    let intro_assertion = ed.sign(claims("j-intro")).expect("sign");
    let r = intro(intro_assertion.clone(), token.clone()).await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        (body["active"].as_bool(), body["client_id"].as_str()),
        (Some(true), Some("nightly"))
    );
    oauth_error(
        intro(intro_assertion, token.clone()).await,
        401,
        "invalid_client",
    )
    .await;

    // Refusals: each answered `invalid_client`, each adding exactly one failure event with its
    // reason and nothing else (no token, no jti used up). A success after each resets the
    // per-client throttle, so the cases do not wait on each other.
    let mut expired = claims("bad-expired");
    expired.issued_at = Some(Clock::now_since_epoch() - Duration::from_mins(10));
    expired.invalid_before = expired.issued_at;
    expired.expires_at = Some(Clock::now_since_epoch() - Duration::from_mins(5));
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"ed-1"}"#),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims("bad-none")).expect("claims json"))
    );
    let hmac = HS256Key::from_bytes(ed_pem.as_bytes())
        .with_key_id("ed-1")
        .authenticate(claims("bad-hmac"))
        .expect("hs256");
    let hmac_raw = HS256Key::from_bytes(&ed.public_key().to_bytes())
        .with_key_id("ed-1")
        .authenticate(claims("bad-hmac-raw"))
        .expect("hs256");
    let wrong_aud = Claims::create(Duration::from_mins(2))
        .with_issuer("nightly")
        .with_subject("nightly")
        .with_audience("https://elsewhere.example/oauth2/token")
        .with_jwt_id("bad-aud");
    let wrong_sub = Claims::create(Duration::from_mins(2))
        .with_issuer("other-daemon")
        .with_subject("nightly")
        .with_audience(&endpoint)
        .with_jwt_id("bad-sub");
    let too_long = Claims::create(Duration::from_mins(60))
        .with_issuer("nightly")
        .with_subject("nightly")
        .with_audience(&endpoint)
        .with_jwt_id("bad-long");
    let stranger = Ed25519KeyPair::generate();
    let cases: Vec<(&str, String, &str)> = vec![
        ("reused jti", first.clone(), "assertion_replayed"),
        (
            "wrong aud",
            ed.sign(wrong_aud).expect("sign"),
            "assertion_wrong_audience",
        ),
        ("alg none", none, "assertion_algorithm_refused"),
        (
            "HS256 with the PEM as secret",
            hmac,
            "assertion_algorithm_refused",
        ),
        (
            "HS256 with the raw key as secret",
            hmac_raw,
            "assertion_algorithm_refused",
        ),
        (
            "unknown kid",
            stranger
                .clone()
                .with_key_id("nope")
                .sign(claims("bad-kid"))
                .expect("sign"),
            "assertion_unknown_key",
        ),
        (
            "a known kid, another key",
            stranger
                .with_key_id("ed-1")
                .sign(claims("bad-sig"))
                .expect("sign"),
            "assertion_bad_signature",
        ),
        (
            "expired",
            ed.sign(expired).expect("sign"),
            "assertion_expired",
        ),
        (
            "another account's key",
            other.sign(claims("bad-other")).expect("sign"),
            "assertion_unknown_key",
        ),
        (
            "ES256 header on the Ed25519 kid",
            ES256KeyPair::from_bytes(&ec.to_bytes())
                .expect("same key")
                .with_key_id("ed-1")
                .sign(claims("bad-mix"))
                .expect("sign"),
            "assertion_algorithm_refused",
        ),
        (
            "issuer is another account",
            ed.sign(wrong_sub).expect("sign"),
            "assertion_wrong_subject",
        ),
        (
            "lifetime too long",
            ed.sign(too_long).expect("sign"),
            "assertion_lifetime_too_long",
        ),
        ("garbage", "a.b.c".into(), "assertion_malformed"),
    ];
    let mut cursor = 0;
    events_since(&admin, &mut cursor).await;
    for (i, (what, assertion, reason)) in cases.into_iter().enumerate() {
        oauth_error(
            assertion_request(&app, &assertion).await,
            401,
            "invalid_client",
        )
        .await;
        let new = events_since(&admin, &mut cursor).await;
        assert_eq!(new.len(), 1, "{what}: one event, nothing else: {new:?}");
        assert_eq!(
            (new[0].action.as_str(), new[0].outcome.as_str()),
            ("token.client_credentials", "failure"),
            "{what}"
        );
        assert_eq!(new[0].details["reason"], reason, "{what}");
        if reason != "assertion_malformed" {
            assert_eq!(new[0].target, "service_account:nightly", "{what}");
        }
        ok(assertion_request(&app, &ed.sign(claims(&format!("reset-{i}"))).expect("sign")).await)
            .await;
        events_since(&admin, &mut cursor).await;
    }
    // The refused assertions used up nothing: their jtis still work once.
    for jti in ["bad-aud", "bad-hmac", "bad-expired", "bad-other", "bad-sig"] {
        ok(assertion_request(&app, &ed.sign(claims(jti)).expect("sign")).await).await;
    }

    // One method at a time; the assertion type must be the JWT bearer one.
    let r = app
        .http
        .post(format!("{}/oauth2/token", app.base))
        .basic_auth("nightly", Some("pcs_x"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            (
                "client_assertion",
                &ed.sign(claims("two-ways")).expect("sign"),
            ),
        ])
        .send()
        .await
        .expect("send");
    oauth_error(r, 400, "invalid_request").await;
    let r = token_request(
        &app,
        &[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
            ),
            ("client_assertion", &ed.sign(claims("saml")).expect("sign")),
        ],
        None,
    )
    .await;
    oauth_error(r, 400, "invalid_request").await;

    // Revocation with an assertion.
    let r = app
        .http
        .post(format!("{}/oauth2/revoke", app.base))
        .form(&[
            ("client_assertion_type", JWT_BEARER),
            (
                "client_assertion",
                &ed.sign(claims("j-revoke")).expect("sign"),
            ),
            ("token", token.as_str()),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let r = intro(ed.sign(claims("j-intro-2")).expect("sign"), token.clone()).await;
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["active"], false, "revoked");

    // A removed key stops working at once, and its kid is never given to another key.
    admin
        .remove_client_key("nightly", "ed-1")
        .await
        .expect("remove");
    oauth_error(
        assertion_request(&app, &ed.sign(claims("after-removal")).expect("sign")).await,
        401,
        "invalid_client",
    )
    .await;
    let e = admin
        .add_client_key(
            "nightly",
            &bad_key(
                Ed25519KeyPair::generate().public_key().to_pem(),
                Some("ed-1"),
            ),
        )
        .await
        .expect_err("kid reuse");
    assert_eq!(e.code(), Some("conflict"));
    ok(assertion_request(&app, &ec.sign(claims("j-ec-after")).expect("sign")).await).await;

    let all = admin
        .audit_events(&EventFilter {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("events")
        .events;
    assert!(all.iter().any(|e| e.action == "service_account.key_added"
        && e.details["key_id"] == "ec-1"
        && e.details["alert"] == true));
    assert!(
        all.iter()
            .any(|e| e.action == "service_account.key_removed")
    );
    assert!(all.iter().any(|e| e.details["reason"] == "issued"
        && e.details["auth_method"] == "private_key_jwt"
        && e.details["key_id"] == "ec-1"));
    app.stop().await;
}

// ---- Service-account networks.

/// A service account limited to some networks gets no token from elsewhere, even with the
/// right secret (refused as `invalid_client`, audited as alert-worthy); bad lists are refused
/// whole and change nothing; an empty list lifts the limit.
async fn service_account_networks(backend: Backend) {
    use portcullis_core::api::NetworksRequest;
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = admin(&app).await;
    admin
        .create_service_account(&portcullis_core::api::CreateServiceAccountRequest {
            name: "net-probe".into(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await
        .expect("sa");
    let s = admin.add_client_secret("net-probe").await.expect("secret");
    let ask = || {
        token_request(
            &app,
            &[("grant_type", "client_credentials")],
            Some(("net-probe", &s.client_secret)),
        )
    };
    assert_eq!(ask().await.status(), 200, "unrestricted at first");

    let admin_ref = &admin;
    let set = |cidrs: &[&str]| {
        let req = NetworksRequest {
            cidrs: cidrs.iter().map(|c| c.to_string()).collect(),
        };
        async move { admin_ref.set_networks("net-probe", &req).await }
    };
    let d = set(&["10.0.0.0/8", "2001:db8::/32"]).await.expect("set");
    assert_eq!(d.allowed_networks, ["10.0.0.0/8", "2001:db8::/32"]);
    oauth_error(ask().await, 401, "invalid_client").await;
    let refused = admin
        .audit_events(&EventFilter {
            action: Some("token.client_credentials".into()),
            outcome: Some("failure".into()),
            ..Default::default()
        })
        .await
        .expect("events")
        .events;
    let last = refused.last().expect("refusal recorded");
    assert_eq!(last.details["reason"], "network_not_allowed");
    assert_eq!(last.details["alert"], true);

    // Bad lists: every problem named, nothing changed.
    let count = || async {
        admin
            .audit_events(&EventFilter {
                limit: Some(1000),
                ..Default::default()
            })
            .await
            .expect("events")
            .events
            .len()
    };
    let before = count().await;
    let e = set(&["10.0.0.1/8", "bogus", "192.168.0.0/16", "192.168.4.0/24"])
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Some("invalid_request"), "{e}");
    for needle in ["did you mean 10.0.0.0/8", "bogus", "overlaps"] {
        assert!(e.to_string().contains(needle), "{needle} missing from {e}");
    }
    assert_eq!(count().await, before, "a refused list writes nothing");
    assert_eq!(
        admin
            .service_account("net-probe")
            .await
            .expect("detail")
            .allowed_networks,
        ["10.0.0.0/8", "2001:db8::/32"]
    );

    // Loopback allowed: the token comes again; an empty list lifts the limit.
    set(&["127.0.0.0/8", "::1"]).await.expect("set");
    assert_eq!(ask().await.status(), 200);
    let d = set(&[]).await.expect("clear");
    assert!(d.allowed_networks.is_empty());
    assert_eq!(ask().await.status(), 200);
    let changes = admin
        .audit_events(&EventFilter {
            action: Some("service_account.networks_changed".into()),
            ..Default::default()
        })
        .await
        .expect("events")
        .events;
    assert_eq!(changes.len(), 3);
    assert_eq!(changes[2].details["after"], serde_json::json!([]));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_networks_sqlite() {
    service_account_networks(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_networks_postgres() {
    service_account_networks(Backend::Postgres).await;
}

// ---- Client-credentials throttling.

/// Wrong secrets slow a client down at the address they come from (429 `invalid_client` with
/// Retry-After — `slow_down` is the device grant's — and never a lockout); the right secret is
/// never refused, neither from that address nor from another (finding: unrelated clients at one
/// address locked each other out).
async fn client_credentials_throttle_and_reset(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = admin(&app).await;
    admin
        .create_service_account(&portcullis_core::api::CreateServiceAccountRequest {
            name: "throttle-probe".into(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await
        .expect("sa");
    let s = admin
        .add_client_secret("throttle-probe")
        .await
        .expect("secret");
    let wrong = "pcs_not-the-secret";
    let base = app.base.clone();
    let attempt = |from: u8, secret: &str| {
        let secret = secret.to_owned();
        let base = base.clone();
        async move {
            reqwest::Client::builder()
                .local_address(std::net::IpAddr::from([127, 0, 0, from]))
                .build()
                .expect("client")
                .post(format!("{base}/oauth2/token"))
                .basic_auth("throttle-probe", Some(&secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .expect("send")
        }
    };
    for _ in 0..11 {
        oauth_error(attempt(1, wrong).await, 401, "invalid_client").await;
    }
    let r = attempt(1, wrong).await;
    assert_eq!(
        r.status(),
        429,
        "the twelfth failure from one address waits"
    );
    assert!(r.headers().contains_key("retry-after"));
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"], "invalid_client", "not slow_down: {body}");
    // The right secret is never refused for failures, here or elsewhere.
    assert_eq!(attempt(1, &s.client_secret).await.status(), 200);
    assert_eq!(attempt(2, &s.client_secret).await.status(), 200);
    // A wrong secret from another address is judged there alone.
    oauth_error(attempt(3, wrong).await, 401, "invalid_client").await;
    // Never a lockout: after the wait a failure counts again (401, not 429).
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    oauth_error(attempt(1, wrong).await, 401, "invalid_client").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_throttle_and_reset_sqlite() {
    client_credentials_throttle_and_reset(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_throttle_and_reset_postgres() {
    client_credentials_throttle_and_reset(Backend::Postgres).await;
}

// ---- Device authorization grant (RFC 8628) and refresh tokens.

async fn form_post(app: &TestApp, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    app.http
        .post(format!("{}{path}", app.base))
        .form(form)
        .send()
        .await
        .expect("send")
}

async fn device_start(app: &TestApp) -> serde_json::Value {
    let r = form_post(
        app,
        "/oauth2/device_authorization",
        &[("client_id", "portcullis-cli")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.json().await.expect("json")
}

async fn device_poll(app: &TestApp, device_code: &str) -> reqwest::Response {
    form_post(
        app,
        "/oauth2/token",
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", "portcullis-cli"),
            ("device_code", device_code),
        ],
    )
    .await
}

async fn refresh_with(app: &TestApp, client_id: &str, token: &str) -> reqwest::Response {
    form_post(
        app,
        "/oauth2/token",
        &[
            ("grant_type", "refresh_token"),
            ("client_id", client_id),
            ("refresh_token", token),
        ],
    )
    .await
}

fn claims_of(jwt: &str) -> serde_json::Value {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = jwt.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json")
}

fn code_of(start: &serde_json::Value, field: &str) -> String {
    start[field].as_str().expect(field).to_owned()
}

/// The CLI's sign-in: a device code approved by a person with MFA yields tokens once, carrying
/// that person's roles and strength; polling obeys RFC 8628; refresh tokens rotate, and a
/// rotated one presented again revokes its whole family with an alert.
async fn device_grant_and_refresh_rotation(app: TestApp) {
    use portcullis_core::api::DeviceDecisionRequest;
    let admin = admin(&app).await;
    let decide = |code: String| DeviceDecisionRequest { user_code: code };

    // Start: codes as RFC 8628 describes them.
    let d1 = device_start(&app).await;
    let user_code = code_of(&d1, "user_code");
    assert_eq!(user_code.len(), 9);
    assert_eq!(&user_code[4..5], "-");
    assert_eq!(d1["verification_uri"], "http://localhost:8080/device");
    assert_eq!(d1["interval"], 5);
    assert_eq!(d1["expires_in"], 600);
    oauth_error(
        form_post(
            &app,
            "/oauth2/device_authorization",
            &[("client_id", "evil")],
        )
        .await,
        401,
        "invalid_client",
    )
    .await;
    oauth_error(
        form_post(&app, "/oauth2/device_authorization", &[]).await,
        400,
        "invalid_request",
    )
    .await;

    // Polling: pending, then too fast.
    let dc1 = code_of(&d1, "device_code");
    oauth_error(device_poll(&app, &dc1).await, 400, "authorization_pending").await;
    oauth_error(device_poll(&app, &dc1).await, 400, "slow_down").await;
    oauth_error(
        device_poll(&app, "not-a-device-code").await,
        400,
        "invalid_grant",
    )
    .await;

    // Denied.
    let d2 = device_start(&app).await;
    admin
        .deny_device(&decide(code_of(&d2, "user_code")))
        .await
        .expect("deny");
    oauth_error(
        device_poll(&app, &code_of(&d2, "device_code")).await,
        400,
        "access_denied",
    )
    .await;

    // Approval needs a second factor: a password-only session cannot give one.
    admin
        .create_user(&CreateUserRequest {
            name: "pat".into(),
            display_name: "Pat".into(),
            email: None,
            phone: None,
            guest_organisation: None,
            privileged: false,
            password: "harbor-violet-mango-81".into(),
        })
        .await
        .expect("pat");
    let r = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "pat".into(),
            password: "harbor-violet-mango-81".into(),
        })
        .await
        .expect("pat signs in");
    let pat = app.anonymous.with_token(Some(secrecy::SecretString::from(
        r.session.expect("session").token,
    )));
    let d3 = device_start(&app).await;
    let e = pat
        .approve_device(&decide(code_of(&d3, "user_code")))
        .await
        .expect_err("password only");
    assert_eq!(e.code(), Some("step_up_required"), "{e}");
    assert_eq!(e.status(), Some(401), "{e}");
    let e = admin
        .approve_device(&decide("12".into()))
        .await
        .expect_err("bad code");
    assert_eq!(e.code(), Some("invalid_request"), "{e}");

    // Approved (typed in lower case with a space): tokens once, with the approver's roles
    // and strength.
    let typed = code_of(&d3, "user_code").to_lowercase().replace('-', " ");
    admin.approve_device(&decide(typed)).await.expect("approve");
    let e = admin
        .approve_device(&decide(code_of(&d3, "user_code")))
        .await
        .expect_err("decided already");
    assert_eq!(e.code(), Some("not_found"), "{e}");
    let dc3 = code_of(&d3, "device_code");
    let r = device_poll(&app, &dc3).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let t1: serde_json::Value = r.json().await.expect("json");
    let c = claims_of(t1["access_token"].as_str().expect("at"));
    assert_eq!(c["client_id"], "portcullis-cli");
    assert_eq!(c["acr"], "mfa");
    assert!(c["amr"].as_array().expect("amr").contains(&"otp".into()));
    assert!(
        c["roles"]
            .as_array()
            .expect("roles")
            .iter()
            .any(|r| r["role"] == "global-administrator")
    );
    oauth_error(device_poll(&app, &dc3).await, 400, "invalid_grant").await;

    // Refresh rotates.
    let r1 = t1["refresh_token"].as_str().expect("rt").to_owned();
    let r = refresh_with(&app, "portcullis-cli", &r1).await;
    assert_eq!(r.status(), 200);
    let t2: serde_json::Value = r.json().await.expect("json");
    let r2 = t2["refresh_token"].as_str().expect("rt").to_owned();
    assert_ne!(r1, r2);
    assert_ne!(t1["access_token"], t2["access_token"]);
    oauth_error(
        refresh_with(&app, "other-client", &r2).await,
        401,
        "invalid_client",
    )
    .await;
    oauth_error(
        refresh_with(&app, "portcullis-cli", "pcr_forged").await,
        400,
        "invalid_grant",
    )
    .await;
    // Reuse of the rotated token: refused, and the family (r2 too) is revoked, with an alert.
    oauth_error(
        refresh_with(&app, "portcullis-cli", &r1).await,
        400,
        "invalid_grant",
    )
    .await;
    oauth_error(
        refresh_with(&app, "portcullis-cli", &r2).await,
        400,
        "invalid_grant",
    )
    .await;
    let reuse = admin
        .audit_events(&EventFilter {
            action: Some("token.refresh_reuse".into()),
            ..Default::default()
        })
        .await
        .expect("events")
        .events;
    assert_eq!(reuse.len(), 1);
    assert_eq!(reuse[0].details["alert"], true);
    assert_eq!(reuse[0].details["family_revoked"], true);
    assert!(
        !serde_json::to_string(
            &admin
                .audit_events(&EventFilter {
                    limit: Some(1000),
                    ..Default::default()
                })
                .await
                .expect("all")
        )
        .expect("json")
        .contains(&r1[4..]),
        "refresh tokens never reach the audit log"
    );

    // The CLI (a public client) revokes its own tokens without authenticating (RFC 7009):
    // a refresh token ends its family, an access token its jti; unknown tokens change nothing.
    let d5 = device_start(&app).await;
    admin
        .approve_device(&decide(code_of(&d5, "user_code")))
        .await
        .expect("approve");
    let t5: serde_json::Value = device_poll(&app, &code_of(&d5, "device_code"))
        .await
        .json()
        .await
        .expect("json");
    let revoke = |token: String| {
        let app = &app;
        async move {
            form_post(
                app,
                "/oauth2/revoke",
                &[("client_id", "portcullis-cli"), ("token", token.as_str())],
            )
            .await
            .status()
        }
    };
    let r5 = t5["refresh_token"].as_str().expect("rt").to_owned();
    let a5 = t5["access_token"].as_str().expect("at").to_owned();
    let before = admin.whoami().await.expect("me");
    assert_eq!(revoke("pcr_unknown".into()).await, 200);
    assert_eq!(revoke(r5.clone()).await, 200);
    oauth_error(
        refresh_with(&app, "portcullis-cli", &r5).await,
        400,
        "invalid_grant",
    )
    .await;
    // Revoking the family ended the access token minted from it too.
    let cli5 = Client::new(&app.base, Some(secrecy::SecretString::from(a5.clone()))).expect("c");
    let e = cli5
        .whoami()
        .await
        .expect_err("the family's access token ended with it");
    assert_eq!(e.code(), Some("unauthenticated"), "{e}");
    // Revoking the access token itself is still answered and recorded (idempotent).
    assert_eq!(revoke(a5).await, 200);
    // Both revocations are in the audit log with the change they made.
    for action in ["token.refresh_revoked", "token.revoked"] {
        let evs = admin
            .audit_events(&EventFilter {
                action: Some(action.into()),
                ..Default::default()
            })
            .await
            .expect("events")
            .events;
        assert_eq!(evs.len(), 1, "{action}");
        assert_eq!(evs[0].actor, "user:root-admin");
    }
    assert_eq!(before.user.name, "root-admin");

    // Revoking the session that approved a device code ends the tokens that followed from it.
    let (eve, _) = mfa_user(&app, &admin, "eve", "copper-lantern-river-42").await;
    let d6 = device_start(&app).await;
    eve.approve_device(&decide(code_of(&d6, "user_code")))
        .await
        .expect("eve approves");
    let t6: serde_json::Value = device_poll(&app, &code_of(&d6, "device_code"))
        .await
        .json()
        .await
        .expect("json");
    let r6 = t6["refresh_token"].as_str().expect("rt").to_owned();
    // Tokens cannot approve devices: the family would hang on no session.
    let eve_token = Client::new(
        &app.base,
        Some(secrecy::SecretString::from(
            t6["access_token"].as_str().expect("at").to_owned(),
        )),
    )
    .expect("client");
    let d7 = device_start(&app).await;
    let e = eve_token
        .approve_device(&decide(code_of(&d7, "user_code")))
        .await
        .expect_err("token approval");
    assert_eq!(e.code(), Some("forbidden"), "{e}");
    for s in admin.user_sessions("eve").await.expect("sessions") {
        admin.revoke_session(&s.id).await.expect("revoke");
    }
    oauth_error(
        refresh_with(&app, "portcullis-cli", &r6).await,
        400,
        "invalid_grant",
    )
    .await;

    // A disabled account stops refreshing at once.
    let (dora, _) = mfa_user(&app, &admin, "dora", "copper-lantern-river-42").await;
    let d4 = device_start(&app).await;
    dora.approve_device(&decide(code_of(&d4, "user_code")))
        .await
        .expect("dora approves");
    let t4: serde_json::Value = device_poll(&app, &code_of(&d4, "device_code"))
        .await
        .json()
        .await
        .expect("json");
    let r4 = t4["refresh_token"].as_str().expect("rt").to_owned();
    admin.disable_user("dora").await.expect("disable");
    oauth_error(
        refresh_with(&app, "portcullis-cli", &r4).await,
        400,
        "invalid_grant",
    )
    .await;
    app.stop().await;
}

/// A device code nobody approves in time expires; approving it afterwards finds nothing.
async fn device_codes_expire(backend: Backend) {
    use portcullis_core::api::DeviceDecisionRequest;
    let Some(app) = spawn_with(backend, |c| c.device_code_seconds = 1).await else {
        return;
    };
    let admin = admin(&app).await;
    let d = device_start(&app).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    oauth_error(
        device_poll(&app, &code_of(&d, "device_code")).await,
        400,
        "expired_token",
    )
    .await;
    let e = admin
        .approve_device(&DeviceDecisionRequest {
            user_code: code_of(&d, "user_code"),
        })
        .await
        .expect_err("expired");
    assert_eq!(e.code(), Some("not_found"), "{e}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_codes_expire_sqlite() {
    device_codes_expire(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_codes_expire_postgres() {
    device_codes_expire(Backend::Postgres).await;
}

// ---- Access tokens as API credentials.

/// Access tokens work as bearer credentials of the API, for service accounts and for people
/// (after the device grant); permissions come from the grants held *now*, so removing a role
/// takes effect on a token that still names it; revoked, forged and disabled-subject tokens are
/// refused.
async fn access_tokens_are_api_credentials(app: TestApp) {
    use portcullis_core::api::DeviceDecisionRequest;
    let admin = admin(&app).await;
    admin
        .create_service_account(&portcullis_core::api::CreateServiceAccountRequest {
            name: "audit-shipper".into(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await
        .expect("sa");
    // Who holds its secret never assigns it roles: a Service Administrator adds the secret.
    let (sam, _) = holder(&app, &admin, "sam", "service-administrator").await;
    let s = sam
        .add_client_secret("audit-shipper")
        .await
        .expect("secret");
    let as_bearer = |t: &str| {
        Client::new(&app.base, Some(secrecy::SecretString::from(t.to_owned()))).expect("client")
    };

    // No role: the token authenticates, the permission is missing.
    let t0 = access_token(&app, "audit-shipper", &s.client_secret).await;
    let e = as_bearer(&t0)
        .audit_events(&EventFilter::default())
        .await
        .expect_err("no role");
    assert_eq!(e.code(), Some("forbidden"), "{e}");

    // With an active Audit Reader assignment: allowed.
    let a = admin
        .create_assignment(&CreateAssignmentRequest {
            principal: "service_account:audit-shipper".into(),
            role: "audit-reader".into(),
            scope: None,
            kind: Some("active".into()),
            duration_seconds: Some(3600),
            ends_at: None,
        })
        .await
        .expect("assign");
    let t1 = access_token(&app, "audit-shipper", &s.client_secret).await;
    let shipper = as_bearer(&t1);
    shipper
        .audit_events(&EventFilter::default())
        .await
        .expect("reads the audit log");
    // The role ends: the same token (which still names it) is refused at once.
    admin.delete_assignment(&a.id).await.expect("unassign");
    let e = shipper
        .audit_events(&EventFilter::default())
        .await
        .expect_err("role gone");
    assert_eq!(e.code(), Some("forbidden"), "{e}");

    // Revoked, forged and disabled-subject tokens: unauthenticated.
    let r = app
        .http
        .post(format!("{}/oauth2/revoke", app.base))
        .basic_auth("audit-shipper", Some(&s.client_secret))
        .form(&[("token", t1.as_str())])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let e = shipper.whoami().await.expect_err("revoked");
    assert_eq!(e.code(), Some("unauthenticated"), "{e}");
    let mut forged = t0.clone();
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    for bad in [forged.as_str(), "a.b.c", "eyJhbGciOiJub25lIn0.e30."] {
        let e = as_bearer(bad).whoami().await.expect_err("forged");
        assert_eq!(e.code(), Some("unauthenticated"), "{bad}: {e}");
    }

    // A person's token from the device grant: their identity, their roles now.
    let d = device_start(&app).await;
    admin
        .approve_device(&DeviceDecisionRequest {
            user_code: code_of(&d, "user_code"),
        })
        .await
        .expect("approve");
    let t: serde_json::Value = device_poll(&app, &code_of(&d, "device_code"))
        .await
        .json()
        .await
        .expect("json");
    let cli = as_bearer(t["access_token"].as_str().expect("at"));
    let me = cli.whoami().await.expect("whoami with a token");
    assert_eq!(me.user.name, "root-admin");
    cli.users()
        .await
        .expect("a global administrator lists users");

    // A disabled person's token stops working at once.
    let (erin, _) = mfa_user(&app, &admin, "erin", "copper-lantern-river-42").await;
    let d = device_start(&app).await;
    erin.approve_device(&DeviceDecisionRequest {
        user_code: code_of(&d, "user_code"),
    })
    .await
    .expect("erin approves");
    let t: serde_json::Value = device_poll(&app, &code_of(&d, "device_code"))
        .await
        .json()
        .await
        .expect("json");
    let erin_cli = as_bearer(t["access_token"].as_str().expect("at"));
    assert_eq!(erin_cli.whoami().await.expect("erin").user.name, "erin");
    admin.disable_user("erin").await.expect("disable");
    let e = erin_cli.whoami().await.expect_err("disabled");
    assert_eq!(e.code(), Some("unauthenticated"), "{e}");
    app.stop().await;
}

// ---- Long-running clients.

/// `Client::with_refresh_token` keeps a script's tokens fresh by itself: it refreshes before
/// expiry, refreshes once and retries after a 401, hands every rotated refresh token to its
/// callback, and stops with `invalid_grant` when the server refuses the refresh.
async fn long_running_clients_refresh_by_themselves(app: TestApp) {
    use portcullis_core::api::DeviceDecisionRequest;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    let admin = admin(&app).await;
    let d = device_start(&app).await;
    admin
        .approve_device(&DeviceDecisionRequest {
            user_code: code_of(&d, "user_code"),
        })
        .await
        .expect("approve");
    let t: serde_json::Value = device_poll(&app, &code_of(&d, "device_code"))
        .await
        .json()
        .await
        .expect("json");
    let access = t["access_token"].as_str().expect("at").to_owned();
    let first_refresh = t["refresh_token"].as_str().expect("rt").to_owned();
    let rotated = Arc::new(Mutex::new(Vec::<String>::new()));
    let keep = |log: &Arc<Mutex<Vec<String>>>| -> Option<portcullis_client::OnRotate> {
        let log = log.clone();
        Some(Box::new(move |rt: &str| {
            log.lock().expect("lock").push(rt.to_owned())
        }))
    };
    let secret = |s: &str| secrecy::SecretString::from(s.to_owned());

    // About to expire: refreshed before the call; fresh afterwards: not refreshed again.
    let c = Client::with_refresh_token(
        &app.base,
        secret(&access),
        Duration::ZERO,
        secret(&first_refresh),
        keep(&rotated),
    )
    .expect("client");
    assert_eq!(c.whoami().await.expect("whoami").user.name, "root-admin");
    c.users().await.expect("users");
    let seen = rotated.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1, "one refresh for two calls");
    assert_ne!(seen[0], first_refresh);

    // A refused access token: refreshed once, the call retried and answered.
    let rotated2 = Arc::new(Mutex::new(Vec::<String>::new()));
    let c2 = Client::with_refresh_token(
        &app.base,
        secret("eyJhbGciOiJFZERTQSJ9.e30.AAAA"),
        Duration::from_secs(3600),
        secret(&seen[0]),
        keep(&rotated2),
    )
    .expect("client");
    assert_eq!(c2.whoami().await.expect("retried").user.name, "root-admin");
    assert_eq!(rotated2.lock().expect("lock").len(), 1);

    // A rotated refresh token replayed: the refresh is refused and the family revoked.
    let c3 = Client::with_refresh_token(
        &app.base,
        secret("eyJhbGciOiJFZERTQSJ9.e30.AAAA"),
        Duration::from_secs(3600),
        secret(&first_refresh),
        None,
    )
    .expect("client");
    let e = c3.whoami().await.expect_err("replayed");
    assert_eq!(e.code(), Some("invalid_grant"), "{e}");
    let latest = rotated2.lock().expect("lock")[0].clone();
    oauth_error(
        refresh_with(&app, "portcullis-cli", &latest).await,
        400,
        "invalid_grant",
    )
    .await;
    app.stop().await;
}

// ----- OpenID Connect: authorization code + PKCE, pages, ID tokens, userinfo -----

/// A server whose issuer is its real address (`http://localhost:PORT`, what an unset
/// `public_url` follows), so a relying party can follow discovery.
async fn spawn_at_localhost(backend: Backend) -> Option<TestApp> {
    spawn_with(backend, |c| c.public_url = None).await
}

/// The admin's session token (bootstrap, then password and TOTP).
async fn admin_token(app: &TestApp) -> String {
    bootstrap_admin(app).await;
    let r = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "root-admin".into(),
            password: ADMIN_PW.into(),
        })
        .await
        .expect("password");
    let r = app
        .anonymous
        .signin_totp(&TotpSignInRequest {
            signin_id: r.signin_id.expect("id"),
            code: code(ADMIN_SECRET, 1),
        })
        .await
        .expect("totp");
    r.session.expect("session").token
}

/// Registers an OpenID Connect client through the API.
async fn register_client(
    app: &TestApp,
    token: &str,
    name: &str,
    uris: &[&str],
    public: bool,
) -> reqwest::Response {
    app.http
        .post(format!("{}/api/v1/clients", app.base))
        .bearer_auth(token)
        .json(&serde_json::json!({ "name": name, "redirect_uris": uris, "public": public }))
        .send()
        .await
        .expect("send")
}

/// Registers a confidential client with one redirect URI; its id and secret.
async fn confidential_client(
    app: &TestApp,
    token: &str,
    name: &str,
    redirect: &str,
) -> (String, String) {
    let r = register_client(app, token, name, &[redirect], false).await;
    assert_eq!(r.status(), 201);
    let created: serde_json::Value = r.json().await.expect("json");
    let id = created["client"]["client_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let sec = created["client_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    (id, sec)
}

/// A person with an email address and a confirmed TOTP factor (its code for step -1 used).
async fn oidc_person(app: &TestApp, admin: &Client, name: &str, pw: &str) -> Vec<u8> {
    let email = Some(format!("{name}@example.org"));
    user_with_totp(app, admin, name, format!("{name} Example"), email, pw).await
}

/// A browser: follows nothing by itself, keeps cookies per name like a cookie jar for one site.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: std::collections::BTreeMap<String, String>,
    /// Every Set-Cookie header seen, for attribute checks.
    set_cookies: Vec<String>,
}

impl Browser {
    fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("http"),
            base: base.to_owned(),
            cookies: Default::default(),
            set_cookies: Vec::new(),
        }
    }

    fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("{}{path_or_url}", self.base)
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, r: &reqwest::Response) {
        for v in r.headers().get_all("set-cookie") {
            let v = v.to_str().expect("ascii").to_owned();
            let pair = v.split(';').next().expect("pair");
            let (k, val) = pair.split_once('=').expect("name=value");
            self.cookies.insert(k.to_owned(), val.to_owned());
            self.set_cookies.push(v);
        }
    }

    async fn get(&mut self, path_or_url: &str) -> reqwest::Response {
        let r = self
            .http
            .get(self.url(path_or_url))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("get");
        self.keep(&r);
        r
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let r = self
            .http
            .post(self.url(path))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .expect("post");
        self.keep(&r);
        r
    }
}

fn location(r: &reqwest::Response) -> String {
    assert_eq!(r.status(), 303, "expected a redirect");
    r.headers()["location"].to_str().expect("ascii").to_owned()
}

/// The value of the hidden input `name` in a page (HTML-unescaped).
fn hidden(html: &str, name: &str) -> String {
    let needle = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&needle)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + needle.len();
    let end = start + html[start..].find('"').expect("closing quote");
    unescape(&html[start..end])
}

/// Decodes the character references an HTML attribute value may hold (named and numeric).
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after.find(';').expect("terminated reference");
        let name = &after[..end];
        let c = match name {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            n if n.starts_with("#x") => {
                char::from_u32(u32::from_str_radix(&n[2..], 16).expect("hex")).expect("char")
            }
            n if n.starts_with('#') => {
                char::from_u32(n[1..].parse().expect("decimal")).expect("char")
            }
            other => panic!("unknown reference &{other};"),
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn query_param(url: &str, key: &str) -> Option<String> {
    let u = url::Url::parse(url).expect("url");
    u.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Signs in through the pages from an authorization URL and returns the page after sign-in
/// (a consent page or a redirect to the client).
async fn browser_sign_in(
    b: &mut Browser,
    authorize_url: &str,
    user: &str,
    pw: &str,
    secret: &[u8],
    offset: i64,
) -> reqwest::Response {
    let r = b.get(authorize_url).await;
    let to_signin = location(&r);
    assert!(to_signin.starts_with("/signin?return_to="), "{to_signin}");
    let r = b.get(&to_signin).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.expect("html");
    let csrf = hidden(&page, "csrf");
    let return_to = hidden(&page, "return_to");
    let r = b
        .post(
            "/signin",
            &[
                ("csrf", &csrf),
                ("return_to", &return_to),
                ("username", user),
                ("password", pw),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.expect("html");
    let signin_id = hidden(&page, "signin_id");
    let r = b
        .post(
            "/signin/totp",
            &[
                ("csrf", &csrf),
                ("return_to", &return_to),
                ("signin_id", &signin_id),
                ("code", &code(secret, offset)),
            ],
        )
        .await;
    let back = location(&r);
    assert_eq!(back, return_to);
    b.get(&back).await
}

/// Answers the consent page with `decision`; returns where the browser is sent.
async fn consent(b: &mut Browser, page: reqwest::Response, decision: &str) -> String {
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("asks to"), "{html}");
    let r = b
        .post(
            "/oauth2/authorize/consent",
            &[
                ("csrf", &hidden(&html, "csrf")),
                ("request", &hidden(&html, "request")),
                ("decision", decision),
            ],
        )
        .await;
    location(&r)
}

/// A standard relying party (the `openidconnect` crate) does discovery, authorization code +
/// PKCE through the sign-in and consent pages, the code exchange, ID-token verification
/// against JWKS, userinfo and refresh; a second JWT library verifies the access token.
async fn oidc_relying_party(backend: Backend) {
    use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
    use openidconnect::{
        AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
        OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
    };
    let Some(app) = spawn_at_localhost(backend).await else {
        return;
    };
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let secret = oidc_person(&app, &admin, "olivia", "amber-lantern-quiet-58").await;
    // A role ending in two minutes: no token may outlive it (invariant 3).
    admin
        .create_assignment(&CreateAssignmentRequest {
            principal: "olivia".into(),
            role: "audit-reader".into(),
            scope: None,
            kind: Some("active".into()),
            duration_seconds: Some(120),
            ends_at: None,
        })
        .await
        .expect("assign");
    let role_ends = now_unix() + 120;
    let redirect = "http://127.0.0.1:9/callback";
    let (client_id, client_secret) = confidential_client(&app, &token, "Grafana", redirect).await;
    assert!(client_id.starts_with("pcc_"));

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http");
    let issuer = app.public_url.clone();
    let meta =
        CoreProviderMetadata::discover_async(IssuerUrl::new(issuer.clone()).expect("iss"), &http)
            .await
            .expect("discovery");
    let rp = CoreClient::from_provider_metadata(
        meta,
        ClientId::new(client_id.clone()),
        Some(ClientSecret::new(client_secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(redirect.into()).expect("redirect"));
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf_state, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();

    let mut b = Browser::new(&issuer);
    let page = browser_sign_in(
        &mut b,
        auth_url.as_str(),
        "olivia",
        "amber-lantern-quiet-58",
        &secret,
        0,
    )
    .await;
    // Strict cookies, and a CSP without scripts on every page.
    assert!(
        b.set_cookies
            .iter()
            .any(|c| c.starts_with("portcullis_session="))
    );
    for c in &b.set_cookies {
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict"),
            "{c}"
        );
    }
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:9"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline") && !csp.contains("script-src"));
    let back = consent(&mut b, page, "allow").await;
    assert!(back.starts_with(redirect), "{back}");
    assert_eq!(
        query_param(&back, "state").as_deref(),
        Some(csrf_state.secret().as_str())
    );
    assert_eq!(query_param(&back, "iss").as_deref(), Some(issuer.as_str()));
    let code = query_param(&back, "code").expect("code");

    let tokens = rp
        .exchange_code(AuthorizationCode::new(code))
        .expect("token endpoint")
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");
    let id_token = tokens.id_token().expect("id token");
    let claims = id_token
        .claims(&rp.id_token_verifier(), &nonce)
        .expect("ID token verifies against JWKS");
    assert_eq!(
        claims.preferred_username().map(|u| u.as_str()),
        Some("olivia")
    );
    assert_eq!(
        claims.email().map(|e| e.as_str()),
        Some("olivia@example.org")
    );
    assert_eq!(claims.auth_context_ref().map(|a| a.as_str()), Some("mfa"));
    assert!(claims.auth_time().is_some());
    let id_exp = claims.expiration().timestamp() as u64;
    assert!(
        id_exp <= role_ends + 1,
        "ID token outlives the role: {id_exp} > {role_ends}"
    );
    let subject = claims.subject().as_str().to_owned();
    let refresh = tokens
        .refresh_token()
        .expect("offline_access gives a refresh token")
        .clone();

    // Another JWT library verifies the access token against JWKS.
    {
        use jwt_simple::prelude::*;
        let jwks: serde_json::Value = app
            .http
            .get(format!("{}/oauth2/jwks", app.base))
            .send()
            .await
            .expect("jwks")
            .json()
            .await
            .expect("json");
        let x = jwks["keys"][0]["x"].as_str().expect("x");
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(x)
            .expect("b64");
        let key = Ed25519PublicKey::from_bytes(&raw).expect("key");
        let opts = VerificationOptions {
            allowed_issuers: Some(HashSet::from_strings(&[&issuer])),
            // Each client is its own audience.
            allowed_audiences: Some(HashSet::from_strings(&[&client_id])),
            ..Default::default()
        };
        let verified = key
            .verify_token::<serde_json::Value>(tokens.access_token().secret(), Some(opts))
            .expect("access token verifies");
        assert_eq!(verified.subject.as_deref(), Some(subject.as_str()));
        assert_eq!(verified.custom["client_id"], client_id);
        assert_eq!(verified.custom["acr"], "mfa");
        assert_eq!(verified.custom["roles"][0]["role"], "audit-reader");
        let exp = verified.expires_at.expect("exp").as_secs();
        assert!(
            exp <= role_ends + 1,
            "access token outlives the role: {exp} > {role_ends}"
        );
        // The default lifetime is longer than the role's two minutes: the role bounds it.
        assert!(
            exp + 5 >= role_ends,
            "cut at the role's end, not before: {exp}"
        );
    }

    // Userinfo, through the relying party.
    let info: openidconnect::core::CoreUserInfoClaims = rp
        .user_info(tokens.access_token().clone(), None)
        .expect("userinfo endpoint")
        .request_async(&http)
        .await
        .expect("userinfo");
    assert_eq!(info.subject().as_str(), subject);
    assert_eq!(info.email().map(|e| e.as_str()), Some("olivia@example.org"));

    // An application's access token is not a credential for the Portcullis API.
    let r = app
        .http
        .get(format!("{}/api/v1/me", app.base))
        .bearer_auth(tokens.access_token().secret())
        .send()
        .await
        .expect("me");
    assert_eq!(r.status(), 401);

    // Refresh rotates and brings a new ID token.
    let refreshed = rp
        .exchange_refresh_token(&refresh)
        .expect("token endpoint")
        .request_async(&http)
        .await
        .expect("refresh");
    let again = refreshed.id_token().expect("refreshed ID token");
    let c2 = again
        .claims(&rp.id_token_verifier(), |_: Option<&Nonce>| Ok(()))
        .expect("refreshed ID token verifies");
    assert_eq!(c2.subject().as_str(), subject);
    assert!(refreshed.refresh_token().is_some());
    assert_ne!(
        refreshed.refresh_token().map(|t| t.secret().clone()),
        Some(refresh.secret().clone())
    );

    // The consent is remembered: a second authorization goes straight back with a code.
    let (challenge2, _v2) = PkceCodeChallenge::new_random_sha256();
    let (url2, _, _) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge2)
        .url();
    let r = b.get(url2.as_str()).await;
    let to = location(&r);
    assert!(
        to.starts_with(redirect) && query_param(&to, "code").is_some(),
        "{to}"
    );

    // RFC 7009: another client cannot revoke this one's token; its own client can.
    let live = refreshed.refresh_token().expect("rt").secret().clone();
    let r = register_client(&app, &token, "Other", &[redirect], true).await;
    let other: serde_json::Value = r.json().await.expect("json");
    let other_id = other["client"]["client_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let r = form_post(
        &app,
        "/oauth2/revoke",
        &[("client_id", &other_id), ("token", &live)],
    )
    .await;
    assert_eq!(r.status(), 200);
    // Introspection: the confidential client may, the public one may not.
    let fresh_at = refreshed.access_token().secret().clone();
    let seen = introspect(&app, &client_id, &client_secret, &fresh_at).await;
    assert_eq!(seen["active"], true);
    assert_eq!(seen["client_id"], client_id.as_str());
    assert_eq!(seen["scope"], "openid profile email offline_access");
    let r = form_post(
        &app,
        "/oauth2/introspect",
        &[("client_id", &other_id), ("token", &fresh_at)],
    )
    .await;
    oauth_error(r, 401, "invalid_client").await;
    let refresh_with = |rt: String| {
        let (http, base, id, sec) = (
            app.http.clone(),
            app.base.clone(),
            client_id.clone(),
            client_secret.clone(),
        );
        async move {
            http.post(format!("{base}/oauth2/token"))
                .basic_auth(&id, Some(&sec))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt.as_str()),
                ])
                .send()
                .await
                .expect("refresh")
        }
    };
    let r = refresh_with(live).await;
    assert_eq!(r.status(), 200, "a foreign revocation changed nothing");
    let t: serde_json::Value = r.json().await.expect("json");
    let live = t["refresh_token"].as_str().expect("rt").to_owned();
    let r = app
        .http
        .post(format!("{}/oauth2/revoke", app.base))
        .basic_auth(&client_id, Some(&client_secret))
        .form(&[("token", live.as_str())])
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), 200);
    oauth_error(refresh_with(live).await, 400, "invalid_grant").await;
    app.stop().await;
}

/// A valid authorization URL for `client_id` with a fresh PKCE pair; returns it and the
/// verifier.
fn authorize_url(
    base: &str,
    client_id: &str,
    redirect: &str,
    extra: &[(&str, &str)],
) -> (String, String) {
    let verifier = format!("v{}", "x".repeat(50)) + &now_unix().to_string();
    let challenge = portcullis_core::oidc::s256(&verifier);
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", "openid offline_access")
        .append_pair("state", "s-1")
        .append_pair("nonce", "n-1")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    (format!("{base}/oauth2/authorize?{}", q.finish()), verifier)
}

async fn exchange(
    app: &TestApp,
    client: (&str, Option<&str>),
    code: &str,
    redirect: &str,
    verifier: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect),
        ("client_id", client.0),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    if let Some(s) = client.1 {
        form.push(("client_secret", s));
    }
    form_post(app, "/oauth2/token", &form).await
}

/// Every way an authorization request or code exchange can be wrong: a clear error, and
/// nothing issued; a reused code revokes what it gave; CSRF and foreign origins are refused.
async fn oidc_bad_input(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let secret = oidc_person(&app, &admin, "oscar", "copper-meadow-river-42").await;
    let redirect = "http://127.0.0.1:9/cb";

    // Registration: insecure, fragment, relative URIs and duplicate names are refused.
    for bad in ["http://app.example/cb", "https://app.example/cb#x", "/cb"] {
        let r = register_client(&app, &token, "Bad", &[bad], false).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    let (id, sec) = confidential_client(&app, &token, "Wiki", redirect).await;
    assert_eq!(
        register_client(&app, &token, "Wiki", &[redirect], false)
            .await
            .status(),
        409
    );
    let r = register_client(&app, &token, "Spa", &["http://localhost:3000/cb"], true).await;
    assert_eq!(r.status(), 201);
    let spa: serde_json::Value = r.json().await.expect("json");
    assert!(
        spa["client_secret"].is_null(),
        "a public client has no secret"
    );
    let spa_id = spa["client"]["client_id"].as_str().expect("id").to_owned();
    let list: serde_json::Value = app
        .http
        .get(format!("{}/api/v1/clients", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list.as_array().expect("list").len(), 2);

    let mut b = Browser::new(&app.base);
    // Client or redirect URI wrong: an error page, never a redirect.
    for (client, uri) in [
        (id.as_str(), "http://127.0.0.1:9/cb/"),
        (id.as_str(), "http://127.0.0.1:9/CB"),
        ("pcc_unknown", redirect),
    ] {
        let (u, _) = authorize_url(&app.base, client, uri, &[]);
        let r = b.get(&u).await;
        assert_eq!(r.status(), 400, "{client} {uri}");
        assert!(r.headers().get("location").is_none());
        assert!(
            r.headers()["content-security-policy"]
                .to_str()
                .expect("csp")
                .contains("frame-ancestors 'none'")
        );
    }
    // Everything else goes back to the client with the error and the state.
    let mut no_pkce =
        url::Url::parse(&authorize_url(&app.base, &id, redirect, &[]).0).expect("url");
    let kept: Vec<(String, String)> = no_pkce
        .query_pairs()
        .filter(|(k, _)| !k.starts_with("code_challenge"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    no_pkce.query_pairs_mut().clear().extend_pairs(kept);
    for u in [
        no_pkce.to_string(),
        authorize_url(&app.base, &id, redirect, &[("scope", "openid admin")])
            .0
            .replace("scope=openid+offline_access&", ""),
    ] {
        let r = b.get(&u).await;
        let to = location(&r);
        assert!(to.starts_with(redirect), "{to}");
        assert!(query_param(&to, "error").is_some(), "{to}");
        assert_eq!(query_param(&to, "state").as_deref(), Some("s-1"));
        assert!(query_param(&to, "code").is_none());
    }
    let mut plain = url::Url::parse(&authorize_url(&app.base, &id, redirect, &[]).0).expect("url");
    let kept: Vec<(String, String)> = plain
        .query_pairs()
        .map(|(k, v)| {
            if k == "code_challenge_method" {
                (k.into_owned(), "plain".to_owned())
            } else {
                (k.into_owned(), v.into_owned())
            }
        })
        .collect();
    plain.query_pairs_mut().clear().extend_pairs(kept);
    let to = location(&b.get(plain.as_str()).await);
    assert_eq!(
        query_param(&to, "error").as_deref(),
        Some("invalid_request")
    );
    // prompt=none without a session: login_required, no page.
    let (u, _) = authorize_url(&app.base, &id, redirect, &[("prompt", "none")]);
    let to = location(&b.get(&u).await);
    assert_eq!(query_param(&to, "error").as_deref(), Some("login_required"));

    // CSRF: a sign-in form without the token, or from another origin, is refused.
    let r = b.get("/signin").await;
    let html = r.text().await.expect("html");
    let csrf = hidden(&html, "csrf");
    let r = b
        .post(
            "/signin",
            &[
                ("username", "oscar"),
                ("password", "copper-meadow-river-42"),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    let r = b
        .http
        .post(format!("{}/signin", app.base))
        .header("cookie", b.cookie_header())
        .header("origin", "https://evil.example")
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "oscar"),
            ("password", "copper-meadow-river-42"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    // A browser that withholds its origin sends `Origin: null`: not taken for a foreign site
    // (the token decides; here it is right, so the password is checked and is wrong).
    let r = b
        .http
        .post(format!("{}/signin", app.base))
        .header("cookie", b.cookie_header())
        .header("origin", "null")
        .header("sec-fetch-site", "same-origin")
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "oscar"),
            ("password", "wrong-wrong-wrong-1"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["referrer-policy"], "same-origin");
    // A wrong password: the same page again with the generic answer.
    let r = b
        .post(
            "/signin",
            &[
                ("csrf", &csrf),
                ("username", "oscar"),
                ("password", "wrong-wrong-wrong-1"),
            ],
        )
        .await;
    assert_eq!(r.status(), 401);
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("user name or password is wrong")
    );
    // Markup in input is escaped, never echoed raw.
    let r = b
        .post(
            "/signin",
            &[
                ("csrf", &csrf),
                ("username", "<script>x</script>"),
                ("password", "p"),
            ],
        )
        .await;
    let html = r.text().await.expect("html");
    assert!(!html.contains("<script>"), "{html}");

    // Sign in, consent, get a code; deny once too.
    let (u, verifier) = authorize_url(&app.base, &id, redirect, &[]);
    let page = browser_sign_in(&mut b, &u, "oscar", "copper-meadow-river-42", &secret, 0).await;
    let to = consent(&mut b, page, "deny").await;
    assert_eq!(query_param(&to, "error").as_deref(), Some("access_denied"));
    let page = b.get(&u).await;
    let to = consent(&mut b, page, "allow").await;
    let code = query_param(&to, "code").expect("code");

    // Wrong or missing verifier, other redirect, other client, no secret: refused, code kept.
    let wrong = portcullis_core::oidc::s256("not-the-verifier");
    for (client, uri, v) in [
        ((id.as_str(), Some(sec.as_str())), redirect, None),
        (
            (id.as_str(), Some(sec.as_str())),
            redirect,
            Some(format!("{wrong}aaaa")),
        ),
        (
            (id.as_str(), Some(sec.as_str())),
            "http://127.0.0.1:9/cb/",
            Some(verifier.clone()),
        ),
        ((spa_id.as_str(), None), redirect, Some(verifier.clone())),
    ] {
        oauth_error(
            exchange(&app, client, &code, uri, v.as_deref()).await,
            400,
            "invalid_grant",
        )
        .await;
    }
    oauth_error(
        exchange(&app, (id.as_str(), None), &code, redirect, Some(&verifier)).await,
        401,
        "invalid_client",
    )
    .await;
    oauth_error(
        exchange(
            &app,
            (id.as_str(), Some("pcs_wrong")),
            &code,
            redirect,
            Some(&verifier),
        )
        .await,
        401,
        "invalid_client",
    )
    .await;
    // The right exchange works once.
    let r = exchange(&app, (&id, Some(&sec)), &code, redirect, Some(&verifier)).await;
    assert_eq!(r.status(), 200);
    let t: serde_json::Value = r.json().await.expect("json");
    let access = t["access_token"].as_str().expect("at").to_owned();
    let refresh = t["refresh_token"].as_str().expect("rt").to_owned();
    let userinfo = |tok: String| {
        let http = app.http.clone();
        let base = app.base.clone();
        async move {
            http.get(format!("{base}/oauth2/userinfo"))
                .bearer_auth(tok)
                .send()
                .await
                .expect("userinfo")
                .status()
        }
    };
    assert_eq!(userinfo(access.clone()).await, 200);
    // A refresh token presented by another client: refused, and the family is revoked.
    let r = form_post(
        &app,
        "/oauth2/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &spa_id),
        ],
    )
    .await;
    oauth_error(r, 400, "invalid_grant").await;
    let r = form_post(
        &app,
        "/oauth2/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &id),
            ("client_secret", &sec),
        ],
    )
    .await;
    oauth_error(r, 400, "invalid_grant").await;

    // A fresh code; its reuse revokes the access token (and refresh family) it gave.
    let (u, verifier) = authorize_url(&app.base, &id, redirect, &[]);
    let to = location(&b.get(&u).await);
    let code = query_param(&to, "code").expect("consented: straight back with a code");
    let r = exchange(&app, (&id, Some(&sec)), &code, redirect, Some(&verifier)).await;
    let t: serde_json::Value = r.json().await.expect("json");
    let access = t["access_token"].as_str().expect("at").to_owned();
    let refresh = t["refresh_token"].as_str().expect("rt").to_owned();
    assert_eq!(userinfo(access.clone()).await, 200);
    oauth_error(
        exchange(&app, (&id, Some(&sec)), &code, redirect, Some(&verifier)).await,
        400,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        userinfo(access).await,
        401,
        "the code's access token is revoked"
    );
    let r = form_post(
        &app,
        "/oauth2/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &id),
            ("client_secret", &sec),
        ],
    )
    .await;
    oauth_error(r, 400, "invalid_grant").await;
    let events = admin
        .audit_events(&EventFilter {
            action: Some("oauth.code_exchange".into()),
            ..Default::default()
        })
        .await
        .expect("events");
    let reasons: Vec<String> = events
        .events
        .iter()
        .map(|e| e.details["reason"].as_str().unwrap_or("").to_owned())
        .collect();
    for want in [
        "pkce_verifier_missing",
        "pkce_verifier_wrong",
        "redirect_uri_mismatch",
        "other_client",
        "reused",
    ] {
        assert!(reasons.iter().any(|r| r == want), "{want} in {reasons:?}");
    }
    assert!(
        events
            .events
            .iter()
            .any(|e| e.details["reason"] == "reused" && e.details["alert"] == true)
    );

    // Deleting the client ends what it holds.
    let r = app
        .http
        .delete(format!("{}/api/v1/clients/Wiki", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    let (u, _) = authorize_url(&app.base, &id, redirect, &[]);
    assert_eq!(b.get(&u).await.status(), 400);
    app.stop().await;
}

/// `portcullis login`'s link works in a browser: sign in with a second factor, approve the
/// code on the device page (CSRF-protected), and the polling CLI gets its tokens.
async fn device_approved_in_the_browser(backend: Backend) {
    let Some(app) = spawn_at_localhost(backend).await else {
        return;
    };
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let secret = oidc_person(&app, &admin, "dana", "silver-harbour-pine-71").await;
    let d = device_start(&app).await;
    let link = code_of(&d, "verification_uri_complete");
    assert!(
        link.starts_with(&format!("{}/device?user_code=", app.public_url)),
        "{link}"
    );
    let mut b = Browser::new(&app.public_url);
    let page = browser_sign_in(&mut b, &link, "dana", "silver-harbour-pine-71", &secret, 0).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("Approve"), "{html}");
    // Where and when the code was asked for, so a phished code can be recognised.
    assert!(
        html.contains("Requested from") && html.contains("127.0.0.1"),
        "{html}"
    );
    assert!(html.contains("portcullis-cli"), "{html}");
    // Approving needs the person to confirm they started it.
    let unconfirmed = b
        .post(
            "/device",
            &[
                ("csrf", &hidden(&html, "csrf")),
                ("user_code", &code_of(&d, "user_code")),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(unconfirmed.status(), 400);
    assert!(
        unconfirmed
            .text()
            .await
            .expect("html")
            .contains("tick the box")
    );
    let user_code = hidden_input(&html, "user_code");
    assert_eq!(user_code, code_of(&d, "user_code"));
    // Without the CSRF token nothing is decided.
    let r = b
        .post(
            "/device",
            &[("user_code", &user_code), ("decision", "approve")],
        )
        .await;
    assert_eq!(r.status(), 403);
    let r = b
        .post(
            "/device",
            &[
                ("csrf", &hidden(&html, "csrf")),
                ("user_code", &user_code),
                ("decision", "approve"),
                ("started_by_me", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("return to your terminal")
    );
    let r = device_poll(&app, &code_of(&d, "device_code")).await;
    assert_eq!(r.status(), 200);
    let t: serde_json::Value = r.json().await.expect("json");
    let me = app
        .anonymous
        .with_token(Some(SecretString::from(
            t["access_token"].as_str().expect("at").to_owned(),
        )))
        .whoami()
        .await
        .expect("the CLI's token works");
    assert_eq!(me.user.name, "dana");
    app.stop().await;
}

/// The `value` of an `<input name=…>` (not only hidden ones).
fn hidden_input(html: &str, name: &str) -> String {
    let start = html.find(&format!("name=\"{name}\"")).expect("input");
    let rest = &html[start..];
    let v = rest.find("value=\"").expect("value") + 7;
    let end = v + rest[v..].find('"').expect("quote");
    unescape(&rest[v..end])
}

/// Two replicas on one PostgreSQL: the same authorization code redeemed on both at once is
/// redeemed once (and, as for any reuse, what it gave is revoked); the same refresh token
/// rotated on both at once rotates once and the family ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_redeem_a_code_and_rotate_a_refresh_token_once() {
    let Some(url) = fresh_postgres_url().await else {
        eprintln!("skipped: PORTCULLIS_TEST_DATABASE_URL is not set");
        return;
    };
    let (a, b) = two_replicas(&url).await;
    let token = admin_token(&a).await;
    let admin = a
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let secret = oidc_person(&a, &admin, "rhea", "granite-orchid-sail-36").await;
    let redirect = "http://127.0.0.1:9/cb";
    let (id, sec) = confidential_client(&a, &token, "Twin", redirect).await;

    let mut browser = Browser::new(&a.base);
    let (u, verifier) = authorize_url(&a.base, &id, redirect, &[]);
    let page = browser_sign_in(
        &mut browser,
        &u,
        "rhea",
        "granite-orchid-sail-36",
        &secret,
        0,
    )
    .await;
    let code = query_param(&consent(&mut browser, page, "allow").await, "code").expect("code");
    let (ra, rb) = tokio::join!(
        exchange(&a, (&id, Some(&sec)), &code, redirect, Some(&verifier)),
        exchange(&b, (&id, Some(&sec)), &code, redirect, Some(&verifier)),
    );
    let mut statuses = [ra.status().as_u16(), rb.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 400], "one replica redeems the code");
    let winner: serde_json::Value = if ra.status() == 200 {
        ra.json().await
    } else {
        rb.json().await
    }
    .expect("json");
    let at = winner["access_token"].as_str().expect("at");
    for app in [&a, &b] {
        let r = app
            .http
            .get(format!("{}/oauth2/userinfo", app.base))
            .bearer_auth(at)
            .send()
            .await
            .expect("userinfo");
        assert_eq!(
            r.status(),
            401,
            "a code presented twice revokes what it gave"
        );
    }

    // Refresh rotation raced on both replicas.
    let (u, verifier) = authorize_url(&a.base, &id, redirect, &[]);
    let code = query_param(&location(&browser.get(&u).await), "code").expect("code");
    let t: serde_json::Value = exchange(&a, (&id, Some(&sec)), &code, redirect, Some(&verifier))
        .await
        .json()
        .await
        .expect("json");
    let rt = t["refresh_token"].as_str().expect("rt").to_owned();
    let refresh = |app: &TestApp, rt: String| {
        let (http, base, id, sec) = (app.http.clone(), app.base.clone(), id.clone(), sec.clone());
        async move {
            http.post(format!("{base}/oauth2/token"))
                .basic_auth(&id, Some(&sec))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt.as_str()),
                ])
                .send()
                .await
                .expect("refresh")
        }
    };
    let (ra, rb) = tokio::join!(refresh(&a, rt.clone()), refresh(&b, rt.clone()));
    let mut statuses = [ra.status().as_u16(), rb.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 400], "one replica rotates the token");
    let next: serde_json::Value = if ra.status() == 200 {
        ra.json().await
    } else {
        rb.json().await
    }
    .expect("json");
    let next = next["refresh_token"].as_str().expect("rt").to_owned();
    oauth_error(refresh(&b, next).await, 400, "invalid_grant").await;
    a.stop().await;
    b.stop().await;
}

/// An account whose only second factor is a security key signs in through the pages: the page
/// carries the WebAuthn challenge and loads the server's own script (no inline script); a
/// standard software authenticator answers; a forged answer is refused with a fresh challenge;
/// the tokens say `phishing_resistant`.
async fn security_key_on_the_sign_in_page(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let pw = "harbour-quartz-velvet-64";
    create_privileged(&admin, "kai", pw).await;
    let reg = registration_session(&app, "kai", pw).await;
    let mut key = SoftPasskey::new(true);
    register(&reg, &mut key, "yubikey").await;
    let redirect = "http://127.0.0.1:9/cb";
    let (id, sec) = confidential_client(&app, &token, "Vault UI", redirect).await;

    let js = app
        .http
        .get(format!("{}/assets/webauthn.js", app.base))
        .send()
        .await
        .expect("js");
    assert_eq!(js.status(), 200);
    assert!(
        js.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/javascript")
    );
    assert!(
        js.text()
            .await
            .expect("js")
            .contains("navigator.credentials.get")
    );

    let mut b = Browser::new(&app.base);
    let (u, verifier) = authorize_url(&app.base, &id, redirect, &[]);
    let to_signin = location(&b.get(&u).await);
    let page = b.get(&to_signin).await.text().await.expect("html");
    let csrf = hidden(&page, "csrf");
    let return_to = hidden(&page, "return_to");
    let r = b
        .post(
            "/signin",
            &[
                ("csrf", &csrf),
                ("return_to", &return_to),
                ("username", "kai"),
                ("password", pw),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    let html = r.text().await.expect("html");
    assert!(
        html.contains("<script src=\"/assets/webauthn.js\""),
        "{html}"
    );
    assert!(
        !html.contains("name=\"code\""),
        "no code form without a TOTP factor"
    );
    let challenge = |html: &str| WebauthnChallenge {
        ceremony_id: hidden(html, "ceremony_id"),
        options: serde_json::from_str(&hidden(html, "options")).expect("options JSON"),
    };
    let post_key = |b: &mut Browser, html: &str, cred: serde_json::Value| {
        let form = [
            ("csrf", csrf.clone()),
            ("return_to", return_to.clone()),
            ("signin_id", hidden(html, "signin_id")),
            ("ceremony_id", hidden(html, "ceremony_id")),
            ("credential", cred.to_string()),
        ];
        let http = b.http.clone();
        let url = b.url("/signin/webauthn");
        let cookie = b.cookie_header();
        async move {
            http.post(url)
                .header("cookie", cookie)
                .form(&form)
                .send()
                .await
                .expect("post")
        }
    };
    // A forged assertion: refused, and the page offers a fresh challenge.
    let forged = tamper(answer(&mut key, &challenge(&html), origin()), "signature");
    let r = post_key(&mut b, &html, forged).await;
    assert_eq!(r.status(), 401);
    let html2 = r.text().await.expect("html");
    assert_ne!(hidden(&html2, "ceremony_id"), hidden(&html, "ceremony_id"));
    // The real one signs in.
    let good = answer(&mut key, &challenge(&html2), origin());
    let r = post_key(&mut b, &html2, good).await;
    b.keep(&r);
    assert_eq!(location(&r), return_to);
    let page = b.get(&return_to).await;
    let to = consent(&mut b, page, "allow").await;
    let code = query_param(&to, "code").expect("code");
    let r = exchange(&app, (&id, Some(&sec)), &code, redirect, Some(&verifier)).await;
    assert_eq!(r.status(), 200);
    let t: serde_json::Value = r.json().await.expect("json");
    let id_token = t["id_token"].as_str().expect("id token");
    let payload = id_token.split('.').nth(1).expect("payload");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("b64"),
    )
    .expect("json");
    assert_eq!(claims["acr"], "phishing_resistant");
    assert_eq!(claims["nonce"], "n-1");
    app.stop().await;
}

// ----- Alerts: channels, delivery with retries, SMTP, dead letters -----

/// What a test receiver (webhook or SMS gateway) got.
#[derive(Default)]
struct Received {
    /// (path, headers, body) of each accepted request.
    requests: Vec<(String, axum::http::HeaderMap, String)>,
    /// Answer this many requests with 500 first.
    fail_next: usize,
    failed: usize,
}

type Inbox = std::sync::Arc<std::sync::Mutex<Received>>;

/// A real HTTP server on loopback (port 0, or `port` to come back on the same address) that
/// records what it receives; every answer closes the connection, so stopping it stops it.
async fn receiver(inbox: Inbox, port: u16) -> (u16, tokio::task::JoinHandle<()>) {
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

/// Polls `check` every 100 ms for up to `secs` seconds.
async fn eventually(what: &str, secs: u64, mut check: impl AsyncFnMut() -> bool) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn api_get(app: &TestApp, token: &str, path: &str) -> serde_json::Value {
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

async fn add_channel(app: &TestApp, token: &str, body: serde_json::Value) -> reqwest::Response {
    app.http
        .post(format!("{}/api/v1/alerts/channels", app.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("add channel")
}

/// A service account tried as a person: the built-in critical alert fires.
async fn sa_interactive_signin(app: &TestApp, admin: &Client, name: &str) {
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
fn covered(list: &serde_json::Value, rule: &str, channel: Option<&str>) -> i64 {
    alerts_of(list, rule)
        .iter()
        .filter(|a| a["channel"].as_str() == channel)
        .map(|a| a["summary"]["count"].as_i64().unwrap_or(1))
        .sum()
}

fn alerts_of(list: &serde_json::Value, rule: &str) -> Vec<serde_json::Value> {
    list.as_array()
        .expect("list")
        .iter()
        .filter(|a| a["topic"] == rule)
        .cloned()
        .collect()
}

/// A critical alert reaches a signed webhook and an SMS gateway; a 500 is retried; a receiver
/// that is down when the alert fires gets it after it comes back; nothing is lost and nothing
/// delivered twice; bad channel definitions are refused and change nothing.
async fn alerts_reach_webhooks_and_sms_through_failures(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let inbox: Inbox = Default::default();
    let (port, mut task) = receiver(inbox.clone(), 0).await;
    let secret = "a-webhook-signing-key-of-some-length";

    // Bad definitions: refused, nothing stored.
    let many_headers: serde_json::Map<String, serde_json::Value> =
        (0..17).map(|i| (format!("X-H{i}"), "v".into())).collect();
    let many_numbers: Vec<String> = (0..21).map(|i| format!("+155501{i:02}")).collect();
    for bad in [
        // A channel may not read the server's own secrets from its environment.
        serde_json::json!({"name": "x", "kind": "sms", "url": format!("http://127.0.0.1:{port}/s"), "to": ["+15550100"], "template": "{message}", "headers": {"X-Key": "env:PORTCULLIS_MASTER_KEY"}}),
        serde_json::json!({"name": "x", "kind": "email", "smtp_url": "smtps://127.0.0.1:465", "from": "a@example.org", "to": ["b@example.org"], "smtp_username": "u", "password_env": "PORTCULLIS_DATABASE_URL"}),
        // SMTP credentials in the clear to a remote relay.
        serde_json::json!({"name": "x", "kind": "email", "smtp_url": "smtp://mail.example.org:25", "from": "a@example.org", "to": ["b@example.org"], "smtp_username": "u", "password_env": "PORTCULLIS_ALERT_SECRET_SMTP"}),
        serde_json::json!({"name": "x", "kind": "sms", "url": format!("http://127.0.0.1:{port}/s"), "to": many_numbers, "template": "{message}"}),
        serde_json::json!({"name": "x", "kind": "sms", "url": format!("http://127.0.0.1:{port}/s"), "to": ["+15550100"], "template": "{message}", "headers": many_headers}),
        serde_json::json!({"name": "x", "kind": "sms", "url": format!("http://127.0.0.1:{port}/s"), "to": ["+15550100"], "template": "{message}", "headers": {"X-Long": "v".repeat(1025)}}),
        serde_json::json!({"name": "x", "kind": "pager"}),
        serde_json::json!({"name": "x", "kind": "webhook", "url": "http://example.com/hook"}),
        serde_json::json!({"name": "x", "kind": "webhook", "url": format!("http://127.0.0.1:{port}/h"), "secret": "short"}),
        serde_json::json!({"name": "x", "kind": "sms", "url": format!("http://127.0.0.1:{port}/s"), "to": ["+15550100"], "template": "no placeholder"}),
        serde_json::json!({"name": "x", "kind": "sms", "url": format!("http://127.0.0.1:{port}/s"), "to": ["555"], "template": "{message}"}),
        serde_json::json!({"name": "x", "kind": "sms", "url": format!("http://127.0.0.1:{port}/s"), "to": ["+15550100"], "template": "{message}", "headers": {"Authorization": "Bearer plain"}}),
        serde_json::json!({"name": "x", "kind": "email", "smtp_url": "smtp://u:p@127.0.0.1:25", "from": "a@example.org", "to": ["b@example.org"]}),
        serde_json::json!({"name": "x", "kind": "webhook", "url": format!("http://127.0.0.1:{port}/h"), "min_severity": "loud"}),
    ] {
        let r = add_channel(&app, &token, bad.clone()).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    assert_eq!(
        api_get(&app, &token, "/api/v1/alerts/channels").await,
        serde_json::json!([])
    );

    let r = add_channel(&app, &token, serde_json::json!({
        "name": "soc-hook", "kind": "webhook", "url": format!("http://127.0.0.1:{port}/hook"), "secret": secret,
    }))
    .await;
    assert_eq!(r.status(), 201);
    let r = add_channel(
        &app,
        &token,
        serde_json::json!({
            "name": "oncall-sms", "kind": "sms", "url": format!("http://127.0.0.1:{port}/sms"),
            "to": ["+15550100", "+15550101"], "headers": {"Content-Type": "application/json"},
            "template": "{\"to\":\"{to}\",\"text\":\"{message}\"}",
        }),
    )
    .await;
    assert_eq!(r.status(), 201);
    let listed = api_get(&app, &token, "/api/v1/alerts/channels").await;
    assert_eq!(listed.as_array().expect("list").len(), 2);
    assert!(
        !listed.to_string().contains(secret),
        "the signing key is never shown"
    );
    // Adding a channel is itself alert-worthy (it changes who hears about emergencies): the
    // second addition was reported on both channels.
    eventually("the channel-change alerts", 30, async || {
        let a = api_get(&app, &token, "/api/v1/alerts").await;
        let flagged = alerts_of(&a, "flagged");
        !flagged.is_empty() && flagged.iter().all(|m| m["state"] == "delivered")
    })
    .await;
    {
        let mut r = inbox.lock().expect("inbox");
        assert!(
            r.requests
                .iter()
                .any(|(_, _, b)| b.contains("alert_channel.added"))
        );
        r.requests.clear();
        r.fail_next = 1;
    }

    // The alert: one webhook message and one SMS per number; the first answer is a 500.
    sa_interactive_signin(&app, &admin, "payroll-bot").await;
    eventually("webhook and both SMS", 30, async || {
        inbox.lock().expect("inbox").requests.len() >= 3
    })
    .await;
    let (hook_body, hook_headers) = {
        let r = inbox.lock().expect("inbox");
        assert_eq!(r.failed, 1);
        let hooks: Vec<_> = r.requests.iter().filter(|(p, _, _)| p == "/hook").collect();
        assert_eq!(hooks.len(), 1);
        let mut to: Vec<String> = r
            .requests
            .iter()
            .filter(|(p, _, _)| p == "/sms")
            .map(|(_, _, b)| {
                serde_json::from_str::<serde_json::Value>(b).expect("JSON body")["to"]
                    .as_str()
                    .expect("to")
                    .to_owned()
            })
            .collect();
        to.sort();
        assert_eq!(to, ["+15550100", "+15550101"]);
        (hooks[0].2.clone(), hooks[0].1.clone())
    };
    let body: serde_json::Value = serde_json::from_str(&hook_body).expect("json");
    assert_eq!(body["alert"]["rule"], "service_account.interactive_signin");
    assert_eq!(body["alert"]["severity"], "critical");
    assert_eq!(body["event"]["target"], "user:payroll-bot");
    // The signature verifies with the key: t=UNIX,v1=HMAC-SHA256("UNIX.BODY").
    let sig = hook_headers["x-portcullis-signature"]
        .to_str()
        .expect("sig");
    let t: i64 = sig
        .split(',')
        .next()
        .and_then(|p| p.strip_prefix("t="))
        .expect("t")
        .parse()
        .expect("int");
    assert_eq!(
        sig,
        portcullis_server::workers::alerts::signature(secret.as_bytes(), t, &hook_body)
    );
    assert!((now_unix() as i64 - t).abs() < 60);
    let alerts = api_get(&app, &token, "/api/v1/alerts").await;
    let fired = alerts_of(&alerts, "service_account.interactive_signin");
    assert_eq!(fired.len(), 3, "one message per channel and SMS number");
    let retried = fired
        .iter()
        .find(|a| a["attempts"] == 2)
        .expect("one message needed a second attempt");
    let shown = api_get(
        &app,
        &token,
        &format!("/api/v1/alerts/{}", retried["id"].as_str().expect("id")),
    )
    .await;
    assert_eq!(shown["history"][0]["outcome"], "failed");
    assert_eq!(shown["history"][0]["detail"], "HTTP 500");
    assert_eq!(shown["history"][1]["outcome"], "delivered");

    // The receiver goes down; an alert fires; it comes back and gets it, once.
    task.abort();
    let _ = (&mut task).await;
    sa_interactive_signin(&app, &admin, "backup-bot").await;
    eventually(
        "a failed attempt while the receiver is down",
        15,
        async || {
            let a = api_get(&app, &token, "/api/v1/alerts").await;
            alerts_of(&a, "service_account.interactive_signin")
                .iter()
                .any(|m| m["state"] == "pending" && m["last_error"] == "cannot connect")
        },
    )
    .await;
    let (_, task2) = receiver(inbox.clone(), port).await;
    eventually("delivery after the receiver came back", 30, async || {
        let a = api_get(&app, &token, "/api/v1/alerts").await;
        alerts_of(&a, "service_account.interactive_signin")
            .iter()
            .all(|m| m["state"] == "delivered")
    })
    .await;
    let mut ids: Vec<String> = inbox
        .lock()
        .expect("inbox")
        .requests
        .iter()
        .filter(|(_, _, b)| b.contains("service_account.interactive_signin"))
        .map(|(_, h, _)| {
            h["x-portcullis-message-id"]
                .to_str()
                .expect("id")
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 6, "two alerts × three messages");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "nothing delivered twice");
    task2.abort();
    app.stop().await;
}

/// The SMTP server the tests deliver to (aiosmtpd, see tests/support/smtp_sink.py): its port,
/// the directory it writes messages into, and the process. `None` where Python's aiosmtpd is
/// missing, unless PORTCULLIS_REQUIRE_SMTP says it must be there (CI).
fn smtp_sink() -> Option<(u16, tempfile::TempDir, std::process::Child)> {
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
fn mailbox(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("dir").flatten() {
        if e.path().extension().is_some_and(|x| x == "json") {
            let text = std::fs::read_to_string(e.path()).expect("read");
            out.push(serde_json::from_str(&text).expect("json"));
        }
    }
    out
}

/// Email over a real SMTP server reaches every recipient; a recipient the server refuses
/// fails the delivery with the server's code and, after the configured attempts, dead-letters
/// it, which is itself reported on the other channels; alerts still undelivered when the
/// server stops are delivered after it starts again.
async fn email_alerts_dead_letters_and_restarts(backend: Backend) {
    let Some((smtp_port, maildir, mut sink)) = smtp_sink() else {
        return;
    };
    let Some(app) = spawn_with(backend, |c| c.alert_max_attempts = 2).await else {
        let _ = sink.kill();
        return;
    };
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let inbox: Inbox = Default::default();
    let (port, hook) = receiver(inbox.clone(), 0).await;
    for body in [
        serde_json::json!({"name": "security-mail", "kind": "email", "smtp_url": format!("smtp://127.0.0.1:{smtp_port}"),
            "from": "portcullis@example.org", "to": ["sec1@example.org", "sec2@example.org"], "notifications": true}),
        serde_json::json!({"name": "strict-mail", "kind": "email", "smtp_url": format!("smtp://127.0.0.1:{smtp_port}"),
            "from": "portcullis@example.org", "to": ["refused-ops@example.org"], "min_severity": "critical"}),
        serde_json::json!({"name": "hook", "kind": "webhook", "url": format!("http://127.0.0.1:{port}/hook"), "shape": "slack"}),
    ] {
        assert_eq!(add_channel(&app, &token, body).await.status(), 201);
    }
    sa_interactive_signin(&app, &admin, "etl-bot").await;
    eventually("the alert in the mailbox", 30, async || {
        mailbox(maildir.path())
            .iter()
            .any(|m| m["content"].as_str().unwrap_or("").contains("etl-bot"))
    })
    .await;
    let mail = mailbox(maildir.path());
    let alert_mail = mail
        .iter()
        .find(|m| m["content"].as_str().unwrap_or("").contains("etl-bot"))
        .expect("mail");
    assert_eq!(
        alert_mail["to"],
        serde_json::json!(["sec1@example.org", "sec2@example.org"])
    );
    assert!(
        alert_mail["content"]
            .as_str()
            .expect("content")
            .contains("Subject: [Portcullis CRITICAL]")
    );
    // The refusing relay: two attempts (5 s apart), then dead, then reported elsewhere.
    eventually("the dead letter and its report", 40, async || {
        let a = api_get(&app, &token, "/api/v1/alerts").await;
        let strict_dead = alerts_of(&a, "service_account.interactive_signin")
            .iter()
            .any(|m| m["channel"] == "strict-mail" && m["state"] == "dead");
        let reported = alerts_of(&a, "alert.dead_lettered");
        strict_dead && reported.len() == 2 && reported.iter().all(|m| m["state"] == "delivered")
    })
    .await;
    let a = api_get(&app, &token, "/api/v1/alerts?state=dead").await;
    let dead = &alerts_of(&a, "service_account.interactive_signin")[0];
    assert_eq!(dead["attempts"], 2);
    assert!(
        dead["last_error"].as_str().expect("error").contains("550"),
        "{dead}"
    );
    assert!(
        inbox
            .lock()
            .expect("inbox")
            .requests
            .iter()
            .any(|(_, _, b)| {
                let v: serde_json::Value = serde_json::from_str(b).expect("slack JSON");
                v["text"]
                    .as_str()
                    .unwrap_or("")
                    .contains("could not be delivered through channel strict-mail")
            })
    );
    // Retry gives it a fresh budget (it fails again: the relay still refuses).
    let r = app
        .http
        .post(format!(
            "{}/api/v1/alerts/{}/retry",
            app.base,
            dead["id"].as_str().expect("id")
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("retry");
    assert_eq!(r.status(), 200);
    let again: serde_json::Value = r.json().await.expect("json");
    assert_eq!(again["state"], "pending");

    // Notifications to people go by email to the addresses on their accounts: a request
    // needing approval reaches the approver.
    admin
        .update_role_settings(
            "audit-reader",
            &RoleSettingsUpdate {
                require_approval: Some(true),
                approvers: Some(vec!["user:root-admin".into()]),
                ..Default::default()
            },
        )
        .await
        .expect("settings");
    let (uma, _) = mfa_user(&app, &admin, "uma", "tidal-ember-lattice-19").await;
    admin
        .create_assignment(&eligible("uma", "audit-reader", None))
        .await
        .expect("eligible");
    uma.request_activation(&ask("audit-reader", 3600, Some("incident 42")))
        .await
        .expect("request");
    eventually("the approver's email", 30, async || {
        mailbox(maildir.path()).iter().any(|m| {
            m["to"] == serde_json::json!(["root@example.org"])
                && m["content"]
                    .as_str()
                    .unwrap_or("")
                    .contains("uma asks to activate audit-reader")
        })
    })
    .await;

    // Undelivered at shutdown, delivered after the next start.
    hook.abort();
    sa_interactive_signin(&app, &admin, "night-bot").await;
    eventually("a failed webhook attempt", 15, async || {
        let a = api_get(&app, &token, "/api/v1/alerts").await;
        alerts_of(&a, "service_account.interactive_signin")
            .iter()
            .any(|m| m["channel"] == "hook" && m["state"] == "pending" && m["attempts"] == 1)
    })
    .await;
    let (dir, config, bootstrap) = app.stop().await;
    let (_, hook) = receiver(inbox.clone(), port).await;
    let app = start(config, dir, Some(bootstrap)).await;
    eventually("delivery after the restart", 30, async || {
        inbox
            .lock()
            .expect("inbox")
            .requests
            .iter()
            .any(|(_, _, b)| b.contains("night-bot"))
    })
    .await;
    hook.abort();
    app.stop().await;
    let _ = sink.kill();
    let _ = sink.wait();
}

/// Two replicas on one PostgreSQL both run delivery workers: every alert message is
/// delivered, each exactly once (claims are conditional updates).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_deliver_each_alert_once() {
    let Some(url) = fresh_postgres_url().await else {
        eprintln!("skipped: PORTCULLIS_TEST_DATABASE_URL is not set");
        return;
    };
    let (a, b) = two_replicas(&url).await;
    let token = admin_token(&a).await;
    let admin = a
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let inbox: Inbox = Default::default();
    let (port, hook) = receiver(inbox.clone(), 0).await;
    let r = add_channel(&a, &token, serde_json::json!({
        "name": "hook", "kind": "webhook", "url": format!("http://127.0.0.1:{port}/hook"), "min_severity": "critical",
    }))
    .await;
    assert_eq!(r.status(), 201);
    for i in 0..12 {
        let app = if i % 2 == 0 { &a } else { &b };
        sa_interactive_signin(app, &admin, &format!("bot-{i}")).await;
    }
    eventually("twelve deliveries", 30, async || {
        inbox.lock().expect("inbox").requests.len() >= 12
    })
    .await;
    // Give a duplicate, if any, time to arrive.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let mut ids: Vec<String> = inbox
        .lock()
        .expect("inbox")
        .requests
        .iter()
        .map(|(_, h, _)| {
            h["x-portcullis-message-id"]
                .to_str()
                .expect("id")
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 12);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 12, "each message delivered once");
    let workers: std::collections::BTreeSet<String> = {
        let mut w = std::collections::BTreeSet::new();
        for id in &ids {
            let shown = api_get(&a, &token, &format!("/api/v1/alerts/{id}")).await;
            assert_eq!(shown["history"].as_array().expect("history").len(), 1);
            w.insert(
                shown["history"][0]["worker"]
                    .as_str()
                    .expect("worker")
                    .to_owned(),
            );
        }
        w
    };
    eprintln!("delivered by {} worker(s)", workers.len());
    hook.abort();
    a.stop().await;
    b.stop().await;
}

/// Throttling slows an attacker down but never silences the alarm: every interactive
/// attempt with a service account's name raises the alert, the throttled ones included.
async fn throttled_attempts_still_alert(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let mut statuses = Vec::new();
    let _ = admin
        .create_service_account(&CreateServiceAccountRequest {
            name: "cron-bot".into(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await;
    for _ in 0..8 {
        let r = app
            .http
            .post(format!("{}/api/v1/signin", app.base))
            .json(&serde_json::json!({ "username": "cron-bot", "password": "guess-guess-guess" }))
            .send()
            .await
            .expect("signin");
        statuses.push(r.status().as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let alerts = api_get(&app, &token, "/api/v1/alerts").await;
    // No channel yet: each alert is on record, dead-lettered with the reason: the first at
    // once, the other seven in the summary of its window.
    let fired = alerts_of(&alerts, "service_account.interactive_signin");
    assert_eq!(fired.len(), 2, "one alert and one summary");
    assert_eq!(
        covered(&alerts, "service_account.interactive_signin", None),
        8,
        "every attempt counts, throttled or not"
    );
    assert!(fired.iter().all(|a| {
        a["state"] == "dead"
            && a["last_error"]
                .as_str()
                .unwrap_or("")
                .contains("no alert channel")
    }));
    app.stop().await;
}

/// Custom rules count events for one target within a window and fire once per window; bad
/// rules are refused; built-in rules are listed and cannot be removed.
async fn custom_alert_rules_count_within_a_window(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let add = |body: serde_json::Value| {
        let (http, base, token) = (app.http.clone(), app.base.clone(), token.clone());
        async move {
            http.post(format!("{base}/api/v1/alerts/rules"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("add rule")
        }
    };
    let rule = serde_json::json!({
        "name": "failed-signins", "action": "signin.password", "outcome": "failure",
        "count": 3, "window": "5m", "severity": "critical",
    });
    assert_eq!(add(rule.clone()).await.status(), 201);
    for (field, value) in [
        ("count", serde_json::json!(0)),
        ("window", serde_json::json!("8d")),
        ("action", serde_json::json!("Sign In")),
        ("outcome", serde_json::json!("maybe")),
        ("severity", serde_json::json!("loud")),
        ("name", serde_json::json!("Bad Name")),
    ] {
        let mut bad = rule.clone();
        bad["name"] = "other-rule".into();
        bad[field] = value;
        assert_eq!(add(bad).await.status(), 400, "{field}");
    }
    assert_eq!(add(rule.clone()).await.status(), 409);
    let rules = api_get(&app, &token, "/api/v1/alerts/rules").await;
    let rules = rules.as_array().expect("rules");
    assert_eq!(rules.iter().filter(|r| r["builtin"] == false).count(), 1);
    assert!(
        rules
            .iter()
            .any(|r| r["name"] == "token.refresh_reuse" && r["builtin"] == true)
    );
    let r = app
        .http
        .delete(format!(
            "{}/api/v1/alerts/rules/token.refresh_reuse",
            app.base
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 403, "built-in rules cannot be removed");

    for name in ["vic", "wes"] {
        admin
            .create_user(&CreateUserRequest {
                name: name.into(),
                display_name: name.into(),
                email: None,
                phone: None,
                guest_organisation: None,
                privileged: false,
                password: "plum-harbor-silent-77".into(),
            })
            .await
            .expect("user");
    }
    let fail = |user: &'static str| {
        let (http, base) = (app.http.clone(), app.base.clone());
        async move {
            let r = http
                .post(format!("{base}/api/v1/signin"))
                .json(&serde_json::json!({ "username": user, "password": "not-the-password" }))
                .send()
                .await
                .expect("signin");
            assert_eq!(r.status(), 401);
        }
    };
    let fired = async || {
        let a = api_get(&app, &token, "/api/v1/alerts").await;
        alerts_of(&a, "custom:failed-signins")
    };
    fail("vic").await;
    fail("vic").await;
    assert!(fired().await.is_empty(), "two of three: not yet");
    fail("vic").await;
    let f = fired().await;
    assert_eq!(f.len(), 1, "the third fires");
    assert!(
        f[0]["text"]
            .as_str()
            .expect("text")
            .contains("3 × signin.password (failure) for user:vic")
    );
    fail("vic").await;
    fail("vic").await;
    assert_eq!(
        fired().await.len(),
        1,
        "once per window, not once per event"
    );
    for _ in 0..3 {
        fail("wes").await;
    }
    assert_eq!(fired().await.len(), 2, "another target counts on its own");
    let r = app
        .http
        .delete(format!("{}/api/v1/alerts/rules/failed-signins", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    // Rules are evaluated inside the writer's transaction, so their number is capped.
    let rule = |i: usize| serde_json::json!({"name": format!("r{i}"), "action": "signin.password", "count": 5, "window": "5m"});
    for i in 0..100 {
        let r = post_json(&app, Some(&token), "/api/v1/alerts/rules", rule(i)).await;
        assert_eq!(r.status(), 201, "rule {i}");
    }
    let (status, _, msg) =
        error_of(post_json(&app, Some(&token), "/api/v1/alerts/rules", rule(100)).await).await;
    assert_eq!(status, 409);
    assert!(msg.contains("at most 100"), "{msg}");
    app.stop().await;
}

/// What a real-browser test needs: Node.js with playwright-core (`PORTCULLIS_BROWSER_NODE_PATH`
/// names its node_modules) and Chromium. `None` where they are missing, unless
/// PORTCULLIS_REQUIRE_BROWSER says they must be there (CI).
fn browser_tools() -> Option<(String, String)> {
    let required = std::env::var("PORTCULLIS_REQUIRE_BROWSER").is_ok();
    let node_path = std::env::var("PORTCULLIS_BROWSER_NODE_PATH").ok();
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    match (node_path, chromium) {
        (Some(n), Some(c)) => Some((n, c.to_owned())),
        _ if required => panic!(
            "a browser test must run here: set PORTCULLIS_BROWSER_NODE_PATH and install chromium"
        ),
        _ => {
            eprintln!("skipped: no Chromium or playwright-core (PORTCULLIS_BROWSER_NODE_PATH)");
            None
        }
    }
}

/// A real browser signs in to a relying party with a security key: Chromium runs the page's
/// own webauthn.js under the pages' CSP (no inline script), keeps the strict cookies, passes
/// the CSRF checks (its real Origin and Sec-Fetch-Site headers), and lands on the client's
/// redirect URI with a code that exchanges for tokens of strength phishing_resistant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_browser_signs_in_with_a_security_key() {
    let Some((node_path, chromium)) = browser_tools() else {
        return;
    };
    let app = spawn_at_localhost(Backend::Sqlite).await.expect("app");
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let pw = "lantern-cobalt-meadow-52";
    create_privileged(&admin, "lee", pw).await;
    let reg = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "lee".into(),
            password: pw.into(),
        })
        .await
        .expect("password");
    let reg_token = reg.session.expect("registration session").token;
    let redirect = "http://127.0.0.1:9/cb";
    let (id, sec) = confidential_client(&app, &token, "Browser RP", redirect).await;
    let issuer = app.public_url.clone();
    let (url, verifier) = authorize_url(&issuer, &id, redirect, &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/browser_flow.js");
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        tokio::process::Command::new("node")
            .arg(script)
            .env("NODE_PATH", &node_path)
            .env("CHROMIUM", &chromium)
            .env("BASE", &issuer)
            .env("REG_TOKEN", &reg_token)
            .env("USERNAME", "lee")
            .env("PASSWORD", pw)
            .env("AUTHORIZE_URL", &url)
            .env("REDIRECT_URI", redirect)
            .output(),
    )
    .await
    .expect("the browser finished in time")
    .expect("node runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value =
        serde_json::from_slice(out.stdout.trim_ascii()).expect("one JSON line");
    let back = line["redirect"].as_str().expect("redirect");
    assert_eq!(query_param(back, "state").as_deref(), Some("s-1"));
    let code = query_param(back, "code").expect("code");
    let r = exchange(&app, (&id, Some(&sec)), &code, redirect, Some(&verifier)).await;
    assert_eq!(r.status(), 200);
    let t: serde_json::Value = r.json().await.expect("json");
    let payload = t["id_token"]
        .as_str()
        .expect("id token")
        .split('.')
        .nth(1)
        .expect("payload")
        .to_owned();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("b64"),
    )
    .expect("json");
    assert_eq!(claims["acr"], "phishing_resistant");
    app.stop().await;
}

// ----- Break-glass accounts -----

use portcullis_core::breakglass as bg;

const CUSTODIAN_PW: &str = "copper-lantern-river-42";

async fn people(admin: &Client, names: &[&str]) {
    for n in names {
        admin
            .create_user(&CreateUserRequest {
                name: (*n).into(),
                display_name: n.to_uppercase(),
                email: Some(format!("{n}@example.org")),
                phone: None,
                guest_organisation: None,
                privileged: false,
                password: CUSTODIAN_PW.into(),
            })
            .await
            .expect("create custodian");
    }
}

/// A fresh password for `account`, split as the CLI does.
fn split_for(
    account: &str,
    custodians: &[&str],
    t: usize,
    force: bool,
) -> (String, Vec<bg::Share>) {
    let name = portcullis_core::principal::PrincipalName::parse("name", account).expect("name");
    let c = bg::Custodians::parse(custodians.iter()).expect("custodians");
    let threshold = bg::Threshold::new(t, &c, force).expect("threshold");
    let pw = bg::generate_password(&mut rand::rngs::OsRng);
    let (_, shares) = bg::split(&name, &pw, &c, threshold, &mut rand::rngs::OsRng).expect("split");
    (pw.to_string(), shares)
}

async fn post_json(
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

async fn error_of(r: reqwest::Response) -> (u16, String, String) {
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

async fn create_split_account(
    app: &TestApp,
    token: &str,
    name: &str,
    custodians: &[&str],
    t: usize,
) -> String {
    let (pw, _) = split_for(name, custodians, t, false);
    let r = post_json(app, Some(token), "/api/v1/breakglass", serde_json::json!({
        "name": name, "credential": "password", "password": pw, "custodians": custodians, "threshold": t,
    })).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    pw
}

async fn breakglass_signin(
    app: &TestApp,
    name: &str,
    pw: &str,
) -> Result<portcullis_core::api::SignInResponse, ClientError> {
    app.anonymous
        .signin_password(&PasswordSignInRequest {
            username: name.into(),
            password: pw.into(),
        })
        .await
}

async fn breakglass_list(app: &TestApp, token: &str) -> serde_json::Value {
    api_get(app, token, "/api/v1/breakglass").await
}

async fn alert_count(app: &TestApp, token: &str, rule: &str) -> usize {
    alerts_of(&api_get(app, token, "/api/v1/alerts").await, rule).len()
}

async fn events_named(admin: &Client, action: &str) -> Vec<portcullis_core::api::AuditEventView> {
    admin
        .audit_events(&EventFilter {
            action: Some(action.into()),
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("events")
        .events
}

/// Creation with split custody: bad input refused with nothing created; the tenant stays in
/// setup until two accounts exist; shares rebuild a password that signs in to a full
/// Global Administrator session; every attempt (success, wrong password, failed recovery)
/// is tagged `emergency` and alerts; drills are recorded and counted apart from real use.
async fn breakglass_accounts_split_sign_in_and_alert(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    people(&admin, &["alice", "bob", "carol"]).await;
    admin
        .create_service_account(&CreateServiceAccountRequest {
            name: "nightly-job".into(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await
        .expect("sa");

    // Setup state: readyz says so, and every API answer carries the notice.
    let ready = app.anonymous.ready().await.expect("ready");
    let tenant = ready.tenant.expect("tenant");
    assert_eq!(
        (tenant.state.as_str(), tenant.breakglass_accounts),
        ("setup", 0)
    );
    let r = app
        .http
        .get(format!("{}/api/v1/me", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("me");
    let notice = r
        .headers()
        .get("portcullis-setup")
        .expect("setup header")
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(notice.contains("0 of 2 break-glass accounts"), "{notice}");

    // Bad input: each refused with a clear error, nothing created.
    let (pw, _) = split_for("bg-one", &["alice", "bob", "carol"], 2, false);
    let base = serde_json::json!({"name": "bg-one", "credential": "password", "password": pw,
        "custodians": ["alice", "bob", "carol"], "threshold": 2});
    let with = |k: &str, v: serde_json::Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    for (body, needle) in [
        (with("threshold", 4.into()), "larger than the 3 custodians"),
        (with("threshold", 1.into()), "force it"),
        (
            with("custodians", serde_json::json!(["alice", "bob", "alice"])),
            "listed twice",
        ),
        (
            with(
                "custodians",
                serde_json::json!(["alice", "mallory", "nightly-job", "zed"]),
            ),
            "mallory is not a user; nightly-job is a service account, not a person; zed is not a user",
        ),
        (
            with("custodians", serde_json::json!(["alice", "bg-one"])),
            "own custodian",
        ),
        (
            with("password", "short-but-not-100-characters-long-Aa1!".into()),
            "at least 100",
        ),
        (with("credential", "totp".into()), "password or fido2"),
        (with("key_holder", "alice".into()), "fido2 accounts"),
    ] {
        let (status, code, msg) =
            error_of(post_json(&app, Some(&token), "/api/v1/breakglass", body.clone()).await).await;
        assert!(status == 400, "{body}: {status} {code} {msg}");
        assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
    }
    assert_eq!(breakglass_list(&app, &token).await, serde_json::json!([]));
    assert!(
        admin.user("bg-one").await.is_err(),
        "no user created by a refused request"
    );
    // Not without the permission: a custodian's own session cannot create one.
    let alice = registration_or_full(&app, "alice").await;
    let r = post_json(&app, Some(&alice), "/api/v1/breakglass", base.clone()).await;
    assert_eq!(r.status(), 403);

    // The first account; threshold 1 with several custodians only when forced (and audited).
    let r = post_json(&app, Some(&token), "/api/v1/breakglass", base.clone()).await;
    assert_eq!(r.status(), 201);
    let created: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        created["account"]["custodians"],
        serde_json::json!(["alice", "bob", "carol"])
    );
    assert_eq!(created["account"]["usable"], true);
    assert_eq!(created["tenant"]["state"], "setup");
    let (pw2, shares2) = split_for("bg-two", &["alice", "bob"], 1, true);
    let r = post_json(
        &app,
        Some(&token),
        "/api/v1/breakglass",
        serde_json::json!({"name": "bg-two", "credential": "password",
        "password": pw2, "custodians": ["alice", "bob"], "threshold": 1, "force": true}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let forced = events_named(&admin, "breakglass.created").await;
    assert_eq!(forced.len(), 2);
    assert_eq!(forced[1].details["forced"], true);
    assert!(
        forced.iter().all(|e| e.details["emergency"] == true),
        "creation is tagged"
    );
    let tenant = app
        .anonymous
        .ready()
        .await
        .expect("ready")
        .tenant
        .expect("tenant");
    assert_eq!(
        (tenant.state.as_str(), tenant.breakglass_accounts),
        ("ready", 2)
    );
    tokio::time::sleep(std::time::Duration::from_secs(6)).await; // the header's cache
    let r = app
        .http
        .get(format!("{}/api/v1/me", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("me");
    assert!(
        r.headers().get("portcullis-setup").is_none(),
        "no notice once set up"
    );

    // Shares rebuild the password; it signs in to a full GA session (no second factor).
    let covered_now = async || {
        covered(
            &api_get(&app, &token, "/api/v1/alerts").await,
            "breakglass.activity",
            None,
        )
    };
    let before = covered_now().await;
    let name2 = portcullis_core::principal::PrincipalName::parse("n", "bg-two").expect("name");
    let rebuilt = bg::combine(&name2, &shares2[1..]).expect("one share is enough when forced");
    assert_eq!(rebuilt.as_str(), pw2);
    let s = breakglass_signin(&app, "bg-two", &rebuilt)
        .await
        .expect("signed in")
        .session
        .expect("session");
    assert_eq!((s.strength.as_str(), s.scope.as_str()), ("mfa", "full"));
    let bgc = app
        .anonymous
        .with_token(Some(SecretString::from(s.token.clone())));
    let who = bgc.whoami().await.expect("whoami");
    assert!(
        format!("{who:?}").contains("global-administrator"),
        "{who:?}"
    );
    bgc.users().await.expect("a GA session can act");
    // A wrong password and a failed recovery are attempts too.
    assert_eq!(
        breakglass_signin(&app, "bg-two", &pw)
            .await
            .expect_err("wrong")
            .code(),
        Some("invalid_credentials")
    );
    let r = post_json(
        &app,
        None,
        "/api/v1/breakglass/bg-two/failed-recovery",
        serde_json::json!({"reason": "corrupted_share"}),
    )
    .await;
    assert_eq!(r.status(), 202);
    let r = post_json(
        &app,
        None,
        "/api/v1/breakglass/bg-two/failed-recovery",
        serde_json::json!({"reason": "anything"}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let completed: Vec<_> = events_named(&admin, "signin.completed")
        .await
        .into_iter()
        .filter(|e| e.target == "user:bg-two")
        .collect();
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0].details["emergency"], true);
    assert_eq!(completed[0].details["reason"], "breakglass_split_password");
    let recovery = events_named(&admin, "signin.breakglass_recovery").await;
    assert_eq!(recovery.len(), 1);
    assert_eq!(
        (
            recovery[0].outcome.as_str(),
            recovery[0].details["emergency"].as_bool()
        ),
        ("failure", Some(true))
    );
    // One alert per attempt: the sign-in, the wrong password, the failed recovery (whoami
    // and the users list are reads, not events; the refused reason changed nothing), each
    // delivered at once or counted in its window's summary.
    assert_eq!(covered_now().await, before + 3);

    // Its credential does not change through the ordinary endpoints.
    let (status, code, _) = error_of(
        post_json(
            &app,
            Some(&s.token),
            "/api/v1/me/mfa/totp",
            serde_json::json!({"name": "phone"}),
        )
        .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (409, "breakglass_credential"));
    let (status, code, _) = error_of(post_json(&app, Some(&s.token), "/api/v1/me/password",
        serde_json::json!({"current_password": pw2, "new_password": "a-brand-new-password-of-mine-77"})).await).await;
    assert_eq!((status, code.as_str()), (409, "breakglass_credential"));

    // A drill: a fresh sign-in handed in; its session ends; last use stays the real one.
    let d = breakglass_signin(&app, "bg-two", &pw2)
        .await
        .expect("drill sign-in")
        .session
        .expect("session");
    let r = post_json(
        &app,
        Some(&d.token),
        "/api/v1/breakglass/drill",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let again = post_json(
        &app,
        Some(&d.token),
        "/api/v1/breakglass/drill",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(again.status(), 401, "the drill session has ended");
    let r = post_json(
        &app,
        Some(&token),
        "/api/v1/breakglass/drill",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(r.status(), 403, "only the account itself records a drill");
    let list = breakglass_list(&app, &token).await;
    let two = list
        .as_array()
        .expect("list")
        .iter()
        .find(|a| a["name"] == "bg-two")
        .expect("bg-two")
        .clone();
    assert!(two["last_drill"].is_string(), "{two}");
    assert_eq!(two["drill_overdue"], false);
    let last_use = two["last_use"].as_str().expect("last use");
    assert!(
        last_use < two["last_drill"].as_str().expect("drill"),
        "the drill is not the last use: {two}"
    );

    // At least two: disabling one or removing its role is refused (and the refusal audited).
    let (status, code, msg) = error_of(
        post_json(
            &app,
            Some(&token),
            "/api/v1/users/bg-one/disable",
            serde_json::json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (409, "breakglass_minimum"),
        "{msg}"
    );
    assert!(admin.user("bg-one").await.expect("user").enabled);
    let refused_ev = events_named(&admin, "user.disabled").await;
    assert_eq!(refused_ev.len(), 1);
    assert_eq!(
        (
            refused_ev[0].outcome.as_str(),
            refused_ev[0].details["emergency"].as_bool()
        ),
        ("failure", Some(true))
    );
    let ga = admin
        .assignments_of("user:bg-one")
        .await
        .expect("assignments");
    let ga = ga
        .iter()
        .find(|a| a.role == "global-administrator")
        .expect("GA");
    assert_eq!(
        admin
            .delete_assignment(&ga.id)
            .await
            .expect_err("refused")
            .code(),
        Some("breakglass_minimum")
    );
    // With a third, one may go; then no further.
    create_split_account(&app, &token, "bg-three", &["bob", "carol"], 2).await;
    admin
        .disable_user("bg-three")
        .await
        .expect("a third may be disabled");
    assert_eq!(
        admin
            .disable_user("bg-one")
            .await
            .expect_err("refused")
            .code(),
        Some("breakglass_minimum")
    );
    admin.enable_user("bg-three").await.expect("enable");

    // Re-split: the old password stops working, the new one works, sessions ended.
    let (pw3, _) = split_for("bg-two", &["bob", "carol"], 2, false);
    let r = post_json(
        &app,
        Some(&token),
        "/api/v1/breakglass/bg-two/rotate",
        serde_json::json!({"password": pw3, "custodians": ["bob", "carol"], "threshold": 2}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(bgc.whoami().await.is_err(), "its sessions ended");
    assert!(breakglass_signin(&app, "bg-two", &pw2).await.is_err());
    breakglass_signin(&app, "bg-two", &pw3)
        .await
        .expect("new split works");
    let list = breakglass_list(&app, &token).await;
    let two = list
        .as_array()
        .expect("list")
        .iter()
        .find(|a| a["name"] == "bg-two")
        .expect("bg-two")
        .clone();
    assert_eq!(
        (two["custodians"].clone(), two["threshold"].clone()),
        (serde_json::json!(["bob", "carol"]), 2.into())
    );
    assert!(admin.audit_verify().await.expect("verify").ok);
    app.stop().await;
}

/// A custodian's own session (full, after TOTP is not needed for a 403 check: a
/// registration-only session is refused just the same).
async fn registration_or_full(app: &TestApp, name: &str) -> String {
    let r = breakglass_signin(app, name, CUSTODIAN_PW)
        .await
        .expect("custodian signs in");
    r.session.expect("session").token
}

/// A FIDO2 break-glass account: key and PIN holders recorded; the one-time enrolment session
/// registers one key with user verification; it signs in passwordless (phishing-resistant)
/// to a full session, and no further credential can be added through the account itself.
async fn breakglass_fido2_account(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    people(&admin, &["kim", "pat"]).await;
    let (status, _, msg) = error_of(post_json(&app, Some(&token), "/api/v1/breakglass",
        serde_json::json!({"name": "bg-key", "credential": "fido2", "key_holder": "kim", "pin_holder": "kim"})).await).await;
    assert_eq!(status, 400);
    assert!(msg.contains("two different people"), "{msg}");
    let r = post_json(&app, Some(&token), "/api/v1/breakglass",
        serde_json::json!({"name": "bg-key", "credential": "fido2", "key_holder": "kim", "pin_holder": "pat"})).await;
    assert_eq!(r.status(), 201);
    let created: serde_json::Value = r.json().await.expect("json");
    assert_eq!(created["account"]["usable"], false, "no key yet");
    // Disabling an account that was never usable lowers nothing: allowed even in setup.
    admin
        .disable_user("bg-key")
        .await
        .expect("an unusable account may be disabled");
    admin.enable_user("bg-key").await.expect("enable");
    assert_eq!(
        (
            created["account"]["key_holder"].as_str(),
            created["account"]["pin_holder"].as_str()
        ),
        (Some("kim"), Some("pat"))
    );
    let enrol = app.anonymous.with_token(Some(SecretString::from(
        created["enrolment_token"]
            .as_str()
            .expect("token")
            .to_owned(),
    )));
    // A new enrolment token (the first went unused) ends the first one.
    let r = post_json(
        &app,
        Some(&token),
        "/api/v1/breakglass/bg-key/enrolment",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let again: serde_json::Value = r.json().await.expect("json");
    assert!(
        enrol.whoami().await.is_err(),
        "the earlier enrolment token has ended"
    );
    let enrol = app.anonymous.with_token(Some(SecretString::from(
        again["enrolment_token"].as_str().expect("token").to_owned(),
    )));
    let mut key = SoftPasskey::new(true);
    register(&enrol, &mut key, "yubikey-safe-1").await;
    let (status, code, _) = error_of(
        post_json(
            &app,
            Some(&token),
            "/api/v1/breakglass/bg-key/enrolment",
            serde_json::json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (409, "breakglass_credential"),
        "not once the key is registered"
    );
    let mut other = SoftPasskey::new(true);
    let second = enrol
        .mfa_webauthn_register(&WebauthnRegisterRequest {
            name: "another".into(),
        })
        .await;
    assert_eq!(
        second.expect_err("refused").code(),
        Some("breakglass_credential")
    );
    let _ = &mut other;
    let c = passwordless(&app, "bg-key").await;
    let r = finish(&app, &c.ceremony_id, answer(&mut key, &c, origin()))
        .await
        .expect("signed in");
    let s = r.session.expect("session");
    assert_eq!(
        (s.strength.as_str(), s.scope.as_str()),
        ("phishing_resistant", "full")
    );
    let list = breakglass_list(&app, &token).await;
    assert_eq!(list[0]["credential"], "fido2");
    assert_eq!(list[0]["usable"], true);
    let ev = events_named(&admin, "signin.completed").await;
    assert!(
        ev.iter()
            .any(|e| e.target == "user:bg-key" && e.details["emergency"] == true)
    );
    app.stop().await;
}

/// An account never drilled within the drill age is listed by /readyz and alerted once per
/// period, not on every check.
async fn breakglass_drills_overdue_alert(backend: Backend) {
    let Some(app) = spawn_with(backend, |c| {
        c.breakglass_drill_max_age = "2s".into();
        c.breakglass_drill_alert_every = "1h".into();
    })
    .await
    else {
        return;
    };
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    people(&admin, &["alice", "bob"]).await;
    create_split_account(&app, &token, "bg-old", &["alice", "bob"], 2).await;
    eventually("the overdue drill alert", 15, async || {
        !events_named(&admin, "breakglass.drill_overdue")
            .await
            .is_empty()
    })
    .await;
    let ev = events_named(&admin, "breakglass.drill_overdue").await;
    assert_eq!(ev[0].details["accounts"], serde_json::json!(["bg-old"]));
    assert_eq!(
        alert_count(&app, &token, "breakglass.drill_overdue").await,
        1
    );
    let tenant = app
        .anonymous
        .ready()
        .await
        .expect("ready")
        .tenant
        .expect("tenant");
    assert_eq!(tenant.drills_overdue, 1);
    let ready = serde_json::to_string(&app.anonymous.ready().await.expect("ready")).expect("json");
    assert!(
        !ready.contains("bg-old"),
        "no account names for anonymous callers: {ready}"
    );
    let listed = breakglass_list(&app, &token).await;
    assert_eq!(listed[0]["drill_overdue"], true);
    // More checks pass (one a second here) without another alert within the period.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        events_named(&admin, "breakglass.drill_overdue").await.len(),
        1
    );
    app.stop().await;
}

/// A break-glass sign-in reaches every recipient of every channel: both addresses on a real
/// SMTP server, a webhook and an SMS gateway.
async fn breakglass_alert_reaches_every_channel(backend: Backend) {
    let Some((smtp_port, maildir, mut sink)) = smtp_sink() else {
        return;
    };
    // A short aggregation window: the account's creation alerts open one, and the sign-in
    // below is meant to be the first alert of the next (delivered at once, not summarised).
    let Some(app) = spawn_with(backend, |c| c.alert_aggregation_window = "2s".into()).await else {
        let _ = sink.kill();
        return;
    };
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    people(&admin, &["alice", "bob"]).await;
    let pw = create_split_account(&app, &token, "bg-alarm", &["alice", "bob"], 2).await;
    let hook: Inbox = Default::default();
    let (hook_port, _h) = receiver(hook.clone(), 0).await;
    let sms: Inbox = Default::default();
    let (sms_port, _s) = receiver(sms.clone(), 0).await;
    for body in [
        serde_json::json!({"name": "mail", "kind": "email", "smtp_url": format!("smtp://127.0.0.1:{smtp_port}"),
            "from": "portcullis@example.org", "to": ["sec1@example.org", "sec2@example.org"]}),
        serde_json::json!({"name": "hook", "kind": "webhook", "url": format!("http://127.0.0.1:{hook_port}/hook")}),
        serde_json::json!({"name": "sms", "kind": "sms", "url": format!("http://127.0.0.1:{sms_port}/send"),
            "to": ["+15550000001", "+15550000002"], "template": "{\"to\":\"{to}\",\"text\":\"{message}\"}"}),
    ] {
        assert_eq!(add_channel(&app, &token, body).await.status(), 201);
    }
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    breakglass_signin(&app, "bg-alarm", &pw)
        .await
        .expect("sign-in");
    eventually("the break-glass alert on every channel", 30, async || {
        let mails = mailbox(maildir.path());
        let mailed = ["sec1@example.org", "sec2@example.org"].iter().all(|to| {
            mails.iter().any(|m| {
                m["to"].to_string().contains(to)
                    && m["content"].as_str().unwrap_or("").contains("bg-alarm")
            })
        });
        let hooked = hook
            .lock()
            .expect("hook")
            .requests
            .iter()
            .any(|(_, _, b)| b.contains("breakglass.activity") && b.contains("bg-alarm"));
        let texted = {
            let r = sms.lock().expect("sms");
            ["+15550000001", "+15550000002"].iter().all(|n| {
                r.requests
                    .iter()
                    .any(|(_, _, b)| b.contains(n) && b.contains("bg-alarm"))
            })
        };
        mailed && hooked && texted
    })
    .await;
    let _ = sink.kill();
    app.stop().await;
}

/// Two replicas each disabling a different one of three break-glass accounts at once: one
/// wins, the other is refused, two remain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_keep_two_breakglass_accounts() {
    let Some(url) = fresh_postgres_url().await else {
        eprintln!("skipped: PORTCULLIS_TEST_DATABASE_URL is not set");
        return;
    };
    let (a, b) = two_replicas(&url).await;
    let token = admin_token(&a).await;
    let admin_a = a
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let admin_b = b
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    people(&admin_a, &["alice", "bob"]).await;
    for n in ["bg-a", "bg-b", "bg-c"] {
        create_split_account(&a, &token, n, &["alice", "bob"], 2).await;
    }
    for _round in 0..3 {
        let (ra, rb) = tokio::join!(admin_a.disable_user("bg-a"), admin_b.disable_user("bg-b"));
        let ok = [ra.is_ok(), rb.is_ok()].iter().filter(|x| **x).count();
        assert_eq!(
            ok, 1,
            "exactly one of two concurrent disables wins: {ra:?} {rb:?}"
        );
        for e in [ra.err(), rb.err()].into_iter().flatten() {
            assert_eq!(e.code(), Some("breakglass_minimum"));
        }
        let tenant = a
            .anonymous
            .ready()
            .await
            .expect("ready")
            .tenant
            .expect("tenant");
        assert_eq!(tenant.breakglass_accounts, 2);
        admin_a.enable_user("bg-a").await.expect("enable");
        admin_a.enable_user("bg-b").await.expect("enable");
    }
    a.stop().await;
    b.stop().await;
}

// ----- Conditional access -----

async fn ca_import(
    app: &TestApp,
    token: &str,
    policies: serde_json::Value,
    force: bool,
) -> reqwest::Response {
    post_json(
        app,
        Some(token),
        "/api/v1/ca/policies",
        serde_json::json!({ "policies": policies, "force": force }),
    )
    .await
}

async fn whatif(app: &TestApp, token: &str, body: serde_json::Value) -> serde_json::Value {
    let r = post_json(app, Some(token), "/api/v1/ca/whatif", body).await;
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

fn last_event<'a>(
    events: &'a [portcullis_core::api::AuditEventView],
    target: &str,
) -> &'a portcullis_core::api::AuditEventView {
    events
        .iter()
        .rev()
        .find(|e| e.target == target)
        .expect("event")
}

/// Policies as data: locations and policies validated (every problem at once, nothing
/// changed); enforcement at sign-in (block, requirement, report-only recorded in the audit
/// event), at token refresh and for client credentials; what-if with an explanation per
/// policy; break-glass accounts untouched by any policy; the lockout guard refuses (a) and
/// lets the caller force only (b), audited and alerted.
async fn conditional_access_policies_and_enforcement(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let (alice, alice_secret) = mfa_user(&app, &admin, "alice", "copper-lantern-river-42").await;
    // Alice's CLI login from before any policy: its refresh is judged by the policies of now.
    let d = device_start(&app).await;
    alice
        .approve_device(&portcullis_core::api::DeviceDecisionRequest {
            user_code: code_of(&d, "user_code"),
        })
        .await
        .expect("approve");
    let r = device_poll(&app, &code_of(&d, "device_code")).await;
    assert_eq!(r.status(), 200);
    let cli_tokens: serde_json::Value = r.json().await.expect("json");
    let alice_refresh = cli_tokens["refresh_token"].as_str().expect("rt").to_owned();
    admin
        .create_user(&CreateUserRequest {
            name: "gary".into(),
            display_name: "Gary".into(),
            email: None,
            phone: None,
            guest_organisation: Some("Contoso".into()),
            privileged: false,
            password: CUSTODIAN_PW.into(),
        })
        .await
        .expect("guest");
    people(&admin, &["paul"]).await;
    admin
        .create_group(&CreateGroupRequest {
            name: "secops".into(),
            display_name: None,
            role_assignable: false,
        })
        .await
        .expect("group");
    admin
        .add_group_member(
            "secops",
            &GroupMemberRequest {
                member: "alice".into(),
            },
        )
        .await
        .expect("member");

    // Named locations: bad ones refused (every problem named), nothing added.
    for (body, needle) in [
        (
            serde_json::json!({"name": "lab", "cidrs": ["10.0.0.0/8", "10.1.0.0/16"]}),
            "overlaps",
        ),
        (
            serde_json::json!({"name": "lab", "cidrs": ["10.0.0.1/8", "300.1.1.1"]}),
            "host bits",
        ),
        (
            serde_json::json!({"name": "any", "cidrs": ["10.0.0.0/8"]}),
            "reserved",
        ),
        (
            serde_json::json!({"name": "lab", "cidrs": []}),
            "at least one",
        ),
    ] {
        let (status, _, msg) =
            error_of(post_json(&app, Some(&token), "/api/v1/ca/locations", body.clone()).await)
                .await;
        assert_eq!(status, 400, "{body}: {msg}");
        assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
    }
    assert_eq!(
        api_get(&app, &token, "/api/v1/ca/locations").await,
        serde_json::json!([])
    );
    let r = post_json(&app, Some(&token), "/api/v1/ca/locations", serde_json::json!({"name": "lab", "cidrs": ["127.0.0.0/8", "2001:db8:10::/48"], "trusted": true})).await;
    assert_eq!(r.status(), 200);

    // Policies: unknown names (all listed), a duplicated name, no conditions: refused.
    let (status, _, msg) = error_of(ca_import(&app, &token, serde_json::json!([
        {"name": "p1", "state": "enabled", "conditions": {"principals": {"include": ["user:nobody", "group:ghosts", "role:no-such-role"]}, "applications": {"include": ["client:no-client"]}, "locations": {"include": ["nowhere"]}}, "grant": {"require": "mfa"}}
    ]), false).await).await;
    assert_eq!(status, 400);
    for n in ["nobody", "ghosts", "no-such-role", "no-client", "nowhere"] {
        assert!(msg.contains(n), "{n} not in {msg}");
    }
    let p = serde_json::json!({"name": "dup", "state": "enabled", "conditions": {"principals": {"include": ["guests"]}}, "grant": {"require": "mfa"}});
    let (status, _, msg) = error_of(
        ca_import(
            &app,
            &token,
            serde_json::json!([p.clone(), p.clone()]),
            false,
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(msg.contains("dup"), "{msg}");
    let (status, _, _) = error_of(ca_import(&app, &token, serde_json::json!([{"name": "x", "state": "enabled", "grant": {"block": true}, "surprise": 1}]), false).await).await;
    assert_eq!(status, 400, "unknown field");
    assert_eq!(
        api_get(&app, &token, "/api/v1/ca/policies").await,
        serde_json::json!([])
    );

    // The guard: blocking everyone is refused, naming the policy and the administrators.
    let (status, code, msg) = error_of(ca_import(&app, &token, serde_json::json!([
        {"name": "lock-everyone", "state": "enabled", "conditions": {"principals": {"include": ["all"]}}, "grant": {"block": true}}
    ]), true).await).await;
    assert_eq!((status, code.as_str()), (409, "ca_lockout"), "{msg}");
    assert!(
        msg.contains("lock-everyone") && msg.contains("root-admin"),
        "{msg}"
    );
    assert!(!msg.contains("force"), "(a) cannot be forced: {msg}");

    // Enforced policies plus a report-only one.
    let r = ca_import(&app, &token, serde_json::json!([
        {"name": "guests-only-from-lab", "state": "enabled", "conditions": {"principals": {"include": ["guests"]}, "locations": {"include": ["any"], "exclude": ["lab"]}}, "grant": {"block": true}},
        {"name": "guests-never", "state": "enabled", "conditions": {"principals": {"include": ["user:gary"]}, "applications": {"include": ["api"]}}, "grant": {"block": true}},
        {"name": "secops-keys", "state": "enabled", "conditions": {"principals": {"include": ["group:secops"]}, "applications": {"include": ["cli"]}}, "grant": {"require": "phishing_resistant"}},
        {"name": "members-mfa", "state": "enabled", "conditions": {"principals": {"include": ["user:paul"]}}, "grant": {"require": "mfa"}},
        {"name": "watch-alice", "state": "report_only", "conditions": {"principals": {"include": ["user:alice"]}}, "grant": {"block": true}},
        {"name": "alice-hourly", "state": "enabled", "conditions": {"principals": {"include": ["user:alice"]}}, "session": {"sign_in_frequency_hours": 1}}
    ]), false).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    assert_eq!(
        alert_count(&app, &token, "conditional_access.changed").await,
        6,
        "every policy change alerts"
    );
    // Re-importing the same is a no-op.
    let same: serde_json::Value = ca_import(&app, &token, serde_json::json!([
        {"name": "members-mfa", "state": "enabled", "conditions": {"principals": {"include": ["user:paul"]}}, "grant": {"require": "mfa"}}
    ]), false).await.json().await.expect("json");
    assert_eq!(same["unchanged"], serde_json::json!(["members-mfa"]));

    // A block: gary is refused, the refusal audited with the decision.
    let e = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "gary".into(),
            password: CUSTODIAN_PW.into(),
        })
        .await
        .expect_err("blocked");
    assert_eq!(e.code(), Some("ca_blocked"), "{e}");
    assert!(e.to_string().contains("guests-never"), "{e}");
    let ev = events_named(&admin, "signin.password").await;
    let refused = last_event(&ev, "user:gary");
    assert_eq!(refused.outcome.as_str(), "failure");
    assert_eq!(refused.details["conditional_access"]["outcome"], "block");
    assert_eq!(
        refused.details["conditional_access"]["applied"],
        serde_json::json!(["guests-never"])
    );
    // The sign-in page opens an API session too: saying it returns to the device page (the
    // CLI) does not escape a policy on the API.
    let mut b = Browser::new(&app.base);
    let html = b
        .get("/signin?return_to=%2Fdevice")
        .await
        .text()
        .await
        .expect("html");
    let csrf = hidden(&html, "csrf");
    let r = b
        .post(
            "/signin",
            &[
                ("csrf", csrf.as_str()),
                ("return_to", "/device"),
                ("username", "gary"),
                ("password", CUSTODIAN_PW),
            ],
        )
        .await;
    assert_eq!(r.status(), 403, "blocked as an API sign-in");
    assert!(
        !b.cookies.keys().any(|k| k.contains("session")),
        "{:?}",
        b.cookies
    );
    // A requirement the password alone does not meet, no factor registered: registration only.
    let s = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "paul".into(),
            password: CUSTODIAN_PW.into(),
        })
        .await
        .expect("signed in");
    assert_eq!(s.session.expect("session").scope, "registration_only");
    // Report-only: alice signs in; what the policy would have done is in the event.
    // (alice-hourly also applies: its sign-in frequency bounds the session it opens.)
    let first = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "alice".into(),
            password: "copper-lantern-river-42".into(),
        })
        .await
        .expect("password");
    let s = app
        .anonymous
        .signin_totp(&TotpSignInRequest {
            signin_id: first.signin_id.expect("id"),
            code: crate::code(&alice_secret, 1),
        })
        .await
        .expect("totp")
        .session
        .expect("session");
    let ends = time::OffsetDateTime::parse(
        &s.expires_at,
        &time::format_description::well_known::Rfc3339,
    )
    .expect("time");
    assert!(
        ends <= time::OffsetDateTime::now_utc() + time::Duration::minutes(61),
        "bounded by the policy: {}",
        s.expires_at
    );
    app.anonymous
        .with_token(Some(SecretString::from(s.token)))
        .whoami()
        .await
        .expect("the bounded session works");
    let ev = events_named(&admin, "signin.completed").await;
    let ok = last_event(&ev, "user:alice");
    assert_eq!(ok.details["conditional_access"]["outcome"], "allow");
    assert_eq!(
        ok.details["conditional_access"]["report_only"][0]["policy"],
        "watch-alice"
    );

    // What-if: from the lab and from outside, with every policy explained.
    let inside = whatif(
        &app,
        &token,
        serde_json::json!({"user": "gary", "ip": "127.0.0.1", "app": "cli"}),
    )
    .await;
    assert_eq!(inside["outcome"], "allow", "{inside}");
    assert_eq!(
        inside["explanation"].as_array().expect("explanation").len(),
        6
    );
    let outside = whatif(
        &app,
        &token,
        serde_json::json!({"user": "gary", "ip": "2001:db8:99::1", "app": "cli"}),
    )
    .await;
    assert_eq!(outside["outcome"], "block", "{outside}");
    assert_eq!(
        outside["policies"],
        serde_json::json!(["guests-only-from-lab"])
    );
    let mapped = whatif(
        &app,
        &token,
        serde_json::json!({"user": "gary", "ip": "::ffff:127.0.0.9", "app": "cli"}),
    )
    .await;
    assert_eq!(
        mapped["outcome"], "allow",
        "an IPv4-mapped address is judged as IPv4: {mapped}"
    );
    let keys = whatif(
        &app,
        &token,
        serde_json::json!({"user": "alice", "ip": "127.0.0.1", "app": "cli", "strength": "mfa"}),
    )
    .await;
    assert_eq!(
        (keys["outcome"].as_str(), keys["strength"].as_str()),
        (Some("require"), Some("phishing_resistant"))
    );
    let (status, _, _) = error_of(
        post_json(
            &app,
            Some(&token),
            "/api/v1/ca/whatif",
            serde_json::json!({"user": "alice", "ip": "not-an-ip"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    for bad in [
        serde_json::json!({"user": "alice", "ip": "127.0.0.1", "hours_since_sign_in": u32::MAX}),
        serde_json::json!({"user": "Not A Name!", "ip": "127.0.0.1"}),
    ] {
        let r = post_json(&app, Some(&token), "/api/v1/ca/whatif", bad.clone()).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    // Names are unique ignoring case: re-importing in another case replaces, never adds.
    for name in ["Case-Test", "case-test"] {
        let r = ca_import(&app, &token, serde_json::json!([
            {"name": name, "state": "disabled", "conditions": {"principals": {"include": ["guests"]}}, "grant": {"block": true}}
        ]), false).await;
        assert_eq!(r.status(), 200);
    }
    let names: Vec<String> = api_get(&app, &token, "/api/v1/ca/policies")
        .await
        .as_array()
        .expect("list")
        .iter()
        .map(|p| p["name"].as_str().expect("name").to_owned())
        .filter(|n| n.eq_ignore_ascii_case("case-test"))
        .collect();
    assert_eq!(names, ["case-test"]);
    let r = app
        .http
        .delete(format!("{}/api/v1/ca/policies/case-test", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);

    // A location in use cannot be deleted.
    let r = app
        .http
        .delete(format!("{}/api/v1/ca/locations/lab", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    let (status, _, msg) = error_of(r).await;
    assert_eq!(status, 409);
    assert!(msg.contains("guests-only-from-lab"), "{msg}");

    // At token issuance and refresh: secops needs security keys on the CLI now.
    let r = refresh_with(&app, "portcullis-cli", &alice_refresh).await;
    let (status, body) = (
        r.status().as_u16(),
        r.json::<serde_json::Value>().await.expect("json"),
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or("")
            .contains("secops-keys"),
        "{body}"
    );
    let refused = events_named(&admin, "token.refresh").await;
    assert_eq!(
        last_event(&refused, "user:alice").details["conditional_access"]["outcome"],
        "require"
    );
    let d = device_start(&app).await;
    alice
        .approve_device(&portcullis_core::api::DeviceDecisionRequest {
            user_code: code_of(&d, "user_code"),
        })
        .await
        .expect("approve");
    oauth_error(
        device_poll(&app, &code_of(&d, "device_code")).await,
        400,
        "invalid_grant",
    )
    .await;

    // Client credentials: a service account outside its allowed place is refused.
    admin
        .create_service_account(&CreateServiceAccountRequest {
            name: "etl".into(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await
        .expect("sa");
    let secret = admin
        .add_client_secret("etl")
        .await
        .expect("secret")
        .client_secret;
    access_token(&app, "etl", &secret).await;
    let r = ca_import(&app, &token, serde_json::json!([
        {"name": "daemons-outside", "state": "enabled", "conditions": {"principals": {"include": ["service_accounts"]}, "locations": {"include": ["lab"]}}, "grant": {"block": true}}
    ]), false).await;
    assert_eq!(r.status(), 200);
    let r = token_request(
        &app,
        &[("grant_type", "client_credentials")],
        Some(("etl", &secret)),
    )
    .await;
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"], "unauthorized_client");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or("")
            .contains("daemons-outside"),
        "{body}"
    );

    // Break-glass: no policy applies, however it is written.
    people(&admin, &["cara", "dan"]).await;
    let pw = create_split_account(&app, &token, "bg-one", &["cara", "dan"], 2).await;
    // Including one by name is refused as misleading (it could never apply); excluding is fine.
    let (status, _, msg) = error_of(ca_import(&app, &token, serde_json::json!([
        {"name": "no-bg", "state": "enabled", "conditions": {"principals": {"include": ["user:bg-one"]}}, "grant": {"block": true}}
    ]), false).await).await;
    assert_eq!(status, 400);
    assert!(msg.contains("bg-one is a break-glass account"), "{msg}");
    // A policy that blocks every member but the administrator: the break-glass account (a
    // member) still signs in, because it is never evaluated.
    let r = ca_import(&app, &token, serde_json::json!([
        {"name": "members-out", "state": "enabled", "conditions": {"principals": {"include": ["members"], "exclude": ["user:root-admin", "user:bg-one"]}}, "grant": {"block": true}},
        {"name": "members-out-2", "state": "enabled", "conditions": {"principals": {"include": ["members"], "exclude": ["user:root-admin"]}}, "grant": {"block": true}}
    ]), false).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let s = breakglass_signin(&app, "bg-one", &pw)
        .await
        .expect("break-glass signs in");
    assert_eq!(s.status, "signed_in");
    let e = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "cara".into(),
            password: CUSTODIAN_PW.into(),
        })
        .await
        .expect_err("a member is blocked");
    assert_eq!(e.code(), Some("ca_blocked"));
    let w = whatif(
        &app,
        &token,
        serde_json::json!({"user": "bg-one", "ip": "203.0.113.7"}),
    )
    .await;
    assert_eq!(
        (w["outcome"].as_str(), w["break_glass"].as_bool()),
        (Some("allow"), Some(true)),
        "{w}"
    );
    for name in ["members-out", "members-out-2"] {
        let r = app
            .http
            .delete(format!("{}/api/v1/ca/policies/{name}", app.base))
            .bearer_auth(&token)
            .send()
            .await
            .expect("delete");
        assert_eq!(r.status(), 204);
    }

    // (b): blocking the caller while another GA remains: refused unless forced; forced is
    // audited and alerts.
    let (_gina, _) = mfa_user(&app, &admin, "gina", "copper-lantern-river-42").await;
    admin
        .create_assignment(&CreateAssignmentRequest {
            principal: "user:gina".into(),
            role: "global-administrator".into(),
            scope: None,
            kind: Some("eligible".into()),
            duration_seconds: None,
            ends_at: None,
        })
        .await
        .expect("GA eligible");
    let me_out = serde_json::json!([{"name": "not-root", "state": "enabled", "conditions": {"principals": {"include": ["user:root-admin"]}}, "grant": {"block": true}}]);
    let (status, code, msg) = error_of(ca_import(&app, &token, me_out.clone(), false).await).await;
    assert_eq!((status, code.as_str()), (409, "ca_lockout"));
    assert!(
        msg.contains("root-admin") && msg.contains("not-root") && msg.contains("force"),
        "{msg}"
    );
    let forced_before = alert_count(&app, &token, "conditional_access.changed").await;
    let r = ca_import(&app, &token, me_out, true).await;
    assert_eq!(r.status(), 200);
    assert!(
        !events_named(&admin, "ca.policy.lockout_forced")
            .await
            .is_empty()
    );
    assert!(alert_count(&app, &token, "conditional_access.changed").await > forced_before);
    assert!(admin.audit_verify().await.expect("verify").ok);
    app.stop().await;
}

/// Two replicas each adding a policy that is harmless alone but, together with the other,
/// leaves no Global Administrator a way in: the version check makes the second one re-run the
/// lockout guard on the combined set, so exactly one lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_cannot_combine_a_lockout() {
    let Some(url) = fresh_postgres_url().await else {
        eprintln!("skipped: PORTCULLIS_TEST_DATABASE_URL is not set");
        return;
    };
    let (a, b) = two_replicas(&url).await;
    let token = admin_token(&a).await;
    for round in 0..3 {
        let block = |app: &str| {
            serde_json::json!([{"name": format!("no-{app}-{round}"), "state": "enabled",
                "conditions": {"principals": {"include": ["role:global-administrator"]}, "applications": {"include": [app]}},
                "grant": {"block": true}}])
        };
        let (ra, rb) = tokio::join!(
            ca_import(&a, &token, block("api"), false),
            ca_import(&b, &token, block("cli"), false)
        );
        let statuses = [ra.status().as_u16(), rb.status().as_u16()];
        assert!(
            statuses.contains(&200) && statuses.contains(&409),
            "round {round}: {statuses:?}"
        );
        let policies = api_get(&a, &token, "/api/v1/ca/policies").await;
        assert_eq!(policies.as_array().expect("list").len(), 1, "{policies}");
        let name = policies[0]["name"].as_str().expect("name").to_owned();
        let r = a
            .http
            .delete(format!("{}/api/v1/ca/policies/{name}", a.base))
            .bearer_auth(&token)
            .send()
            .await
            .expect("delete");
        assert_eq!(r.status(), 204);
    }
    a.stop().await;
    b.stop().await;
}

/// Invariant 4: failures never lock a break-glass account out. Failed attempts from many
/// addresses throttle an ordinary account (per account), but the right password of a
/// break-glass account still signs in at once from a fresh address (per-IP throttling only).
async fn breakglass_accounts_are_not_throttled_per_account(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    people(&admin, &["alice", "bob", "olga"]).await;
    let pw = create_split_account(&app, &token, "bg-one", &["alice", "bob"], 2).await;
    let from = |last: u8| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, last]))
            .build()
            .expect("client")
    };
    let attempt = |last: u8, user: &'static str, password: String| {
        let base = app.base.clone();
        async move {
            from(last)
                .post(format!("{base}/api/v1/signin"))
                .json(&serde_json::json!({ "username": user, "password": password }))
                .send()
                .await
                .expect("signin")
                .status()
                .as_u16()
        }
    };
    for (i, user) in [(0u8, "olga"), (100u8, "bg-one")] {
        for n in 0..10 {
            let s = attempt(10 + i + n, user, "not-the-password-at-all".into()).await;
            assert!(s == 401 || s == 429, "{user}: {s}");
        }
    }
    assert_eq!(
        attempt(50, "olga", CUSTODIAN_PW.into()).await,
        429,
        "an ordinary account is throttled per account"
    );
    assert_eq!(
        attempt(150, "bg-one", pw.clone()).await,
        200,
        "a break-glass account is throttled per address only"
    );
    // Custodians mistyping shares again and again (reported failed recoveries) do not delay
    // the sign-in that follows from their address.
    let mut statuses = Vec::new();
    for _ in 0..25 {
        let r = from(77)
            .post(format!(
                "{}/api/v1/breakglass/bg-one/failed-recovery",
                app.base
            ))
            .json(&serde_json::json!({ "reason": "wrong_shares" }))
            .send()
            .await
            .expect("report");
        statuses.push(r.status().as_u16());
    }
    assert!(
        statuses.contains(&429),
        "reports are throttled: {statuses:?}"
    );
    assert_eq!(attempt(77, "bg-one", pw).await, 200);
    app.stop().await;
}

/// Invariant 8 for the drill watch: two replicas both see the overdue drill, one alert is
/// raised per period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_raise_the_overdue_drill_alert_once() {
    let Some(url) = fresh_postgres_url().await else {
        eprintln!("skipped: PORTCULLIS_TEST_DATABASE_URL is not set");
        return;
    };
    let (a, b) = two_replicas_with(&url, |c| {
        c.breakglass_drill_max_age = "2s".into();
        c.breakglass_drill_alert_every = "1h".into();
    })
    .await;
    let token = admin_token(&a).await;
    let admin = a
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    people(&admin, &["alice", "bob"]).await;
    create_split_account(&a, &token, "bg-old", &["alice", "bob"], 2).await;
    eventually("the overdue drill alert", 15, async || {
        !events_named(&admin, "breakglass.drill_overdue")
            .await
            .is_empty()
    })
    .await;
    // Both replicas check every 2 s; give them several rounds.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert_eq!(
        events_named(&admin, "breakglass.drill_overdue").await.len(),
        1
    );
    assert_eq!(alert_count(&a, &token, "breakglass.drill_overdue").await, 1);
    a.stop().await;
    b.stop().await;
}

/// Invariant 7 for channels: a webhook URL's path (where services such as Slack put the
/// token) is not shown by the API nor written to the audit log, whose alerts reach every
/// other channel.
async fn channel_urls_are_not_shown(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let r = add_channel(
        &app,
        &token,
        serde_json::json!({
            "name": "slackish", "kind": "webhook",
            "url": "http://127.0.0.1:9/services/T000/B000/XyZsecretTok3n", "shape": "slack",
        }),
    )
    .await;
    assert_eq!(r.status(), 201);
    let shown: serde_json::Value = r.json().await.expect("json");
    assert_eq!(shown["config"]["url"], "http://127.0.0.1:9/…");
    let listed = api_get(&app, &token, "/api/v1/alerts/channels")
        .await
        .to_string();
    assert!(!listed.contains("XyZsecretTok3n"), "{listed}");
    let events =
        serde_json::to_string(&events_named(&admin, "alert_channel.added").await).expect("json");
    assert!(
        events.contains("slackish") && !events.contains("XyZsecretTok3n"),
        "{events}"
    );
    let alerts =
        serde_json::to_string(&api_get(&app, &token, "/api/v1/alerts").await).expect("json");
    assert!(!alerts.contains("XyZsecretTok3n"), "{alerts}");
    app.stop().await;
}

#[path = "api/ca_privilege.rs"]
mod ca_privilege;
