//! The Microsoft Graph connector against the Graph test double
//! (`portcullis_server::graph_double`, in this process):
//!
//! 1. How late an Entra role assignment is deleted after its grant ends: `GRANTS` (default
//!    500) active assignments of a role bound to Global Administrator, their ends spread over
//!    one minute, measured from each end to the moment the double received the DELETE of that
//!    assignment.
//! 2. How long from a sign-in of a watched emergency account appearing in the sign-in logs to
//!    its alert leaving Portcullis: `SIGNINS` (default 15) sign-ins added one by one, 5 to 9 s
//!    apart (so each poll finds at most one, and no alert is folded into a summary: the
//!    aggregation window is set to 1 s), measured to the moment an alert webhook (in this
//!    process) received the alert naming it. The target is polled on its reconcile interval,
//!    set to its minimum, 5 s, so the poll's wait is most of the figure.
//!
//! The server runs in this process on its embedded SQLite (durable audit). Service accounts
//! stand in for people (creating people would hash their passwords first).
//!
//! Run: `cargo bench -p portcullis-server --bench msgraph`.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis_core::api::{
    BindRoleRequest, CreateAssignmentRequest, CreateRoleRequest, CreateServiceAccountRequest,
    CreateTargetRequest, MsGraphSettings,
};
use portcullis_server::graph_double::{AppCredential, GraphDouble};
use time::OffsetDateTime;

const TENANT: &str = "8f0e8b5c-4a3c-4c8e-9d55-2f1a2b3c4d5e";
const CLIENT: &str = "a1b2c3d4-0000-4000-8000-000000000001";
const SECRET: &str = "bench-app-secret";
const GA: &str = "62e90394-69f5-4237-9190-012177145e10";

