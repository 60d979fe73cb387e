//! The privilege model (DESIGN.md; issue "Privilege model"): each finding of the outside trial
//! as an abuse test that would escalate if its rule broke, on both backends. A refused path
//! also leaves its audit event.

use super::*;
use portcullis_core::api::{
    CreateGroupRequest, CreateRoleRequest, CreateServiceAccountRequest, DeviceDecisionRequest,
    GroupMemberRequest, MakeEligibleRequest, ReauthRequest,
};

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
    admin
        .update_role_settings(
            role,
            &RoleSettingsUpdate {
                required_strength: Some("mfa".into()),
                ..Default::default()
            },
        )
        .await
        .expect("settings");
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

/// Finding 1 and rule 4: approvers are people, and an approver group must be role-assignable.
async fn approvers_are_people_in_role_assignable_groups(app: TestApp) {
    let admin = admin(&app).await;
    // An ordinary group (Helpdesk changes its members) cannot name approvers.
    group(&admin, "approvers", false).await;
    let ordinary = admin
        .update_role_settings(
            GA,
            &RoleSettingsUpdate {
                approvers: Some(vec!["group:approvers".into()]),
                ..Default::default()
            },
        )
        .await;
    refused(ordinary, "invalid_request", "role-assignable");
    group(&admin, "ga-approvers", true).await;
    // Joined before its secret exists: whoever holds its secret may not put it in the group.
    bare_service_account(&admin, "robot").await;
    join(&admin, "ga-approvers", "robot").await;
    let robot_secret = secret_of(&admin, "robot").await;
    let (bob, _) = mfa_user(&app, &admin, "bob", PW).await;
    join(&admin, "ga-approvers", "bob").await;
    admin
        .update_role_settings(
            GA,
            &RoleSettingsUpdate {
                require_approval: Some(true),
                approvers: Some(vec!["group:ga-approvers".into()]),
                approvals_required: Some(1),
                required_strength: Some("mfa".into()),
                ..Default::default()
            },
        )
        .await
        .expect("approvers");
    let (ivy, _) = mfa_user(&app, &admin, "ivy", PW).await;
    admin
        .create_assignment(&eligible("ivy", GA, None))
        .await
        .expect("eligible");
    let r = ivy
        .request_activation(&ask(GA, 1800, Some("incident 42")))
        .await
        .expect("request");
    assert_eq!(r.state, "pending_approval");
    // The service account in the approver group approves with its client-credentials token.
    let robot = token_client(&app, &access_token(&app, "robot", &robot_secret).await);
    assert_eq!(
        code_of(robot.approve(&r.id, &DecisionRequest::default()).await),
        "forbidden"
    );
    assert_eq!(
        ivy.activation_request(&r.id).await.expect("request").state,
        "pending_approval"
    );
    assert_eq!(
        refusals_of(&admin, "service_account:robot").await,
        vec![("forbidden".to_owned(), 1)]
    );
    // A person in the group still approves.
    let done = bob
        .approve(&r.id, &DecisionRequest::default())
        .await
        .expect("bob approves");
    assert_eq!(done.state, "active");
    app.stop().await;
}

/// Finding 1, variant: Helpdesk cannot fill an approver group with colleagues.
async fn helpdesk_cannot_fill_an_approver_group(app: TestApp) {
    let admin = admin(&app).await;
    group(&admin, "ga-approvers", true).await;
    let (hal, _) = holder(&app, &admin, "hal", "helpdesk-administrator").await;
    people(&admin, &["carl", "dora"]).await;
    for who in ["carl", "dora", "hal"] {
        let r = hal
            .add_group_member("ga-approvers", &GroupMemberRequest { member: who.into() })
            .await;
        assert_eq!(code_of(r), "forbidden");
    }
    assert!(
        admin
            .groups()
            .await
            .expect("groups")
            .iter()
            .any(|g| g.name == "ga-approvers" && g.members.is_empty())
    );
    let refused: u64 = refusals_of(&admin, "user:hal")
        .await
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert!(refused >= 1, "the refusals are audited");
    app.stop().await;
}

