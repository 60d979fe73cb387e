//! Hostile input: NUL client ids, invisible characters, random and malformed bodies, huge
//! numbers and multi-byte durations are refused (never a 5xx) and change nothing.

use super::*;

/// Finding 3: `client_id=%00` is refused at the edge (400, nothing written) — it once made
/// PostgreSQL refuse a whole group-commit batch — and legitimate writes around it all commit.
async fn a_nul_client_id_is_refused_and_harms_nobody(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app.anonymous.with_token(Some(SecretString::from(token)));
    let count = || async {
        admin
            .audit_events(&EventFilter {
                limit: Some(1000),
                ..Default::default()
            })
            .await
            .expect("events")
            .events
            .len()
    };
    let before = count().await;
    let mut hostile = Vec::new();
    for _ in 0..40 {
        let base = app.base.clone();
        hostile.push(tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("{base}/oauth2/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("grant_type=client_credentials&client_id=%00&client_secret=x")
                .send()
                .await
                .expect("send")
                .status()
                .as_u16()
        }));
    }
    let mut legit = Vec::new();
    for i in 0..20 {
        let admin = admin.clone();
        legit.push(tokio::spawn(async move {
            admin
                .create_group(&portcullis_core::api::CreateGroupRequest {
                    name: format!("team-{i}"),
                    display_name: None,
                    role_assignable: false,
                })
                .await
                .is_ok()
        }));
    }
    for h in hostile {
        assert_eq!(h.await.expect("task"), 400);
    }
    for l in legit {
        assert!(l.await.expect("task"), "every legitimate write commits");
    }
    assert_eq!(count().await, before + 20, "the refusals wrote nothing");
    app.stop().await;
}

/// Finding 12: display names, factor names, justifications and reasons refuse control,
/// bidirectional and zero-width characters with a clear 400, and nothing changes.
async fn invisible_characters_are_refused_at_the_edge(app: TestApp) {
    let admin = admin(&app).await;
    for name in ["evil\u{202e}gnp", "ad\u{200b}min", "bell\u{7}", "nul\0"] {
        let r = admin
            .create_user(&CreateUserRequest {
                name: "mallory".into(),
                display_name: name.into(),
                email: None,
                phone: None,
                guest_organisation: None,
                privileged: false,
                password: CUSTODIAN_PW.into(),
            })
            .await;
        let e = r.expect_err("refused");
        assert_eq!(e.code(), Some("invalid_request"), "{name:?}: {e}");
        assert!(e.to_string().contains("invisible"), "{e}");
    }
    assert!(
        admin
            .users()
            .await
            .expect("users")
            .iter()
            .all(|u| u.name != "mallory")
    );
    let r = admin
        .mfa_enrol_totp(&TotpEnrolRequest {
            name: "phone\u{2066}".into(),
        })
        .await;
    assert_eq!(r.expect_err("refused").code(), Some("invalid_request"));
    let r = admin
        .create_role(&portcullis_core::api::CreateRoleRequest {
            slug: "readers".into(),
            display_name: None,
            description: "reads\u{feff}".into(),
            permissions: vec!["audit.read".into()],
        })
        .await;
    assert_eq!(r.expect_err("refused").code(), Some("invalid_request"));
    app.stop().await;
}

