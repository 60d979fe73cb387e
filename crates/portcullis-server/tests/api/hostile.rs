//! Hostile traffic (issue "Hostile traffic and tamper evidence"): floods, races and shared
//! addresses, driven from several loopback addresses (127.0.0.x) against a real server, on both
//! backends. Floods are bounded so the suite stays fast.

use super::*;

/// A client whose connections come from `127.0.0.{last}`.
fn from(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, last]))
        .build()
        .expect("client")
}

async fn password_attempt(base: &str, last: u8, user: &str, password: &str) -> u16 {
    from(last)
        .post(format!("{base}/api/v1/signin"))
        .json(&serde_json::json!({ "username": user, "password": password }))
        .send()
        .await
        .expect("signin")
        .status()
        .as_u16()
}

/// Finding 4: eighty concurrent wrong passwords for one account from one address are not all
/// checked: the attempt is reserved before the check, in one serialised write.
async fn concurrent_guesses_cannot_race_the_throttle(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app.anonymous.with_token(Some(SecretString::from(token)));
    people(&admin, &["olga"]).await;
    let mut tasks = Vec::new();
    for _ in 0..80 {
        let base = app.base.clone();
        tasks.push(tokio::spawn(async move {
            password_attempt(&base, 9, "olga", "not-the-password-at-all").await
        }));
    }
    let mut checked = 0;
    let mut throttled = 0;
    for t in tasks {
        match t.await.expect("task") {
            401 => checked += 1,
            429 => throttled += 1,
            other => panic!("unexpected {other}"),
        }
    }
    // Five are free and the sixth is admitted; any more only as their backoff runs out (1 s,
    // 2 s, 4 s…), which a burst does not wait for. Before the reservation all 80 were checked.
    assert!(checked <= 9, "{checked} guesses were checked");
    assert_eq!(checked + throttled, 80);
    let evaluated = events_named(&admin, "signin.password")
        .await
        .into_iter()
        .filter(|e| e.details["reason"] == "wrong_password")
        .count();
    assert_eq!(evaluated, checked, "every checked guess is audited once");
    app.stop().await;
}

/// Finding 8 (smart lockout): failures for an account from elsewhere never keep the person out
/// of an address they signed in from successfully; an address they never used waits.
async fn failures_elsewhere_never_lock_a_person_out_of_their_own_network(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app.anonymous.with_token(Some(SecretString::from(token)));
    people(&admin, &["olga"]).await;
    assert_eq!(
        password_attempt(&app.base, 20, "olga", CUSTODIAN_PW).await,
        200
    );
    // Someone who knows her name fails from other addresses until the account-wide counter
    // makes them wait (each address stays under its own limits).
    let mut waiting = false;
    for last in 30..230u8 {
        let s = password_attempt(&app.base, last, "olga", "not-the-password-at-all").await;
        assert!(s == 401 || s == 429, "{s}");
        if s == 429 {
            waiting = true;
            // Checked at once, while the account-wide wait certainly runs.
            assert_eq!(
                password_attempt(&app.base, last + 1, "olga", CUSTODIAN_PW).await,
                429,
                "from an address she never used, the account waits"
            );
            break;
        }
    }
    assert!(waiting, "the failures made the account wait");
    assert_eq!(
        password_attempt(&app.base, 20, "olga", CUSTODIAN_PW).await,
        200,
        "her own address is familiar: the account-wide counter does not apply there"
    );
    app.stop().await;
}

