//! What-if: the decision conditional access would take for a subject, an application, an
//! address and a strength, with every policy's explanation.

use super::*;

/// How the current policies would decide a hypothetical sign-in, with every policy explained.
pub async fn what_if(
    state: &AppState,
    caller: &Caller,
    req: WhatIfRequest,
) -> Result<serde_json::Value, ApiError> {
    caller.require(perm::CA_READ)?;
    let user = portcullis_core::principal::PrincipalName::parse("user", &req.user)
        .map_err(crate::services::support::invalid)?;
    let hours = req.hours_since_sign_in.unwrap_or(0);
    if hours > portcullis_core::conditional_access::MAX_SIGN_IN_FREQUENCY_HOURS + 1 {
        return Err(ApiError::bad_request(format!(
            "hours_since_sign_in is at most {}",
            portcullis_core::conditional_access::MAX_SIGN_IN_FREQUENCY_HOURS + 1
        )));
    }
    let p = state
        .store
        .principal_by_name(user.as_str())
        .await?
        .filter(|p| p.kind != PrincipalKind::Group)
        .ok_or_else(|| {
            ApiError::not_found(format!("no user or service account named {}", req.user))
        })?;
    let ip: IpAddr = req
        .ip
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{:?} is not an IP address", req.ip)))?;
    let (application, flow) = whatif_route(req.app.as_deref(), req.flow.as_deref())?;
    let strength = match req.strength.as_deref() {
        None => strongest(state, &p).await?,
        Some(s) => AuthStrength::parse(s).ok_or_else(|| {
            ApiError::bad_request("strength must be password, mfa or phishing_resistant")
        })?,
    };
    let now = OffsetDateTime::now_utc();
    let hours = i64::from(hours);
    let loaded = load(state).await?;
    let ctx = SignInContext {
        subject: subject(state, &p, now).await?,
        application,
        ip,
        strength,
        authenticated_at: (hours > 0).then(|| now - time::Duration::hours(hours)),
        flow,
    };
    let d = loaded.compiled.what_if(&ctx, now);
    serde_json::to_value(&d).map_err(ApiError::internal)
}
