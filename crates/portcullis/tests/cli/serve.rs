//! `portcullis serve` as a real process: configuration errors, defaults, audit commands and
//! graceful shutdown, and TLS certificates reloaded on SIGHUP.

use super::*;

#[test]
fn garbage_config_fails_clearly_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("portcullis.toml");
    for (contents, expect) in [
        ("listen = \"127.0.0.1:80", "invalid configuration"),
        ("lisen = \"127.0.0.1:80\"\n", "unknown key `lisen`"),
        ("listen = 42\n", "listen"),
    ] {
        std::fs::write(&cfg, contents).expect("write");
        let out = portcullis(dir.path())
            .args(["serve", "--config"])
            .arg(&cfg)
            .env("PORTCULLIS_DATA_DIR", dir.path().join("data"))
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(1), "{contents}");
        let err = stderr(&out);
        assert!(err.contains(expect), "{contents}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(!dir.path().join("data").exists(), "nothing written");
    }
    let out = portcullis(dir.path())
        .args(["serve", "--config", "/nonexistent/portcullis.toml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not exist"));
}

#[test]
fn unreachable_database_fails_clearly_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = portcullis(dir.path())
        .arg("serve")
        .env("PORTCULLIS_DATA_DIR", dir.path().join("data"))
        .env(
            "PORTCULLIS_DATABASE_URL",
            "postgres://postgres:s3cret-pw@127.0.0.1:1/portcullis",
        )
        .env("PORTCULLIS_LOG", "off")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("cannot reach the database"), "{err}");
    assert!(!err.contains("s3cret-pw"), "no secret in the error: {err}");
    assert!(!dir.path().join("data").exists(), "nothing written");

    let out = portcullis(dir.path())
        .arg("serve")
        .env("PORTCULLIS_DATABASE_URL", "mysql://x")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("database_url must start with"));
}

#[test]
fn serve_defaults_audit_commands_and_graceful_shutdown() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut server = serve(dir.path());
    // Defaults: ./portcullis-data beside the working directory.
    assert!(dir.path().join("portcullis-data/portcullis.db").exists());

    let out = cli(dir.path(), &server, &["--output", "json", "audit", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let events: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(events[0]["action"], "tenant.initialised");

    let out = cli(
        dir.path(),
        &server,
        &["audit", "list", "--action", "server.started"],
    );
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("server.started"));

    let out = cli(
        dir.path(),
        &server,
        &["audit", "checkpoint", "--reason", "test"],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let out = cli(dir.path(), &server, &["audit", "verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("audit chain intact"));

    // Without a credential: one clear line, exit 1.
    let out = portcullis(dir.path())
        .args(["--server", &server.url, "audit", "verify"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unauthenticated"), "{}", stderr(&out));

    let status = sigterm(&mut server.child);
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");

    // Server down: a clear transport error.
    let out = cli(dir.path(), &server, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot reach the server"));

    // Offline verification straight from the database, then after tampering.
    let db = format!(
        "sqlite://{}",
        dir.path().join("portcullis-data/portcullis.db").display()
    );
    let out = portcullis(dir.path())
        .args(["audit", "verify", "--database", &db])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let rt = tokio::runtime::Runtime::new().expect("rt");
    rt.block_on(async {
        let mut c = sqlx::SqliteConnection::connect(&db).await.expect("connect");
        sqlx::query("UPDATE audit_events SET outcome = 'failure' WHERE seq = 2")
            .execute(&mut c)
            .await
            .expect("tamper");
    });
    let out = portcullis(dir.path())
        .args(["--output", "json", "audit", "verify", "--database", &db])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3), "exit 3 on a broken chain");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["ok"], false);
    assert_eq!(v["first_bad_seq"], 2);
    // Offline verification never creates a database.
    let out = portcullis(dir.path())
        .args([
            "audit",
            "verify",
            "--database",
            "sqlite:///nonexistent/dir/x.db",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(!Path::new("/nonexistent/dir/x.db").exists());
}

/// A self-signed certificate for `localhost` made by the `openssl` CLI; its SHA-256
/// fingerprint as openssl prints it.
fn openssl_cert(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl req");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert)
        .output()
        .expect("openssl x509");
    (
        cert,
        key,
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    )
}

/// The SHA-256 fingerprint of the certificate a TLS server on `port` presents.
fn served_fingerprint(port: u16) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "localhost"])
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout);
    let begin = text
        .find("-----BEGIN CERTIFICATE-----")
        .expect("a certificate");
    let end = text.find("-----END CERTIFICATE-----").expect("its end") + 25;
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl x509");
    {
        use std::io::Write;
        let mut input = x509.stdin.take().expect("stdin");
        input
            .write_all(text[begin..end].as_bytes())
            .expect("pem to openssl");
    }
    let out = x509.wait_with_output().expect("fingerprint");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `portcullis serve` with `tls_cert`/`tls_key` speaks TLS and says https in its public URL;
/// SIGHUP reloads the files, and a broken file keeps the old certificate (the log says why).
#[test]
fn tls_certificate_reloads_on_sighup() {
    if !openssl_available() {
        eprintln!("skipped: no openssl");
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let (cert_a, key_a, fp_a) = openssl_cert(dir.path(), "a");
    let (cert_b, key_b, fp_b) = openssl_cert(dir.path(), "b");
    assert_ne!(fp_a, fp_b);
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::copy(&cert_a, &cert).expect("copy");
    std::fs::copy(&key_a, &key).expect("copy");
    let mut child = portcullis(dir.path())
        .args(["serve", "--log-format", "json"])
        .env("PORTCULLIS_LISTEN", "127.0.0.1:0")
        .env("PORTCULLIS_DATA_DIR", dir.path().join("data"))
        .env("PORTCULLIS_TLS_CERT", &cert)
        .env("PORTCULLIS_TLS_KEY", &key)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    let log = BufReader::new(child.stderr.take().expect("stderr"));
    std::thread::spawn(move || {
        for line in log.lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = tx.send(v);
            }
        }
    });
    let wait_for = |message: &str| -> serde_json::Value {
        loop {
            let v = rx
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no log line {message:?}"));
            if v["fields"]["message"].as_str() == Some(message) {
                return v;
            }
        }
    };
    let listening = wait_for("listening");
    let port = listening["fields"]["port"].as_u64().expect("port") as u16;
    assert_eq!(
        listening["fields"]["public_url"],
        format!("https://localhost:{port}").as_str()
    );
    assert_eq!(served_fingerprint(port), fp_a);

    std::fs::copy(&cert_b, &cert).expect("copy");
    std::fs::copy(&key_b, &key).expect("copy");
    let hup = |child: &Child| {
        let status = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    };
    hup(&child);
    wait_for("TLS certificate reloaded");
    assert_eq!(served_fingerprint(port), fp_b);

    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n",
    )
    .expect("write");
    hup(&child);
    let failed = wait_for("TLS certificate not reloaded; still serving the previous one");
    assert!(
        failed["fields"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("tls.key")),
        "{failed}"
    );
    assert_eq!(served_fingerprint(port), fp_b, "the old certificate stays");
    assert!(sigterm(&mut child).success());
}