/// Findings 2 and 5: during a flood of sign-ins for invented names from many addresses, and of
/// wrong break-glass passwords from its own address, the correct break-glass password from that
/// same address signs in at once — no throttle, no queue stands in its way — and every wrong
/// attempt on it is still audited (so it alerts). A full Argon2 queue answers 503 with
/// `Retry-After` instead of queueing for minutes.
async fn break_glass_gets_through_a_flood_from_its_own_address(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    people(&admin, &["c1", "c2"]).await;
    let pw = create_split_account(&app, &token, "bg-one", &["c1", "c2"], 2).await;
    let mut flood = Vec::new();
    for i in 0..400u32 {
        let base = app.base.clone();
        let last = 100 + (i % 120) as u8;
        flood.push(tokio::spawn(async move {
            password_attempt(&base, last, &format!("nobody-{i}"), "guessing-the-password").await
        }));
    }
    // Wrong passwords for the break-glass account itself, from the address it is used from.
    for _ in 0..30 {
        let s = password_attempt(&app.base, 7, "bg-one", "not-the-split-password").await;
        assert!(
            s == 401,
            "a wrong break-glass password is refused, never throttled: {s}"
        );
    }
    let started = std::time::Instant::now();
    let ok = password_attempt(&app.base, 7, "bg-one", &pw).await;
    let took = started.elapsed();
    assert_eq!(
        ok, 200,
        "the correct break-glass password signs in during the flood"
    );
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for t in flood {
        *statuses.entry(t.await.expect("task")).or_default() += 1;
    }
    assert!(
        statuses.keys().all(|s| [401, 429, 503].contains(s)),
        "{statuses:?}"
    );
    eprintln!("break-glass sign-in during the flood took {took:?}; flood answers {statuses:?}");
    let wrong = events_named(&admin, "signin.password")
        .await
        .into_iter()
        .filter(|e| e.target == "user:bg-one" && e.outcome == "failure")
        .count();
    assert_eq!(
        wrong, 30,
        "every wrong attempt on it is on record (and alerts)"
    );
    app.stop().await;
}

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

/// Finding 12: revoking a refresh family (reuse detected, sign-out) also ends the access
/// tokens minted from it, not only its future refreshes.
async fn a_revoked_refresh_family_takes_its_access_tokens_along(app: TestApp) {
    let admin = admin(&app).await;
    let login = |admin: Client| {
        let app = &app;
        async move {
            let start = device_start(app).await;
            admin
                .approve_device(&portcullis_core::api::DeviceDecisionRequest {
                    user_code: start["user_code"].as_str().expect("code").into(),
                })
                .await
                .expect("approve");
            let r = device_poll(app, start["device_code"].as_str().expect("dc")).await;
            assert_eq!(r.status(), 200);
            let body: serde_json::Value = r.json().await.expect("json");
            (
                body["access_token"].as_str().expect("at").to_owned(),
                body["refresh_token"].as_str().expect("rt").to_owned(),
            )
        }
    };
    let works = |token: String| {
        let c = app.anonymous.with_token(Some(SecretString::from(token)));
        async move { c.whoami().await.is_ok() }
    };
    // Sign-out: the CLI revokes its refresh token.
    let (a1, r1) = login(admin.clone()).await;
    let r = refresh_with(&app, "portcullis-cli", &r1).await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    let (a2, r2) = (
        body["access_token"].as_str().expect("at").to_owned(),
        body["refresh_token"].as_str().expect("rt").to_owned(),
    );
    assert!(works(a1.clone()).await && works(a2.clone()).await);
    let revoked = form_post(
        &app,
        "/oauth2/revoke",
        &[("client_id", "portcullis-cli"), ("token", &r2)],
    )
    .await;
    assert_eq!(revoked.status(), 200);
    assert!(
        !works(a1).await,
        "the first access token ended with its family"
    );
    assert!(
        !works(a2).await,
        "the latest access token ended with its family"
    );
    // Reuse: presenting a rotated refresh token ends the family and what it minted.
    let (a3, r3) = login(admin.clone()).await;
    let r = refresh_with(&app, "portcullis-cli", &r3).await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    let a4 = body["access_token"].as_str().expect("at").to_owned();
    let replay = refresh_with(&app, "portcullis-cli", &r3).await;
    assert_eq!(replay.status(), 400);
    assert!(
        !works(a3).await && !works(a4).await,
        "a thief's copy dies with the family"
    );
    app.stop().await;
}

