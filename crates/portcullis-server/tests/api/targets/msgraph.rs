//! The msgraph connector against the Graph test double (`portcullis_server::graph_double`,
//! shaped like Microsoft Graph's documented API): an activation becomes a directory role
//! assignment and its end deletes it; an assignment made in the portal is drift; throttling
//! and replication delays are absorbed without a second assignment; a certificate credential;
//! missing permissions and bad input refused with a clear reason. Exchange Online roles
//! (`exchange:GUID`, Graph's beta Exchange provider) the same way.

use portcullis_server::graph_double::{
    AppCredential, EXCHANGE_ORGANIZATION_MANAGEMENT, EXCHANGE_RECIPIENT_MANAGEMENT, GraphDouble,
};

use super::*;

api_tests!(
    an_activation_assigns_the_entra_role_and_its_end_deletes_it,
    an_assignment_made_in_the_portal_is_drift_and_reverted,
    throttling_and_replication_make_no_second_assignment,
    a_certificate_authenticates_the_app_and_a_wrong_one_is_named,
    a_missing_permission_is_named_and_the_grant_waits,
    bad_entra_input_is_refused_with_a_reason,
    an_emergency_account_sign_in_alerts_on_every_channel_once,
    a_policy_that_stops_excluding_an_emergency_account_is_a_finding,
    a_tenant_without_p1_is_told_once_and_the_other_checks_go_on,
    an_activation_bound_to_an_exchange_role_assigns_it_and_its_end_deletes_it,
    an_exchange_assignment_made_in_the_portal_is_drift_and_reverted,
    a_missing_exchange_permission_is_named_by_the_target_test,
    bad_exchange_rights_are_refused_at_binding_and_nothing_is_stored,
);

const TENANT: &str = "8f0e8b5c-4a3c-4c8e-9d55-2f1a2b3c4d5e";
const CLIENT: &str = "a1b2c3d4-0000-4000-8000-000000000001";
const SECRET: &str = "app-secret~value-1";
pub(super) const GA: &str = "62e90394-69f5-4237-9190-012177145e10";
pub(super) const TARGET: &str = "entra";
const ROLE_PERMISSION: &str = "RoleManagement.ReadWrite.Directory";
const EXCHANGE_PERMISSION: &str = "RoleManagement.ReadWrite.Exchange";

pub(super) fn upn(user: &str) -> String {
    format!("{user}@contoso.onmicrosoft.com")
}

pub(super) async fn double() -> GraphDouble {
    GraphDouble::start(
        TENANT,
        AppCredential {
            client_id: CLIENT.into(),
            client_secret: Some(SECRET.into()),
            ..AppCredential::default()
        },
        &[ROLE_PERMISSION],
    )
    .await
}

pub(super) fn entra_request(
    g: &GraphDouble,
    secret: &str,
    drift: Option<&str>,
) -> portcullis_core::api::CreateTargetRequest {
    portcullis_core::api::CreateTargetRequest {
        name: TARGET.into(),
        kind: "msgraph".into(),
        url: g.base.clone(),
        observe_url: None,
        login: Some("{user}@contoso.onmicrosoft.com".into()),
        secret: Some(secret.into()),
        secret_env: None,
        drift: drift.map(str::to_owned),
        reconcile_interval: Some("1h".into()),
        ssh: None,
        msgraph: Some(portcullis_core::api::MsGraphSettings {
            tenant_id: TENANT.into(),
            client_id: CLIENT.into(),
            login_base: Some(g.base.clone()),
            emergency_accounts: Vec::new(),
        }),
    }
}

/// The target on the double, [`DB_ROLE`] bound to Global Administrator.
async fn entra_target(admin: &Client, g: &GraphDouble, drift: Option<&str>) {
    admin
        .create_target(&entra_request(g, SECRET, drift))
        .await
        .expect("add msgraph target");
    bind_db_role(admin, TARGET, GA).await;
}

