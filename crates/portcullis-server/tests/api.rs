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
    }
}

async fn spawn_app(backend: Backend) -> Option<TestApp> {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_for(backend, dir.path()).await?;
    Some(start(config, dir, None).await)
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
    check(400, "invalid_json")(
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
    let huge = format!("{{\"reason\": \"{}\"}}", "a".repeat(200 * 1024));
    check(413, "payload_too_large")(
        app.http
            .post(&cp)
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .body(huge)
            .send()
            .await
            .expect("send"),
    )
    .await;
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
        Some(1),
        "the requested checkpoint was matched"
    );
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
        "POST /api/v1/audit/checkpoints",
        "POST /api/v1/bootstrap",
        "POST /api/v1/signin",
        "POST /api/v1/signin/totp",
        "POST /api/v1/signout",
        "GET /api/v1/me",
        "GET /api/v1/me/mfa",
        "POST /api/v1/me/mfa/totp",
        "POST /api/v1/me/mfa/totp/{id}/confirm",
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
    assert!(me.roles[0].starts_with("Global Administrator"));
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
    // Invalid UTF-8 in the body is refused as bad JSON.
    let resp = app
        .http
        .post(format!("{}/api/v1/signin", app.base))
        .header("content-type", "application/json")
        .body(b"{\"username\": \"\xff\xfe\", \"password\": \"x\"}".to_vec())
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 400);
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
        code: c,
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

api_tests!(
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

#[tokio::test]
async fn two_servers_on_one_postgres_keep_one_chain() {
    let Some(url) = fresh_postgres_url().await else {
        eprintln!("skipped: PORTCULLIS_TEST_DATABASE_URL is not set");
        return;
    };
    let key = base64::engine::general_purpose::STANDARD.encode([5u8; 32]);
    let mk = |dir: &tempfile::TempDir| Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().join("data"),
        database_url: Some(SecretString::from(url.clone())),
        master_key: Some(SecretString::from(key.clone())),
        ..Config::default()
    };
    let d1 = tempfile::tempdir().expect("tmp");
    let a = start(mk(&d1), d1, None).await;
    let d2 = tempfile::tempdir().expect("tmp");
    let b = start(mk(&d2), d2, Some(a.token.clone())).await;
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
