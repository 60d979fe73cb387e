//! Alerts through the CLI: webhook channels, signed test deliveries, the delivery log, and
//! custom alert rules.

use super::*;

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
    // Removing a channel is a change request (four eyes); the lone administrator's takes
    // effect after the cooling-off, one second here.
    let mut server = server_with_admin_env(
        dir.path(),
        &admin,
        &[("PORTCULLIS_CHANGE_COOLING_OFF", "1s")],
    );
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
    // A removal: recorded for a second person (`pending:`, exit 3), then gone once the
    // cooling-off is over.
    let remove = |args: &[&str]| {
        let out = run(args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("pending:")
                && stderr(&out).contains("critical_alert_channel_removed"),
            "{}",
            stderr(&out)
        );
        let name = args[args.len() - 1];
        for _ in 0..100 {
            if !json(&["alerts", "channels", "list"])
                .as_array()
                .is_some_and(|l| l.iter().any(|c| c["name"] == name))
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("{name} was not removed after the cooling-off");
    };
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
    remove(&["alerts", "channels", "remove", "mail"]);

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
    remove(&["alerts", "channels", "remove", "sms"]);
    remove(&["alerts", "channels", "remove", "hook"]);
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
