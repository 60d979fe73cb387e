//! Alert flooding (issue 14, finding 9) and sealed channel configuration (finding 12):
//! a flood of break-glass attempts is one immediate alert plus one summary per channel and
//! window, also across two replicas; SMS is capped per hour; a channel's URL token, header
//! values and template are not in the database in clear, also for rows written before sealing.

use super::*;

/// The aggregation window of these tests: long enough for a flood on a loaded 2-core
/// machine to fit in it, short enough to wait for its summary.
const WINDOW_SECS: u64 = 12;

/// A receiver that records the path with its query, the headers and the body of each request.
async fn recorder(
    inbox: std::sync::Arc<std::sync::Mutex<Vec<(String, axum::http::HeaderMap, String)>>>,
) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind recorder");
    let port = listener.local_addr().expect("addr").port();
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: String| {
            let inbox = inbox.clone();
            async move {
                let pq = uri
                    .path_and_query()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default();
                inbox.lock().expect("inbox").push((pq, headers, body));
                (
                    axum::http::StatusCode::OK,
                    [(axum::http::header::CONNECTION, "close")],
                    "",
                )
            }
        },
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, task)
}

type Recorded = std::sync::Arc<std::sync::Mutex<Vec<(String, axum::http::HeaderMap, String)>>>;

