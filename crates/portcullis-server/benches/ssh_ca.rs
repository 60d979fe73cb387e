//! SSH certificates of an `ssh-ca` target over HTTP (issue 18), on the embedded SQLite:
//!
//! 1. Certificates signed per second: `SIGNERS` people (8), each signed in with password + TOTP
//!    on its own keep-alive client and holding one active grant of a custom role bound to the
//!    target, sign their fixed Ed25519 public key again and again for `SIGN_SECS` (10) seconds
//!    (`POST /api/v1/targets/{name}/ssh/sign`: one Ed25519 signature, the certificate row and
//!    its audit event written in one durable transaction). Certificates per second, p50, p99.
//! 2. Deactivation → KRL: `KRL_ROUNDS` (200) times one person activates the role, signs a
//!    certificate and deactivates the grant; from the moment the deactivation is sent, the
//!    public `GET /api/v1/targets/{name}/ssh/krl` is polled every 5 ms (each answer checked
//!    with `krl_version`) until it lists the certificate's serial. p50, p99 and max of that
//!    time, and of the deactivation call alone.
//!
//! After part 1 the KRL (empty, built from the store per request) is fetched 50 times with
//! every certificate of part 1 still live, and its p50 and p99 printed.
//!
//! Each part runs on a fresh server (the certificates of part 1 stay out of part 2's KRL). The
//! load generator runs on the same 2 cores as the server.
//!
//! Run: `cargo bench -p portcullis-server --bench ssh_ca`
//! (`SIGNERS`, `SIGN_SECS` and `KRL_ROUNDS` change 8, 10 and 200).

mod support;

use std::time::{Duration, Instant};

use portcullis_client::Client;
use portcullis_core::api::{
    BindRoleRequest, CreateActivationRequest, CreateAssignmentRequest, CreateRoleRequest,
    CreateTargetRequest, DecisionRequest, SignSshRequest,
};
use support::{Running, percentile_ms};

const TARGET: &str = "bench-fleet";
const ROLE: &str = "bench-ssh";
const USER_PW: &str = "harbor-violet-mango-81-quartz";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The ssh-ca target and the custom role bound to it (grants: the principal `deploy`).
async fn ssh_target(running: &Running) {
    let admin = &running.admin;
    admin
        .create_target(&CreateTargetRequest {
            name: TARGET.into(),
            kind: "ssh-ca".into(),
            url: String::new(),
            observe_url: None,
            login: None,
            secret: None,
            secret_env: None,
            drift: None,
            reconcile_interval: Some("1h".into()),
            ssh: None,
            msgraph: None,
        })
        .await
        .expect("ssh-ca target");
    admin
        .create_role(&CreateRoleRequest {
            slug: ROLE.into(),
            display_name: None,
            description: "logs in to the fleet".into(),
            permissions: vec![format!("target:{TARGET}.login")],
        })
        .await
        .expect("role");
    admin
        .bind_role(
            TARGET,
            ROLE,
            &BindRoleRequest {
                grants: vec!["deploy".into()],
                mode: None,
                ssh: None,
            },
        )
        .await
        .expect("bind");
}

/// A person eligible for [`ROLE`] at `/targets/TARGET`, signed in with MFA.
async fn eligible_person(running: &Running, user: &str) -> Client {
    let c = support::person(running, user, USER_PW).await;
    running
        .admin
        .create_assignment(&CreateAssignmentRequest {
            principal: user.into(),
            role: ROLE.into(),
            scope: Some(format!("/targets/{TARGET}")),
            kind: Some("eligible".into()),
            duration_seconds: None,
            ends_at: None,
        })
        .await
        .expect("eligible at the target");
    c
}

/// `c` activates [`ROLE`] at the target for an hour; the request's id.
async fn activate(c: &Client) -> String {
    let r = c
        .request_activation(&CreateActivationRequest {
            role: ROLE.into(),
            scope: Some(format!("/targets/{TARGET}")),
            duration_seconds: 3600,
            justification: Some("benchmark".into()),
            ticket: None,
            starts_at: None,
        })
        .await
        .expect("activate");
    assert_eq!(r.state, "active");
    r.id
}

