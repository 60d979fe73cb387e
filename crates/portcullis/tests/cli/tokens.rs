//! OpenID Connect clients through the CLI, and where `login --device` keeps its refresh token:
//! the OS keyring or sealed in the file.

use super::*;

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
