//! Tests of permissions, built-in roles, role names, scopes, durations and role settings.

use super::*;
use crate::session::AuthStrength;
use time::Duration;

/// Each permission of the catalogue once, each a valid permission, each constant in it.
#[test]
fn the_catalogue_names_each_permission_once() {
    let names: Vec<&str> = CATALOGUE.iter().map(|(p, _)| *p).collect();
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "a permission is listed twice");
    for p in &names {
        assert!(Permission::parse(p).is_ok(), "{p}");
    }
    for p in [
        perm::AUDIT_READ,
        perm::GROUPS_ROLE_ASSIGNABLE_UPDATE,
        perm::TOKENS_INTROSPECT,
    ] {
        assert!(names.contains(&p), "{p}");
    }
}

#[test]
fn permissions_parse_from_catalogue_or_free_form() {
    for ok in [
        perm::AUDIT_READ,
        "app:payroll.admin",
        "target:prod-db.connect",
        "app:x.y.z",
    ] {
        assert!(Permission::parse(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "audit",
        "audit.write",
        "app:",
        "app:payroll",
        "app:Pay.admin",
        "app:.x",
        "user:x.y",
        "app:a b.c",
        "target:x.Y",
    ] {
        assert!(Permission::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn builtin_permission_sets() {
    let has = |r: BuiltinRole, p: &str| {
        permits(
            &[Grant {
                role: r.slug().into(),
                permissions: r.permissions(),
                everything: r.grants_everything(),
                scope: Scope::tenant(),
                ends_at: None,
            }],
            p,
            &Scope::tenant(),
        )
    };
    assert!(has(BuiltinRole::GlobalAdministrator, perm::USERS_CREATE));
    assert!(has(BuiltinRole::GlobalAdministrator, "app:payroll.admin"));
    assert!(has(BuiltinRole::AuditReader, perm::AUDIT_READ));
    assert!(!has(BuiltinRole::AuditReader, perm::USERS_CREATE));
    assert!(!has(
        BuiltinRole::PrivilegedRoleAdministrator,
        "app:payroll.admin"
    ));
    assert!(has(
        BuiltinRole::PrivilegedRoleAdministrator,
        perm::GROUPS_ROLE_ASSIGNABLE_UPDATE
    ));
    assert!(!has(
        BuiltinRole::HelpdeskAdministrator,
        perm::GROUPS_ROLE_ASSIGNABLE_UPDATE
    ));
    assert!(has(BuiltinRole::SecurityReader, perm::ROLES_READ));
    assert!(!has(BuiltinRole::SecurityReader, perm::ROLES_CREATE));
    assert!(!BuiltinRole::AuditReader.tier().is_privileged());
    for r in BuiltinRole::ALL {
        assert_eq!(BuiltinRole::from_slug(r.slug()), Some(r));
        assert!(!r.permissions().is_empty());
        // Every listed name is in the catalogue: none is dropped silently.
        if let Some(names) = r.listed() {
            assert_eq!(r.permissions().len(), names.len(), "{r:?}");
        }
    }
    assert!(has(BuiltinRole::SecurityAdministrator, perm::ALERTS_MANAGE));
    assert!(has(BuiltinRole::SecurityReader, perm::ALERTS_READ));
}

#[test]
fn custom_role_names() {
    assert!(RoleName::parse("payroll-admin").is_ok());
    assert!(matches!(
        RoleName::parse("global-administrator"),
        Err(RoleError::BuiltinName(_))
    ));
    for bad in [
        "",
        "a",
        "Payroll",
        "1abc",
        "pay roll",
        "x".repeat(65).as_str(),
    ] {
        assert!(RoleName::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn scopes_contain_themselves_and_below() {
    let t = Scope::tenant();
    let db = Scope::parse("/targets/prod-db").expect("scope");
    let app = Scope::parse("/apps/payroll").expect("scope");
    assert!(t.contains(&db) && t.contains(&app) && t.contains(&t));
    assert!(db.contains(&db) && !db.contains(&t) && !db.contains(&app));
    for bad in [
        "",
        "/x",
        "/targets/",
        "/targets/A",
        "targets/x",
        "/targets/x/y",
        "//",
    ] {
        assert!(Scope::parse(bad).is_err(), "{bad}");
    }
    let g = Grant {
        role: "r".into(),
        permissions: vec![Permission::parse(perm::ASSIGNMENTS_CREATE).expect("p")],
        everything: false,
        scope: db.clone(),
        ends_at: None,
    };
    assert!(permits(
        std::slice::from_ref(&g),
        perm::ASSIGNMENTS_CREATE,
        &db
    ));
    assert!(!permits(
        std::slice::from_ref(&g),
        perm::ASSIGNMENTS_CREATE,
        &t
    ));
}

#[test]
fn durations() {
    for (s, secs) in [
        ("90s", 90),
        ("15m", 900),
        ("8h", 28_800),
        ("30d", 2_592_000),
        ("1m", 60),
    ] {
        let d = parse_duration(s).expect(s);
        assert_eq!(d.whole_seconds(), secs);
    }
    assert_eq!(format_duration(Duration::seconds(3600)), "1h");
    assert_eq!(format_duration(Duration::seconds(90)), "90s");
    assert_eq!(format_duration(Duration::days(2)), "2d");
    for s in ["1h", "90s", "15m", "30d"] {
        assert_eq!(format_duration(parse_duration(s).expect(s)), s);
    }
    for bad in [
        "",
        "0s",
        "-1h",
        "1",
        "h",
        "1 h",
        " 1h",
        "1w",
        "99999999999999999999d",
        "3651d",
        "1.5h",
        "5é",
        "é",
        "5\u{202e}h",
        "1h\0",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}

#[test]
fn settings_defaults_and_validation() {
    let ga = RoleSettings::defaults_for(Some(BuiltinRole::GlobalAdministrator));
    assert_eq!(ga.max_activation, 3600);
    assert_eq!(ga.required_strength, AuthStrength::PhishingResistant);
    assert!(ga.require_approval);
    let pra = RoleSettings::defaults_for(Some(BuiltinRole::PrivilegedRoleAdministrator));
    assert_eq!(pra.required_strength, AuthStrength::PhishingResistant);
    assert!(!pra.require_approval);
    let custom = RoleSettings::defaults_for(None);
    assert_eq!(custom.max_activation, 8 * 3600);
    assert_eq!(custom.required_strength, AuthStrength::Mfa);
    assert!(
        custom.require_justification && !custom.require_ticket && !custom.allow_permanent_active
    );
    assert!(custom.validate().is_ok());
    // GA needs an approver before its defaults validate.
    assert!(ga.validate().is_err());
    let mut s = custom.clone();
    s.max_activation = 59;
    assert!(s.validate().is_err());
    let mut s = custom.clone();
    s.required_strength = AuthStrength::Password;
    assert!(s.validate().is_err());
    let mut s = custom.clone();
    s.approvals_required = 0;
    assert!(s.validate().is_err());
    let mut s = custom.clone();
    s.approvers = vec!["alice".into()];
    assert!(s.validate().is_err());
    let mut s = custom.clone();
    s.notify = vec!["not an address".into()];
    assert!(s.validate().is_err());
    let mut s = custom;
    s.require_approval = true;
    s.approvers = vec!["group:approvers".into()];
    s.notify = vec!["user:bob".into(), "secops@example.org".into()];
    assert!(s.validate().is_ok());
    let json = serde_json::to_string(&s).expect("json");
    assert!(json.contains("\"mfa\""));
    assert_eq!(
        serde_json::from_str::<RoleSettings>(&json).expect("back"),
        s
    );
}

#[test]
fn group_scopes_name_a_group() {
    let s = Scope::parse("/groups/ga-team").expect("a group scope");
    assert_eq!(s.group(), Some("ga-team"));
    assert_eq!(Scope::parse("/targets/db").expect("scope").group(), None);
    assert!(Scope::parse("/groups/").is_err());
    assert!(Scope::parse("/groups/Bad Name").is_err());
    assert!(Scope::tenant().contains(&s));
}

#[test]
fn membership_settings_are_the_strictest_of_the_groups_roles() {
    use crate::privilege::Tier;
    let mut ga = RoleSettings::defaults_for(Some(BuiltinRole::GlobalAdministrator));
    ga.approvers = vec!["user:ada".into()];
    ga.approvals_required = 1;
    let mut helpdesk = RoleSettings::defaults_for(Some(BuiltinRole::HelpdeskAdministrator));
    helpdesk.require_ticket = true;
    helpdesk.require_approval = true;
    helpdesk.approvers = vec!["user:mallory".into()];
    helpdesk.approvals_required = 2;
    helpdesk.max_eligible_seconds = Some(86_400);
    helpdesk.notify = vec!["soc@example.com".into()];
    let s = RoleSettings::strictest([(Tier::Top, &ga), (Tier::Privileged, &helpdesk)]);
    assert_eq!(s.max_activation, 3600);
    assert_eq!(s.required_strength, AuthStrength::PhishingResistant);
    assert!(s.require_justification && s.require_ticket && s.require_approval);
    assert_eq!(s.approvals_required, 2);
    // Only the approvers of the highest-tier role that asks: a helpdesk approver never lets
    // anyone into a group holding Global Administrator.
    assert_eq!(s.approvers, vec!["user:ada".to_owned()]);
    assert_eq!(s.max_eligible_seconds, Some(86_400));
    assert!(!s.allow_permanent_active);
    assert_eq!(s.notify, vec!["soc@example.com".to_owned()]);
    // A group holding nothing: an ordinary role's defaults.
    assert_eq!(
        RoleSettings::strictest([]).max_activation,
        RoleSettings::defaults_for(None).max_activation
    );
}
