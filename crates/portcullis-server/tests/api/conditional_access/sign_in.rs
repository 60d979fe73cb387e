//! Conditional access at sign-in: block, requirement, report-only recorded in the audit event,
//! sign-in frequency.

use super::*;

/// A blocking policy refuses the sign-in, naming the policy, and the refusal is audited with
/// the decision.
async fn a_blocking_policy_refuses_sign_in_and_audits_the_decision(app: TestApp) {
    let p = with_six_policies(&app).await;
    let e = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "gary".into(),
            password: CUSTODIAN_PW.into(),
        })
        .await
        .expect_err("blocked");
    assert_eq!(e.code(), Some("ca_blocked"), "{e}");
    assert!(e.to_string().contains("guests-never"), "{e}");
    let ev = events_named(&p.admin, "signin.password").await;
    let refused = last_event(&ev, "user:gary");
    assert_eq!(refused.outcome.as_str(), "failure");
    assert_eq!(refused.details["conditional_access"]["outcome"], "block");
    assert_eq!(
        refused.details["conditional_access"]["applied"],
        serde_json::json!(["guests-never"])
    );
    verify_and_stop(app, &p.admin).await;
}

/// The sign-in page opens an API session too: saying it returns to the device page (the CLI)
/// does not escape a policy on the API, and no session cookie is set.
async fn the_sign_in_page_returning_to_the_device_page_is_judged_as_the_api(app: TestApp) {
    let p = with_six_policies(&app).await;
    let mut b = Browser::new(&app.base);
    let html = b
        .get("/signin?return_to=%2Fdevice")
        .await
        .text()
        .await
        .expect("html");
    let csrf = hidden(&html, "csrf");
    let r = b
        .post(
            "/signin",
            &[
                ("csrf", csrf.as_str()),
                ("return_to", "/device"),
                ("username", "gary"),
                ("password", CUSTODIAN_PW),
            ],
        )
        .await;
    assert_eq!(r.status(), 403, "blocked as an API sign-in");
    assert!(
        !b.cookies.keys().any(|k| k.contains("session")),
        "{:?}",
        b.cookies
    );
    verify_and_stop(app, &p.admin).await;
}

/// A requirement the password alone does not meet, with no factor registered: the session
/// opened is for registration only.
async fn an_unmet_requirement_without_a_factor_opens_a_registration_only_session(app: TestApp) {
    let p = with_six_policies(&app).await;
    let s = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "paul".into(),
            password: CUSTODIAN_PW.into(),
        })
        .await
        .expect("signed in");
    assert_eq!(s.session.expect("session").scope, "registration_only");
    verify_and_stop(app, &p.admin).await;
}

/// A report-only policy never refuses: the sign-in is allowed and what the policy would have
/// done is in the audit event.
async fn a_report_only_policy_is_audited_but_never_refuses(app: TestApp) {
    let p = with_six_policies(&app).await;
    alice_signs_in(&app, &p.alice_secret).await;
    let ev = events_named(&p.admin, "signin.completed").await;
    let ok = last_event(&ev, "user:alice");
    assert_eq!(ok.details["conditional_access"]["outcome"], "allow");
    assert_eq!(
        ok.details["conditional_access"]["report_only"][0]["policy"],
        "watch-alice"
    );
    verify_and_stop(app, &p.admin).await;
}

/// A sign-in frequency bounds the session the sign-in opens, and the bounded session works.
async fn a_sign_in_frequency_bounds_the_session(app: TestApp) {
    let p = with_six_policies(&app).await;
    let s = alice_signs_in(&app, &p.alice_secret).await;
    let ends = time::OffsetDateTime::parse(
        &s.expires_at,
        &time::format_description::well_known::Rfc3339,
    )
    .expect("time");
    assert!(
        ends <= time::OffsetDateTime::now_utc() + time::Duration::minutes(61),
        "bounded by the policy: {}",
        s.expires_at
    );
    app.anonymous
        .with_token(Some(SecretString::from(s.token)))
        .whoami()
        .await
        .expect("the bounded session works");
    verify_and_stop(app, &p.admin).await;
}

api_tests!(
    a_blocking_policy_refuses_sign_in_and_audits_the_decision,
    the_sign_in_page_returning_to_the_device_page_is_judged_as_the_api,
    an_unmet_requirement_without_a_factor_opens_a_registration_only_session,
    a_report_only_policy_is_audited_but_never_refuses,
    a_sign_in_frequency_bounds_the_session,
);
