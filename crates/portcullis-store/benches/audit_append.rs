//! Durable audit append throughput: single writer, 8 concurrent writers and 256 concurrent
//! writers, on SQLite (WAL, synchronous=FULL) and on PostgreSQL (when
//! `PORTCULLIS_TEST_DATABASE_URL` is set). Every append is acknowledged only after its commit.
//!
//! Run: `cargo bench -p portcullis-store --bench audit_append`

use std::time::Instant;

use portcullis_core::audit::NewAuditEvent;
use portcullis_store::testing::{fresh_postgres_url, sqlite_url};
use portcullis_store::{MasterKey, Store, StoreOptions};
use time::OffsetDateTime;

async fn run(label: &str, url: &str) {
    let store = Store::open(url, StoreOptions::default())
        .await
        .expect("open");
    store
        .initialise_tenant(&MasterKey::generate(), OffsetDateTime::now_utc())
        .await
        .expect("init");
    for (writers, total) in [(1usize, 3_000usize), (8, 20_000), (256, 100_000)] {
        let per = total / writers;
        let start = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..writers {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..per {
                    s.append(
                        NewAuditEvent::new("bench", "bench.append", format!("w{w}"))
                            .details(serde_json::json!({ "i": i })),
                    )
                    .await
                    .expect("append");
                }
            }));
        }
        for t in tasks {
            t.await.expect("join");
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{label:<10} writers={writers:<4} events={:<7} {:>9.0} events/s",
            per * writers,
            (per * writers) as f64 / secs
        );
    }
    let report = store.verify_chain().await.expect("verify").expect("intact");
    println!("{label:<10} chain verified: {} events", report.events);
    store.close().await;
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tmp");
        run("sqlite", &sqlite_url(dir.path())).await;
        match fresh_postgres_url().await {
            Some(url) => run("postgres", &url).await,
            None => println!("postgres   skipped: set PORTCULLIS_TEST_DATABASE_URL"),
        }
    });
}
