//! Access reviews through the CLI: `reviews create`, a reviewer's `list --to-decide` and
//! `decide`, `users set-manager`, `reviews close`, `show` and `delete`, and refusals with their
//! message and a failing exit code.

use super::*;

#[test]
fn a_review_through_the_cli() {
    let dir = tempfile::tempdir().expect("tmp");
    let admin_cfg = dir.path().join("admin");
    let bob_cfg = dir.path().join("bob");
    let mut server = server_with_admin(dir.path(), &admin_cfg);
    let run = |cfg: &std::path::Path, args: &[&str]| {
        let mut c = portcullis(dir.path());
        c.args(["--server", &server.url]).args(args);
        with_config(&mut c, cfg);
        c
    };
    let ok = |cfg: &std::path::Path, args: &[&str]| {
        let out = run(cfg, args).output().expect("run");
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    let json = |cfg: &std::path::Path, args: &[&str]| -> serde_json::Value {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        serde_json::from_str(&ok(cfg, &all)).expect("json")
    };
    for name in ["alice", "bob"] {
        let out = run_with_stdin(
            run(&admin_cfg, &["users", "create", name, "--password-stdin"]),
            "orbit-lantern-97-quay\n",
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    ok(
        &admin_cfg,
        &["assign", "alice", "audit-reader", "--eligible"],
    );
    sign_in_with_new_totp(
        dir.path(),
        &server.url,
        &bob_cfg,
        "bob",
        "orbit-lantern-97-quay",
    );

    let set = ok(&admin_cfg, &["users", "set-manager", "alice", "bob"]);
    assert!(set.contains("alice's manager: bob"), "{set}");
    let review = json(
        &admin_cfg,
        &[
            "reviews",
            "create",
            "--role",
            "audit-reader",
            "--reviewers",
            "managers",
            "--fallback",
            "user:root-admin",
            "--every",
            "90d",
            "--duration",
            "14d",
            "--default",
            "remove",
        ],
    );
    assert_eq!(review[0]["every"], "90d");
    assert_eq!(review[0]["duration"], "14d");
    let review_id = review[0]["id"].as_str().expect("id").to_owned();
    let round = review[0]["rounds"][0]["id"]
        .as_str()
        .expect("round")
        .to_owned();

    // bob, alice's manager, has her item to decide.
    let todo = json(&bob_cfg, &["reviews", "list", "--to-decide"]);
    assert_eq!(todo[0]["principal"], "user:alice");
    assert_eq!(todo[0]["can_decide"], true);
    let assignment = todo[0]["assignment_id"]
        .as_str()
        .expect("assignment")
        .to_owned();
    let table = ok(&bob_cfg, &["reviews", "list", "--to-decide"]);
    assert!(table.contains("to decide"), "{table}");
    let decided = ok(
        &bob_cfg,
        &[
            "reviews",
            "decide",
            &round,
            &assignment,
            "--remove",
            "--reason",
            "left the team",
        ],
    );
    assert!(decided.contains("remove: left the team"), "{decided}");
    let again = run(
        &bob_cfg,
        &[
            "reviews",
            "decide",
            &round,
            &assignment,
            "--keep",
            "--reason",
            "oops",
        ],
    )
    .output()
    .expect("run");
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("decided already"),
        "{}",
        stderr(&again)
    );
    // bob manages no review.
    let refused = run(&bob_cfg, &["reviews", "close", &round])
        .output()
        .expect("run");
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("reviews.manage"),
        "{}",
        stderr(&refused)
    );

    let closed = ok(&admin_cfg, &["reviews", "close", &round]);
    assert!(closed.contains(": closed,"), "{closed}");
    assert!(closed.contains("removed"), "{closed}");
    let shown = json(&admin_cfg, &["reviews", "show", &round]);
    assert_eq!(shown["state"], "closed");
    assert_eq!(shown["items"][0]["outcome"], "removed");
    let assignments = json(&admin_cfg, &["assignments"]);
    assert!(
        assignments
            .as_array()
            .expect("list")
            .iter()
            .all(|a| a["principal"] != "user:alice"),
        "{assignments}"
    );
    let listed = ok(&admin_cfg, &["reviews", "list"]);
    assert!(listed.contains(&review_id), "{listed}");
    let gone = ok(&admin_cfg, &["reviews", "delete", &review_id]);
    assert!(gone.contains("deleted"), "{gone}");
    let shown = json(&admin_cfg, &["reviews", "show", &review_id]);
    assert_eq!(shown[0]["enabled"], false);

    // Bad input: the server's message, a failing exit code; clap refuses an unknown default.
    let bad = run(
        &admin_cfg,
        &[
            "reviews",
            "create",
            "--role",
            "no-such-role",
            "--reviewers",
            "user:bob",
            "--default",
            "keep",
        ],
    )
    .output()
    .expect("run");
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("no-such-role"), "{}", stderr(&bad));
    let bad = run(
        &admin_cfg,
        &[
            "reviews",
            "create",
            "--role",
            "audit-reader",
            "--reviewers",
            "user:bob",
            "--default",
            "maybe",
        ],
    )
    .output()
    .expect("run");
    assert!(!bad.status.success());
    sigterm(&mut server.child);
}
