//! The first administrator: redeeming the bootstrap token, once.

use super::*;
use crate::services::support::ConflictExt;

/// Redeems the bootstrap token: creates the first administrator with a password and a
/// confirmed TOTP factor, in one transaction that also marks the token used.
pub async fn bootstrap(
    state: &AppState,
    client: &ClientInfo,
    req: BootstrapRequest,
) -> Result<UserView, ApiError> {
    let now = OffsetDateTime::now_utc();
    if req.token.is_empty()
        || req.token.len() > 512
        || !state.store.bootstrap_token_valid(&req.token, now).await?
    {
        state
            .store
            .append(NewAuditEvent::new("anonymous", "bootstrap.redeem", "tenant").outcome(Outcome::Failure).details(serde_json::json!({ "reason": "invalid_or_used_token", "client_ip": client.ip })))
            .await?;
        return Err(ApiError::new(
            ErrorCode::BootstrapUnavailable,
            "the bootstrap token is invalid, expired or already used",
        ));
    }
    let v = validate_user(
        &req.username,
        &req.display_name,
        req.email.as_deref(),
        None,
        None,
    )?;
    check_password(&req.password, v.name.as_str(), v.email.as_deref(), true)?;
    let secret = totp::base32_decode(&req.totp_secret)
        .filter(|s| s.len() >= 16 && s.len() <= 64)
        .ok_or_else(|| ApiError::bad_request("totp_secret must be base32 of 16 to 64 bytes"))?;
    let step = totp::verify(
        &secret,
        &req.totp_code,
        now.unix_timestamp().max(0) as u64,
        None,
    )
    .map_err(totp_error)?;
    let phc = state
        .passwords
        .hash(&SecretString::from(req.password))
        .await?;
    let id = new_id("u");
    let factor_id = new_id("f");
    let change = Change::Many(vec![
        Change::RedeemBootstrapToken {
            token_hash: token_hash(&req.token),
            at_us: us(now),
        },
        Change::CreatePrincipal(NewPrincipal {
            id: id.clone(),
            name: v.name.to_string(),
            kind: PrincipalKind::User,
            display_name: v.display_name,
            email: v.email,
            phone: None,
            guest_organisation: None,
            role_assignable: false,
            emergency: false,
            privileged: true,
            first_admin: true,
            created_at_us: us(now),
        }),
        Change::SetPassword {
            principal_id: id.clone(),
            phc,
            at_us: us(now),
        },
        // The first administrator holds Global Administrator permanently (someone has to set
        // the tenant up); whoami warns until it is replaced by an eligible assignment.
        Change::CreateAssignment(NewAssignment {
            id: format!("a_first_admin_{id}"),
            principal_id: id.clone(),
            role: "global-administrator".into(),
            scope: "/".into(),
            kind: portcullis_core::roles::AssignmentKind::Active,
            starts_at_us: us(now),
            ends_at_us: None,
            created_by: "bootstrap".into(),
            created_at_us: us(now),
        }),
        Change::AddTotpFactor(portcullis_store::NewTotpFactor {
            id: factor_id.clone(),
            principal_id: id,
            name: "authenticator".into(),
            sealed_secret: state
                .master
                .seal(&format!("mfa_factor:{factor_id}"), &secret),
            confirmed: true,
            last_step: Some(step as i64),
            at_us: us(now),
        }),
    ]);
    let events = vec![
        NewAuditEvent::new("bootstrap-token", "bootstrap.redeemed", "tenant").details(serde_json::json!({ "first_admin": v.name.as_str(), "client_ip": client.ip })),
        NewAuditEvent::new("bootstrap-token", "user.created", format!("user:{}", v.name)).details(serde_json::json!({ "first_admin": true, "roles": ["Global Administrator (permanent, active)"] })),
    ];
    state.store.write(change, events).await.on_conflict(|| {
        ApiError::new(
            ErrorCode::BootstrapUnavailable,
            "the bootstrap token was used concurrently, or the name is taken",
        )
    })?;
    let p = get_principal(state, v.name.as_str(), PrincipalKind::User).await?;
    user_view(state, &p).await
}
