//! Two replicas (servers) on one PostgreSQL database: one audit chain, codes and refresh tokens
//! redeemed once, alerts delivered once, break-glass accounts and lockouts kept, one drill alert.

use super::*;

#[tokio::test]
async fn two_servers_on_one_postgres_keep_one_chain() {
    let Some(url) = fresh_postgres_url().await else {
        eprintln!("skipped: PORTCULLIS_TEST_DATABASE_URL is not set");
        return;
    };
    let (a, b) = two_replicas(&url).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let c = if i % 2 == 0 {
            a.client.clone()
        } else {
            b.client.clone()
        };
        tasks.push(tokio::spawn(async move {
            c.audit_checkpoint(&format!("writer {i}"))
                .await
                .expect("write")
                .seq
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.expect("join"));
    }
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 40, "each write got its own sequence number");
    let v = b.client.audit_verify().await.expect("verify");
    assert!(v.ok, "{v:?}");
    assert!(v.checkpoints.unwrap_or(0) >= 1);
    a.stop().await;
    b.stop().await;
}

/// Two replicas on one PostgreSQL: the same authorization code redeemed on both at once is
/// redeemed once (and, as for any reuse, what it gave is revoked); the same refresh token
/// rotated on both at once rotates once and the family ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_redeem_a_code_and_rotate_a_refresh_token_once() {
    let Some(url) = fresh_postgres_url().await else {
        eprintln!("skipped: PORTCULLIS_TEST_DATABASE_URL is not set");
        return;
    };
    let (a, b) = two_replicas(&url).await;
    let token = admin_token(&a).await;
    let admin = a
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let secret = oidc_person(&a, &admin, "rhea", "granite-orchid-sail-36").await;
    let redirect = "http://127.0.0.1:9/cb";
    let (id, sec) = confidential_client(&a, &token, "Twin", redirect).await;

    let mut browser = Browser::new(&a.base);
    let (u, verifier) = authorize_url(&a.base, &id, redirect, &[]);
    let page = browser_sign_in(
        &mut browser,
        &u,
        "rhea",
        "granite-orchid-sail-36",
        &secret,
        0,
    )
    .await;
    let code = query_param(&consent(&mut browser, page, "allow").await, "code").expect("code");
    let (ra, rb) = tokio::join!(
        exchange(&a, (&id, Some(&sec)), &code, redirect, Some(&verifier)),
        exchange(&b, (&id, Some(&sec)), &code, redirect, Some(&verifier)),
    );
    let mut statuses = [ra.status().as_u16(), rb.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 400], "one replica redeems the code");
    let winner: serde_json::Value = if ra.status() == 200 {
        ra.json().await
    } else {
        rb.json().await
    }
    .expect("json");
    let at = winner["access_token"].as_str().expect("at");
    for app in [&a, &b] {
        let r = app
            .http
            .get(format!("{}/oauth2/userinfo", app.base))
            .bearer_auth(at)
            .send()
            .await
            .expect("userinfo");
        assert_eq!(
            r.status(),
            401,
            "a code presented twice revokes what it gave"
        );
    }

    // Refresh rotation raced on both replicas.
    let (u, verifier) = authorize_url(&a.base, &id, redirect, &[]);
    let code = query_param(&location(&browser.get(&u).await), "code").expect("code");
    let t: serde_json::Value = exchange(&a, (&id, Some(&sec)), &code, redirect, Some(&verifier))
        .await
        .json()
        .await
        .expect("json");
    let rt = t["refresh_token"].as_str().expect("rt").to_owned();
    let refresh = |app: &TestApp, rt: String| {
        let (http, base, id, sec) = (app.http.clone(), app.base.clone(), id.clone(), sec.clone());
        async move {
            http.post(format!("{base}/oauth2/token"))
                .basic_auth(&id, Some(&sec))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt.as_str()),
                ])
                .send()
                .await
                .expect("refresh")
        }
    };
    let (ra, rb) = tokio::join!(refresh(&a, rt.clone()), refresh(&b, rt.clone()));
    let mut statuses = [ra.status().as_u16(), rb.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 400], "one replica rotates the token");
    let next: serde_json::Value = if ra.status() == 200 {
        ra.json().await
    } else {
        rb.json().await
    }
    .expect("json");
    let next = next["refresh_token"].as_str().expect("rt").to_owned();
    oauth_error(refresh(&b, next).await, 400, "invalid_grant").await;
    a.stop().await;
    b.stop().await;
}

