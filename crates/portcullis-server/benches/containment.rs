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

use portcullis_core::api::{ContainRequest, CreateAssignmentRequest};
use support::targets::{Fixture, report, us};
use time::OffsetDateTime;

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
        let Some(f) = Fixture::new(n).await else {
            println!("containment: skipped (PORTCULLIS_TEST_DATABASE_URL is not set)");
            return;
        };
        let admin = &f.running.admin;
        // Grants for a day, written at once; then wait until both targets hold every one.
        let mut hook_grant: HashMap<String, String> = HashMap::new();
        for name in &f.names {
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
        let ready = OffsetDateTime::now_utc() + time::Duration::seconds(60);
        while f.members().await.len() < n && OffsetDateTime::now_utc() < ready {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Contain each in turn; a poller notes when each membership leaves PostgreSQL.
        let called: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
        let gone: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let poller = {
            let (called, gone, stop) = (called.clone(), gone.clone(), stop.clone());
            let (db, reader) = (f.db.clone(), f.reader.clone());
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
        for name in &f.names {
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
            && (gone.lock().expect("gone").len() < n || f.revoked_at.lock().expect("seen").len() < n)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = poller.await;
        let called = called.lock().expect("called").clone();
        let gone = gone.lock().expect("gone").clone();
        let hooks = f.revoked_at.lock().expect("seen").clone();
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
            f.names
                .iter()
                .filter_map(|name| {
                    let (g, h) = (gone.get(name)?, hook_at.get(name)?);
                    Some((g.max(h) - called[name]) as f64 / 1000.0)
                })
                .collect(),
            n,
        );
        f.finish().await;
    });
}
