//! Rules 2 and 3 (findings 4 and 6): a Privileged Role Administrator cannot escalate, the last
//! way to Global Administrator stays, and one person sets a tenant up from nothing.

use super::*;
use portcullis_core::api::{CreateRoleRequest, MakeEligibleRequest};

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

api_tests!(
    privileged_role_administrator_cannot_escalate,
    the_last_global_administrator_stays,
    one_person_sets_a_tenant_up_from_nothing,
);
