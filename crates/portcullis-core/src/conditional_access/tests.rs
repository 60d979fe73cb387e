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

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::*;
use crate::principal::PrincipalName;
use crate::session::AuthStrength;

fn t0() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + Duration::days(20_000)
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn policy(v: serde_json::Value) -> Policy {
    let spec: PolicySpec = serde_json::from_value(v).expect("spec");
    Policy::from_spec(&spec).expect("valid policy")
}

/// `{"name": name, "state": "enabled", "conditions": {"principals": {"include": [who]}}, grant}`
fn simple(name: &str, who: &[&str], grant: serde_json::Value) -> Policy {
    policy(json!({"name": name, "state": "enabled",
        "conditions": {"principals": {"include": who}}, "grant": grant}))
}

fn locations() -> Vec<NamedLocation> {
    vec![
        NamedLocation::parse("office", &["192.0.2.0/24", "2001:db8:1::/48"], true).expect("office"),
        NamedLocation::parse("partner-vpn", &["198.51.100.0/24"], false).expect("vpn"),
    ]
}

fn compile(ps: &[Policy]) -> CompiledPolicies {
    CompiledPolicies::compile(ps, &locations()).expect("compile")
}

fn member(name: &str) -> Subject {
    Subject {
        kind: SubjectKind::Member,
        name: name.into(),
        groups: Vec::new(),
        role_assignable_groups: Vec::new(),
        active_roles: Vec::new(),
        eligible_roles: Vec::new(),
        emergency: false,
    }
}

fn ctx(subject: Subject) -> SignInContext {
    SignInContext {
        subject,
        application: Application::Cli,
        ip: ip("203.0.113.9"),
        strength: AuthStrength::Password,
        authenticated_at: None,
        flow: None,
    }
}

fn names(ps: &[Arc<str>]) -> Vec<&str> {
    ps.iter().map(|p| &**p).collect()
}

fn applying(d: &Decision) -> Vec<&str> {
    d.explanation
        .iter()
        .filter(|e| e.applies())
        .map(|e| &*e.policy)
        .collect()
}

fn verdict<'a>(d: &'a Decision, policy: &str) -> &'a Verdict {
    &d.explanation
        .iter()
        .find(|e| &*e.policy == policy)
        .expect("explained")
        .verdict
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
fn exclude_beats_include() {
    let c = compile(&[
        policy(json!({"name": "block but approvers", "state": "enabled",
            "conditions": {"principals": {"include": ["all"], "exclude": ["group:approvers"]}},
            "grant": {"block": true}})),
        policy(json!({"name": "admins but alice", "state": "enabled",
            "conditions": {"principals": {"include": ["group:approvers"], "exclude": ["user:alice"]}},
            "grant": {"block": true}})),
    ]);
    let mut alice = member("alice");
    alice.groups = vec!["approvers".into()];
    alice.role_assignable_groups = vec!["approvers".into()];
    let d = c.what_if(&ctx(alice), t0());
    assert_eq!(d.outcome, Outcome::Allow);
    assert_eq!(
        verdict(&d, "block but approvers"),
        &Verdict::Excluded {
            condition: ConditionKind::Principals,
            entry: Arc::from("group:approvers")
        }
    );
    assert_eq!(
        d.explanation[0].reason(),
        "principals: excluded by group:approvers"
    );
    assert!(matches!(
        verdict(&d, "admins but alice"),
        Verdict::Excluded { .. }
    ));
    let d = c.what_if(&ctx(member("bob")), t0());
    assert_eq!(names(d.outcome.policies()), ["block but approvers"]);
}

#[test]
fn principals_match_users_groups_roles_guests_service_accounts_and_all() {
    let entries = [
        "all",
        "members",
        "guests",
        "service_accounts",
        "user:alice",
        "service_account:payroll",
        "group:ops",
        "role:global-administrator",
        "active_role:global-administrator",
    ];
    let ps: Vec<Policy> = entries
        .iter()
        .map(|e| simple(e, &[e], json!({"require": "mfa"})))
        .collect();
    let c = compile(&ps);

    let mut alice = member("alice");
    alice.groups = vec!["ops".into(), "unrelated".into()];
    alice.eligible_roles = vec!["global-administrator".into()];
    let d = c.what_if(&ctx(alice.clone()), t0());
    assert_eq!(
        applying(&d),
        [
            "all",
            "members",
            "user:alice",
            "group:ops",
            "role:global-administrator"
        ]
    );
    assert_eq!(
        verdict(&d, "guests"),
        &Verdict::NotIncluded(ConditionKind::Principals)
    );

    alice.eligible_roles.clear();
    alice.active_roles = vec!["global-administrator".into()];
    let d = c.what_if(&ctx(alice), t0());
    assert!(applying(&d).contains(&"active_role:global-administrator"));
    assert!(applying(&d).contains(&"role:global-administrator"));

    let guest = Subject {
        kind: SubjectKind::Guest,
        ..member("bob")
    };
    assert_eq!(applying(&c.what_if(&ctx(guest), t0())), ["all", "guests"]);

    // `all` means every user: a service account is matched only as one.
    let daemon = Subject {
        kind: SubjectKind::ServiceAccount,
        ..member("payroll")
    };
    assert_eq!(
        applying(&c.what_if(&ctx(daemon), t0())),
        ["service_accounts", "service_account:payroll"]
    );
    // A user named like a service account is not it, and vice versa.
    assert!(
        !applying(&c.what_if(&ctx(member("payroll")), t0())).contains(&"service_account:payroll")
    );
}

