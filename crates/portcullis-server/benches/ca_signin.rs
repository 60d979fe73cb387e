//! Password sign-ins per second with 200 enabled conditional-access policies, as a ratio to
//! the same sign-ins with none, measured in the same run on the same server.
//!
//! Run: `cargo bench -p portcullis-server --bench ca_signin`
//!
//! The user is in 50 groups; the 200 policies name those groups, ten named locations (IPv4
//! and IPv6), applications and sign-in frequencies, so every sign-in compiles nothing (the set
//! is cached per version) but evaluates all 200 and reads the user's groups and roles. Phases:
//! no policies; 200 enabled; the same 200 disabled (a drift check: evaluation still runs and
//! explains every policy, but none applies). Each phase is `PHASE` long with `CONCURRENCY`
//! sign-ins in flight over loopback keep-alive connections, on the embedded SQLite store.

mod support;

use std::time::{Duration, Instant};

use portcullis_core::api::{
    CaImportRequest, CaLocationRequest, CreateGroupRequest, CreateUserRequest, GroupMemberRequest,
};

const PHASE: Duration = Duration::from_secs(10);
const CONCURRENCY: usize = 4;
const GROUPS: usize = 50;
const POLICIES: usize = 200;
const PASSWORD: &str = "harbor-violet-mango-81";

async fn phase(base: &str) -> (f64, f64) {
    let http = reqwest::Client::new();
    let end = Instant::now() + PHASE;
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let http = http.clone();
        let url = format!("{base}/api/v1/signin");
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            let mut lat = Vec::new();
            while Instant::now() < end {
                let t = Instant::now();
                let r = http
                    .post(&url)
                    .json(&serde_json::json!({ "username": "bench-user", "password": PASSWORD }))
                    .send()
                    .await
                    .expect("signin");
                assert_eq!(r.status(), 200, "sign-in");
                lat.push(t.elapsed());
                n += 1;
            }
            (n, lat)
        }));
    }
    let started = Instant::now();
    let mut total = 0;
    let mut all = Vec::new();
    for t in tasks {
        let (n, lat) = t.await.expect("task");
        total += n;
        all.extend(lat);
    }
    all.sort();
    let rate = total as f64 / started.elapsed().as_secs_f64();
    (rate, support::percentile_ms(&all, 0.99))
}

fn policies(state: &str) -> Vec<serde_json::Value> {
    (0..POLICIES)
        .map(|i| {
            let g = format!("group:g{:02}", i % GROUPS);
            let loc = format!("site{}", i % 10);
            let name = format!("policy-{i:03}");
            match i % 5 {
                // Blocks from a place the bench never signs in from.
                0 => serde_json::json!({"name": name, "state": state,
                    "conditions": {"principals": {"include": [g]}, "locations": {"include": [loc]}},
                    "grant": {"block": true}}),
                // Requirements for another application.
                1 => serde_json::json!({"name": name, "state": state,
                    "conditions": {"principals": {"include": [g]}, "applications": {"include": ["cli"]}},
                    "grant": {"require": "phishing_resistant"}}),
                // Session controls that apply.
                2 => serde_json::json!({"name": name, "state": state,
                    "conditions": {"principals": {"include": [g], "exclude": ["guests"]}},
                    "session": {"sign_in_frequency_hours": 8 + (i % 7)}}),
                // Guests only, from untrusted networks.
                3 => serde_json::json!({"name": name, "state": state,
                    "conditions": {"principals": {"include": ["guests"]}, "locations": {"include": ["untrusted"]}},
                    "grant": {"require": "mfa"}}),
                // Roles the user does not hold.
                _ => serde_json::json!({"name": name, "state": state,
                    "conditions": {"principals": {"include": ["role:security-administrator"], "exclude": [g]},
                                   "locations": {"include": ["any"], "exclude": ["trusted"]}},
                    "grant": {"require": "phishing_resistant"}}),
            }
        })
        .collect()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let running = support::start(None).await;
        let admin = &running.admin;
        admin
            .create_user(&CreateUserRequest {
                name: "bench-user".into(),
                display_name: "Bench".into(),
                email: None,
                phone: None,
                guest_organisation: None,
                privileged: false,
                password: PASSWORD.into(),
            })
            .await
            .expect("user");
        for g in 0..GROUPS {
            let name = format!("g{g:02}");
            admin
                .create_group(&CreateGroupRequest {
                    name: name.clone(),
                    display_name: None,
                    role_assignable: false,
                })
                .await
                .expect("group");
            admin
                .add_group_member(
                    &name,
                    &GroupMemberRequest {
                        member: "bench-user".into(),
                    },
                )
                .await
                .expect("member");
        }
        for i in 0..10 {
            admin
                .ca_set_location(&CaLocationRequest {
                    name: format!("site{i}"),
                    cidrs: vec![format!("198.18.{i}.0/24"), format!("2001:db8:{i}::/48")],
                    trusted: i % 2 == 0,
                    force: false,
                })
                .await
                .expect("location");
        }
        let _ = phase(&running.base).await; // warm-up
        let (none, none_p99) = phase(&running.base).await;
        admin
            .ca_import(&CaImportRequest {
                policies: policies("enabled"),
                force: false,
            })
            .await
            .expect("200 enabled policies");
        let (enabled, enabled_p99) = phase(&running.base).await;
        admin
            .ca_import(&CaImportRequest {
                policies: policies("disabled"),
                force: false,
            })
            .await
            .expect("the same, disabled");
        let (disabled, disabled_p99) = phase(&running.base).await;
        println!(
            "password sign-ins, {CONCURRENCY} in flight, {}s per phase (SQLite, 2 cores):",
            PHASE.as_secs()
        );
        println!("  no policies:          {none:.1}/s, p99 {none_p99:.1} ms");
        println!("  {POLICIES} enabled policies: {enabled:.1}/s, p99 {enabled_p99:.1} ms");
        println!("  {POLICIES} disabled:         {disabled:.1}/s, p99 {disabled_p99:.1} ms");
        println!(
            "  ratio enabled / none: {:.3} (disabled / none: {:.3})",
            enabled / none,
            disabled / none
        );
        running.stop().await;
    });
}
