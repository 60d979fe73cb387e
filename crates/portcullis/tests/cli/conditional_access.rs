//! Conditional access through the CLI: named locations, policies imported and exported,
//! what-if, refusals that change nothing.

use super::*;

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