/// Finding 2: a stolen access token (a phished device-code approval) registers no credential,
/// changes no password, re-authenticates nothing; and the device's tokens carry at most `mfa`
/// although the approving session was phishing-resistant.
async fn a_stolen_access_token_registers_no_credential(app: TestApp) {
    let admin = admin(&app).await;
    let (ivy, _) = mfa_user(&app, &admin, "ivy", PW).await;
    let mut key = SoftPasskey::new(true);
    register(&ivy, &mut key, "key").await;
    let c = passwordless(&app, "ivy").await;
    let s = finish(&app, &c.ceremony_id, answer(&mut key, &c, origin()))
        .await
        .expect("passkey sign-in")
        .session
        .expect("session");
    assert_eq!(s.strength, "phishing_resistant");
    let strong = token_client(&app, &s.token);
    let start = device_start(&app).await;
    strong
        .approve_device(&DeviceDecisionRequest {
            user_code: start["user_code"].as_str().expect("code").into(),
        })
        .await
        .expect("approve");
    let r = device_poll(&app, start["device_code"].as_str().expect("device code")).await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    let at = body["access_token"].as_str().expect("token").to_owned();
    let claims = claims_of(&at);
    assert_eq!(claims["acr"], "mfa", "capped at mfa: {claims}");
    assert_eq!(
        claims["aud"], "portcullis-cli",
        "each client is its own audience"
    );
    let stolen = token_client(&app, &at);
    assert!(
        stolen.whoami().await.is_ok(),
        "the token works as an API credential"
    );
    assert_eq!(
        code_of(
            stolen
                .mfa_webauthn_register(&WebauthnRegisterRequest {
                    name: "evil".into()
                })
                .await
        ),
        "forbidden"
    );
    assert_eq!(
        code_of(
            stolen
                .mfa_enrol_totp(&TotpEnrolRequest {
                    name: "evil".into()
                })
                .await
        ),
        "forbidden"
    );
    let pw = stolen
        .change_password(&portcullis_core::api::PasswordChangeRequest {
            current_password: PW.into(),
            new_password: "brand-new-stolen-passphrase-1".into(),
            code: None,
        })
        .await;
    assert_eq!(code_of(pw), "forbidden");
    assert_eq!(code_of(stolen.reauth_webauthn().await), "forbidden");
    // Nothing was registered, and the refusals are on record.
    assert_eq!(ivy.mfa_list().await.expect("factors").len(), 2);
    let refused: u64 = refusals_of(&admin, "user:ivy")
        .await
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert!(refused >= 1);
    app.stop().await;
}

/// Finding 3 and rule 6: a Service Administrator cannot add a secret to a service account that
/// holds a privileged role (and act as it); an ordinary one stays theirs to manage.
async fn service_administrator_cannot_take_over_a_privileged_service_account(app: TestApp) {
    let admin = admin(&app).await;
    bare_service_account(&admin, "ops-bot").await;
    bare_service_account(&admin, "plain-bot").await;
    // A top-tier administrator may give a service account a privileged role actively.
    admin
        .create_assignment(&assignment(
            "service_account:ops-bot",
            "privileged-role-administrator",
            "active",
            Some(86_400),
        ))
        .await
        .expect("active PRA for a daemon, by a Global Administrator");
    // Who assigned it the role does not also take its credentials.
    assert_eq!(
        code_of(admin.add_client_secret("ops-bot").await),
        "self_assignment"
    );
    let (sam, _) = holder(&app, &admin, "sam", "service-administrator").await;
    assert_eq!(
        code_of(sam.add_client_secret("ops-bot").await),
        "privileged_principal"
    );
    assert_eq!(
        code_of(
            sam.set_networks(
                "ops-bot",
                &portcullis_core::api::NetworksRequest { cidrs: vec![] }
            )
            .await
        ),
        "privileged_principal"
    );
    assert!(sam.add_client_secret("plain-bot").await.is_ok());
    assert_eq!(
        refusals_of(&admin, "user:sam")
            .await
            .first()
            .map(|r| r.0.clone()),
        Some("privileged_principal".to_owned())
    );
    app.stop().await;
}

