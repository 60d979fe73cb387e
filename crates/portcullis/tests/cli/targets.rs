//! Targets through the CLI: secrets from standard input and never shown, a generated webhook
//! key printed once, bindings, and bad commands refused with one clear line.

use super::*;

/// The CLI of an administrator of a fresh server, run with `args`.
struct Admin {
    dir: tempfile::TempDir,
    cfg: std::path::PathBuf,
    server: Server,
}

impl Drop for Admin {
    fn drop(&mut self) {
        let _ = self.server.child.kill();
        let _ = self.server.child.wait();
    }
}

impl Admin {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = dir.path().join("admin");
        let server = server_with_admin(dir.path(), &cfg);
        Self { dir, cfg, server }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = portcullis(self.dir.path());
        c.args(["--server", &self.server.url]).args(args);
        with_config(&mut c, &self.cfg);
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.command(args).output().expect("run");
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates user `name` (password on standard input) bound by `role` to `target` through
    /// an assignment made with `assign_flags` (eligible when empty).
    fn person_bound(&self, name: &str, role: &str, target: &str, assign_flags: &[&str]) {
        let out = run_with_stdin(
            self.command(&["users", "create", name, "--password-stdin"]),
            "tundra-copper-violet-58\n",
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let scope = format!("/targets/{target}");
        let mut args = vec!["assign", name, role, "--scope", &scope];
        args.extend_from_slice(assign_flags);
        self.ok(&args);
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).expect("json")
    }
}

