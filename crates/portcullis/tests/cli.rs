//! The `portcullis` binary end to end: configuration errors, `serve` as a real process with
//! graceful shutdown, and the audit commands online and offline.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use sqlx::Connection;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// A command with no PORTCULLIS_* variables inherited from the caller's environment.
fn portcullis(cwd: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(cwd);
    for (k, _) in std::env::vars() {
        if k.starts_with("PORTCULLIS_") {
            c.env_remove(k);
        }
    }
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

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

struct Server {
    child: Child,
    url: String,
    token: String,
}

/// Starts `portcullis serve` on port 0 and reads its port and bootstrap token from the JSON log.
fn serve(cwd: &Path) -> Server {
    serve_with(cwd, &[])
}

/// [`serve`] with extra environment variables.
fn serve_with(cwd: &Path, env: &[(&str, &str)]) -> Server {
    let mut child = portcullis(cwd)
        .args(["serve", "--log-format", "json"])
        .env("PORTCULLIS_LISTEN", "127.0.0.1:0")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let stderr = child.stderr.take().expect("stderr");
    let (mut port, mut token) = (None, None);
    let mut lines = BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        let line = line.expect("line");
        let v: serde_json::Value = serde_json::from_str(&line).expect("json log line");
        let msg = v["fields"]["message"].as_str().unwrap_or_default();
        if let Some(t) = msg.strip_prefix("bootstrap token: ") {
            token = Some(t.to_owned());
        }
        if msg == "listening" {
            port = v["fields"]["port"].as_u64();
            break;
        }
    }
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        url: format!("http://127.0.0.1:{}", port.expect("port in log")),
        token: token.expect("bootstrap token in log"),
    }
}

fn cli(cwd: &Path, server: &Server, args: &[&str]) -> Output {
    portcullis(cwd)
        .args(["--server", &server.url])
        .args(args)
        .env("PORTCULLIS_TOKEN", &server.token)
        .output()
        .expect("run cli")
}

