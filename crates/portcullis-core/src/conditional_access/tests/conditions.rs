//! Each condition on its own: principals (include and exclude), locations, applications,
//! strengths, and break-glass accounts excluded by construction.

use super::*;

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