#[test]
fn locations_match_ipv4_ipv6_and_mapped_ipv4() {
    let c = compile(&[
        policy(json!({"name": "in office", "state": "enabled",
            "conditions": {"principals": {"include": ["all"]}, "locations": {"include": ["office"]}},
            "grant": {"require": "mfa"}})),
        policy(json!({"name": "outside office", "state": "enabled",
            "conditions": {"principals": {"include": ["all"]},
                           "locations": {"include": ["any"], "exclude": ["office"]}},
            "grant": {"block": true}})),
    ]);
    let at = |addr: &str| {
        let d = c.what_if(
            &SignInContext {
                ip: ip(addr),
                ..ctx(member("alice"))
            },
            t0(),
        );
        applying(&d)
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    for inside in [
        "192.0.2.10",
        "2001:db8:1::5",
        "2001:db8:1:ffff::1",
        "::ffff:192.0.2.10",
    ] {
        assert_eq!(at(inside), ["in office"], "{inside}");
    }
    for outside in [
        "192.0.3.1",
        "10.0.0.1",
        "2001:db8:2::1",
        "::ffff:192.0.3.1",
        "::1",
    ] {
        assert_eq!(at(outside), ["outside office"], "{outside}");
    }
    let d = c.what_if(
        &SignInContext {
            ip: ip("192.0.2.10"),
            ..ctx(member("alice"))
        },
        t0(),
    );
    assert_eq!(
        verdict(&d, "outside office"),
        &Verdict::Excluded {
            condition: ConditionKind::Locations,
            entry: Arc::from("office")
        }
    );
}

#[test]
fn trusted_and_untrusted_locations() {
    let c = compile(&[
        policy(json!({"name": "trusted", "state": "enabled",
            "conditions": {"principals": {"include": ["all"]}, "locations": {"include": ["trusted"]}},
            "grant": {"require": "mfa"}})),
        policy(json!({"name": "untrusted", "state": "enabled",
            "conditions": {"principals": {"include": ["all"]}, "locations": {"include": ["untrusted"]}},
            "grant": {"require": "mfa"}})),
        policy(json!({"name": "any but trusted", "state": "enabled",
            "conditions": {"principals": {"include": ["all"]},
                           "locations": {"include": ["any"], "exclude": ["trusted"]}},
            "grant": {"require": "mfa"}})),
    ]);
    let at = |addr: &str| {
        let d = c.what_if(
            &SignInContext {
                ip: ip(addr),
                ..ctx(member("alice"))
            },
            t0(),
        );
        applying(&d)
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(at("192.0.2.1"), ["trusted"]);
    assert_eq!(at("2001:db8:1::1"), ["trusted"]);
    // Inside a named location that is not trusted, and outside every location.
    assert_eq!(at("198.51.100.7"), ["untrusted", "any but trusted"]);
    assert_eq!(at("203.0.113.1"), ["untrusted", "any but trusted"]);
}

#[test]
fn applications_match() {
    let c = compile(&[
        policy(json!({"name": "cli", "state": "enabled",
            "conditions": {"principals": {"include": ["all"]}, "applications": {"include": ["cli"]}},
            "grant": {"require": "mfa"}})),
        policy(json!({"name": "api", "state": "enabled",
            "conditions": {"principals": {"include": ["all"]}, "applications": {"include": ["api"]}},
            "grant": {"require": "mfa"}})),
        policy(json!({"name": "wiki", "state": "enabled",
            "conditions": {"principals": {"include": ["all"]},
                           "applications": {"include": ["client:pcc_wiki"]}},
            "grant": {"require": "mfa"}})),
        policy(json!({"name": "all but cli", "state": "enabled",
            "conditions": {"principals": {"include": ["all"]},
                           "applications": {"include": ["all"], "exclude": ["cli"]}},
            "grant": {"require": "mfa"}})),
    ]);
    let at = |app: Application| {
        let d = c.what_if(
            &SignInContext {
                application: app,
                ..ctx(member("alice"))
            },
            t0(),
        );
        applying(&d)
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(at(Application::Cli), ["cli"]);
    assert_eq!(at(Application::Api), ["api", "all but cli"]);
    assert_eq!(
        at(Application::Client("pcc_wiki".into())),
        ["wiki", "all but cli"]
    );
    assert_eq!(at(Application::Client("pcc_other".into())), ["all but cli"]);
    let d = c.what_if(&ctx(member("alice")), t0());
    assert_eq!(
        verdict(&d, "api"),
        &Verdict::NotIncluded(ConditionKind::Applications)
    );
}

#[test]
fn strength_condition_matches_the_presented_strength() {
    let c = compile(&[policy(
        json!({"name": "no passwords from outside", "state": "enabled",
        "conditions": {"principals": {"include": ["all"]},
                       "locations": {"include": ["untrusted"]},
                       "strengths": {"include": ["password"]}},
        "grant": {"block": true}}),
    )]);
    let at = |strength, addr: &str| {
        c.what_if(
            &SignInContext {
                strength,
                ip: ip(addr),
                ..ctx(member("alice"))
            },
            t0(),
        )
    };
    assert!(!at(AuthStrength::Password, "203.0.113.1").outcome.is_allow());
    assert!(at(AuthStrength::Password, "192.0.2.1").outcome.is_allow());
    let d = at(AuthStrength::Mfa, "203.0.113.1");
    assert!(d.outcome.is_allow());
    assert_eq!(
        verdict(&d, "no passwords from outside"),
        &Verdict::NotIncluded(ConditionKind::Strengths)
    );
    let with_exclude = spec(json!({"name": "x", "state": "enabled",
        "conditions": {"principals": {"include": ["all"]},
                       "strengths": {"include": ["password"], "exclude": ["mfa"]}},
        "grant": {"block": true}}));
    assert!(
        Policy::from_spec(&with_exclude)
            .expect_err("refused")
            .to_string()
            .contains("strengths take no exclude")
    );
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
fn break_glass_accounts_are_excluded_by_construction() {
    let c = compile(&[
        simple("block everyone", &["all"], json!({"block": true})),
        simple("block sos by name", &["user:sos-1"], json!({"block": true})),
        simple(
            "pr for admins",
            &["role:global-administrator"],
            json!({"require": "phishing_resistant"}),
        ),
    ]);
    let mut sos = member("sos-1");
    sos.active_roles = vec!["global-administrator".into()];
    let ordinary = c.what_if(&ctx(sos.clone()), t0());
    assert_eq!(
        names(ordinary.outcome.policies()),
        ["block everyone", "block sos by name"],
        "the policies would apply to the same account were it not break-glass"
    );

    sos.emergency = true;
    let d = c.what_if(&ctx(sos), t0());
    assert_eq!(d.outcome, Outcome::Allow);
    assert!(d.break_glass);
    assert_eq!(d.note, Some(BREAK_GLASS_EXPLANATION));
    assert_eq!(d.explanation.len(), 3);
    assert!(
        d.explanation
            .iter()
            .all(|e| e.verdict == Verdict::BreakGlass)
    );
    let v = serde_json::to_value(&d).expect("json");
    assert_eq!(v["outcome"], "allow");
    assert_eq!(
        v["explanation"][0]["reason"],
        "break-glass account: excluded from every policy"
    );
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

// --- lockout guard ---------------------------------------------------------------------

fn admin(name: &str, active: bool, strongest: AuthStrength) -> AccountProfile {
    let mut s = member(name);
    if active {
        s.active_roles = vec!["global-administrator".into()];
    } else {
        s.eligible_roles = vec!["global-administrator".into()];
    }
    AccountProfile {
        subject: s,
        strongest,
    }
}

fn sos() -> AccountProfile {
    let mut a = admin("sos-1", true, AuthStrength::PhishingResistant);
    a.subject.emergency = true;
    a
}

fn admins() -> Vec<AccountProfile> {
    vec![
        admin("alice", true, AuthStrength::Mfa),
        admin("bob", false, AuthStrength::PhishingResistant),
        sos(),
    ]
}

fn caller() -> AccountProfile {
    AccountProfile {
        subject: Subject {
            groups: vec!["helpdesk".into()],
            ..member("carol")
        },
        strongest: AuthStrength::Mfa,
    }
}

fn guard(ps: &[Policy], locs: &[NamedLocation]) -> Result<(), LockoutError> {
    let c = CompiledPolicies::compile(ps, locs).expect("compile");
    check_lockout(&c, &["pcc_wiki".into()], &admins(), &caller())
}

#[test]
fn lockout_guard_refuses_when_no_global_administrator_can_sign_in() {
    let e = guard(
        &[simple(
            "Block admins",
            &["role:global-administrator"],
            json!({"block": true}),
        )],
        &locations(),
    )
    .expect_err("refused");
    assert_eq!(
        e,
        LockoutError::NoGlobalAdministrator {
            accounts: vec!["alice".into(), "bob".into()],
            policies: vec!["Block admins".into()],
        }
    );
    assert!(!e.forcible());
    let text = e.to_string();
    assert!(
        text.contains("alice, bob") && text.contains("Block admins"),
        "{text}"
    );
    assert!(
        !text.contains("sos-1"),
        "break-glass accounts are not considered"
    );
}

#[test]
fn lockout_guard_refuses_a_block_everyone_policy() {
    let e = guard(
        &[simple("Block everyone", &["all"], json!({"block": true}))],
        &[],
    )
    .expect_err("refused");
    assert!(
        matches!(e, LockoutError::NoGlobalAdministrator { ref policies, .. }
        if policies == &["Block everyone".to_owned()])
    );
    // And a policy with no conditions at all never gets this far.
    let spec: PolicySpec = serde_json::from_value(
        json!({"name": "Block everything", "state": "enabled", "grant": {"block": true}}),
    )
    .expect("spec");
    let err = Policy::from_spec(&spec).expect_err("refused").to_string();
    assert!(
        err.contains("conditions must name at least principals"),
        "{err}"
    );
}

#[test]
fn lockout_guard_considers_the_strongest_factor_each_admin_has() {
    let pr = simple(
        "PR for admins",
        &["role:global-administrator"],
        json!({"require": "phishing_resistant"}),
    );
    // bob has a security key: fine.
    assert_eq!(guard(std::slice::from_ref(&pr), &locations()), Ok(()));
    // alice alone has only TOTP.
    let c = CompiledPolicies::compile(std::slice::from_ref(&pr), &locations()).expect("c");
    let e = check_lockout(
        &c,
        &[],
        &[admin("alice", true, AuthStrength::Mfa)],
        &caller(),
    )
    .expect_err("refused");
    assert_eq!(
        e,
        LockoutError::NoGlobalAdministrator {
            accounts: vec!["alice".into()],
            policies: vec!["PR for admins".into()],
        }
    );
}

#[test]
fn lockout_guard_finds_the_one_network_or_application_left() {
    // Blocked everywhere except from the office.
    let outside = policy(
        json!({"name": "Block admins outside the office", "state": "enabled",
        "conditions": {"principals": {"include": ["role:global-administrator"]},
                       "locations": {"include": ["any"], "exclude": ["office"]}},
        "grant": {"block": true}}),
    );
    assert_eq!(guard(std::slice::from_ref(&outside), &locations()), Ok(()));
    // Blocked everywhere but in the trusted range nested inside an untrusted one.
    let nested = vec![
        NamedLocation::parse("campus", &["10.0.0.0/8"], false).expect("campus"),
        NamedLocation::parse("soc", &["10.1.0.0/16"], true).expect("soc"),
    ];
    let but_trusted = policy(json!({"name": "Only from trusted", "state": "enabled",
        "conditions": {"principals": {"include": ["all"]},
                       "locations": {"include": ["any"], "exclude": ["trusted"]}},
        "grant": {"block": true}}));
    assert_eq!(guard(std::slice::from_ref(&but_trusted), &nested), Ok(()));
    // With no trusted location at all it locks everyone out.
    assert!(guard(std::slice::from_ref(&but_trusted), &locations()[1..]).is_err());
    // Every IPv4 address blocked: IPv6 outside every location is still open.
    let v4 = vec![NamedLocation::parse("ipv4", &["0.0.0.0/0"], false).expect("v4")];
    let no_v4 = policy(json!({"name": "No IPv4", "state": "enabled",
        "conditions": {"principals": {"include": ["all"]}, "locations": {"include": ["ipv4"]}},
        "grant": {"block": true}}));
    assert_eq!(guard(std::slice::from_ref(&no_v4), &v4), Ok(()));
    // Everything blocked but one registered client.
    let but_wiki = policy(json!({"name": "Only the wiki", "state": "enabled",
        "conditions": {"principals": {"include": ["all"]},
                       "applications": {"include": ["all"], "exclude": ["client:pcc_wiki"]}},
        "grant": {"block": true}}));
    assert_eq!(guard(std::slice::from_ref(&but_wiki), &locations()), Ok(()));
    // Report-only and disabled policies lock nobody out.
    let trial =
        simple("Block all", &["all"], json!({"block": true})).with_state(PolicyState::ReportOnly);
    assert_eq!(
        guard(
            &[trial.clone().with_state(PolicyState::Disabled), trial],
            &[]
        ),
        Ok(())
    );
}

#[test]
fn probe_addresses_cover_each_location_and_the_outside() {
    let c = CompiledPolicies::compile(&[], &locations()).expect("compile");
    let probes = c.probe_addresses();
    for l in locations() {
        assert!(probes.iter().any(|p| l.contains(*p)), "{}", l.name());
    }
    let outside = |v6: bool| {
        probes
            .iter()
            .any(|p| p.is_ipv6() == v6 && locations().iter().all(|l| !l.contains(*p)))
    };
    assert!(outside(false) && outside(true));
    assert!(probes.contains(&ip("2001:db8:1::")) && probes.contains(&ip("2001:db8:2::")));
}

#[test]
fn lockout_guard_refuses_a_caller_lockout_as_forcible() {
    let e = guard(
        &[simple(
            "Block helpdesk",
            &["group:helpdesk"],
            json!({"block": true}),
        )],
        &locations(),
    )
    .expect_err("refused");
    assert_eq!(
        e,
        LockoutError::CallerLockedOut {
            account: "carol".into(),
            policies: vec!["Block helpdesk".into()],
        }
    );
    assert!(e.forcible());
    assert!(e.to_string().contains("you (carol)"));
    // A break-glass caller is never locked out.
    let c = CompiledPolicies::compile(
        &[simple("Block everyone", &["all"], json!({"block": true}))],
        &[],
    )
    .expect("compile");
    assert_eq!(check_lockout(&c, &[], &[], &sos()), Ok(()));
    // When both happen, the unforcible one is reported.
    assert!(matches!(
        check_lockout(&c, &[], &admins(), &caller()),
        Err(LockoutError::NoGlobalAdministrator { .. })
    ));
}

// --- privilege rules 4 and 10, authentication flows -------------------------------------

/// Rule 10: a role counts where it is held at `/` only; one held at a target or an
/// application matches neither `role:` nor `active_role:`.
#[test]
fn a_role_held_below_the_tenant_matches_no_role_condition() {
    let c = compile(&[
        simple("GA", &["role:global-administrator"], json!({"block": true})),
        simple(
            "active DBA",
            &["active_role:db-operator"],
            json!({"block": true}),
        ),
    ]);
    let lab = member("lab-admin").with_roles([
        RoleHolding {
            role: "global-administrator",
            scope: "/targets/lab",
            active: false,
        },
        RoleHolding {
            role: "db-operator",
            scope: "/apps/billing",
            active: true,
        },
    ]);
    assert!(lab.active_roles.is_empty() && lab.eligible_roles.is_empty());
    assert!(!lab.holds("global-administrator"));
    assert_eq!(c.what_if(&ctx(lab), t0()).outcome, Outcome::Allow);
    let tenant = member("ada").with_roles([
        RoleHolding {
            role: "global-administrator",
            scope: "/",
            active: false,
        },
        RoleHolding {
            role: "db-operator",
            scope: "/",
            active: true,
        },
        RoleHolding {
            role: "db-operator",
            scope: "/targets/lab",
            active: true,
        },
    ]);
    assert_eq!(tenant.eligible_roles, ["global-administrator"]);
    assert_eq!(tenant.active_roles, ["db-operator"]);
    assert_eq!(
        names(c.what_if(&ctx(tenant), t0()).outcome.policies()),
        ["GA", "active DBA"]
    );
}

/// Finding 8: a Global Administrator eligible only at `/targets/lab` does not keep a
/// policy that blocks every tenant-wide Global Administrator from being refused.
#[test]
fn lockout_guard_does_not_count_a_global_administrator_held_at_a_target() {
    let ada = AccountProfile {
        subject: member("ada").with_roles([RoleHolding {
            role: "global-administrator",
            scope: "/",
            active: true,
        }]),
        strongest: AuthStrength::PhishingResistant,
    };
    let lab_ga = AccountProfile {
        subject: member("bob").with_roles([RoleHolding {
            role: "global-administrator",
            scope: "/targets/lab",
            active: false,
        }]),
        strongest: AuthStrength::PhishingResistant,
    };
    let c = compile(&[policy(
        json!({"name": "everyone but bob", "state": "enabled",
        "conditions": {"principals": {"include": ["all"], "exclude": ["user:bob"]}},
        "grant": {"block": true}}),
    )]);
    // bob is handed over as a candidate (he holds a Global Administrator assignment) but
    // is not counted: only ada is, and she is blocked.
    assert_eq!(
        check_lockout(&c, &[], &[ada, lab_ga], &caller()),
        Err(LockoutError::NoGlobalAdministrator {
            accounts: vec!["ada".into()],
            policies: vec!["everyone but bob".into()],
        })
    );
}

/// Rule 4: membership of an ordinary group never excludes anyone (a stored policy from
/// before the rule): the policy applies, and what-if says which exclusion was ignored.
#[test]
fn an_ordinary_exclusion_group_does_not_exclude() {
    let c = compile(&[policy(
        json!({"name": "block but helpdesk", "state": "enabled",
        "conditions": {"principals": {"include": ["all"], "exclude": ["group:helpdesk-staff"]}},
        "grant": {"block": true}}),
    )]);
    let mut alice = member("alice");
    alice.groups = vec!["helpdesk-staff".into()];
    let d = c.what_if(&ctx(alice.clone()), t0());
    assert_eq!(names(d.outcome.policies()), ["block but helpdesk"]);
    assert_eq!(
        c.evaluate(&ctx(alice.clone()), t0()).outcome,
        d.outcome,
        "enforced as explained"
    );
    let e = &d.explanation[0];
    assert_eq!(
        e.ignored_exclusions,
        [Arc::<str>::from("group:helpdesk-staff")]
    );
    assert!(
        e.reason()
            .contains("group:helpdesk-staff not applied: not a role-assignable group"),
        "{}",
        e.reason()
    );
    let v = serde_json::to_value(&d).expect("json");
    assert_eq!(
        v["explanation"][0]["ignored_exclusions"],
        json!(["group:helpdesk-staff"])
    );
    // A member of the same group when it is role-assignable is excluded.
    alice.role_assignable_groups = vec!["helpdesk-staff".into()];
    let d = c.what_if(&ctx(alice), t0());
    assert_eq!(d.outcome, Outcome::Allow);
    assert!(d.explanation[0].ignored_exclusions.is_empty());
    assert!(
        serde_json::to_value(&d).expect("json")["explanation"][0]
            .get("ignored_exclusions")
            .is_none()
    );
}

/// Rule 4 at import: an ordinary group in `principals.exclude` is refused with the reason;
/// included it is fine; a stored policy excluding one does not block other changes.
#[test]
fn validation_refuses_an_ordinary_exclusion_group() {
    let ordinary = spec(json!({"name": "p", "state": "enabled",
        "conditions": {"principals": {"include": ["all"], "exclude": ["group:helpdesk-staff"]}},
        "grant": {"block": true}}));
    let e = validate_policies(std::slice::from_ref(&ordinary), &known())
        .expect_err("refused")
        .to_string();
    assert!(
        e.contains("principals.exclude: group \"helpdesk-staff\" is not role-assignable"),
        "{e}"
    );
    let included = spec(json!({"name": "q", "state": "enabled",
        "conditions": {"principals": {"include": ["group:helpdesk-staff"], "exclude": ["group:approvers"]}},
        "grant": {"require": "mfa"}}));
    assert!(validate_policies(std::slice::from_ref(&included), &known()).is_ok());
    // Kept as stored: accepted alongside a new policy; written anew: refused.
    let both = validate_change(
        std::slice::from_ref(&included),
        std::slice::from_ref(&ordinary),
        &known(),
    )
    .expect("a stored policy does not block the change");
    assert_eq!(
        both.iter().map(Policy::name).collect::<Vec<_>>(),
        ["q", "p"]
    );
    let e = validate_change(
        std::slice::from_ref(&ordinary),
        std::slice::from_ref(&included),
        &known(),
    )
    .expect_err("refused");
    assert_eq!(e.problems.len(), 1, "{e}");
    assert_eq!(e.problems[0].index, Some(0));
}

/// Rule 8: `authentication_flows: {include: [device_code]}` matches the device flow only.
#[test]
fn authentication_flows_match_the_device_flow_only() {
    let c = compile(&[policy(
        json!({"name": "no device flow for admins", "state": "enabled",
        "conditions": {"principals": {"include": ["role:global-administrator"]},
                       "authentication_flows": {"include": ["device_code"]}},
        "grant": {"block": true}}),
    )]);
    let ga = member("ada").with_roles([RoleHolding {
        role: "global-administrator",
        scope: "/",
        active: true,
    }]);
    let device = SignInContext {
        flow: Some(AuthenticationFlow::DeviceCode),
        ..ctx(ga.clone())
    };
    assert_eq!(
        names(c.what_if(&device, t0()).outcome.policies()),
        ["no device flow for admins"]
    );
    let api = SignInContext {
        application: Application::Api,
        strength: AuthStrength::Mfa,
        ..ctx(ga)
    };
    let d = c.what_if(&api, t0());
    assert_eq!(d.outcome, Outcome::Allow);
    assert_eq!(
        verdict(&d, "no device flow for admins"),
        &Verdict::NotIncluded(ConditionKind::AuthenticationFlows)
    );
    assert_eq!(
        d.explanation[0].reason(),
        "authentication_flows: the sign-in does not use an included flow"
    );
    // The context carries the flow in its serialised form (what-if input).
    let v = serde_json::to_value(&device).expect("json");
    assert_eq!(v["flow"], "device_code");
    assert_eq!(
        serde_json::from_value::<SignInContext>(v).expect("back"),
        device
    );
    // Malformed: an unknown flow, an exclude, nothing included.
    for (flows, needle) in [
        (
            json!({"include": ["magic_link"]}),
            "not an authentication flow",
        ),
        (
            json!({"include": ["device_code"], "exclude": ["device_code"]}),
            "take no exclude",
        ),
        (
            json!({"include": []}),
            "authentication_flows.include must name",
        ),
    ] {
        let e = Policy::from_spec(&spec(json!({"name": "f", "state": "enabled",
            "conditions": {"principals": {"include": ["all"]}, "authentication_flows": flows},
            "grant": {"block": true}})))
        .expect_err("refused")
        .to_string();
        assert!(e.contains(needle), "{needle:?} not in {e}");
    }
}

/// The guard probes each application by the flow that reaches it: blocking only the device
/// flow leaves the API sign-in (no lock-out); blocking the API and, separately, the device
/// flow leaves nothing.
#[test]
fn lockout_guard_probes_the_device_flow_and_the_api_sign_in() {
    let no_device = policy(json!({"name": "no device flow", "state": "enabled",
        "conditions": {"principals": {"include": ["role:global-administrator"]},
                       "authentication_flows": {"include": ["device_code"]}},
        "grant": {"block": true}}));
    let no_api = policy(json!({"name": "no api", "state": "enabled",
        "conditions": {"principals": {"include": ["role:global-administrator"]},
                       "applications": {"include": ["api"]}},
        "grant": {"block": true}}));
    let guard = |ps: &[Policy]| {
        let c = CompiledPolicies::compile(ps, &[]).expect("compile");
        check_lockout(&c, &[], &admins(), &caller())
    };
    assert_eq!(guard(std::slice::from_ref(&no_device)), Ok(()));
    assert_eq!(
        guard(std::slice::from_ref(&no_api)),
        Ok(()),
        "the CLI is left"
    );
    assert_eq!(
        guard(&[no_device, no_api]),
        Err(LockoutError::NoGlobalAdministrator {
            accounts: vec!["alice".into(), "bob".into()],
            policies: vec!["no api".into(), "no device flow".into()],
        })
    );
}

// --- validation, named locations --------------------------------------------------------

fn known() -> KnownNames {
    let set = |xs: &[&str]| xs.iter().map(|s| (*s).to_owned()).collect();
    KnownNames {
        users: set(&["alice", "bob"]),
        service_accounts: set(&["payroll"]),
        groups: set(&["approvers", "admins", "helpdesk-staff"]),
        role_assignable_groups: set(&["approvers", "admins"]),
        roles: set(&["db-operator"]),
        clients: set(&["pcc_wiki"]),
        locations: set(&["office"]),
    }
}

fn spec(v: serde_json::Value) -> PolicySpec {
    serde_json::from_value(v).expect("spec")
}

#[test]
fn validation_lists_every_unknown_name_at_once() {
    let e = validate_policies(
        &[spec(json!({"name": "p", "state": "enabled",
            "conditions": {
                "principals": {"include": ["user:ghost", "group:nobody", "role:made-up",
                                           "service_account:cron", "user:alice",
                                           "role:global-administrator", "role:db-operator"],
                               "exclude": ["group:aprovers"]},
                "applications": {"include": ["client:pcc_gone", "cli"]},
                "locations": {"include": ["nowhere", "office"]}},
            "grant": {"block": true}}))],
        &known(),
    )
    .expect_err("refused");
    assert_eq!(e.problems.len(), 7, "{e}");
    let text = e.to_string();
    for needle in [
        "unknown user \"ghost\"",
        "unknown group \"nobody\"",
        "unknown role \"made-up\"",
        "unknown service account \"cron\"",
        "unknown group \"aprovers\"",
        "unknown client \"pcc_gone\"",
        "unknown named location \"nowhere\"",
        "policy #1 \"p\"",
    ] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
}

#[test]
fn validation_reports_every_malformed_entry_at_once() {
    let e = validate_policies(
        &[
            spec(json!({"name": " ", "state": "on",
                "conditions": {
                    "principals": {"include": ["group:Bad Name", "wizard", "all"],
                                   "exclude": ["all"]},
                    "applications": {"include": ["desktop", "cli", "cli"]},
                    "locations": {"include": []},
                    "strengths": {"include": ["strong"]}},
                "grant": {"require": "password"},
                "session": {"sign_in_frequency_hours": 0}})),
            spec(json!({"name": "no conditions", "state": "enabled", "grant": {"block": false}})),
            spec(json!({"name": "no controls", "state": "enabled",
                "conditions": {"principals": {"include": ["all"]}}})),
        ],
        &known(),
    )
    .expect_err("refused");
    let text = e.to_string();
    for needle in [
        "name must not be empty",
        "state \"on\" is not one of enabled, report_only, disabled",
        "\"group:Bad Name\": group name",
        "\"wizard\" is not a principal",
        "\"all\" stands alone",
        "principals.exclude must not contain \"all\"",
        "\"desktop\" is not an application",
        "\"cli\" is listed more than once",
        "locations.include must name at least one entry (\"any\" for every one)",
        "\"strong\" is not a strength",
        "grant.require \"password\" is not one of mfa, phishing_resistant",
        "sign_in_frequency_hours must be between 1 and 8760, not 0",
        "policy #2 \"no conditions\": conditions must name at least principals",
        "\"block\": false is not a control",
        "policy #3 \"no controls\": a policy needs a grant control",
    ] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
}

#[test]
fn duplicate_names_in_an_import_are_refused() {
    let text = r#"[
            {"name": "Require MFA", "state": "enabled",
             "conditions": {"principals": {"include": ["all"]}}, "grant": {"require": "mfa"}},
            {"name": "require mfa", "state": "disabled",
             "conditions": {"principals": {"include": ["all"]}}, "grant": {"require": "mfa"}}
        ]"#;
    let e = import_policies(text, PolicyFormat::Json, &known()).expect_err("refused");
    let ImportError::Invalid(e) = e else {
        panic!("{e:?}")
    };
    assert_eq!(e.problems.len(), 1);
    assert_eq!(e.problems[0].index, Some(1));
    assert!(e.problems[0].message.contains("already used by policy #1"));
}

#[test]
fn unknown_fields_are_refused_in_json_and_yaml() {
    let json_text = r#"[
            {"name": "a", "state": "enabled", "colour": "red",
             "conditions": {"principals": {"include": ["all"]}}, "grant": {"block": true}},
            {"name": "b", "state": "enabled",
             "conditions": {"principal": {"include": ["all"]}}, "grant": {"block": true}}
        ]"#;
    let e = import_policies(json_text, PolicyFormat::Json, &known())
        .expect_err("refused")
        .to_string();
    assert!(e.contains("policy #1 \"a\": unknown field `colour`"), "{e}");
    assert!(
        e.contains("policy #2 \"b\": unknown field `principal`"),
        "{e}"
    );

    let yaml_text = "
- name: a
  state: enabled
  conditions:
    principals:
      include: [all]
      exclude_all: true
  grant:
    block: true
";
    let e = import_policies(yaml_text, PolicyFormat::Yaml, &known())
        .expect_err("refused")
        .to_string();
    assert!(e.contains("unknown field `exclude_all`"), "{e}");
    let e = parse_policy_specs("name: a\nstate: enabled\ngrnt: {}\n", PolicyFormat::Yaml)
        .expect_err("refused")
        .to_string();
    assert!(e.contains("unknown field `grnt`"), "{e}");
}

#[test]
fn syntax_errors_and_shapes() {
    assert!(matches!(
        import_policies("{", PolicyFormat::Json, &known()),
        Err(ImportError::Syntax { .. })
    ));
    assert!(matches!(
        import_policies("42", PolicyFormat::Json, &known()),
        Err(ImportError::Syntax { .. })
    ));
    assert!(matches!(
        import_policies("- [unclosed", PolicyFormat::Yaml, &known()),
        Err(ImportError::Syntax { .. })
    ));
    let one = "name: One\nstate: enabled\nconditions:\n  principals:\n    include: [all]\ngrant:\n  require: mfa\n";
    let ps = import_policies(one, PolicyFormat::Yaml, &known()).expect("one");
    assert_eq!(ps.len(), 1);
    assert_eq!(
        ps[0].grant(),
        Some(GrantControl::Require(AuthStrength::Mfa))
    );
    assert_eq!(PolicyFormat::detect(" [ ]"), PolicyFormat::Json);
    assert_eq!(PolicyFormat::detect(one), PolicyFormat::Yaml);
    assert_eq!(
        PolicyFormat::from_extension("YML"),
        Some(PolicyFormat::Yaml)
    );
}

proptest::proptest! {
    /// Any text in any field: no panic, and whatever is accepted round-trips.
    #[test]
    fn arbitrary_entries_never_panic_and_accepted_ones_round_trip(
        state in "(enabled|report_only|disabled|[a-z_]{0,12})",
        principals in proptest::collection::vec(
            "(all|guests|members|service_accounts|(user|group|role|active_role|service_account|x):[a-z.\\-_A-Z0-9 ]{0,8})", 0..4),
        apps in proptest::collection::vec("(all|cli|api|client:[a-zA-Z0-9_.:\\- ]{0,6}|[a-z]{0,4})", 0..3),
        locs in proptest::collection::vec("(any|trusted|untrusted|[a-z\\-]{0,6}|[A-Z ]{0,3})", 0..3),
        require in "(mfa|phishing_resistant|password|[a-z]{0,5})",
        hours in proptest::option::of(0u32..10_000),
        flows in proptest::option::of(proptest::collection::vec("(device_code|[a-z_]{0,12})", 0..3)),
    ) {
        let spec = PolicySpec {
            name: "p".into(),
            description: None,
            state,
            conditions: Some(ConditionsSpec {
                principals: Some(SelectionSpec { include: principals, exclude: Vec::new() }),
                applications: Some(SelectionSpec { include: apps, exclude: Vec::new() }),
                locations: Some(SelectionSpec { include: locs, exclude: Vec::new() }),
                strengths: None,
                authentication_flows: flows.map(|include| SelectionSpec { include, exclude: Vec::new() }),
            }),
            grant: Some(GrantSpec { block: None, require: Some(require) }),
            session: hours.map(|h| SessionSpec { sign_in_frequency_hours: Some(h) }),
        };
        if let Ok(p) = Policy::from_spec(&spec) {
            proptest::prop_assert_eq!(Policy::from_spec(&p.to_spec()), Ok(p));
        }
    }
}

#[test]
fn the_documented_yaml_example_imports() {
    let yaml = "- name: Block admins outside the office
  state: enabled
  conditions:
    principals: {include: [role:global-administrator], exclude: [group:approvers]}
    locations: {include: [any], exclude: [office]}
  grant: {block: true}
";
    let ps = import_policies(yaml, PolicyFormat::Yaml, &known()).expect("valid");
    assert_eq!(ps[0].grant(), Some(GrantControl::Block));
    assert_eq!(
        ps[0].conditions().principals.exclude,
        [PrincipalRef::Group(
            PrincipalName::parse("g", "approvers").expect("name")
        )]
    );
}

fn rich_policies() -> Vec<Policy> {
    let text = r#"[
          {"name": "Block admins outside the office", "state": "enabled",
           "description": "Admins sign in from the office only.",
           "conditions": {"principals": {"include": ["role:global-administrator", "active_role:db-operator"],
                                         "exclude": ["group:approvers", "user:bob"]},
                          "applications": {"include": ["all"], "exclude": ["client:pcc_wiki"]},
                          "locations": {"include": ["any"], "exclude": ["office", "trusted"]},
                          "strengths": {"include": ["password", "mfa"]}},
           "grant": {"block": true}},
          {"name": "MFA for guests", "state": "report_only",
           "conditions": {"principals": {"include": ["guests", "service_account:payroll"]},
                          "applications": {"include": ["cli", "api"]},
                          "locations": {"include": ["untrusted"]},
                          "authentication_flows": {"include": ["device_code"]}},
           "grant": {"require": "phishing_resistant"},
           "session": {"sign_in_frequency_hours": 8}},
          {"name": "Daily re-auth", "state": "disabled",
           "conditions": {"principals": {"include": ["all"]}},
           "session": {"sign_in_frequency_hours": 24}}
        ]"#;
    import_policies(text, PolicyFormat::Json, &known()).expect("valid")
}

#[test]
fn export_reimports_identically() {
    let policies = rich_policies();
    for format in [PolicyFormat::Json, PolicyFormat::Yaml] {
        let text = export_policies(&policies, format).expect("export");
        let again = import_policies(&text, format, &known()).expect("re-import");
        assert_eq!(again, policies, "{format}");
        assert_eq!(export_policies(&again, format).expect("export"), text);
    }
    // A Policy serialises as its file form and deserialises through validation.
    let v = serde_json::to_value(&policies[0]).expect("json");
    assert_eq!(v["grant"], json!({"block": true}));
    assert_eq!(
        serde_json::from_value::<Policy>(v).expect("back"),
        policies[0]
    );
    assert!(
        serde_json::from_value::<Policy>(json!({"name": "x", "state": "maybe",
        "conditions": {"principals": {"include": ["all"]}}, "grant": {"block": true}}))
        .is_err()
    );
}

#[test]
fn named_locations_are_validated_and_references_found() {
    let e = NamedLocation::parse("Office", &["10.0.0.1/8", "x"], true)
        .expect_err("refused")
        .to_string();
    assert!(
        e.contains("location name must start with a lowercase letter"),
        "{e}"
    );
    assert!(
        e.contains("did you mean 10.0.0.0/8") && e.contains("\"x\""),
        "{e}"
    );
    let empty: [&str; 0] = [];
    assert!(NamedLocation::parse("nowhere", &empty, false).is_err());
    assert!(NamedLocation::parse("trusted", &["10.0.0.0/8"], false).is_err());
    let l: NamedLocation =
        serde_json::from_value(json!({"name": "lab", "cidrs": ["10.2.0.0/16"], "trusted": true}))
            .expect("location");
    assert!(l.trusted() && l.contains(ip("::ffff:10.2.3.4")) && !l.contains(ip("10.3.0.1")));
    assert!(
        serde_json::from_value::<NamedLocation>(json!({"name": "lab", "cidrs": [], "extra": 1}))
            .is_err()
    );

    let policies = rich_policies();
    assert_eq!(
        policies_referencing_location(&policies, "office"),
        ["Block admins outside the office"]
    );
    assert!(policies_referencing_location(&policies, "partner-vpn").is_empty());

    let e = CompiledPolicies::compile(&policies, &[]).expect_err("unknown location");
    assert!(e.to_string().contains("unknown location \"office\""), "{e}");
    let twice = [locations()[0].clone(), locations()[0].clone()];
    assert!(CompiledPolicies::compile(&[], &twice).is_err());
}

#[test]
fn context_and_application_serde() {
    let c: SignInContext = serde_json::from_value(json!({
        "subject": {"kind": "guest", "name": "eve", "groups": ["partners"]},
        "application": "client:pcc_wiki",
        "ip": "2001:db8::1",
        "strength": "mfa",
        "authenticated_at": "2026-01-01T10:00:00Z"
    }))
    .expect("context");
    assert_eq!(c.application, Application::Client("pcc_wiki".into()));
    assert!(c.authenticated_at.is_some());
    assert!(Application::parse("all").is_err());
    assert!(Application::parse("client:").is_err());
    assert_eq!(serde_json::to_value(Application::Cli).expect("json"), "cli");
}