/// A fixed Ed25519 public key (OpenSSH line) for person `i`.
fn public_key(i: usize) -> String {
    let mut seed = [7u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_be_bytes());
    let pair = ssh_key::private::Ed25519Keypair::from_seed(&seed);
    ssh_key::PublicKey::from(pair.public)
        .to_openssh()
        .expect("openssh")
}

fn sign_request(public_key: &str) -> SignSshRequest {
    SignSshRequest {
        public_key: public_key.into(),
        role: None,
    }
}

/// Whether the KRL lists `serial` (serials are big-endian u64 in the certificate sections).
fn lists(krl: &[u8], serial: u64) -> bool {
    portcullis_core::ssh::krl_version(krl).expect("a valid KRL");
    krl.windows(8).any(|w| w == serial.to_be_bytes())
}

async fn signing(signers: usize, run_for: Duration) {
    let running = support::start(None).await;
    ssh_target(&running).await;
    let mut states = Vec::new();
    for i in 0..signers {
        let c = eligible_person(&running, &format!("bench-signer-{i}")).await;
        activate(&c).await;
        let key = public_key(i);
        let v = c.ssh_sign(TARGET, &sign_request(&key)).await.expect("sign");
        assert_eq!(v.principals, vec!["deploy".to_owned()]);
        states.push((c, key));
    }
    let (rate, p50, p99, n) =
        support::load_with_state(states, run_for, |(c, key): (Client, String)| async move {
            let v = c.ssh_sign(TARGET, &sign_request(&key)).await.expect("sign");
            assert!(v.serial > 0);
            (c, key)
        })
        .await;
    // The KRL is built from the store per request: its cost with every certificate above live.
    let mut krl = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let b = running.anon.ssh_krl(TARGET).await.expect("krl");
        krl.push(t.elapsed());
        portcullis_core::ssh::krl_version(&b).expect("a valid KRL");
    }
    krl.sort();
    running.stop().await;
    println!(
        "sign: {n} certificates in {:.0} s, {rate:.0}/s, p50 {p50:.1} ms, p99 {p99:.1} ms (concurrency {signers})",
        run_for.as_secs_f64()
    );
    println!(
        "KRL fetch with {} live certificates: p50 {:.1} ms, p99 {:.1} ms",
        n + signers,
        percentile_ms(&krl, 0.5),
        percentile_ms(&krl, 0.99)
    );
}

async fn deactivation_to_krl(rounds: usize) {
    let running = support::start(None).await;
    ssh_target(&running).await;
    let c = eligible_person(&running, "bench-revoked").await;
    let key = public_key(1000);
    let anon = running.anon.clone();
    let mut listed = Vec::new();
    let mut deactivate = Vec::new();
    let mut polls = 0usize;
    for _ in 0..rounds {
        let id = activate(&c).await;
        let v = c.ssh_sign(TARGET, &sign_request(&key)).await.expect("sign");
        assert!(!lists(&anon.ssh_krl(TARGET).await.expect("krl"), v.serial));
        let t0 = Instant::now();
        let call = {
            let c = c.clone();
            tokio::spawn(async move {
                c.deactivate(&id, &DecisionRequest { reason: None })
                    .await
                    .expect("deactivate");
                t0.elapsed()
            })
        };
        loop {
            polls += 1;
            if lists(&anon.ssh_krl(TARGET).await.expect("krl"), v.serial) {
                listed.push(t0.elapsed());
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "serial never listed"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        deactivate.push(call.await.expect("join"));
    }
    let krl_bytes = anon.ssh_krl(TARGET).await.expect("krl").len();
    running.stop().await;
    listed.sort();
    deactivate.sort();
    let p = |l: &[Duration], q: f64| percentile_ms(l, q);
    println!(
        "deactivation -> serial in the KRL: {rounds} rounds, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({polls} KRL fetches, final KRL {krl_bytes} bytes)",
        p(&listed, 0.5),
        p(&listed, 0.99),
        p(&listed, 1.0)
    );
    println!(
        "deactivation call alone: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        p(&deactivate, 0.5),
        p(&deactivate, 0.99),
        p(&deactivate, 1.0)
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let signers = env("SIGNERS", 8);
    let secs = env("SIGN_SECS", 10);
    let rounds = env("KRL_ROUNDS", 200);
    rt.block_on(async move {
        signing(signers, Duration::from_secs(secs as u64)).await;
        deactivation_to_krl(rounds).await;
    });
}
