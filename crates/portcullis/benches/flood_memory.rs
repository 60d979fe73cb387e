//! Memory of a real `portcullis serve` process idle and after a 60 s flood of unauthenticated
//! requests (issue "Hostile traffic", finding 7; DESIGN.md target: ≤ 64 MB idle, ≤ 256 MB after
//! a 60 s flood). The server is the release binary as a child process, so its resident set is
//! its own; the load comes from this process, 64 connections on 64 loopback addresses
//! (127.0.0.10–73), as
//! sign-ins for invented names (Argon2 behind its bounded queue), device authorizations and
//! passwordless starts (capped per address), wrong client secrets, and garbage bodies.
//!
//! `cargo bench -p portcullis --bench flood_memory` (`FLOOD_SECONDS` shortens the flood).

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
        .args(["serve", "--log-format", "json"])
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
    println!("  targets: idle <= 64 MB, after a 60 s flood <= 256 MB");
}