/// `n` failed attempts on break-glass account `name` from `addresses` loopback addresses
/// (127.0.0.10 and up), spread over `bases` (servers): every fourth a wrong password, the
/// others `failed-recovery` reports, as fast as the server answers. Every answer is a
/// refusal (401, 202 for a report, or 429 once an address is throttled).
async fn flood(bases: &[String], name: &str, n: usize, addresses: usize) {
    let mut tasks = Vec::new();
    for a in 0..addresses {
        let ip: std::net::IpAddr = format!("127.0.0.{}", 10 + a).parse().expect("ip");
        let http = reqwest::Client::builder()
            .local_address(ip)
            .build()
            .expect("client");
        let mine: Vec<usize> = (0..n).filter(|i| i % addresses == a).collect();
        let bases = bases.to_vec();
        let name = name.to_owned();
        tasks.push(tokio::spawn(async move {
            for i in mine {
                let base = &bases[i % bases.len()];
                let r = if i % 4 == 0 {
                    http.post(format!("{base}/api/v1/signin"))
                        .json(&serde_json::json!({"username": name, "password": "not-the-emergency-password"}))
                        .send()
                        .await
                } else {
                    http.post(format!("{base}/api/v1/breakglass/{name}/failed-recovery"))
                        .json(&serde_json::json!({"reason": "corrupted_share"}))
                        .send()
                        .await
                }
                .expect("attempt");
                let s = r.status().as_u16();
                assert!(matches!(s, 401 | 202 | 429), "attempt {i}: {s}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("flood task");
    }
}

/// Adds a webhook and a two-number SMS channel (critical only) that deliver to `hook` and `sms`.
async fn flood_channels(app: &TestApp, token: &str, hook: u16, sms: u16) {
    for body in [
        serde_json::json!({"name": "hook", "kind": "webhook", "url": format!("http://127.0.0.1:{hook}/hook")}),
        serde_json::json!({"name": "pager", "kind": "sms", "url": format!("http://127.0.0.1:{sms}/send"),
            "to": ["+15550000001", "+15550000002"], "template": "{\"to\":\"{to}\",\"text\":\"{message}\"}",
            "min_severity": "critical"}),
    ] {
        assert_eq!(add_channel(app, token, body).await.status(), 201);
    }
}

/// Floods `name` through `apps` and checks what the channels got: per channel (per SMS
/// number) exactly one immediate alert and one summary counting the rest and the addresses;
/// the audit log holds every attempt.
async fn flood_and_check(
    apps: &[&TestApp],
    token: &str,
    name: &str,
    hook: &Recorded,
    sms: &Recorded,
) {
    const N: usize = 240;
    const ADDRESSES: usize = 25;
    let admin = apps[0]
        .anonymous
        .with_token(Some(SecretString::from(token.to_owned())));
    let mut cursor = admin
        .audit_events(&EventFilter {
            limit: Some(1),
            ..Default::default()
        })
        .await
        .expect("events")
        .events
        .last()
        .map(|e| e.seq)
        .unwrap_or(0);
    // The highest sequence number so far: everything after it is the flood.
    loop {
        if events_since(&admin, &mut cursor).await.is_empty() {
            break;
        }
    }
    let bases: Vec<String> = apps.iter().map(|a| a.base.clone()).collect();
    flood(&bases, name, N, ADDRESSES).await;
    let target = format!("user:{name}");

    // Every attempt is in the audit log, tagged as emergency activity.
    let mut attempts = Vec::new();
    loop {
        let page = events_since(&admin, &mut cursor).await;
        if page.is_empty() {
            break;
        }
        attempts.extend(page.into_iter().filter(|e| e.target == target));
    }
    assert_eq!(attempts.len(), N, "every attempt is audited");
    assert!(attempts.iter().all(|e| e.details["emergency"] == true));
    let summary_text = format!(
        "{} more break-glass attempts and changes (failed) for {target} from {ADDRESSES} addresses",
        N - 1
    );
    eventually("the summaries on every channel", 60, async || {
        let hooked = hook
            .lock()
            .expect("hook")
            .iter()
            .any(|(_, _, b)| b.contains("\"aggregate\""));
        let texted = sms
            .lock()
            .expect("sms")
            .iter()
            .filter(|(_, _, b)| b.contains(&summary_text))
            .count()
            == 2;
        hooked && texted
    })
    .await;
    // Room for a duplicate or a straggler to arrive, if there were any.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;

    let hooked: Vec<serde_json::Value> = hook
        .lock()
        .expect("hook")
        .iter()
        .map(|(_, _, b)| serde_json::from_str(b).expect("JSON"))
        .filter(|b: &serde_json::Value| b["alert"]["rule"] == "breakglass.activity")
        .collect();
    assert_eq!(
        hooked.len(),
        2,
        "one immediate alert and one summary: {hooked:?}"
    );
    let immediate: Vec<_> = hooked.iter().filter(|b| b["aggregate"].is_null()).collect();
    assert_eq!(immediate.len(), 1);
    assert_eq!(immediate[0]["event"]["target"], target.as_str());
    let summary = hooked
        .iter()
        .find(|b| !b["aggregate"].is_null())
        .expect("summary");
    assert_eq!(summary["aggregate"]["key"], target.as_str());
    assert_eq!(summary["aggregate"]["count"], N - 1);
    assert_eq!(
        summary["aggregate"]["addresses"]
            .as_array()
            .expect("addresses")
            .len(),
        ADDRESSES
    );
    assert!(
        summary["text"]
            .as_str()
            .expect("text")
            .contains(&summary_text),
        "{summary}"
    );
    let texts = sms.lock().expect("sms").clone();
    for number in ["+15550000001", "+15550000002"] {
        let mine: Vec<&String> = texts
            .iter()
            .map(|(_, _, b)| b)
            .filter(|b| b.contains(number) && b.contains(&target))
            .collect();
        assert_eq!(mine.len(), 2, "{number}: {mine:?}");
        assert_eq!(
            mine.iter().filter(|b| b.contains(&summary_text)).count(),
            1,
            "{mine:?}"
        );
    }
    // The summary is on record like any alert, with what it stands for.
    let list = api_get(apps[0], token, "/api/v1/alerts").await;
    let summaries: Vec<_> = alerts_of(&list, "breakglass.activity")
        .into_iter()
        .filter(|a| a["summary"]["key"] == target.as_str() && a["summary"]["count"] == N - 1)
        .collect();
    assert_eq!(summaries.len(), 3, "one per channel and SMS number");
    assert!(summaries.iter().all(|a| a["state"] == "delivered"));
}

/// Finding 9: 240 failed break-glass sign-ins and failed-recovery reports from 25 addresses
/// are one immediate alert per channel (per SMS number) and one summary per channel when the
/// window closes, counting the rest and their addresses; the audit log keeps all of them.
async fn a_flood_is_one_alert_and_one_summary_per_channel(backend: Backend) {
    let Some(app) = spawn_with(backend, |c| {
        c.alert_aggregation_window = format!("{WINDOW_SECS}s");
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
    create_split_account(&app, &token, "bg-flood", &["alice", "bob"], 2).await;
    let hook: Recorded = Default::default();
    let (hook_port, _h) = recorder(hook.clone()).await;
    let sms: Recorded = Default::default();
    let (sms_port, _s) = recorder(sms.clone()).await;
    flood_channels(&app, &token, hook_port, sms_port).await;
    // The account's creation opened a window of its own; the flood starts a fresh one.
    tokio::time::sleep(std::time::Duration::from_secs(WINDOW_SECS + 1)).await;
    flood_and_check(&[&app], &token, "bg-flood", &hook, &sms).await;
    app.stop().await;
}

/// Invariant 8 for aggregation: two replicas on one PostgreSQL flooded at the same time
/// still deliver one immediate alert and one summary per channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_flooded_at_once_deliver_one_alert_and_one_summary() {
    let Some(url) = fresh_postgres_url().await else {
        eprintln!("skipped: PORTCULLIS_TEST_DATABASE_URL is not set");
        return;
    };
    let (a, b) = two_replicas_with(&url, |c| {
        c.alert_aggregation_window = format!("{WINDOW_SECS}s");
    })
    .await;
    let token = admin_token(&a).await;
    let admin = a
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    people(&admin, &["alice", "bob"]).await;
    create_split_account(&a, &token, "bg-flood", &["alice", "bob"], 2).await;
    let hook: Recorded = Default::default();
    let (hook_port, _h) = recorder(hook.clone()).await;
    let sms: Recorded = Default::default();
    let (sms_port, _s) = recorder(sms.clone()).await;
    flood_channels(&a, &token, hook_port, sms_port).await;
    tokio::time::sleep(std::time::Duration::from_secs(WINDOW_SECS + 1)).await;
    flood_and_check(&[&a, &b], &token, "bg-flood", &hook, &sms).await;
    a.stop().await;
    b.stop().await;
}

/// Failures and successes are aggregated apart: a correct break-glass sign-in in the middle
/// of a flood of failures on the same account is delivered at once, as its own alert, not
/// counted into the failures' summary minutes later.
async fn a_breakglass_sign_in_is_not_hidden_in_a_flood(backend: Backend) {
    let Some(app) = spawn_with(backend, |c| {
        c.alert_aggregation_window = "8s".into();
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
    let pw = create_split_account(&app, &token, "bg-mask", &["alice", "bob"], 2).await;
    let hook: Recorded = Default::default();
    let (hook_port, _h) = recorder(hook.clone()).await;
    let r = add_channel(
        &app,
        &token,
        serde_json::json!({"name": "hook", "kind": "webhook",
        "url": format!("http://127.0.0.1:{hook_port}/hook"), "min_severity": "critical"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    // The creation's (successful) alerts opened a window of their own: let it close.
    tokio::time::sleep(std::time::Duration::from_secs(9)).await;
    flood(std::slice::from_ref(&app.base), "bg-mask", 40, 5).await;
    breakglass_signin(&app, "bg-mask", &pw)
        .await
        .expect("the right password signs in");
    let immediate_success = || {
        hook.lock().expect("hook").iter().any(|(_, _, b)| {
            let v: serde_json::Value = serde_json::from_str(b).expect("JSON");
            v["aggregate"].is_null()
                && v["event"]["target"] == "user:bg-mask"
                && v["event"]["outcome"] == "success"
        })
    };
    eventually("the sign-in's own alert", 30, async || immediate_success()).await;
    app.stop().await;
}

/// The alert channel rows as stored: name, config (clear) and sealed config.
async fn channel_rows(config: &Config) -> Vec<(String, String, Option<Vec<u8>>)> {
    use sqlx::Connection;
    let url = config.database_url();
    let sql = "SELECT name, config, sealed_config FROM alert_channels ORDER BY name";
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("connect");
        sqlx::query_as(sql).fetch_all(&mut c).await.expect("rows")
    } else {
        let mut c = sqlx::PgConnection::connect(&url).await.expect("connect");
        sqlx::query_as(sql).fetch_all(&mut c).await.expect("rows")
    }
}

/// Fires a critical alert keyed by a new service account `name` (an interactive sign-in).
async fn critical_alert(app: &TestApp, token: &str, name: &str) {
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.to_owned())));
    sa_interactive_signin(app, &admin, name).await;
}

/// The SMS cap: with `sms_max_per_hour = 3`, of six alerts (six targets, so none is
/// aggregated) three reach the number and three are suppressed, visible as such; once the
/// hour has passed, the next message says how many were held back.
async fn sms_over_the_cap_is_suppressed_and_counted(backend: Backend) {
    let Some(app) = spawn_with(backend, |c| c.sms_max_per_hour = 3).await else {
        return;
    };
    let token = admin_token(&app).await;
    let sms: Recorded = Default::default();
    let (port, _s) = recorder(sms.clone()).await;
    let r = add_channel(
        &app,
        &token,
        serde_json::json!({"name": "pager", "kind": "sms",
        "url": format!("http://127.0.0.1:{port}/send"), "to": ["+15550000009"],
        "template": "{message}", "min_severity": "critical"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let hook: Recorded = Default::default();
    let (hook_port, _h) = recorder(hook.clone()).await;
    let r = add_channel(
        &app,
        &token,
        serde_json::json!({"name": "hook", "kind": "webhook",
        "url": format!("http://127.0.0.1:{hook_port}/hook"), "min_severity": "critical"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    for i in 0..6 {
        critical_alert(&app, &token, &format!("cap-bot-{i}")).await;
    }
    let settled = async || {
        let list = api_get(&app, &token, "/api/v1/alerts").await;
        let mine = alerts_of(&list, "service_account.interactive_signin");
        mine.len() == 12 && mine.iter().all(|a| a["state"] != "pending")
    };
    eventually("six alerts on two channels settled", 30, settled).await;
    assert_eq!(sms.lock().expect("sms").len(), 3, "three sent");
    assert_eq!(
        hook.lock().expect("hook").len(),
        6,
        "webhooks are not capped"
    );
    let suppressed = api_get(&app, &token, "/api/v1/alerts?state=suppressed").await;
    let suppressed = suppressed.as_array().expect("list");
    assert_eq!(suppressed.len(), 3, "{suppressed:?}");
    assert!(suppressed.iter().all(|a| {
        a["channel"] == "pager"
            && a["attempts"] == 0
            && a["last_error"]
                .as_str()
                .unwrap_or("")
                .contains("SMS cap of 3")
    }));
    // An hour later (the sent ones aged in the database), the next message goes out and
    // counts the three held back.
    db_exec(
        &app.config,
        "UPDATE outbox SET first_attempt_at_us = first_attempt_at_us - 3600000000 WHERE first_attempt_at_us IS NOT NULL",
    )
    .await;
    critical_alert(&app, &token, "cap-bot-late").await;
    eventually("the next SMS", 30, async || {
        sms.lock().expect("sms").len() == 4
    })
    .await;
    let last = sms.lock().expect("sms")[3].2.clone();
    assert!(
        last.contains("cap-bot-late") && last.contains("+3 earlier messages were not sent"),
        "{last}"
    );
    app.stop().await;
}

/// Invariant 7 for channels: a webhook's URL token and an SMS gateway's header value and
/// template are not in the database in clear (the row read directly), yet deliveries carry
/// them; a row stored in clear by an older version is sealed at the next start, once, with
/// an event, and still delivers.
async fn channel_configs_are_sealed_at_rest(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let token = admin_token(&app).await;
    let got: Recorded = Default::default();
    let (port, _r) = recorder(got.clone()).await;
    const SECRETS: [&str; 5] = [
        "XyZpathT0ken",
        "QueryK3y",
        "GatewayK3yValue",
        "TemplateK3y",
        "L3gacyT0ken",
    ];
    let r = add_channel(
        &app,
        &token,
        serde_json::json!({"name": "hook", "kind": "webhook",
        "url": format!("http://127.0.0.1:{port}/services/T0/XyZpathT0ken?key=QueryK3y")}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let r = add_channel(
        &app,
        &token,
        serde_json::json!({"name": "gateway", "kind": "sms",
        "url": format!("http://127.0.0.1:{port}/sms"), "to": ["+15550000010"],
        "headers": {"X-Api-Key": "GatewayK3yValue", "Content-Type": "application/json"},
        "template": "{\"key\":\"TemplateK3y\",\"to\":\"{to}\",\"text\":\"{message}\"}"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let in_clear = |rows: &[(String, String, Option<Vec<u8>>)]| {
        let mut all = String::new();
        for (_, config, sealed) in rows {
            all.push_str(config);
            all.push_str(&String::from_utf8_lossy(
                sealed.as_deref().unwrap_or_default(),
            ));
        }
        SECRETS.iter().filter(|s| all.contains(*s)).count()
    };
    let rows = channel_rows(&app.config).await;
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|(_, _, sealed)| sealed.is_some()));
    assert_eq!(in_clear(&rows), 0, "{rows:?}");
    let listed = api_get(&app, &token, "/api/v1/alerts/channels").await;
    let gateway = listed
        .as_array()
        .expect("list")
        .iter()
        .find(|c| c["name"] == "gateway")
        .expect("gateway");
    assert_eq!(gateway["config"]["headers"]["X-Api-Key"], "(set)");
    assert_eq!(gateway["config"]["template"], "(set)");
    assert_eq!(
        gateway["config"]["url"],
        format!("http://127.0.0.1:{port}/…")
    );

    // Deliveries carry what is sealed.
    for name in ["hook", "gateway"] {
        let r = post_json(
            &app,
            Some(&token),
            &format!("/api/v1/alerts/channels/{name}/test"),
            serde_json::json!({}),
        )
        .await;
        assert_eq!(r.status(), 202);
    }
    let test_of = |prefix: &str| {
        got.lock()
            .expect("got")
            .iter()
            .find(|(p, _, b)| p.starts_with(prefix) && b.contains("[TEST]"))
            .cloned()
    };
    eventually("both test deliveries", 30, async || {
        test_of("/services").is_some() && test_of("/sms").is_some()
    })
    .await;
    {
        let hook = test_of("/services").expect("hook");
        assert_eq!(hook.0, "/services/T0/XyZpathT0ken?key=QueryK3y");
        let sms = test_of("/sms").expect("sms");
        assert_eq!(sms.1["x-api-key"], "GatewayK3yValue");
        assert!(sms.2.contains("\"key\":\"TemplateK3y\""), "{}", sms.2);
    }

    // A row as the version before sealing wrote it: the full configuration in clear.
    let (dir, config, bootstrap) = app.stop().await;
    db_exec(
        &config,
        &format!(
            "INSERT INTO alert_channels (name, kind, config, sealed_secret, min_severity, created_by, created_at_us) VALUES ('legacy', 'webhook', '{{\"url\":\"http://127.0.0.1:{port}/legacy/L3gacyT0ken\",\"shape\":\"generic\"}}', NULL, 'info', 'user:root-admin', 0)"
        ),
    )
    .await;
    assert_eq!(in_clear(&channel_rows(&config).await), 1, "in clear before");
    let app = start(config, dir, Some(bootstrap)).await;
    let rows = channel_rows(&app.config).await;
    assert_eq!(in_clear(&rows), 0, "sealed at start-up: {rows:?}");
    assert!(rows.iter().all(|(_, _, sealed)| sealed.is_some()));
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let sealed_events = events_named(&admin, "alert_channels.sealed").await;
    assert_eq!(sealed_events.len(), 1);
    assert_eq!(
        sealed_events[0].details["channels"],
        serde_json::json!(["legacy"])
    );
    assert!(
        !serde_json::to_string(&sealed_events)
            .expect("json")
            .contains("L3gacyT0ken")
    );
    let r = post_json(
        &app,
        Some(&token),
        "/api/v1/alerts/channels/legacy/test",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(r.status(), 202);
    eventually("the legacy channel's test delivery", 30, async || {
        got.lock()
            .expect("got")
            .iter()
            .any(|(p, _, _)| p == "/legacy/L3gacyT0ken")
    })
    .await;
    // Idempotent: another start seals nothing and records nothing.
    let (dir, config, bootstrap) = app.stop().await;
    let app = start(config, dir, Some(bootstrap)).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    assert_eq!(events_named(&admin, "alert_channels.sealed").await.len(), 1);
    app.stop().await;
}

backend_tests!(
    a_flood_is_one_alert_and_one_summary_per_channel,
    a_breakglass_sign_in_is_not_hidden_in_a_flood,
    sms_over_the_cap_is_suppressed_and_counted,
    channel_configs_are_sealed_at_rest,
);