/// Two replicas on one PostgreSQL both run delivery workers: every alert message is
/// delivered, each exactly once (claims are conditional updates).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_deliver_each_alert_once() {
    let Some(url) = fresh_postgres_url().await else {
        eprintln!("skipped: PORTCULLIS_TEST_DATABASE_URL is not set");
        return;
    };
    let (a, b) = two_replicas(&url).await;
    let token = admin_token(&a).await;
    let admin = a
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let inbox: Inbox = Default::default();
    let (port, hook) = receiver(inbox.clone(), 0).await;
    let r = add_channel(&a, &token, serde_json::json!({
        "name": "hook", "kind": "webhook", "url": format!("http://127.0.0.1:{port}/hook"), "min_severity": "critical",
    }))
    .await;
    assert_eq!(r.status(), 201);
    for i in 0..12 {
        let app = if i % 2 == 0 { &a } else { &b };
        sa_interactive_signin(app, &admin, &format!("bot-{i}")).await;
    }
    eventually("twelve deliveries", 30, async || {
        inbox.lock().expect("inbox").requests.len() >= 12
    })
    .await;
    // Give a duplicate, if any, time to arrive.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let mut ids: Vec<String> = inbox
        .lock()
        .expect("inbox")
        .requests
        .iter()
        .map(|(_, h, _)| {
            h["x-portcullis-message-id"]
                .to_str()
                .expect("id")
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 12);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 12, "each message delivered once");
    let workers: std::collections::BTreeSet<String> = {
        let mut w = std::collections::BTreeSet::new();
        for id in &ids {
            let shown = api_get(&a, &token, &format!("/api/v1/alerts/{id}")).await;
            assert_eq!(shown["history"].as_array().expect("history").len(), 1);
            w.insert(
                shown["history"][0]["worker"]
                    .as_str()
                    .expect("worker")
                    .to_owned(),
            );
        }
        w
    };
    eprintln!("delivered by {} worker(s)", workers.len());
    hook.abort();
    a.stop().await;
    b.stop().await;
}

/// Two replicas each disabling a different one of three break-glass accounts at once: one
/// wins, the other is refused, two remain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_keep_two_breakglass_accounts() {
    let Some(url) = fresh_postgres_url().await else {
        eprintln!("skipped: PORTCULLIS_TEST_DATABASE_URL is not set");
        return;
    };
    let (a, b) = two_replicas(&url).await;
    let token = admin_token(&a).await;
    let admin_a = a
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let admin_b = b
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    people(&admin_a, &["alice", "bob"]).await;
    for n in ["bg-a", "bg-b", "bg-c"] {
        create_split_account(&a, &token, n, &["alice", "bob"], 2).await;
    }
    for _round in 0..3 {
        let (ra, rb) = tokio::join!(admin_a.disable_user("bg-a"), admin_b.disable_user("bg-b"));
        let ok = [ra.is_ok(), rb.is_ok()].iter().filter(|x| **x).count();
        assert_eq!(
            ok, 1,
            "exactly one of two concurrent disables wins: {ra:?} {rb:?}"
        );
        for e in [ra.err(), rb.err()].into_iter().flatten() {
            assert_eq!(e.code(), Some("breakglass_minimum"));
        }
        let tenant = a
            .anonymous
            .ready()
            .await
            .expect("ready")
            .tenant
            .expect("tenant");
        assert_eq!(tenant.breakglass_accounts, 2);
        admin_a.enable_user("bg-a").await.expect("enable");
        admin_a.enable_user("bg-b").await.expect("enable");
    }
    a.stop().await;
    b.stop().await;
}

