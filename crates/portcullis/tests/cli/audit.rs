//! The audit commands: `audit list` escaping terminal control characters, and offline
//! verification of a copied, tampered database with and without the anchor file.

use super::*;

/// `audit list` shows control, bidirectional and invisible characters as `\u{…}` escapes:
/// text that came from a request (or was written into the database) never drives the terminal.
#[test]
fn audit_list_escapes_what_a_terminal_would_interpret() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut server = serve(dir.path());
    let db = format!(
        "sqlite://{}",
        dir.path().join("portcullis-data/portcullis.db").display()
    );
    let rt = tokio::runtime::Runtime::new().expect("rt");
    rt.block_on(async {
        let store = portcullis_store::Store::open(&db, portcullis_store::StoreOptions::default())
            .await
            .expect("store");
        store
            .append(portcullis_core::audit::NewAuditEvent::new(
                "service_account:\u{1b}[2Jowned",
                "token.client_credentials",
                "x\u{202e}y",
            ))
            .await
            .expect("append");
        store.close().await;
    });
    let out = cli(
        dir.path(),
        &server,
        &["audit", "list", "--action", "token.client_credentials"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{202e}'),
        "{text:?}"
    );
    assert!(
        text.contains("\\u{1b}[2Jowned") && text.contains("x\\u{202e}y"),
        "{text}"
    );
    sigterm(&mut server.child);
}

/// `audit export` writes the filtered events as JSON lines, oldest first, the same events
/// `audit list` shows, into a file that appears only when whole.
#[test]
fn audit_export_writes_json_lines_of_the_filtered_events() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("admin");
    let mut server = server_with_admin(dir.path(), &cfg);
    let run = |args: &[&str]| {
        let mut c = portcullis(dir.path());
        c.args(["--server", &server.url]).args(args);
        with_config(&mut c, &cfg);
        let out = c.output().expect("run");
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        out
    };
    let listed: Vec<serde_json::Value> =
        serde_json::from_slice(&run(&["--output", "json", "audit", "list"]).stdout).expect("json");
    let file = dir.path().join("audit.jsonl");
    run(&["audit", "export", "--out", file.to_str().expect("path")]);
    let text = std::fs::read_to_string(&file).expect("export");
    let exported: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one event per line"))
        .collect();
    assert!(exported.len() >= listed.len() && !listed.is_empty());
    assert_eq!(
        exported[..listed.len()],
        listed[..],
        "the same events, oldest first"
    );
    assert!(!dir.path().join("audit.jsonl.partial").exists());
    let out = run(&[
        "audit",
        "export",
        "--action",
        "signin.completed",
        "--limit",
        "1",
    ]);
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout)
        .expect("utf8")
        .lines()
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let one: serde_json::Value = serde_json::from_str(lines[0]).expect("json");
    assert_eq!(one["action"], "signin.completed");
    sigterm(&mut server.child);
}

// ---- Tamper evidence that survives deletion (issue 14): a real server's database, copied
// and tampered with as someone holding the file would, verified offline with and without the
// anchor file the server kept outside it.

/// Copies the SQLite database (and its WAL, if any) of a stopped server to `to`.
fn copy_database(from: &Path, to: &Path) {
    std::fs::copy(from, to).expect("copy database");
    for ext in ["-wal", "-shm"] {
        let f = Path::new(&format!("{}{ext}", from.display())).to_owned();
        if f.exists() {
            std::fs::copy(&f, format!("{}{ext}", to.display())).expect("copy wal");
        }
    }
}

/// Runs raw SQL against a database file (sqlx: no sqlite3 CLI needed).
fn tamper(db: &Path, sql: &str) {
    let url = format!("sqlite://{}", db.display());
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    tokio::runtime::Runtime::new().expect("rt").block_on(async {
        let mut c = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("connect");
        sqlx::raw_sql(sql).execute(&mut c).await.expect("tamper");
    });
}

