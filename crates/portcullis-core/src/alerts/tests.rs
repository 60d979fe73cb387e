//! Tests of the alert rules, aggregation, delivery schedule and body templates.

use super::*;
use crate::audit::{AuditEvent, Outcome};
use time::Duration;

fn ev(action: &str, target: &str, outcome: Outcome, details: serde_json::Value) -> AuditEvent {
    AuditEvent {
        seq: 7,
        time_us: 0,
        actor: "user:ada".into(),
        action: action.into(),
        target: target.into(),
        outcome,
        details,
        prev_hash: [0; 32],
        hash: [0; 32],
    }
}

#[test]
fn builtin_rules_fire_where_they_must() {
    let cases = [
        (
            ev(
                "signin.password",
                "user:bg1",
                Outcome::Failure,
                serde_json::json!({"emergency": true}),
            ),
            Some(("breakglass.activity", Severity::Critical)),
        ),
        (
            ev(
                "token.refresh_reuse",
                "user:ada",
                Outcome::Failure,
                serde_json::json!({}),
            ),
            Some(("token.refresh_reuse", Severity::Critical)),
        ),
        (
            ev(
                "signin.password",
                "user:payroll",
                Outcome::Failure,
                serde_json::json!({"reason": "service_account_interactive_signin"}),
            ),
            Some(("service_account.interactive_signin", Severity::Critical)),
        ),
        (
            ev(
                "assignment.created",
                "user:bob",
                Outcome::Success,
                serde_json::json!({"role": "global-administrator"}),
            ),
            Some(("role.global_administrator", Severity::Critical)),
        ),
        (
            ev(
                "request.activated",
                "user:bob",
                Outcome::Success,
                serde_json::json!({"role": "global-administrator"}),
            ),
            Some(("role.global_administrator", Severity::Critical)),
        ),
        (
            ev(
                "request.activated",
                "user:bob",
                Outcome::Success,
                serde_json::json!({"role": "audit-reader"}),
            ),
            None,
        ),
        (
            ev(
                "ca.policy.updated",
                "policy:x",
                Outcome::Success,
                serde_json::json!({}),
            ),
            Some(("conditional_access.changed", Severity::Critical)),
        ),
        (
            ev(
                "service_account.secret_added",
                "service_account:x",
                Outcome::Success,
                serde_json::json!({"alert": true}),
            ),
            Some(("flagged", Severity::Warning)),
        ),
        (
            ev(
                "signin.password",
                "user:ada",
                Outcome::Failure,
                serde_json::json!({"reason": "wrong_password"}),
            ),
            None,
        ),
        (
            ev(
                "signin.password",
                "user:payroll",
                Outcome::Failure,
                serde_json::json!({"reason": "throttled", "attempted_as": "service_account"}),
            ),
            Some(("service_account.interactive_signin", Severity::Critical)),
        ),
        (
            ev(
                "signin.password",
                "user:bg2",
                Outcome::Failure,
                serde_json::json!({"reason": "throttled", "emergency": true}),
            ),
            Some(("breakglass.activity", Severity::Critical)),
        ),
        (
            ev(
                "target.drift",
                "target:prod-db",
                Outcome::Success,
                serde_json::json!({"holder": "mallory", "right": "reporting_read"}),
            ),
            Some(("target.drift", Severity::Critical)),
        ),
        (
            ev(
                "target.tenant_finding",
                "target:entra",
                Outcome::Success,
                serde_json::json!({"code": "emergency.not_excluded", "message": "policy x does not exclude bg1"}),
            ),
            Some(("target.tenant_posture", Severity::Critical)),
        ),
        (
            ev(
                "breakglass.entra_signin",
                "target:entra",
                Outcome::Success,
                serde_json::json!({"emergency": true, "upn": "bg1@contoso.onmicrosoft.com"}),
            ),
            Some(("breakglass.activity", Severity::Critical)),
        ),
        (
            ev(
                "target.revoke_failed",
                "target:prod-db",
                Outcome::Failure,
                serde_json::json!({"op": "revoke"}),
            ),
            Some(("target.failure", Severity::Critical)),
        ),
        (
            ev(
                "target.operation_dead",
                "target:prod-db",
                Outcome::Failure,
                serde_json::json!({"op": "grant"}),
            ),
            Some(("target.failure", Severity::Critical)),
        ),
        (
            ev(
                "target.revoked",
                "target:prod-db",
                Outcome::Success,
                serde_json::json!({"op": "revoke"}),
            ),
            None,
        ),
    ];
    for (e, want) in cases {
        let got = builtin(&e).map(|a| (a.rule, a.severity));
        assert_eq!(
            got.as_ref().map(|(r, s)| (r.as_str(), *s)),
            want,
            "{}",
            e.action
        );
    }
}

