//! A person's own account at a target (`targets accounts set`): grants and revokes act on it
//! instead of the login template's, it is checked at the target before it is stored, it never
//! belongs to two principals or to a tenant's emergency account, it does not change under a
//! live grant, and nobody sets their own.

use portcullis_core::api::SetTargetAccountRequest;

use super::msgraph::{GA, TARGET, double, entra_request, held, upn};
use super::*;

api_tests!(
    an_entra_account_of_their_own_is_granted_and_revoked,
    a_database_login_of_their_own_gets_the_role_while_the_grant_lives,
    an_account_is_checked_at_the_target_and_a_bad_one_stores_nothing,
    an_account_does_not_change_while_its_person_holds_a_grant_there,
    nobody_sets_their_own_account_and_a_low_role_sets_none,
);

fn set(account: &str) -> SetTargetAccountRequest {
    SetTargetAccountRequest {
        account: account.into(),
    }
}

/// The principals with an account of their own at [`TARGET`], with the accounts.
async fn accounts(admin: &Client) -> Vec<(String, String)> {
    admin
        .target_accounts(TARGET)
        .await
        .expect("accounts")
        .into_iter()
        .map(|a| (a.principal, a.account))
        .collect()
}

async fn an_entra_account_of_their_own_is_granted_and_revoked(app: TestApp) {
    let g = double().await;
    // Ada's Entra user is on another domain than the template's.
    let own = g.add_user("ada.lovelace@fabrikam.example");
    g.add_user(&upn("ada"));
    let admin = admin(&app).await;
    admin
        .create_target(&entra_request(&g, "app-secret~value-1", None))
        .await
        .expect("target");
    bind_db_role(&admin, TARGET, GA).await;
    let ada = db_person(&app, &admin, "ada", TARGET).await;
    // Given by object id, stored with the UPN the tenant gives it.
    let a = admin
        .set_target_account(TARGET, "ada", &set(&own))
        .await
        .expect("set");
    assert_eq!(a.account, "ada.lovelace@fabrikam.example");
    assert_eq!(a.external_id.as_deref(), Some(own.as_str()));
    let set_events = events_named(&admin, "target.account_set").await;
    assert_eq!(set_events.len(), 1);
    assert_eq!(set_events[0].details["external_id"], own.as_str());

    activate_at(&ada, TARGET, 3).await;
    assert!(
        eventually(5.0, || async {
            held(&g) == vec![(own.clone(), GA.to_owned(), "/".to_owned())]
        })
        .await,
        "the own account holds the role, not the template's: {:?}",
        held(&g)
    );
    let seen = admin.observe_target(TARGET).await.expect("observe");
    assert!(seen.drift.is_empty() && seen.missing.is_empty(), "{seen:?}");
    assert_eq!(seen.held[0].holder, "ada.lovelace@fabrikam.example");
    assert!(
        eventually(8.0, || async { held(&g).is_empty() }).await,
        "deleted at expiry"
    );
}

async fn a_database_login_of_their_own_gets_the_role_while_the_grant_lives(app: TestApp) {
    let Some(pg) = PgTarget::new().await else {
        return;
    };
    let admin = admin(&app).await;
    postgres_target(&admin, &pg, "payroll-db", "report", "1h").await;
    // Ada's login is the one the template would give "adaops".
    pg.create_login("adaops").await;
    let ada = db_person(&app, &admin, "ada", "payroll-db").await;
    admin
        .set_target_account("payroll-db", "ada", &set(&pg.login("adaops")))
        .await
        .expect("set");
    let id = activate_at(&ada, "payroll-db", 600).await;
    assert!(
        eventually(5.0, || pg.can_read("adaops")).await,
        "the own login gets the role"
    );
    ada.deactivate(
        &id,
        &DecisionRequest {
            reason: Some("done".into()),
        },
    )
    .await
    .expect("deactivate");
    assert!(
        eventually(5.0, || async { !pg.can_read("adaops").await }).await,
        "and loses it"
    );
}

