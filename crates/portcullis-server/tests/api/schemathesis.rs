//! Schemathesis (from PyPI, a fuzzer the project did not write) against a real server with an
//! administrator's session: every documented operation, checked for no 5xx
//! (`not_a_server_error`), only documented status codes (`status_code_conformance`) and bodies
//! that match their schema (`response_schema_conformance`). SQLite only: the HTTP layer and the
//! services are the same on both backends. Skips without `schemathesis` on PATH unless
//! PORTCULLIS_REQUIRE_SCHEMATHESIS is set; PORTCULLIS_SCHEMATHESIS_SEED runs another seed than
//! the fixed one.

use super::*;

/// Operations left out, by schemathesis' operation name (`METHOD path`): each would take the
/// administrator's own access away in the middle of the run (schemathesis follows the
/// document's links and reuses ids it has read, so "it would need the right id" is no
/// protection), and every later request would then be a 401 that proves nothing. The
/// console's forms stay in: they take the session cookie and a CSRF token, never the bearer
/// header, so schemathesis cannot end or change anything of the administrator's there.
const EXCLUDED: &[(&str, &str)] = &[
    // Ends the caller's own session.
    ("POST /api/v1/signout", "ends the administrator's session"),
    (
        "DELETE /api/v1/sessions/{id}",
        "ends a session; `GET /api/v1/sessions` lists the administrator's own",
    ),
    // Takes a principal's access away; the administrator is one of the users listed.
    (
        "POST /api/v1/users/{name}/disable",
        "disables a user (and ends their sessions); the administrator is a user",
    ),
    (
        "POST /api/v1/principals/{name}/contain",
        "containment: disables the account and cuts every session and grant it has; the \
         administrator's sign-in is fresh enough for its step-up",
    ),
    (
        "DELETE /api/v1/me/mfa/{id}",
        "removes one of the administrator's own sign-in factors",
    ),
    // Removes the administrator's Global Administrator assignment (permanent, from bootstrap;
    // `GET /api/v1/assignments` lists its id).
    (
        "DELETE /api/v1/assignments/{id}",
        "removes an assignment, the administrator's own among them",
    ),
    (
        "POST /api/v1/assignments/{id}/make-eligible",
        "turns the administrator's permanent assignment into an eligible one",
    ),
];

/// The schemathesis command line (without the schema URL).
fn schemathesis_args(token: &str) -> Vec<String> {
    let seed = std::env::var("PORTCULLIS_SCHEMATHESIS_SEED").unwrap_or_else(|_| "21".into());
    let mut args: Vec<String> = [
        "run",
        "--checks",
        "not_a_server_error,status_code_conformance,response_schema_conformance",
        // Bounded: at most 10 cases an operation in each pass, and 120 seconds for the whole
        // run (the fuzzing and stateful passes repeat until it is spent).
        "--max-examples",
        "10",
        "--max-time",
        "120",
        "--workers",
        "2",
        "--request-timeout",
        "20",
        // Reproducible: a fixed seed (PORTCULLIS_SCHEMATHESIS_SEED picks another), no example
        // database carried between runs (how many passes fit in the budget depends on the
        // machine; the cases come in the same order).
        "--seed",
        &seed,
        "--generation-database",
        "none",
        "--no-color",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    args.push("--header".into());
    args.push(format!("Authorization: Bearer {token}"));
    for (name, _why) in EXCLUDED {
        args.push("--exclude-name".into());
        args.push((*name).into());
    }
    args
}

async fn schemathesis_finds_nothing(app: TestApp) {
    let required = std::env::var("PORTCULLIS_REQUIRE_SCHEMATHESIS").is_ok();
    // The exclusions name operations the document has (a renamed one would run again).
    let doc = public_json(&app, "/api/v1/openapi.json").await;
    for (name, why) in EXCLUDED {
        let (method, path) = name.split_once(' ').expect("METHOD path");
        assert!(
            doc["paths"][path][method.to_lowercase()].is_object(),
            "excluded {name} ({why}) is not in the document"
        );
    }
    let token = admin_token(&app).await;
    let schema = format!("{}/api/v1/openapi.json", app.base);
    let work = tempfile::tempdir().expect("tmp");
    let mut cmd = std::process::Command::new("schemathesis");
    cmd.args(schemathesis_args(&token))
        .arg(&schema)
        // Its reports and any configuration file: none from the repository.
        .current_dir(work.path())
        .env("NO_COLOR", "1");
    let started = std::time::Instant::now();
    let out = match tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
    {
        Ok(out) => out,
        Err(e) if required => panic!("schemathesis must run here: {e}"),
        Err(_) => {
            eprintln!("skipped: no schemathesis");
            app.stop().await;
            return;
        }
    };
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis: {output}");
    eprintln!("schemathesis took {:?}:\n{output}", started.elapsed());
    // The administrator was still signed in at the end: the run tested more than 401s.
    let me = app
        .http
        .get(format!("{}/api/v1/me", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("me");
    assert_eq!(me.status().as_u16(), 200, "the session did not survive");
    app.stop().await;
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn schemathesis_finds_nothing() {
        // No request-rate limits: a run that is mostly 429s leaves the handlers untested (the
        // limits have their own tests, in `edge/`).
        let app = super::spawn_with(super::Backend::Sqlite, |c| {
            c.rate_limit_per_address = 0;
            c.rate_limit_global = 0;
        })
        .await
        .expect("sqlite app");
        super::schemathesis_finds_nothing(app).await
    }
}
