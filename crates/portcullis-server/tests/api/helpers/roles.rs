//! Just-in-time roles: eligible assignments, activation requests, people holding a role now.

use super::*;

/// `name` (a privileged person with TOTP) holding `role` now: made eligible by `admin`, then
/// activated just in time with MFA (people never hold privileged roles standing).
pub(crate) async fn holder(
    app: &TestApp,
    admin: &Client,
    name: &str,
    role: &str,
) -> (Client, Vec<u8>) {
    let (c, secret) = mfa_user(app, admin, name, "quartz-harbor-lantern-71").await;
    admin
        .create_assignment(&eligible(name, role, None))
        .await
        .expect("eligible");
    let r = c
        .request_activation(&ask(role, 3600, Some("abuse test")))
        .await
        .expect("activate");
    assert_eq!(r.state, "active", "{role} activates without approval");
    (c, secret)
}

/// `name` (a privileged person with TOTP, signed in) made eligible for `role` by `admin`, for
/// `secs` seconds or without end.
pub(crate) async fn eligible_mfa_user(
    app: &TestApp,
    admin: &Client,
    name: &str,
    role: &str,
    secs: Option<i64>,
) -> Client {
    let (c, _) = mfa_user(app, admin, name, "amber-willow-canyon-58").await;
    admin
        .create_assignment(&eligible(name, role, secs))
        .await
        .expect("eligible");
    c
}

pub(crate) fn ask(role: &str, secs: i64, why: Option<&str>) -> CreateActivationRequest {
    CreateActivationRequest {
        role: role.into(),
        scope: None,
        duration_seconds: secs,
        justification: why.map(str::to_owned),
        ticket: None,
    }
}

pub(crate) fn eligible(principal: &str, role: &str, secs: Option<i64>) -> CreateAssignmentRequest {
    CreateAssignmentRequest {
        principal: principal.into(),
        role: role.into(),
        scope: None,
        kind: Some("eligible".into()),
        duration_seconds: secs,
        ends_at: None,
    }
}

pub(crate) async fn admin_assignment_id(admin: &Client, principal: &str, role: &str) -> String {
    admin
        .assignments()
        .await
        .expect("assignments")
        .into_iter()
        .find(|a| a.principal == format!("user:{principal}") && a.role == role)
        .map(|a| a.id)
        .expect("assignment")
}
