//! Reviewers hear about a round by email (a real SMTP server, aiosmtpd): when it opens, and
//! once more when a quarter of it is left, if they still have undecided items.

use super::*;

backend_tests!(reviewers_are_emailed_when_a_round_opens_and_reminded_once);

async fn reviewers_are_emailed_when_a_round_opens_and_reminded_once(backend: Backend) {
    let Some((smtp_port, maildir, mut sink)) = smtp_sink() else {
        return;
    };
    let Some(app) = spawn_app(backend).await else {
        let _ = sink.kill();
        return;
    };
    let token = admin_token(&app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let r = add_channel(
        &app,
        &token,
        serde_json::json!({"name": "people-mail", "kind": "email", "smtp_url": format!("smtp://127.0.0.1:{smtp_port}"),
            "from": "portcullis@example.org", "to": ["security@example.org"], "notifications": true}),
    )
    .await;
    assert_eq!(r.status(), 201);
    user_with_totp(
        &app,
        &admin,
        "rita",
        "Rita".into(),
        Some("rita@example.org".into()),
        PW,
    )
    .await;
    eligible_person(&app, &admin, "alice").await;
    group_with(&admin, "auditors", true, &["rita"]).await;
    let review = admin
        .create_review(&CreateReviewRequest {
            duration: Some("8s".into()),
            ..review_of(ROLE, "group:auditors", "keep")
        })
        .await
        .expect("review");
    let round = open_round(&review);
    let to_rita = |needle: &'static str| {
        let dir = maildir.path().to_owned();
        move || {
            mailbox(&dir)
                .into_iter()
                .filter(move |m| {
                    m["to"] == serde_json::json!(["rita@example.org"])
                        && m["content"].as_str().unwrap_or("").contains(needle)
                })
                .count()
        }
    };
    let opened =
        to_rita("an access review of audit-reader at / needs your decision on 1 assignment");
    eventually("the opening email", 30, async || opened() == 1).await;
    let opened_mail = mailbox(maildir.path())
        .into_iter()
        .find(|m| {
            m["content"]
                .as_str()
                .unwrap_or("")
                .contains("an access review of")
        })
        .expect("mail");
    assert!(
        opened_mail["content"]
            .as_str()
            .unwrap_or("")
            .contains(&format!(
                "{}/console/reviews",
                app.public_url.trim_end_matches('/')
            )),
        "the console link: {opened_mail}"
    );
    // A quarter of 8 s is left after 6 s: one reminder, the item being still undecided.
    let reminded = to_rita("reminder: 1 assignment(s) of audit-reader");
    eventually("the reminder email", 30, async || reminded() == 1).await;
    eventually("the round closed", 30, async || {
        admin.review_round(&round).await.expect("round").state == "closed"
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(reminded(), 1, "reminded once");
    assert_eq!(opened(), 1);
    let events = events_named(&admin, "review.reminded").await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].details["reviewers"],
        serde_json::json!(["group:auditors"])
    );
    app.stop().await;
    let _ = sink.kill();
    let _ = sink.wait();
}
