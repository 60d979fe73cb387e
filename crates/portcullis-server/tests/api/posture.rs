//! The posture report (`GET /api/v1/posture`): what a fresh tenant lacks, findings that follow
//! the tenant's changes, who may read it, its counts on `/metrics`, and the daily digest.

use super::*;

async fn report(app: &TestApp, token: &str) -> serde_json::Value {
    api_get(app, token, "/api/v1/posture").await
}

fn ids(r: &serde_json::Value) -> Vec<String> {
    r["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Right after bootstrap: one Global Administrator (standing: the first administrator), no
/// break-glass accounts, no alert channel, no alert rules.
async fn a_fresh_tenant_reports_what_it_lacks(app: TestApp) {
    let token = admin_token(&app).await;
    let r = report(&app, &token).await;
    let found = ids(&r);
    for id in [
        "MS.AAD.7.1",
        "MS.AAD.7.8",
        "MS.AAD.7.7",
        "MS.AAD.7.9",
        "portcullis.breakglass_minimum",
        "portcullis.first_admin_standing",
    ] {
        assert!(found.iter().any(|f| f == id), "{id} missing from {found:?}");
    }
    assert!(
        !found.iter().any(|f| f == "MS.AAD.7.6"),
        "GA requires approval by default"
    );
    let findings = r["findings"].as_array().expect("findings");
    let highs = findings.iter().filter(|f| f["severity"] == "high").count();
    assert_eq!(r["high"], highs);
    // Most severe first.
    let order: Vec<&str> = findings
        .iter()
        .map(|f| f["severity"].as_str().expect("s"))
        .collect();
    let mut sorted = order.clone();
    sorted.sort_by_key(|s| ["high", "medium", "low"].iter().position(|x| x == s));
    assert_eq!(order, sorted);
    let first = &findings
        .iter()
        .find(|f| f["id"] == "portcullis.first_admin_standing")
        .expect("first admin");
    assert_eq!(first["evidence"], serde_json::json!(["root-admin"]));
    assert!(
        first["fix"]
            .as_str()
            .expect("fix")
            .contains("make-eligible")
    );
    app.stop().await;
}

/// A weakening makes its finding appear; each change the report asks for makes its finding go.
async fn findings_follow_the_tenants_changes(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    assert!(
        !ids(&report(&app, &token).await)
            .iter()
            .any(|f| f == "MS.AAD.7.6")
    );
    settings_now(
        &admin,
        "global-administrator",
        &RoleSettingsUpdate {
            require_approval: Some(false),
            ..Default::default()
        },
    )
    .await;
    assert!(
        ids(&report(&app, &token).await)
            .iter()
            .any(|f| f == "MS.AAD.7.6")
    );
    for name in ["ada", "grace"] {
        mfa_user(&app, &admin, name, "amber-willow-canyon-58").await;
        admin
            .create_assignment(&eligible(name, "global-administrator", None))
            .await
            .expect("eligible");
    }
    for (name, action) in [
        ("privileged-assignments", "assignment.created"),
        ("privileged-activations", "request.activated"),
    ] {
        admin
            .create_alert_rule(&portcullis_core::api::CreateAlertRuleRequest {
                name: name.into(),
                action: action.into(),
                outcome: None,
                actor: None,
                target: None,
                group_by: None,
                count: 1,
                window: "5m".into(),
                severity: Some("warning".into()),
            })
            .await
            .expect("rule");
    }
    let inbox = Inbox::default();
    let (port, _task) = receiver(inbox.clone(), 0).await;
    let r = add_channel(
        &app,
        &token,
        serde_json::json!({
            "name": "soc-hook", "kind": "webhook", "url": format!("http://127.0.0.1:{port}/hook"),
            "secret": "a-webhook-signing-key-of-32-bytes!!",
        }),
    )
    .await;
    assert_eq!(r.status(), 201);
    admin.test_alert_channel("soc-hook").await.expect("test");
    eventually("the test delivery", 30, async || {
        !inbox.lock().expect("inbox").requests.is_empty()
    })
    .await;
    // The cache of /metrics is not the report's: read the report straight after.
    eventually("the report to see the delivery", 10, async || {
        !ids(&report(&app, &token).await)
            .iter()
            .any(|f| f == "MS.AAD.7.8")
    })
    .await;
    let found = ids(&report(&app, &token).await);
    for gone in ["MS.AAD.7.1", "MS.AAD.7.7", "MS.AAD.7.8", "MS.AAD.7.9"] {
        assert!(
            !found.iter().any(|f| f == gone),
            "{gone} still in {found:?}"
        );
    }
    // GA's approval was switched off while root-admin was the only top-tier person (after
    // its cooling-off); now that ada and grace can reach GA, another weakening waits for one
    // of them (four eyes) and the report does not change.
    assert!(found.iter().any(|f| f == "MS.AAD.7.6"), "{found:?}");
    let e = admin
        .update_role_settings(
            "global-administrator",
            &RoleSettingsUpdate {
                max_activation_seconds: Some(7200),
                ..Default::default()
            },
        )
        .await
        .expect_err("four eyes");
    assert_eq!(e.code(), Some("change_pending"), "{e}");
    app.stop().await;
}

async fn a_person_without_posture_read_is_refused(app: TestApp) {
    let admin = admin(&app).await;
    let (ivy, _) = mfa_user(&app, &admin, "ivy", "amber-willow-canyon-58").await;
    refused(ivy.posture().await, "forbidden", "posture.read");
    let (hal, _) = holder(&app, &admin, "hal", "helpdesk-administrator").await;
    refused(hal.posture().await, "forbidden", "posture.read");
    app.stop().await;
}

/// `/metrics` shows the findings per severity, as the report counts them.
async fn metrics_count_the_findings_by_severity(app: TestApp) {
    let token = admin_token(&app).await;
    let r = report(&app, &token).await;
    let text = metrics_text(&app).await;
    assert!(
        text.contains("# HELP portcullis_posture_findings "),
        "{text}"
    );
    for s in ["high", "medium", "low"] {
        let line = format!("portcullis_posture_findings{{severity=\"{s}\"}} {}", r[s]);
        assert!(text.contains(&line), "{line} not in metrics");
    }
    app.stop().await;
}

/// The digest is one event a day for the whole tenant, with the counts and the high findings.
async fn the_daily_digest_is_recorded_once_a_day(app: TestApp) {
    let admin = admin(&app).await;
    portcullis_server::workers::posture::send(&app.state)
        .await
        .expect("digest");
    portcullis_server::workers::posture::send(&app.state)
        .await
        .expect("again");
    let digests = events_named(&admin, "posture.digest").await;
    assert_eq!(digests.len(), 1, "once a day");
    assert!(digests[0].details["high"].as_u64().expect("high") >= 1);
    let listed = digests[0].details["high_findings"].to_string();
    assert!(listed.contains("MS.AAD.7.1"), "{listed}");
    app.stop().await;
}

api_tests!(
    a_fresh_tenant_reports_what_it_lacks,
    findings_follow_the_tenants_changes,
    a_person_without_posture_read_is_refused,
    metrics_count_the_findings_by_severity,
    the_daily_digest_is_recorded_once_a_day,
);
