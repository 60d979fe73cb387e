//! Tests of conditional access, one file per topic. The fixtures they share (policies,
//! subjects, sign-in contexts, the names an import may refer to) live here.

mod conditions;
mod decisions;
mod import_export;
mod lockout_guard;
mod privilege_rules;
mod validation;

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
