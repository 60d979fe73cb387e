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
use std::time::Duration;

use portcullis_core::api::CreateAssignmentRequest;
use support::targets::{Fixture, report, us};
use time::OffsetDateTime;

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
        let Some(f) = Fixture::new(n).await else {
            println!("target_revocation: skipped (PORTCULLIS_TEST_DATABASE_URL is not set)");
            return;
        };
        let admin = &f.running.admin;
        // Ends spread over one minute from 20 s after the last assignment is written.
        let first_end = OffsetDateTime::now_utc() + time::Duration::seconds(20 + n as i64 / 50);
        let spread = 60_000_000 / n as i64;
        let mut ends: HashMap<String, i64> = HashMap::new();
        for (i, name) in f.names.iter().enumerate() {
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
        let login_end: HashMap<String, i64> = f
            .names
            .iter()
            .enumerate()
            .map(|(i, name)| (format!("pct_{name}"), us(first_end) + spread * i as i64))
            .collect();
        // Poll the memberships until every grant has ended and left (or 30 s after the last end).
        let mut gone_at: HashMap<String, i64> = HashMap::new();
        let mut granted_seen = false;
        let deadline = first_end + time::Duration::seconds(90);
        while OffsetDateTime::now_utc() < deadline && gone_at.len() < n {
            let members = f.members().await;
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
        println!("target_revocation: {n} grants per target, ends spread over 60 s (granted in PostgreSQL before the first end: {granted_seen})");
        report(
            "PostgreSQL (REVOKE visible in pg_auth_members), late after the grant's end",
            gone_at.iter().map(|(l, at)| (at - login_end[l]) as f64 / 1000.0).collect(),
            n,
        );
        let hooks = f.revoked_at.lock().expect("seen").clone();
        report(
            "webhook (revoke received), late after the grant's end",
            hooks.iter().filter_map(|(id, at)| ends.get(id).map(|e| (at - e) as f64 / 1000.0)).collect(),
            n,
        );
        f.finish().await;
    });
}
