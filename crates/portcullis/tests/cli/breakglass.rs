//! Break-glass accounts through the CLI: custody files, sign-in from shares, drills, alerts.

use super::*;

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
