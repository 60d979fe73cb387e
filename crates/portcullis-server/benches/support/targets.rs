//! What the target benchmarks share: a fresh PostgreSQL database with a reader role and a
//! CREATEROLE connector login, a webhook receiver noting when each grant's revoke arrived, and a
//! server whose role `bench-reader` is bound to both targets (`bench-db`, `bench-hook`), with
//! `n` service accounts (each with its own database login `pct_NAME`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use portcullis_core::api::{
    BindRoleRequest, CreateRoleRequest, CreateServiceAccountRequest, CreateTargetRequest,
};
use time::OffsetDateTime;

use super::Running;

const KEY: &str = "bench-webhook-signing-key-0123456789";

/// Microseconds since the epoch.
pub fn us(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

/// The set-up.
pub struct Fixture {
    pub running: Running,
    /// A pool on the target database.
    pub db: sqlx::PgPool,
    /// The database role the binding grants.
    pub reader: String,
    /// The service accounts (their logins are `pct_NAME`).
    pub names: Vec<String>,
    /// grant id → when the webhook receiver got its revoke (µs).
    pub revoked_at: Arc<Mutex<HashMap<String, i64>>>,
}

impl Fixture {
    /// Sets everything up; `None` when PORTCULLIS_TEST_DATABASE_URL is not set.
    pub async fn new(n: usize) -> Option<Fixture> {
        let url = portcullis_store::testing::fresh_postgres_url().await?;
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
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&db)
                .await
                .expect("set up");
        }
        let names: Vec<String> = (0..n).map(|i| format!("sa{i:04}x{sfx}")).collect();
        for name in &names {
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE ROLE pct_{name} LOGIN")))
                .execute(&db)
                .await
                .expect("login");
        }
        let revoked_at: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
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
                        seen.lock()
                            .expect("seen")
                            .entry(id.to_owned())
                            .or_insert(at);
                    }
                    axum::http::StatusCode::OK
                }
            });
            let _ = axum::serve(listener, app).await;
        });
        let running = super::start(None).await;
        let admin = &running.admin;
        let mut target_url = url::Url::parse(&url).expect("url");
        target_url.set_username(&connector).expect("user");
        for (name, kind, url, login) in [
            (
                "bench-db",
                "postgres",
                target_url.to_string(),
                Some("pct_{user}".to_owned()),
            ),
            (
                "bench-hook",
                "webhook",
                format!("http://127.0.0.1:{hook_port}/ops"),
                None,
            ),
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
                    reconcile_interval: Some("1h".into()),
                    ssh: None,
                    msgraph: None,
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
                .bind_role(
                    t,
                    "bench-reader",
                    &BindRoleRequest {
                        grants: vec![reader.clone()],
                        mode: None,
                        ssh: None,
                    },
                )
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
        Some(Fixture {
            running,
            db,
            reader,
            names,
            revoked_at,
        })
    }

    /// The logins holding the reader role now.
    pub async fn members(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT m.rolname::text FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles m ON m.oid = am.member WHERE r.rolname = $1")
            .bind(&self.reader)
            .fetch_all(&self.db)
            .await
            .expect("members")
    }

    /// Stops the server and drops the logins (roles are cluster-wide).
    pub async fn finish(self) {
        self.running.stop().await;
        for name in &self.names {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP ROLE IF EXISTS pct_{name}"
            )))
            .execute(&self.db)
            .await;
        }
    }
}

/// `what: N of EXPECTED; p50, p99, max` of latencies in milliseconds.
pub fn report(what: &str, mut ms: Vec<f64>, expected: usize) {
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