fn us(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

fn report(what: &str, mut ms: Vec<f64>, expected: usize) {
    if ms.is_empty() {
        println!("{what}: none of {expected} seen");
        return;
    }
    ms.sort_by(f64::total_cmp);
    let q = |p: f64| ms[((ms.len() as f64 * p) as usize).min(ms.len() - 1)];
    println!(
        "{what}: {} of {expected} seen; p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        ms.len(),
        q(0.5),
        q(0.99),
        ms[ms.len() - 1]
    );
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn target(
    g: &GraphDouble,
    name: &str,
    interval: &str,
    emergency: Vec<String>,
) -> CreateTargetRequest {
    CreateTargetRequest {
        name: name.into(),
        kind: "msgraph".into(),
        url: g.base.clone(),
        observe_url: None,
        login: Some("{user}@contoso.onmicrosoft.com".into()),
        secret: Some(SECRET.into()),
        secret_env: None,
        drift: None,
        reconcile_interval: Some(interval.into()),
        ssh: None,
        msgraph: Some(MsGraphSettings {
            tenant_id: TENANT.into(),
            client_id: CLIENT.into(),
            login_base: Some(g.base.clone()),
            emergency_accounts: emergency,
        }),
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        revocation(env("GRANTS", 500)).await;
        sign_in_alerts(env("SIGNINS", 15)).await;
    });
}

async fn double(permissions: &[&str]) -> GraphDouble {
    GraphDouble::start(
        TENANT,
        AppCredential {
            client_id: CLIENT.into(),
            client_secret: Some(SECRET.into()),
            ..AppCredential::default()
        },
        permissions,
    )
    .await
}

async fn revocation(n: usize) {
    let g = double(&["RoleManagement.ReadWrite.Directory"]).await;
    // Instants of the double's records, as wall-clock microseconds.
    let (origin_instant, origin_wall) = (Instant::now(), us(OffsetDateTime::now_utc()));
    let wall = |i: Instant| origin_wall + i.duration_since(origin_instant).as_micros() as i64;
    let running = support::start(None).await;
    let admin = &running.admin;
    admin
        .create_target(&target(&g, "bench-entra", "1h", Vec::new()))
        .await
        .expect("target");
    admin
        .create_role(&CreateRoleRequest {
            slug: "bench-admin".into(),
            display_name: None,
            description: String::new(),
            permissions: vec!["target:bench-entra.admin".into()],
        })
        .await
        .expect("role");
    admin
        .bind_role(
            "bench-entra",
            "bench-admin",
            &BindRoleRequest {
                grants: vec![GA.into()],
                mode: None,
                ssh: None,
            },
        )
        .await
        .expect("bind");
    let names: Vec<String> = (0..n).map(|i| format!("sa{i:04}")).collect();
    let mut oid_of: HashMap<String, String> = HashMap::new();
    for name in &names {
        oid_of.insert(
            g.add_user(&format!("{name}@contoso.onmicrosoft.com")),
            name.clone(),
        );
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
    let first_end = OffsetDateTime::now_utc() + time::Duration::seconds(20 + n as i64 / 25);
    let spread = 60_000_000 / n as i64;
    let mut end_of: HashMap<String, i64> = HashMap::new();
    for (i, name) in names.iter().enumerate() {
        let end = first_end + time::Duration::microseconds(spread * i as i64);
        admin
            .create_assignment(&CreateAssignmentRequest {
                principal: format!("service_account:{name}"),
                role: "bench-admin".into(),
                scope: Some("/targets/bench-entra".into()),
                kind: Some("active".into()),
                duration_seconds: None,
                ends_at: Some(
                    end.format(&time::format_description::well_known::Rfc3339)
                        .expect("rfc3339"),
                ),
            })
            .await
            .expect("assignment");
        end_of.insert(name.clone(), us(end));
    }
    // Every assignment made before the first end; then each DELETE's arrival.
    let mut ids: HashMap<String, String> = HashMap::new();
    while OffsetDateTime::now_utc() < first_end && ids.len() < n {
        for a in g.assignments() {
            if let Some(name) = oid_of.get(&a.principal_id) {
                ids.insert(a.id, name.clone());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let granted = ids.len();
    let deadline = first_end + time::Duration::seconds(90);
    while OffsetDateTime::now_utc() < deadline && !g.assignments().is_empty() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut late = Vec::new();
    for r in g.requests() {
        if r.method != "DELETE" || r.status != 204 {
            continue;
        }
        let id = r.path.rsplit('/').next().unwrap_or_default();
        if let Some(name) = ids.get(id) {
            late.push((wall(r.at) - end_of[name]) as f64 / 1000.0);
        }
    }
    running.stop().await;
    println!(
        "msgraph revocation: {n} assignments (made before the first end: {granted}), ends spread over 60 s"
    );
    report("grant end -> DELETE received by Graph", late, n);
}

async fn sign_in_alerts(n: usize) {
    let g = double(&[
        "RoleManagement.ReadWrite.Directory",
        "AuditLog.Read.All",
        "Policy.Read.All",
        "Directory.Read.All",
    ])
    .await;
    let bg: Vec<String> = ["bg1", "bg2"]
        .iter()
        .map(|u| format!("{u}@contoso.onmicrosoft.com"))
        .collect();
    for u in &bg {
        let id = g.add_user(u);
        g.add_assignment_in_portal(&id, GA, "/");
    }
    // The alert webhook: when each alert naming an address arrived.
    let arrived: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = arrived.clone();
    tokio::spawn(async move {
        let app = axum::Router::new().fallback(move |body: String| {
            let seen = seen.clone();
            async move {
                let at = us(OffsetDateTime::now_utc());
                for word in body.split(|c: char| !(c.is_ascii_digit() || c == '.')) {
                    if word.starts_with("198.51.100.") {
                        seen.lock()
                            .expect("seen")
                            .entry(word.to_owned())
                            .or_insert(at);
                    }
                }
                axum::http::StatusCode::OK
            }
        });
        let _ = axum::serve(listener, app).await;
    });
    let running = support::start_with(None, |c| c.alert_aggregation_window = "1s".into()).await;
    let admin = &running.admin;
    let channel: portcullis_core::api::CreateAlertChannelRequest = serde_json::from_value(
        serde_json::json!({"name": "soc", "kind": "webhook", "url": format!("http://127.0.0.1:{port}/hook")}),
    )
    .expect("channel request");
    admin.create_alert_channel(&channel).await.expect("channel");
    admin
        .create_target(&target(&g, "bench-tenant", "5s", bg.clone()))
        .await
        .expect("target");
    // The first poll (one interval after the target is added) records the healthy state.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let mut appeared: HashMap<String, i64> = HashMap::new();
    for i in 0..n {
        let ip = format!("198.51.100.{}", i + 1);
        appeared.insert(ip.clone(), us(OffsetDateTime::now_utc()));
        g.add_sign_in(&bg[i % 2], &ip, "Azure Portal", 0, "");
        // Sign-ins arrive at random moments against the poll.
        let pause = 5_000 + (rand::random::<u64>() % 4_000);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    tokio::time::sleep(Duration::from_secs(15)).await;
    running.stop().await;
    let arrived = arrived.lock().expect("seen").clone();
    println!("msgraph sign-in watch: {n} sign-ins of emergency accounts, polled every 5 s");
    report(
        "sign-in record appears -> alert received by the webhook",
        appeared
            .iter()
            .filter_map(|(ip, t)| arrived.get(ip).map(|a| (a - t) as f64 / 1000.0))
            .collect(),
        n,
    );
}
