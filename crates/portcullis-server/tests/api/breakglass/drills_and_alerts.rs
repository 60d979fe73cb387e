//! Break-glass drills and alerts: overdue drills are listed and alerted once per period, and a
//! sign-in reaches every recipient of every channel.

use super::*;

/// An account never drilled within the drill age is listed by /readyz and alerted once per
/// period, not on every check.
async fn breakglass_drills_overdue_alert(backend: Backend) {
    let Some(app) = spawn_with(backend, |c| {
        c.breakglass_drill_max_age = "2s".into();
        c.breakglass_drill_alert_every = "1h".into();
    })
    .await
    else {
        return;
    };
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    people(&admin, &["alice", "bob"]).await;
    create_split_account(&app, &token, "bg-old", &["alice", "bob"], 2).await;
    eventually("the overdue drill alert", 15, async || {
        !events_named(&admin, "breakglass.drill_overdue")
            .await
            .is_empty()
    })
    .await;
    let ev = events_named(&admin, "breakglass.drill_overdue").await;
    assert_eq!(ev[0].details["accounts"], serde_json::json!(["bg-old"]));
    assert_eq!(
        alert_count(&app, &token, "breakglass.drill_overdue").await,
        1
    );
    let tenant = app
        .anonymous
        .ready()
        .await
        .expect("ready")
        .tenant
        .expect("tenant");
    assert_eq!(tenant.drills_overdue, 1);
    let ready = serde_json::to_string(&app.anonymous.ready().await.expect("ready")).expect("json");
    assert!(
        !ready.contains("bg-old"),
        "no account names for anonymous callers: {ready}"
    );
    let listed = breakglass_list(&app, &token).await;
    assert_eq!(listed[0]["drill_overdue"], true);
    // More checks pass (one a second here) without another alert within the period.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        events_named(&admin, "breakglass.drill_overdue").await.len(),
        1
    );
    app.stop().await;
}

/// A break-glass sign-in reaches every recipient of every channel: both addresses on a real
/// SMTP server, a webhook and an SMS gateway.
async fn breakglass_alert_reaches_every_channel(backend: Backend) {
    let Some((smtp_port, maildir, mut sink)) = smtp_sink() else {
        return;
    };
    // A short aggregation window: the account's creation alerts open one, and the sign-in
    // below is meant to be the first alert of the next (delivered at once, not summarised).
    let Some(app) = spawn_with(backend, |c| c.alert_aggregation_window = "2s".into()).await else {
        let _ = sink.kill();
        return;
    };
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    people(&admin, &["alice", "bob"]).await;
    let pw = create_split_account(&app, &token, "bg-alarm", &["alice", "bob"], 2).await;
    let hook: Inbox = Default::default();
    let (hook_port, _h) = receiver(hook.clone(), 0).await;
    let sms: Inbox = Default::default();
    let (sms_port, _s) = receiver(sms.clone(), 0).await;
    for body in [
        serde_json::json!({"name": "mail", "kind": "email", "smtp_url": format!("smtp://127.0.0.1:{smtp_port}"),
            "from": "portcullis@example.org", "to": ["sec1@example.org", "sec2@example.org"]}),
        serde_json::json!({"name": "hook", "kind": "webhook", "url": format!("http://127.0.0.1:{hook_port}/hook")}),
        serde_json::json!({"name": "sms", "kind": "sms", "url": format!("http://127.0.0.1:{sms_port}/send"),
            "to": ["+15550000001", "+15550000002"], "template": "{\"to\":\"{to}\",\"text\":\"{message}\"}"}),
    ] {
        assert_eq!(add_channel(&app, &token, body).await.status(), 201);
    }
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    breakglass_signin(&app, "bg-alarm", &pw)
        .await
        .expect("sign-in");
    eventually("the break-glass alert on every channel", 30, async || {
        let mails = mailbox(maildir.path());
        let mailed = ["sec1@example.org", "sec2@example.org"].iter().all(|to| {
            mails.iter().any(|m| {
                m["to"].to_string().contains(to)
                    && m["content"].as_str().unwrap_or("").contains("bg-alarm")
            })
        });
        let hooked = hook
            .lock()
            .expect("hook")
            .requests
            .iter()
            .any(|(_, _, b)| b.contains("breakglass.activity") && b.contains("bg-alarm"));
        let texted = {
            let r = sms.lock().expect("sms");
            ["+15550000001", "+15550000002"].iter().all(|n| {
                r.requests
                    .iter()
                    .any(|(_, _, b)| b.contains(n) && b.contains("bg-alarm"))
            })
        };
        mailed && hooked && texted
    })
    .await;
    let _ = sink.kill();
    app.stop().await;
}

backend_tests!(
    breakglass_drills_overdue_alert,
    breakglass_alert_reaches_every_channel,
);
