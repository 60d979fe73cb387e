//! Containment through the CLI: `portcullis contain NAME --reason …`, then `--undo`.

use super::*;

#[test]
fn contain_and_undo_through_the_cli() {
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
    ok(&["service-accounts", "create", "payroll-sync"]);
    let contained = ok(&["contain", "payroll-sync", "--reason", "secret leaked"]);
    assert!(
        contained.contains("service account payroll-sync contained"),
        "{contained}"
    );
    let again = run(&["contain", "payroll-sync", "--reason", "twice"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already contained"),
        "{}",
        stderr(&again)
    );
    let json = ok(&[
        "--output",
        "json",
        "contain",
        "payroll-sync",
        "--undo",
        "--reason",
        "rotated",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["contained"], false);
    let mine = run(&["contain", "root-admin", "--reason", "oops"]);
    assert!(!mine.status.success());
    assert!(stderr(&mine).contains("yourself"), "{}", stderr(&mine));
    sigterm(&mut server.child);
}