/// Whether the target's pending operation comes to fail with an error naming all of `words`.
async fn pending_error_says(admin: &Client, words: &[&str]) -> bool {
    eventually(5.0, || async {
        admin
            .target_ops(Some(TARGET), Some("pending"))
            .await
            .expect("ops")
            .first()
            .and_then(|o| o.last_error.clone())
            .is_some_and(|e| words.iter().all(|w| e.contains(w)))
    })
    .await
}

/// The (principal, role, scope) of every assignment the double holds.
pub(super) fn held(g: &GraphDouble) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = g
        .assignments()
        .into_iter()
        .map(|a| (a.principal_id, a.role_definition_id, a.directory_scope_id))
        .collect();
    v.sort();
    v
}

async fn an_activation_assigns_the_entra_role_and_its_end_deletes_it(app: TestApp) {
    let g = double().await;
    let oid = g.add_user(&upn("ada"));
    let admin = admin(&app).await;
    entra_target(&admin, &g, None).await;
    assert!(admin.test_target(TARGET).await.expect("test").ok);
    let ada = db_person(&app, &admin, "ada", TARGET).await;
    let id = activate_at(&ada, TARGET, 3).await;
    assert!(
        eventually(5.0, || async {
            held(&g) == vec![(oid.clone(), GA.to_owned(), "/".to_owned())]
        })
        .await,
        "assigned: {:?}",
        held(&g)
    );
    let seen = admin.observe_target(TARGET).await.expect("observe");
    assert!(seen.drift.is_empty() && seen.missing.is_empty(), "{seen:?}");
    assert_eq!(seen.held[0].holder, upn("ada"));
    assert_eq!(seen.held[0].grant_id.as_deref(), Some(id.as_str()));
    // The grant expires: the assignment is deleted.
    assert!(
        eventually(8.0, || async { held(&g).is_empty() }).await,
        "deleted at expiry"
    );
    let revoked = settled_events(&admin, "target.revoked", 1).await;
    assert_eq!(revoked.len(), 1);
    assert!(
        revoked[0].details["late_ms"]
            .as_i64()
            .is_some_and(|ms| ms < 5_000)
    );
}

async fn an_assignment_made_in_the_portal_is_drift_and_reverted(app: TestApp) {
    let g = double().await;
    let eve = g.add_user(&upn("eve"));
    let daemon = g.add_service_principal("CiraSync");
    let admin = admin(&app).await;
    entra_target(&admin, &g, Some("revert")).await;
    g.add_assignment_in_portal(&eve, GA, "/");
    g.add_assignment_in_portal(&daemon, GA, "/");
    let seen = admin.observe_target(TARGET).await.expect("observe");
    let mut drift: Vec<String> = seen.drift.iter().map(|h| h.holder.clone()).collect();
    drift.sort();
    assert_eq!(
        drift,
        vec![upn("eve"), format!("servicePrincipal:{daemon}")]
    );
    // Both are findings about the tenant too: a standing Global Administrator, and an app
    // holding a directory role.
    let codes: Vec<&str> = seen.findings.iter().map(|f| f.code.as_str()).collect();
    assert_eq!(
        codes,
        ["service_principal.directory_role", "standing.global_admin"]
    );
    assert!(seen.findings[0].message.contains(&daemon));
    assert!(seen.findings[1].message.contains(&upn("eve")));
    let r = admin.reconcile_target(TARGET).await.expect("reconcile");
    assert_eq!(r.reverted.len(), 2, "{r:?}");
    assert!(held(&g).is_empty(), "both removed: {:?}", held(&g));
    assert_eq!(events_named(&admin, "target.drift").await.len(), 2);
}

