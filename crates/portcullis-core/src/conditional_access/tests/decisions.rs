//! How matching policies combine into a decision: block over require, the strongest
//! requirement, report-only and disabled policies, sign-in frequency, the what-if explanation.

use super::*;

/// Enforcement decides exactly as what-if does; it only leaves the explanation out.
#[test]
fn evaluate_decides_as_what_if_without_the_explanation() {
    let policies = vec![
        simple("a", &["all"], json!({"require": "mfa"})),
        policy(json!({"name": "b", "state": "report_only",
            "conditions": {"principals": {"include": ["all"]}}, "grant": {"block": true}})),
        policy(json!({"name": "c", "state": "disabled",
            "conditions": {"principals": {"include": ["all"]}}, "grant": {"block": true}})),
    ];
    let compiled = compile(&policies);
    let ctx = ctx(member("ann"));
    let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
    let mut explained = compiled.what_if(&ctx, now);
    let enforced = compiled.evaluate(&ctx, now);
    assert_eq!(explained.explanation.len(), 3);
    assert!(enforced.explanation.is_empty());
    assert_eq!(enforced.applied, vec![Arc::<str>::from("a")]);
    explained.explanation.clear();
    assert_eq!(enforced, explained);
}

#[test]
fn block_wins_over_require() {
    let c = compile(&[
        simple("mfa for all", &["all"], json!({"require": "mfa"})),
        simple("block all", &["all"], json!({"block": true})),
        simple(
            "pr for all",
            &["all"],
            json!({"require": "phishing_resistant"}),
        ),
    ]);
    for strength in [AuthStrength::Password, AuthStrength::PhishingResistant] {
        let d = c.what_if(
            &SignInContext {
                strength,
                ..ctx(member("alice"))
            },
            t0(),
        );
        assert_eq!(
            d.outcome,
            Outcome::Block {
                policies: vec![Arc::from("block all")]
            }
        );
    }
}

