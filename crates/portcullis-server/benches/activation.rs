//! Just-in-time activation without approval over HTTP: latency of `POST /api/v1/requests`
//! (request → active, with step-up check, justification, audit event and notification written
//! in one durable transaction) and activations per second, on SQLite and on PostgreSQL.
//!
//! Run: `cargo bench -p portcullis-server --bench activation`
//! (PostgreSQL too when `PORTCULLIS_TEST_DATABASE_URL` is set).
//!
//! `USERS` people, each signed in with MFA over its own keep-alive client and eligible for
//! `ROLES` custom roles (no approval), activate all their roles at once (timed), then
//! deactivate them all (not timed), for `ROUNDS` rounds. Activations per second are counted over
//! the timed phases only. The load generator runs on the same 2-core machine as the server.

mod support;

use std::time::{Duration, Instant};

use portcullis_client::Client;
use portcullis_core::api::{
    CreateActivationRequest, CreateAssignmentRequest, CreateRoleRequest, CreateUserRequest,
    DecisionRequest, PasswordSignInRequest, TotpConfirmRequest, TotpEnrolRequest,
};
use portcullis_core::totp;
use secrecy::SecretString;
use support::{code, percentile_ms, sign_in};

const USERS: usize = 16;
const ROLES: usize = 20;
const ROUNDS: usize = 8;
const USER_PW: &str = "harbor-violet-mango-81-quartz";

async fn run(name: &str, database_url: Option<String>) {
    let running = support::start(database_url).await;
    let (base, admin, anon) = (running.base.clone(), &running.admin, &running.anon);
    for r in 0..ROLES {
        admin
            .create_role(&CreateRoleRequest {
                slug: format!("bench-role-{r}"),
                display_name: None,
                description: "benchmark role".into(),
                permissions: vec![format!("app:bench.role{r}")],
            })
            .await
            .expect("role");
    }
    let mut people = Vec::new();
    for u in 0..USERS {
        let user = format!("bench-user-{u}");
        admin
            .create_user(&CreateUserRequest {
                name: user.clone(),
                display_name: user.clone(),
                email: None,
                phone: None,
                guest_organisation: None,
                privileged: true,
                password: USER_PW.into(),
            })
            .await
            .expect("user");
        for r in 0..ROLES {
            admin
                .create_assignment(&CreateAssignmentRequest {
                    principal: user.clone(),
                    role: format!("bench-role-{r}"),
                    scope: None,
                    kind: Some("eligible".into()),
                    duration_seconds: Some(30 * 86_400),
                    ends_at: None,
                })
                .await
                .expect("eligible");
        }
        // Registration-only session, TOTP enrolment, then a full MFA sign-in on its own client.
        let r = anon
            .signin_password(&PasswordSignInRequest {
                username: user.clone(),
                password: USER_PW.into(),
            })
            .await
            .expect("registration sign-in");
        let reg = anon.with_token(Some(SecretString::from(r.session.expect("session").token)));
        let enrol = reg
            .mfa_enrol_totp(&TotpEnrolRequest {
                name: "phone".into(),
            })
            .await
            .expect("enrol");
        let secret = totp::base32_decode(&enrol.secret).expect("b32");
        reg.mfa_confirm_totp(
            &enrol.factor_id,
            &TotpConfirmRequest {
                code: code(&secret, 0),
            },
        )
        .await
        .expect("confirm");
        let own = Client::new(&base, None).expect("client");
        people.push(sign_in(&own, &user, USER_PW, &secret).await);
    }

    let mut latencies = Vec::new();
    let mut timed = Duration::ZERO;
    for _ in 0..ROUNDS {
        let phase = Instant::now();
        let mut tasks = Vec::new();
        for person in &people {
            let person = person.clone();
            tasks.push(tokio::spawn(async move {
                let roles: Vec<usize> = (0..ROLES).collect();
                let mut out = Vec::new();
                let mut calls = Vec::new();
                for r in roles {
                    let req = CreateActivationRequest {
                        role: format!("bench-role-{r}"),
                        scope: None,
                        duration_seconds: 3600,
                        justification: Some("benchmark".into()),
                        ticket: None,
                        starts_at: None,
                    };
                    let t = Instant::now();
                    let v = person.request_activation(&req).await.expect("activation");
                    calls.push(t.elapsed());
                    assert_eq!(v.state, "active");
                    out.push(v.id);
                }
                (out, calls)
            }));
        }
        let mut ids = Vec::new();
        for t in tasks {
            let (i, l) = t.await.expect("join");
            ids.push(i);
            latencies.extend(l);
        }
        timed += phase.elapsed();
        let mut tasks = Vec::new();
        for (person, ids) in people.iter().zip(ids) {
            let person = person.clone();
            tasks.push(tokio::spawn(async move {
                for id in ids {
                    person
                        .deactivate(&id, &DecisionRequest { reason: None })
                        .await
                        .expect("deactivate");
                }
            }));
        }
        for t in tasks {
            t.await.expect("join");
        }
    }
    running.stop().await;
    latencies.sort();
    let p = |q: f64| percentile_ms(&latencies, q);
    println!(
        "{name}: {} activations, {:.0}/s over the timed phases, p50 {:.1} ms, p99 {:.1} ms (concurrency {USERS})",
        latencies.len(),
        latencies.len() as f64 / timed.as_secs_f64(),
        p(0.5),
        p(0.99)
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        run("SQLite", None).await;
        match portcullis_store::testing::fresh_postgres_url().await {
            Some(url) => run("PostgreSQL", Some(url)).await,
            None => println!("PostgreSQL: skipped (PORTCULLIS_TEST_DATABASE_URL is not set)"),
        }
    });
}
