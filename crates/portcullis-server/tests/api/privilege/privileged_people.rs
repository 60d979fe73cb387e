//! Rule 5 (findings 5 and 7): a privileged role held through a group makes its members
//! privileged, and Helpdesk cannot reach privileged people or break-glass accounts.

use super::*;

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

api_tests!(
    privileged_roles_through_a_group_require_mfa,
    helpdesk_cannot_reach_privileged_people,
);