/// Rule 2: a service account whose secret you added is you; you do not give it roles.
async fn nobody_assigns_a_role_to_a_service_account_whose_secret_they_hold(app: TestApp) {
    let admin = admin(&app).await;
    service_account(&admin, "helper-bot").await;
    let r = admin
        .create_assignment(&assignment(
            "service_account:helper-bot",
            "audit-reader",
            "active",
            Some(3600),
        ))
        .await;
    assert_eq!(code_of(r), "self_assignment");
    app.stop().await;
}

/// Finding 4 and rule 2: a Privileged Role Administrator gives itself nothing, gives people
/// privileged roles only as eligible, and hands out no permission it does not hold.
async fn privileged_role_administrator_cannot_escalate(app: TestApp) {
    let admin = admin(&app).await;
    totp_is_enough(&admin, "privileged-role-administrator").await;
    let (pat, _) = holder(&app, &admin, "pat", "privileged-role-administrator").await;
    let (_ivy, _) = mfa_user(&app, &admin, "ivy", PW).await;
    assert_eq!(
        code_of(
            pat.create_assignment(&assignment("pat", GA, "active", Some(180 * 86_400)))
                .await
        ),
        "self_assignment"
    );
    assert_eq!(
        code_of(
            pat.create_assignment(&assignment("pat", GA, "eligible", None))
                .await
        ),
        "self_assignment"
    );
    assert_eq!(
        code_of(
            pat.create_assignment(&assignment("ivy", GA, "active", Some(3600)))
                .await
        ),
        "eligible_only"
    );
    pat.create_assignment(&assignment("ivy", GA, "eligible", None))
        .await
        .expect("eligible for someone else is the job");
    let custom = pat
        .create_role(&CreateRoleRequest {
            slug: "almost-ga".into(),
            display_name: None,
            description: String::new(),
            permissions: vec![
                "ca.manage".into(),
                "breakglass.manage".into(),
                "roles.read".into(),
            ],
        })
        .await;
    refused(custom, "not_grantable", "ca.manage");
    let loosen = pat
        .update_role_settings(
            GA,
            &RoleSettingsUpdate {
                require_approval: Some(false),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(code_of(loosen), "not_grantable");
    // Joining a role-assignable group is being assigned its roles.
    group(&admin, "tier0", true).await;
    admin
        .create_assignment(&eligible("group:tier0", GA, None))
        .await
        .expect("group eligible");
    let r = pat
        .add_group_member(
            "tier0",
            &GroupMemberRequest {
                member: "pat".into(),
            },
        )
        .await;
    assert_eq!(code_of(r), "self_assignment");
    let grants = pat.whoami().await.expect("whoami").roles;
    assert!(grants.iter().all(|r| r.role != GA), "{grants:?}");
    let refused: u64 = refusals_of(&admin, "user:pat")
        .await
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert!(refused >= 1);
    app.stop().await;
}

async fn password_only(app: &TestApp, name: &str) -> portcullis_core::api::SessionIssued {
    app.anonymous
        .signin_password(&PasswordSignInRequest {
            username: name.into(),
            password: CUSTODIAN_PW.into(),
        })
        .await
        .expect("sign-in")
        .session
        .expect("session")
}

/// Finding 5 and rule 5: a privileged role held through a group makes its members privileged:
/// without a second factor they get a registration-only session.
async fn privileged_roles_through_a_group_require_mfa(app: TestApp) {
    let admin = admin(&app).await;
    people(&admin, &["gwen", "hank"]).await;
    group(&admin, "admins", true).await;
    admin
        .create_assignment(&eligible("group:admins", GA, None))
        .await
        .expect("group eligible for GA");
    assert_eq!(password_only(&app, "gwen").await.scope, "full");
    join(&admin, "admins", "gwen").await;
    assert_eq!(password_only(&app, "gwen").await.scope, "registration_only");
    // The other order: in the group first, the role assigned to the group later.
    group(&admin, "ops", true).await;
    join(&admin, "ops", "hank").await;
    assert_eq!(password_only(&app, "hank").await.scope, "full");
    admin
        .create_assignment(&eligible("group:ops", "security-administrator", None))
        .await
        .expect("group eligible");
    assert_eq!(password_only(&app, "hank").await.scope, "registration_only");
    app.stop().await;
}

/// Finding 6 and rule 3: the first administrator cannot remove the only way to Global
/// Administrator; with another (here through a role-assignable group) it can, and then that
/// last way cannot be taken away by a Privileged Role Administrator nor by a break-glass
/// account (break-glass accounts never count as the day-to-day way in).
async fn the_last_global_administrator_stays(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = token_client(&app, &token);
    let own = admin_assignment_id(&admin, "root-admin", GA).await;
    assert_eq!(
        code_of(admin.delete_assignment(&own).await),
        "last_global_administrator"
    );
    let refused = events_named(&admin, "assignment.removed").await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].outcome, "failure");
    assert_eq!(refused[0].details["reason"], "last_global_administrator");
    assert!(
        admin
            .whoami()
            .await
            .expect("whoami")
            .roles
            .iter()
            .any(|r| r.role == GA)
    );
    people(&admin, &["gwen", "c1", "c2", "c3"]).await;
    let bg_pw = create_split_account(&app, &token, "bg1", &["c1", "c2", "c3"], 2).await;
    create_split_account(&app, &token, "bg2", &["c1", "c2", "c3"], 2).await;
    totp_is_enough(&admin, "privileged-role-administrator").await;
    let (pat, _) = holder(&app, &admin, "pat", "privileged-role-administrator").await;
    group(&admin, "tier0", true).await;
    join(&admin, "tier0", "gwen").await;
    admin
        .create_assignment(&eligible("group:tier0", GA, None))
        .await
        .expect("group eligible");
    admin
        .delete_assignment(&own)
        .await
        .expect("gwen can still reach it");
    let r = pat.remove_group_member("tier0", "gwen").await;
    assert_eq!(code_of(r), "last_global_administrator");
    let bg = token_client(
        &app,
        &breakglass_signin(&app, "bg1", &bg_pw)
            .await
            .expect("break-glass")
            .session
            .expect("session")
            .token,
    );
    assert_eq!(
        code_of(bg.disable_user("gwen").await),
        "last_global_administrator"
    );
    let tier0 = bg
        .assignments()
        .await
        .expect("assignments")
        .into_iter()
        .find(|a| a.principal == "group:tier0")
        .expect("the group's assignment")
        .id;
    assert_eq!(
        code_of(bg.delete_assignment(&tier0).await),
        "last_global_administrator"
    );
    app.stop().await;
}

