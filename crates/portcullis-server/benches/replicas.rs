//! Client credentials over PostgreSQL: one replica against two replicas of one tenant on one
//! database (DESIGN.md target: two replicas ≥ 1.6 × one; the store must not serialise them).
//!
//! Both replicas run in this process on their own listeners, each with its own pool and its
//! own writer; the load generator (32 keep-alive tokio tasks) is here too, and PostgreSQL on
//! the same machine. Rounds alternate: 32 tasks against replica A alone, then 16 against A
//! and 16 against B at once, `REPLICA_ROUNDS` times (default 3) of `REPLICA_SECONDS` each
//! (default 10). Every token is an audit event committed before its answer.
//!
//! Run: `PORTCULLIS_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!       cargo bench -p portcullis-server --bench replicas`

mod support;

use std::time::Duration;

use base64::Engine;
use secrecy::SecretString;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `workers` keep-alive tasks per base URL, all at once, for `run_for`: tokens per second
/// in total, p50 and p99 over all of them.
async fn tokens(
    bases: &[String],
    workers: usize,
    secret: &str,
    run_for: Duration,
) -> (f64, f64, f64, usize) {
    let mut urls = Vec::new();
    for b in bases {
        for _ in 0..workers {
            urls.push(format!("{b}/oauth2/token"));
        }
    }
    let secret = secret.to_owned();
    support::load_with_state(urls, run_for, move |url: String| {
        let secret = secret.clone();
        async move {
            support::client_credentials(&url, &secret).await;
            url
        }
    })
    .await
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rounds = env_or("REPLICA_ROUNDS", 3);
    let run_for = Duration::from_secs(env_or("REPLICA_SECONDS", 10));
    rt.block_on(async {
        let Some(url) = portcullis_store::testing::fresh_postgres_url().await else {
            println!("replicas: skipped (PORTCULLIS_TEST_DATABASE_URL is not set)");
            return;
        };
        let key = SecretString::from(base64::engine::general_purpose::STANDARD.encode([7u8; 32]));
        let a = support::start_with(Some(url.clone()), |c| c.master_key = Some(key.clone())).await;
        let b_dir = tempfile::tempdir().expect("tmp");
        let b = portcullis_server::testing::serve(portcullis_server::Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            data_dir: b_dir.path().join("data"),
            database_url: Some(SecretString::from(url)),
            master_key: Some(key),
            rate_limit_per_address: 10_000_000,
            rate_limit_per_address_burst: 10_000_000,
            rate_limit_global: 10_000_000,
            rate_limit_global_burst: 10_000_000,
            max_connections_per_address: 100_000,
            ..portcullis_server::Config::default()
        })
        .await;
        a.admin
            .create_service_account(&portcullis_core::api::CreateServiceAccountRequest {
                name: "bench-daemon".into(),
                display_name: None,
                public_key: None,
                key_id: None,
            })
            .await
            .expect("sa");
        let secret = a
            .admin
            .add_client_secret("bench-daemon")
            .await
            .expect("secret")
            .client_secret;
        // Warm both replicas' caches and pools.
        tokens(&[a.base.clone(), b.base.clone()], 16, &secret, Duration::from_secs(2)).await;
        let (mut one, mut two) = (Vec::new(), Vec::new());
        for round in 1..=rounds {
            let r1 = tokens(std::slice::from_ref(&a.base), 32, &secret, run_for).await;
            println!(
                "round {round}: one replica  {:>6.0} tokens/s (p50 {:.2} ms, p99 {:.2} ms, {} tokens)",
                r1.0, r1.1, r1.2, r1.3
            );
            let r2 = tokens(&[a.base.clone(), b.base.clone()], 16, &secret, run_for).await;
            println!(
                "round {round}: two replicas {:>6.0} tokens/s (p50 {:.2} ms, p99 {:.2} ms, {} tokens)",
                r2.0, r2.1, r2.2, r2.3
            );
            one.push(r1.0);
            two.push(r2.0);
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (m1, m2) = (median(&mut one), median(&mut two));
        println!(
            "median: one replica {m1:.0}/s, two replicas {m2:.0}/s, ratio {:.2} (target >= 1.6)",
            m2 / m1
        );
        let _ = b.stop().await;
        a.stop().await;
    });
}