fn sigterm(child: &mut Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    for _ in 0..100 {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("server did not stop on SIGTERM");
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

/// `audit list` shows control, bidirectional and invisible characters as `\u{…}` escapes:
/// text that came from a request (or was written into the database) never drives the terminal.
#[test]
fn audit_list_escapes_what_a_terminal_would_interpret() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut server = serve(dir.path());
    let db = format!(
        "sqlite://{}",
        dir.path().join("portcullis-data/portcullis.db").display()
    );
    let rt = tokio::runtime::Runtime::new().expect("rt");
    rt.block_on(async {
        let store = portcullis_store::Store::open(&db, portcullis_store::StoreOptions::default())
            .await
            .expect("store");
        store
            .append(portcullis_core::audit::NewAuditEvent::new(
                "service_account:\u{1b}[2Jowned",
                "token.client_credentials",
                "x\u{202e}y",
            ))
            .await
            .expect("append");
        store.close().await;
    });
    let out = cli(
        dir.path(),
        &server,
        &["audit", "list", "--action", "token.client_credentials"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{202e}'),
        "{text:?}"
    );
    assert!(
        text.contains("\\u{1b}[2Jowned") && text.contains("x\\u{202e}y"),
        "{text}"
    );
    sigterm(&mut server.child);
}

// ---- Tamper evidence that survives deletion (issue 14): a real server's database, copied
// and tampered with as someone holding the file would, verified offline with and without the
// anchor file the server kept outside it.

/// Copies the SQLite database (and its WAL, if any) of a stopped server to `to`.
fn copy_database(from: &Path, to: &Path) {
    std::fs::copy(from, to).expect("copy database");
    for ext in ["-wal", "-shm"] {
        let f = Path::new(&format!("{}{ext}", from.display())).to_owned();
        if f.exists() {
            std::fs::copy(&f, format!("{}{ext}", to.display())).expect("copy wal");
        }
    }
}

/// Runs raw SQL against a database file (sqlx: no sqlite3 CLI needed).
fn tamper(db: &Path, sql: &str) {
    let url = format!("sqlite://{}", db.display());
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    tokio::runtime::Runtime::new().expect("rt").block_on(async {
        let mut c = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("connect");
        sqlx::raw_sql(sql).execute(&mut c).await.expect("tamper");
    });
}

fn blob(b: &[u8]) -> String {
    format!(
        "X'{}'",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

/// Edits the target of event `from` and re-hashes the chain from there, so every link holds.
fn edit_and_rehash(db: &Path, from: i64) {
    use portcullis_core::audit::{AuditEvent, Outcome};
    use sqlx::Row;
    let url = format!("sqlite://{}", db.display());
    let rows = tokio::runtime::Runtime::new().expect("rt").block_on(async {
        let mut c = sqlx::SqliteConnection::connect(&url).await.expect("connect");
        sqlx::query("SELECT seq, time_us, actor, action, target, outcome, details, prev_hash, hash FROM audit_events ORDER BY seq")
            .fetch_all(&mut c)
            .await
            .expect("events")
    });
    let mut events: Vec<AuditEvent> = rows
        .iter()
        .map(|r| AuditEvent {
            seq: r.get("seq"),
            time_us: r.get("time_us"),
            actor: r.get("actor"),
            action: r.get("action"),
            target: r.get("target"),
            outcome: Outcome::parse(r.get("outcome")).expect("outcome"),
            details: serde_json::from_str(r.get("details")).expect("details"),
            prev_hash: r.get::<Vec<u8>, _>("prev_hash").try_into().expect("32"),
            hash: r.get::<Vec<u8>, _>("hash").try_into().expect("32"),
        })
        .collect();
    let mut prev = events[from as usize - 2].hash;
    let mut sql = String::new();
    for e in events.iter_mut().filter(|e| e.seq >= from) {
        if e.seq == from {
            e.target = "edited".into();
        }
        e.prev_hash = prev;
        e.hash = e.compute_hash();
        prev = e.hash;
        sql.push_str(&format!(
            "UPDATE audit_events SET target = '{}', prev_hash = {}, hash = {} WHERE seq = {};\n",
            e.target,
            blob(&e.prev_hash),
            blob(&e.hash),
            e.seq
        ));
    }
    tamper(db, &sql);
}

fn verify_offline(cwd: &Path, db: &Path, anchor: Option<&Path>) -> Output {
    let mut c = portcullis(cwd);
    c.args(["audit", "verify", "--database"])
        .arg(format!("sqlite://{}", db.display()));
    if let Some(a) = anchor {
        c.arg("--anchor").arg(a);
    }
    c.output().expect("run")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn audit_verify_finds_deleted_history_in_a_copied_database() {
    let dir = tempfile::tempdir().expect("tmp");
    let anchor_dir = tempfile::tempdir().expect("other storage");
    let anchor = anchor_dir.path().join("anchor.jsonl");
    let anchor_env = anchor.display().to_string();
    let mut server = serve_with(
        dir.path(),
        &[
            ("PORTCULLIS_AUDIT_ANCHOR_FILE", anchor_env.as_str()),
            ("PORTCULLIS_AUDIT_CHECKPOINT_EVENTS", "2"),
        ],
    );
    for i in 0..6 {
        let out = cli(
            dir.path(),
            &server,
            &["audit", "checkpoint", "--reason", &format!("c{i}")],
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    // Online, with the anchor: the server's database holds every anchored checkpoint.
    let out = cli(
        dir.path(),
        &server,
        &["audit", "verify", "--anchor", &anchor_env],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("anchored checkpoint(s) present"),
        "{}",
        stdout(&out)
    );
    assert!(sigterm(&mut server.child).success());

    let live = dir.path().join("portcullis-data/portcullis.db");
    let anchored: Vec<serde_json::Value> = std::fs::read_to_string(&anchor)
        .expect("anchor file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("record"))
        .collect();
    let seqs: Vec<i64> = anchored
        .iter()
        .map(|r| r["seq"].as_i64().expect("seq"))
        .collect();
    let head = *seqs.last().expect("anchored");
    assert!(seqs.len() >= 5, "{seqs:?}");

    // The untouched copy verifies, with and without the anchor.
    let copy = dir.path().join("untouched.db");
    copy_database(&live, &copy);
    let out = verify_offline(dir.path(), &copy, Some(&anchor));
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains(&format!("newest at sequence {head}")),
        "{}",
        stdout(&out)
    );

    // Truncated to an older checkpoint: the newest checkpoints and every event after the
    // remaining last one deleted. The shorter chain is well formed, ending on a signed
    // checkpoint like a stopped tenant, so only the anchor can tell.
    let keep = seqs[seqs.len() / 2];
    let truncated = dir.path().join("truncated.db");
    copy_database(&live, &truncated);
    tamper(
        &truncated,
        &format!(
            "DELETE FROM audit_checkpoints WHERE seq > {keep}; DELETE FROM audit_events WHERE seq > {keep};"
        ),
    );
    let out = verify_offline(dir.path(), &truncated, None);
    assert!(
        out.status.success(),
        "undetectable without the anchor: {}",
        stdout(&out)
    );
    let out = verify_offline(dir.path(), &truncated, Some(&anchor));
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let line = stdout(&out);
    assert!(
        line.starts_with(&format!(
            "AUDIT CHAIN BROKEN at sequence {} (anchored_checkpoint_missing)",
            keep + 1
        )),
        "{line}"
    );
    assert!(line.contains("history was deleted"), "{line}");

    // Every checkpoint deleted, an event edited, the chain re-hashed: broken even without
    // the anchor.
    let rehashed = dir.path().join("rehashed.db");
    copy_database(&live, &rehashed);
    tamper(&rehashed, "DELETE FROM audit_checkpoints;");
    edit_and_rehash(&rehashed, 4);
    let out = verify_offline(dir.path(), &rehashed, None);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(stdout(&out).contains("(no_checkpoint)"), "{}", stdout(&out));
    let out = verify_offline(dir.path(), &rehashed, Some(&anchor));
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));

    // A checkpoint in the middle deleted: a gap in the checkpoint chain.
    let gap = dir.path().join("gap.db");
    copy_database(&live, &gap);
    tamper(
        &gap,
        &format!("DELETE FROM audit_checkpoints WHERE seq = {};", seqs[2]),
    );
    let out = verify_offline(dir.path(), &gap, None);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(
        stdout(&out).starts_with(&format!(
            "AUDIT CHAIN BROKEN at sequence {} (checkpoint_gap)",
            seqs[2]
        )),
        "{}",
        stdout(&out)
    );

    // A garbled anchor file is an error, never "no anchors".
    let garbled = anchor_dir.path().join("garbled.jsonl");
    std::fs::write(&garbled, "not an anchor\n").expect("write");
    let out = verify_offline(dir.path(), &copy, Some(&garbled));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("line 1"), "{}", stderr(&out));
}

/// Whether `oathtool` is installed. `.ci/run` installs it and sets
/// `PORTCULLIS_REQUIRE_OATHTOOL=1`, so in CI a missing `oathtool` fails instead of skipping; on a
/// fresh developer machine the README's `cargo test --workspace` still passes without it.
fn oathtool_available() -> bool {
    let found = Command::new("oathtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && std::env::var_os("PORTCULLIS_REQUIRE_OATHTOOL").is_some() {
        panic!("oathtool is required (PORTCULLIS_REQUIRE_OATHTOOL is set) but not installed");
    }
    found
}

/// A TOTP code for `offset_steps` from now: from `oathtool` when installed (an implementation
/// we did not write), otherwise from ours.
fn code_for(secret_b32: &str, offset_steps: i64) -> String {
    if oathtool_available() {
        let when = format!("now + {} seconds", offset_steps * 30);
        return oathtool(secret_b32, &when);
    }
    let secret = portcullis_core::totp::base32_decode(secret_b32).expect("base32 secret");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    portcullis_core::totp::generate(&secret, (now + offset_steps * 30) as u64).expect("code")
}

/// `oathtool` (from oath-toolkit, which we did not write) computes a TOTP code.
fn oathtool(secret_b32: &str, when: &str) -> String {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", "-N", when, secret_b32])
        .output()
        .expect("oathtool is installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "oathtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn totp_codes_agree_with_oathtool() {
    if !oathtool_available() {
        eprintln!("skipped: oathtool is not installed (CI installs it and requires it)");
        return;
    }
    for (secret, t) in [
        (&b"12345678901234567890"[..], 59u64),
        (&b"a rather different secret!"[..], 1_111_111_109),
        (&[0xffu8; 20][..], 2_000_000_000),
        (&b"0123456789abcdef"[..], 1_700_000_017),
    ] {
        let b32 = portcullis_core::totp::base32(secret);
        let ours = portcullis_core::totp::generate(secret, t).expect("code");
        assert_eq!(ours, oathtool(&b32, &format!("@{t}")), "T={t}");
    }
}

fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn with_config(cmd: &mut Command, cfg: &Path) {
    cmd.env("PORTCULLIS_CONFIG_DIR", cfg);
}

fn run_with_stdin(mut cmd: Command, input: &str) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    child.wait_with_output().expect("wait")
}

#[test]
fn accounts_through_the_cli() {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("cfg");
    let mut server = serve(dir.path());
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &server.token).expect("token file");

    // bootstrap: password on stdin, the TOTP secret printed, the code from oathtool.
    let mut child = portcullis(dir.path())
        .args(["--server", &server.url, "bootstrap", "--token-file"])
        .arg(&token_file)
        .args([
            "--username",
            "root-admin",
            "--display-name",
            "Root Admin",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bootstrap");
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "violet-kettle-orbit-93").expect("password");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let secret = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("secret: ").map(str::to_owned))
        .expect("secret printed");
    writeln!(stdin, "{}", code_for(&secret, 0)).expect("code");
    drop(stdin);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "bootstrap failed: {}", stderr(&out));
    assert!(
        rest.join("\n")
            .contains("created the first administrator root-admin")
    );
    assert!(stderr(&out).contains("otpauth://totp/"), "QR and URI shown");

    // login with the next code from oathtool; the session is stored 0600.
    let mut login = portcullis(dir.path());
    login.args([
        "--server",
        &server.url,
        "login",
        "--username",
        "root-admin",
        "--password-stdin",
        "--code",
    ]);
    login.arg(code_for(&secret, 1));
    with_config(&mut login, &cfg);
    let out = run_with_stdin(login, "violet-kettle-orbit-93\n");
    assert!(out.status.success(), "login: {}", stderr(&out));
    let mode = std::fs::metadata(cfg.join("session.json"))
        .expect("stored")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    let cmd = |args: &[&str]| {
        let mut c = portcullis(dir.path());
        c.args(["--server", &server.url]).args(args);
        with_config(&mut c, &cfg);
        c
    };
    let out = cmd(&["--output", "json", "whoami"])
        .output()
        .expect("whoami");
    assert!(out.status.success(), "{}", stderr(&out));
    let me: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(me["user"]["name"], "root-admin");
    assert_eq!(me["session"]["strength"], "mfa");

    let out = run_with_stdin(
        cmd(&[
            "users",
            "create",
            "alice",
            "--email",
            "alice@example.org",
            "--password-stdin",
        ]),
        "password1234\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("password_policy"), "{}", stderr(&out));
    let out = run_with_stdin(
        cmd(&[
            "users",
            "create",
            "alice",
            "--email",
            "alice@example.org",
            "--guest-org",
            "Contoso",
            "--password-stdin",
        ]),
        "orbit-lantern-97-quay\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("guest (Contoso)"));
    assert!(
        cmd(&["groups", "create", "approvers", "--role-assignable"])
            .output()
            .expect("run")
            .status
            .success()
    );
    assert!(
        cmd(&["groups", "add", "approvers", "alice"])
            .output()
            .expect("run")
            .status
            .success()
    );
    let out = cmd(&["--output", "json", "groups", "list"])
        .output()
        .expect("run");
    let groups: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(groups[0]["members"][0], "alice");
    let out = cmd(&["--output", "json", "sessions", "list"])
        .output()
        .expect("run");
    let sessions: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(sessions.as_array().map(Vec::len), Some(1));
    assert_eq!(sessions[0]["current"], true);
    let out = cmd(&["--output", "json", "users", "list"])
        .output()
        .expect("run");
    let users: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(users.as_array().map(Vec::len), Some(2));

    // Roles: a custom role, its settings, an assignment, the refusal to delete it while
    // assigned, and a just-in-time activation through the CLI.
    let ok = |args: &[&str]| {
        let out = cmd(args).output().expect("run");
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        out
    };
    let json = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        serde_json::from_slice(&ok(&all).stdout).expect("json")
    };
    let roles = json(&["roles", "list"]);
    assert!(
        roles
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x["slug"] == "global-administrator"))
    );
    ok(&[
        "roles",
        "create",
        "payroll-admin",
        "--permissions",
        "app:payroll.admin,users.read",
    ]);
    ok(&[
        "roles",
        "settings",
        "set",
        "payroll-admin",
        "--max-duration",
        "2h",
        "--require-ticket",
        "true",
    ]);
    let settings = json(&["roles", "settings", "get", "payroll-admin"]);
    assert_eq!(
        (
            settings["max_activation_seconds"].as_i64(),
            settings["require_ticket"].as_bool()
        ),
        (Some(7200), Some(true))
    );
    ok(&["assign", "alice", "payroll-admin", "--for", "30d"]);
    let assigned = json(&["assignments", "--principal", "alice"]);
    let id = assigned[0]["id"].as_str().expect("id").to_owned();
    assert_eq!(assigned[0]["kind"], "eligible");
    let out = cmd(&["roles", "delete", "payroll-admin"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&id),
        "the error lists the assignment: {}",
        stderr(&out)
    );
    let out = cmd(&["assign", "alice", "no-such-role"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not_found"), "{}", stderr(&out));
    ok(&["unassign", "alice", "payroll-admin"]);
    ok(&["roles", "delete", "payroll-admin"]);
    // Nobody assigns a role to themselves (privilege model rule 2), not even a reader role.
    let out = cmd(&["assign", "root-admin", "audit-reader"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("self_assignment"), "{}", stderr(&out));
    ok(&["assign", "alice", "audit-reader"]);
    // Alice signs in (password only: she has no factor yet and is not privileged), enrols a
    // TOTP factor within the five minutes a new credential allows, and signs in with it.
    let alice_cfg = dir.path().join("alice-cfg");
    let as_alice = |args: &[&str]| {
        let mut c = portcullis(dir.path());
        c.args(["--server", &server.url]).args(args);
        with_config(&mut c, &alice_cfg);
        c
    };
    let out = run_with_stdin(
        as_alice(&["login", "--username", "alice", "--password-stdin"]),
        "orbit-lantern-97-quay\n",
    );
    assert!(out.status.success(), "alice: {}", stderr(&out));
    let mut enrol = as_alice(&["mfa", "enroll", "totp"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn enrol");
    let mut enrol_in = enrol.stdin.take().expect("stdin");
    let mut enrol_out = BufReader::new(enrol.stdout.take().expect("stdout")).lines();
    let alice_secret = enrol_out
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("secret: ").map(str::to_owned))
        .expect("secret printed");
    writeln!(enrol_in, "{}", code_for(&alice_secret, 0)).expect("code");
    drop(enrol_in);
    let enrolled: Vec<String> = enrol_out.map_while(Result::ok).collect();
    assert!(enrolled.join("\n").contains("enrolled"), "{enrolled:?}");
    let out = enrol.wait_with_output().expect("enrol");
    assert!(out.status.success(), "enrol: {}", stderr(&out));
    let mut login = as_alice(&["login", "--username", "alice", "--password-stdin", "--code"]);
    login.arg(code_for(&alice_secret, 1));
    let out = run_with_stdin(login, "orbit-lantern-97-quay\n");
    assert!(out.status.success(), "alice login: {}", stderr(&out));
    let alice_ok = |args: &[&str]| {
        let out = as_alice(args).output().expect("run");
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        out
    };
    let alice_json = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        serde_json::from_slice(&alice_ok(&all).stdout).expect("json")
    };
    let out = as_alice(&["request", "audit-reader", "--for", "0s", "--reason", "x"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let req = alice_json(&[
        "request",
        "audit-reader",
        "--for",
        "15m",
        "--reason",
        "check the log",
    ]);
    assert_eq!(req["state"], "active");
    let me = alice_json(&["whoami"]);
    let left = me["roles"]
        .as_array()
        .and_then(|r| r.iter().find(|x| x["role"] == "audit-reader"))
        .and_then(|x| x["seconds_left"].as_i64())
        .expect("audit-reader with time left");
    assert!((890..=900).contains(&left), "{left}");
    let out = alice_ok(&["whoami"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("role: audit-reader at / (14m"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mine = alice_json(&["requests"]);
    assert_eq!(mine[0]["state"], "active");
    alice_ok(&["deactivate", "audit-reader"]);
    let mine = alice_json(&["requests", "--mine"]);
    assert_eq!(mine[0]["state"], "deactivated");
    // Her stored login holds no session token in the clear (keyring, or sealed in the file).
    let stored = std::fs::read_to_string(alice_cfg.join("session.json")).expect("stored login");
    let stored: serde_json::Value = serde_json::from_str(&stored).expect("json");
    assert_eq!(stored["token"], "", "{stored}");
    assert!(stored["session_token_store"].is_string(), "{stored}");

    // Service accounts: without a key a client secret is printed once; with --public-key
    // (a key made by openssl, when it is installed) the key is registered with the account.
    let out = ok(&["service-accounts", "create", "report-job"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("client_id: report-job"), "{text}");
    assert!(text.contains("client_secret: pcs_"), "{text}");
    let shown = json(&["service-accounts", "show", "report-job"]);
    assert_eq!(shown["secrets"].as_array().map(Vec::len), Some(1));
    assert!(
        !shown.to_string().contains("pcs_"),
        "the secret is never shown again"
    );
    // Networks it may authenticate from: set, refused when malformed, lifted.
    let d = json(&[
        "service-accounts",
        "networks",
        "report-job",
        "--cidr",
        "10.0.0.0/8,2001:db8::/32",
    ]);
    assert_eq!(
        d["allowed_networks"],
        serde_json::json!(["10.0.0.0/8", "2001:db8::/32"])
    );
    let out = cmd(&[
        "service-accounts",
        "networks",
        "report-job",
        "--cidr",
        "10.0.0.1/8",
    ])
    .output()
    .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("did you mean 10.0.0.0/8"),
        "{}",
        stderr(&out)
    );
    let d = json(&["service-accounts", "networks", "report-job", "--any"]);
    assert_eq!(d["allowed_networks"], serde_json::json!([]));

    // Device codes: another CLI's code approved from here; a bad code refused clearly.
    let started = form_post(
        &server,
        "/oauth2/device_authorization",
        "client_id=portcullis-cli",
    );
    let user_code = started["user_code"].as_str().expect("user code").to_owned();
    let out = ok(&["device", "approve", &user_code]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("approved"));
    let device_code = started["device_code"].as_str().expect("device code");
    let tokens = form_post(
        &server,
        "/oauth2/token",
        &format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&client_id=portcullis-cli&device_code={device_code}"
        ),
    );
    assert!(
        tokens["refresh_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("pcr_")),
        "{tokens}"
    );
    let out = cmd(&["device", "approve", "nope"]).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("invalid_request"), "{}", stderr(&out));

    // `login --device` from another "machine" (its own config directory, the sealed-file
    // store): the code it shows is approved from here; its login then refreshes itself, keeps
    // its refresh token sealed, and ends with one clear line when a rotated refresh token is
    // replayed.
    let cfg2 = dir.path().join("cfg2");
    let mut device_cmd = portcullis(dir.path());
    device_cmd
        .args(["--server", &server.url, "login", "--device"])
        .env("PORTCULLIS_CREDENTIAL_STORE", "file")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    with_config(&mut device_cmd, &cfg2);
    let mut child = device_cmd.spawn().expect("login --device");
    let mut err = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut shown = String::new();
    let user_code = loop {
        let mut line = String::new();
        assert!(
            std::io::BufRead::read_line(&mut err, &mut line).expect("read") > 0,
            "login --device ended early: {shown}"
        );
        shown.push_str(&line);
        if let Some(rest) = line.split("enter the code ").nth(1) {
            break rest.trim().to_owned();
        }
    };
    ok(&["device", "approve", &user_code]);
    let status = child.wait().expect("login --device ends");
    assert!(status.success(), "login --device: {shown}");
    let cmd2 = |args: &[&str]| {
        let mut c = portcullis(dir.path());
        c.args(["--server", &server.url, "--output", "json"])
            .args(args)
            .env("PORTCULLIS_CREDENTIAL_STORE", "file");
        with_config(&mut c, &cfg2);
        c.output().expect("run")
    };
    let me: serde_json::Value =
        serde_json::from_slice(&cmd2(&["whoami"]).stdout).expect("whoami json");
    assert_eq!(me["user"]["name"], "root-admin");
    let stored_path = cfg2.join("session.json");
    let first = std::fs::read_to_string(&stored_path).expect("stored");
    assert!(
        first.contains("sealed_refresh_token") && !first.contains("pcr_"),
        "{first}"
    );
    // The access token "expires": the next command refreshes it and rotates the refresh token.
    let mut expired: serde_json::Value = serde_json::from_str(&first).expect("json");
    expired["expires_at"] = 0.into();
    std::fs::write(&stored_path, expired.to_string()).expect("write");
    let out = cmd2(&["whoami"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let second: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stored_path).expect("stored"))
            .expect("json");
    assert_ne!(
        second["sealed_refresh_token"],
        expired["sealed_refresh_token"]
    );
    assert!(second["expires_at"].as_i64().expect("exp") > 0);
    // Replaying the rotated refresh token (an old copy of the file) ends the login everywhere.
    std::fs::write(&stored_path, expired.to_string()).expect("write old copy");
    let out = cmd2(&["whoami"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("your login has ended"),
        "{}",
        stderr(&out)
    );
    assert!(!stored_path.exists(), "the ended login is forgotten");

    // Logging out of a device login revokes it on the server: a copy of the file is useless.
    let mut device_cmd = portcullis(dir.path());
    device_cmd
        .args(["--server", &server.url, "login", "--device"])
        .env("PORTCULLIS_CREDENTIAL_STORE", "file")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    with_config(&mut device_cmd, &cfg2);
    let mut child = device_cmd.spawn().expect("login --device");
    let mut err = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let user_code = loop {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut err, &mut line).expect("read") > 0);
        if let Some(rest) = line.split("enter the code ").nth(1) {
            break rest.trim().to_owned();
        }
    };
    ok(&["device", "approve", &user_code]);
    assert!(child.wait().expect("ends").success());
    let copy = std::fs::read_to_string(&stored_path).expect("stored");
    let out = cmd2(&["logout"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    let mut expired: serde_json::Value = serde_json::from_str(&copy).expect("json");
    expired["expires_at"] = 0.into();
    std::fs::write(&stored_path, expired.to_string()).expect("restore a copy");
    let out = cmd2(&["whoami"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("your login has ended"),
        "{}",
        stderr(&out)
    );

    // Signing keys: list, rotate, and a second rotation from the same key refused.
    let keys = json(&["keys", "list"]);
    assert_eq!(keys.as_array().map(Vec::len), Some(1));
    assert_eq!(keys[0]["active"], true);
    let first = keys[0]["key_id"].as_str().expect("kid").to_owned();
    let rotated = json(&["keys", "rotate", "--previous", &first]);
    assert_eq!(rotated["previous_key_id"], first.as_str());
    let out = cmd(&["keys", "rotate", "--previous", &first])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("conflict"), "{}", stderr(&out));
    let keys = json(&["keys", "list"]);
    assert_eq!(keys.as_array().map(Vec::len), Some(2));
    assert_eq!(
        keys[1]["published"], true,
        "the old key stays in JWKS for now"
    );

    if openssl_available() {
        let private = dir.path().join("nightly.pem");
        let public = dir.path().join("nightly.pub");
        let run = |args: &[&std::ffi::OsStr]| {
            let out = Command::new("openssl")
                .args(args)
                .output()
                .expect("openssl");
            assert!(out.status.success(), "{}", stderr(&out));
        };
        run(&[
            "genpkey".as_ref(),
            "-algorithm".as_ref(),
            "ed25519".as_ref(),
            "-out".as_ref(),
            private.as_os_str(),
        ]);
        run(&[
            "pkey".as_ref(),
            "-in".as_ref(),
            private.as_os_str(),
            "-pubout".as_ref(),
            "-out".as_ref(),
            public.as_os_str(),
        ]);
        let private_arg = private.to_str().expect("utf-8 path");
        let out = cmd(&[
            "service-accounts",
            "create",
            "leaky",
            "--public-key",
            private_arg,
        ])
        .output()
        .expect("run");
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("invalid_public_key"),
            "{}",
            stderr(&out)
        );
        let created = json(&[
            "service-accounts",
            "create",
            "nightly",
            "--public-key",
            public.to_str().expect("utf-8 path"),
            "--key-id",
            "cli-1",
        ]);
        assert_eq!(created["client_id"], "nightly");
        assert_eq!(created["keys"][0]["key_id"], "cli-1");
        assert_eq!(created["keys"][0]["algorithm"], "EdDSA");
        assert!(created["secrets"].as_array().is_some_and(Vec::is_empty));
        ok(&["service-accounts", "key", "remove", "nightly", "cli-1"]);
        let shown = json(&["service-accounts", "show", "nightly"]);
        assert!(shown["keys"].as_array().is_some_and(Vec::is_empty));
    } else {
        eprintln!("skipped the --public-key part: openssl is not installed");
    }

    // logout forgets the session; the next call is refused with one clear line.
    let out = cmd(&["logout"]).output().expect("logout");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!cfg.join("session.json").exists());
    let out = cmd(&["whoami"]).output().expect("whoami");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unauthenticated"));
    let status = sigterm(&mut server.child);
    assert!(status.success());
}

/// `POST path` with a form body over plain HTTP/1.1 to the test server; the JSON answer.
fn form_post(server: &Server, path: &str, body: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let addr = server.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let (_, json) = answer.split_once("\r\n\r\n").expect("head and body");
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

/// A fresh server whose first administrator (password and TOTP) is signed in with the CLI in
/// `admin_cfg`, to approve device codes.
fn server_with_admin(dir: &Path, admin_cfg: &Path) -> Server {
    use std::io::Write;
    let server = serve(dir);
    let token_file = dir.join("token");
    std::fs::write(&token_file, &server.token).expect("token file");
    let mut child = portcullis(dir)
        .args(["--server", &server.url, "bootstrap", "--token-file"])
        .arg(&token_file)
        .args([
            "--username",
            "root-admin",
            "--display-name",
            "Root Admin",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bootstrap");
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "violet-kettle-orbit-93").expect("password");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let secret = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("secret: ").map(str::to_owned))
        .expect("secret printed");
    writeln!(stdin, "{}", code_for(&secret, 0)).expect("code");
    drop(stdin);
    for _ in lines.map_while(Result::ok) {}
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "bootstrap failed: {}", stderr(&out));
    let mut login = portcullis(dir);
    login.args([
        "--server",
        &server.url,
        "login",
        "--username",
        "root-admin",
        "--password-stdin",
        "--code",
    ]);
    login.arg(code_for(&secret, 1));
    with_config(&mut login, admin_cfg);
    let out = run_with_stdin(login, "violet-kettle-orbit-93\n");
    assert!(out.status.success(), "login: {}", stderr(&out));
    server
}

/// `portcullis clients`: a confidential client's secret is printed once and never shown again,
/// a public client has none, an insecure redirect URI is refused with nothing registered, at
/// most two secrets live at once, and a deleted client is gone.
#[test]
fn oidc_clients_through_the_cli() {
    let dir = tempfile::tempdir().expect("tmp");
    let admin = dir.path().join("admin");
    let mut server = server_with_admin(dir.path(), &admin);
    let run = |args: &[&str]| {
        let mut c = portcullis(dir.path());
        c.args(["--server", &server.url]).args(args);
        with_config(&mut c, &admin);
        c.output().expect("run")
    };
    let ok = |args: &[&str]| {
        let out = run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr(&out),
        )
    };
    let json = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        serde_json::from_str(&ok(&all).0).expect("json")
    };
    let names = |list: &serde_json::Value| -> Vec<String> {
        let mut n: Vec<String> = list
            .as_array()
            .expect("a list")
            .iter()
            .map(|c| c["name"].as_str().expect("name").to_owned())
            .collect();
        n.sort();
        n
    };
    let field = |text: &str, key: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {text}"))
            .to_owned()
    };
    assert_eq!(json(&["clients", "list"]), serde_json::json!([]));

    // Confidential (the default): client id and secret on stdout, the warning on stderr.
    let (text, warned) = ok(&[
        "clients",
        "create",
        "Payroll Portal",
        "--redirect-uri",
        "https://payroll.example.com/cb,http://127.0.0.1:8400/cb",
    ]);
    let client_id = field(&text, "client_id: ");
    let secret = field(&text, "client_secret: ");
    assert!(client_id.starts_with("pcc_"), "{text}");
    assert!(secret.starts_with("pcs_") && secret.len() > 20, "{text}");
    assert!(warned.contains("shown once"), "{warned}");
    assert!(!warned.contains(&secret), "the secret only on stdout");
    let shown = json(&["clients", "show", "Payroll Portal"]);
    assert_eq!(shown["client_id"], client_id.as_str());
    assert_eq!(shown["kind"], "confidential");
    assert_eq!(
        shown["redirect_uris"],
        serde_json::json!(["https://payroll.example.com/cb", "http://127.0.0.1:8400/cb"])
    );
    assert_eq!(shown["secrets"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        shown["secrets"][0]["id"],
        field(&text, "secret_id: ").as_str()
    );
    assert!(!shown.to_string().contains("pcs_"), "never shown again");
    let (by_id, _) = ok(&["clients", "show", &client_id]);
    assert!(by_id.contains("name: Payroll Portal"), "{by_id}");
    assert!(by_id.contains("https://payroll.example.com/cb"), "{by_id}");
    assert!(!by_id.contains("pcs_"), "{by_id}");

    // Public: no secret, in the table and in JSON.
    let (text, _) = ok(&[
        "clients",
        "create",
        "wiki-spa",
        "--redirect-uri",
        "https://wiki.example.com/cb",
        "--public",
    ]);
    assert!(
        text.contains("(public)") && !text.contains("client_secret"),
        "{text}"
    );
    let public = json(&["clients", "show", "wiki-spa"]);
    assert_eq!(public["kind"], "public");
    assert_eq!(public["secrets"], serde_json::json!([]));
    let created = json(&[
        "clients",
        "create",
        "cli-app",
        "--redirect-uri",
        "http://127.0.0.1:9000/cb",
        "--redirect-uri",
        "http://[::1]:9000/cb",
        "--public",
    ]);
    assert!(created["client_secret"].is_null(), "{created}");
    assert_eq!(
        created["client"]["redirect_uris"].as_array().map(Vec::len),
        Some(2)
    );
    let listed = json(&["clients", "list"]);
    assert_eq!(names(&listed), ["Payroll Portal", "cli-app", "wiki-spa"]);

    // An insecure redirect URI: one clear line, nothing registered.
    let out = run(&[
        "clients",
        "create",
        "insecure",
        "--redirect-uri",
        "http://example.com/cb",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("http://example.com/cb: use https") && err.contains("HTTP 400"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(json(&["clients", "list"]), listed, "nothing registered");

    // Rotation: a second secret, a third refused, the first removed.
    let second = json(&["clients", "secret", "add", &client_id]);
    let second_secret = second["client_secret"].as_str().expect("secret");
    assert!(second_secret.starts_with("pcs_") && second_secret != secret);
    assert_eq!(second["client_id"], client_id.as_str());
    let out = run(&["clients", "secret", "add", "Payroll Portal"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("HTTP 409") && !stderr(&out).contains("pcs_"),
        "{}",
        stderr(&out)
    );
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v["secrets"]
            .as_array()
            .expect("secrets")
            .iter()
            .map(|s| s["id"].as_str().expect("id").to_owned())
            .collect()
    };
    let first_id = ids(&shown)[0].clone();
    let second_id = second["id"].as_str().expect("id").to_owned();
    let mut both = ids(&json(&["clients", "show", &client_id]));
    both.sort();
    let mut expected = vec![first_id.clone(), second_id.clone()];
    expected.sort();
    assert_eq!(both, expected);
    let (text, _) = ok(&["clients", "secret", "remove", "Payroll Portal", &first_id]);
    assert!(
        text.contains(&format!("removed secret {first_id}")),
        "{text}"
    );
    assert_eq!(ids(&json(&["clients", "show", &client_id])), [second_id]);
    let out = run(&["clients", "secret", "remove", &client_id, &first_id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not_found"), "{}", stderr(&out));
    let out = run(&["clients", "secret", "add", "wiki-spa"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("PKCE"), "{}", stderr(&out));

    // Delete: gone by id and by name.
    let (text, _) = ok(&["clients", "delete", &client_id]);
    assert!(text.contains("deleted client"), "{text}");
    for who in [client_id.as_str(), "Payroll Portal"] {
        let out = run(&["clients", "show", who]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("not_found"), "{}", stderr(&out));
    }
    assert_eq!(names(&json(&["clients", "list"])), ["cli-app", "wiki-spa"]);
    assert!(sigterm(&mut server.child).success());
}

/// One HTTP request the test receiver got.
struct Received {
    path: String,
    /// Lower-cased names.
    headers: std::collections::BTreeMap<String, String>,
    body: String,
}

type Inbox = std::sync::Arc<std::sync::Mutex<Vec<Received>>>;

/// A webhook receiver on 127.0.0.1: answers every request `200` and records it.
fn receiver() -> (u16, Inbox) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind receiver");
    let port = listener.local_addr().expect("receiver address").port();
    let inbox = Inbox::default();
    let log = inbox.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let log = log.clone();
            std::thread::spawn(move || {
                let _ = answer(stream, &log);
            });
        }
    });
    (port, inbox)
}

/// Reads one HTTP/1.1 request (Content-Length body), records it, answers `200` and closes.
fn answer(stream: std::net::TcpStream, log: &Inbox) -> std::io::Result<()> {
    use std::io::{Read, Write};
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut r = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let path = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let mut headers = std::collections::BTreeMap::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
            break;
        }
        if let Some((k, v)) = line.trim_end().split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let len = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    log.lock().expect("inbox").push(Received {
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    (&stream).write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
}

/// HMAC-SHA256 (RFC 2104) from the hash alone, to check `X-Portcullis-Signature`
/// independently of the server's `hmac` crate.
fn hmac_sha256_hex(key: &[u8], msg: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let inner = Sha256::new()
        .chain_update(k.map(|b| b ^ 0x36))
        .chain_update(msg)
        .finalize();
    let outer = Sha256::new()
        .chain_update(k.map(|b| b ^ 0x5c))
        .chain_update(inner)
        .finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

/// `portcullis alerts`: a webhook channel whose signing key comes from stdin and is never
/// shown, a test message delivered (and signed) exactly once, `--wait` failing with the last
/// error, bad channels refused with nothing added, removal, and the delivery log.
#[test]
fn alerts_through_the_cli() {
    const SECRET: &str = "hook-signing-key-4f9c2a7e81";
    let dir = tempfile::tempdir().expect("tmp");
    let admin = dir.path().join("admin");
    let mut server = server_with_admin(dir.path(), &admin);
    let (port, inbox) = receiver();
    let command = |args: &[&str]| {
        let mut c = portcullis(dir.path());
        c.args(["--server", &server.url]).args(args);
        with_config(&mut c, &admin);
        c
    };
    let run = |args: &[&str]| command(args).output().expect("run");
    let ok = |args: &[&str]| {
        let out = run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr(&out),
        )
    };
    let json = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        serde_json::from_str(&ok(&all).0).expect("json")
    };
    let no_secret = |text: &str| assert!(!text.contains("4f9c2a7e81"), "secret shown: {text}");
    assert_eq!(json(&["alerts", "channels", "list"]), serde_json::json!([]));

    // A signed webhook: the key from stdin (trimmed), never echoed.
    let hook_url = format!("http://127.0.0.1:{port}/x");
    let out = run_with_stdin(
        command(&[
            "alerts",
            "channels",
            "add",
            "hook",
            "--kind",
            "webhook",
            "--url",
            &hook_url,
            "--secret-stdin",
        ]),
        &format!("  {SECRET}  \n"),
    );
    assert!(out.status.success(), "add hook: {}", stderr(&out));
    let added = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        added.contains("added webhook channel hook") && added.contains("signed"),
        "{added}"
    );
    no_secret(&added);
    no_secret(&stderr(&out));
    let listed = json(&["alerts", "channels", "list"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["name"], "hook");
    assert_eq!(listed[0]["kind"], "webhook");
    assert_eq!(listed[0]["signed"], true);
    assert_eq!(listed[0]["min_severity"], "info");
    // The URL's path and query (where webhook services put their token) are not shown.
    assert_eq!(
        listed[0]["config"]["url"],
        format!("http://127.0.0.1:{port}/…")
    );
    assert_eq!(listed[0]["config"]["shape"], "generic");
    no_secret(&listed.to_string());
    let (table, _) = ok(&["alerts", "channels", "list"]);
    assert!(
        table.contains("hook")
            && table.contains(&format!("http://127.0.0.1:{port}/…"))
            && !table.contains(&hook_url)
            && table.contains("true"),
        "{table}"
    );
    no_secret(&table);

    // Refusals: one clear message each, nothing added.
    let out = run(&["alerts", "channels", "add", "p", "--kind", "pager"]);
    assert_eq!(out.status.code(), Some(2), "bad usage");
    let err = stderr(&out);
    assert!(
        err.contains("invalid value 'pager'") && err.contains("email, webhook, sms"),
        "{err}"
    );
    let out = run(&[
        "alerts",
        "channels",
        "add",
        "plain",
        "--kind",
        "webhook",
        "--url",
        "http://example.com/x",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("http://example.com/x: use https") && err.contains("HTTP 400"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let sms_url = format!("http://127.0.0.1:{port}/sms");
    let out = run(&[
        "alerts",
        "channels",
        "add",
        "sms",
        "--kind",
        "sms",
        "--url",
        &sms_url,
        "--to",
        "+41791234567",
        "--template",
        "to={to}",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("must contain {message}") && err.contains("HTTP 400"),
        "{err}"
    );
    let out = run_with_stdin(
        command(&[
            "alerts",
            "channels",
            "add",
            "short",
            "--kind",
            "webhook",
            "--url",
            &hook_url,
            "--secret-stdin",
        ]),
        "tooshort\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("16 to 256 characters") && !stderr(&out).contains("tooshort"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        json(&["alerts", "channels", "list"]),
        listed,
        "nothing added"
    );

    // An SMS gateway: headers pass through as given (`env:NAME` stays a name), two recipients.
    let sms = json(&[
        "alerts",
        "channels",
        "add",
        "sms",
        "--kind",
        "sms",
        "--url",
        &sms_url,
        "--to",
        "+41791234567,+41797654321",
        "--template",
        r#"{"to":"{to}","text":"{message}"}"#,
        "--header",
        "Content-Type: application/json",
        "--header",
        "Authorization: env:PORTCULLIS_ALERT_SECRET_SMS_TOKEN",
        "--min-severity",
        "critical",
    ]);
    assert_eq!(sms["config"]["method"], "POST");
    assert_eq!(
        sms["config"]["headers"],
        serde_json::json!({
            "Authorization": "env:PORTCULLIS_ALERT_SECRET_SMS_TOKEN",
            "Content-Type": "application/json",
        })
    );
    assert_eq!(sms["signed"], false);

    // Email: SMTP credentials are a user and the name of a variable, never a password.
    let mail = json(&[
        "alerts",
        "channels",
        "add",
        "mail",
        "--kind",
        "email",
        "--smtp-url",
        "smtp://127.0.0.1:2525",
        "--from",
        "portcullis@example.com",
        "--to",
        "oncall@example.com,sec@example.com",
        "--smtp-username",
        "relay",
        "--password-env",
        "PORTCULLIS_ALERT_SECRET_SMTP_PASSWORD",
        "--min-severity",
        "critical",
    ]);
    assert_eq!(
        mail["config"]["to"],
        serde_json::json!(["oncall@example.com", "sec@example.com"])
    );
    assert_eq!(
        mail["config"]["password_env"],
        "PORTCULLIS_ALERT_SECRET_SMTP_PASSWORD"
    );
    assert_eq!(mail["min_severity"], "critical");
    ok(&["alerts", "channels", "remove", "mail"]);

    // The webhook test: delivered, once, signed with the key from stdin.
    let delivered = json(&["alerts", "channels", "test", "hook", "--wait", "20"]);
    assert_eq!(delivered.as_array().map(Vec::len), Some(1), "{delivered}");
    assert_eq!(delivered[0]["state"], "delivered", "{delivered}");
    assert_eq!(delivered[0]["topic"], "test");
    let test_id = delivered[0]["id"].as_str().expect("id").to_owned();
    {
        let got = inbox.lock().expect("inbox");
        let ids: Vec<&str> = got
            .iter()
            .map(|r| r.headers["x-portcullis-message-id"].as_str())
            .collect();
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            unique.len(),
            ids.len(),
            "no message delivered twice: {ids:?}"
        );
        let tests: Vec<&Received> = got
            .iter()
            .filter(|r| r.headers["x-portcullis-message-id"] == test_id)
            .collect();
        assert_eq!(tests.len(), 1, "the test message arrived exactly once");
        let t = tests[0];
        assert_eq!(t.path, "/x");
        assert!(t.body.contains("[TEST]"), "{}", t.body);
        no_secret(&t.body);
        for r in got.iter() {
            // Every delivery to the hook is signed: t=UNIX,v1=HMAC(key, "UNIX.BODY").
            let sig = r
                .headers
                .get("x-portcullis-signature")
                .unwrap_or_else(|| panic!("unsigned delivery: {:?}", r.headers));
            let (ts, mac) = sig
                .strip_prefix("t=")
                .and_then(|s| s.split_once(",v1="))
                .unwrap_or_else(|| panic!("signature format: {sig}"));
            assert_eq!(
                mac,
                hmac_sha256_hex(SECRET.as_bytes(), format!("{ts}.{}", r.body).as_bytes()),
                "signature of {}",
                r.body
            );
            assert_ne!(r.path, "/sms", "the SMS gateway was never reached");
        }
    }

    // The SMS test cannot be delivered (its credential variable is not set on the server):
    // --wait gives up with the last error, for each recipient.
    let out = run(&["alerts", "channels", "test", "sms", "--wait", "2"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("was not delivered")
            && err.contains("to +41791234567")
            && err.contains("to +41797654321")
            && err.contains("PORTCULLIS_ALERT_SECRET_SMS_TOKEN is not set"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // Removal: gone from the list; a second removal is not found.
    let (text, _) = ok(&["alerts", "channels", "remove", "sms"]);
    assert!(text.contains("removed alert channel sms"), "{text}");
    ok(&["alerts", "channels", "remove", "hook"]);
    assert_eq!(json(&["alerts", "channels", "list"]), serde_json::json!([]));
    let out = run(&["alerts", "channels", "remove", "hook"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not_found"), "{}", stderr(&out));

    // The delivery log: the test message delivered, with its attempt; the SMS tests dead.
    let done = json(&["alerts", "list", "--state", "delivered"]);
    let mine: Vec<&serde_json::Value> = done
        .as_array()
        .expect("list")
        .iter()
        .filter(|a| a["id"] == test_id.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "{done}");
    assert_eq!(mine[0]["channel"], "hook");
    assert_eq!(mine[0]["topic"], "test");
    assert!(
        done.as_array()
            .expect("list")
            .iter()
            .all(|a| a["state"] == "delivered"),
        "{done}"
    );
    let (table, _) = ok(&["alerts", "list", "--state", "delivered"]);
    assert!(table.contains(&test_id), "{table}");
    let shown = json(&["alerts", "show", &test_id]);
    assert_eq!(
        shown["history"].as_array().map(Vec::len),
        Some(1),
        "{shown}"
    );
    assert_eq!(shown["history"][0]["outcome"], "delivered");
    let (text, _) = ok(&["alerts", "show", &test_id]);
    assert!(
        text.contains("state: delivered") && text.contains("[TEST]") && text.contains("attempt"),
        "{text}"
    );
    let dead = json(&["alerts", "list", "--state", "dead"]);
    let dead_sms: Vec<&serde_json::Value> = dead
        .as_array()
        .expect("list")
        .iter()
        .filter(|a| a["channel"] == "sms" && a["topic"] == "test")
        .collect();
    assert_eq!(dead_sms.len(), 2, "{dead}");
    assert_eq!(dead_sms[0]["last_error"], "the channel was removed");
    let out = run(&["alerts", "retry", &test_id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("HTTP 409"), "{}", stderr(&out));
    // SMS messages held back by the hourly cap are listed as their own state (none here).
    assert_eq!(
        json(&["alerts", "list", "--state", "suppressed"]),
        serde_json::json!([])
    );
    let out = run(&["alerts", "list", "--state", "lost"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(sigterm(&mut server.child).success());
}

/// `portcullis alerts rules`: a custom rule listed next to the built-in ones, a bad window and
/// a bad count refused with the server's message and nothing added, a built-in rule that cannot
/// be removed, and removal of the custom rule.
#[test]
fn alerts_rules_through_the_cli() {
    let dir = tempfile::tempdir().expect("tmp");
    let admin = dir.path().join("admin");
    let mut server = server_with_admin(dir.path(), &admin);
    let run = |args: &[&str]| {
        let mut c = portcullis(dir.path());
        c.args(["--server", &server.url]).args(args);
        with_config(&mut c, &admin);
        c.output().expect("run")
    };
    let ok = |args: &[&str]| {
        let out = run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let rules = || -> serde_json::Value {
        serde_json::from_str(&ok(&["--output", "json", "alerts", "rules", "list"])).expect("json")
    };
    let names = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .expect("list")
            .iter()
            .map(|r| r["name"].as_str().expect("name").to_owned())
            .collect()
    };

    // Only the built-in rules at first.
    let builtin = rules();
    let builtin_names = names(&builtin);
    assert!(
        builtin_names.iter().any(|n| n == "token.refresh_reuse"),
        "{builtin}"
    );
    assert!(
        builtin
            .as_array()
            .expect("list")
            .iter()
            .all(|r| r["builtin"] == true),
        "{builtin}"
    );

    // A custom rule: listed as custom:NAME after the built-in ones, described in full.
    let added = ok(&[
        "alerts",
        "rules",
        "add",
        "failed-signins",
        "--action",
        "signin.password",
        "--outcome",
        "failure",
        "--count",
        "3",
        "--window",
        "5m",
        "--severity",
        "critical",
    ]);
    assert!(
        added.contains("added alert rule custom:failed-signins (critical)"),
        "{added}"
    );
    let with_custom = rules();
    let mut expected = builtin_names.clone();
    expected.push("custom:failed-signins".to_owned());
    assert_eq!(names(&with_custom), expected, "{with_custom}");
    let custom = &with_custom[builtin_names.len()];
    assert_eq!(custom["builtin"], false, "{custom}");
    assert_eq!(custom["severity"], "critical", "{custom}");
    assert_eq!(
        custom["description"], "3 × signin.password (outcome failure) for one target within 300 s",
        "{custom}"
    );
    let table = ok(&["alerts", "rules", "list"]);
    let row = table
        .lines()
        .find(|l| l.contains("custom:failed-signins"))
        .unwrap_or_else(|| panic!("no custom row: {table}"));
    assert!(
        row.contains("false") && row.contains("critical") && row.contains("signin.password"),
        "{table}"
    );
    assert!(
        table.contains("token.refresh_reuse") && table.contains("builtin"),
        "{table}"
    );

    // Refusals: the server's one-line reason, nothing added.
    let refused = |count: &str, window: &str, why: &str| {
        let out = run(&[
            "alerts",
            "rules",
            "add",
            "too-wide",
            "--action",
            "signin.password",
            "--count",
            count,
            "--window",
            window,
        ]);
        assert_eq!(out.status.code(), Some(1), "count {count}, window {window}");
        let err = stderr(&out);
        assert!(
            err.contains("cannot add alert rule too-wide")
                && err.contains(why)
                && err.contains("HTTP 400"),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert_eq!(rules(), with_custom, "nothing added");
    };
    refused("3", "8d", "window is between 1 second and 7 days");
    refused("0", "5m", "count is between 1 and 10000");

    // A built-in rule cannot be removed.
    let out = run(&["alerts", "rules", "remove", "token.refresh_reuse"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("token.refresh_reuse is a built-in rule") && err.contains("HTTP 403"),
        "{err}"
    );
    assert_eq!(rules(), with_custom, "nothing removed");

    // The custom rule is removed by its name; the list is the built-in rules again.
    let text = ok(&["alerts", "rules", "remove", "failed-signins"]);
    assert!(text.contains("removed alert rule failed-signins"), "{text}");
    let after = rules();
    assert_eq!(after, builtin, "no custom rule left");
    let out = run(&["alerts", "rules", "remove", "custom:failed-signins"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not_found"), "{}", stderr(&out));
    assert!(sigterm(&mut server.child).success());
}

/// `portcullis login --device` into `cfg`, with `PORTCULLIS_CREDENTIAL_STORE=store` (unset when
/// `None`); the code it shows is approved by the administrator signed in in `admin_cfg`.
/// Whether it succeeded, and all it wrote on stderr.
fn device_login(
    dir: &Path,
    server: &Server,
    admin_cfg: &Path,
    cfg: &Path,
    store: Option<&str>,
) -> (bool, String) {
    use std::io::Read;
    let mut c = portcullis(dir);
    c.args(["--server", &server.url, "login", "--device"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    with_config(&mut c, cfg);
    if let Some(store) = store {
        c.env("PORTCULLIS_CREDENTIAL_STORE", store);
    }
    let mut child = c.spawn().expect("login --device");
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut shown = String::new();
    loop {
        let mut line = String::new();
        if err.read_line(&mut line).expect("read") == 0 {
            break; // it ended without showing a code
        }
        shown.push_str(&line);
        if let Some(code) = line.split("enter the code ").nth(1) {
            let mut approve = portcullis(dir);
            approve.args(["--server", &server.url, "device", "approve", code.trim()]);
            with_config(&mut approve, admin_cfg);
            let out = approve.output().expect("approve");
            assert!(out.status.success(), "approve: {}", stderr(&out));
            break;
        }
    }
    err.read_to_string(&mut shown).expect("read");
    (child.wait().expect("login --device ends").success(), shown)
}

fn read_json(path: &Path) -> (String, serde_json::Value) {
    let text = std::fs::read_to_string(path).expect("stored login");
    let v = serde_json::from_str(&text).expect("json");
    (text, v)
}

/// The CLI's keyring entry for a server: the kernel keyring (keyutils), service `portcullis`,
/// user the server URL. Built twice, as the CLI does: a thread without a session keyring of its
/// own moves to a new one when the first entry links the persistent keyring.
#[cfg(target_os = "linux")]
fn keyring_entry(user: &str) -> Result<keyring_core::Entry, String> {
    let store: std::sync::Arc<keyring_core::CredentialStore> =
        linux_keyutils_keyring_store::Store::new().map_err(|e| e.to_string())?;
    let _ = keyring_core::Entry::new_in_store(&store, "portcullis", user);
    keyring_core::Entry::new_in_store(&store, "portcullis", user).map_err(|e| e.to_string())
}

/// Whether the kernel keyring works for this process: a probe entry written, read back and
/// deleted. Container runtimes' seccomp profiles often forbid `add_key` and `keyctl`.
#[cfg(target_os = "linux")]
fn keyring_usable() -> Result<(), String> {
    let e = keyring_entry(&format!("cli test probe {}", std::process::id()))?;
    let back = e.set_password("probe").and_then(|()| e.get_password());
    let _ = e.delete_credential();
    match back.map_err(|e| e.to_string())? {
        b if b == "probe" => Ok(()),
        other => Err(format!("read back {other:?}")),
    }
}

/// The refresh token the keyring holds for a server, if any.
#[cfg(target_os = "linux")]
fn keyring_token(server: &Server) -> Option<String> {
    match keyring_entry(&server.url).expect("entry").get_password() {
        Ok(t) => Some(t),
        Err(keyring_core::Error::NoEntry) => None,
        Err(e) => panic!("reading the keyring: {e}"),
    }
}

/// With `PORTCULLIS_CREDENTIAL_STORE=keyring` the refresh token lives in the kernel keyring:
/// session.json holds no refresh-token material, a refresh rotates the keyring entry, logout
/// revokes the family and deletes the entry. Unset, the keyring is chosen when it works, and a
/// vanished entry (a reboot) ends the login with one clear line. Where the keyring does not
/// work, forcing it is refused before a code is shown and the default falls back to the file.
#[cfg(target_os = "linux")]
#[test]
fn device_login_keeps_its_refresh_token_in_the_os_keyring() {
    let dir = tempfile::tempdir().expect("tmp");
    let (admin, cfg) = (dir.path().join("admin"), dir.path().join("cfg"));
    let mut server = server_with_admin(dir.path(), &admin);
    let stored_path = cfg.join("session.json");
    let run = |store: Option<&str>, args: &[&str]| {
        let mut c = portcullis(dir.path());
        c.args(["--server", &server.url, "--output", "json"])
            .args(args);
        with_config(&mut c, &cfg);
        if let Some(store) = store {
            c.env("PORTCULLIS_CREDENTIAL_STORE", store);
        }
        c.output().expect("run")
    };

    if let Err(why) = keyring_usable() {
        eprintln!(
            "NOTE: the OS keyring (kernel keyutils) is not usable here ({why}); checking the \
             refusal of a forced keyring and the fallback to the sealed file instead"
        );
        let (ok, shown) = device_login(dir.path(), &server, &admin, &cfg, Some("keyring"));
        assert!(!ok, "{shown}");
        assert!(
            shown.contains("PORTCULLIS_CREDENTIAL_STORE=keyring")
                && !shown.contains("enter the code"),
            "{shown}"
        );
        assert!(!stored_path.exists());
        let (ok, shown) = device_login(dir.path(), &server, &admin, &cfg, None);
        assert!(ok, "{shown}");
        assert!(
            shown.contains("the OS keyring is not usable here"),
            "{shown}"
        );
        let (text, stored) = read_json(&stored_path);
        assert_eq!(stored["refresh_token_store"], "file", "{text}");
        assert!(stored["sealed_refresh_token"].is_string(), "{text}");
        assert!(sigterm(&mut server.child).success());
        return;
    }

    // A failed assertion below must not leave the token in this user's keyring for days.
    struct DeleteEntry(String);
    impl Drop for DeleteEntry {
        fn drop(&mut self) {
            if let Ok(e) = keyring_entry(&self.0) {
                let _ = e.delete_credential();
            }
        }
    }
    let _cleanup = DeleteEntry(server.url.clone());
    let (ok, shown) = device_login(dir.path(), &server, &admin, &cfg, Some("keyring"));
    assert!(ok, "{shown}");
    assert!(!shown.contains("not usable"), "{shown}");
    let (text, stored) = read_json(&stored_path);
    assert_eq!(stored["refresh_token_store"], "keyring", "{text}");
    assert!(stored.get("sealed_refresh_token").is_none(), "{text}");
    assert!(!text.contains("pcr_"), "{text}");
    let first = keyring_token(&server).expect("a keyring entry for this server");
    assert!(first.starts_with("pcr_"));
    let out = run(Some("keyring"), &["whoami"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // The access token "expires": the refresh rotates the token in the keyring.
    let mut expired = stored.clone();
    expired["expires_at"] = 0.into();
    std::fs::write(&stored_path, expired.to_string()).expect("write");
    let out = run(Some("keyring"), &["whoami"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let me: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(me["user"]["name"], "root-admin");
    let second = keyring_token(&server).expect("still in the keyring");
    assert!(second.starts_with("pcr_") && second != first);
    let (text, after) = read_json(&stored_path);
    assert_eq!(after["refresh_token_store"], "keyring", "{text}");
    assert!(after.get("sealed_refresh_token").is_none(), "{text}");
    assert!(after["expires_at"].as_i64().expect("exp") > 0);
    assert!(!text.contains("pcr_"), "{text}");

    // logout revokes the family on the server and deletes the entry and the file.
    let out = run(Some("keyring"), &["logout"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert_eq!(keyring_token(&server), None, "logout deletes the entry");
    assert!(!stored_path.exists());
    let refused = form_post(
        &server,
        "/oauth2/token",
        &format!("grant_type=refresh_token&client_id=portcullis-cli&refresh_token={second}"),
    );
    assert_eq!(refused["error"], "invalid_grant", "{refused}");

    // Unset, the keyring is chosen because it works here. A vanished entry (a reboot clears
    // the kernel keyring) ends the login with one clear line; logout still cleans up.
    let (ok, shown) = device_login(dir.path(), &server, &admin, &cfg, None);
    assert!(ok, "{shown}");
    assert!(!shown.contains("not usable"), "{shown}");
    let (text, stored) = read_json(&stored_path);
    assert_eq!(stored["refresh_token_store"], "keyring", "{text}");
    assert!(keyring_token(&server).is_some());
    keyring_entry(&server.url)
        .expect("entry")
        .delete_credential()
        .expect("delete");
    let mut expired = stored.clone();
    expired["expires_at"] = 0.into();
    std::fs::write(&stored_path, expired.to_string()).expect("write");
    let out = run(None, &["whoami"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no longer in the OS keyring"),
        "{}",
        stderr(&out)
    );
    let out = run(None, &["logout"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stored_path.exists());
    assert!(sigterm(&mut server.child).success());
}

/// With `PORTCULLIS_CREDENTIAL_STORE=file` the refresh token is sealed in session.json as
/// before, and nothing goes to the keyring; a file from before `refresh_token_store` was
/// recorded still refreshes, and its rotated token stays in the file; logout revokes it. A
/// value the CLI does not know is refused before a code is shown.
#[test]
fn device_login_keeps_its_refresh_token_sealed_in_the_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let (admin, cfg) = (dir.path().join("admin"), dir.path().join("cfg"));
    let mut server = server_with_admin(dir.path(), &admin);
    let stored_path = cfg.join("session.json");
    let run = |args: &[&str]| {
        let mut c = portcullis(dir.path());
        c.args(["--server", &server.url, "--output", "json"])
            .args(args);
        with_config(&mut c, &cfg);
        c.output().expect("run")
    };
    #[cfg(target_os = "linux")]
    let keyring_works = keyring_usable().is_ok();

    let (ok, shown) = device_login(dir.path(), &server, &admin, &cfg, Some("vault"));
    assert!(!ok);
    assert!(
        shown.contains("PORTCULLIS_CREDENTIAL_STORE must be keyring, file or auto")
            && !shown.contains("enter the code"),
        "{shown}"
    );

    let (ok, shown) = device_login(dir.path(), &server, &admin, &cfg, Some("file"));
    assert!(ok, "{shown}");
    assert!(!shown.contains("not usable"), "{shown}");
    let (text, stored) = read_json(&stored_path);
    assert_eq!(stored["refresh_token_store"], "file", "{text}");
    assert!(stored["sealed_refresh_token"].is_string(), "{text}");
    assert!(!text.contains("pcr_"), "{text}");
    #[cfg(target_os = "linux")]
    if keyring_works {
        assert_eq!(keyring_token(&server), None, "nothing in the keyring");
    }

    // A file written before the store was recorded: `sealed_refresh_token` alone. It refreshes
    // (no variable set), and the rotated token stays sealed in the file.
    let mut legacy = stored.clone();
    legacy
        .as_object_mut()
        .expect("object")
        .remove("refresh_token_store");
    legacy["expires_at"] = 0.into();
    std::fs::write(&stored_path, legacy.to_string()).expect("write");
    let out = run(&["whoami"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (text, after) = read_json(&stored_path);
    assert_eq!(after["refresh_token_store"], "file", "{text}");
    assert!(after["sealed_refresh_token"].is_string(), "{text}");
    assert_ne!(
        after["sealed_refresh_token"],
        legacy["sealed_refresh_token"]
    );
    assert!(after["expires_at"].as_i64().expect("exp") > 0);
    assert!(!text.contains("pcr_"), "{text}");
    #[cfg(target_os = "linux")]
    if keyring_works {
        assert_eq!(keyring_token(&server), None, "still nothing in the keyring");
    }

    // logout revokes the family: a copy of the file put back is useless.
    let out = run(&["logout"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert!(!stored_path.exists());
    let mut copy = after.clone();
    copy["expires_at"] = 0.into();
    std::fs::write(&stored_path, copy.to_string()).expect("restore a copy");
    let out = run(&["whoami"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("your login has ended"),
        "{}",
        stderr(&out)
    );
    assert!(sigterm(&mut server.child).success());
}

/// `portcullis breakglass`: the tenant says it is in setup on every call until two accounts
/// exist; `create --out` writes one 0600 file per custodian and refuses bad custody before
/// anything is created; `signin --shares` rebuilds the password and signs in as the account;
/// a corrupted share or one of another account fails clearly, signs nobody in, and still
/// raises the alert; `drill` records a tested sign-in; `list` shows custody, drill and use.
#[test]
fn breakglass_through_the_cli() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tmp");
    let admin = dir.path().join("admin");
    let operator = dir.path().join("operator");
    let mut server = server_with_admin(dir.path(), &admin);
    let run_as = |cfg: &Path, args: &[&str]| {
        let mut c = portcullis(dir.path());
        c.args(["--server", &server.url]).args(args);
        with_config(&mut c, cfg);
        c
    };
    let ok = |args: &[&str]| {
        let out = run_as(&admin, args).output().expect("run");
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr(&out),
        )
    };
    for n in ["alice", "bob", "carol"] {
        let out = run_with_stdin(
            run_as(&admin, &["users", "create", n, "--password-stdin"]),
            "copper-lantern-river-42\n",
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("warning: the tenant is in setup: 0 of 2 break-glass accounts"),
            "every call says so: {}",
            stderr(&out)
        );
    }

    // Bad custody: refused before anything is written or created.
    let shares = dir.path().join("shares");
    for (args, needle) in [
        (
            vec!["--custodians", "alice,bob", "--threshold", "3"],
            "larger than the 2 custodians",
        ),
        (
            vec!["--custodians", "alice,bob,carol", "--threshold", "1"],
            "force it",
        ),
        (
            vec!["--custodians", "alice,bob,alice", "--threshold", "2"],
            "listed twice",
        ),
        (
            vec!["--custodians", "alice,nobody-here", "--threshold", "2"],
            "nobody-here is not a user",
        ),
    ] {
        let mut full = vec!["breakglass", "create", "bg-one", "--out"];
        let out_dir = shares.to_str().expect("utf-8");
        full.push(out_dir);
        full.extend(args);
        let out = run_as(&admin, &full).output().expect("run");
        assert_eq!(out.status.code(), Some(1), "{full:?}");
        assert!(stderr(&out).contains(needle), "{needle}: {}", stderr(&out));
        let left = std::fs::read_dir(&shares).map(|d| d.count()).unwrap_or(0);
        assert_eq!(left, 0, "no share files left behind by {full:?}");
    }

    // Two accounts: one written to files (0600), one printed.
    let (out, _) = ok(&[
        "breakglass",
        "create",
        "bg-one",
        "--custodians",
        "alice,bob,carol",
        "--threshold",
        "2",
        "--out",
        shares.to_str().expect("utf-8"),
    ]);
    assert!(out.contains("2 of 3 custodians"), "{out}");
    let file = |c: &str| shares.join(format!("bg-one-{c}.share"));
    for c in ["alice", "bob", "carol"] {
        let meta = std::fs::metadata(file(c)).expect("share file");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{c}");
    }
    let (printed, err) = ok(&[
        "breakglass",
        "create",
        "bg-two",
        "--custodians",
        "alice,bob",
        "--threshold",
        "2",
    ]);
    assert!(
        printed
            .lines()
            .any(|l| l.starts_with("alice: pcbg1:bg-two:alice:")),
        "{printed}"
    );
    assert!(!err.contains("tenant is in setup"), "set up now: {err}");
    // JSON output is one document: the account and its shares, nothing else on stdout.
    let (doc, _) = ok(&[
        "--output",
        "json",
        "breakglass",
        "create",
        "bg-three",
        "--custodians",
        "alice,bob",
        "--threshold",
        "2",
    ]);
    let doc: serde_json::Value = serde_json::from_str(&doc).expect("one JSON document");
    assert_eq!(doc["account"]["name"], "bg-three");
    for c in ["alice", "bob"] {
        let share = doc["shares"][c].as_str().expect("share");
        assert!(
            share.starts_with(&format!("pcbg1:bg-three:{c}:")),
            "{share}"
        );
    }
    let bob_two = dir.path().join("bob-two.share");
    let line = printed
        .lines()
        .find_map(|l| l.strip_prefix("bob: "))
        .expect("bob's share");
    std::fs::write(&bob_two, line).expect("write");

    // A corrupted share: a clear error, nobody signed in, and the alert still fires.
    let corrupted = dir.path().join("corrupted.share");
    let mut text = std::fs::read_to_string(file("bob")).expect("read");
    let at = text.find(":2:3:2:").expect("share body") + 8;
    let flipped = if &text[at..at + 1] == "A" { "B" } else { "A" };
    text.replace_range(at..at + 1, flipped);
    std::fs::write(&corrupted, text).expect("write");
    let signin = |cfg: &Path, files: &[&Path]| {
        let mut c = run_as(cfg, &["breakglass", "signin", "bg-one", "--shares"]);
        c.args(files);
        c.output().expect("run")
    };
    let out = signin(&operator, &[&file("alice"), &corrupted]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("corrupted or mistyped"),
        "{}",
        stderr(&out)
    );
    // A share of another account: refused by name.
    let out = signin(&operator, &[&file("alice"), &bob_two]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("belongs to break-glass account bg-two"),
        "{}",
        stderr(&out)
    );
    let whoami = run_as(&operator, &["whoami"]).output().expect("run");
    assert!(!whoami.status.success(), "nobody signed in");
    let (events, _) = ok(&[
        "--output",
        "json",
        "audit",
        "list",
        "--action",
        "signin.breakglass_recovery",
    ]);
    let events: serde_json::Value = serde_json::from_str(&events).expect("json");
    let reasons: Vec<&str> = events
        .as_array()
        .expect("list")
        .iter()
        .map(|e| e["details"]["reason"].as_str().expect("reason"))
        .collect();
    assert_eq!(reasons, ["corrupted_share", "foreign_share"]);
    assert!(
        events
            .as_array()
            .expect("list")
            .iter()
            .all(|e| e["details"]["emergency"] == true)
    );
    let (alerts, _) = ok(&["--output", "json", "alerts", "list"]);
    let alerts: serde_json::Value = serde_json::from_str(&alerts).expect("json");
    let fired = alerts
        .as_array()
        .expect("list")
        .iter()
        .filter(|a| {
            a["topic"] == "breakglass.activity"
                && a["text"]
                    .as_str()
                    .unwrap_or("")
                    .contains("signin.breakglass_recovery")
        })
        .count();
    assert_eq!(fired, 2, "{alerts}");

    // Two good shares: signed in as the account, with Global Administrator.
    let out = signin(&operator, &[&file("alice"), &file("carol")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("signed in as break-glass account bg-one")
    );
    let whoami = run_as(&operator, &["whoami"]).output().expect("run");
    assert!(whoami.status.success(), "{}", stderr(&whoami));
    let who = String::from_utf8_lossy(&whoami.stdout);
    assert!(
        who.contains("bg-one") && who.contains("global-administrator"),
        "{who}"
    );

    // A drill with the shares typed in by the custodians (standard input here), then the list.
    let typed = format!(
        "{}{}",
        std::fs::read_to_string(file("bob")).expect("bob"),
        std::fs::read_to_string(file("carol")).expect("carol")
    );
    let out = run_with_stdin(
        run_as(&operator, &["breakglass", "drill", "bg-one"]),
        &typed,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("drill recorded for bg-one"));
    let (list, _) = ok(&["--output", "json", "breakglass", "list"]);
    let list: serde_json::Value = serde_json::from_str(&list).expect("json");
    let one = &list[0];
    assert_eq!(one["name"], "bg-one");
    assert_eq!(
        one["custodians"],
        serde_json::json!(["alice", "bob", "carol"])
    );
    assert!(
        one["last_drill"].is_string() && one["last_use"].is_string(),
        "{one}"
    );
    let (table, _) = ok(&["breakglass", "list"]);
    assert!(
        table.contains("2 of alice, bob, carol") && table.contains("bg-two"),
        "{table}"
    );
    assert_eq!(sigterm(&mut server.child).code(), Some(0));
}

/// `portcullis ca`: named locations (bad ranges refused with nothing added), a YAML import of
/// two policies, list / show / export, an export re-imported unchanged, what-if from inside and
/// outside the office (IPv4 and IPv6), refusals that change nothing (a location in use, an
/// unknown field, a duplicated name, unknown users and groups, a lockout), and the state
/// changes.
#[test]
fn conditional_access_through_the_cli() {
    let dir = tempfile::tempdir().expect("tmp");
    let admin = dir.path().join("admin");
    let mut server = server_with_admin(dir.path(), &admin);
    let cmd = |args: &[&str]| {
        let mut c = portcullis(dir.path());
        c.args(["--server", &server.url]).args(args);
        with_config(&mut c, &admin);
        c
    };
    let ok = |args: &[&str]| {
        let out = cmd(args).output().expect("run");
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Exit 1 with one `error:` line (warnings aside), which is returned.
    let refused = |args: &[&str]| {
        let out = cmd(args).output().expect("run");
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "one error line: {err}");
        assert_eq!(
            err.lines().filter(|l| !l.starts_with("warning:")).count(),
            1,
            "nothing else: {err}"
        );
        errors[0].to_owned()
    };
    let json = |args: &[&str]| -> serde_json::Value {
        let mut full = vec!["--output", "json"];
        full.extend_from_slice(args);
        serde_json::from_str(&ok(&full)).expect("json")
    };
    let policies = || json(&["ca", "list"]);
    let locations = || json(&["ca", "locations", "list"]);
    let states = || -> Vec<(String, String)> {
        policies()
            .as_array()
            .expect("list")
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().expect("name").to_owned(),
                    p["state"].as_str().expect("state").to_owned(),
                )
            })
            .collect()
    };

    // A guest, and a member of the group ops.
    for (name, extra) in [("gina", vec!["--guest-org", "Contoso"]), ("dave", vec![])] {
        let mut args = vec!["users", "create", name, "--password-stdin"];
        args.extend(extra);
        let out = run_with_stdin(cmd(&args), "copper-lantern-river-42\n");
        assert!(out.status.success(), "{}", stderr(&out));
    }
    ok(&["groups", "create", "ops"]);
    ok(&["groups", "add", "ops", "dave"]);
    assert_eq!(policies(), serde_json::json!([]));

    // Malformed or overlapping ranges: one clear line, nothing added.
    for (cidrs, needle) in [
        ("10.0.0.0/8,10.1.0.0/16", "10.1.0.0/16 overlaps 10.0.0.0/8"),
        ("10.0.0.1/8", "host bits set (did you mean 10.0.0.0/8?)"),
        ("192.0.2.0/24,nonsense", "\"nonsense\" is not a CIDR range"),
        (
            "2001:db8::/32,2001:db8:1::/48",
            "2001:db8:1::/48 overlaps 2001:db8::/32",
        ),
    ] {
        let err = refused(&["ca", "locations", "add", "office", "--cidr", cidrs]);
        assert!(
            err.contains("cannot save named location office") && err.contains(needle),
            "{cidrs}: {err}"
        );
        assert_eq!(
            locations(),
            serde_json::json!([]),
            "nothing added by {cidrs}"
        );
    }
    let err = refused(&[
        "ca",
        "locations",
        "add",
        "trusted",
        "--cidr",
        "192.0.2.0/24",
    ]);
    assert!(err.contains("reserved"), "{err}");

    // The office: IPv4 and IPv6, trusted.
    let text = ok(&[
        "ca",
        "locations",
        "add",
        "office",
        "--cidr",
        "192.0.2.0/24,2001:db8:1::/48",
        "--trusted",
    ]);
    assert!(
        text.contains("saved named location office (trusted): 192.0.2.0/24, 2001:db8:1::/48"),
        "{text}"
    );
    let office = locations();
    assert_eq!(office[0]["name"], "office", "{office}");
    assert_eq!(office[0]["trusted"], true, "{office}");
    assert_eq!(
        office[0]["cidrs"],
        serde_json::json!(["192.0.2.0/24", "2001:db8:1::/48"]),
        "{office}"
    );

    // Two policies from YAML: guests outside the office are blocked (report-only for now),
    // ops needs MFA.
    let guests = "Guests outside the office";
    let ops = "MFA for ops";
    let yaml = dir.path().join("policies.yaml");
    std::fs::write(
        &yaml,
        format!(
            "- name: {guests}\n  description: partners work from our office only\n  state: report_only\n  conditions:\n    principals: {{include: [guests]}}\n    locations: {{include: [any], exclude: [office]}}\n  grant: {{block: true}}\n- name: {ops}\n  state: enabled\n  conditions:\n    principals:\n      include: [\"group:ops\"]\n  grant:\n    require: mfa\n"
        ),
    )
    .expect("write");
    let yaml_arg = yaml.to_str().expect("utf-8");
    let text = ok(&["ca", "import", yaml_arg]);
    assert!(
        text.contains("2 created, 0 updated, 0 unchanged")
            && text.contains(&format!("created: {guests}, {ops}")),
        "{text}"
    );
    let imported = policies();
    assert_eq!(
        states(),
        [
            (guests.to_owned(), "report_only".to_owned()),
            (ops.to_owned(), "enabled".to_owned())
        ],
        "{imported}"
    );
    assert_eq!(imported[0]["policy"]["grant"]["block"], true, "{imported}");
    assert!(
        imported[0]["updated_by"]
            .as_str()
            .is_some_and(|u| u.contains("root-admin")),
        "{imported}"
    );
    let table = ok(&["ca", "list"]);
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no row {name}: {table}"))
            .to_owned()
    };
    assert!(
        row(guests).contains("report_only")
            && row(guests).contains("block")
            && row(guests).contains("any except office"),
        "{table}"
    );
    assert!(
        row(ops).contains("enabled") && row(ops).contains("require mfa"),
        "{table}"
    );
    let used = ok(&["ca", "locations", "list"]);
    assert!(
        used.lines()
            .any(|l| l.contains("office") && l.contains("yes") && l.contains(guests)),
        "{used}"
    );

    // Show: JSON by default, YAML on request, both in the file format.
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&["ca", "show", guests])).expect("json");
    assert_eq!(shown, imported[0]["policy"], "{shown}");
    let shown = ok(&["ca", "show", ops, "--format", "yaml"]);
    assert!(
        shown.starts_with(&format!("name: {ops}\n")) && shown.contains("require: mfa"),
        "{shown}"
    );
    let err = refused(&["ca", "show", "no such policy"]);
    assert!(err.contains("not_found"), "{err}");

    // Export to JSON, re-import: every policy unchanged. The file is never overwritten unless
    // --force.
    let exported = dir.path().join("export.json");
    let exported_arg = exported.to_str().expect("utf-8");
    let text = ok(&["ca", "export", "--out", exported_arg]);
    assert!(text.contains("wrote 2 policies"), "{text}");
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&exported).expect("read")).expect("json");
    assert_eq!(file[0], imported[0]["policy"], "{file}");
    assert_eq!(file[1], imported[1]["policy"], "{file}");
    assert_eq!(
        ok(&["ca", "export"]),
        std::fs::read_to_string(&exported).expect("read")
    );
    let err = refused(&["ca", "export", "--out", exported_arg]);
    assert!(err.contains("exists") && err.contains("--force"), "{err}");
    ok(&["ca", "export", "--out", exported_arg, "--force"]);
    let text = ok(&["ca", "import", exported_arg]);
    assert!(
        text.contains("0 created, 0 updated, 2 unchanged")
            && text.contains(&format!("unchanged: {guests}, {ops}")),
        "{text}"
    );
    let yaml_export = ok(&["ca", "export", "--format", "yaml"]);
    assert!(
        yaml_export.starts_with(&format!("- name: {guests}")),
        "{yaml_export}"
    );
    let again = dir.path().join("again.yml");
    std::fs::write(&again, &yaml_export).expect("write");
    let text = ok(&[
        "--output",
        "json",
        "ca",
        "import",
        again.to_str().expect("utf-8"),
    ]);
    let r: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        r,
        serde_json::json!({"created": [], "updated": [], "unchanged": [guests, ops]})
    );
    assert_eq!(policies(), imported, "nothing changed");

    // What if: the guest outside the office is allowed, the report-only policy would block;
    // inside (IPv4 or IPv6) it does not apply.
    let outside = ok(&["ca", "whatif", "--user", "gina", "--ip", "203.0.113.7"]);
    let mut lines = outside.lines();
    assert_eq!(lines.next(), Some("allow"), "{outside}");
    assert!(
        outside.contains(&format!("report-only: {guests} would block")),
        "{outside}"
    );
    let row = outside
        .lines()
        .find(|l| l.starts_with('|') && l.contains(guests))
        .unwrap_or_else(|| panic!("{outside}"));
    assert!(
        row.contains("report_only") && row.contains("yes") && row.contains("block"),
        "{outside}"
    );
    let row = outside
        .lines()
        .find(|l| l.contains(ops))
        .unwrap_or_else(|| panic!("{outside}"));
    assert!(
        row.contains("no") && row.contains("principals: the subject matches no included entry"),
        "{outside}"
    );
    for ip in ["192.0.2.10", "2001:db8:1::5"] {
        let d = json(&["ca", "whatif", "--user", "gina", "--ip", ip]);
        assert_eq!(d["outcome"], "allow", "{ip}: {d}");
        assert_eq!(d["report_only"], serde_json::json!([]), "{ip}: {d}");
        assert_eq!(d["explanation"][0]["applies"], false, "{ip}: {d}");
        assert_eq!(
            d["explanation"][0]["reason"], "locations: excluded by office",
            "{ip}: {d}"
        );
    }
    let d = json(&["ca", "whatif", "--user", "gina", "--ip", "2001:db8:2::5"]);
    assert_eq!(d["report_only"][0]["policy"], guests, "{d}");
    assert_eq!(d["report_only"][0]["effect"], "block", "{d}");
    // A member of ops: MFA required when presenting a password, allowed with MFA.
    let text = ok(&[
        "ca",
        "whatif",
        "--user",
        "dave",
        "--ip",
        "203.0.113.7",
        "--app",
        "cli",
        "--strength",
        "password",
    ]);
    assert_eq!(
        text.lines().next(),
        Some(format!("require mfa (by: {ops})").as_str()),
        "{text}"
    );
    let d = json(&[
        "ca",
        "whatif",
        "--user",
        "dave",
        "--ip",
        "192.0.2.10",
        "--strength",
        "mfa",
    ]);
    assert_eq!(d["outcome"], "allow", "{d}");
    assert_eq!(d["explanation"][1]["applies"], true, "{d}");
    assert_eq!(d["explanation"][1]["result"]["effect"], "satisfied", "{d}");
    let err = refused(&["ca", "whatif", "--user", "nobody", "--ip", "192.0.2.10"]);
    assert!(err.contains("nobody") && err.contains("not_found"), "{err}");

    // Enforced, the guest policy blocks outside the office only.
    let text = ok(&["ca", "enable", guests]);
    assert!(
        text.contains(&format!("policy {guests} is now enabled")),
        "{text}"
    );
    let text = ok(&["ca", "whatif", "--user", "gina", "--ip", "203.0.113.7"]);
    assert_eq!(
        text.lines().next(),
        Some(format!("block (by: {guests})").as_str()),
        "{text}"
    );
    let d = json(&["ca", "whatif", "--user", "gina", "--ip", "192.0.2.99"]);
    assert_eq!(d["outcome"], "allow", "{d}");
    let enabled = policies();

    // A location in use cannot be removed.
    let err = refused(&["ca", "locations", "remove", "office"]);
    assert!(
        err.contains("cannot remove named location office")
            && err.contains(guests)
            && err.contains("HTTP 409"),
        "{err}"
    );
    assert_eq!(locations()[0]["name"], "office");

    // Refused imports change nothing: an unknown field (found here, named with the file),
    // a duplicated name, unknown users and groups (all listed).
    let bad = dir.path().join("bad-field.yaml");
    std::fs::write(
        &bad,
        format!(
            "name: {ops}\nstate: disabled\ncolour: red\nconditions:\n  principals: {{include: [all]}}\ngrant: {{require: mfa}}\n"
        ),
    )
    .expect("write");
    let err = refused(&["ca", "import", bad.to_str().expect("utf-8")]);
    assert!(
        err.contains("bad-field.yaml") && err.contains("unknown field `colour`"),
        "{err}"
    );
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "[{\"name\": \"x\",").expect("write");
    let err = refused(&["ca", "import", broken.to_str().expect("utf-8")]);
    assert!(
        err.contains("broken.json") && err.contains("not a valid JSON policy file"),
        "{err}"
    );
    let dup = dir.path().join("dup.json");
    std::fs::write(
        &dup,
        serde_json::json!([
            {"name": "Block partners", "state": "disabled",
             "conditions": {"principals": {"include": ["guests"]}}, "grant": {"block": true}},
            {"name": "block PARTNERS", "state": "disabled",
             "conditions": {"principals": {"include": ["guests"]}}, "grant": {"block": true}},
        ])
        .to_string(),
    )
    .expect("write");
    let err = refused(&["ca", "import", dup.to_str().expect("utf-8")]);
    assert!(
        err.contains("dup.json")
            && err.contains("block PARTNERS")
            && err.contains("already used by policy #1"),
        "{err}"
    );
    let unknown = dir.path().join("unknown.json");
    std::fs::write(
        &unknown,
        serde_json::json!([
            {"name": "Ghosts", "state": "enabled",
             "conditions": {"principals": {"include": ["user:nobody", "group:ghosts"]}},
             "grant": {"require": "mfa"}},
            {"name": "Phantoms", "state": "enabled",
             "conditions": {"principals": {"include": ["group:phantoms"], "exclude": ["user:casper"]},
                            "locations": {"include": ["branch"]}},
             "grant": {"block": true}},
        ])
        .to_string(),
    )
    .expect("write");
    let err = refused(&["ca", "import", unknown.to_str().expect("utf-8")]);
    for needle in [
        "unknown.json",
        "unknown user \"nobody\"",
        "unknown group \"ghosts\"",
        "unknown group \"phantoms\"",
        "unknown user \"casper\"",
        "unknown named location \"branch\"",
        "HTTP 400",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    assert_eq!(policies(), enabled, "nothing changed by refused imports");

    // The lockout guard: blocking every user everywhere is refused, nothing changes.
    let lockout = dir.path().join("lockout.yaml");
    std::fs::write(
        &lockout,
        "name: Block everyone\nstate: enabled\nconditions:\n  principals: {include: [all]}\ngrant: {block: true}\n",
    )
    .expect("write");
    let err = refused(&["ca", "import", lockout.to_str().expect("utf-8")]);
    assert!(
        err.contains("no Global Administrator could sign in")
            && err.contains("Block everyone")
            && err.contains("HTTP 409"),
        "{err}"
    );
    assert_eq!(policies(), enabled, "nothing changed by the lockout");

    // Disable, report-only, enable, delete.
    ok(&["ca", "disable", ops]);
    assert_eq!(states()[1], (ops.to_owned(), "disabled".to_owned()));
    let d = json(&[
        "ca",
        "whatif",
        "--user",
        "dave",
        "--ip",
        "192.0.2.10",
        "--strength",
        "password",
    ]);
    assert_eq!(d["outcome"], "allow", "{d}");
    assert_eq!(
        d["explanation"][1]["reason"], "disabled: not evaluated",
        "{d}"
    );
    let v = json(&["ca", "report-only", ops]);
    assert_eq!(v["state"], "report_only", "{v}");
    let d = json(&[
        "ca",
        "whatif",
        "--user",
        "dave",
        "--ip",
        "192.0.2.10",
        "--strength",
        "password",
    ]);
    assert_eq!(d["outcome"], "allow", "{d}");
    assert_eq!(d["report_only"][0]["policy"], ops, "{d}");
    assert_eq!(d["report_only"][0]["effect"], "require", "{d}");
    assert_eq!(d["report_only"][0]["strength"], "mfa", "{d}");
    ok(&["ca", "enable", ops]);
    assert_eq!(states()[1], (ops.to_owned(), "enabled".to_owned()));
    let text = ok(&["ca", "delete", guests]);
    assert!(text.contains(&format!("deleted policy {guests}")), "{text}");
    assert_eq!(states(), [(ops.to_owned(), "enabled".to_owned())]);
    let err = refused(&["ca", "delete", guests]);
    assert!(err.contains("not_found"), "{err}");

    // The device flow as a condition: what-if takes it (`--flow device_code` is the CLI's
    // device login); the API sign-in is not that flow.
    let device = dir.path().join("device.yaml");
    let no_device = "No device login for ops";
    std::fs::write(
        &device,
        format!(
            "name: {no_device}\nstate: enabled\nconditions:\n  principals: {{include: [\"group:ops\"]}}\n  authentication_flows: {{include: [device_code]}}\ngrant: {{block: true}}\n"
        ),
    )
    .expect("write");
    ok(&["ca", "import", device.to_str().expect("utf-8")]);
    let base = [
        "ca",
        "whatif",
        "--user",
        "dave",
        "--ip",
        "192.0.2.10",
        "--strength",
        "mfa",
    ];
    let text = ok(&[&base[..], &["--flow", "device_code"]].concat());
    assert_eq!(
        text.lines().next(),
        Some(format!("block (by: {no_device})").as_str()),
        "{text}"
    );
    let text = ok(&base);
    assert_eq!(text.lines().next(), Some("allow"), "{text}");
    assert!(
        text.contains("authentication_flows: the sign-in does not use an included flow"),
        "{text}"
    );
    let err = refused(&[&base[..], &["--app", "api", "--flow", "device_code"]].concat());
    assert!(err.contains("never signs in to the API"), "{err}");
    ok(&["ca", "delete", no_device]);
    // No longer in use: the location goes.
    let text = ok(&["ca", "locations", "remove", "office"]);
    assert!(text.contains("removed named location office"), "{text}");
    assert_eq!(locations(), serde_json::json!([]));
    assert!(sigterm(&mut server.child).success());
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
