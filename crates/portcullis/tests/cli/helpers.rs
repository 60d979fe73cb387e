//! Shared helpers of the CLI tests: the `portcullis` binary without inherited PORTCULLIS_*
//! variables, `serve` as a real process (port and bootstrap token from its JSON log), running the
//! CLI against it, SIGTERM, TOTP codes from `oathtool`, stdin, form posts, and a server with a
//! signed-in administrator. Every topic module takes them with `use super::*;`.

pub(crate) use std::io::{BufRead, BufReader};
pub(crate) use std::path::Path;
pub(crate) use std::process::{Child, Command, Output, Stdio};
pub(crate) use std::time::Duration;

pub(crate) use sqlx::Connection;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// A command with no PORTCULLIS_* variables inherited from the caller's environment.
pub(crate) fn portcullis(cwd: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(cwd);
    for (k, _) in std::env::vars() {
        if k.starts_with("PORTCULLIS_") {
            c.env_remove(k);
        }
    }
    c
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) url: String,
    pub(crate) token: String,
}

/// Starts `portcullis serve` on port 0 and reads its port and bootstrap token from the JSON log.
pub(crate) fn serve(cwd: &Path) -> Server {
    serve_with(cwd, &[])
}

/// [`serve`] with extra environment variables.
pub(crate) fn serve_with(cwd: &Path, env: &[(&str, &str)]) -> Server {
    let (child, url, token) = spawn_serve(cwd, env);
    Server {
        child,
        url,
        token: token.expect("bootstrap token in log"),
    }
}

/// `portcullis serve` again in `cwd` at `url` (the CLI's stored sign-in is per server URL), on a
/// tenant that exists (no bootstrap token is logged).
pub(crate) fn serve_again(cwd: &Path, url: &str) -> Server {
    let listen = url.trim_start_matches("http://");
    let (child, url, token) = spawn_serve(cwd, &[("PORTCULLIS_LISTEN", listen)]);
    assert!(token.is_none(), "the tenant existed");
    Server {
        child,
        url,
        token: String::new(),
    }
}

/// Starts `portcullis serve`; the child, its URL and the bootstrap token it logged, if any.
fn spawn_serve(cwd: &Path, env: &[(&str, &str)]) -> (Child, String, Option<String>) {
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
    let url = format!("http://127.0.0.1:{}", port.expect("port in log"));
    (child, url, token)
}

pub(crate) fn cli(cwd: &Path, server: &Server, args: &[&str]) -> Output {
    portcullis(cwd)
        .args(["--server", &server.url])
        .args(args)
        .env("PORTCULLIS_TOKEN", &server.token)
        .output()
        .expect("run cli")
}

pub(crate) fn sigterm(child: &mut Child) -> std::process::ExitStatus {
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

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Whether `oathtool` is installed. `.ci/run` installs it and sets
/// `PORTCULLIS_REQUIRE_OATHTOOL=1`, so in CI a missing `oathtool` fails instead of skipping; on a
/// fresh developer machine the README's `cargo test --workspace` still passes without it.
pub(crate) fn oathtool_available() -> bool {
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
pub(crate) fn code_for(secret_b32: &str, offset_steps: i64) -> String {
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
pub(crate) fn oathtool(secret_b32: &str, when: &str) -> String {
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

pub(crate) fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

pub(crate) fn with_config(cmd: &mut Command, cfg: &Path) {
    cmd.env("PORTCULLIS_CONFIG_DIR", cfg);
}

pub(crate) fn run_with_stdin(mut cmd: Command, input: &str) -> Output {
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

/// `POST path` with a form body over plain HTTP/1.1 to the test server; the JSON answer.
pub(crate) fn form_post(server: &Server, path: &str, body: &str) -> serde_json::Value {
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
pub(crate) fn server_with_admin(dir: &Path, admin_cfg: &Path) -> Server {
    server_with_admin_env(dir, admin_cfg, &[])
}

/// [`server_with_admin`] with extra environment variables for the server.
pub(crate) fn server_with_admin_env(dir: &Path, admin_cfg: &Path, env: &[(&str, &str)]) -> Server {
    use std::io::Write;
    let server = serve_with(dir, env);
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

/// Signs `user` (password `pw`, no factor yet) in with the CLI in `cfg`, enrols a TOTP factor
/// within the five minutes a new credential allows, and signs in again with it; the secret.
pub(crate) fn sign_in_with_new_totp(
    dir: &Path,
    url: &str,
    cfg: &Path,
    user: &str,
    pw: &str,
) -> String {
    use std::io::Write;
    let as_user = |args: &[&str]| {
        let mut c = portcullis(dir);
        c.args(["--server", url]).args(args);
        with_config(&mut c, cfg);
        c
    };
    let out = run_with_stdin(
        as_user(&["login", "--username", user, "--password-stdin"]),
        &format!("{pw}\n"),
    );
    assert!(out.status.success(), "{user}: {}", stderr(&out));
    let mut enrol = as_user(&["mfa", "enroll", "totp"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn enrol");
    let mut enrol_in = enrol.stdin.take().expect("stdin");
    let mut enrol_out = BufReader::new(enrol.stdout.take().expect("stdout")).lines();
    let secret = enrol_out
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("secret: ").map(str::to_owned))
        .expect("secret printed");
    writeln!(enrol_in, "{}", code_for(&secret, 0)).expect("code");
    drop(enrol_in);
    let enrolled: Vec<String> = enrol_out.map_while(Result::ok).collect();
    assert!(enrolled.join("\n").contains("enrolled"), "{enrolled:?}");
    let out = enrol.wait_with_output().expect("enrol");
    assert!(out.status.success(), "enrol: {}", stderr(&out));
    let mut login = as_user(&["login", "--username", user, "--password-stdin", "--code"]);
    login.arg(code_for(&secret, 1));
    let out = run_with_stdin(login, &format!("{pw}\n"));
    assert!(out.status.success(), "{user} login: {}", stderr(&out));
    secret
}
