//! Expiry lateness: 10,000 grants that end within the same minute, ended by the real expiry
//! worker (`expiry::run`, which sleeps until the next deadline). For each grant, lateness is
//! the time its `request.expired` event was written in the transaction that ends it, minus
//! the grant's end. DESIGN.md's target: p99 under one second.
//!
//! Run: `cargo bench -p portcullis-server --bench expiry_lateness`
//! (also on PostgreSQL when `PORTCULLIS_TEST_DATABASE_URL` is set).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_store::testing::{fresh_postgres_url, sqlite_url};
use portcullis_store::{
    AuditFilter, Change, NewAssignment, NewPrincipal, NewRequest, Store, StoreOptions,
};

const GRANTS: usize = 10_000;
/// The grants' ends are spread evenly over this window, which starts `LEAD` from now.
const WINDOW_US: i64 = 60_000_000;
const LEAD_US: i64 = 5_000_000;

fn now_us() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64
}

/// Active grants of one user, ending at `start + i * WINDOW / GRANTS`; their ends by id.
async fn seed(store: &Store) -> HashMap<String, i64> {
    let t = now_us();
    let start = t + LEAD_US;
    let mut ends = HashMap::new();
    let mut changes = vec![
        Change::CreatePrincipal(NewPrincipal {
            id: "u_bench".into(),
            name: "bench".into(),
            kind: portcullis_core::principal::PrincipalKind::User,
            display_name: "Bench".into(),
            email: None,
            phone: None,
            guest_organisation: None,
            role_assignable: false,
            emergency: false,
            privileged: true,
            first_admin: false,
            created_at_us: t,
        }),
        Change::CreateAssignment(NewAssignment {
            id: "a_bench".into(),
            principal_id: "u_bench".into(),
            role: "audit-reader".into(),
            scope: "/".into(),
            kind: portcullis_core::roles::AssignmentKind::Eligible,
            starts_at_us: t,
            ends_at_us: None,
            created_by: "bench".into(),
            created_at_us: t,
        }),
    ];
    for i in 0..GRANTS {
        let id = format!("r_{i}");
        let end = start + (i as i64) * WINDOW_US / GRANTS as i64;
        ends.insert(id.clone(), end);
        changes.push(Change::CreateRequest(NewRequest {
            id,
            principal_id: "u_bench".into(),
            role: "audit-reader".into(),
            scope: "/".into(),
            eligibility_id: "a_bench".into(),
            state: portcullis_core::activation::RequestState::Active,
            duration_seconds: 3600,
            justification: Some("bench".into()),
            ticket: None,
            approvals_required: 0,
            created_at_us: t,
            timeout_at_us: None,
            activated_at_us: Some(t),
            ends_at_us: Some(end),
            starts_at_us: None,
            extends_id: None,
        }));
    }
    store
        .write(Change::Many(changes), vec![])
        .await
        .expect("seed");
    ends
}

async fn expired_events(store: &Store) -> Vec<portcullis_core::audit::AuditEvent> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_events(&AuditFilter {
                action: Some("request.expired".into()),
                after_seq: after,
                limit: 5000,
                ..Default::default()
            })
            .await
            .expect("events");
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        out.extend(page);
    }
    out
}

async fn run(name: &str, url: String) {
    let store = Store::open(&url, StoreOptions::default())
        .await
        .expect("store");
    let ends = seed(&store).await;
    let wake = Arc::new(tokio::sync::Notify::new());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(portcullis_server::workers::expiry::run(
        store.clone(),
        wake.clone(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    // A worker started before the grants existed would be woken by their creator; this one
    // starts after, as after a restart, and finds the first deadline itself.
    let started = Instant::now();
    let mut events = Vec::new();
    while started.elapsed() < Duration::from_secs(180) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        events = expired_events(&store).await;
        if events.len() >= GRANTS {
            break;
        }
    }
    let _ = stop_tx.send(());
    let _ = worker.await;
    assert_eq!(events.len(), GRANTS, "every grant ended exactly once");
    let mut late_ms: Vec<f64> = events
        .iter()
        .map(|e| {
            let id = e.details["request_id"].as_str().expect("request id");
            (e.time_us - ends[id]) as f64 / 1000.0
        })
        .collect();
    assert!(
        late_ms.iter().all(|l| *l >= 0.0),
        "no grant ended before its time"
    );
    late_ms.sort_by(f64::total_cmp);
    let p = |q: f64| late_ms[((late_ms.len() as f64 * q) as usize).min(late_ms.len() - 1)];
    println!(
        "{name}: {GRANTS} grants ending within {} s: lateness p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        WINDOW_US / 1_000_000,
        p(0.5),
        p(0.99),
        late_ms[late_ms.len() - 1]
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tmp");
        run("SQLite", sqlite_url(dir.path())).await;
        match fresh_postgres_url().await {
            Some(url) => run("PostgreSQL", url).await,
            None => println!("PostgreSQL: skipped (PORTCULLIS_TEST_DATABASE_URL is not set)"),
        }
    });
}