/// Two replicas each adding a policy that is harmless alone but, together with the other,
/// leaves no Global Administrator a way in: the version check makes the second one re-run the
/// lockout guard on the combined set, so exactly one lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_cannot_combine_a_lockout() {
    let Some(url) = fresh_postgres_url().await else {
        eprintln!("skipped: PORTCULLIS_TEST_DATABASE_URL is not set");
        return;
    };
    let (a, b) = two_replicas(&url).await;
    let token = admin_token(&a).await;
    for round in 0..3 {
        let block = |app: &str| {
            serde_json::json!([{"name": format!("no-{app}-{round}"), "state": "enabled",
                "conditions": {"principals": {"include": ["role:global-administrator"]}, "applications": {"include": [app]}},
                "grant": {"block": true}}])
        };
        let (ra, rb) = tokio::join!(
            ca_import(&a, &token, block("api"), false),
            ca_import(&b, &token, block("cli"), false)
        );
        let statuses = [ra.status().as_u16(), rb.status().as_u16()];
        assert!(
            statuses.contains(&200) && statuses.contains(&409),
            "round {round}: {statuses:?}"
        );
        let policies = api_get(&a, &token, "/api/v1/ca/policies").await;
        assert_eq!(policies.as_array().expect("list").len(), 1, "{policies}");
        let name = policies[0]["name"].as_str().expect("name").to_owned();
        ca_delete_now(&a, &token, &name).await;
    }
    a.stop().await;
    b.stop().await;
}

/// Invariant 8 for the drill watch: two replicas both see the overdue drill, one alert is
/// raised per period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_raise_the_overdue_drill_alert_once() {
    let Some(url) = fresh_postgres_url().await else {
        eprintln!("skipped: PORTCULLIS_TEST_DATABASE_URL is not set");
        return;
    };
    let (a, b) = two_replicas_with(&url, |c| {
        c.breakglass_drill_max_age = "2s".into();
        c.breakglass_drill_alert_every = "1h".into();
    })
    .await;
    let token = admin_token(&a).await;
    let admin = a
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    people(&admin, &["alice", "bob"]).await;
    create_split_account(&a, &token, "bg-old", &["alice", "bob"], 2).await;
    eventually("the overdue drill alert", 15, async || {
        !events_named(&admin, "breakglass.drill_overdue")
            .await
            .is_empty()
    })
    .await;
    // Both replicas check every 2 s; give them several rounds.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert_eq!(
        events_named(&admin, "breakglass.drill_overdue").await.len(),
        1
    );
    assert_eq!(alert_count(&a, &token, "breakglass.drill_overdue").await, 1);
    a.stop().await;
    b.stop().await;
}

/// Two replicas on one PostgreSQL: a client secret removed on one is refused by the other within
/// a second (its caches live no longer), although the other had just answered from them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_replica_refuses_a_removed_secret_within_a_second() {
    let Some(url) = fresh_postgres_url().await else {
        eprintln!("skipped: PORTCULLIS_TEST_DATABASE_URL is not set");
        return;
    };
    let (a, b) = two_replicas(&url).await;
    let admin = admin(&a).await;
    admin
        .create_service_account(&portcullis_core::api::CreateServiceAccountRequest {
            name: "twin-daemon".into(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await
        .expect("sa");
    let s = admin
        .add_client_secret("twin-daemon")
        .await
        .expect("secret");
    for _ in 0..3 {
        access_token(&b, "twin-daemon", &s.client_secret).await;
    }
    admin
        .remove_client_secret("twin-daemon", &s.id)
        .await
        .expect("removed on a");
    let removed = std::time::Instant::now();
    let refused_after = loop {
        let r = token_request(
            &b,
            &[("grant_type", "client_credentials")],
            Some(("twin-daemon", &s.client_secret)),
        )
        .await;
        if r.status() == 401 {
            break removed.elapsed();
        }
        assert_eq!(r.status(), 200);
        assert!(
            removed.elapsed() < std::time::Duration::from_secs(5),
            "replica b still accepts a secret removed on replica a"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    // One second of cache life, plus the time of one request on a loaded test machine.
    assert!(
        refused_after < std::time::Duration::from_millis(1500),
        "refused only after {refused_after:?}"
    );
    a.stop().await;
    b.stop().await;
}
