//! Validation of policy files: every unknown name and malformed entry reported at once,
//! duplicates and unknown fields refused, and arbitrary input never panics.

use super::*;

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
