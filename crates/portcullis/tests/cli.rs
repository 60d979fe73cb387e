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
    let mut child = portcullis(cwd)
        .args(["serve", "--log-format", "json"])
        .env("PORTCULLIS_LISTEN", "127.0.0.1:0")
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
    ok(&["assign", "root-admin", "audit-reader"]);
    let out = cmd(&["request", "audit-reader", "--for", "0s", "--reason", "x"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let req = json(&[
        "request",
        "audit-reader",
        "--for",
        "15m",
        "--reason",
        "check the log",
    ]);
    assert_eq!(req["state"], "active");
    let me = json(&["whoami"]);
    let left = me["roles"]
        .as_array()
        .and_then(|r| r.iter().find(|x| x["role"] == "audit-reader"))
        .and_then(|x| x["seconds_left"].as_i64())
        .expect("audit-reader with time left");
    assert!((890..=900).contains(&left), "{left}");
    let out = ok(&["whoami"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("role: audit-reader at / (14m"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mine = json(&["requests"]);
    assert_eq!(mine[0]["state"], "active");
    ok(&["deactivate", "audit-reader"]);
    let mine = json(&["requests", "--mine"]);
    assert_eq!(mine[0]["state"], "deactivated");

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

    // `login --device` from another "machine" (its own config directory): the code it shows
    // is approved from here; its login then refreshes itself, keeps its refresh token sealed,
    // and ends with one clear line when a rotated refresh token is replayed.
    let cfg2 = dir.path().join("cfg2");
    let mut device_cmd = portcullis(dir.path());
    device_cmd
        .args(["--server", &server.url, "login", "--device"])
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
            .args(args);
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