#[test]
fn custom_rules_match_and_validate() {
    let rule = CustomRule {
        name: "failed-signins".into(),
        action: "signin.password".into(),
        outcome: Some(Outcome::Failure),
        actor: None,
        target: None,
        group_by: GroupBy::Target,
        count: 10,
        window: Duration::minutes(5),
        severity: Severity::Warning,
    };
    assert_eq!(rule.validate(), Ok(()));
    let e = ev(
        "signin.password",
        "user:ada",
        Outcome::Failure,
        serde_json::json!({}),
    );
    assert_eq!(rule.key_of(&e).as_deref(), Some("user:ada"));
    let ok = ev(
        "signin.password",
        "user:ada",
        Outcome::Success,
        serde_json::json!({}),
    );
    assert_eq!(rule.key_of(&ok), None);
    let other = ev(
        "signin.totp",
        "user:ada",
        Outcome::Failure,
        serde_json::json!({}),
    );
    assert_eq!(rule.key_of(&other), None);
    let by_actor = CustomRule {
        group_by: GroupBy::Actor,
        ..rule.clone()
    };
    assert_eq!(by_actor.key_of(&e).as_deref(), Some("user:ada"));
    assert_eq!(rule.alert("user:ada", 10).rule, "custom:failed-signins");
    for bad in [
        CustomRule {
            name: "X".into(),
            ..rule.clone()
        },
        CustomRule {
            action: "Sign In".into(),
            ..rule.clone()
        },
        CustomRule {
            count: 0,
            ..rule.clone()
        },
        CustomRule {
            window: Duration::days(8),
            ..rule.clone()
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
}

#[test]
fn critical_reaches_every_channel() {
    assert!(Severity::Critical.reaches(Severity::Critical));
    assert!(Severity::Warning.reaches(Severity::Info));
    assert!(!Severity::Info.reaches(Severity::Warning));
    assert!(!Severity::Warning.reaches(Severity::Critical));
}

#[test]
fn backoff_grows_and_is_capped() {
    assert_eq!(backoff(1), Duration::seconds(5));
    assert_eq!(backoff(2), Duration::seconds(10));
    assert_eq!(backoff(4), Duration::seconds(40));
    assert_eq!(backoff(30), Duration::hours(1));
    assert_eq!(backoff(u32::MAX), Duration::hours(1));
}

#[test]
fn aggregates_count_and_stay_bounded() {
    let mut agg = Aggregate::open(
        "breakglass.activity",
        "user:bg1",
        Outcome::Failure,
        Severity::Critical,
        7,
        1_000_000,
        Duration::minutes(5),
    );
    assert!(agg.covers(1_000_000 + 299_999_999));
    assert!(!agg.covers(1_000_000 + 300_000_000));
    for i in 0..500 {
        let mut e = ev(
            if i % 2 == 0 {
                "signin.password"
            } else {
                "signin.breakglass_recovery"
            },
            "user:bg1",
            Outcome::Failure,
            serde_json::json!({"client_ip": format!("10.0.0.{}", i % 25), "emergency": true}),
        );
        e.seq = 10 + i;
        agg.add(&e);
    }
    assert_eq!(agg.count, 500);
    assert_eq!((agg.from_seq, agg.to_seq), (10, 509));
    assert_eq!(agg.addresses.len(), 25);
    assert!(!agg.more_addresses);
    assert_eq!(agg.actions["signin.password"], 250);
    let text = agg.text();
    assert!(
        text.starts_with("[CRITICAL] 500 more break-glass attempts and changes (failed) for user:bg1 from 25 addresses within 5 minutes (signin.breakglass_recovery ×250, signin.password ×250"),
        "{text}"
    );
    // A flood from many addresses and actions stays bounded.
    for i in 0..1000 {
        let mut e = ev(
            &format!("action.n{i}"),
            "user:bg1",
            Outcome::Failure,
            serde_json::json!({"client_ip": format!("10.1.{}.{}", i / 250, i % 250)}),
        );
        e.actor = format!("user:a{i}");
        agg.add(&e);
    }
    assert_eq!(agg.addresses.len(), MAX_LISTED_ADDRESSES);
    assert!(agg.more_addresses && agg.more_actors);
    assert_eq!(agg.actors.len(), MAX_LISTED_ACTORS);
    assert_eq!(agg.actions.len(), MAX_LISTED_ACTIONS + 1);
    assert!(agg.actions["other"] > 900);
    assert!(agg.text().contains("from more than 100 addresses"));
}

#[test]
fn durations_read_like_words() {
    assert_eq!(describe_duration(Duration::minutes(5)), "5 minutes");
    assert_eq!(describe_duration(Duration::seconds(1)), "1 second");
    assert_eq!(describe_duration(Duration::seconds(90)), "90 seconds");
    assert_eq!(describe_duration(Duration::hours(1)), "1 hour");
}

#[test]
fn templates_escape_values() {
    let t = r#"{"to":"{to}","text":"{message}"}"#;
    let body = render_template(t, "+15550100", "a \"quoted\" {message}\n", Escape::Json);
    let v: serde_json::Value = serde_json::from_str(&body).expect("still JSON");
    assert_eq!(v["text"], "a \"quoted\" {message}\n");
    assert_eq!(v["to"], "+15550100");
    let form = render_template("To={to}&Body={message}", "+1 555", "x&y=z", Escape::Form);
    assert_eq!(form, "To=%2B1+555&Body=x%26y%3Dz");
    assert_eq!(
        validate_template("no placeholder"),
        Err(TemplateError::NoMessage)
    );
}
