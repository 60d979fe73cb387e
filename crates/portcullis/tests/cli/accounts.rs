//! TOTP codes checked against `oathtool`, and accounts through the CLI: bootstrap, login,
//! users, groups, roles, sign-in factors, service accounts, device codes and signing keys.

use super::*;

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
    sign_in_with_new_totp(
        dir.path(),
        &server.url,
        &alice_cfg,
        "alice",
        "orbit-lantern-97-quay",
    );
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
    // More time on an active activation (no approval needed for audit-reader), and one
    // scheduled for later, then cancelled.
    alice_json(&[
        "request",
        "audit-reader",
        "--for",
        "10m",
        "--reason",
        "again",
    ]);
    let ext = alice_json(&[
        "extend",
        "audit-reader",
        "--by",
        "5m",
        "--reason",
        "runs long",
    ]);
    assert_eq!(ext["state"], "applied", "{ext}");
    let left = alice_json(&["whoami"])["roles"]
        .as_array()
        .and_then(|r| r.iter().find(|x| x["role"] == "audit-reader"))
        .and_then(|x| x["seconds_left"].as_i64())
        .expect("audit-reader with time left");
    assert!(
        (890..=900).contains(&left),
        "ten minutes and five more: {left}"
    );
    alice_ok(&["deactivate", "audit-reader"]);
    let later = alice_json(&[
        "request",
        "audit-reader",
        "--for",
        "10m",
        "--reason",
        "tomorrow's window",
        "--start",
        "+1h",
    ]);
    assert_eq!(later["state"], "scheduled", "{later}");
    let out = as_alice(&[
        "request",
        "audit-reader",
        "--for",
        "10m",
        "--reason",
        "x",
        "--start",
        "soon",
    ])
    .output()
    .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--start"), "{}", stderr(&out));
    alice_ok(&["cancel", later["id"].as_str().expect("id")]);
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
    // The EdDSA keys (access tokens); one ES256 and one RS256 key sign ID tokens for
    // the relying parties that ask for them.
    let ed_keys = || {
        let all = json(&["keys", "list"]);
        assert_eq!(
            all.as_array()
                .map(|a| a.iter().filter(|k| k["active"] == true).count()),
            Some(3),
            "one active key per algorithm"
        );
        serde_json::Value::Array(
            all.as_array()
                .into_iter()
                .flatten()
                .filter(|k| k["algorithm"] == "EdDSA")
                .cloned()
                .collect(),
        )
    };
    let keys = ed_keys();
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
    let keys = ed_keys();
    assert_eq!(keys.as_array().map(Vec::len), Some(2));
    assert_eq!(
        keys[1]["published"], true,
        "the old key stays in JWKS for now"
    );
    // One algorithm at a time: the RS256 key rotates, the EdDSA ones stay as they are.
    let rs = json(&["keys", "rotate", "--algorithm", "RS256"]);
    let all = json(&["keys", "list"]);
    let of = |kid: &serde_json::Value| {
        all.as_array()
            .into_iter()
            .flatten()
            .find(|k| &k["key_id"] == kid)
            .map(|k| (k["algorithm"].clone(), k["active"].clone()))
    };
    assert_eq!(
        of(&rs["key_id"]),
        Some((serde_json::json!("RS256"), serde_json::json!(true)))
    );
    assert_eq!(ed_keys().as_array().map(Vec::len), Some(2));
    let out = cmd(&["keys", "rotate", "--algorithm", "HS256"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

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
