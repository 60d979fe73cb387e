//! Conditional access: the lockout guard refuses (a) and lets the caller force only (b),
//! audited and alerted.

use super::*;

/// The lockout guard (a): a policy blocking everyone is refused, naming the policy and the
/// administrators, and cannot be forced.
async fn blocking_everyone_is_refused_even_when_forced(app: TestApp) {
    let (token, admin) = administrator(&app).await;
    let (status, code, msg) = error_of(ca_import(&app, &token, serde_json::json!([
        {"name": "lock-everyone", "state": "enabled", "conditions": {"principals": {"include": ["all"]}}, "grant": {"block": true}}
    ]), true).await).await;
    assert_eq!((status, code.as_str()), (409, "ca_lockout"), "{msg}");
    assert!(
        msg.contains("lock-everyone") && msg.contains("root-admin"),
        "{msg}"
    );
    assert!(!msg.contains("force"), "(a) cannot be forced: {msg}");
    verify_and_stop(app, &admin).await;
}

/// The lockout guard (b): blocking the caller while another global administrator remains is
/// refused unless forced, naming the caller, the policy and `force`; forcing is audited and
/// alerts.
async fn blocking_the_caller_is_refused_unless_forced_and_forcing_is_audited(app: TestApp) {
    let p = with_six_policies(&app).await;
    let token = &p.token;
    let (_gina, _) = mfa_user(&app, &p.admin, "gina", ALICE_PW).await;
    p.admin
        .create_assignment(&CreateAssignmentRequest {
            principal: "user:gina".into(),
            role: "global-administrator".into(),
            scope: None,
            kind: Some("eligible".into()),
            duration_seconds: None,
            ends_at: None,
        })
        .await
        .expect("GA eligible");
    let me_out = serde_json::json!([{"name": "not-root", "state": "enabled", "conditions": {"principals": {"include": ["user:root-admin"]}}, "grant": {"block": true}}]);
    let (status, code, msg) = error_of(ca_import(&app, token, me_out.clone(), false).await).await;
    assert_eq!((status, code.as_str()), (409, "ca_lockout"));
    assert!(
        msg.contains("root-admin") && msg.contains("not-root") && msg.contains("force"),
        "{msg}"
    );
    let forced_before = alert_count(&app, token, "conditional_access.changed").await;
    let r = ca_import(&app, token, me_out, true).await;
    assert_eq!(r.status(), 200);
    assert!(
        !events_named(&p.admin, "ca.policy.lockout_forced")
            .await
            .is_empty()
    );
    assert!(alert_count(&app, token, "conditional_access.changed").await > forced_before);
    verify_and_stop(app, &p.admin).await;
}

api_tests!(
    blocking_everyone_is_refused_even_when_forced,
    blocking_the_caller_is_refused_unless_forced_and_forcing_is_audited,
);
