//! Memory of a real `portcullis serve` process idle and after a 60 s flood of unauthenticated
//! requests (issue "Hostile traffic", finding 7; DESIGN.md target: ≤ 64 MB idle, ≤ 256 MB after
//! a 60 s flood). The server is the release binary as a child process, so its resident set is
//! its own; the load comes from this process, 64 connections on 64 loopback addresses
//! (127.0.0.10–73), as
//! sign-ins for invented names (Argon2 behind its bounded queue), device authorizations and
//! passwordless starts (capped per address), wrong client secrets, and garbage bodies.
//!
//! Before the flood, the server is given `FLOOD_SESSIONS` live sessions (default 100,000; the
//! other DESIGN.md figure: ≤ 256 MB with 100,000 live sessions): a first administrator is
//! bootstrapped over HTTP, the session rows are written into the server's database (a sign-in
//! each would take Argon2's 20 minutes), and every session is then used once over HTTP
//! (`GET /api/v1/me`), so the server has read each of them. RSS is sampled after that too.
//!
//! `cargo bench -p portcullis --bench flood_memory` (`FLOOD_SECONDS` shortens the flood,
//! `FLOOD_SESSIONS=0` skips the sessions).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The server's resident set, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let seconds: u64 = std::env::var("FLOOD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let dir = tempfile::tempdir().expect("tmp");
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .current_dir(dir.path())
        .args([
            "serve",
            "--log-format",
            "json",
            "--bootstrap-token-file",
            "bootstrap-token",
        ])
        .env("PORTCULLIS_LISTEN", "127.0.0.1:0")
        .envs(std::env::var("FLOOD_CHILD_ENV").ok().and_then(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        }))
        .env(
            "PORTCULLIS_LOG",
            "warn,portcullis=info,portcullis_server=info",
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn portcullis serve");
    let pid = child.id();
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut port = None;
    for line in lines.by_ref() {
        let line = line.expect("log line");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["fields"]["message"] == "listening" {
            port = v["fields"]["port"].as_u64();
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let base = format!("http://127.0.0.1:{}", port.expect("port"));
    std::thread::sleep(Duration::from_secs(5));
    let idle = rss_mib(pid);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let sessions: usize = std::env::var("FLOOD_SESSIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let with_sessions = (sessions > 0).then(|| {
        let started = Instant::now();
        rt.block_on(live_sessions(&base, dir.path(), sessions));
        let setup = started.elapsed();
        std::thread::sleep(Duration::from_secs(5));
        (rss_mib(pid), setup)
    });
    let sent = Arc::new(AtomicU64::new(0));
    let statuses: Arc<std::sync::Mutex<std::collections::BTreeMap<u16, u64>>> = Arc::default();
    let peak = Arc::new(std::sync::Mutex::new(idle));
    let started = Instant::now();
    rt.block_on(async {
        let deadline = started + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for worker in 0..64u32 {
            let base = base.clone();
            let sent = sent.clone();
            let statuses = statuses.clone();
            tasks.push(tokio::spawn(async move {
                let addr = std::net::IpAddr::from([127, 0, 0, 10 + worker as u8]);
                let http = reqwest::Client::builder()
                    .local_address(addr)
                    .timeout(Duration::from_secs(30))
                    .build()
                    .expect("client");
                let mut i = 0u64;
                while Instant::now() < deadline {
                    i += 1;
                    let r = match i % 5 {
                        0 => http
                            .post(format!("{base}/api/v1/signin"))
                            .json(&serde_json::json!({ "username": format!("nobody-{worker}-{i}"), "password": "guess-guess-guess" }))
                            .send()
                            .await,
                        1 => http
                            .post(format!("{base}/oauth2/device_authorization"))
                            .form(&[("client_id", "portcullis-cli")])
                            .send()
                            .await,
                        2 => http
                            .post(format!("{base}/api/v1/signin/webauthn"))
                            .json(&serde_json::json!({ "username": format!("nobody-{i}") }))
                            .send()
                            .await,
                        3 => http
                            .post(format!("{base}/oauth2/token"))
                            .basic_auth(format!("client-{worker}"), Some("pcs_wrong"))
                            .form(&[("grant_type", "client_credentials")])
                            .send()
                            .await,
                        _ => http
                            .post(format!("{base}/oauth2/token"))
                            .header("content-type", "application/x-www-form-urlencoded")
                            .body(vec![b'%'; (i % 4096) as usize])
                            .send()
                            .await,
                    };
                    sent.fetch_add(1, Ordering::Relaxed);
                    let code = r.map_or(0, |r| r.status().as_u16());
                    if let Ok(mut s) = statuses.lock() {
                        *s.entry(code).or_default() += 1;
                    }
                }
            }));
        }
        let sampler = {
            let peak = peak.clone();
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let now = rss_mib(pid);
                    if let Ok(mut p) = peak.lock()
                        && now > *p
                    {
                        *p = now;
                    }
                }
            })
        };
        for t in tasks {
            let _ = t.await;
        }
        let _ = sampler.await;
    });
    let after = rss_mib(pid);
    std::thread::sleep(Duration::from_secs(10));
    let settled = rss_mib(pid);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    let total = sent.load(Ordering::Relaxed);
    let peak = peak.lock().map(|p| *p).unwrap_or(after);
    println!(
        "flood_memory: {seconds} s flood, {total} requests ({:.0}/s) from 64 connections on 64 loopback addresses",
        total as f64 / seconds as f64
    );
    println!(
        "  answers: {:?}",
        statuses.lock().map(|s| s.clone()).unwrap_or_default()
    );
    println!(
        "  RSS idle {idle:.1} MiB; peak during the flood {peak:.1} MiB; right after {after:.1} MiB; 10 s later {settled:.1} MiB"
    );
    if let Some((rss, setup)) = with_sessions {
        println!(
            "  RSS with {sessions} live sessions, each used once over HTTP: {rss:.1} MiB (5 s after; setup {:.0} s)",
            setup.as_secs_f64()
        );
    }
    println!(
        "  targets: idle <= 64 MB, with 100,000 live sessions and after a 60 s flood <= 256 MB"
    );
}

