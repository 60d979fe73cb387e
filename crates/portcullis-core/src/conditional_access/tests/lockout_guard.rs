//! The lockout guard: no policy change may leave every Global Administrator, or the caller,
//! unable to sign in.

use super::*;

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

pub(super) fn admins() -> Vec<AccountProfile> {
    vec![
        admin("alice", true, AuthStrength::Mfa),
        admin("bob", false, AuthStrength::PhishingResistant),
        sos(),
    ]
}

pub(super) fn caller() -> AccountProfile {
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
