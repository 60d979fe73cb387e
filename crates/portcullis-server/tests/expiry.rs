//! The expiry worker's rounds against a real store, as several replicas would run them: two
//! `Store`s on one database (one SQLite file, or one PostgreSQL database) acting on the same
//! deadlines at the same moment. Each deadline must be acted on exactly once, with exactly one
//! audit event, and pending requests past their approval timeout must time out.

use portcullis_server::workers::expiry::expire_due;
use portcullis_store::testing::{fresh_postgres_url, sqlite_url};
use portcullis_store::{
    AuditFilter, Change, MasterKey, NewAssignment, NewPrincipal, NewRequest, Store, StoreOptions,
};

fn now_us() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64
}

async fn seed(store: &Store, grants: usize, pending: usize) {
    let t = now_us();
    let mut changes = vec![
        Change::CreatePrincipal(NewPrincipal {
            id: "u_ivy".into(),
            name: "ivy".into(),
            kind: portcullis_core::principal::PrincipalKind::User,
            display_name: "Ivy".into(),
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
            id: "a_ivy".into(),
            principal_id: "u_ivy".into(),
            role: "audit-reader".into(),
            scope: "/".into(),
            kind: portcullis_core::roles::AssignmentKind::Eligible,
            starts_at_us: t,
            ends_at_us: None,
            created_by: "test".into(),
            created_at_us: t,
        }),
    ];
    for i in 0..grants + pending {
        let active = i < grants;
        changes.push(Change::CreateRequest(NewRequest {
            id: format!("r_{i}"),
            principal_id: "u_ivy".into(),
            role: "audit-reader".into(),
            scope: "/".into(),
            eligibility_id: "a_ivy".into(),
            state: if active {
                portcullis_core::activation::RequestState::Active
            } else {
                portcullis_core::activation::RequestState::PendingApproval
            },
            duration_seconds: 60,
            justification: Some("test".into()),
            ticket: None,
            approvals_required: 1,
            created_at_us: t,
            // Deadlines just behind us: due at once.
            timeout_at_us: (!active).then_some(t + 20_000),
            activated_at_us: active.then_some(t),
            ends_at_us: active.then_some(t + 20_000),
            starts_at_us: None,
            extends_id: None,
        }));
    }
    store
        .write(Change::Many(changes), vec![])
        .await
        .expect("seed");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
}

async fn count(store: &Store, action: &str) -> usize {
    store
        .list_events(&AuditFilter {
            action: Some(action.into()),
            limit: 10_000,
            ..Default::default()
        })
        .await
        .expect("events")
        .len()
}

async fn two_replicas_expire_each_grant_once(url: String) {
    let a = Store::open(&url, StoreOptions::default())
        .await
        .expect("store a");
    let b = Store::open(&url, StoreOptions::default())
        .await
        .expect("store b");
    // Each replica loads the tenant as a server does (its key signs its checkpoints).
    let master = MasterKey::from_bytes(&[3u8; 32]).expect("key");
    for s in [&a, &b] {
        s.initialise_tenant(&master, time::OffsetDateTime::now_utc())
            .await
            .expect("tenant");
    }
    seed(&a, 200, 20).await;
    // Both replicas wake for the same deadlines at the same moment, twice each.
    let (ra, rb, rc, rd) = tokio::join!(
        expire_due(&a),
        expire_due(&b),
        expire_due(&a),
        expire_due(&b)
    );
    let acted = ra.expect("a") + rb.expect("b") + rc.expect("c") + rd.expect("d");
    assert_eq!(
        acted, 220,
        "each deadline acted on exactly once across replicas"
    );
    assert_eq!(count(&a, "request.expired").await, 200);
    assert_eq!(count(&a, "request.timed_out").await, 20);
    for (id, want) in [
        ("r_0", "expired"),
        ("r_199", "expired"),
        ("r_200", "timed_out"),
        ("r_219", "timed_out"),
    ] {
        let r = a.request(id).await.expect("read").expect("request");
        assert_eq!(r.state.as_str(), want, "{id}");
        assert!(
            r.closed_at_us.expect("closed") >= r.ends_at_us.or(r.timeout_at_us).expect("deadline")
        );
    }
    assert!(a.due(now_us(), 10).await.expect("due").is_empty());
    assert_eq!(a.next_deadline().await.expect("next"), None);
    // One notification per closed request went to the outbox with it.
    assert_eq!(a.outbox(1000).await.expect("outbox").len(), 220);
    let report = a.verify_chain().await.expect("verify");
    assert!(report.is_ok(), "the chain stays intact: {report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_expire_each_grant_once_sqlite() {
    let dir = tempfile::tempdir().expect("tmp");
    two_replicas_expire_each_grant_once(sqlite_url(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_expire_each_grant_once_postgres() {
    let Some(url) = fresh_postgres_url().await else {
        eprintln!("skipped: PORTCULLIS_TEST_DATABASE_URL is not set");
        return;
    };
    two_replicas_expire_each_grant_once(url).await;
}