async fn throttling_and_replication_make_no_second_assignment(app: TestApp) {
    let g = double().await;
    let oid = g.add_user(&upn("ivo"));
    let admin = admin(&app).await;
    entra_target(&admin, &g, None).await;
    g.throttle_next(2, 1);
    g.set_replication_delay(std::time::Duration::from_secs(2));
    let ivo = db_person(&app, &admin, "ivo", TARGET).await;
    let id = activate_at(&ivo, TARGET, 600).await;
    assert!(
        eventually(10.0, || async { held(&g).len() == 1 }).await,
        "assigned through the 429s"
    );
    // Deactivated at once: the DELETE answers 404 while Graph still lists the assignment.
    ivo.deactivate(&id, &DecisionRequest { reason: None })
        .await
        .expect("deactivate");
    assert!(
        eventually(15.0, || async { held(&g).is_empty() }).await,
        "deleted after replication"
    );
    let requests = g.requests();
    let posts: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains("roleAssignments"))
        .collect();
    assert_eq!(
        posts.iter().filter(|r| r.status == 201).count(),
        1,
        "one assignment made"
    );
    assert!(requests.iter().any(|r| r.status == 429), "throttled");
    assert!(
        requests
            .iter()
            .any(|r| r.method == "DELETE" && r.status == 404),
        "the replication delay was met"
    );
    let ops = admin.target_ops(Some(TARGET), None).await.expect("ops");
    assert!(ops.iter().all(|o| o.state == "applied"), "{ops:?}");
    assert!(!held(&g).iter().any(|(p, _, _)| *p == oid));
}

async fn a_certificate_authenticates_the_app_and_a_wrong_one_is_named(app: TestApp) {
    use sha2::Digest;
    let make = || {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
        let c = rcgen::CertificateParams::new(vec!["portcullis".to_owned()])
            .expect("params")
            .self_signed(&kp)
            .expect("cert");
        let sha: [u8; 32] = sha2::Sha256::digest(c.der().as_ref()).into();
        let spki = rcgen::PublicKeyData::subject_public_key_info(&kp);
        (sha, spki, format!("{}{}", c.pem(), kp.serialize_pem()))
    };
    let (sha, spki, bundle) = make();
    let g = GraphDouble::start(
        TENANT,
        AppCredential {
            client_id: CLIENT.into(),
            client_secret: None,
            cert_sha256: Some(sha),
            public_key_der: Some(spki),
        },
        &[ROLE_PERMISSION],
    )
    .await;
    let admin = admin(&app).await;
    admin
        .create_target(&entra_request(&g, &bundle, None))
        .await
        .expect("add with a certificate");
    let t = admin.test_target(TARGET).await.expect("test");
    assert!(t.ok, "{t:?}");
    let shown = serde_json::to_string(&admin.target(TARGET).await.expect("show")).expect("json");
    assert!(!shown.contains("PRIVATE KEY"), "never shown");
    admin.remove_target(TARGET).await.expect("remove");
    let (_, _, other) = make();
    admin
        .create_target(&entra_request(&g, &other, None))
        .await
        .expect("add with a certificate the app does not know");
    let t = admin.test_target(TARGET).await.expect("test");
    assert!(!t.ok);
    assert!(t.problems[0].contains("AADSTS700027"), "{t:?}");
}

async fn a_missing_permission_is_named_and_the_grant_waits(app: TestApp) {
    let g = double().await;
    g.add_user(&upn("max"));
    let admin = admin(&app).await;
    entra_target(&admin, &g, None).await;
    g.set_permissions(&["User.Read.All"]);
    let t = admin.test_target(TARGET).await.expect("test");
    assert!(!t.ok);
    assert!(
        t.problems.iter().any(|p| p.contains(ROLE_PERMISSION)),
        "{t:?}"
    );
    let max = db_person(&app, &admin, "max", TARGET).await;
    activate_at(&max, TARGET, 600).await;
    assert!(
        pending_error_says(&admin, &["Authorization_RequestDenied", ROLE_PERMISSION]).await,
        "the refusal says what to grant: {:?}",
        admin.target_ops(None, None).await
    );
    // Consent given: the retried grant goes through.
    g.set_permissions(&[ROLE_PERMISSION]);
    assert!(
        eventually(20.0, || async { held(&g).len() == 1 }).await,
        "applied once allowed"
    );
}

