//! Account records: users, groups and service accounts; privileged accounts register MFA first.

use super::*;

async fn users_groups_and_service_accounts(app: TestApp) {
    let admin = admin(&app).await;
    let weak = admin
        .create_user(&CreateUserRequest {
            name: "alice".into(),
            display_name: "Alice".into(),
            email: Some("alice@example.org".into()),
            phone: None,
            guest_organisation: None,
            privileged: false,
            password: "password1234".into(),
        })
        .await
        .expect_err("weak");
    assert_eq!(weak.code(), Some("password_policy"));
    let named = admin
        .create_user(&CreateUserRequest {
            name: "alice".into(),
            display_name: "Alice".into(),
            email: None,
            phone: None,
            guest_organisation: None,
            privileged: false,
            password: "alice-ocean-tiger-52".into(),
        })
        .await
        .expect_err("contains name");
    assert_eq!(named.code(), Some("password_policy"));
    let short_priv = admin
        .create_user(&CreateUserRequest {
            name: "bob".into(),
            display_name: "Bob".into(),
            email: None,
            phone: None,
            guest_organisation: None,
            privileged: true,
            password: "tangerine-kt9".into(),
        })
        .await
        .expect_err("privileged needs 15");
    assert_eq!(short_priv.code(), Some("password_policy"));
    let alice = admin
        .create_user(&CreateUserRequest {
            name: "alice".into(),
            display_name: "Alice".into(),
            email: Some("alice@example.org".into()),
            phone: Some("+41791234567".into()),
            guest_organisation: None,
            privileged: false,
            password: "orbit-lantern-97-quay".into(),
        })
        .await
        .expect("alice");
    assert_eq!(alice.kind, "member");
    let guest = admin
        .create_user(&CreateUserRequest {
            name: "gina.msp".into(),
            display_name: "Gina (MSP)".into(),
            email: None,
            phone: None,
            guest_organisation: Some("Contoso MSP".into()),
            privileged: true,
            password: "harbor-violet-mango-81".into(),
        })
        .await
        .expect("guest");
    assert_eq!(guest.kind, "guest");
    let dup = admin
        .create_user(&CreateUserRequest {
            name: "alice".into(),
            display_name: "Alice 2".into(),
            email: None,
            phone: None,
            guest_organisation: None,
            privileged: false,
            password: "orbit-lantern-97-quay".into(),
        })
        .await
        .expect_err("dup");
    assert_eq!(dup.code(), Some("already_exists"));
    for bad in ["Alice", "", "a b"] {
        let e = admin
            .create_user(&CreateUserRequest {
                name: bad.into(),
                display_name: "x".into(),
                email: None,
                phone: None,
                guest_organisation: None,
                privileged: false,
                password: "orbit-lantern-97-quay".into(),
            })
            .await
            .expect_err("bad name");
        assert_eq!(e.code(), Some("invalid_request"), "{bad:?}");
    }
    let g = admin
        .create_group(&CreateGroupRequest {
            name: "approvers".into(),
            display_name: None,
            role_assignable: true,
        })
        .await
        .expect("group");
    assert!(g.role_assignable);
    let g = admin
        .add_group_member(
            "approvers",
            &GroupMemberRequest {
                member: "alice".into(),
            },
        )
        .await
        .expect("add");
    assert_eq!(g.members, ["alice"]);
    assert_eq!(
        admin
            .add_group_member(
                "approvers",
                &GroupMemberRequest {
                    member: "alice".into()
                }
            )
            .await
            .expect_err("twice")
            .code(),
        Some("already_exists")
    );
    assert_eq!(
        admin
            .add_group_member(
                "approvers",
                &GroupMemberRequest {
                    member: "nobody".into()
                }
            )
            .await
            .expect_err("unknown")
            .code(),
        Some("not_found")
    );
    assert_eq!(
        admin.user("alice").await.expect("show").groups,
        ["approvers"]
    );
    let g = admin
        .remove_group_member("approvers", "alice")
        .await
        .expect("remove");
    assert!(g.members.is_empty());
    assert_eq!(
        admin
            .remove_group_member("approvers", "alice")
            .await
            .expect_err("not member")
            .code(),
        Some("not_found")
    );
    admin
        .create_service_account(&CreateServiceAccountRequest {
            name: "backup-daemon".into(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await
        .expect("sa");
    assert_eq!(admin.service_accounts().await.expect("list").len(), 1);
    // Service accounts cannot sign in interactively; the attempt is marked for an alert.
    let err = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "backup-daemon".into(),
            password: "anything-at-all".into(),
        })
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Some("invalid_credentials"));
    let ev = admin
        .audit_events(&EventFilter {
            actor: Some("user:backup-daemon".into()),
            ..Default::default()
        })
        .await
        .expect("l")
        .events;
    assert_eq!(
        ev[0].details["reason"],
        "service_account_interactive_signin"
    );
    assert_eq!(ev[0].details["alert"], true);
    // A non-admin cannot administer.
    let r = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "alice".into(),
            password: "orbit-lantern-97-quay".into(),
        })
        .await
        .expect("alice signs in");
    assert_eq!(r.status, "signed_in");
    let s = r.session.expect("session");
    assert_eq!(
        (s.strength.as_str(), s.scope.as_str()),
        ("password", "full")
    );
    let alice_c = app.anonymous.with_token(Some(SecretString::from(s.token)));
    assert_eq!(
        alice_c.users().await.expect_err("not admin").code(),
        Some("forbidden")
    );
    // Disabling ends her sessions at once and stops sign-in.
    admin.disable_user("alice").await.expect("disable");
    assert_eq!(
        alice_c.whoami().await.expect_err("revoked").code(),
        Some("unauthenticated")
    );
    let err = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "alice".into(),
            password: "orbit-lantern-97-quay".into(),
        })
        .await
        .expect_err("disabled");
    assert_eq!(err.code(), Some("account_disabled"));
    app.stop().await;
}

