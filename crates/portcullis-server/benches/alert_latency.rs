//! Time from a break-glass sign-in attempt to the alert being accepted by a real SMTP server
//! and received by a webhook: p50 and p99 over `ATTEMPTS` attempts.
//!
//! Run: `cargo bench -p portcullis-server --bench alert_latency` (needs Python's aiosmtpd:
//! `pip install aiosmtpd`).
//!
//! Each attempt is what `portcullis breakglass signin` does: rebuild the password of a
//! break-glass account from two custodians' shares, then sign in with it; the built-in
//! critical rule `breakglass.activity` turns the sign-in into an alert (sign-in, then the
//! audit event and outbox rows in one transaction, then the delivery worker). The SMTP
//! server (tests/support/smtp_sink.py) stamps the time it accepted each message; the webhook
//! receiver runs in this process. Attempts are sequential (one alert in flight), on the
//! embedded SQLite store. Alerts of one rule and account after the first within the
//! aggregation window are summarised, so the server runs with a 1 s window and each attempt
//! waits (outside the measured time) until the previous window and its summary are over: every
//! measured alert is the first of its window, delivered at once.

mod support;

use std::io::BufRead;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use portcullis_core::api::{CreateAlertChannelRequest, CreateBreakGlassRequest, CreateUserRequest};
use portcullis_core::breakglass;
use portcullis_core::principal::PrincipalName;
use support::percentile_ms;

const ATTEMPTS: usize = 100;

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