async fn bad_entra_input_is_refused_with_a_reason(app: TestApp) {
    let g = double().await;
    let admin = admin(&app).await;
    entra_target(&admin, &g, None).await;
    let e = admin
        .bind_role(
            TARGET,
            DB_ROLE,
            &portcullis_core::api::BindRoleRequest {
                grants: vec!["global-administrator".into()],
                mode: None,
                ssh: None,
            },
        )
        .await
        .expect_err("not a template id");
    assert_eq!(e.code(), Some("invalid_request"));
    assert!(e.to_string().contains("GUID"), "{e}");
    let mut bad = entra_request(&g, SECRET, None);
    bad.name = "entra2".into();
    bad.msgraph.as_mut().expect("settings").client_id = "not-a-guid".into();
    let e = admin.create_target(&bad).await.expect_err("client id");
    assert!(e.to_string().contains("client_id"), "{e}");
    for upn in [
        "bg1 @contoso.onmicrosoft.com",
        "bg\u{0}1@contoso.onmicrosoft.com",
        "nobody",
    ] {
        let mut bad = entra_request(&g, SECRET, None);
        bad.name = "entra3".into();
        bad.msgraph.as_mut().expect("settings").emergency_accounts = vec![upn.into()];
        let e = admin.create_target(&bad).await.expect_err("not a UPN");
        assert_eq!(e.code(), Some("invalid_request"), "{upn:?}: {e}");
    }
    assert!(admin.target("entra3").await.is_err(), "nothing stored");
    // A person with no Entra user: the grant is refused with that reason, and retried.
    let nobody = db_person(&app, &admin, "nobody", TARGET).await;
    activate_at(&nobody, TARGET, 600).await;
    assert!(
        pending_error_says(&admin, &["no Entra user nobody@contoso.onmicrosoft.com"]).await,
        "{:?}",
        admin.target_ops(None, None).await
    );
    assert!(held(&g).is_empty());
}

/// Two emergency accounts as Microsoft's guidance wants them: Global Administrator
/// permanently, excluded from the enabled policy (one directly, one by a group); the target
/// watches them.
async fn watched_tenant(app: &TestApp, g: &GraphDouble) -> (Client, String, String, String) {
    let bg1 = g.add_user("bg1@contoso.onmicrosoft.com");
    let bg2 = g.add_user("bg2@contoso.onmicrosoft.com");
    g.add_assignment_in_portal(&bg1, GA, "/");
    g.add_assignment_in_portal(&bg2, GA, "/");
    let group = g.add_group("emergency-access", &[&bg2]);
    g.set_ca_policies(vec![serde_json::json!({
        "id": "0b1c2d3e-0000-4000-8000-0000000000a1", "displayName": "Require MFA for admins",
        "state": "enabled",
        "conditions": {"users": {"includeUsers": ["All"], "excludeUsers": [bg1], "includeGroups": [], "excludeGroups": [group]}},
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]},
    })]);
    g.set_permissions(&[
        ROLE_PERMISSION,
        "AuditLog.Read.All",
        "Policy.Read.All",
        "Directory.Read.All",
    ]);
    let token = admin_token(app).await;
    let admin = app
        .anonymous
        .with_token(Some(SecretString::from(token.clone())));
    let mut req = entra_request(g, SECRET, None);
    req.msgraph.as_mut().expect("settings").emergency_accounts = vec![
        "bg1@contoso.onmicrosoft.com".into(),
        "bg2@contoso.onmicrosoft.com".into(),
    ];
    admin.create_target(&req).await.expect("add");
    bind_db_role(&admin, TARGET, GA).await;
    (admin, token, bg1, bg2)
}