/// The quick start: one person sets a tenant up from nothing — bootstrap, two break-glass
/// accounts, an eligible Global Administrator for a second person, and their own standing one
/// turned eligible — and is told so until then.
async fn one_person_sets_a_tenant_up_from_nothing(app: TestApp) {
    let token = admin_token(&app).await;
    let ada = token_client(&app, &token);
    people(&ada, &["c1", "c2", "c3"]).await;
    create_split_account(&app, &token, "bg1", &["c1", "c2", "c3"], 2).await;
    create_split_account(&app, &token, "bg2", &["c1", "c2", "c3"], 2).await;
    let (_bob, _) = mfa_user(&app, &ada, "bob", PW).await;
    ada.create_assignment(&eligible("bob", GA, None))
        .await
        .expect("bob eligible");
    let before = ada.whoami().await.expect("whoami");
    assert!(
        before.warnings.iter().any(|w| w.contains("standing")),
        "{:?}",
        before.warnings
    );
    // Turning one's own standing role eligible lowers privilege: allowed for oneself.
    let own = admin_assignment_id(&ada, "root-admin", GA).await;
    let made = ada
        .make_eligible(
            &own,
            &MakeEligibleRequest {
                duration_seconds: None,
            },
        )
        .await
        .expect("make eligible");
    assert_eq!((made.kind.as_str(), made.role.as_str()), ("eligible", GA));
    let after = ada.whoami().await.expect("whoami");
    assert!(
        after.roles.iter().all(|r| r.role != GA),
        "{:?}",
        after.roles
    );
    assert!(
        !after.warnings.iter().any(|w| w.contains("standing")),
        "{:?}",
        after.warnings
    );
    // Ada holds no role now (she is eligible): she reads nothing until she activates.
    assert_eq!(
        code_of(ada.audit_events(&EventFilter::default()).await),
        "forbidden"
    );
    app.stop().await;
}

