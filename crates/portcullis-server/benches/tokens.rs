//! The token service's figures, each next to the Ed25519 signing limit measured in the same
//! run (`cores ×` raw signatures per second of one core, through the same aws-lc-rs backend):
//! - in-process access-token signing (claims → JWT) and verification (ours, and a relying
//!   party's with another JWT library and the key from JWKS);
//! - client-credentials tokens per second over HTTP against the running server (embedded
//!   SQLite, durable audit: every issued token is an audit event), with p50/p99.
//!
//! Run: `cargo bench -p portcullis-server --bench tokens`
//! The load generator (tokio tasks with keep-alive reqwest clients) runs on the same 2-core
//! machine as the server.

mod support;

use std::time::{Duration, Instant};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use portcullis_core::token::{AccessClaims, RoleClaim};
use portcullis_server::services::keys::TokenSigner;
use portcullis_store::{MasterKey, Store, StoreOptions};

/// Runs `f` on `threads` OS threads for `secs`; operations per second in total.
fn rate(threads: usize, secs: f64, f: impl Fn() + Sync) -> f64 {
    let start = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0u64;
                    while start.elapsed().as_secs_f64() < secs {
                        for _ in 0..64 {
                            f();
                        }
                        n += 64;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    total as f64 / start.elapsed().as_secs_f64()
}

fn claims(now: i64) -> AccessClaims {
    AccessClaims {
        iss: "http://localhost:8080".into(),
        sub: "sa_0123456789abcdef".into(),
        // Every client is its own audience.
        aud: "payroll-sync".into(),
        iat: now,
        nbf: now,
        exp: now + 600,
        jti: "0123456789abcdef0123456789abcdef".into(),
        client_id: "payroll-sync".into(),
        roles: vec![RoleClaim {
            role: "audit-reader".into(),
            scope: "/".into(),
            exp: Some(now + 3600),
        }],
        permissions: vec!["app:payroll.read".into()],
        amr: vec![],
        acr: "client_credentials".into(),
        auth_time: None,
        scope: None,
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let dir = tempfile::tempdir().expect("tmp");

    // The tenant's real signer, from a real store.
    let master = MasterKey::generate();
    let signer = rt.block_on(async {
        let url = format!("sqlite://{}", dir.path().join("keys.db").display());
        let store = Store::open(&url, StoreOptions::default())
            .await
            .expect("store");
        store
            .initialise_tenant(&master, time::OffsetDateTime::now_utc())
            .await
            .expect("tenant");
        TokenSigner::load(
            &store,
            &master,
            "http://localhost:8080".into(),
            time::Duration::minutes(10),
            time::Duration::minutes(1),
        )
        .await
        .expect("signer")
    });
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let c = claims(now);
    let token = signer
        .sign(&c, portcullis_server::state::signer::SigningAlg::EdDSA)
        .expect("sign");

    // The limit: raw Ed25519 signatures of a token-sized message through aws-lc-rs.
    let raw_key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let der = ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_der(&raw_key).expect("der");
    let enc = EncodingKey::from_ed_der(der.as_bytes());
    let message = token.rsplit_once('.').expect("jwt").0.as_bytes().to_vec();
    let one_core = rate(1, 3.0, || {
        std::hint::black_box(
            jsonwebtoken::crypto::sign(&message, &enc, Algorithm::EdDSA).expect("sig"),
        );
    });
    let limit = one_core * cores as f64;
    let sign_rate = rate(cores, 3.0, || {
        std::hint::black_box(
            signer
                .sign(&c, portcullis_server::state::signer::SigningAlg::EdDSA)
                .expect("sign"),
        );
    });
    let verify_rate = rate(cores, 3.0, || {
        std::hint::black_box(signer.verify(&token).expect("valid"));
    });
    // A relying party: another library, the key taken from our JWKS.
    let jwks = signer.jwks(time::OffsetDateTime::now_utc());
    let x = jwks["keys"][0]["x"].as_str().expect("x").to_owned();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(x)
        .expect("b64");
    let pk = jwt_simple::prelude::Ed25519PublicKey::from_bytes(&raw).expect("pk");
    let rp_rate = rate(cores, 3.0, || {
        use jwt_simple::prelude::EdDSAPublicKeyLike;
        std::hint::black_box(
            pk.verify_token::<jwt_simple::prelude::NoCustomClaims>(&token, None)
                .expect("rp verifies"),
        );
    });

    // Over HTTP: client credentials with a client secret against the running server.
    let http_figures = rt.block_on(async {
        let running = support::start(None).await;
        let (base, admin) = (running.base.clone(), &running.admin);
        admin
            .create_service_account(&portcullis_core::api::CreateServiceAccountRequest {
                name: "bench-daemon".into(),
                display_name: None,
                public_key: None,
                key_id: None,
            })
            .await
            .expect("sa");
        let secret = admin
            .add_client_secret("bench-daemon")
            .await
            .expect("secret")
            .client_secret;
        let run_for = Duration::from_secs(10);
        let concurrency = 32;
        let token_url = format!("{base}/oauth2/token");

        // Client credentials.
        let cc = {
            let (url, secret) = (token_url.clone(), secret.clone());
            support::load(vec![(); concurrency], run_for, move |()| {
                let (url, secret) = (url.clone(), secret.clone());
                async move { support::client_credentials(&url, &secret).await }
            })
            .await
        };

        // Introspection of one token by the daemon.
        let token = {
            let r = reqwest::Client::new()
                .post(&token_url)
                .basic_auth("bench-daemon", Some(&secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .expect("send");
            let v: serde_json::Value = r.json().await.expect("json");
            v["access_token"].as_str().expect("token").to_owned()
        };
        let intro = {
            let (url, secret) = (format!("{base}/oauth2/introspect"), secret.clone());
            support::load(vec![(); concurrency], run_for, move |()| {
                let (url, secret, token) = (url.clone(), secret.clone(), token.clone());
                async move {
                    let r = support::http()
                        .post(&url)
                        .basic_auth("bench-daemon", Some(&secret))
                        .form(&[("token", token.as_str())])
                        .send()
                        .await
                        .expect("send");
                    assert_eq!(r.status(), 200);
                    let _ = r.bytes().await.expect("body");
                }
            })
            .await
        };

        // Refresh with rotation: each worker its own family (a device grant approved by the
        // administrator), presenting the token the previous refresh gave it.
        let mut families = Vec::new();
        for _ in 0..concurrency {
            let anon = portcullis_client::Client::new(&base, None).expect("client");
            let d = anon.device_authorize().await.expect("device");
            admin
                .approve_device(&portcullis_core::api::DeviceDecisionRequest {
                    user_code: d.user_code.clone(),
                })
                .await
                .expect("approve");
            let t = anon.device_token(&d.device_code).await.expect("tokens");
            families.push(t.refresh_token.expect("refresh token"));
        }
        let refresh = {
            let url = token_url.clone();
            support::load_with_state(families, run_for, move |current: String| {
                let url = url.clone();
                async move {
                    let r = support::http()
                        .post(&url)
                        .form(&[
                            ("grant_type", "refresh_token"),
                            ("client_id", "portcullis-cli"),
                            ("refresh_token", current.as_str()),
                        ])
                        .send()
                        .await
                        .expect("send");
                    assert_eq!(r.status(), 200);
                    let v: serde_json::Value = r.json().await.expect("json");
                    v["refresh_token"].as_str().expect("next").to_owned()
                }
            })
            .await
        };
        running.stop().await;
        (cc, intro, refresh)
    });
    let ((http_rate, p50, p99, issued), intro, refresh) = http_figures;

    println!("cores={cores}");
    println!(
        "Ed25519 limit: {one_core:.0}/s on one core, {limit:.0}/s on {cores} (raw aws-lc-rs signatures)"
    );
    println!(
        "in-process signing: {sign_rate:.0} tokens/s = {:.2} x limit",
        sign_rate / limit
    );
    println!("in-process verification (ours): {verify_rate:.0}/s");
    println!("relying party (jwt-simple, key from JWKS): {rp_rate:.0}/s");
    println!(
        "client credentials over HTTP: {issued} tokens, {http_rate:.0}/s = {:.3} x limit, p50 {p50:.2} ms, p99 {p99:.2} ms (concurrency 32)",
        http_rate / limit
    );
    println!(
        "introspection over HTTP: {} answers, {:.0}/s, p50 {:.2} ms, p99 {:.2} ms (concurrency 32)",
        intro.3, intro.0, intro.1, intro.2
    );
    println!(
        "refresh with rotation over HTTP: {} refreshes, {:.0}/s, p50 {:.2} ms, p99 {:.2} ms (32 families)",
        refresh.3, refresh.0, refresh.1, refresh.2
    );
}
