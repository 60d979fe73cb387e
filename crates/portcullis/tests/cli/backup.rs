//! Backups: `portcullis backup` while the server runs, verified before it is kept, then the
//! README's restore procedure followed step by step; PostgreSQL is sent to pg_dump.

use super::*;

/// The README's procedure ("Backups and restore"), end to end: back up while serving, stop,
/// put the copy in place of `portcullis.db` (no `-wal`/`-shm` beside it), start with the same
/// master key, verify: what the backup held is back, what came after it is not.
#[test]
fn a_backup_taken_while_serving_restores_the_tenant() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("admin");
    let mut server = server_with_admin(dir.path(), &cfg);
    let url = server.url.clone();
    let admin = |args: &[&str]| {
        let mut c = portcullis(dir.path());
        c.args(["--server", &url]).args(args);
        with_config(&mut c, &cfg);
        c
    };
    let create = |name: &str| {
        let out = run_with_stdin(
            admin(&["users", "create", name, "--password-stdin"]),
            "tundra-copper-violet-58\n",
        );
        assert!(out.status.success(), "{}", stderr(&out));
    };
    create("before-backup");
    std::fs::create_dir(dir.path().join("backups")).expect("dir");
    let backup = dir.path().join("backups/portcullis.db");
    let out = portcullis(dir.path())
        .args(["backup", "--out"])
        .arg(&backup)
        .output()
        .expect("backup");
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("written and verified"), "{said}");
    assert!(said.contains("master key"), "{said}");
    assert!(backup.exists() && !dir.path().join("backups/portcullis.db.partial").exists());
    // A second backup to the same file is refused (nothing is overwritten).
    let again = portcullis(dir.path())
        .args(["backup", "--out"])
        .arg(&backup)
        .output()
        .expect("backup");
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("exists already"),
        "{}",
        stderr(&again)
    );
    create("after-backup");
    sigterm(&mut server.child);

    // Restore.
    let data = dir.path().join("portcullis-data");
    std::fs::copy(&backup, data.join("portcullis.db")).expect("restore");
    for extra in ["portcullis.db-wal", "portcullis.db-shm"] {
        let _ = std::fs::remove_file(data.join(extra));
    }
    let mut restored = serve_again(dir.path(), &url);
    let out = admin(&["--output", "json", "users", "list"])
        .output()
        .expect("users");
    assert!(out.status.success(), "{}", stderr(&out));
    let users = String::from_utf8_lossy(&out.stdout);
    assert!(users.contains("before-backup"), "{users}");
    assert!(!users.contains("after-backup"), "{users}");
    let out = admin(&["audit", "verify"]).output().expect("verify");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    sigterm(&mut restored.child);
}

#[test]
fn a_postgresql_database_is_sent_to_pg_dump() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = portcullis(dir.path())
        .args(["backup", "--out", "x.db"])
        .env("PORTCULLIS_DATABASE_URL", "postgres://u@127.0.0.1:9/db")
        .output()
        .expect("backup");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("pg_dump"), "{}", stderr(&out));
    assert!(!dir.path().join("x.db").exists());
}