fn channel(name: &str, kind: &str) -> CreateAlertChannelRequest {
    CreateAlertChannelRequest {
        name: name.into(),
        kind: kind.into(),
        min_severity: Some("critical".into()),
        smtp_url: None,
        smtp_username: None,
        password_env: None,
        from: None,
        to: vec![],
        notifications: false,
        url: None,
        shape: None,
        secret: None,
        method: None,
        headers: Default::default(),
        template: None,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // The SMTP server.
    let maildir = tempfile::tempdir().expect("tmp");
    let mut sink = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/smtp_sink.py"
        ))
        .arg(maildir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufReader::new(sink.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready line");
    let smtp_port: u16 = line
        .trim()
        .strip_prefix("ready ")
        .expect("the SMTP sink did not start: pip install aiosmtpd")
        .parse()
        .expect("port");

    // The webhook receiver: the arrival time of each body, by the bot named in it.
    let arrivals: Arc<Mutex<Vec<(String, f64)>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook_port = listener.local_addr().expect("addr").port();
    let seen = arrivals.clone();
    let app = axum::Router::new().fallback(move |body: String| {
        let seen = seen.clone();
        async move {
            let at = unix_now();
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let target = v["event"]["target"].as_str().unwrap_or("").to_owned();
            seen.lock().expect("lock").push((target, at));
            "ok"
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let running = support::start_with(None, |c| c.alert_aggregation_window = "1s".into()).await;
    let admin = &running.admin;
    let mut mail = channel("mail", "email");
    mail.smtp_url = Some(format!("smtp://127.0.0.1:{smtp_port}"));
    mail.from = Some("portcullis@example.org".into());
    mail.to = vec!["soc@example.org".into(), "oncall@example.org".into()];
    admin
        .create_alert_channel(&mail)
        .await
        .expect("mail channel");
    let mut hook = channel("hook", "webhook");
    hook.url = Some(format!("http://127.0.0.1:{hook_port}/hook"));
    admin
        .create_alert_channel(&hook)
        .await
        .expect("hook channel");
    // Two custodians and one break-glass account, split 2-of-2 as the CLI does.
    for name in ["alice", "bob"] {
        admin
            .create_user(&CreateUserRequest {
                name: name.into(),
                display_name: name.into(),
                email: None,
                phone: None,
                guest_organisation: None,
                privileged: false,
                password: "copper-lantern-river-42".into(),
            })
            .await
            .expect("custodian");
    }
    let account = PrincipalName::parse("name", "bg-bench").expect("name");
    let custodians = breakglass::Custodians::parse(["alice", "bob"]).expect("custodians");
    let threshold = breakglass::Threshold::new(2, &custodians, false).expect("threshold");
    let password = breakglass::generate_password(&mut rand::rngs::OsRng);
    let (_, shares) = breakglass::split(
        &account,
        &password,
        &custodians,
        threshold,
        &mut rand::rngs::OsRng,
    )
    .expect("split");
    let texts: Vec<String> = shares.iter().map(|s| s.encode().to_string()).collect();
    admin
        .create_breakglass(&CreateBreakGlassRequest {
            name: "bg-bench".into(),
            display_name: None,
            credential: "password".into(),
            password: Some(password.to_string()),
            custodians: vec!["alice".into(), "bob".into()],
            threshold: Some(2),
            force: false,
            key_holder: None,
            pin_holder: None,
        })
        .await
        .expect("create the break-glass account");
    drop(password);
    let http = reqwest::Client::new();
    let mut to_mail = Vec::with_capacity(ATTEMPTS);
    let mut to_hook = Vec::with_capacity(ATTEMPTS);
    for i in 0..ATTEMPTS {
        // The previous attempt's (or the creation's) window closes and its summary, if any,
        // is delivered before this attempt starts.
        tokio::time::sleep(Duration::from_millis(1_800)).await;
        arrivals.lock().expect("lock").clear();
        for f in std::fs::read_dir(maildir.path()).expect("dir").flatten() {
            let _ = std::fs::remove_file(f.path());
        }
        let t0 = unix_now();
        let parsed: Vec<breakglass::Share> = texts
            .iter()
            .map(|t| breakglass::Share::parse(t).expect("share"))
            .collect();
        let pw = breakglass::combine(&account, &parsed).expect("combine");
        let r = http
            .post(format!("{}/api/v1/signin", running.base))
            .json(&serde_json::json!({ "username": "bg-bench", "password": pw.as_str() }))
            .send()
            .await
            .expect("signin");
        drop(pw);
        assert_eq!(r.status(), 200, "attempt {i}: the break-glass sign-in");
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut mail_at, mut hook_at) = (None, None);
        while (mail_at.is_none() || hook_at.is_none()) && Instant::now() < deadline {
            if hook_at.is_none() {
                // A single alert names its event's target; a summary has no event.
                hook_at = arrivals
                    .lock()
                    .expect("lock")
                    .iter()
                    .find(|(target, _)| !target.is_empty())
                    .map(|(_, at)| *at);
            }
            if mail_at.is_none() {
                for f in std::fs::read_dir(maildir.path()).expect("dir").flatten() {
                    if f.path().extension().is_some_and(|x| x == "json") {
                        let v: serde_json::Value =
                            serde_json::from_str(&std::fs::read_to_string(f.path()).expect("read"))
                                .expect("json");
                        mail_at = v["accepted_at"].as_f64();
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let (Some(m), Some(h)) = (mail_at, hook_at) else {
            panic!("attempt {i}: the alert did not arrive within 30 s");
        };
        to_mail.push(Duration::from_secs_f64((m - t0).max(0.0)));
        to_hook.push(Duration::from_secs_f64((h - t0).max(0.0)));
    }
    to_mail.sort();
    to_hook.sort();
    println!("alert latency over {ATTEMPTS} sign-in attempts (SQLite, 2 cores, sequential):");
    println!(
        "  accepted by the SMTP server: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile_ms(&to_mail, 0.50),
        percentile_ms(&to_mail, 0.99),
        percentile_ms(&to_mail, 1.0)
    );
    println!(
        "  received by the webhook:     p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile_ms(&to_hook, 0.50),
        percentile_ms(&to_hook, 0.99),
        percentile_ms(&to_hook, 1.0)
    );
    running.stop().await;
    let _ = sink.kill();
    let _ = sink.wait();
}
