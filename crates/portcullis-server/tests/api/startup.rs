//! Starting and running a server: data directory and master key, the bootstrap token and the
//! first administrator, restarts, health and readiness, OpenAPI, metrics, the shape of errors.

use super::*;

async fn health_and_readiness(app: TestApp) {
    assert_eq!(app.anonymous.health().await.expect("healthz").status, "ok");
    let ready = app.anonymous.ready().await.expect("readyz");
    assert_eq!(ready.status, "ready");
    assert_eq!(
        ready.schema_version,
        portcullis_store::known_schema_version(false)
    );
    app.stop().await;
}

async fn errors_have_one_shape(app: TestApp) {
    let before = event_count(&app).await;
    let url = |p: &str| format!("{}{}", app.base, p);
    let check = |status: u16, code: &'static str| {
        move |resp: reqwest::Response| async move {
            assert_eq!(resp.status().as_u16(), status);
            let body: serde_json::Value = resp.json().await.expect("json error body");
            assert_eq!(body["error"]["code"], code, "{body}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
        }
    };
    check(404, "not_found")(
        app.http
            .get(url("/api/v1/nope"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    check(405, "method_not_allowed")(app.http.delete(url("/healthz")).send().await.expect("send"))
        .await;
    let cp = url("/api/v1/audit/checkpoints");
    let auth = format!("Bearer {}", app.token);
    // Every code has one status: a body that is not the operation's JSON, by syntax or by
    // shape, is a 422 `invalid_json`.
    check(422, "invalid_json")(
        app.http
            .post(&cp)
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .body("{\"reason\": ")
            .send()
            .await
            .expect("send"),
    )
    .await;
    check(415, "unsupported_media_type")(
        app.http
            .post(&cp)
            .header("authorization", &auth)
            .header("content-type", "text/plain")
            .body("{\"reason\": \"x\"}")
            .send()
            .await
            .expect("send"),
    )
    .await;
    check(422, "invalid_json")(
        app.http
            .post(&cp)
            .header("authorization", &auth)
            .json(&serde_json::json!({"reason": 5}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    check(422, "invalid_json")(
        app.http
            .post(&cp)
            .header("authorization", &auth)
            .json(&serde_json::json!({"reason": "x", "extra": 1}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    // A body over the limit. The server answers 413 from the declared length without reading
    // the body and then closes the connection; a client still writing a large body can see that
    // close as a reset before it reads the answer (a race of TCP, not of the server). So declare
    // the length and send no body: the answer then always arrives whole.
    let (status, body) =
        raw_post_declaring_length(&app.base, "/api/v1/audit/checkpoints", &auth, 200 * 1024).await;
    assert_eq!(status, 413, "{body}");
    let err: serde_json::Value = serde_json::from_str(&body).expect("error json");
    assert_eq!(err["error"]["code"], "payload_too_large", "{body}");
    check(400, "invalid_request")(
        app.http
            .post(&cp)
            .header("authorization", &auth)
            .json(&serde_json::json!({"reason": "   "}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    check(400, "invalid_request")(
        app.http
            .get(url("/api/v1/audit/events?limit=abc"))
            .header("authorization", &auth)
            .send()
            .await
            .expect("send"),
    )
    .await;
    check(400, "invalid_request")(
        app.http
            .get(url("/api/v1/audit/events?since=yesterday"))
            .header("authorization", &auth)
            .send()
            .await
            .expect("send"),
    )
    .await;
    check(400, "invalid_request")(
        app.http
            .get(url("/api/v1/audit/events?outcome=maybe"))
            .header("authorization", &auth)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(event_count(&app).await, before, "bad input changed nothing");
    app.stop().await;
}

async fn the_bootstrap_token_is_the_only_credential(app: TestApp) {
    let err = app
        .anonymous
        .audit_verify()
        .await
        .expect_err("no credential");
    assert_eq!(err.code(), Some("unauthenticated"));
    let wrong = Client::new(
        &app.base,
        Some(SecretString::from("not-the-token".to_owned())),
    )
    .expect("client");
    assert_eq!(
        wrong
            .audit_events(&EventFilter::default())
            .await
            .expect_err("wrong")
            .code(),
        Some("unauthenticated")
    );
    let resp = app
        .http
        .get(format!("{}/api/v1/audit/verify", app.base))
        .header("authorization", "Basic Zm9vOmJhcg==")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    assert!(app.client.audit_verify().await.expect("verify").ok);
    app.stop().await;
}

/// The served OpenAPI document.
async fn openapi_doc(app: &TestApp) -> serde_json::Value {
    public_json(app, "/api/v1/openapi.json").await
}

async fn openapi_lists_every_route(app: TestApp) {
    let doc = openapi_doc(&app).await;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            documented.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    // The router's table, written out: a route added without documentation fails here.
    let routed: BTreeSet<String> = [
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /api/v1/openapi.json",
        "GET /api/v1/audit/events",
        "GET /api/v1/audit/verify",
        "POST /api/v1/audit/verify",
        "GET /api/v1/posture",
        "POST /api/v1/audit/checkpoints",
        "GET /api/v1/keys",
        "POST /api/v1/keys/rotate",
        "POST /api/v1/bootstrap",
        "POST /api/v1/signin",
        "POST /api/v1/signin/totp",
        "POST /api/v1/signin/webauthn",
        "POST /api/v1/signin/webauthn/finish",
        "POST /api/v1/signout",
        "GET /api/v1/me",
        "GET /api/v1/me/mfa",
        "POST /api/v1/me/mfa/totp",
        "POST /api/v1/me/mfa/totp/{id}/confirm",
        "POST /api/v1/me/mfa/webauthn",
        "POST /api/v1/me/mfa/webauthn/finish",
        "DELETE /api/v1/me/mfa/{id}",
        "POST /api/v1/me/password",
        "GET /api/v1/sessions",
        "DELETE /api/v1/sessions/{id}",
        "POST /api/v1/users",
        "GET /api/v1/users",
        "GET /api/v1/users/{name}",
        "POST /api/v1/users/{name}/disable",
        "POST /api/v1/users/{name}/enable",
        "POST /api/v1/principals/{name}/contain",
        "POST /api/v1/principals/{name}/release",
        "GET /api/v1/users/{name}/sessions",
        "POST /api/v1/groups",
        "GET /api/v1/groups",
        "POST /api/v1/groups/{name}/members",
        "DELETE /api/v1/groups/{name}/members/{member}",
        "POST /api/v1/service-accounts",
        "GET /api/v1/service-accounts",
        "GET /api/v1/service-accounts/{name}",
        "POST /api/v1/service-accounts/{name}/secrets",
        "DELETE /api/v1/service-accounts/{name}/secrets/{id}",
        "POST /api/v1/service-accounts/{name}/consent",
        "PUT /api/v1/service-accounts/{name}/networks",
        "POST /api/v1/service-accounts/{name}/keys",
        "DELETE /api/v1/service-accounts/{name}/keys/{kid}",
        "GET /.well-known/openid-configuration",
        "GET /oauth2/jwks",
        "POST /oauth2/token",
        "POST /oauth2/introspect",
        "POST /oauth2/revoke",
        "POST /oauth2/device_authorization",
        "GET /oauth2/userinfo",
        "POST /oauth2/userinfo",
        "GET /oauth2/authorize",
        "POST /oauth2/authorize",
        "POST /oauth2/authorize/consent",
        "GET /signin",
        "POST /signin",
        "POST /signin/totp",
        "POST /signin/webauthn",
        "GET /assets/webauthn.js",
        "GET /device",
        "POST /device",
        "GET /console",
        "POST /console/requests",
        "GET /console/requests/{id}",
        "POST /console/requests/{id}/decide",
        "POST /console/requests/{id}/deactivate",
        "POST /console/requests/{id}/extend",
        "POST /console/requests/{id}/cancel",
        "GET /console/approvals",
        "GET /console/reviews",
        "GET /console/reviews/{round}/{assignment}",
        "POST /console/reviews/{round}/{assignment}/decide",
        "GET /console/reauth",
        "POST /console/reauth",
        "POST /console/signout",
        "GET /console/audit",
        "GET /console/audit/{seq}",
        "GET /console/audit/verify",
        "GET /console/audit/export",
        "GET /console/breakglass",
        "GET /console/alerts",
        "GET /console/alerts/{id}",
        "POST /console/alerts/{id}/retry",
        "GET /console/admin/users",
        "POST /console/admin/users/{name}/enabled",
        "POST /console/admin/groups/{name}/members",
        "GET /console/admin/assignments",
        "POST /console/admin/assignments",
        "POST /console/admin/assignments/{id}/end",
        "GET /console/admin/roles",
        "GET /console/admin/roles/{role}",
        "POST /console/admin/roles/{role}",
        "GET /console/admin/policies",
        "GET /assets/console.css",
        "GET /assets/console.js",
        "POST /api/v1/alerts/channels",
        "GET /api/v1/alerts/channels",
        "DELETE /api/v1/alerts/channels/{name}",
        "POST /api/v1/alerts/channels/{name}/test",
        "GET /api/v1/alerts/rules",
        "POST /api/v1/alerts/rules",
        "DELETE /api/v1/alerts/rules/{name}",
        "GET /api/v1/alerts",
        "GET /api/v1/alerts/{id}",
        "POST /api/v1/alerts/{id}/retry",
        "GET /api/v1/ca/policies",
        "POST /api/v1/ca/policies",
        "GET /api/v1/ca/policies/{name}",
        "DELETE /api/v1/ca/policies/{name}",
        "POST /api/v1/ca/policies/{name}/state",
        "GET /api/v1/ca/locations",
        "POST /api/v1/ca/locations",
        "DELETE /api/v1/ca/locations/{name}",
        "POST /api/v1/ca/whatif",
        "POST /api/v1/breakglass",
        "GET /api/v1/breakglass",
        "POST /api/v1/breakglass/{name}/rotate",
        "POST /api/v1/breakglass/{name}/enrolment",
        "POST /api/v1/breakglass/drill",
        "POST /api/v1/breakglass/{name}/failed-recovery",
        "POST /api/v1/clients",
        "GET /api/v1/clients",
        "GET /api/v1/clients/{id}",
        "DELETE /api/v1/clients/{id}",
        "POST /api/v1/clients/{id}/secrets",
        "DELETE /api/v1/clients/{id}/secrets/{secret_id}",
        "POST /api/v1/device/approve",
        "POST /api/v1/device/deny",
        "GET /api/v1/roles",
        "POST /api/v1/roles",
        "GET /api/v1/roles/{role}",
        "DELETE /api/v1/roles/{role}",
        "GET /api/v1/roles/{role}/settings",
        "PUT /api/v1/roles/{role}/settings",
        "GET /api/v1/assignments",
        "POST /api/v1/assignments",
        "DELETE /api/v1/assignments/{id}",
        "GET /api/v1/requests",
        "POST /api/v1/requests",
        "GET /api/v1/requests/{id}",
        "POST /api/v1/requests/{id}/approve",
        "POST /api/v1/requests/{id}/deny",
        "POST /api/v1/requests/{id}/cancel",
        "POST /api/v1/requests/{id}/deactivate",
        "POST /api/v1/requests/{id}/extend",
        "GET /api/v1/changes",
        "GET /api/v1/changes/{id}",
        "POST /api/v1/changes/{id}/approve",
        "POST /api/v1/changes/{id}/deny",
        "POST /api/v1/changes/{id}/cancel",
        "POST /api/v1/requests/{id}/revoke",
        "POST /api/v1/reviews",
        "GET /api/v1/reviews",
        "GET /api/v1/reviews/{id}",
        "DELETE /api/v1/reviews/{id}",
        "POST /api/v1/reviews/{id}/start",
        "GET /api/v1/reviews/items",
        "GET /api/v1/reviews/rounds/{id}",
        "POST /api/v1/reviews/rounds/{id}/close",
        "POST /api/v1/reviews/rounds/{id}/items/{assignment}/decide",
        "PUT /api/v1/users/{name}/manager",
        "POST /api/v1/assignments/{id}/make-eligible",
        "POST /api/v1/me/reauth",
        "POST /api/v1/me/reauth/webauthn",
        "POST /api/v1/targets",
        "GET /api/v1/targets",
        "GET /api/v1/targets/{name}",
        "DELETE /api/v1/targets/{name}",
        "POST /api/v1/targets/{name}/test",
        "GET /api/v1/targets/{name}/observe",
        "POST /api/v1/targets/{name}/reconcile",
        "POST /api/v1/targets/{name}/credentials",
        "POST /api/v1/targets/{name}/ssh/sign",
        "GET /api/v1/targets/{name}/ssh/ca.pub",
        "GET /api/v1/targets/{name}/ssh/krl",
        "POST /api/v1/targets/{name}/ssh/rotate",
        "PUT /api/v1/targets/{name}/bindings/{role}",
        "DELETE /api/v1/targets/{name}/bindings/{role}",
        "GET /api/v1/targets/{name}/accounts",
        "PUT /api/v1/targets/{name}/accounts/{principal}",
        "DELETE /api/v1/targets/{name}/accounts/{principal}",
        "GET /api/v1/target-ops",
        "GET /api/v1/target-ops/{id}",
        "POST /api/v1/target-ops/{id}/retry",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(documented, routed);
    // And every documented route is really served (neither 404 nor 405).
    for entry in &documented {
        let (method, path) = entry.split_once(' ').expect("entry");
        let path = path
            .replace("{id}", "x")
            .replace("{name}", "x")
            .replace("{role}", "x")
            .replace("{kid}", "x")
            .replace("{member}", "y")
            .replace("{seq}", "1");
        let resp = app
            .http
            .request(
                method.parse().expect("method"),
                format!("{}{path}", app.base),
            )
            .send()
            .await
            .expect("send");
        let status = resp.status().as_u16();
        // The public SSH documents answer anyone: there, a 404 names the missing target.
        let named_target = status == 404
            && resp
                .text()
                .await
                .unwrap_or_default()
                .contains("no ssh-ca target x");
        assert!(
            named_target || ![404, 405].contains(&status),
            "{entry} is not routed"
        );
    }
    app.stop().await;
}

/// The served OpenAPI document is one a generated client can use: unique `resource_action`
/// operation ids, path parameters only where the path has them, every security scheme named
/// defined, the layers' answers documented; and a validator the project did not write
/// (openapi-spec-validator, from PyPI) accepts it.
async fn the_openapi_document_is_valid(app: TestApp) {
    let doc = openapi_doc(&app).await;
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let id = op["operationId"].as_str().expect("operationId");
            assert!(ids.insert(id.to_owned()), "{id} is given twice");
            let tag = op["tags"][0]
                .as_str()
                .unwrap_or("default")
                .replace('-', "_");
            assert!(
                id.starts_with(&format!("{tag}_")),
                "{id} is not {tag}_action"
            );
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().expect("name");
                let in_path = path.contains(&format!("{{{name}}}"));
                assert_eq!(
                    p["in"] == "path",
                    in_path,
                    "{method} {path}: parameter {name} is in {}",
                    p["in"]
                );
            }
            for requirement in op["security"].as_array().into_iter().flatten() {
                for scheme in requirement.as_object().expect("requirement").keys() {
                    assert!(
                        schemes.contains_key(scheme),
                        "{id}: scheme {scheme} undefined"
                    );
                }
            }
            let responses = op["responses"].as_object().expect("responses");
            if path.starts_with("/api/") {
                for status in ["400", "429"] {
                    assert!(responses.contains_key(status), "{id}: no {status}");
                }
                if op["requestBody"]["content"]["application/json"].is_object() {
                    for status in ["413", "415", "422"] {
                        assert!(responses.contains_key(status), "{id}: no {status}");
                    }
                }
                if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
                    for status in ["401", "403"] {
                        assert!(responses.contains_key(status), "{id}: no {status}");
                    }
                }
            } else {
                // The pages: the rate limits (sign-in excepted) and the console forms' check.
                let exempt = method == "post" && path.starts_with("/signin");
                assert!(exempt || responses.contains_key("429"), "{id}: no 429");
                if method == "post" && path.starts_with("/console/") {
                    for status in ["400", "403"] {
                        assert!(responses.contains_key(status), "{id}: no {status}");
                    }
                }
            }
        }
    }
    let required = std::env::var("PORTCULLIS_REQUIRE_OPENAPI_VALIDATOR").is_ok();
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).expect("write");
    match std::process::Command::new("openapi-spec-validator")
        .arg(&file)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "openapi-spec-validator: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) if required => panic!("openapi-spec-validator must run here: {e}"),
        Err(_) => eprintln!("skipped: no openapi-spec-validator"),
    }
    app.stop().await;
}

async fn metrics_count_requests_per_route(app: TestApp) {
    app.anonymous.health().await.expect("healthz");
    let text = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    assert!(text.contains("http_requests_total"), "{text}");
    assert!(text.contains("route=\"/healthz\""), "{text}");
    assert!(text.contains("http_request_duration_seconds"), "{text}");
    app.stop().await;
}

/// `/metrics` tells the tenant's domain exactly (grants per role, requests waiting, sign-in
/// failures by reason, the audit head, break-glass readiness), every family with HELP and
/// TYPE, and Prometheus' own checker (`promtool check metrics`) accepts the page.
async fn domain_metrics_are_exact_and_pass_promtool(app: TestApp) {
    let admin = admin(&app).await;
    let pw = "saffron-glacier-ribbon-81";
    let (ana, _) = mfa_user(&app, &admin, "ana", pw).await;
    admin
        .update_role_settings(
            "security-reader",
            &portcullis_core::api::RoleSettingsUpdate {
                require_approval: Some(true),
                approvers: Some(vec!["user:root-admin".into()]),
                ..Default::default()
            },
        )
        .await
        .expect("settings");
    admin
        .create_assignment(&CreateAssignmentRequest {
            principal: "ana".into(),
            role: "security-reader".into(),
            scope: None,
            kind: Some("eligible".into()),
            duration_seconds: None,
            ends_at: None,
        })
        .await
        .expect("eligible");
    let r = ana
        .request_activation(&CreateActivationRequest {
            role: "security-reader".into(),
            scope: None,
            duration_seconds: 600,
            justification: Some("quarterly review".into()),
            ticket: None,
            starts_at: None,
        })
        .await
        .expect("request");
    assert_eq!(r.state, "pending_approval");
    let _ = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "ana".into(),
            password: "not-her-password-at-all".into(),
        })
        .await;
    let text = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    for line in [
        "portcullis_requests_pending_approval 1",
        "portcullis_active_grants{role=\"global-administrator\"} 1",
        "portcullis_breakglass_required 2",
        "portcullis_breakglass_usable 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }
    assert!(
        text.contains("portcullis_signin_failures_total{reason="),
        "{text}"
    );
    let head = text
        .lines()
        .find_map(|l| l.strip_prefix("portcullis_audit_head_sequence "))
        .and_then(|v| v.parse::<f64>().ok())
        .expect("audit head");
    assert!(head >= 5.0, "{head}");
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split_whitespace().nth(2).expect("name");
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no HELP for {name}"
        );
    }
    let required = std::env::var("PORTCULLIS_REQUIRE_PROMTOOL").is_ok();
    match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(mut child) => {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes())
                .expect("write");
            let out = child.wait_with_output().expect("promtool");
            assert!(
                out.status.success(),
                "promtool check metrics: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Err(e) if required => panic!("promtool must run here: {e}"),
        Err(_) => eprintln!("skipped: no promtool"),
    }
    app.stop().await;
}

/// `/metrics` answers anyone: the domain counts are read once, then served from memory for up
/// to a second, so a flood of scrapes cannot make the store count again and again.
async fn a_flood_of_metrics_scrapes_reads_the_domain_once_a_second(app: TestApp) {
    admin(&app).await;
    let (first, reads) = portcullis_store::testing::counting_reads(
        portcullis_server::services::stats::domain(&app.state),
    )
    .await;
    let head = first.expect("domain").0.stats.audit_head_seq;
    assert!(head > 0);
    assert!(reads > 0, "the first scrape reads");
    let (again, reads) = portcullis_store::testing::counting_reads(async {
        for _ in 0..50 {
            portcullis_server::services::stats::domain(&app.state)
                .await
                .expect("domain");
        }
        portcullis_server::services::stats::domain(&app.state).await
    })
    .await;
    assert_eq!(again.expect("domain").0.stats.audit_head_seq, head);
    assert_eq!(reads, 0, "51 more scrapes within the second read nothing");
    app.stop().await;
}

async fn restart_keeps_the_chain_and_records_config_changes(app: TestApp) {
    let (dir, mut config, token) = app.stop().await;
    let again = start(config.clone(), dir, Some(token)).await;
    let events = again
        .client
        .audit_events(&EventFilter::default())
        .await
        .expect("list")
        .events;
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "tenant.initialised",
            "server.started",
            "config.changed",
            "server.stopped",
            "server.started"
        ],
        "an unchanged configuration is not recorded again"
    );
    let (dir, _, token) = again.stop().await;
    config.audit_checkpoint_events = 50;
    let third = start(config, dir, Some(token)).await;
    let changed = third
        .client
        .audit_events(&EventFilter {
            action: Some("config.changed".into()),
            ..Default::default()
        })
        .await
        .expect("list")
        .events;
    assert_eq!(changed.len(), 2);
    assert_eq!(
        changed[1].details["before"]["audit_checkpoint_events"],
        1000
    );
    assert_eq!(changed[1].details["after"]["audit_checkpoint_events"], 50);
    assert!(third.client.audit_verify().await.expect("verify").ok);
    third.stop().await;
}

async fn bootstrap_makes_the_first_admin_once(app: TestApp) {
    let admin = admin(&app).await;
    let me = admin.whoami().await.expect("whoami");
    assert!(me.user.first_admin);
    assert_eq!(me.user.mfa, ["totp"]);
    assert_eq!(
        (
            me.roles[0].role.as_str(),
            me.roles[0].scope.as_str(),
            me.roles[0].seconds_left
        ),
        ("global-administrator", "/", None)
    );
    assert!(me.warnings.iter().any(|w| w.contains("standing")));
    assert!(!me.warnings.is_empty(), "the standing role is called out");
    // The token stopped working, for bootstrap and as a credential.
    let again = app
        .anonymous
        .bootstrap(&BootstrapRequest {
            token: app.token.clone(),
            username: "second".into(),
            display_name: "Second".into(),
            email: None,
            password: ADMIN_PW.into(),
            totp_secret: totp::base32(ADMIN_SECRET),
            totp_code: code(ADMIN_SECRET, 0),
        })
        .await
        .expect_err("reuse");
    assert_eq!(again.code(), Some("bootstrap_unavailable"));
    assert_eq!(
        app.client
            .audit_verify()
            .await
            .expect_err("token dead")
            .code(),
        Some("unauthenticated")
    );
    // The administrator reads the audit log now.
    let v = admin.audit_verify().await.expect("verify");
    assert!(v.ok);
    let events = admin
        .audit_events(&EventFilter {
            action: Some("bootstrap.redeemed".into()),
            ..Default::default()
        })
        .await
        .expect("list")
        .events;
    assert_eq!(events.len(), 1);
    assert!(!format!("{events:?}").contains(ADMIN_PW));
    app.stop().await;
}

#[tokio::test]
async fn data_dir_and_master_key_are_private() {
    let app = spawn_app(Backend::Sqlite).await.expect("app");
    let data = app.config.data_dir.clone();
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("master.key")), 0o600);
    assert_eq!(mode(&data.join("portcullis.db")), 0o600);
    let (_dir, config, _) = app.stop().await;
    // A world-readable master.key is refused with a clear error.
    std::fs::set_permissions(
        data.join("master.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let err = Application::build(config.clone(), BuildOptions::default())
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, StartError::Secrets(_)), "{err}");
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

#[tokio::test]
async fn wrong_master_key_fails_start_and_changes_nothing() {
    let app = spawn_app(Backend::Sqlite).await.expect("app");
    let before = event_count(&app).await;
    let (dir, mut config, token) = app.stop().await;
    let other = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    config.master_key = Some(SecretString::from(other));
    let err = Application::build(config.clone(), BuildOptions::default())
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, StartError::Store(_)), "{err}");
    assert!(err.to_string().contains("master key"), "{err}");
    config.master_key = Some(SecretString::from("not base64!".to_owned()));
    assert!(matches!(
        Application::build(config.clone(), BuildOptions::default())
            .await
            .err(),
        Some(StartError::Secrets(_))
    ));
    config.master_key = None;
    let app = start(config, dir, Some(token)).await;
    // server.stopped from the clean stop and server.started now; the refused starts wrote nothing.
    assert_eq!(event_count(&app).await, before + 2);
    app.stop().await;
}

