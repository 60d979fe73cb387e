//! The SIEM export (`audit_export`): every event leaves once, in order, from a cursor that
//! survives restarts, crashes and a second replica; to a JSON-lines file (rotated) and to a
//! real rsyslog over TCP and TLS; with a lag on `/metrics` and an alert-worthy event while the
//! receiver is down. rsyslog is Debian's (`rsyslog`, `rsyslog-gnutls`), started by each test on
//! a loopback port; skipped where it is missing unless `PORTCULLIS_REQUIRE_RSYSLOG=1`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

const RSYSLOGD: &str = "/usr/sbin/rsyslogd";

/// The exported events of a JSON-lines file and its rotated siblings, oldest first.
fn file_events(path: &Path) -> Vec<serde_json::Value> {
    let mut files: Vec<(u32, PathBuf)> = Vec::new();
    let dir = path.parent().expect("dir");
    let base = path
        .file_name()
        .expect("name")
        .to_string_lossy()
        .to_string();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name == base {
            files.push((0, entry.path()));
        } else if let Some(n) = name.strip_prefix(&format!("{base}."))
            && let Ok(n) = n.parse::<u32>()
        {
            files.push((n, entry.path()));
        }
    }
    // `.N` is the oldest, the file itself the newest.
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    files
        .iter()
        .flat_map(|(_, p)| {
            std::fs::read_to_string(p)
                .expect("read")
                .lines()
                .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The sequence numbers are exactly 1..=head and each event links to the one before it: what a
/// SIEM can check on its own.
fn assert_whole_chain(events: &[serde_json::Value], head: i64) {
    let seqs: Vec<i64> = events
        .iter()
        .map(|e| e["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(
        seqs,
        (1..=head).collect::<Vec<_>>(),
        "every event once, in order"
    );
    for pair in events.windows(2) {
        assert_eq!(
            pair[1]["prev_hash"], pair[0]["hash"],
            "chain at {}",
            pair[1]["seq"]
        );
    }
}

/// The database's newest sequence number, read directly (the server may be stopped).
async fn db_head(config: &Config) -> i64 {
    use sqlx::Connection;
    let url = config.database_url();
    let sql = "SELECT COALESCE(MAX(seq), 0) FROM audit_events";
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("connect");
        sqlx::query_scalar(sql)
            .fetch_one(&mut c)
            .await
            .expect("head")
    } else {
        let mut c = sqlx::PgConnection::connect(&url).await.expect("connect");
        sqlx::query_scalar(sql)
            .fetch_one(&mut c)
            .await
            .expect("head")
    }
}

async fn head(admin: &Client) -> i64 {
    let mut cursor = 0;
    loop {
        let before = cursor;
        events_since(admin, &mut cursor).await;
        if cursor == before {
            return cursor;
        }
    }
}

/// Events: one user created by `admin` per name.
async fn some_events(admin: &Client, names: &[&str]) {
    for name in names {
        admin
            .create_user(&CreateUserRequest {
                name: (*name).into(),
                display_name: format!("User {name}"),
                email: None,
                phone: None,
                guest_organisation: None,
                privileged: false,
                password: "correct horse battery staple".into(),
            })
            .await
            .expect("create user");
    }
}

/// Where a test's file export goes: beside the data directory, outside it, as a SIEM
/// forwarder's spool would be.
fn file_sink(config: &Config) -> PathBuf {
    config
        .data_dir
        .parent()
        .expect("the test's directory")
        .join("siem")
        .join("audit.jsonl")
}

fn file_url(config: &Config) -> String {
    format!("file://{}", file_sink(config).display())
}

/// A server configured by `tweak`; `None` (skipped) without PostgreSQL for that backend.
async fn exporting(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
    let app = spawn_with(backend, tweak).await;
    if app.is_none() {
        eprintln!("skipped: PORTCULLIS_TEST_DATABASE_URL is not set");
    }
    app
}

async fn file_export_holds_every_event_once_in_order_across_restarts(backend: Backend) {
    let Some(app) = exporting(backend, |c| c.audit_export = Some(file_url(c))).await else {
        return;
    };
    let path = file_sink(&app.config);
    let session = admin_token(&app).await;
    let root = app
        .anonymous
        .with_token(Some(SecretString::from(session.clone())));
    some_events(&root, &["ada", "grace"]).await;
    let head_now = head(&root).await;
    eventually("the export to catch up", 20, async || {
        file_events(&path).len() as i64 >= head_now
    })
    .await;
    // Each line is the event exactly as the API shows it.
    let api: Vec<serde_json::Value> = events_since(&root, &mut 0)
        .await
        .iter()
        .map(|e| serde_json::to_value(e).expect("json"))
        .collect();
    assert_eq!(file_events(&path)[..api.len()], api[..]);
    let (dir, config, token) = app.stop().await;
    // The stop's own events went out before the server ended.
    assert_whole_chain(&file_events(&path), db_head(&config).await);

    let app = start(config, dir, Some(token)).await;
    // The session outlives the restart (sessions are in the database).
    let root = app.anonymous.with_token(Some(SecretString::from(session)));
    some_events(&root, &["linus"]).await;
    let (_dir, config, _) = app.stop().await;
    assert_whole_chain(&file_events(&path), db_head(&config).await);
}

/// A crash after a batch reached the file but before the cursor moved, and a line cut short
/// by the crash: the restart neither repeats the batch nor keeps the broken line.
async fn a_crash_between_the_file_and_the_cursor_neither_repeats_nor_skips(backend: Backend) {
    let Some(app) = exporting(backend, |c| c.audit_export = Some(file_url(c))).await else {
        return;
    };
    let path = file_sink(&app.config);
    let session = admin_token(&app).await;
    let root = app
        .anonymous
        .with_token(Some(SecretString::from(session.clone())));
    some_events(&root, &["ada", "grace", "linus"]).await;
    let (dir, config, token) = app.stop().await;
    // As if the last five events were written but their cursor never committed…
    db_exec(&config, "UPDATE audit_export_cursors SET seq = seq - 5").await;
    // …and the process died in the middle of the next line.
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open")
        .write_all(b"{\"seq\":99999,\"time\":\"20")
        .expect("write");
    let app = start(config, dir, Some(token)).await;
    let root = app.anonymous.with_token(Some(SecretString::from(session)));
    some_events(&root, &["margaret"]).await;
    let (_dir, config, _) = app.stop().await;
    assert_whole_chain(&file_events(&path), db_head(&config).await);
}

async fn a_rotated_file_export_loses_and_repeats_nothing(backend: Backend) {
    let Some(app) = exporting(backend, |c| {
        c.audit_export = Some(file_url(c));
        c.audit_export_file_max_bytes = 4096;
        c.audit_export_file_keep = 1000;
    })
    .await
    else {
        return;
    };
    let path = file_sink(&app.config);
    let names: Vec<String> = (0..12).map(|i| format!("user{i}")).collect();
    some_events(
        &admin(&app).await,
        &names.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    let (dir, config, _) = app.stop().await;
    let rotated = std::fs::read_dir(path.parent().expect("dir"))
        .expect("dir")
        .count();
    assert!(rotated >= 3, "only {rotated} files: not rotated");
    for entry in std::fs::read_dir(path.parent().expect("dir"))
        .expect("dir")
        .flatten()
    {
        assert!(
            entry.metadata().expect("meta").len() <= 4096,
            "{entry:?} too big"
        );
    }
    assert_whole_chain(&file_events(&path), db_head(&config).await);
    drop(dir);
}

/// Two replicas on one PostgreSQL database, both exporting to one file: each event is in it
/// once, whichever replica wrote it and whichever delivered it.
async fn two_replicas_export_each_event_once(backend: Backend) {
    let Backend::Postgres = backend else { return };
    let Some(url) = fresh_postgres_url().await else {
        eprintln!("skipped: PORTCULLIS_TEST_DATABASE_URL is not set");
        return;
    };
    let shared = tempfile::tempdir().expect("tmp");
    let path = shared.path().join("siem").join("audit.jsonl");
    let sink = format!("file://{}", path.display());
    let (a, b) = two_replicas_with(&url, |c| c.audit_export = Some(sink.clone())).await;
    let token = admin_token(&a).await;
    let on_a = a
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let on_b = b.anonymous.with_token(Some(SecretString::from(token)));
    some_events(&on_a, &["ada", "grace"]).await;
    some_events(&on_b, &["linus", "margaret"]).await;
    some_events(&on_a, &["barbara"]).await;
    let (_da, config, _) = a.stop().await;
    // b takes the lease over at once and delivers the rest, its own stop included.
    some_events(&on_b, &["edsger"]).await;
    let (_db, _, _) = b.stop().await;
    assert_whole_chain(&file_events(&path), db_head(&config).await);
}

/// A real rsyslog on a loopback port, writing what it parsed of each message, one line per
/// message: `hostname|app-name|msgid|facility|severity|timestamp|msg`.
struct Rsyslog {
    child: Child,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

/// TLS material for rsyslog's gtls driver: the CA's PEM, the server's certificate and key.
struct TlsFiles {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Rsyslog {
    /// `None` (skip) without rsyslogd, unless `PORTCULLIS_REQUIRE_RSYSLOG=1`.
    fn start(port: u16, tls: Option<&TlsFiles>) -> Option<Rsyslog> {
        if !Path::new(RSYSLOGD).exists() {
            if std::env::var("PORTCULLIS_REQUIRE_RSYSLOG").as_deref() == Ok("1") {
                panic!("PORTCULLIS_REQUIRE_RSYSLOG=1 but {RSYSLOGD} is missing (install rsyslog)");
            }
            eprintln!("skipping: {RSYSLOGD} is missing");
            return None;
        }
        let dir = tempfile::tempdir().expect("tmp");
        let out = dir.path().join("out.log");
        let (global, module) = match tls {
            Some(t) => (
                format!(
                    "global(DefaultNetstreamDriver=\"gtls\" DefaultNetstreamDriverCAFile=\"{}\" DefaultNetstreamDriverCertFile=\"{}\" DefaultNetstreamDriverKeyFile=\"{}\")\n",
                    t.ca.display(),
                    t.cert.display(),
                    t.key.display()
                ),
                "module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"anon\")\n".to_owned(),
            ),
            None => (String::new(), "module(load=\"imtcp\")\n".to_owned()),
        };
        let conf = format!(
            "global(workDirectory=\"{dir}\" maxMessageSize=\"64k\")\n{global}{module}\
             input(type=\"imtcp\" port=\"{port}\" address=\"127.0.0.1\" ruleset=\"siem\")\n\
             template(name=\"fields\" type=\"string\" string=\"%hostname%|%app-name%|%msgid%|%syslogfacility%|%syslogseverity%|%timereported:::date-rfc3339%|%msg%\\n\")\n\
             ruleset(name=\"siem\") {{ action(type=\"omfile\" file=\"{out}\" template=\"fields\" flushOnTXEnd=\"on\" asyncWriting=\"off\") }}\n",
            dir = dir.path().display(),
            out = out.display(),
        );
        let conf_path = dir.path().join("rsyslog.conf");
        std::fs::write(&conf_path, conf).expect("write conf");
        let child = Command::new(RSYSLOGD)
            .arg("-n")
            .arg("-f")
            .arg(&conf_path)
            .arg("-i")
            .arg(dir.path().join("rsyslog.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rsyslogd");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "rsyslogd did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Rsyslog {
            child,
            out,
            _dir: dir,
        })
    }

    /// The messages received, each split into its fields.
    fn messages(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| l.splitn(7, '|').map(str::to_owned).collect())
            .collect()
    }

    /// The events the messages carry.
    fn events(&self) -> Vec<serde_json::Value> {
        self.messages()
            .iter()
            .map(|m| serde_json::from_str(m[6].trim()).expect("the message is the event's JSON"))
            .collect()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A CA and a certificate for `localhost` it signed, as PEM files in `dir`.
fn tls_files(dir: &Path, tag: &str) -> TlsFiles {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("Test SIEM CA {tag}"));
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("cert");
    let files = TlsFiles {
        ca: dir.join(format!("ca-{tag}.pem")),
        cert: dir.join(format!("cert-{tag}.pem")),
        key: dir.join(format!("key-{tag}.pem")),
    };
    std::fs::write(&files.ca, ca_cert.pem()).expect("ca");
    std::fs::write(&files.cert, cert.pem()).expect("cert");
    std::fs::write(&files.key, key.serialize_pem()).expect("key");
    files
}

async fn metric(app: &TestApp, name_and_labels: &str) -> Option<f64> {
    let text = metrics_text(app).await;
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
}

/// Syslog over TCP to a real rsyslog that starts after the server: while it is down the lag
/// grows and an alert-worthy `audit.export_failed` is recorded; once it listens, every event
/// arrives once, in order, as RFC 5424 it parses (facility 13, the action as MSGID, the
/// deployment's host) with the event's JSON as the message.
async fn syslog_export_over_tcp_catches_up_after_the_receiver_was_down(backend: Backend) {
    let port = free_port();
    if !Path::new(RSYSLOGD).exists() && Rsyslog::start(port, None).is_none() {
        return;
    }
    let sink = format!("syslog://127.0.0.1:{port}");
    let Some(app) = exporting(backend, |c| c.audit_export = Some(sink.clone())).await else {
        return;
    };
    let root = admin(&app).await;
    eventually("audit.export_failed", 20, async || {
        !events_named(&root, "audit.export_failed").await.is_empty()
    })
    .await;
    let failed = &events_named(&root, "audit.export_failed").await[0];
    assert_eq!(failed.outcome, "failure");
    assert_eq!(failed.details["alert"], true);
    assert_eq!(failed.details["sink"], sink);
    let lag = format!("portcullis_audit_export_lag_events{{sink=\"{sink}\"}}");
    eventually("a lag on /metrics", 20, async || {
        metric(&app, &lag).await.is_some_and(|v| v >= 3.0)
    })
    .await;
    let rsyslog = Rsyslog::start(port, None).expect("rsyslog");
    some_events(&root, &["ada"]).await;
    eventually("audit.export_recovered", 20, async || {
        !events_named(&root, "audit.export_recovered")
            .await
            .is_empty()
    })
    .await;
    eventually("the lag to close", 20, async || {
        metric(&app, &lag).await == Some(0.0)
    })
    .await;
    let (_dir, config, _) = app.stop().await;
    let head = db_head(&config).await;
    eventually("rsyslog to write every message", 20, async || {
        rsyslog.messages().len() as i64 >= head
    })
    .await;
    assert_whole_chain(&rsyslog.events(), head);
    for (m, e) in rsyslog.messages().iter().zip(rsyslog.events()) {
        assert_eq!(m[0], "localhost", "HOSTNAME is the public host");
        assert_eq!(m[1], "portcullis");
        assert_eq!(m[2], e["action"].as_str().expect("action"));
        assert_eq!(m[3], "13", "facility log audit");
        let expected = if e["outcome"] == "success" { "5" } else { "4" };
        assert_eq!(m[4], expected, "severity of {}", e["action"]);
        assert!(
            m[5].starts_with(&e["time"].as_str().expect("time")[..19]),
            "{} vs {}",
            m[5],
            e["time"]
        );
    }
}

/// Syslog over TLS (RFC 5425) to rsyslog with a certificate from a private CA that
/// `audit_export_ca` names: every event arrives, in order.
async fn syslog_export_over_tls_verifies_the_receiver(backend: Backend) {
    let certs = tempfile::tempdir().expect("tmp");
    let files = tls_files(certs.path(), "good");
    let port = free_port();
    let Some(rsyslog) = Rsyslog::start(port, Some(&files)) else {
        return;
    };
    let Some(app) = exporting(backend, |c| {
        c.audit_export = Some(format!("syslog+tls://localhost:{port}"));
        c.audit_export_ca = Some(files.ca.clone());
    })
    .await
    else {
        return;
    };
    some_events(&admin(&app).await, &["ada", "grace"]).await;
    let (_dir, config, _) = app.stop().await;
    let head = db_head(&config).await;
    eventually("rsyslog to write every message", 20, async || {
        rsyslog.messages().len() as i64 >= head
    })
    .await;
    assert_whole_chain(&rsyslog.events(), head);
}

/// A receiver whose certificate the configured CA did not sign gets nothing: the export fails
/// (recorded, alert-worthy, naming TLS) and keeps every event for later.
async fn syslog_export_refuses_a_receiver_it_cannot_verify(backend: Backend) {
    let certs = tempfile::tempdir().expect("tmp");
    let served = tls_files(certs.path(), "impostor");
    let trusted = tls_files(certs.path(), "trusted");
    let port = free_port();
    let Some(rsyslog) = Rsyslog::start(port, Some(&served)) else {
        return;
    };
    let sink = format!("syslog+tls://localhost:{port}");
    let Some(app) = exporting(backend, |c| {
        c.audit_export = Some(sink.clone());
        c.audit_export_ca = Some(trusted.ca.clone());
    })
    .await
    else {
        return;
    };
    let root = admin(&app).await;
    eventually("audit.export_failed", 20, async || {
        !events_named(&root, "audit.export_failed").await.is_empty()
    })
    .await;
    let failed = &events_named(&root, "audit.export_failed").await[0];
    let error = failed.details["error"].as_str().expect("error");
    assert!(error.contains("TLS"), "{error}");
    let lag = format!("portcullis_audit_export_lag_events{{sink=\"{sink}\"}}");
    assert!(metric(&app, &lag).await.is_some_and(|v| v > 0.0));
    app.stop().await;
    assert!(
        rsyslog.messages().is_empty(),
        "an unverified receiver got events"
    );
}

backend_tests!(
    file_export_holds_every_event_once_in_order_across_restarts,
    a_crash_between_the_file_and_the_cursor_neither_repeats_nor_skips,
    a_rotated_file_export_loses_and_repeats_nothing,
    two_replicas_export_each_event_once,
    syslog_export_over_tcp_catches_up_after_the_receiver_was_down,
    syslog_export_over_tls_verifies_the_receiver,
    syslog_export_refuses_a_receiver_it_cannot_verify,
);