#[test]
fn requirements_combine_and_the_strongest_wins() {
    let c = compile(&[
        simple("a mfa", &["all"], json!({"require": "mfa"})),
        simple(
            "b pr admins",
            &["group:admins"],
            json!({"require": "phishing_resistant"}),
        ),
        simple("c mfa", &["all"], json!({"require": "mfa"})),
    ]);
    let mut alice = member("alice");
    alice.groups = vec!["admins".into()];
    let at = |s: Subject, strength| {
        c.what_if(&SignInContext { strength, ..ctx(s) }, t0())
            .outcome
    };
    match at(alice.clone(), AuthStrength::Password) {
        Outcome::Require { strength, policies } => {
            assert_eq!(strength, AuthStrength::PhishingResistant);
            assert_eq!(names(&policies), ["a mfa", "b pr admins", "c mfa"]);
        }
        o => panic!("{o:?}"),
    }
    match at(alice.clone(), AuthStrength::Mfa) {
        Outcome::Require { strength, policies } => {
            assert_eq!(strength, AuthStrength::PhishingResistant);
            assert_eq!(names(&policies), ["b pr admins"]);
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(at(alice, AuthStrength::PhishingResistant), Outcome::Allow);
    match at(member("bob"), AuthStrength::Password) {
        Outcome::Require { strength, policies } => {
            assert_eq!(strength, AuthStrength::Mfa);
            assert_eq!(names(&policies), ["a mfa", "c mfa"]);
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(at(member("bob"), AuthStrength::Mfa), Outcome::Allow);
}

#[test]
fn report_only_is_reported_but_never_enforced() {
    let c = compile(&[
        simple("mfa", &["all"], json!({"require": "mfa"})),
        policy(json!({"name": "trial block", "state": "report_only",
            "conditions": {"principals": {"include": ["all"]}}, "grant": {"block": true}})),
        policy(json!({"name": "trial pr", "state": "report_only",
            "conditions": {"principals": {"include": ["all"]}},
            "grant": {"require": "phishing_resistant"},
            "session": {"sign_in_frequency_hours": 1}})),
    ]);
    let d = c.what_if(
        &SignInContext {
            strength: AuthStrength::Mfa,
            authenticated_at: Some(t0() - Duration::hours(5)),
            ..ctx(member("alice"))
        },
        t0(),
    );
    assert_eq!(d.outcome, Outcome::Allow);
    assert_eq!(
        d.sign_in_frequency_hours, None,
        "report-only sets no frequency"
    );
    assert_eq!(
        d.report_only,
        [
            ReportOnlyResult {
                policy: Arc::from("trial block"),
                result: PolicyResult::Block
            },
            ReportOnlyResult {
                policy: Arc::from("trial pr"),
                result: PolicyResult::Require {
                    strength: AuthStrength::PhishingResistant
                }
            },
        ]
    );
    assert_eq!(
        verdict(&d, "trial block"),
        &Verdict::Applies(PolicyResult::Block)
    );
    let v = serde_json::to_value(&d).expect("json");
    assert_eq!(
        v["report_only"][0],
        json!({"policy": "trial block", "effect": "block"})
    );
}

#[test]
fn disabled_policies_are_skipped_but_explained() {
    let c = compile(&[policy(json!({"name": "off", "state": "disabled",
        "conditions": {"principals": {"include": ["all"]}}, "grant": {"block": true}}))]);
    let d = c.what_if(&ctx(member("alice")), t0());
    assert_eq!(d.outcome, Outcome::Allow);
    assert!(d.report_only.is_empty());
    assert_eq!(d.explanation.len(), 1);
    assert_eq!(verdict(&d, "off"), &Verdict::Disabled);
    assert_eq!(d.explanation[0].reason(), "disabled: not evaluated");
}

#[test]
fn sign_in_frequency_smallest_wins() {
    let c = compile(&[
        policy(json!({"name": "daily", "state": "enabled",
            "conditions": {"principals": {"include": ["all"]}},
            "session": {"sign_in_frequency_hours": 12}})),
        policy(json!({"name": "admins 4h", "state": "enabled",
            "conditions": {"principals": {"include": ["group:admins"]}},
            "grant": {"require": "mfa"},
            "session": {"sign_in_frequency_hours": 4}})),
    ]);
    let mut alice = member("alice");
    alice.groups = vec!["admins".into()];
    let at = |ago: Option<i64>, strength| {
        c.what_if(
            &SignInContext {
                strength,
                authenticated_at: ago.map(|h| t0() - Duration::hours(h)),
                ..ctx(alice.clone())
            },
            t0(),
        )
    };
    let fresh = at(None, AuthStrength::Mfa);
    assert_eq!(fresh.outcome, Outcome::Allow);
    assert_eq!(fresh.sign_in_frequency_hours, Some(4));
    assert_eq!(at(Some(3), AuthStrength::Mfa).outcome, Outcome::Allow);
    assert_eq!(
        at(Some(4), AuthStrength::Mfa).outcome,
        Outcome::ReauthRequired {
            strength: AuthStrength::Mfa,
            max_age_hours: 4,
            policies: vec![Arc::from("admins 4h")]
        }
    );
    match at(Some(13), AuthStrength::Mfa).outcome {
        Outcome::ReauthRequired {
            max_age_hours,
            policies,
            ..
        } => {
            assert_eq!(max_age_hours, 4);
            assert_eq!(names(&policies), ["daily", "admins 4h"]);
        }
        o => panic!("{o:?}"),
    }
    // A missing requirement comes before re-authentication.
    assert!(matches!(
        at(Some(13), AuthStrength::Password).outcome,
        Outcome::Require { .. }
    ));
    let bob = c.what_if(
        &SignInContext {
            authenticated_at: Some(t0() - Duration::hours(5)),
            ..ctx(member("bob"))
        },
        t0(),
    );
    assert_eq!(bob.outcome, Outcome::Allow);
    assert_eq!(bob.sign_in_frequency_hours, Some(12));
}

#[test]
fn explanation_is_complete_for_what_if() {
    let c = compile(&[
        simple("applies", &["all"], json!({"require": "mfa"})),
        simple("other group", &["group:finance"], json!({"block": true})),
        policy(json!({"name": "trial", "state": "report_only",
            "conditions": {"principals": {"include": ["all"]}}, "grant": {"block": true}})),
        policy(json!({"name": "off", "state": "disabled",
            "conditions": {"principals": {"include": ["all"]}}, "grant": {"block": true}})),
    ]);
    let d = c.what_if(&ctx(member("alice")), t0());
    assert_eq!(d.explanation.len(), 4);
    let v = serde_json::to_value(&d).expect("json");
    assert_eq!(v["outcome"], "require");
    assert_eq!(v["strength"], "mfa");
    assert_eq!(v["policies"], json!(["applies"]));
    let e = &v["explanation"];
    assert_eq!(e[0]["applies"], true);
    assert_eq!(
        e[0]["result"],
        json!({"effect": "require", "strength": "mfa"})
    );
    assert_eq!(e[1]["applies"], false);
    assert_eq!(e[1]["condition"], "principals");
    assert_eq!(
        e[1]["reason"],
        "principals: the subject matches no included entry"
    );
    assert_eq!(e[2]["state"], "report_only");
    assert_eq!(e[2]["applies"], true);
    assert_eq!(e[3]["state"], "disabled");
    assert_eq!(e[3]["reason"], "disabled: not evaluated");
    for entry in e.as_array().expect("list") {
        assert!(entry["reason"].as_str().is_some_and(|r| !r.is_empty()));
    }
}
