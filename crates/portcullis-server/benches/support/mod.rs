//! What the HTTP benchmarks share: a real server on port 0 with its first administrator
//! signed in (password + TOTP), and percentiles of measured latencies.

#![allow(dead_code)] // each bench uses its own part

pub mod targets;

use std::time::{Duration, Instant};

use portcullis_client::Client;
use portcullis_core::api::{
    BootstrapRequest, CreateUserRequest, PasswordSignInRequest, TotpConfirmRequest,
    TotpEnrolRequest,
};
use portcullis_server::Config;
use secrecy::SecretString;

pub const ADMIN_SECRET: &[u8] = b"bench-admin-totp-secret";
pub const ADMIN_PW: &str = "violet-kettle-orbit-93";

/// A TOTP code for `secret`, `offset` steps from now.
pub fn code(secret: &[u8], offset: i64) -> String {
    portcullis_server::testing::totp_code(secret, offset)
}

/// Password, then TOTP (a code one step ahead, so it is newer than any accepted before).
pub async fn sign_in(anon: &Client, user: &str, pw: &str, secret: &[u8]) -> Client {
    let (_, r) = portcullis_server::testing::password_and_totp(anon, user, pw, secret, 1).await;
    anon.with_token(Some(SecretString::from(r.session.expect("session").token)))
}

/// A new privileged person `user` with password `pw`: a registration-only session enrols TOTP,
/// then a full MFA sign-in on a keep-alive client of its own.
pub async fn person(running: &Running, user: &str, pw: &str) -> Client {
    running
        .admin
        .create_user(&CreateUserRequest {
            name: user.into(),
            display_name: user.into(),
            email: None,
            phone: None,
            guest_organisation: None,
            privileged: true,
            password: pw.into(),
        })
        .await
        .expect("user");
    let r = running
        .anon
        .signin_password(&PasswordSignInRequest {
            username: user.into(),
            password: pw.into(),
        })
        .await
        .expect("registration sign-in");
    let reg = running
        .anon
        .with_token(Some(SecretString::from(r.session.expect("session").token)));
    let enrol = reg
        .mfa_enrol_totp(&TotpEnrolRequest {
            name: "phone".into(),
        })
        .await
        .expect("enrol");
    let secret = portcullis_core::totp::base32_decode(&enrol.secret).expect("b32");
    reg.mfa_confirm_totp(
        &enrol.factor_id,
        &TotpConfirmRequest {
            code: code(&secret, 0),
        },
    )
    .await
    .expect("confirm");
    let own = Client::new(&running.base, None).expect("client");
    sign_in(&own, user, pw, &secret).await
}

/// A running server and its administrator.
pub struct Running {
    pub base: String,
    pub admin: Client,
    pub anon: Client,
    served: portcullis_server::testing::Served,
    _dir: tempfile::TempDir,
}

impl Running {
    pub async fn stop(self) {
        let _ = self.served.stop().await;
    }
}

/// Starts a server (embedded SQLite unless `database_url` is given), bootstraps the first
/// administrator and signs them in.
pub async fn start(database_url: Option<String>) -> Running {
    start_with(database_url, |_| {}).await
}

/// Like [`start`], with the configuration adjusted by `tweak`.
#[allow(dead_code)] // not every bench adjusts it
pub async fn start_with(database_url: Option<String>, tweak: impl FnOnce(&mut Config)) -> Running {
    let dir = tempfile::tempdir().expect("tmp");
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().join("data"),
        database_url: database_url.map(SecretString::from),
        // One load generator on one address far above any sensible per-address limit: the
        // limiters stay in the path (their cost is measured) but never refuse.
        rate_limit_per_address: 10_000_000,
        rate_limit_per_address_burst: 10_000_000,
        rate_limit_global: 10_000_000,
        rate_limit_global_burst: 10_000_000,
        max_connections_per_address: 100_000,
        ..Config::default()
    };
    tweak(&mut config);
    let served = portcullis_server::testing::serve(config).await;
    let token = served.bootstrap_token.clone().expect("token");
    let base = served.base.clone();
    let anon = Client::new(&base, None).expect("client");
    anon.bootstrap(&BootstrapRequest {
        token,
        username: "root-admin".into(),
        display_name: "Root".into(),
        email: None,
        password: ADMIN_PW.into(),
        totp_secret: portcullis_core::totp::base32(ADMIN_SECRET),
        totp_code: code(ADMIN_SECRET, 0),
    })
    .await
    .expect("bootstrap");
    let admin = sign_in(&anon, "root-admin", ADMIN_PW, ADMIN_SECRET).await;
    Running {
        base,
        admin,
        anon,
        served,
        _dir: dir,
    }
}

/// The `q`-quantile of sorted latencies, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

thread_local! {
    static HTTP: reqwest::Client = reqwest::Client::new();
}

/// A keep-alive client per load-generator thread.
pub fn http() -> reqwest::Client {
    HTTP.with(Clone::clone)
}

/// Runs one worker per state for `run_for`, each calling `f` again and again with what it
/// returned last; requests per second, p50 and p99 in ms, and the count.
pub async fn load_with_state<S, F, Fut>(
    states: Vec<S>,
    run_for: Duration,
    f: F,
) -> (f64, f64, f64, usize)
where
    S: Send + 'static,
    F: Fn(S) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = S> + Send,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for mut state in states {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while start.elapsed() < run_for {
                let t = Instant::now();
                state = f(state).await;
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
    let p = |q: f64| percentile_ms(&lat, q);
    (lat.len() as f64 / secs, p(0.5), p(0.99), lat.len())
}

/// [`load_with_state`] for requests that carry no state.
pub async fn load<F, Fut>(workers: Vec<()>, run_for: Duration, f: F) -> (f64, f64, f64, usize)
where
    F: Fn(()) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    load_with_state(workers, run_for, f).await
}

/// One client-credentials token for `bench-daemon` from `token_url`, answered 200 (the body read
/// through): the request the token and replica benches load.
pub async fn client_credentials(token_url: &str, secret: &str) {
    let r = http()
        .post(token_url)
        .basic_auth("bench-daemon", Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let _ = r.bytes().await.expect("body");
}