async fn an_account_is_checked_at_the_target_and_a_bad_one_stores_nothing(app: TestApp) {
    let g = double().await;
    let ada_own = g.add_user("ada@fabrikam.example");
    g.add_user(&upn("bob"));
    g.add_user("breakglass1@contoso.onmicrosoft.com");
    let admin = admin(&app).await;
    let mut req = entra_request(&g, "app-secret~value-1", None);
    if let Some(m) = req.msgraph.as_mut() {
        m.emergency_accounts = vec![
            "breakglass1@contoso.onmicrosoft.com".into(),
            "breakglass2@contoso.onmicrosoft.com".into(),
        ];
    }
    admin.create_target(&req).await.expect("target");
    bind_db_role(&admin, TARGET, GA).await;
    for who in ["ada", "bob", "carol"] {
        db_person(&app, &admin, who, TARGET).await;
    }
    admin
        .set_target_account(TARGET, "ada", &set(&ada_own))
        .await
        .expect("ada's own");
    let before = accounts(&admin).await;
    let refused = [
        // Not in the tenant.
        (
            "carol",
            "nobody@contoso.onmicrosoft.com",
            "invalid_request",
            "no Entra user",
        ),
        // The tenant's emergency account: a revoke would take its standing GA.
        (
            "carol",
            "breakglass1@contoso.onmicrosoft.com",
            "invalid_request",
            "emergency",
        ),
        // What the template gives bob.
        ("carol", "BOB@contoso.onmicrosoft.com", "conflict", "bob"),
        // Ada's already (by UPN and by object id).
        (
            "carol",
            "ada@fabrikam.example",
            "conflict",
            "another person",
        ),
        ("carol", ada_own.as_str(), "conflict", "another person"),
        ("carol", "two words", "invalid_request", "spaces"),
        (
            "carol",
            "nul\u{0}@contoso.onmicrosoft.com",
            "invalid_request",
            "control",
        ),
        (
            "carol",
            "tab\there@contoso.onmicrosoft.com",
            "invalid_request",
            "control",
        ),
        ("carol", "", "invalid_request", "1 to"),
    ];
    for (who, account, code, says) in refused {
        let e = admin
            .set_target_account(TARGET, who, &set(account))
            .await
            .expect_err(account);
        assert_eq!(e.code(), Some(code), "{account}: {e}");
        assert!(e.to_string().contains(says), "{account}: {e}");
    }
    let e = admin
        .set_target_account(TARGET, "nobody", &set(&ada_own))
        .await
        .expect_err("unknown principal");
    assert_eq!(e.code(), Some("not_found"));
    let e = admin
        .remove_target_account(TARGET, "carol")
        .await
        .expect_err("carol has none");
    assert_eq!(e.code(), Some("not_found"));
    assert_eq!(accounts(&admin).await, before, "nothing stored");
    assert_eq!(events_named(&admin, "target.account_set").await.len(), 1);
}

async fn an_account_does_not_change_while_its_person_holds_a_grant_there(app: TestApp) {
    let g = double().await;
    let first = g.add_user("ada@fabrikam.example");
    let second = g.add_user("ada.admin@fabrikam.example");
    let admin = admin(&app).await;
    admin
        .create_target(&entra_request(&g, "app-secret~value-1", None))
        .await
        .expect("target");
    bind_db_role(&admin, TARGET, GA).await;
    let ada = db_person(&app, &admin, "ada", TARGET).await;
    admin
        .set_target_account(TARGET, "ada", &set(&first))
        .await
        .expect("set");
    let id = activate_at(&ada, TARGET, 600).await;
    assert!(
        eventually(5.0, || async { held(&g).len() == 1 }).await,
        "granted"
    );
    for attempt in [
        admin
            .set_target_account(TARGET, "ada", &set(&second))
            .await
            .err(),
        admin.remove_target_account(TARGET, "ada").await.err(),
    ] {
        let e = attempt.expect("refused while the grant lives");
        assert_eq!(e.code(), Some("conflict"), "{e}");
    }
    assert_eq!(
        accounts(&admin).await,
        vec![("ada".to_owned(), "ada@fabrikam.example".to_owned())]
    );
    ada.deactivate(
        &id,
        &DecisionRequest {
            reason: Some("done".into()),
        },
    )
    .await
    .expect("deactivate");
    // The revoke reaches the account the grant was made for; then the account may change.
    assert!(
        eventually(5.0, || async { held(&g).is_empty() }).await,
        "revoked"
    );
    assert!(
        eventually(5.0, || async {
            admin
                .set_target_account(TARGET, "ada", &set(&second))
                .await
                .is_ok()
        })
        .await,
        "changes once nothing is held"
    );
}

async fn nobody_sets_their_own_account_and_a_low_role_sets_none(app: TestApp) {
    let g = double().await;
    let own = g.add_user("root@fabrikam.example");
    let admin = admin(&app).await;
    admin
        .create_target(&entra_request(&g, "app-secret~value-1", None))
        .await
        .expect("target");
    bind_db_role(&admin, TARGET, GA).await;
    let ada = db_person(&app, &admin, "ada", TARGET).await;
    let e = admin
        .set_target_account(TARGET, "root-admin", &set(&own))
        .await
        .expect_err("own account");
    assert_eq!(e.code(), Some("forbidden"), "{e}");
    let refused = events_named(&admin, "target.account_set").await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].outcome, "failure");
    assert_eq!(refused[0].details["reason"], "self_escalation");
    for attempt in [
        ada.set_target_account(TARGET, "ada", &set(&own))
            .await
            .err(),
        ada.target_accounts(TARGET).await.err(),
    ] {
        let e = attempt.expect("a low role is refused");
        assert_eq!(e.code(), Some("forbidden"), "{e}");
    }
    assert!(accounts(&admin).await.is_empty());
}
