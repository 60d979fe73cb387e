//! What a just-in-time activation costs: the store reads made on the request's own task before
//! its write (the session with its principal, the applying assignments, the active requests,
//! the role with its settings), also when the person already holds a custom role.

use super::*;
use portcullis_core::api::CreateRoleRequest;
use portcullis_server::services::caller::caller_from_bearer;
use portcullis_server::services::roles::create_request;
use time::OffsetDateTime;

/// The most reads an activation may make before its write (issue "a house with one direction").
const MAX_READS: u32 = 4;

const PW: &str = "quartz-harbor-lantern-71";

/// Activates `role` for the person behind `token` in-process, as the HTTP handler would (the
/// caller from the bearer token, then the service), and counts the store reads it made.
async fn reads_of_activation(app: &TestApp, token: &str, role: &str) -> u32 {
    let state = &app.state;
    let (view, reads) = portcullis_store::testing::counting_reads(async {
        let now = OffsetDateTime::now_utc();
        let caller = caller_from_bearer(state, token, "127.0.0.1", now)
            .await
            .expect("caller");
        create_request(state, &caller, ask(role, 600, Some("read count")))
            .await
            .expect("activated")
    })
    .await;
    assert_eq!(view.state, "active", "{role} activates without approval");
    reads
}

/// `name`, a person with TOTP eligible for each of `roles`, signed in: their session token.
async fn eligible_person(app: &TestApp, admin: &Client, name: &str, roles: &[&str]) -> String {
    let secret = user_with_totp(app, admin, name, name.to_uppercase(), None, PW).await;
    for role in roles {
        admin
            .create_assignment(&eligible(name, role, None))
            .await
            .expect("eligible");
    }
    sign_in_token(app, name, PW, &secret, 0).await
}

async fn an_activation_reads_at_most_four_times_before_its_write(app: TestApp) {
    let admin = admin(&app).await;
    let token = eligible_person(&app, &admin, "ada", &["helpdesk-administrator"]).await;
    let reads = reads_of_activation(&app, &token, "helpdesk-administrator").await;
    assert!(reads <= MAX_READS, "{reads} reads before the write");
}

async fn a_custom_role_holder_activates_in_as_few_reads(app: TestApp) {
    let admin = admin(&app).await;
    admin
        .create_role(&CreateRoleRequest {
            slug: "token-introspector".into(),
            display_name: None,
            description: String::new(),
            permissions: vec!["tokens.introspect".into()],
        })
        .await
        .expect("custom role");
    let roles = ["token-introspector", "helpdesk-administrator"];
    let token = eligible_person(&app, &admin, "bo", &roles).await;
    // The first activation makes a custom-role grant; the second counts with it held (its
    // permissions come with the grant, not from a read of every custom role).
    let first = reads_of_activation(&app, &token, "token-introspector").await;
    assert!(first <= MAX_READS, "{first} reads activating a custom role");
    let second = reads_of_activation(&app, &token, "helpdesk-administrator").await;
    assert!(
        second <= MAX_READS,
        "{second} reads with a custom role held"
    );
}

api_tests!(
    an_activation_reads_at_most_four_times_before_its_write,
    a_custom_role_holder_activates_in_as_few_reads,
);