/// Finding 7 and rule 5: Helpdesk cannot disable, re-enable or end the sessions of privileged
/// people or break-glass accounts; ordinary people stay Helpdesk's.
async fn helpdesk_cannot_reach_privileged_people(app: TestApp) {
    let token = admin_token(&app).await;
    let admin = token_client(&app, &token);
    people(&admin, &["c1", "c2", "c3", "joe"]).await;
    let bg_pw = create_split_account(&app, &token, "bg1", &["c1", "c2", "c3"], 2).await;
    create_split_account(&app, &token, "bg2", &["c1", "c2", "c3"], 2).await;
    let (_ivy, _) = mfa_user(&app, &admin, "ivy", PW).await;
    admin
        .create_assignment(&eligible("ivy", GA, None))
        .await
        .expect("ivy eligible");
    let (hal, _) = holder(&app, &admin, "hal", "helpdesk-administrator").await;
    assert_eq!(
        code_of(hal.disable_user("ivy").await),
        "privileged_principal"
    );
    assert_eq!(
        code_of(hal.disable_user("bg1").await),
        "privileged_principal"
    );
    assert_eq!(
        code_of(hal.disable_user("root-admin").await),
        "privileged_principal"
    );
    let bg = breakglass_signin(&app, "bg1", &bg_pw)
        .await
        .expect("break-glass signs in")
        .session
        .expect("session");
    assert_eq!(
        code_of(hal.revoke_session(&bg.session_id).await),
        "privileged_principal"
    );
    assert!(
        token_client(&app, &bg.token).whoami().await.is_ok(),
        "the break-glass session lives"
    );
    // Re-enabling is as much out of reach: a privileged person an administrator disabled stays
    // disabled.
    admin
        .disable_user("ivy")
        .await
        .expect("the administrator disables ivy");
    assert_eq!(
        code_of(hal.enable_user("ivy").await),
        "privileged_principal"
    );
    assert!(
        !admin.user("ivy").await.expect("ivy").enabled,
        "ivy stays disabled"
    );
    // Ordinary people are Helpdesk's job.
    hal.disable_user("joe").await.expect("disable joe");
    hal.enable_user("joe").await.expect("enable joe");
    let codes: Vec<String> = refusals_of(&admin, "user:hal")
        .await
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert!(
        codes.iter().all(|c| c == "privileged_principal") && !codes.is_empty(),
        "{codes:?}"
    );
    app.stop().await;
}

/// Finding 10 and rule 8: every token names its client as audience, and introspection answers
/// `active` only to that client (or to a service account holding `tokens.introspect`).
async fn introspection_answers_only_the_tokens_audience(app: TestApp) {
    let admin = admin(&app).await;
    let a = service_account(&admin, "alpha").await;
    let b = service_account(&admin, "beta").await;
    bare_service_account(&admin, "resource-server").await;
    let token = access_token(&app, "alpha", &a).await;
    assert_eq!(claims_of(&token)["aud"], "alpha");
    assert_eq!(introspect(&app, "alpha", &a, &token).await["active"], true);
    let foreign = introspect(&app, "beta", &b, &token).await;
    assert_eq!(
        foreign,
        serde_json::json!({ "active": false }),
        "beta learns nothing"
    );
    admin
        .create_role(&CreateRoleRequest {
            slug: "token-introspector".into(),
            display_name: None,
            description: String::new(),
            permissions: vec!["tokens.introspect".into()],
        })
        .await
        .expect("role");
    admin
        .create_assignment(&assignment(
            "service_account:resource-server",
            "token-introspector",
            "active",
            Some(86_400),
        ))
        .await
        .expect("an ordinary role may be held actively");
    // Who assigned it a role does not hold its secret: a Service Administrator adds it.
    let (sam, _) = holder(&app, &admin, "sam", "service-administrator").await;
    let rs = secret_of(&sam, "resource-server").await;
    let granted = introspect(&app, "resource-server", &rs, &token).await;
    assert_eq!(granted["active"], true);
    assert_eq!(granted["client_id"], "alpha");
    app.stop().await;
}