async fn an_emergency_account_sign_in_alerts_on_every_channel_once(app: TestApp) {
    let g = double().await;
    let (admin, token, _, _) = watched_tenant(&app, &g).await;
    let inboxes: Vec<Inbox> = vec![Inbox::default(), Inbox::default()];
    for (i, inbox) in inboxes.iter().enumerate() {
        let (port, _) = receiver(inbox.clone(), 0).await;
        let body = serde_json::json!({"name": format!("soc-{i}"), "kind": "webhook", "url": format!("http://127.0.0.1:{port}/hook")});
        assert_eq!(add_channel(&app, &token, body).await.status(), 201);
    }
    // Healthy tenant: its emergency accounts' Global Administrator is not drift, no finding.
    let r = admin.reconcile_target(TARGET).await.expect("reconcile");
    assert!(r.drift.is_empty(), "{r:?}");
    assert!(
        admin
            .observe_target(TARGET)
            .await
            .expect("observe")
            .findings
            .is_empty()
    );
    g.add_sign_in(
        "bg1@contoso.onmicrosoft.com",
        "203.0.113.9",
        "Azure Portal",
        50126,
        "Invalid username or password.",
    );
    admin.reconcile_target(TARGET).await.expect("one poll");
    let seen = events_named(&admin, "breakglass.entra_signin").await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].details["ip"], "203.0.113.9");
    assert_eq!(seen[0].details["app"], "Azure Portal");
    for inbox in &inboxes {
        let got = eventually(10.0, || async {
            inbox
                .lock()
                .expect("inbox")
                .requests
                .iter()
                .any(|(_, _, b)| {
                    b.contains("bg1@contoso.onmicrosoft.com") && b.contains("203.0.113.9")
                })
        })
        .await;
        assert!(got, "the alert reached every channel");
    }
    // The next poll reads the same record again: no second alert.
    admin.reconcile_target(TARGET).await.expect("poll again");
    assert_eq!(
        events_named(&admin, "breakglass.entra_signin").await.len(),
        1
    );
}

async fn a_policy_that_stops_excluding_an_emergency_account_is_a_finding(app: TestApp) {
    let g = double().await;
    let (admin, token, bg1, _) = watched_tenant(&app, &g).await;
    admin.reconcile_target(TARGET).await.expect("reconcile");
    assert!(
        events_named(&admin, "target.tenant_finding")
            .await
            .is_empty()
    );
    // Someone edits the policy: the group exclusion is gone.
    g.set_ca_policies(vec![serde_json::json!({
        "id": "0b1c2d3e-0000-4000-8000-0000000000a1", "displayName": "Require MFA for admins",
        "state": "enabled",
        "conditions": {"users": {"includeUsers": ["All"], "excludeUsers": [bg1], "includeGroups": [], "excludeGroups": []}},
    })]);
    let o = admin.observe_target(TARGET).await.expect("observe");
    assert_eq!(o.findings.len(), 1, "{o:?}");
    assert_eq!(o.findings[0].code, "emergency.not_excluded");
    assert!(
        o.findings[0]
            .message
            .contains("bg2@contoso.onmicrosoft.com")
    );
    admin.reconcile_target(TARGET).await.expect("reconcile");
    admin.reconcile_target(TARGET).await.expect("again");
    let f = events_named(&admin, "target.tenant_finding").await;
    assert_eq!(f.len(), 1, "alerted once, not on every poll: {f:?}");
    assert_eq!(
        alert_count(&app, &token, "target.tenant_posture").await,
        1,
        "one critical alert for the new finding"
    );
}