fn blob(b: &[u8]) -> String {
    format!(
        "X'{}'",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

/// Edits the target of event `from` and re-hashes the chain from there, so every link holds.
fn edit_and_rehash(db: &Path, from: i64) {
    use portcullis_core::audit::{AuditEvent, Outcome};
    use sqlx::Row;
    let url = format!("sqlite://{}", db.display());
    let rows = tokio::runtime::Runtime::new().expect("rt").block_on(async {
        let mut c = sqlx::SqliteConnection::connect(&url).await.expect("connect");
        sqlx::query("SELECT seq, time_us, actor, action, target, outcome, details, prev_hash, hash FROM audit_events ORDER BY seq")
            .fetch_all(&mut c)
            .await
            .expect("events")
    });
    let mut events: Vec<AuditEvent> = rows
        .iter()
        .map(|r| AuditEvent {
            seq: r.get("seq"),
            time_us: r.get("time_us"),
            actor: r.get("actor"),
            action: r.get("action"),
            target: r.get("target"),
            outcome: Outcome::parse(r.get("outcome")).expect("outcome"),
            details: serde_json::from_str(r.get("details")).expect("details"),
            prev_hash: r.get::<Vec<u8>, _>("prev_hash").try_into().expect("32"),
            hash: r.get::<Vec<u8>, _>("hash").try_into().expect("32"),
        })
        .collect();
    let mut prev = events[from as usize - 2].hash;
    let mut sql = String::new();
    for e in events.iter_mut().filter(|e| e.seq >= from) {
        if e.seq == from {
            e.target = "edited".into();
        }
        e.prev_hash = prev;
        e.hash = e.compute_hash();
        prev = e.hash;
        sql.push_str(&format!(
            "UPDATE audit_events SET target = '{}', prev_hash = {}, hash = {} WHERE seq = {};\n",
            e.target,
            blob(&e.prev_hash),
            blob(&e.hash),
            e.seq
        ));
    }
    tamper(db, &sql);
}

fn verify_offline(cwd: &Path, db: &Path, anchor: Option<&Path>) -> Output {
    let mut c = portcullis(cwd);
    c.args(["audit", "verify", "--database"])
        .arg(format!("sqlite://{}", db.display()));
    if let Some(a) = anchor {
        c.arg("--anchor").arg(a);
    }
    c.output().expect("run")
}

#[test]
fn audit_verify_finds_deleted_history_in_a_copied_database() {
    let dir = tempfile::tempdir().expect("tmp");
    let anchor_dir = tempfile::tempdir().expect("other storage");
    let anchor = anchor_dir.path().join("anchor.jsonl");
    let anchor_env = anchor.display().to_string();
    let mut server = serve_with(
        dir.path(),
        &[
            ("PORTCULLIS_AUDIT_ANCHOR_FILE", anchor_env.as_str()),
            ("PORTCULLIS_AUDIT_CHECKPOINT_EVENTS", "2"),
        ],
    );
    for i in 0..6 {
        let out = cli(
            dir.path(),
            &server,
            &["audit", "checkpoint", "--reason", &format!("c{i}")],
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    // Online, with the anchor: the server's database holds every anchored checkpoint.
    let out = cli(
        dir.path(),
        &server,
        &["audit", "verify", "--anchor", &anchor_env],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("anchored checkpoint(s) present"),
        "{}",
        stdout(&out)
    );
    assert!(sigterm(&mut server.child).success());

    let live = dir.path().join("portcullis-data/portcullis.db");
    let anchored: Vec<serde_json::Value> = std::fs::read_to_string(&anchor)
        .expect("anchor file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("record"))
        .collect();
    let seqs: Vec<i64> = anchored
        .iter()
        .map(|r| r["seq"].as_i64().expect("seq"))
        .collect();
    let head = *seqs.last().expect("anchored");
    assert!(seqs.len() >= 5, "{seqs:?}");

    // The untouched copy verifies, with and without the anchor.
    let copy = dir.path().join("untouched.db");
    copy_database(&live, &copy);
    let out = verify_offline(dir.path(), &copy, Some(&anchor));
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains(&format!("newest at sequence {head}")),
        "{}",
        stdout(&out)
    );

    // Truncated to an older checkpoint: the newest checkpoints and every event after the
    // remaining last one deleted. The shorter chain is well formed, ending on a signed
    // checkpoint like a stopped tenant, so only the anchor can tell.
    let keep = seqs[seqs.len() / 2];
    let truncated = dir.path().join("truncated.db");
    copy_database(&live, &truncated);
    tamper(
        &truncated,
        &format!(
            "DELETE FROM audit_checkpoints WHERE seq > {keep}; DELETE FROM audit_events WHERE seq > {keep};"
        ),
    );
    let out = verify_offline(dir.path(), &truncated, None);
    assert!(
        out.status.success(),
        "undetectable without the anchor: {}",
        stdout(&out)
    );
    let out = verify_offline(dir.path(), &truncated, Some(&anchor));
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let line = stdout(&out);
    assert!(
        line.starts_with(&format!(
            "AUDIT CHAIN BROKEN at sequence {} (anchored_checkpoint_missing)",
            keep + 1
        )),
        "{line}"
    );
    assert!(line.contains("history was deleted"), "{line}");

    // Every checkpoint deleted, an event edited, the chain re-hashed: broken even without
    // the anchor.
    let rehashed = dir.path().join("rehashed.db");
    copy_database(&live, &rehashed);
    tamper(&rehashed, "DELETE FROM audit_checkpoints;");
    edit_and_rehash(&rehashed, 4);
    let out = verify_offline(dir.path(), &rehashed, None);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(stdout(&out).contains("(no_checkpoint)"), "{}", stdout(&out));
    let out = verify_offline(dir.path(), &rehashed, Some(&anchor));
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));

    // A checkpoint in the middle deleted: a gap in the checkpoint chain.
    let gap = dir.path().join("gap.db");
    copy_database(&live, &gap);
    tamper(
        &gap,
        &format!("DELETE FROM audit_checkpoints WHERE seq = {};", seqs[2]),
    );
    let out = verify_offline(dir.path(), &gap, None);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(
        stdout(&out).starts_with(&format!(
            "AUDIT CHAIN BROKEN at sequence {} (checkpoint_gap)",
            seqs[2]
        )),
        "{}",
        stdout(&out)
    );

    // A garbled anchor file is an error, never "no anchors".
    let garbled = anchor_dir.path().join("garbled.jsonl");
    std::fs::write(&garbled, "not an anchor\n").expect("write");
    let out = verify_offline(dir.path(), &copy, Some(&garbled));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("line 1"), "{}", stderr(&out));
}