#[tokio::test]
async fn bootstrap_token_file_is_private_and_new() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = config_for(Backend::Sqlite, dir.path())
        .await
        .expect("config");
    let path = dir.path().join("token");
    let app = Application::build(
        config,
        BuildOptions {
            bootstrap_token_file: Some(path.clone()),
        },
    )
    .await
    .expect("build");
    let written = std::fs::read_to_string(&path).expect("token file");
    assert_eq!(written.trim(), app.bootstrap_token().expect("created"));
    assert_eq!(
        std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn every_route_has_an_authorisation_entry() {
    let router_doc = portcullis_server::http::routes().1;
    let mut documented = BTreeSet::new();
    for (path, item) in router_doc.paths.paths.iter() {
        let item = serde_json::to_value(item).expect("json");
        for method in item.as_object().expect("item").keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let table: BTreeSet<(String, String)> = portcullis_server::http::authz::ROUTES
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(
        documented, table,
        "routes and the authorisation table differ"
    );
}

api_tests!(
    health_and_readiness,
    errors_have_one_shape,
    the_bootstrap_token_is_the_only_credential,
    openapi_lists_every_route,
    the_openapi_document_is_valid,
    metrics_count_requests_per_route,
    domain_metrics_are_exact_and_pass_promtool,
    a_flood_of_metrics_scrapes_reads_the_domain_once_a_second,
    restart_keeps_the_chain_and_records_config_changes,
    bootstrap_makes_the_first_admin_once,
);
