//! The webhook connector against the example receiver in `examples/target-webhook-receiver`
//! (a real HTTP server in Python that checks every signature): signed grants and revokes,
//! observation, and the generated signing key shown once.

use super::*;

api_tests!(
    a_webhook_receiver_holds_a_grant_while_it_lives,
    a_webhook_key_is_generated_when_none_is_given_and_shown_once,
    a_receiver_that_refuses_the_signature_leaves_the_grant_pending,
    a_grant_the_receiver_holds_without_portcullis_is_drift_and_reverted,
);

/// The example receiver as a child process on a free port, with `key`.
struct Receiver {
    base: String,
    key: String,
    child: std::process::Child,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Receiver {
    async fn start(key: &str) -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/target-webhook-receiver/receiver.py"
        );
        let child = match std::process::Command::new("python3")
            .arg(script)
            .arg(format!("127.0.0.1:{port}"))
            .env("PORTCULLIS_WEBHOOK_KEY", key)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) if std::env::var("PORTCULLIS_REQUIRE_SMTP").is_err() => {
                eprintln!("skipped: cannot run python3 ({e})");
                return None;
            }
            Err(e) => panic!("python3 is required: {e}"),
        };
        let base = format!("http://127.0.0.1:{port}");
        let up = eventually(10.0, || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        assert!(up, "the example receiver starts");
        Some(Self {
            base,
            key: key.to_owned(),
            child,
        })
    }

    /// What the receiver holds: (grant id, person, rights).
    async fn holds(&self) -> Vec<(String, String, Vec<String>)> {
        let t = time::OffsetDateTime::now_utc().unix_timestamp();
        let v: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/grants", self.base))
            .header(
                "x-portcullis-signature",
                portcullis_server::workers::alerts::signature(self.key.as_bytes(), t, ""),
            )
            .send()
            .await
            .expect("grants")
            .json()
            .await
            .expect("json");
        v["grants"]
            .as_array()
            .expect("grants")
            .iter()
            .map(|g| {
                (
                    g["id"].as_str().unwrap_or_default().to_owned(),
                    g["person"].as_str().unwrap_or_default().to_owned(),
                    serde_json::from_value(g["target_grants"].clone()).unwrap_or_default(),
                )
            })
            .collect()
    }
}

async fn webhook_target(
    admin: &Client,
    rx: &Receiver,
    key: Option<&str>,
    drift: Option<&str>,
) -> portcullis_core::api::TargetView {
    let t = admin
        .create_target(&portcullis_core::api::CreateTargetRequest {
            name: "deploy-hook".into(),
            kind: "webhook".into(),
            url: format!("{}/ops", rx.base),
            observe_url: Some(format!("{}/grants", rx.base)),
            login: None,
            secret: key.map(str::to_owned),
            secret_env: None,
            drift: drift.map(str::to_owned),
            reconcile_interval: Some("1h".into()),
            ssh: None,
            msgraph: None,
        })
        .await
        .expect("add webhook target");
    bind_db_role(admin, "deploy-hook", "deploy").await;
    t
}

const KEY: &str = "a-webhook-signing-key-of-32-bytes!";

async fn a_webhook_receiver_holds_a_grant_while_it_lives(app: TestApp) {
    let Some(rx) = Receiver::start(KEY).await else {
        return;
    };
    let admin = admin(&app).await;
    webhook_target(&admin, &rx, Some(KEY), None).await;
    let frank = db_person(&app, &admin, "frank", "deploy-hook").await;
    let id = activate_at(&frank, "deploy-hook", 600).await;
    let held = || async { rx.holds().await };
    assert!(
        eventually(3.0, || async {
            held().await == vec![(id.clone(), "frank".to_owned(), vec!["deploy".to_owned()])]
        })
        .await,
        "the receiver applied the signed grant: {:?}",
        rx.holds().await
    );
    let seen = admin.observe_target("deploy-hook").await.expect("observe");
    assert!(seen.observable && seen.drift.is_empty() && seen.missing.is_empty());
    assert_eq!(seen.held[0].grant_id.as_deref(), Some(id.as_str()));

    frank
        .deactivate(&id, &DecisionRequest { reason: None })
        .await
        .expect("deactivate");
    assert!(
        eventually(5.0, || async { held().await.is_empty() }).await,
        "revoked"
    );
    assert_eq!(settled_events(&admin, "target.revoked", 1).await.len(), 1);
}