/// Bootstraps a first administrator, writes `n` live sessions of theirs into the server's
/// database and uses each once over HTTP (16 keep-alive connections).
async fn live_sessions(base: &str, dir: &std::path::Path, n: usize) {
    let token = std::fs::read_to_string(dir.join("bootstrap-token")).expect("bootstrap token");
    let secret = b"flood-memory-admin-totp-secret!!";
    let now = time::OffsetDateTime::now_utc();
    let code = portcullis_core::totp::generate(secret, now.unix_timestamp() as u64).expect("code");
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/bootstrap"))
        .json(&serde_json::json!({
            "token": token.trim(), "username": "root-admin", "display_name": "Root",
            "password": "violet-kettle-orbit-93",
            "totp_secret": portcullis_core::totp::base32(secret), "totp_code": code,
        }))
        .send()
        .await
        .expect("bootstrap");
    assert!(r.status().is_success(), "bootstrap: {}", r.status());

    let url = format!(
        "sqlite://{}",
        dir.join("portcullis-data/portcullis.db").display()
    );
    let db = sqlx::SqlitePool::connect(&url)
        .await
        .expect("the server's database");
    let principal: String =
        sqlx::query_scalar("SELECT id FROM principals WHERE name = 'root-admin'")
            .fetch_one(&db)
            .await
            .expect("the administrator");
    let now_us = (now.unix_timestamp_nanos() / 1000) as i64;
    let tokens: Vec<String> = (0..n)
        .map(|i| format!("flood-memory-session-{i:08}"))
        .collect();
    for chunk in tokens.chunks(10_000) {
        let mut tx = db.begin().await.expect("tx");
        for t in chunk {
            sqlx::query("INSERT INTO sessions (id, token_hash, principal_id, strength, scope, created_at_us, last_seen_us, strong_auth_at_us, client_ip, user_agent) VALUES (?1, ?2, ?3, 'mfa', 'full', ?4, ?4, ?4, '127.0.0.1', 'flood_memory')")
                .bind(format!("s-{t}"))
                .bind(portcullis_store::crypto::token_hash(t))
                .bind(&principal)
                .bind(now_us)
                .execute(&mut *tx)
                .await
                .expect("session row");
        }
        tx.commit().await.expect("commit");
    }
    db.close().await;

    // 500 sessions per loopback address (127.1.0.1, 127.1.0.2, …): within the default
    // per-address burst, so the rate limits stay at their defaults for the flood after.
    let chunks: Arc<Vec<Vec<String>>> =
        Arc::new(tokens.chunks(500).map(<[String]>::to_vec).collect());
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (base, chunks, next) = (base.to_owned(), chunks.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(chunk) = chunks.get(i) else { break };
                let addr = std::net::IpAddr::from([127, 1, (i / 250) as u8, (i % 250 + 1) as u8]);
                let http = reqwest::Client::builder()
                    .local_address(addr)
                    .build()
                    .expect("client");
                for t in chunk {
                    let r = http
                        .get(format!("{base}/api/v1/me"))
                        .bearer_auth(t)
                        .send()
                        .await
                        .expect("me");
                    assert_eq!(r.status(), 200, "a live session is accepted");
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("join");
    }
}