/// Finding 10: hostile bodies — random bytes, NUL and control characters, multi-byte text, huge
/// numbers, deep or wrong JSON — at every unauthenticated endpoint get a 4xx (or a normal
/// answer), never a 5xx or a dropped connection, and the server keeps serving. A bounded,
/// seeded run (the same inputs every time, so a failure reproduces).
async fn hostile_bodies_never_break_the_unauthenticated_endpoints(app: TestApp) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_f00d);
    let form_paths = [
        "/oauth2/token",
        "/oauth2/device_authorization",
        "/oauth2/introspect",
        "/oauth2/revoke",
        "/signin",
        "/device",
        "/oauth2/authorize",
    ];
    let json_paths = [
        "/api/v1/signin",
        "/api/v1/signin/totp",
        "/api/v1/signin/webauthn",
        "/api/v1/signin/webauthn/finish",
        "/api/v1/bootstrap",
        "/api/v1/breakglass/bg-one/failed-recovery",
    ];
    let pieces = [
        "%00",
        "\u{0}",
        "é",
        "\u{202e}",
        "\u{1b}[2J",
        "99999999999999999999999",
        "-1",
        "5é",
        "grant_type=client_credentials",
        "client_id=",
        "username",
        "\"",
        "{",
        "[",
        "null",
        "true",
        "&",
        "=",
        "%ZZ",
        "%C3%28",
        " ",
        // Client assertions (private_key_jwt): the unverified subject is read before anything.
        "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer",
        "client_assertion=",
        "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJcdTAwMDAifQ.",
        "eyJzdWIiOjF9",
        ".",
    ];
    let http = reqwest::Client::new();
    for i in 0..300u32 {
        let raw: Vec<u8> = match i % 3 {
            0 => (0..rng.gen_range(0..200))
                .map(|_| rng.r#gen::<u8>())
                .collect(),
            _ => (0..rng.gen_range(0..12))
                .map(|_| pieces[rng.gen_range(0..pieces.len())])
                .collect::<String>()
                .into_bytes(),
        };
        let json = i % 2 == 0;
        let path = if json {
            json_paths[rng.gen_range(0..json_paths.len())]
        } else {
            form_paths[rng.gen_range(0..form_paths.len())]
        };
        let body = if json && i % 5 == 0 {
            // Well-formed JSON with hostile values and wrong types.
            serde_json::json!({
                "username": String::from_utf8_lossy(&raw), "password": raw.len(),
                "signin_id": [1, 2], "code": 1e300, "ceremony_id": null,
                "credential": { "id": String::from_utf8_lossy(&raw) }, "token": "x",
                "reason": "\u{0}", "totp_secret": "A".repeat(5000),
            })
            .to_string()
            .into_bytes()
        } else {
            raw
        };
        let r = http
            .post(format!("{}{path}", app.base))
            .header(
                "content-type",
                if json {
                    "application/json"
                } else {
                    "application/x-www-form-urlencoded"
                },
            )
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {i} to {path} dropped: {e}"));
        assert!(
            r.status().as_u16() < 500,
            "request {i} to {path} answered {}",
            r.status()
        );
    }
    let health = http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .expect("alive");
    assert_eq!(health.status(), 200);
    app.stop().await;
}

/// Finding 10: what panicked before — a multi-byte duration, a huge `duration_seconds` — gets a
/// clear 400 and changes nothing.
async fn huge_numbers_and_multibyte_durations_get_a_clear_400(app: TestApp) {
    let admin = admin(&app).await;
    people(&admin, &["olga"]).await;
    for secs in [i64::MAX, i64::MAX / 1_000_000, -1, 0] {
        let r = admin
            .create_assignment(&CreateAssignmentRequest {
                principal: "olga".into(),
                role: "audit-reader".into(),
                scope: None,
                kind: Some("eligible".into()),
                duration_seconds: Some(secs),
                ends_at: None,
            })
            .await;
        assert_eq!(
            r.expect_err("refused").code(),
            Some("invalid_request"),
            "{secs}"
        );
    }
    for window in ["5é", "é", "1\u{202e}h", "99999999999999999999d"] {
        let r = admin
            .create_alert_rule(&portcullis_core::api::CreateAlertRuleRequest {
                name: "r".into(),
                action: "signin.password".into(),
                outcome: None,
                actor: None,
                target: None,
                group_by: None,
                count: 3,
                window: window.into(),
                severity: None,
            })
            .await;
        assert_eq!(
            r.expect_err("refused").code(),
            Some("invalid_request"),
            "{window:?}"
        );
    }
    assert!(admin.assignments_of("olga").await.expect("list").is_empty());
    app.stop().await;
}

api_tests!(
    a_nul_client_id_is_refused_and_harms_nobody,
    invisible_characters_are_refused_at_the_edge,
    hostile_bodies_never_break_the_unauthenticated_endpoints,
    huge_numbers_and_multibyte_durations_get_a_clear_400,
);