async fn privileged_accounts_register_mfa_first(app: TestApp) {
    let admin = admin(&app).await;
    admin
        .create_user(&CreateUserRequest {
            name: "pat".into(),
            display_name: "Pat".into(),
            email: None,
            phone: None,
            guest_organisation: None,
            privileged: true,
            password: "harbor-violet-mango-81".into(),
        })
        .await
        .expect("pat");
    let r = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "pat".into(),
            password: "harbor-violet-mango-81".into(),
        })
        .await
        .expect("signin");
    let s = r.session.expect("session");
    assert_eq!(s.scope, "registration_only");
    let pat = app.anonymous.with_token(Some(SecretString::from(s.token)));
    assert_eq!(pat.sessions().await.map(|v| v.len()).unwrap_or(0), 1);
    let me = pat.whoami().await.expect("whoami");
    assert!(me.warnings.iter().any(|w| w.contains("registration-only")));
    let enrol = pat
        .mfa_enrol_totp(&TotpEnrolRequest {
            name: "phone".into(),
        })
        .await
        .expect("enrol");
    assert!(enrol.otpauth_uri.starts_with("otpauth://totp/"));
    let secret = totp::base32_decode(&enrol.secret).expect("base32");
    let err = pat
        .mfa_confirm_totp(
            &enrol.factor_id,
            &TotpConfirmRequest {
                code: "000000".into(),
            },
        )
        .await;
    if let Err(e) = err {
        assert_eq!(e.code(), Some("invalid_code"));
    }
    // Steps strictly increase: confirm with the previous step, sign in with the current one,
    // and the password change can use the next one.
    pat.mfa_confirm_totp(
        &enrol.factor_id,
        &TotpConfirmRequest {
            code: code(&secret, -1),
        },
    )
    .await
    .expect("confirm");
    let factors = pat.mfa_list().await.expect("list");
    assert!(factors[0].confirmed);
    let pat_full = sign_in(&app, "pat", "harbor-violet-mango-81", &secret, 0).await;
    // The last factor of an account that needs MFA cannot be removed.
    assert_eq!(
        pat_full
            .mfa_remove(&enrol.factor_id)
            .await
            .expect_err("last")
            .code(),
        Some("last_factor")
    );
    // Password change needs the current password and a fresh code; other sessions end.
    let change = |current: &str, new: &str, c: String| PasswordChangeRequest {
        current_password: current.into(),
        new_password: new.into(),
        code: Some(c),
    };
    let weak = pat_full
        .change_password(&change("harbor-violet-mango-81", "short", code(&secret, 1)))
        .await
        .expect_err("policy");
    assert_eq!(weak.code(), Some("password_policy"));
    let wrong = pat_full
        .change_password(&change(
            "not-it-at-all",
            "quartz-meadow-falcon-27",
            code(&secret, 1),
        ))
        .await
        .expect_err("wrong current");
    assert_eq!(wrong.code(), Some("invalid_credentials"));
    let replay = pat_full
        .change_password(&change(
            "harbor-violet-mango-81",
            "quartz-meadow-falcon-27",
            code(&secret, 0),
        ))
        .await
        .expect_err("used step");
    assert_eq!(replay.code(), Some("code_replayed"));
    pat_full
        .change_password(&change(
            "harbor-violet-mango-81",
            "quartz-meadow-falcon-27",
            code(&secret, 1),
        ))
        .await
        .expect("changed");
    assert_eq!(
        pat.whoami()
            .await
            .expect_err("other session revoked")
            .code(),
        Some("unauthenticated")
    );
    assert!(
        pat_full.whoami().await.is_ok(),
        "the session that changed it stays"
    );
    let old = app
        .anonymous
        .signin_password(&PasswordSignInRequest {
            username: "pat".into(),
            password: "harbor-violet-mango-81".into(),
        })
        .await
        .expect_err("old password");
    assert_eq!(old.code(), Some("invalid_credentials"));
    // Sessions: list and revoke.
    let mine = admin.sessions().await.expect("sessions");
    assert!(mine.iter().any(|s| s.current));
    let pats = admin
        .user_sessions("pat")
        .await
        .expect("admin sees pat's sessions");
    for s in &pats {
        admin.revoke_session(&s.id).await.expect("admin revokes");
    }
    assert_eq!(
        pat_full.whoami().await.expect_err("revoked").code(),
        Some("unauthenticated")
    );
    assert_eq!(
        admin
            .revoke_session("s_nope")
            .await
            .expect_err("unknown")
            .code(),
        Some("not_found")
    );
    admin.signout().await.expect("signout");
    assert_eq!(
        admin.whoami().await.expect_err("signed out").code(),
        Some("unauthenticated")
    );
    app.stop().await;
}

api_tests!(
    users_groups_and_service_accounts,
    privileged_accounts_register_mfa_first,
);
