//! Import and export: the documented example, round trips, named locations and the serde
//! forms of sign-in contexts and applications.

use super::*;

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
