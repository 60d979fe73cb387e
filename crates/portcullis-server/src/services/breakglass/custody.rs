//! Creating break-glass accounts and re-splitting them: custodians from the directory, the threshold, a password within the policy, FIDO2 enrolment.

use super::*;

/// The password custody of a request: custodians (domain rules, then the directory) and the
/// threshold; the password long enough and within the policy.
pub(super) async fn password_custody(
    state: &AppState,
    name: &PrincipalName,
    password: &str,
    custodians: &[String],
    threshold: Option<u32>,
    force: bool,
) -> Result<(Custodians, Threshold), ApiError> {
    let c = Custodians::parse(custodians.iter()).map_err(invalid)?;
    let t = threshold.ok_or_else(|| ApiError::bad_request("threshold is required"))?;
    let t = Threshold::new(t as usize, &c, force).map_err(invalid)?;
    let names: Vec<String> = c.as_slice().iter().map(|n| n.to_string()).collect();
    if names.iter().any(|n| n == name.as_str()) {
        return Err(ApiError::bad_request(
            "a break-glass account cannot be its own custodian",
        ));
    }
    directory_people(state, &names).await?;
    check_password_input(password)?;
    if password.chars().count() < PASSWORD_LEN {
        return Err(ApiError::new(
            ErrorCode::PasswordPolicy,
            format!(
                "a break-glass password has at least {PASSWORD_LEN} random characters (portcullis breakglass create generates one)"
            ),
        ));
    }
    check_password(password, name.as_str(), None, true)?;
    Ok((c, t))
}

pub async fn create(
    state: &AppState,
    caller: &Caller,
    req: CreateBreakGlassRequest,
) -> Result<BreakGlassCreated, ApiError> {
    caller.require(perm::BREAKGLASS_MANAGE)?;
    let display = req
        .display_name
        .clone()
        .unwrap_or_else(|| format!("Emergency access {}", req.name));
    let v = validate_user(&req.name, &display, None, None, None)?;
    let now = OffsetDateTime::now_utc();
    let id = new_id("u");
    let mut changes = Vec::new();
    // Written after the custody row the verifier column lives on.
    let mut verifier_after = Vec::new();
    let (custody, details) = match req.credential.as_str() {
        "password" => {
            if req.key_holder.is_some() || req.pin_holder.is_some() {
                return Err(ApiError::bad_request(
                    "key_holder and pin_holder are for fido2 accounts",
                ));
            }
            let pw = req
                .password
                .as_deref()
                .ok_or_else(|| ApiError::bad_request("password is required"))?;
            let (c, t) = password_custody(
                state,
                &v.name,
                pw,
                &req.custodians,
                req.threshold,
                req.force,
            )
            .await?;
            let phc = state
                .passwords
                .hash(&SecretString::from(pw.to_owned()))
                .await?;
            changes.push(Change::SetPassword {
                principal_id: id.clone(),
                phc,
                at_us: us(now),
            });
            verifier_after.push(Change::SetBreakGlassVerifier {
                principal_id: id.clone(),
                verifier: verifier(state, &id, pw),
            });
            let names: Vec<String> = c.as_slice().iter().map(|n| n.to_string()).collect();
            let details = serde_json::json!({
                "credential": "password", "custodians": names, "threshold": t.get(),
                "forced": req.force && t.get() == 1,
            });
            (
                NewBreakGlass {
                    principal_id: id.clone(),
                    credential: "password".into(),
                    custodians: serde_json::to_string(&names).map_err(ApiError::internal)?,
                    threshold: t.get() as i64,
                    key_holder: None,
                    pin_holder: None,
                    created_by: caller.actor(),
                    created_at_us: us(now),
                },
                details,
            )
        }
        "fido2" => {
            if req.password.is_some() || !req.custodians.is_empty() || req.threshold.is_some() {
                return Err(ApiError::bad_request(
                    "a fido2 account has a key holder and a PIN holder, not a password, custodians or threshold",
                ));
            }
            let (Some(key), Some(pin)) = (req.key_holder.as_deref(), req.pin_holder.as_deref())
            else {
                return Err(ApiError::bad_request(
                    "key_holder and pin_holder are required for a fido2 account",
                ));
            };
            let key = PrincipalName::parse("key_holder", key).map_err(invalid)?;
            let pin = PrincipalName::parse("pin_holder", pin).map_err(invalid)?;
            if key == pin {
                return Err(ApiError::bad_request(
                    "the key holder and the PIN holder must be two different people",
                ));
            }
            let names = vec![key.to_string(), pin.to_string()];
            directory_people(state, &names).await?;
            (
                NewBreakGlass {
                    principal_id: id.clone(),
                    credential: "fido2".into(),
                    custodians: serde_json::to_string(&names).map_err(ApiError::internal)?,
                    threshold: 0,
                    key_holder: Some(key.to_string()),
                    pin_holder: Some(pin.to_string()),
                    created_by: caller.actor(),
                    created_at_us: us(now),
                },
                serde_json::json!({ "credential": "fido2", "key_holder": key.as_str(), "pin_holder": pin.as_str() }),
            )
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "credential {other:?} must be password or fido2"
            )));
        }
    };
    let principal = NewPrincipal {
        id: id.clone(),
        name: v.name.to_string(),
        kind: PrincipalKind::User,
        display_name: v.display_name.clone(),
        email: None,
        phone: None,
        guest_organisation: None,
        role_assignable: false,
        emergency: true,
        privileged: true,
        first_admin: false,
        created_at_us: us(now),
    };
    let fido2 = custody.credential == "fido2";
    let mut all = vec![Change::CreatePrincipal(principal.clone())];
    all.append(&mut changes);
    all.push(Change::CreateBreakGlass(custody));
    all.extend(verifier_after);
    all.push(Change::CreateAssignment(NewAssignment {
        id: format!("a_breakglass_{id}"),
        principal_id: id.clone(),
        role: "global-administrator".into(),
        scope: "/".into(),
        kind: portcullis_core::roles::AssignmentKind::Active,
        starts_at_us: us(now),
        ends_at_us: None,
        created_by: caller.actor(),
        created_at_us: us(now),
    }));
    // A FIDO2 account starts with a registration-only session for the key holder.
    let mut enrolment: Option<SessionIssued> = None;
    if fido2 {
        let (issued, session) = enrolment_session(state, &id, caller, now);
        all.push(session);
        enrolment = Some(issued);
    }
    let mut details = details;
    if let Some(d) = details.as_object_mut() {
        d.insert(
            "roles".into(),
            serde_json::json!(["global-administrator (permanent, active)"]),
        );
    }
    let ev = event(caller, "breakglass.created", format!("user:{}", v.name)).details(details);
    state
        .store
        .write(Change::Many(all), vec![ev])
        .await
        .map_err(|e| {
            crate::services::support::conflict_to_exists(
                e,
                "a user, group or service account with that name exists",
            )
        })?;
    state.breakglass.forget();
    let account = view_of(state, &id).await?;
    Ok(BreakGlassCreated {
        account,
        enrolment_token: enrolment.map(|s| s.token),
        tenant: readiness(state).await?,
    })
}