/// Finding 7: unauthenticated requests cannot grow tables without bound: device codes and
/// passwordless challenges are capped per address (another address is unaffected).
async fn unauthenticated_rows_are_capped_per_address(app: TestApp) {
    let device = |last: u8| {
        let base = app.base.clone();
        async move {
            from(last)
                .post(format!("{base}/oauth2/device_authorization"))
                .form(&[("client_id", "portcullis-cli")])
                .send()
                .await
                .expect("send")
        }
    };
    for _ in 0..10 {
        assert_eq!(device(4).await.status(), 200);
    }
    let r = device(4).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(
        device(5).await.status(),
        200,
        "another address is unaffected"
    );
    let passwordless = |last: u8, name: String| {
        let base = app.base.clone();
        async move {
            from(last)
                .post(format!("{base}/api/v1/signin/webauthn"))
                .json(&serde_json::json!({ "username": name }))
                .send()
                .await
                .expect("send")
                .status()
                .as_u16()
        }
    };
    for i in 0..20 {
        assert_eq!(passwordless(6, format!("invented-{i}")).await, 200);
    }
    assert_eq!(passwordless(6, "invented-x".into()).await, 429);
    assert_eq!(passwordless(7, "invented-x".into()).await, 200);
    app.stop().await;
}

/// Finding 12: a passwordless start answers the same shape for every name — an account with a
/// passkey, one without, none at all — so it tells nobody who has passkeys or their ids; the
/// answer to a decoy is refused like a wrong answer to a real challenge.
async fn passwordless_start_tells_nobody_who_has_passkeys(app: TestApp) {
    let admin = admin(&app).await;
    let (wes, _) = mfa_user(&app, &admin, "wes", "amber-willow-canyon-58").await;
    let mut key = SoftPasskey::new(true);
    register(&wes, &mut key, "key").await;
    let (_ivy, _) = mfa_user(&app, &admin, "ivy", "cobalt-meadow-lantern-39").await;
    let shape = |v: &serde_json::Value| -> Vec<String> {
        let mut keys: Vec<String> = v["publicKey"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        let cred: Vec<String> = v["publicKey"]["allowCredentials"][0]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        keys.extend(cred);
        keys
    };
    let real = passwordless(&app, "wes").await;
    let without = passwordless(&app, "ivy").await;
    let nobody = passwordless(&app, "nobody-at-all").await;
    assert_eq!(shape(&real.options), shape(&without.options));
    assert_eq!(shape(&real.options), shape(&nobody.options));
    assert_eq!(
        real.options["publicKey"]["timeout"],
        nobody.options["publicKey"]["timeout"]
    );
    for c in [&without, &nobody] {
        assert!(
            !c.options["publicKey"]["allowCredentials"]
                .as_array()
                .expect("list")
                .is_empty()
        );
    }
    // The same name shows the same (decoy) ids each time, as a real account would.
    let again = passwordless(&app, "nobody-at-all").await;
    assert_eq!(
        nobody.options["publicKey"]["allowCredentials"],
        again.options["publicKey"]["allowCredentials"]
    );
    // An answer for a credential the challenge does not allow: refused the same way whether the
    // challenge was real or a decoy.
    let mut forged = answer(&mut key, &real, origin());
    let stranger = {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        URL_SAFE_NO_PAD.encode([7u8; 32])
    };
    forged["id"] = stranger.clone().into();
    forged["rawId"] = stranger.into();
    let e2 = finish(&app, &real.ceremony_id, forged.clone())
        .await
        .expect_err("a credential the real challenge does not allow");
    assert_eq!(e2.code(), Some("webauthn_failed"), "{e2}");
    let e = finish(&app, &without.ceremony_id, forged)
        .await
        .expect_err("a decoy is refused");
    assert_eq!(e.code(), Some("webauthn_failed"), "{e}");
    assert_eq!(e.to_string(), e2.to_string(), "the same answer either way");
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
    huge_numbers_and_multibyte_durations_get_a_clear_400,
    hostile_bodies_never_break_the_unauthenticated_endpoints,
    unauthenticated_rows_are_capped_per_address,
    passwordless_start_tells_nobody_who_has_passkeys,
    a_revoked_refresh_family_takes_its_access_tokens_along,
    a_nul_client_id_is_refused_and_harms_nobody,
    invisible_characters_are_refused_at_the_edge,
    concurrent_guesses_cannot_race_the_throttle,
    failures_elsewhere_never_lock_a_person_out_of_their_own_network,
    break_glass_gets_through_a_flood_from_its_own_address,
);
