//! Password sign-ins per second against the running server, as a ratio to the Argon2id limit
//! (cores ÷ time of one hash at the configured parameters), both measured in the same run.
//!
//! Run: `cargo bench -p portcullis-server --bench password_signin`
//! The load generator (tokio tasks with reqwest over loopback keep-alive connections) runs on
//! the same 2-core machine as the server, as DESIGN.md's targets assume.

mod support;

use std::time::{Duration, Instant};

use portcullis_core::api::{CreateUserRequest, PasswordSignInRequest};
use portcullis_server::services::passwords::Passwords;
use secrecy::SecretString;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // One hash, measured alone (the median of several).
        let pw = Passwords::new().expect("passwords");
        let secret = SecretString::from("harbor-violet-mango-81".to_owned());
        let mut samples = Vec::new();
        for _ in 0..15 {
            let t = Instant::now();
            pw.hash(&secret).await.expect("hash");
            samples.push(t.elapsed());
        }
        samples.sort();
        let one = samples[samples.len() / 2];
        let limit = cores as f64 / one.as_secs_f64();
        // The limit as measured throughput too: `cores` hashes at a time for 5 s, no server.
        let t = Instant::now();
        let mut hashers = Vec::new();
        for _ in 0..cores {
            let pw = pw.clone();
            let secret = secret.clone();
            hashers.push(tokio::spawn(async move {
                let mut n = 0u32;
                while t.elapsed() < Duration::from_secs(5) {
                    pw.hash(&secret).await.expect("hash");
                    n += 1;
                }
                n
            }));
        }
        let mut hashed = 0u32;
        for h in hashers {
            hashed += h.await.expect("join");
        }
        let raw = f64::from(hashed) / t.elapsed().as_secs_f64();

        let running = support::start(None).await;
        let (base, admin) = (running.base.clone(), &running.admin);
        // One account and one loopback address per load-generator task: a sign-in reserves
        // an attempt on its address's throttle counter until it succeeds, so eight endless
        // streams from one address would be paced by the throttle, not by Argon2.
        let concurrency = 8;
        for i in 0..concurrency {
            admin
                .create_user(&CreateUserRequest {
                    name: format!("bench-{i}"),
                    display_name: "Bench".into(),
                    email: None,
                    phone: None,
                    guest_organisation: None,
                    privileged: false,
                    password: "harbor-violet-mango-81".into(),
                })
                .await
                .expect("user");
        }

        let run_for = Duration::from_secs(15);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..concurrency {
            let http = reqwest::Client::builder()
                .local_address(std::net::IpAddr::from([127, 0, 0, 20 + i as u8]))
                .build()
                .expect("client");
            let (url, name) = (format!("{base}/api/v1/signin"), format!("bench-{i}"));
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                while start.elapsed() < run_for {
                    let t = Instant::now();
                    let r = http
                        .post(&url)
                        .json(&PasswordSignInRequest { username: name.clone(), password: "harbor-violet-mango-81".into() })
                        .send()
                        .await
                        .expect("sign-in");
                    assert_eq!(r.status(), 200, "{:?}", r.text().await);
                    let r: portcullis_core::api::SignInResponse = r.json().await.expect("json");
                    assert_eq!(r.status, "signed_in");
                    lat.push(t.elapsed());
                }
                lat
            }));
        }
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await.expect("join"));
        }
        let secs = start.elapsed().as_secs_f64();
        lat.sort();
        let rate = lat.len() as f64 / secs;
        let p = |q: f64| support::percentile_ms(&lat, q);
        println!(
            "cores={cores} one_hash_ms={:.1} limit=cores/one_hash={limit:.1}/s raw_parallel_hashing={raw:.1}/s",
            one.as_secs_f64() * 1000.0
        );
        println!("ratio to raw parallel hashing {:.2}", rate / raw);
        println!(
            "password sign-ins: {} in {secs:.1} s = {rate:.1}/s, ratio to limit {:.2}, p50 {:.0} ms, p99 {:.0} ms (concurrency {concurrency})",
            lat.len(),
            rate / limit,
            p(0.5),
            p(0.99)
        );
    });
}