/// A registration-only session of a FIDO2 account, for its key holder to register the key.
pub(super) fn enrolment_session(
    state: &AppState,
    principal_id: &str,
    caller: &Caller,
    now: OffsetDateTime,
) -> (SessionIssued, Change) {
    let client = ClientInfo {
        ip: "enrolment".into(),
        user_agent: format!("enrolment issued by {}", caller.actor()),
    };
    new_session(
        state,
        principal_id,
        AuthStrength::Password,
        SessionScope::RegistrationOnly,
        &client,
        now,
    )
}

/// A new enrolment token for a FIDO2 account that has no security key yet (the first one
/// expired unused); earlier tokens end.
pub async fn reissue_enrolment(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<BreakGlassEnrolment, ApiError> {
    caller.require(perm::BREAKGLASS_MANAGE)?;
    let a = account_named(state, name).await?;
    if a.credential != "fido2" || a.has_credential {
        return Err(credential_error(
            "only a FIDO2 account without a registered security key gets a new enrolment token",
        ));
    }
    let now = OffsetDateTime::now_utc();
    let (issued, session) = enrolment_session(state, &a.principal.id, caller, now);
    let change = Change::Many(vec![
        Change::RevokeSessionsOf {
            principal_id: a.principal.id.clone(),
            except: None,
            at_us: us(now),
        },
        session,
    ]);
    let ev = event(
        caller,
        "breakglass.enrolment_issued",
        format!("user:{}", a.principal.name),
    )
    .details(serde_json::json!({ "session_id": issued.session_id }));
    state.store.write(change, vec![ev]).await?;
    Ok(BreakGlassEnrolment {
        account: a.principal.name,
        enrolment_token: issued.token,
        expires_at: issued.expires_at,
    })
}

/// A break-glass account by name, or `not_found`.
pub(super) async fn account_named(
    state: &AppState,
    name: &str,
) -> Result<BreakGlassAccount, ApiError> {
    let name = PrincipalName::parse("name", name).map_err(invalid)?;
    let not_found = || ApiError::not_found(format!("no break-glass account named {name}"));
    let p = state
        .store
        .principal_by_name(name.as_str())
        .await?
        .filter(|p| p.emergency)
        .ok_or_else(not_found)?;
    state
        .store
        .breakglass_account(&p.id)
        .await?
        .ok_or_else(not_found)
}

/// A new split for a password account: new hash and custody; its sessions end.
pub async fn rotate(
    state: &AppState,
    caller: &Caller,
    name: &str,
    req: RotateBreakGlassRequest,
) -> Result<BreakGlassView, ApiError> {
    caller.require(perm::BREAKGLASS_MANAGE)?;
    let a = account_named(state, name).await?;
    if a.credential != "password" {
        return Err(credential_error(
            "only a password account is re-split; a fido2 account changes its key by registering a new one",
        ));
    }
    let pname = PrincipalName::parse("name", &a.principal.name).map_err(invalid)?;
    let (c, t) = password_custody(
        state,
        &pname,
        &req.password,
        &req.custodians,
        Some(req.threshold),
        req.force,
    )
    .await?;
    let phc = state
        .passwords
        .hash(&SecretString::from(req.password.clone()))
        .await?;
    let now = OffsetDateTime::now_utc();
    let names: Vec<String> = c.as_slice().iter().map(|n| n.to_string()).collect();
    let change = Change::Many(vec![
        Change::SetPassword {
            principal_id: a.principal.id.clone(),
            phc,
            at_us: us(now),
        },
        Change::SetBreakGlassVerifier {
            principal_id: a.principal.id.clone(),
            verifier: verifier(state, &a.principal.id, &req.password),
        },
        Change::UpdateBreakGlassCustody {
            principal_id: a.principal.id.clone(),
            custodians: serde_json::to_string(&names).map_err(ApiError::internal)?,
            threshold: t.get() as i64,
        },
        Change::RevokeSessionsOf {
            principal_id: a.principal.id.clone(),
            except: None,
            at_us: us(now),
        },
    ]);
    let ev = event(caller, "breakglass.rotated", format!("user:{}", a.principal.name)).details(
        serde_json::json!({ "custodians": names, "threshold": t.get(), "forced": req.force && t.get() == 1 }),
    );
    state.store.write(change, vec![ev]).await?;
    view_of(state, &a.principal.id).await
}