async fn a_tenant_without_p1_is_told_once_and_the_other_checks_go_on(app: TestApp) {
    let g = double().await;
    g.set_p1(false);
    let bg1 = g.add_user("bg1@contoso.com");
    g.set_permissions(&[ROLE_PERMISSION, "AuditLog.Read.All", "Policy.Read.All"]);
    let admin = admin(&app).await;
    let mut req = entra_request(&g, SECRET, None);
    req.msgraph.as_mut().expect("settings").emergency_accounts = vec!["bg1@contoso.com".into()];
    admin.create_target(&req).await.expect("add");
    admin.reconcile_target(TARGET).await.expect("poll");
    admin.reconcile_target(TARGET).await.expect("poll again");
    let told = events_named(&admin, "target.monitoring_unavailable").await;
    assert_eq!(told.len(), 1, "said once: {told:?}");
    assert!(
        told[0].details["reason"]
            .as_str()
            .unwrap_or("")
            .contains("P1")
    );
    let codes: Vec<String> = admin
        .observe_target(TARGET)
        .await
        .expect("observe")
        .findings
        .into_iter()
        .map(|f| f.code)
        .collect();
    assert_eq!(
        codes,
        [
            "emergency.fewer_than_two",
            "emergency.not_global_admin",
            "emergency.not_onmicrosoft"
        ],
        "{bg1}"
    );
}

/// `exchange:` and the Exchange role definition "Organization Management".
fn organization_management() -> String {
    format!("exchange:{EXCHANGE_ORGANIZATION_MANAGEMENT}")
}

/// The target on the double, [`DB_ROLE`] bound to the Exchange role "Organization
/// Management"; the app holds both role-management permissions.
async fn exchange_target(admin: &Client, g: &GraphDouble, drift: Option<&str>) {
    g.set_permissions(&[ROLE_PERMISSION, EXCHANGE_PERMISSION]);
    admin
        .create_target(&entra_request(g, SECRET, drift))
        .await
        .expect("add msgraph target");
    bind_db_role(admin, TARGET, &organization_management()).await;
}

/// The (principal, role) of every Exchange assignment the double holds (all at `/`).
fn exchange_held(g: &GraphDouble) -> Vec<(String, String)> {
    let mut v: Vec<_> = g
        .exchange_assignments()
        .into_iter()
        .map(|a| {
            assert_eq!(a.directory_scope_id, "/");
            (a.principal_id, a.role_definition_id)
        })
        .collect();
    v.sort();
    v
}

async fn an_activation_bound_to_an_exchange_role_assigns_it_and_its_end_deletes_it(app: TestApp) {
    let g = double().await;
    let oid = g.add_user(&upn("ada"));
    let admin = admin(&app).await;
    exchange_target(&admin, &g, None).await;
    let ada = db_person(&app, &admin, "ada", TARGET).await;
    let id = activate_at(&ada, TARGET, 3).await;
    let want = vec![(
        format!("/Users/{oid}"),
        EXCHANGE_ORGANIZATION_MANAGEMENT.to_owned(),
    )];
    assert!(
        eventually(5.0, || async { exchange_held(&g) == want }).await,
        "assigned through the Exchange provider: {:?}",
        exchange_held(&g)
    );
    assert!(held(&g).is_empty(), "no directory role: {:?}", held(&g));
    let seen = admin.observe_target(TARGET).await.expect("observe");
    assert!(seen.drift.is_empty() && seen.missing.is_empty(), "{seen:?}");
    assert_eq!(seen.held[0].holder, upn("ada"));
    assert_eq!(seen.held[0].right, organization_management());
    assert_eq!(seen.held[0].grant_id.as_deref(), Some(id.as_str()));
    // The grant expires: the assignment is deleted.
    assert!(
        eventually(8.0, || async { exchange_held(&g).is_empty() }).await,
        "deleted at expiry: {:?}",
        exchange_held(&g)
    );
    assert!(g.requests().iter().any(|r| {
        r.method == "DELETE"
            && r.path
                .starts_with("/beta/roleManagement/exchange/roleAssignments/")
            && r.status == 204
    }));
}

