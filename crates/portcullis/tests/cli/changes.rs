//! Four eyes through the CLI: a weakening of Global Administrator's settings is recorded, not
//! applied (exit 3); `portcullis changes` lists it, refuses its requester's approval, cancels it.

use super::*;

#[test]
fn a_weakening_waits_as_a_change_request() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("admin");
    let mut server = server_with_admin(dir.path(), &cfg);
    let run = |args: &[&str]| {
        let mut c = portcullis(dir.path());
        c.args(["--server", &server.url]).args(args);
        with_config(&mut c, &cfg);
        c.output().expect("run")
    };
    let ok = |args: &[&str]| {
        let out = run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    // Naming the first approver strengthens nothing away: applied at once.
    ok(&[
        "roles",
        "settings",
        "set",
        "global-administrator",
        "--approvers",
        "root-admin",
    ]);
    let out = run(&[
        "roles",
        "settings",
        "set",
        "global-administrator",
        "--strength",
        "mfa",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("pending:") && said.contains("weaker_strength"),
        "{said}"
    );
    let list: serde_json::Value =
        serde_json::from_str(&ok(&["--output", "json", "changes", "list", "--pending"]))
            .expect("json");
    let id = list[0]["id"].as_str().expect("id").to_owned();
    assert!(said.contains(&id), "{said}");
    let own = run(&["changes", "approve", &id]);
    assert!(!own.status.success());
    assert!(stderr(&own).contains("self_approval"), "{}", stderr(&own));
    let cancelled = ok(&["changes", "cancel", &id, "--reason", "not now"]);
    assert!(cancelled.contains("cancelled"), "{cancelled}");
    let settings: serde_json::Value = serde_json::from_str(&ok(&[
        "--output",
        "json",
        "roles",
        "settings",
        "get",
        "global-administrator",
    ]))
    .expect("json");
    assert_eq!(settings["required_strength"], "phishing_resistant");
    sigterm(&mut server.child);
}
