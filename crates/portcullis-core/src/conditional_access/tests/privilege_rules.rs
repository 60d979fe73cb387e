//! Privilege rules 4, 8 and 10 in conditional access: ordinary groups never exclude, roles
//! count only where held at `/`, and authentication flows.

use super::lockout_guard::{admins, caller};
use super::*;

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