/// Finding 11 and rule 9: refused privileged attempts are audited, aggregated per actor and
/// action per minute, with a count that adds up to every refusal.
async fn refused_attempts_are_audited_and_counted(app: TestApp) {
    let admin = admin(&app).await;
    let (ana, _) = mfa_user(&app, &admin, "ana", PW).await;
    admin
        .create_assignment(&assignment("ana", "audit-reader", "active", Some(86_400)))
        .await
        .expect("an ordinary role may be standing");
    // A custom rule counts refusals: an aggregated event counts as the refusals it stands for.
    admin
        .create_alert_rule(&portcullis_core::api::CreateAlertRuleRequest {
            name: "escalations".into(),
            action: "authz.refused".into(),
            outcome: None,
            actor: None,
            target: None,
            group_by: Some("actor".into()),
            count: 5,
            window: "5m".into(),
            severity: Some("critical".into()),
        })
        .await
        .expect("rule");
    for _ in 0..6 {
        let r = ana
            .create_assignment(&assignment("ana", GA, "active", None))
            .await;
        assert_eq!(code_of(r), "forbidden");
    }
    // The first is on record at once; the five others follow as one summary.
    let first = refusals_of(&admin, "user:ana").await;
    assert_eq!(first, vec![("forbidden".to_owned(), 1)]);
    let (dir, config, _) = app.stop().await;
    // The summary is written when the server stops (or when the minute is over).
    let store = portcullis_store::Store::open(
        &config.database_url(),
        portcullis_store::StoreOptions {
            read_only: true,
            ..Default::default()
        },
    )
    .await
    .expect("store");
    let events = store
        .list_events(&portcullis_store::AuditFilter {
            action: Some("authz.refused".into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("events");
    let total: u64 = events
        .iter()
        .filter(|e| e.actor == "user:ana")
        .map(|e| e.details["count"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(total, 6);
    assert!(
        events
            .iter()
            .all(|e| e.target == "route:POST /api/v1/assignments")
    );
    // The custom rule counted the summary as the five refusals it stands for: six in the
    // window, so it fired, once.
    let outbox = store
        .outbox_messages(None, None, 1000)
        .await
        .expect("outbox");
    let fired: Vec<_> = outbox
        .iter()
        .filter(|m| m.topic == "custom:escalations")
        .collect();
    assert_eq!(fired.len(), 1, "{outbox:?}");
    store.close().await;
    drop(dir);
}

/// Finding 1 (self-approval) and rule 9: a refused approval is evidence too.
async fn a_refused_self_approval_is_audited(app: TestApp) {
    let admin = admin(&app).await;
    group(&admin, "ga-approvers", true).await;
    let (ivy, _) = mfa_user(&app, &admin, "ivy", PW).await;
    join(&admin, "ga-approvers", "ivy").await;
    admin
        .update_role_settings(
            GA,
            &RoleSettingsUpdate {
                require_approval: Some(true),
                approvers: Some(vec!["group:ga-approvers".into()]),
                required_strength: Some("mfa".into()),
                ..Default::default()
            },
        )
        .await
        .expect("approvers");
    admin
        .create_assignment(&eligible("ivy", GA, None))
        .await
        .expect("eligible");
    let r = ivy
        .request_activation(&ask(GA, 600, Some("self")))
        .await
        .expect("request");
    assert_eq!(
        code_of(ivy.approve(&r.id, &DecisionRequest::default()).await),
        "self_approval"
    );
    assert_eq!(
        refusals_of(&admin, "user:ivy").await,
        vec![("self_approval".to_owned(), 1)]
    );
    app.stop().await;
}

/// Finding 12 and rule 6: service accounts enrol no factors.
async fn service_accounts_enrol_no_factors(app: TestApp) {
    let admin = admin(&app).await;
    let s = service_account(&admin, "robot").await;
    let robot = token_client(&app, &access_token(&app, "robot", &s).await);
    assert_eq!(
        code_of(
            robot
                .mfa_enrol_totp(&TotpEnrolRequest { name: "x".into() })
                .await
        ),
        "forbidden"
    );
    assert_eq!(
        code_of(
            robot
                .mfa_webauthn_register(&WebauthnRegisterRequest { name: "x".into() })
                .await
        ),
        "forbidden"
    );
    app.stop().await;
}

/// Moves every session of `user` `minutes` into the past, as if it signed in that long ago
/// (a database write: the tests cannot wait out the five-minute window).
async fn age_sessions(app: &TestApp, user: &str, minutes: i64) {
    use sqlx::Connection;
    let shift = minutes * 60_000_000;
    let sql = "UPDATE sessions SET created_at_us = created_at_us - $1, strong_auth_at_us = strong_auth_at_us - $1 WHERE principal_id = (SELECT id FROM principals WHERE name = $2)";
    let url = app.config.database_url();
    if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(&url).await.expect("pg");
        sqlx::query(sql)
            .bind(shift)
            .bind(user)
            .execute(&mut c)
            .await
            .expect("age");
    } else {
        let mut c = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
        sqlx::query(sql)
            .bind(shift)
            .bind(user)
            .execute(&mut c)
            .await
            .expect("age");
    }
}

/// Rule 7: registering or removing a factor needs a proof within five minutes; a stale
/// session re-authenticates (password and TOTP) and the owner is told of each change.
async fn credential_changes_need_a_fresh_proof(app: TestApp) {
    let admin = admin(&app).await;
    let (ivy, secret) = mfa_user(&app, &admin, "ivy", PW).await;
    let fresh = ivy
        .mfa_enrol_totp(&TotpEnrolRequest {
            name: "spare".into(),
        })
        .await;
    assert!(fresh.is_ok(), "a sign-in moments ago is a fresh proof");
    age_sessions(&app, "ivy", 10).await;
    let stale = ivy
        .mfa_enrol_totp(&TotpEnrolRequest {
            name: "third".into(),
        })
        .await;
    refused(stale, "reauth_required", "re-authenticate");
    let spare = fresh.expect("enrolment").factor_id;
    assert_eq!(code_of(ivy.mfa_remove(&spare).await), "reauth_required");
    // A wrong code is refused and changes nothing.
    let wrong = ivy
        .reauth(&ReauthRequest {
            password: Some(PW.into()),
            code: Some("000000".into()),
            ceremony_id: None,
            credential: None,
        })
        .await;
    assert!(wrong.is_err());
    assert_eq!(code_of(ivy.mfa_remove(&spare).await), "reauth_required");
    let done = ivy
        .reauth(&ReauthRequest {
            password: Some(PW.into()),
            code: Some(code(&secret, 1)),
            ceremony_id: None,
            credential: None,
        })
        .await
        .expect("reauth");
    assert_eq!(done.strength, "mfa");
    ivy.mfa_remove(&spare)
        .await
        .expect("removed after a fresh proof");
    let removed = events_named(&admin, "mfa.factor_removed").await;
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].details["alert"], true);
    assert_eq!(
        events_named(&admin, "session.reauthenticated").await.len(),
        2
    );
    // The owner is told by email of every new or removed factor (notification outbox).
    let (dir, config, _) = app.stop().await;
    let store = portcullis_store::Store::open(
        &config.database_url(),
        portcullis_store::StoreOptions {
            read_only: true,
            ..Default::default()
        },
    )
    .await
    .expect("store");
    let told: Vec<String> = store
        .outbox(1000)
        .await
        .expect("outbox")
        .into_iter()
        .filter(|m| m.topic == "credential.changed" && m.recipient == "user:ivy")
        .map(|m| m.payload)
        .collect();
    // The first factor's confirmation (at creation), and the removal.
    assert!(
        told.iter().any(|p| p.contains("factor_removed")),
        "{told:?}"
    );
    assert!(
        told.iter().any(|p| p.contains("totp_registered")),
        "{told:?}"
    );
    store.close().await;
    drop(dir);
}

api_tests!(
    approvers_are_people_in_role_assignable_groups,
    helpdesk_cannot_fill_an_approver_group,
    a_stolen_access_token_registers_no_credential,
    service_administrator_cannot_take_over_a_privileged_service_account,
    nobody_assigns_a_role_to_a_service_account_whose_secret_they_hold,
    privileged_role_administrator_cannot_escalate,
    privileged_roles_through_a_group_require_mfa,
    the_last_global_administrator_stays,
    one_person_sets_a_tenant_up_from_nothing,
    helpdesk_cannot_reach_privileged_people,
    introspection_answers_only_the_tokens_audience,
    refused_attempts_are_audited_and_counted,
    a_refused_self_approval_is_audited,
    service_accounts_enrol_no_factors,
    credential_changes_need_a_fresh_proof,
);
