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
        starts_at: None,
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

/// ivy (eligible for security-reader, which needs one approval from the role-assignable
/// group `approvers`) and jon, both members of that group, signed in with MFA; ivy's
/// eligibility ends after `secs` seconds, or never.
pub(crate) async fn approval_setup_for(
    app: &TestApp,
    admin: &Client,
    secs: Option<i64>,
) -> (Client, Client) {
    let (ivy, _) = mfa_user(app, admin, "ivy", "amber-willow-canyon-58").await;
    let (jon, _) = mfa_user(app, admin, "jon", "cobalt-meadow-lantern-39").await;
    admin
        .create_group(&portcullis_core::api::CreateGroupRequest {
            name: "approvers".into(),
            display_name: None,
            role_assignable: true,
        })
        .await
        .expect("group");
    for m in ["ivy", "jon"] {
        admin
            .add_group_member("approvers", &GroupMemberRequest { member: m.into() })
            .await
            .expect("member");
    }
    admin
        .update_role_settings(
            "security-reader",
            &RoleSettingsUpdate {
                require_approval: Some(true),
                approvers: Some(vec!["group:approvers".into()]),
                ..Default::default()
            },
        )
        .await
        .expect("settings");
    admin
        .create_assignment(&eligible("ivy", "security-reader", secs))
        .await
        .expect("eligible");
    (ivy, jon)
}

/// A webhook target `deploy-hook` posting to `127.0.0.1:port/ops`, and a custom role `deployer`
/// bound to it (granting `deploy` there).
pub(crate) async fn deploy_hook(admin: &Client, port: u16) {
    admin
        .create_target(&portcullis_core::api::CreateTargetRequest {
            name: "deploy-hook".into(),
            kind: "webhook".into(),
            url: format!("http://127.0.0.1:{port}/ops"),
            observe_url: None,
            login: None,
            secret: Some("a-key-long-enough-for-hmac".into()),
            secret_env: None,
            drift: None,
            reconcile_interval: Some("1h".into()),
            ssh: None,
            msgraph: None,
        })
        .await
        .expect("target");
    admin
        .create_role(&portcullis_core::api::CreateRoleRequest {
            slug: "deployer".into(),
            display_name: None,
            description: "deploys".into(),
            permissions: vec!["target:deploy-hook.deploy".into()],
        })
        .await
        .expect("role");
    admin
        .bind_role(
            "deploy-hook",
            "deployer",
            &portcullis_core::api::BindRoleRequest {
                grants: vec!["deploy".into()],
                mode: None,
                ssh: None,
            },
        )
        .await
        .expect("bind");
}

/// Waits until an operation `op` (`grant` or `revoke`) at the `deploy-hook` target has been
/// applied (delivered to the receiver).
pub(crate) async fn hook_op_applied(admin: &Client, op: &str) {
    eventually(&format!("the {op} applied at the target"), 20, async || {
        admin
            .target_ops(Some("deploy-hook"), None)
            .await
            .expect("ops")
            .iter()
            .any(|o| o.op == op && o.state == "applied")
    })
    .await;
}

/// `role`'s settings with `u` applied by `admin`: at once, or, for a weakening of a privileged
/// role asked by the tenant's only top-tier person (four eyes: nobody else can approve it),
/// once its cooling-off (a second in tests) is over.
pub(crate) async fn settings_now(
    admin: &Client,
    role: &str,
    u: &RoleSettingsUpdate,
) -> portcullis_core::api::RoleSettingsView {
    match admin.update_role_settings(role, u).await {
        Ok(s) => s,
        Err(e) if e.code() == Some("change_pending") => {
            let subject = format!("role:{role}");
            for _ in 0..100 {
                let pending = admin
                    .change_requests(Some("pending"))
                    .await
                    .expect("changes");
                if !pending.iter().any(|c| c.subject == subject) {
                    return admin.role_settings(role).await.expect("settings");
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("the change of {role} did not take effect: {e}");
        }
        Err(e) => panic!("settings of {role}: {e}"),
    }
}
