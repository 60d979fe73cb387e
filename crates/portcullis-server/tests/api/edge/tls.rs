//! TLS: served from `tls_cert`/`tls_key` (the public URL then says https), reloaded for new
//! connections, and unreadable files fail the start before anything is written.

use super::*;

struct TestCert {
    cert_pem: String,
    key_pem: String,
}

fn test_cert() -> TestCert {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    TestCert {
        cert_pem: c.cert.pem(),
        key_pem: c.signing_key.serialize_pem(),
    }
}

fn trusting(cert: &TestCert, addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(cert.cert_pem.as_bytes()).expect("pem"),
        )
        .resolve("localhost", addr)
        .build()
        .expect("client")
}

/// TLS is served from `tls_cert`/`tls_key` (the public URL then says https); a reload swaps
/// the certificate for new connections, and a failed reload keeps the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_served_and_reloaded() {
    let dir = tempfile::tempdir().expect("tmp");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (a, b) = (test_cert(), test_cert());
    std::fs::write(&cert_path, &a.cert_pem).expect("write");
    std::fs::write(&key_path, &a.key_pem).expect("write");
    let mut config = config_for(Backend::Sqlite, dir.path())
        .await
        .expect("config");
    config.public_url = None;
    config.tls_cert = Some(cert_path.clone());
    config.tls_key = Some(key_path.clone());
    let app = Application::build(config, BuildOptions::default())
        .await
        .expect("builds with TLS");
    let addr: SocketAddr = ([127, 0, 0, 1], app.port()).into();
    let own = format!("https://localhost:{}", app.port());
    assert_eq!(app.public_url(), own);
    let reloader = app.tls_reloader().expect("a reloader with TLS");
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let discovery = format!("{own}/.well-known/openid-configuration");
    let d: serde_json::Value = trusting(&a, addr)
        .get(&discovery)
        .send()
        .await
        .expect("https with certificate A")
        .json()
        .await
        .expect("json");
    assert_eq!(d["issuer"], own.as_str());
    assert!(
        trusting(&b, addr).get(&discovery).send().await.is_err(),
        "B is not served yet"
    );

    std::fs::write(&cert_path, &b.cert_pem).expect("write");
    std::fs::write(&key_path, &b.key_pem).expect("write");
    reloader.reload().expect("reload B");
    let resp = trusting(&b, addr)
        .get(&discovery)
        .send()
        .await
        .expect("https with certificate B after the reload");
    assert_eq!(resp.status().as_u16(), 200);

    // A key that does not belong to the certificate, then garbage: refused, B stays.
    std::fs::write(&key_path, &a.key_pem).expect("write");
    let e = reloader.reload().expect_err("mismatched key");
    assert!(e.to_string().contains("does not belong"), "{e}");
    std::fs::write(&cert_path, "not a certificate").expect("write");
    assert!(reloader.reload().is_err(), "garbage");
    let resp = trusting(&b, addr)
        .get(&discovery)
        .send()
        .await
        .expect("B still served");
    assert_eq!(resp.status().as_u16(), 200);
    let _ = tx.send(());
    server.await.expect("task").expect("serve");
}

/// Unreadable TLS files fail the start clearly, before anything is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_files_fail_the_start_and_write_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut config = config_for(Backend::Sqlite, dir.path())
        .await
        .expect("config");
    config.tls_cert = Some(dir.path().join("missing-cert.pem"));
    config.tls_key = Some(dir.path().join("missing-key.pem"));
    let e = Application::build(config.clone(), BuildOptions::default())
        .await
        .err()
        .expect("refused");
    assert!(matches!(e, StartError::Tls(_)), "{e}");
    assert!(e.to_string().contains("missing-cert.pem"), "{e}");
    assert!(!config.data_dir.exists(), "nothing written");
}
