//! Alerts: channels (webhook, SMS, e-mail), delivery with retries, dead letters, custom rules,
//! throttled attempts still alerting, channel URLs not shown.

use super::*;

/// A critical alert reaches a signed webhook and an SMS gateway; a 500 is retried; a receiver
/// that is down when the alert fires gets it after it comes back; nothing is lost and nothing
/// delivered twice; bad channel definitions are refused and change nothing.
async fn alerts_reach_webhooks_and_sms_through_failures(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let inbox: Inbox = Default::default();
    let (port, mut task) = receiver(inbox.clone(), 0).await;
    let secret = "a-webhook-signing-key-of-some-length";

    // Bad definitions: refused, nothing stored.
    let many_headers: serde_json::Map<String, serde_json::Value> =
        (0..17).map(|i| (format!("X-H{i}"), "v".into())).collect();
    let many_numbers: Vec<String> = (0..21).map(|i| format!("+155501{i:02}")).collect();
    for bad in [
        // A channel may not read the server's own secrets from its environment.
        serde_json::json!({"name": "x", "kind": "sms", "url": format!("http://127.0.0.1:{port}/s"), "to": ["+15550100"], "template": "{message}", "headers": {"X-Key": "env:PORTCULLIS_MASTER_KEY"}}),
        serde_json::json!({"name": "x", "kind": "email", "smtp_url": "smtps://127.0.0.1:465", "from": "a@example.org", "to": ["b@example.org"], "smtp_username": "u", "password_env": "PORTCULLIS_DATABASE_URL"}),
        // SMTP credentials in the clear to a remote relay.
        serde_json::json!({"name": "x", "kind": "email", "smtp_url": "smtp://mail.example.org:25", "from": "a@example.org", "to": ["b@example.org"], "smtp_username": "u", "password_env": "PORTCULLIS_ALERT_SECRET_SMTP"}),
        serde_json::json!({"name": "x", "kind": "sms", "url": format!("http://127.0.0.1:{port}/s"), "to": many_numbers, "template": "{message}"}),
        serde_json::json!({"name": "x", "kind": "sms", "url": format!("http://127.0.0.1:{port}/s"), "to": ["+15550100"], "template": "{message}", "headers": many_headers}),
        serde_json::json!({"name": "x", "kind": "sms", "url": format!("http://127.0.0.1:{port}/s"), "to": ["+15550100"], "template": "{message}", "headers": {"X-Long": "v".repeat(1025)}}),
        serde_json::json!({"name": "x", "kind": "pager"}),
        serde_json::json!({"name": "x", "kind": "webhook", "url": "http://example.com/hook"}),
        serde_json::json!({"name": "x", "kind": "webhook", "url": format!("http://127.0.0.1:{port}/h"), "secret": "short"}),
        serde_json::json!({"name": "x", "kind": "sms", "url": format!("http://127.0.0.1:{port}/s"), "to": ["+15550100"], "template": "no placeholder"}),
        serde_json::json!({"name": "x", "kind": "sms", "url": format!("http://127.0.0.1:{port}/s"), "to": ["555"], "template": "{message}"}),
        serde_json::json!({"name": "x", "kind": "sms", "url": format!("http://127.0.0.1:{port}/s"), "to": ["+15550100"], "template": "{message}", "headers": {"Authorization": "Bearer plain"}}),
        serde_json::json!({"name": "x", "kind": "email", "smtp_url": "smtp://u:p@127.0.0.1:25", "from": "a@example.org", "to": ["b@example.org"]}),
        serde_json::json!({"name": "x", "kind": "webhook", "url": format!("http://127.0.0.1:{port}/h"), "min_severity": "loud"}),
    ] {
        let r = add_channel(&app, &token, bad.clone()).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    assert_eq!(
        api_get(&app, &token, "/api/v1/alerts/channels").await,
        serde_json::json!([])
    );

    let r = add_channel(&app, &token, serde_json::json!({
        "name": "soc-hook", "kind": "webhook", "url": format!("http://127.0.0.1:{port}/hook"), "secret": secret,
    }))
    .await;
    assert_eq!(r.status(), 201);
    let r = add_channel(
        &app,
        &token,
        serde_json::json!({
            "name": "oncall-sms", "kind": "sms", "url": format!("http://127.0.0.1:{port}/sms"),
            "to": ["+15550100", "+15550101"], "headers": {"Content-Type": "application/json"},
            "template": "{\"to\":\"{to}\",\"text\":\"{message}\"}",
        }),
    )
    .await;
    assert_eq!(r.status(), 201);
    let listed = api_get(&app, &token, "/api/v1/alerts/channels").await;
    assert_eq!(listed.as_array().expect("list").len(), 2);
    assert!(
        !listed.to_string().contains(secret),
        "the signing key is never shown"
    );
    // Adding a channel is itself alert-worthy (it changes who hears about emergencies): the
    // second addition was reported on both channels.
    eventually("the channel-change alerts", 30, async || {
        let a = api_get(&app, &token, "/api/v1/alerts").await;
        let flagged = alerts_of(&a, "flagged");
        !flagged.is_empty() && flagged.iter().all(|m| m["state"] == "delivered")
    })
    .await;
    {
        let mut r = inbox.lock().expect("inbox");
        assert!(
            r.requests
                .iter()
                .any(|(_, _, b)| b.contains("alert_channel.added"))
        );
        r.requests.clear();
        r.fail_next = 1;
    }

    // The alert: one webhook message and one SMS per number; the first answer is a 500.
    sa_interactive_signin(&app, &admin, "payroll-bot").await;
    eventually("webhook and both SMS", 30, async || {
        inbox.lock().expect("inbox").requests.len() >= 3
    })
    .await;
    let (hook_body, hook_headers) = {
        let r = inbox.lock().expect("inbox");
        assert_eq!(r.failed, 1);
        let hooks: Vec<_> = r.requests.iter().filter(|(p, _, _)| p == "/hook").collect();
        assert_eq!(hooks.len(), 1);
        let mut to: Vec<String> = r
            .requests
            .iter()
            .filter(|(p, _, _)| p == "/sms")
            .map(|(_, _, b)| {
                serde_json::from_str::<serde_json::Value>(b).expect("JSON body")["to"]
                    .as_str()
                    .expect("to")
                    .to_owned()
            })
            .collect();
        to.sort();
        assert_eq!(to, ["+15550100", "+15550101"]);
        (hooks[0].2.clone(), hooks[0].1.clone())
    };
    let body: serde_json::Value = serde_json::from_str(&hook_body).expect("json");
    assert_eq!(body["alert"]["rule"], "service_account.interactive_signin");
    assert_eq!(body["alert"]["severity"], "critical");
    assert_eq!(body["event"]["target"], "user:payroll-bot");
    // The signature verifies with the key: t=UNIX,v1=HMAC-SHA256("UNIX.BODY").
    let sig = hook_headers["x-portcullis-signature"]
        .to_str()
        .expect("sig");
    let t: i64 = sig
        .split(',')
        .next()
        .and_then(|p| p.strip_prefix("t="))
        .expect("t")
        .parse()
        .expect("int");
    assert_eq!(
        sig,
        portcullis_server::workers::alerts::signature(secret.as_bytes(), t, &hook_body)
    );
    assert!((now_unix() as i64 - t).abs() < 60);
    let alerts = api_get(&app, &token, "/api/v1/alerts").await;
    let fired = alerts_of(&alerts, "service_account.interactive_signin");
    assert_eq!(fired.len(), 3, "one message per channel and SMS number");
    let retried = fired
        .iter()
        .find(|a| a["attempts"] == 2)
        .expect("one message needed a second attempt");
    let shown = api_get(
        &app,
        &token,
        &format!("/api/v1/alerts/{}", retried["id"].as_str().expect("id")),
    )
    .await;
    assert_eq!(shown["history"][0]["outcome"], "failed");
    assert_eq!(shown["history"][0]["detail"], "HTTP 500");
    assert_eq!(shown["history"][1]["outcome"], "delivered");

    // The receiver goes down; an alert fires; it comes back and gets it, once.
    task.abort();
    let _ = (&mut task).await;
    sa_interactive_signin(&app, &admin, "backup-bot").await;
    eventually(
        "a failed attempt while the receiver is down",
        15,
        async || {
            let a = api_get(&app, &token, "/api/v1/alerts").await;
            alerts_of(&a, "service_account.interactive_signin")
                .iter()
                .any(|m| m["state"] == "pending" && m["last_error"] == "cannot connect")
        },
    )
    .await;
    let (_, task2) = receiver(inbox.clone(), port).await;
    eventually("delivery after the receiver came back", 30, async || {
        let a = api_get(&app, &token, "/api/v1/alerts").await;
        alerts_of(&a, "service_account.interactive_signin")
            .iter()
            .all(|m| m["state"] == "delivered")
    })
    .await;
    let mut ids: Vec<String> = inbox
        .lock()
        .expect("inbox")
        .requests
        .iter()
        .filter(|(_, _, b)| b.contains("service_account.interactive_signin"))
        .map(|(_, h, _)| {
            h["x-portcullis-message-id"]
                .to_str()
                .expect("id")
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 6, "two alerts × three messages");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "nothing delivered twice");
    task2.abort();
    app.stop().await;
}

/// Email over a real SMTP server reaches every recipient; a recipient the server refuses
/// fails the delivery with the server's code and, after the configured attempts, dead-letters
/// it, which is itself reported on the other channels; alerts still undelivered when the
/// server stops are delivered after it starts again.
async fn email_alerts_dead_letters_and_restarts(backend: Backend) {
    let Some((smtp_port, maildir, mut sink)) = smtp_sink() else {
        return;
    };
    let Some(app) = spawn_with(backend, |c| c.alert_max_attempts = 2).await else {
        let _ = sink.kill();
        return;
    };
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let inbox: Inbox = Default::default();
    let (port, hook) = receiver(inbox.clone(), 0).await;
    for body in [
        serde_json::json!({"name": "security-mail", "kind": "email", "smtp_url": format!("smtp://127.0.0.1:{smtp_port}"),
            "from": "portcullis@example.org", "to": ["sec1@example.org", "sec2@example.org"], "notifications": true}),
        serde_json::json!({"name": "strict-mail", "kind": "email", "smtp_url": format!("smtp://127.0.0.1:{smtp_port}"),
            "from": "portcullis@example.org", "to": ["refused-ops@example.org"], "min_severity": "critical"}),
        serde_json::json!({"name": "hook", "kind": "webhook", "url": format!("http://127.0.0.1:{port}/hook"), "shape": "slack"}),
    ] {
        assert_eq!(add_channel(&app, &token, body).await.status(), 201);
    }
    sa_interactive_signin(&app, &admin, "etl-bot").await;
    eventually("the alert in the mailbox", 30, async || {
        mailbox(maildir.path())
            .iter()
            .any(|m| m["content"].as_str().unwrap_or("").contains("etl-bot"))
    })
    .await;
    let mail = mailbox(maildir.path());
    let alert_mail = mail
        .iter()
        .find(|m| m["content"].as_str().unwrap_or("").contains("etl-bot"))
        .expect("mail");
    assert_eq!(
        alert_mail["to"],
        serde_json::json!(["sec1@example.org", "sec2@example.org"])
    );
    assert!(
        alert_mail["content"]
            .as_str()
            .expect("content")
            .contains("Subject: [Portcullis CRITICAL]")
    );
    // The refusing relay: two attempts (5 s apart), then dead, then reported elsewhere.
    eventually("the dead letter and its report", 40, async || {
        let a = api_get(&app, &token, "/api/v1/alerts").await;
        let strict_dead = alerts_of(&a, "service_account.interactive_signin")
            .iter()
            .any(|m| m["channel"] == "strict-mail" && m["state"] == "dead");
        let reported = alerts_of(&a, "alert.dead_lettered");
        strict_dead && reported.len() == 2 && reported.iter().all(|m| m["state"] == "delivered")
    })
    .await;
    let a = api_get(&app, &token, "/api/v1/alerts?state=dead").await;
    let dead = &alerts_of(&a, "service_account.interactive_signin")[0];
    assert_eq!(dead["attempts"], 2);
    assert!(
        dead["last_error"].as_str().expect("error").contains("550"),
        "{dead}"
    );
    assert!(
        inbox
            .lock()
            .expect("inbox")
            .requests
            .iter()
            .any(|(_, _, b)| {
                let v: serde_json::Value = serde_json::from_str(b).expect("slack JSON");
                v["text"]
                    .as_str()
                    .unwrap_or("")
                    .contains("could not be delivered through channel strict-mail")
            })
    );
    // Retry gives it a fresh budget (it fails again: the relay still refuses).
    let r = app
        .http
        .post(format!(
            "{}/api/v1/alerts/{}/retry",
            app.base,
            dead["id"].as_str().expect("id")
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("retry");
    assert_eq!(r.status(), 200);
    let again: serde_json::Value = r.json().await.expect("json");
    assert_eq!(again["state"], "pending");

    // Notifications to people go by email to the addresses on their accounts: a request
    // needing approval reaches the approver.
    admin
        .update_role_settings(
            "audit-reader",
            &RoleSettingsUpdate {
                require_approval: Some(true),
                approvers: Some(vec!["user:root-admin".into()]),
                ..Default::default()
            },
        )
        .await
        .expect("settings");
    let (uma, _) = mfa_user(&app, &admin, "uma", "tidal-ember-lattice-19").await;
    admin
        .create_assignment(&eligible("uma", "audit-reader", None))
        .await
        .expect("eligible");
    uma.request_activation(&ask("audit-reader", 3600, Some("incident 42")))
        .await
        .expect("request");
    eventually("the approver's email", 30, async || {
        mailbox(maildir.path()).iter().any(|m| {
            m["to"] == serde_json::json!(["root@example.org"])
                && m["content"]
                    .as_str()
                    .unwrap_or("")
                    .contains("uma asks to activate audit-reader")
                // The request's console page, at the server's public address.
                && m["content"]
                    .as_str()
                    .unwrap_or("")
                    .contains(&format!("{}/console/requests/r", app.public_url.trim_end_matches('/')))
        })
    })
    .await;

    // Undelivered at shutdown, delivered after the next start.
    hook.abort();
    sa_interactive_signin(&app, &admin, "night-bot").await;
    eventually("a failed webhook attempt", 15, async || {
        let a = api_get(&app, &token, "/api/v1/alerts").await;
        alerts_of(&a, "service_account.interactive_signin")
            .iter()
            .any(|m| m["channel"] == "hook" && m["state"] == "pending" && m["attempts"] == 1)
    })
    .await;
    let (dir, config, bootstrap) = app.stop().await;
    let (_, hook) = receiver(inbox.clone(), port).await;
    let app = start(config, dir, Some(bootstrap)).await;
    eventually("delivery after the restart", 30, async || {
        inbox
            .lock()
            .expect("inbox")
            .requests
            .iter()
            .any(|(_, _, b)| b.contains("night-bot"))
    })
    .await;
    hook.abort();
    app.stop().await;
    let _ = sink.kill();
    let _ = sink.wait();
}

/// Throttling slows an attacker down but never silences the alarm: every interactive
/// attempt with a service account's name raises the alert, the throttled ones included.
async fn throttled_attempts_still_alert(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let mut statuses = Vec::new();
    let _ = admin
        .create_service_account(&CreateServiceAccountRequest {
            name: "cron-bot".into(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await;
    for _ in 0..8 {
        let r = app
            .http
            .post(format!("{}/api/v1/signin", app.base))
            .json(&serde_json::json!({ "username": "cron-bot", "password": "guess-guess-guess" }))
            .send()
            .await
            .expect("signin");
        statuses.push(r.status().as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let alerts = api_get(&app, &token, "/api/v1/alerts").await;
    // No channel yet: each alert is on record, dead-lettered with the reason: the first at
    // once, the other seven in the summary of its window.
    let fired = alerts_of(&alerts, "service_account.interactive_signin");
    assert_eq!(fired.len(), 2, "one alert and one summary");
    assert_eq!(
        covered(&alerts, "service_account.interactive_signin", None),
        8,
        "every attempt counts, throttled or not"
    );
    assert!(fired.iter().all(|a| {
        a["state"] == "dead"
            && a["last_error"]
                .as_str()
                .unwrap_or("")
                .contains("no alert channel")
    }));
    app.stop().await;
}

/// Custom rules count events for one target within a window and fire once per window; bad
/// rules are refused; built-in rules are listed and cannot be removed.
async fn custom_alert_rules_count_within_a_window(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let add = |body: serde_json::Value| {
        let (http, base, token) = (app.http.clone(), app.base.clone(), token.clone());
        async move {
            http.post(format!("{base}/api/v1/alerts/rules"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("add rule")
        }
    };
    let rule = serde_json::json!({
        "name": "failed-signins", "action": "signin.password", "outcome": "failure",
        "count": 3, "window": "5m", "severity": "critical",
    });
    assert_eq!(add(rule.clone()).await.status(), 201);
    for (field, value) in [
        ("count", serde_json::json!(0)),
        ("window", serde_json::json!("8d")),
        ("action", serde_json::json!("Sign In")),
        ("outcome", serde_json::json!("maybe")),
        ("severity", serde_json::json!("loud")),
        ("name", serde_json::json!("Bad Name")),
    ] {
        let mut bad = rule.clone();
        bad["name"] = "other-rule".into();
        bad[field] = value;
        assert_eq!(add(bad).await.status(), 400, "{field}");
    }
    assert_eq!(add(rule.clone()).await.status(), 409);
    let rules = api_get(&app, &token, "/api/v1/alerts/rules").await;
    let rules = rules.as_array().expect("rules");
    assert_eq!(rules.iter().filter(|r| r["builtin"] == false).count(), 1);
    assert!(
        rules
            .iter()
            .any(|r| r["name"] == "token.refresh_reuse" && r["builtin"] == true)
    );
    let r = app
        .http
        .delete(format!(
            "{}/api/v1/alerts/rules/token.refresh_reuse",
            app.base
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 403, "built-in rules cannot be removed");

    for name in ["vic", "wes"] {
        admin
            .create_user(&CreateUserRequest {
                name: name.into(),
                display_name: name.into(),
                email: None,
                phone: None,
                guest_organisation: None,
                privileged: false,
                password: "plum-harbor-silent-77".into(),
            })
            .await
            .expect("user");
    }
    let fail = |user: &'static str| {
        let (http, base) = (app.http.clone(), app.base.clone());
        async move {
            let r = http
                .post(format!("{base}/api/v1/signin"))
                .json(&serde_json::json!({ "username": user, "password": "not-the-password" }))
                .send()
                .await
                .expect("signin");
            assert_eq!(r.status(), 401);
        }
    };
    let fired = async || {
        let a = api_get(&app, &token, "/api/v1/alerts").await;
        alerts_of(&a, "custom:failed-signins")
    };
    fail("vic").await;
    fail("vic").await;
    assert!(fired().await.is_empty(), "two of three: not yet");
    fail("vic").await;
    let f = fired().await;
    assert_eq!(f.len(), 1, "the third fires");
    assert!(
        f[0]["text"]
            .as_str()
            .expect("text")
            .contains("3 × signin.password (failure) for user:vic")
    );
    fail("vic").await;
    fail("vic").await;
    assert_eq!(
        fired().await.len(),
        1,
        "once per window, not once per event"
    );
    for _ in 0..3 {
        fail("wes").await;
    }
    assert_eq!(fired().await.len(), 2, "another target counts on its own");
    let r = app
        .http
        .delete(format!("{}/api/v1/alerts/rules/failed-signins", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    // Rules are evaluated inside the writer's transaction, so their number is capped.
    let rule = |i: usize| serde_json::json!({"name": format!("r{i}"), "action": "signin.password", "count": 5, "window": "5m"});
    for i in 0..100 {
        let r = post_json(&app, Some(&token), "/api/v1/alerts/rules", rule(i)).await;
        assert_eq!(r.status(), 201, "rule {i}");
    }
    let (status, _, msg) =
        error_of(post_json(&app, Some(&token), "/api/v1/alerts/rules", rule(100)).await).await;
    assert_eq!(status, 409);
    assert!(msg.contains("at most 100"), "{msg}");
    app.stop().await;
}

/// Invariant 7 for channels: a webhook URL's path (where services such as Slack put the
/// token) is not shown by the API nor written to the audit log, whose alerts reach every
/// other channel.
async fn channel_urls_are_not_shown(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let r = add_channel(
        &app,
        &token,
        serde_json::json!({
            "name": "slackish", "kind": "webhook",
            "url": "http://127.0.0.1:9/services/T000/B000/XyZsecretTok3n", "shape": "slack",
        }),
    )
    .await;
    assert_eq!(r.status(), 201);
    let shown: serde_json::Value = r.json().await.expect("json");
    assert_eq!(shown["config"]["url"], "http://127.0.0.1:9/…");
    let listed = api_get(&app, &token, "/api/v1/alerts/channels")
        .await
        .to_string();
    assert!(!listed.contains("XyZsecretTok3n"), "{listed}");
    let events =
        serde_json::to_string(&events_named(&admin, "alert_channel.added").await).expect("json");
    assert!(
        events.contains("slackish") && !events.contains("XyZsecretTok3n"),
        "{events}"
    );
    let alerts =
        serde_json::to_string(&api_get(&app, &token, "/api/v1/alerts").await).expect("json");
    assert!(!alerts.contains("XyZsecretTok3n"), "{alerts}");
    app.stop().await;
}

api_tests!(
    channel_urls_are_not_shown,
    alerts_reach_webhooks_and_sms_through_failures,
    throttled_attempts_still_alert,
    custom_alert_rules_count_within_a_window,
);

backend_tests!(email_alerts_dead_letters_and_restarts);
