//! The privilege model (DESIGN.md; issue "Privilege model"): each finding of the outside trial
//! as an abuse test that would escalate if its rule broke, on both backends. A refused path
//! also leaves its audit event. One file per rule; the set-ups they share are here.

use super::*;
use portcullis_core::api::{CreateGroupRequest, CreateServiceAccountRequest, GroupMemberRequest};

mod approvers;
mod credentials;
mod privileged_people;
mod refusal_audit;
mod role_administration;
mod service_accounts;

const PW: &str = "quartz-harbor-lantern-71";
const GA: &str = "global-administrator";

/// The error code of a refused call.
fn code_of<T: std::fmt::Debug>(r: Result<T, ClientError>) -> String {
    r.expect_err("refused")
        .code()
        .unwrap_or_default()
        .to_owned()
}

/// Lets Privileged Role Administrator be activated with TOTP (its default is a security key),
/// so tests can use TOTP sessions.
async fn totp_is_enough(admin: &Client, role: &str) {
    settings_now(
        admin,
        role,
        &RoleSettingsUpdate {
            required_strength: Some("mfa".into()),
            ..Default::default()
        },
    )
    .await;
}

/// A service account without credentials.
async fn bare_service_account(admin: &Client, name: &str) {
    admin
        .create_service_account(&CreateServiceAccountRequest {
            name: name.into(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await
        .expect("service account");
}

/// A client secret added by `admin` (who from then on manages the account's credentials).
async fn secret_of(admin: &Client, name: &str) -> String {
    admin
        .add_client_secret(name)
        .await
        .expect("secret")
        .client_secret
}

/// A service account with a client secret.
async fn service_account(admin: &Client, name: &str) -> String {
    bare_service_account(admin, name).await;
    secret_of(admin, name).await
}

async fn group(admin: &Client, name: &str, role_assignable: bool) {
    admin
        .create_group(&CreateGroupRequest {
            name: name.into(),
            display_name: None,
            role_assignable,
        })
        .await
        .expect("group");
}

async fn join(admin: &Client, group: &str, member: &str) {
    admin
        .add_group_member(
            group,
            &GroupMemberRequest {
                member: member.into(),
            },
        )
        .await
        .expect("join");
}

fn token_client(app: &TestApp, token: &str) -> Client {
    app.anonymous
        .with_token(Some(SecretString::from(token.to_owned())))
}

/// The refused attempts of `actor` in the audit log, with their counts.
async fn refusals_of(admin: &Client, actor: &str) -> Vec<(String, u64)> {
    events_named(admin, "authz.refused")
        .await
        .into_iter()
        .filter(|e| e.actor == actor)
        .map(|e| {
            (
                e.details["code"].as_str().unwrap_or_default().to_owned(),
                e.details["count"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

fn assignment(
    principal: &str,
    role: &str,
    kind: &str,
    secs: Option<i64>,
) -> CreateAssignmentRequest {
    CreateAssignmentRequest {
        principal: principal.into(),
        role: role.into(),
        scope: None,
        kind: Some(kind.into()),
        duration_seconds: secs,
        ends_at: None,
    }
}