#[test]
fn a_target_secret_read_from_stdin_is_never_shown() {
    let a = Admin::new();
    let out = run_with_stdin(
        a.command(&[
            "targets",
            "add",
            "hook",
            "--kind",
            "webhook",
            "--url",
            "http://127.0.0.1:9/ops",
            "--secret-stdin",
        ]),
        "  hook-key-7c1d93e0aa  \n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = format!("{}{}", stdout(&out), stderr(&out));
    assert!(printed.contains("added webhook target hook"), "{printed}");
    assert!(!printed.contains("7c1d93e0aa"), "{printed}");
    let listed = a.json(&["targets", "list"]);
    assert_eq!(listed[0]["secret"], "sealed");
    assert!(!listed.to_string().contains("7c1d93e0aa"));
    assert!(!a.ok(&["audit", "list"]).contains("7c1d93e0aa"));
}

#[test]
fn a_webhook_target_without_a_secret_prints_its_generated_key_once() {
    let a = Admin::new();
    let added = a.ok(&[
        "targets",
        "add",
        "hook",
        "--kind",
        "webhook",
        "--url",
        "http://127.0.0.1:9/ops",
    ]);
    let key = added
        .lines()
        .find_map(|l| l.split("): ").nth(1))
        .expect("the generated key is printed")
        .trim()
        .to_owned();
    assert_eq!(key.len(), 64, "{added}");
    assert!(!a.ok(&["targets", "show", "hook"]).contains(&key));
    assert!(!a.json(&["targets", "list"]).to_string().contains(&key));
}

#[test]
fn roles_are_bound_to_a_target_and_unbound_through_the_cli() {
    let a = Admin::new();
    a.ok(&[
        "targets",
        "add",
        "hook",
        "--kind",
        "webhook",
        "--url",
        "http://127.0.0.1:9/ops",
    ]);
    a.ok(&[
        "roles",
        "create",
        "deployer",
        "--permissions",
        "target:hook.deploy",
    ]);
    let bound = a.ok(&[
        "targets",
        "bind",
        "deployer",
        "hook",
        "--grants",
        "deploy,restart",
    ]);
    assert!(
        bound.contains("bound deployer to hook (grant): deploy, restart"),
        "{bound}"
    );
    let shown = a.json(&["targets", "show", "hook"]);
    assert_eq!(shown[0]["bindings"][0]["role"], "deployer");
    assert_eq!(
        shown[0]["bindings"][0]["grants"],
        serde_json::json!(["deploy", "restart"])
    );
    assert_eq!(
        a.json(&["targets", "ops"]),
        serde_json::json!([]),
        "nothing granted yet"
    );
    let observed = a.ok(&["targets", "observe", "hook"]);
    assert!(observed.contains("cannot be observed"), "{observed}");
    a.ok(&["targets", "unbind", "deployer", "hook"]);
    assert_eq!(
        a.json(&["targets", "show", "hook"])[0]["bindings"],
        serde_json::json!([])
    );
    a.ok(&["targets", "remove", "hook"]);
    assert_eq!(a.json(&["targets", "list"]), serde_json::json!([]));
}

#[test]
fn a_persons_own_account_at_a_target_is_set_listed_and_removed_through_the_cli() {
    let a = Admin::new();
    a.ok(&[
        "targets",
        "add",
        "db",
        "--kind",
        "postgres",
        "--url",
        "postgres://connector@127.0.0.1:9/app",
        "--login",
        "{user}",
    ]);
    a.ok(&[
        "roles",
        "create",
        "reader",
        "--permissions",
        "target:db.read",
    ]);
    a.person_bound("alice", "reader", "db", &[]);
    let set = a.ok(&["targets", "accounts", "set", "db", "alice", "alice_ops"]);
    assert!(
        set.contains("alice's grants at db act on alice_ops"),
        "{set}"
    );
    let listed = a.json(&["targets", "accounts", "list", "db"]);
    assert_eq!(listed[0]["principal"], "alice");
    assert_eq!(listed[0]["account"], "alice_ops");
    let out = a
        .command(&["targets", "accounts", "set", "db", "alice", "two words"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("without spaces"), "{}", stderr(&out));
    a.ok(&["targets", "accounts", "remove", "db", "alice"]);
    assert_eq!(
        a.json(&["targets", "accounts", "list", "db"]),
        serde_json::json!([])
    );
}

#[test]
fn bad_target_commands_are_refused_with_one_clear_line() {
    let a = Admin::new();
    let out = a
        .command(&["targets", "add", "x", "--kind", "ldap", "--url", "u"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "bad usage");
    assert!(
        stderr(&out).contains("invalid value 'ldap'"),
        "{}",
        stderr(&out)
    );
    let out = a
        .command(&[
            "targets",
            "add",
            "db",
            "--kind",
            "postgres",
            "--url",
            "postgres://u:hunter2@127.0.0.1:5432/db",
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("no password in url"), "{err}");
    assert!(
        !err.contains("hunter2"),
        "the password is not repeated: {err}"
    );
    let out = a
        .command(&["targets", "bind", "nobody", "nowhere", "--grants", "x"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no target nowhere"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        a.json(&["targets", "list"]),
        serde_json::json!([]),
        "nothing added"
    );
}

/// A webhook receiver on `port` counting the grant operations it accepts (answers 200).
fn counting_receiver(port: u16) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind receiver");
    let grants = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = grants.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = vec![0u8; 65536];
            let mut got = Vec::new();
            // The head, then as much body as Content-Length says.
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if body.len() >= len {
                        if body.contains("\"op\":\"grant\"") {
                            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                        break;
                    }
                }
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    grants
}

/// kill -9 of the server after the grant committed and before any attempt could apply it (its
/// receiver is down): after a restart the operation is applied, once.
#[test]
fn an_operation_pending_at_kill_9_is_applied_once_after_the_restart() {
    let mut a = Admin::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let url = format!("http://127.0.0.1:{port}/ops");
    a.ok(&["targets", "add", "hook", "--kind", "webhook", "--url", &url]);
    a.ok(&[
        "roles",
        "create",
        "deployer",
        "--permissions",
        "target:hook.deploy",
    ]);
    a.ok(&["targets", "bind", "deployer", "hook", "--grants", "deploy"]);
    a.person_bound("dana", "deployer", "hook", &["--active", "--for", "1h"]);
    let failed_once = |a: &Admin| {
        let ops = a.json(&["targets", "ops", "--state", "pending"]);
        ops[0]["attempts"].as_i64().unwrap_or(0) >= 1 && ops[0]["last_error"].is_string()
    };
    let mut tries = 0;
    while !failed_once(&a) {
        tries += 1;
        assert!(tries < 100, "the grant was attempted");
        std::thread::sleep(Duration::from_millis(100));
    }
    a.server.child.kill().expect("kill -9");
    let _ = a.server.child.wait();

    let grants = counting_receiver(port);
    let url = a.server.url.clone();
    a.server = serve_again(a.dir.path(), &url);
    let mut tries = 0;
    while a
        .json(&["targets", "ops", "--state", "applied"])
        .as_array()
        .map_or(0, Vec::len)
        < 1
    {
        tries += 1;
        assert!(tries < 300, "applied after the restart");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        grants.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "applied exactly once"
    );
    assert_eq!(
        a.json(&["targets", "ops", "--state", "pending"]),
        serde_json::json!([])
    );
}

/// `portcullis ssh`: a person with an active grant at an ssh-ca target logs in to a real sshd
/// with a key made for the session (deleted afterwards); `ssh sign` certifies their own key;
/// after the deactivation `targets ssh krl-sync` gives sshd a KRL that refuses that
/// certificate, and signing is refused.
#[test]
fn ssh_through_the_cli_with_a_session_key_and_a_synced_krl() {
    let a = Admin::new();
    a.ok(&[
        "targets",
        "add",
        "web",
        "--kind",
        "ssh-ca",
        "--max-validity",
        "1h",
    ]);
    let shown = a.ok(&["targets", "show", "web"]);
    assert!(
        shown.contains("TrustedUserCAKeys") && shown.contains("krl-sync web"),
        "{shown}"
    );
    a.ok(&[
        "roles",
        "create",
        "operator",
        "--permissions",
        "target:web.login",
    ]);
    a.ok(&["targets", "bind", "operator", "web", "--grants", "root"]);
    a.person_bound("dana", "operator", "web", &[]);
    let dana_cfg = a.dir.path().join("dana");
    sign_in_with_new_totp(
        a.dir.path(),
        &a.server.url,
        &dana_cfg,
        "dana",
        "tundra-copper-violet-58",
    );
    let home = tempfile::tempdir().expect("home");
    let tmp = tempfile::tempdir().expect("tmp");
    let dana = |args: &[&str]| {
        let mut c = portcullis(a.dir.path());
        c.args(["--server", &a.server.url]).args(args);
        with_config(&mut c, &dana_cfg);
        c.env("HOME", home.path()).env("TMPDIR", tmp.path());
        c.output().expect("run")
    };
    let out = dana(&[
        "request",
        "operator",
        "--scope",
        "/targets/web",
        "--for",
        "15m",
        "--reason",
        "patch",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    let ca = a.ok(&["targets", "ssh", "ca-pub", "web"]);
    let Some(sshd) = crate::sshd::Sshd::start(&ca, &[("root", &["root"])]) else {
        return;
    };
    let krl = a.dir.path().join("web.krl");
    let synced = a.ok(&[
        "targets",
        "ssh",
        "krl-sync",
        "web",
        "--out",
        krl.to_str().expect("path"),
    ]);
    assert!(synced.contains("KRL version"), "{synced}");
    sshd.set_krl(&std::fs::read(&krl).expect("krl"));
    let port = sshd.port().to_string();
    let ssh_args = [
        "ssh",
        "web",
        "--",
        "-p",
        &port,
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "root@127.0.0.1",
        "echo",
        "in-as-$(whoami)",
    ];
    let out = dana(&ssh_args);
    assert!(out.status.success(), "ssh: {}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "in-as-root");
    assert!(stderr(&out).contains("valid until"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_dir(tmp.path()).expect("tmp").count(),
        0,
        "the session key and certificate are gone"
    );

    // `ssh sign` with her own key: the certificate beside it, mode 0600.
    let (key, _) = crate::sshd::keygen(home.path(), "id_ed25519");
    let out = dana(&[
        "ssh",
        "sign",
        "web",
        "--public-key",
        &format!("{}.pub", key.display()),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cert = std::path::PathBuf::from(format!("{}-cert.pub", key.display()));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&cert).expect("cert").permissions(),
    ) & 0o777;
    assert_eq!(mode, 0o600);
    sshd.login("root", &key, &cert)
        .expect("her own key, certified");

    let out = dana(&["deactivate", "operator"]);
    assert!(out.status.success(), "{}", stderr(&out));
    a.ok(&[
        "targets",
        "ssh",
        "krl-sync",
        "web",
        "--out",
        krl.to_str().expect("path"),
    ]);
    sshd.set_krl(&std::fs::read(&krl).expect("krl"));
    let e = sshd.login("root", &key, &cert).expect_err("revoked");
    assert!(e.contains("revoked"), "{e}");
    let out = dana(&ssh_args);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no_active_grant"), "{}", stderr(&out));
}
