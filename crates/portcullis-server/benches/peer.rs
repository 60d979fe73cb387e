//! Client-credentials tokens per second, Portcullis side by side with node `oidc-provider`
//! (an OpenID Certified provider) in one run, driven by the same `wrk` script.
//!
//! Run: `cargo bench -p portcullis-server --bench peer`
//!
//! What it does, so anyone can repeat it:
//! - installs `wrk` with apt-get if it is missing, and `oidc-provider` from npm into
//!   `$TMPDIR/portcullis-peer-oidc-provider` (once; `PEER_OIDC_PROVIDER_VERSION`, default 8);
//! - starts Portcullis in this process (embedded SQLite, durable audit: each token is an audit
//!   event committed before the answer; rate limits raised out of the way, as in the other
//!   benches) and `benches/peer/provider.mjs` under node (`NODE_ENV=production`, EdDSA JWT access
//!   tokens, in-memory adapter, no audit);
//! - checks one token from each, then runs `wrk -t1 -c16 -d10s --latency` with
//!   `benches/peer/client_credentials.lua` against each alternately, A B A B A B
//!   (`PEER_ROUNDS`, default 3; `PEER_SECONDS`, default 10), refusing a round with any non-2xx
//!   answer;
//! - prints every round, the median rate of each and the ratio.
//!
//! Everything runs on the same machine: the load generator, both servers (one at a time under
//! load; the idle one sleeps).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;

const CLIENT_ID: &str = "bench-daemon";

fn main() {
    let rounds: usize = env_or("PEER_ROUNDS", 3);
    let seconds: u64 = env_or("PEER_SECONDS", 10);
    ensure_wrk();
    let node_dir = ensure_oidc_provider();
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peer");
    let script = here.join("client_credentials.lua");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (running, secret) = rt.block_on(async {
        let running = support::start(None).await;
        running
            .admin
            .create_service_account(&portcullis_core::api::CreateServiceAccountRequest {
                name: CLIENT_ID.into(),
                display_name: None,
                public_key: None,
                key_id: None,
            })
            .await
            .expect("service account");
        let secret = running
            .admin
            .add_client_secret(CLIENT_ID)
            .await
            .expect("secret")
            .client_secret;
        (running, secret)
    });
    let ours = format!("{}/oauth2/token", running.base);

    // The peer gets the same client id and secret.
    let port = free_port();
    let mut node = NodePeer::start(&node_dir, &here.join("provider.mjs"), port, &secret);
    let theirs = format!("http://127.0.0.1:{port}/token");
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{secret}"))
    );
    rt.block_on(async {
        for url in [&ours, &theirs] {
            let r = reqwest::Client::new()
                .post(url.as_str())
                .header("authorization", &auth)
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 200, "{url} answers a token request");
            let v: serde_json::Value = r.json().await.expect("json");
            assert!(v["access_token"].is_string(), "{url} issues a token");
        }
    });

    let mut a = Vec::new();
    let mut b = Vec::new();
    for round in 1..=rounds {
        let r = wrk(&script, &ours, &auth, seconds);
        println!("round {round} portcullis:     {}", r.line());
        a.push(r);
        let r = wrk(&script, &theirs, &auth, seconds);
        println!("round {round} oidc-provider:  {}", r.line());
        b.push(r);
    }
    node.stop();
    rt.block_on(running.stop());

    let med_a = median(a.iter().map(|r| r.rate));
    let med_b = median(b.iter().map(|r| r.rate));
    println!(
        "cores={}",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "median: portcullis {med_a:.0} tokens/s, oidc-provider {med_b:.0} tokens/s, ratio {:.2}",
        med_a / med_b
    );
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn ensure_wrk() {
    if have("wrk") {
        return;
    }
    eprintln!("installing wrk (apt-get)");
    let ok = Command::new("sh")
        .args([
            "-c",
            "apt-get install -y wrk || (apt-get update && apt-get install -y wrk)",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok && have("wrk"), "wrk is needed: apt-get install wrk");
}

/// The directory holding `node_modules/oidc-provider`, installed from npm if missing.
fn ensure_oidc_provider() -> PathBuf {
    assert!(have("node") && have("npm"), "node and npm are needed");
    let dir = std::env::temp_dir().join("portcullis-peer-oidc-provider");
    if dir.join("node_modules/oidc-provider/package.json").exists() {
        return dir;
    }
    std::fs::create_dir_all(&dir).expect("peer dir");
    let version = std::env::var("PEER_OIDC_PROVIDER_VERSION").unwrap_or_else(|_| "8".into());
    eprintln!(
        "installing oidc-provider@{version} from npm into {}",
        dir.display()
    );
    let ok = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&dir)
        .arg(format!("oidc-provider@{version}"))
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "npm install oidc-provider failed");
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

struct NodePeer(Child);

impl NodePeer {
    fn start(dir: &Path, script: &Path, port: u16, secret: &str) -> Self {
        // The module resolves `oidc-provider` from its own directory: run a copy there.
        let copy = dir.join("provider.mjs");
        std::fs::copy(script, &copy).expect("copy provider.mjs");
        let mut child = Command::new("node")
            .arg(&copy)
            .current_dir(dir)
            .env("PORT", port.to_string())
            .env("CLIENT_ID", CLIENT_ID)
            .env("CLIENT_SECRET", secret)
            .env("NODE_ENV", "production")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node");
        let out = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).expect("read");
        assert_eq!(line.trim(), "listening", "oidc-provider started");
        Self(child)
    }

    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for NodePeer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One wrk run's figures.
struct Run {
    rate: f64,
    p50: String,
    p99: String,
    requests: u64,
}

impl Run {
    fn line(&self) -> String {
        format!(
            "{:.0} tokens/s, p50 {}, p99 {} ({} requests)",
            self.rate, self.p50, self.p99, self.requests
        )
    }
}

fn wrk(script: &Path, url: &str, auth: &str, seconds: u64) -> Run {
    // A moment between runs so the previous server's connections are closed.
    std::thread::sleep(Duration::from_millis(500));
    let out = Command::new("wrk")
        .args(["-t1", "-c16", &format!("-d{seconds}s"), "--latency", "-s"])
        .arg(script)
        .arg(url)
        .env("PEER_AUTH", auth)
        .output()
        .expect("wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wrk failed: {text}");
    assert!(
        !text.contains("Non-2xx") && !text.contains("Socket errors"),
        "every answer must be a token:\n{text}"
    );
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("wrk printed no {prefix:?}:\n{text}"))
    };
    let requests = text
        .lines()
        .find_map(|l| {
            l.trim()
                .split_once(" requests in ")
                .map(|(n, _)| n.to_owned())
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Run {
        rate: field("Requests/sec:").parse().expect("rate"),
        p50: field("50%"),
        p99: field("99%"),
        requests,
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
