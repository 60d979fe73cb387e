//! How fast containment takes everything away (issue 22): N service accounts each hold an
//! active assignment bound to a real PostgreSQL role (grant mode) and to a webhook; each is
//! contained in turn (`POST /api/v1/principals/{name}/contain`), and the time is measured from
//! the call to the moment the last of its target revokes is visible: its membership gone from
//! `pg_auth_members` (polled every 10 ms) and the webhook receiver holding its revoke.
//!
//! The server runs in this process on its embedded SQLite with durable audit; PostgreSQL and
//! the receiver are on the same 2 cores. Service accounts stand in for people (creating people
//! would hash a password each first).
//!
//! Run: `PORTCULLIS_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!       cargo bench -p portcullis-server --bench containment` (`PRINCIPALS` changes 200).

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_core::api::{
    BindRoleRequest, ContainRequest, CreateAssignmentRequest, CreateRoleRequest,
    CreateServiceAccountRequest, CreateTargetRequest,
};
use time::OffsetDateTime;

const KEY: &str = "bench-webhook-signing-key-0123456789";

fn us(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

fn report(what: &str, mut ms: Vec<f64>, expected: usize) {
    if ms.is_empty() {
        println!("{what}: nothing measured of {expected}");
        return;
    }
    ms.sort_by(f64::total_cmp);
    let q = |p: f64| ms[((ms.len() as f64 * p) as usize).min(ms.len() - 1)];
    println!(
        "{what}: {} of {expected}; p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        ms.len(),
        q(0.5),
        q(0.99),
        ms[ms.len() - 1]
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let n: usize = std::env::var("PRINCIPALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    rt.block_on(async move {
        let Some(url) = portcullis_store::testing::fresh_postgres_url().await else {
            println!("containment: skipped (PORTCULLIS_TEST_DATABASE_URL is not set)");
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
        // Grants for a day, written at once; then wait until both targets hold every one.
        let mut hook_grant: HashMap<String, String> = HashMap::new();
        for name in &names {
            for t in ["bench-db", "bench-hook"] {
                let a = admin
                    .create_assignment(&CreateAssignmentRequest {
                        principal: format!("service_account:{name}"),
                        role: "bench-reader".into(),
                        scope: Some(format!("/targets/{t}")),
                        kind: Some("active".into()),
                        duration_seconds: Some(86_400),
                        ends_at: None,
                    })
                    .await
                    .expect("assignment");
                if t == "bench-hook" {
                    hook_grant.insert(a.id, name.clone());
                }
            }
        }
        let members_of = async || -> Vec<String> {
            sqlx::query_scalar("SELECT m.rolname::text FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles m ON m.oid = am.member WHERE r.rolname = $1")
                .bind(&reader)
                .fetch_all(&db)
                .await
                .expect("members")
        };
        let ready = OffsetDateTime::now_utc() + time::Duration::seconds(60);
        while members_of().await.len() < n && OffsetDateTime::now_utc() < ready {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Contain each in turn; a poller notes when each membership leaves PostgreSQL.
        let called: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
        let gone: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let poller = {
            let (called, gone, stop) = (called.clone(), gone.clone(), stop.clone());
            let db = db.clone();
            let reader = reader.clone();
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let members: std::collections::HashSet<String> = sqlx::query_scalar("SELECT m.rolname::text FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles m ON m.oid = am.member WHERE r.rolname = $1")
                        .bind(&reader)
                        .fetch_all(&db)
                        .await
                        .expect("members")
                        .into_iter()
                        .collect();
                    let now = us(OffsetDateTime::now_utc());
                    let called = called.lock().expect("called").clone();
                    {
                        let mut gone = gone.lock().expect("gone");
                        for name in called.keys() {
                            if !members.contains(&format!("pct_{name}")) {
                                gone.entry(name.clone()).or_insert(now);
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        };
        let mut call_ms = Vec::new();
        for name in &names {
            let t0 = us(OffsetDateTime::now_utc());
            called.lock().expect("called").insert(name.clone(), t0);
            admin
                .contain_principal(
                    name,
                    &ContainRequest {
                        reason: "benchmark".into(),
                        force: false,
                    },
                )
                .await
                .expect("contain");
            call_ms.push((us(OffsetDateTime::now_utc()) - t0) as f64 / 1000.0);
        }
        let deadline = OffsetDateTime::now_utc() + time::Duration::seconds(30);
        while OffsetDateTime::now_utc() < deadline
            && (gone.lock().expect("gone").len() < n || revoked_at.lock().expect("seen").len() < n)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = poller.await;
        running.stop().await;
        let called = called.lock().expect("called").clone();
        let gone = gone.lock().expect("gone").clone();
        let hooks = revoked_at.lock().expect("seen").clone();
        let hook_at: HashMap<String, i64> = hooks
            .iter()
            .filter_map(|(id, at)| hook_grant.get(id).map(|name| (name.clone(), *at)))
            .collect();
        println!("containment: {n} service accounts, each with a grant in PostgreSQL and at a webhook, contained one after another");
        report("the contain call (answered)", call_ms, n);
        report(
            "PostgreSQL (membership gone), from the call",
            gone.iter().map(|(name, at)| (at - called[name]) as f64 / 1000.0).collect(),
            n,
        );
        report(
            "webhook (revoke received), from the call",
            hook_at.iter().map(|(name, at)| (at - called[name]) as f64 / 1000.0).collect(),
            n,
        );
        report(
            "the last target revoke of each containment, from the call",
            names
                .iter()
                .filter_map(|name| {
                    let (g, h) = (gone.get(name)?, hook_at.get(name)?);
                    Some((g.max(h) - called[name]) as f64 / 1000.0)
                })
                .collect(),
            n,
        );
        for name in &names {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP ROLE IF EXISTS pct_{name}"))).execute(&db).await;
        }
    });
}
