//! How late a grant leaves its target after it ends (DESIGN.md: p99 < 1 s for PostgreSQL and
//! webhooks): 1,000 active assignments ending within one minute, each bound to a real
//! PostgreSQL role (grant mode) and to a webhook, measured from each assignment's end to the
//! moment its membership is gone from `pg_auth_members` (polled every 10 ms) and to the
//! moment the webhook receiver got its revoke.
//!
//! The server runs in this process on its embedded SQLite with durable audit (every grant and
//! revoke is an audit event); PostgreSQL and the receiver are on the same 2 cores. Service
//! accounts stand in for people (creating 1,000 people would hash 1,000 passwords first).
//!
//! Run: `PORTCULLIS_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!       cargo bench -p portcullis-server --bench target_revocation` (`GRANTS` changes 1,000).

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_core::api::{
    BindRoleRequest, CreateAssignmentRequest, CreateRoleRequest, CreateServiceAccountRequest,
    CreateTargetRequest,
};
use time::OffsetDateTime;

const KEY: &str = "bench-webhook-signing-key-0123456789";

fn us(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

fn report(what: &str, mut late_ms: Vec<f64>, expected: usize) {
    late_ms.sort_by(f64::total_cmp);
    let q = |p: f64| late_ms[((late_ms.len() as f64 * p) as usize).min(late_ms.len() - 1)];
    println!(
        "{what}: {} of {expected} revokes seen; late after the grant's end: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        late_ms.len(),
        q(0.5),
        q(0.99),
        late_ms[late_ms.len() - 1]
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let n: usize = std::env::var("GRANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    rt.block_on(async move {
        let Some(url) = portcullis_store::testing::fresh_postgres_url().await else {
            println!("target_revocation: skipped (PORTCULLIS_TEST_DATABASE_URL is not set)");
            return;
        };
        let sfx = hex::encode(rand::random::<[u8; 3]>());
        let db = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await
            .expect("target database");
        let reader = format!("pct_bench_reader_{sfx}");
        let connector = format!("pct_bench_connector_{sfx}");
        for sql in [
            format!("CREATE ROLE {reader} NOLOGIN"),
            format!("CREATE ROLE {connector} LOGIN CREATEROLE"),
            format!("GRANT pg_signal_backend TO {connector}"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&db).await.expect("set up");
        }
        let names: Vec<String> = (0..n).map(|i| format!("sa{i:04}x{sfx}")).collect();
        for name in &names {
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE ROLE pct_{name} LOGIN")))
                .execute(&db)
                .await
                .expect("login");
        }

        // The webhook receiver: when each grant's revoke arrived.
        let revoked_at: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let hook_port = listener.local_addr().expect("addr").port();
        let seen = revoked_at.clone();
        tokio::spawn(async move {
            let app = axum::Router::new().fallback(move |body: String| {
                let seen = seen.clone();
                async move {
                    let at = us(OffsetDateTime::now_utc());
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                    if v["op"] == "revoke"
                        && let Some(id) = v["grant"]["id"].as_str()
                    {
                        seen.lock().expect("seen").entry(id.to_owned()).or_insert(at);
                    }
                    axum::http::StatusCode::OK
                }
            });
            let _ = axum::serve(listener, app).await;
        });

        let running = support::start(None).await;
        let admin = &running.admin;
        let mut target_url = url::Url::parse(&url).expect("url");
        target_url.set_username(&connector).expect("user");
        for (name, kind, url, login) in [
            ("bench-db", "postgres", target_url.to_string(), Some("pct_{user}".to_owned())),
            ("bench-hook", "webhook", format!("http://127.0.0.1:{hook_port}/ops"), None),
        ] {
            admin
                .create_target(&CreateTargetRequest {
                    name: name.into(),
                    kind: kind.into(),
                    url,
                    observe_url: None,
                    login,
                    secret: (kind == "webhook").then(|| KEY.to_owned()),
                    secret_env: None,
                    drift: None,
                    reconcile_interval: Some("1h".into()), ssh: None, msgraph: None,
                })
                .await
                .expect("target");
        }
        admin
            .create_role(&CreateRoleRequest {
                slug: "bench-reader".into(),
                display_name: None,
                description: String::new(),
                permissions: vec!["target:bench-db.read".into()],
            })
            .await
            .expect("role");
        for t in ["bench-db", "bench-hook"] {
            admin
                .bind_role(t, "bench-reader", &BindRoleRequest { grants: vec![reader.clone()], mode: None, ssh: None })
                .await
                .expect("bind");
        }
        for name in &names {
            admin
                .create_service_account(&CreateServiceAccountRequest {
                    name: name.clone(),
                    display_name: None,
                    public_key: None,
                    key_id: None,
                })
                .await
                .expect("service account");
        }
        // Ends spread over one minute from 20 s after the last assignment is written.
        let first_end = OffsetDateTime::now_utc() + time::Duration::seconds(20 + n as i64 / 50);
        let spread = 60_000_000 / n as i64;
        let mut ends: HashMap<String, i64> = HashMap::new();
        for (i, name) in names.iter().enumerate() {
            let end = first_end + time::Duration::microseconds(spread * i as i64);
            for t in ["bench-db", "bench-hook"] {
                let a = admin
                    .create_assignment(&CreateAssignmentRequest {
                        principal: format!("service_account:{name}"),
                        role: "bench-reader".into(),
                        scope: Some(format!("/targets/{t}")),
                        kind: Some("active".into()),
                        duration_seconds: None,
                        ends_at: Some(end.format(&time::format_description::well_known::Rfc3339).expect("rfc3339")),
                    })
                    .await
                    .expect("assignment");
                if t == "bench-hook" {
                    ends.insert(a.id, us(end));
                }
            }
        }
        let login_end: HashMap<String, i64> = names
            .iter()
            .enumerate()
            .map(|(i, name)| (format!("pct_{name}"), us(first_end) + spread * i as i64))
            .collect();
        // Poll the memberships until every grant has ended and left (or 30 s after the last end).
        let mut gone_at: HashMap<String, i64> = HashMap::new();
        let mut granted_seen = false;
        let deadline = first_end + time::Duration::seconds(90);
        while OffsetDateTime::now_utc() < deadline && gone_at.len() < n {
            let members: Vec<String> = sqlx::query_scalar("SELECT m.rolname::text FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles m ON m.oid = am.member WHERE r.rolname = $1")
                .bind(&reader)
                .fetch_all(&db)
                .await
                .expect("members");
            let now = us(OffsetDateTime::now_utc());
            granted_seen |= members.len() == n;
            let held: std::collections::HashSet<&String> = members.iter().collect();
            for (login, end) in &login_end {
                if now >= *end && !held.contains(login) {
                    gone_at.entry(login.clone()).or_insert(now);
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        running.stop().await;
        println!("target_revocation: {n} grants per target, ends spread over 60 s (granted in PostgreSQL before the first end: {granted_seen})");
        report(
            "PostgreSQL (REVOKE visible in pg_auth_members)",
            gone_at.iter().map(|(l, at)| (at - login_end[l]) as f64 / 1000.0).collect(),
            n,
        );
        let hooks = revoked_at.lock().expect("seen").clone();
        report(
            "webhook (revoke received)",
            hooks.iter().filter_map(|(id, at)| ends.get(id).map(|e| (at - e) as f64 / 1000.0)).collect(),
            n,
        );
        for name in &names {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP ROLE IF EXISTS pct_{name}"))).execute(&db).await;
        }
    });
}