async fn a_webhook_key_is_generated_when_none_is_given_and_shown_once(app: TestApp) {
    let admin = admin(&app).await;
    let t = admin
        .create_target(&portcullis_core::api::CreateTargetRequest {
            name: "hook".into(),
            kind: "webhook".into(),
            url: "http://127.0.0.1:9/ops".into(),
            observe_url: None,
            login: None,
            secret: None,
            secret_env: None,
            drift: None,
            reconcile_interval: None,
            ssh: None,
            msgraph: None,
        })
        .await
        .expect("add");
    let key = t.generated_secret.expect("a generated key, once");
    assert_eq!(key.len(), 64);
    assert_eq!(t.secret, "sealed");
    let shown = admin.target("hook").await.expect("show");
    assert!(shown.generated_secret.is_none());
    let listed = serde_json::to_string(&admin.targets().await.expect("list")).expect("json");
    assert!(!listed.contains(&key), "never shown again");
    let events = serde_json::to_string(&events_named(&admin, "target.added").await).expect("json");
    assert!(!events.contains(&key), "never in the audit log");
}

async fn a_receiver_that_refuses_the_signature_leaves_the_grant_pending(app: TestApp) {
    let Some(rx) = Receiver::start("the-receiver-expects-another-key").await else {
        return;
    };
    let admin = admin(&app).await;
    webhook_target(&admin, &rx, Some(KEY), None).await;
    let gina = db_person(&app, &admin, "gina", "deploy-hook").await;
    activate_at(&gina, "deploy-hook", 600).await;
    assert!(
        eventually(5.0, || async {
            admin
                .target_ops(Some("deploy-hook"), Some("pending"))
                .await
                .expect("ops")
                .first()
                .is_some_and(|o| {
                    o.attempts >= 2 && o.last_error.as_deref() == Some("refused: HTTP 401")
                })
        })
        .await,
        "retried with backoff, the refusal recorded: {:?}",
        admin.target_ops(None, None).await
    );
    assert!(
        rx.holds().await.is_empty(),
        "an unsigned grant is never applied"
    );
    assert!(events_named(&admin, "target.granted").await.is_empty());
}

async fn a_grant_the_receiver_holds_without_portcullis_is_drift_and_reverted(app: TestApp) {
    let Some(rx) = Receiver::start(KEY).await else {
        return;
    };
    let admin = admin(&app).await;
    webhook_target(&admin, &rx, Some(KEY), Some("revert")).await;
    // Someone gives "mallory" the deploy right at the receiver directly (signed with the key,
    // as a leaked key would allow): no grant of Portcullis means it.
    let body = serde_json::json!({
        "op": "grant", "id": "outside-1",
        "grant": {"id": "outside-1", "person": "mallory", "target_grants": ["deploy"]},
    })
    .to_string();
    let t = time::OffsetDateTime::now_utc().unix_timestamp();
    let r = reqwest::Client::new()
        .post(format!("{}/ops", rx.base))
        .header(
            "x-portcullis-signature",
            portcullis_server::workers::alerts::signature(KEY.as_bytes(), t, &body),
        )
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("grant by hand");
    assert_eq!(r.status(), 200);
    let seen = admin.observe_target("deploy-hook").await.expect("observe");
    assert_eq!(seen.drift.len(), 1, "{:?}", seen.drift);
    assert_eq!(
        (seen.drift[0].holder.as_str(), seen.drift[0].right.as_str()),
        ("mallory", "deploy")
    );
    // Revert mode: the receiver is told to revoke exactly that right (a `drift:` grant id).
    let r = admin
        .reconcile_target("deploy-hook")
        .await
        .expect("reconcile");
    assert_eq!(r.reverted.len(), 1);
    assert!(rx.holds().await.is_empty(), "reverted at the receiver");
    let drift = settled_events(&admin, "target.drift", 1).await;
    assert_eq!(drift[0].details["holder"], "mallory");
    assert_eq!(drift[0].details["reverted"], true);
}