async fn an_exchange_assignment_made_in_the_portal_is_drift_and_reverted(app: TestApp) {
    let g = double().await;
    let eve = g.add_user(&upn("eve"));
    let group = "/Groups/7d1c5a3e-2b4f-4c6d-8e9f-0a1b2c3d4e5f";
    let admin = admin(&app).await;
    exchange_target(&admin, &g, Some("revert")).await;
    g.add_exchange_assignment_in_portal(&format!("/Users/{eve}"), EXCHANGE_ORGANIZATION_MANAGEMENT);
    g.add_exchange_assignment_in_portal(group, EXCHANGE_ORGANIZATION_MANAGEMENT);
    // A role no binding names is not Portcullis's to judge.
    g.add_exchange_assignment_in_portal(&format!("/Users/{eve}"), EXCHANGE_RECIPIENT_MANAGEMENT);
    let seen = admin.observe_target(TARGET).await.expect("observe");
    let mut drift: Vec<(String, String)> = seen
        .drift
        .iter()
        .map(|h| (h.holder.clone(), h.right.clone()))
        .collect();
    drift.sort();
    assert_eq!(
        drift,
        vec![
            (upn("eve"), organization_management()),
            (format!("principal:{group}"), organization_management()),
        ]
    );
    // No Global Administrator, no app: no finding about the tenant.
    assert!(seen.findings.is_empty(), "{:?}", seen.findings);
    let r = admin.reconcile_target(TARGET).await.expect("reconcile");
    assert_eq!(r.reverted.len(), 2, "{r:?}");
    assert_eq!(
        exchange_held(&g),
        vec![(
            format!("/Users/{eve}"),
            EXCHANGE_RECIPIENT_MANAGEMENT.to_owned()
        )],
        "both drifts removed, the unmanaged role kept"
    );
    assert_eq!(events_named(&admin, "target.drift").await.len(), 2);
}

async fn a_missing_exchange_permission_is_named_by_the_target_test(app: TestApp) {
    let g = double().await;
    let admin = admin(&app).await;
    exchange_target(&admin, &g, None).await;
    g.set_permissions(&[ROLE_PERMISSION]);
    let t = admin.test_target(TARGET).await.expect("test");
    assert!(!t.ok);
    assert_eq!(t.problems.len(), 1, "{t:?}");
    assert!(t.problems[0].contains(EXCHANGE_PERMISSION), "{t:?}");
    // Consent given: nothing missing.
    g.set_permissions(&[ROLE_PERMISSION, EXCHANGE_PERMISSION]);
    let t = admin.test_target(TARGET).await.expect("test");
    assert!(t.ok, "{t:?}");
}

async fn bad_exchange_rights_are_refused_at_binding_and_nothing_is_stored(app: TestApp) {
    let g = double().await;
    let admin = admin(&app).await;
    admin
        .create_target(&entra_request(&g, SECRET, None))
        .await
        .expect("add msgraph target");
    custom_role(&admin).await;
    for (right, says) in [
        (
            "exchange:not-a-guid".to_owned(),
            "is not an Exchange Online role definition id",
        ),
        (
            format!(
                "exchange:{EXCHANGE_ORGANIZATION_MANAGEMENT}@/administrativeUnits/5d6b6bb7-de71-4623-b4af-96380a352509"
            ),
            "organisation-wide only",
        ),
    ] {
        let e = admin
            .bind_role(
                TARGET,
                DB_ROLE,
                &portcullis_core::api::BindRoleRequest {
                    grants: vec![right.clone()],
                    mode: None,
                    ssh: None,
                },
            )
            .await
            .expect_err("refused");
        assert_eq!(e.code(), Some("invalid_request"), "{right}: {e}");
        assert!(e.to_string().contains(says), "{right}: {e}");
    }
    let t = admin.target(TARGET).await.expect("show");
    assert!(t.bindings.is_empty(), "nothing stored: {:?}", t.bindings);
}
