//! Attempts at a credential under throttling: reserved before the check, given back on
//! success, refused with 429 and audited when they must wait (break-glass never is).

use super::*;

/// The seconds to wait before `keys` admit another attempt (0: go ahead), from their counters
/// now: the one reading of the backoff policies, for sign-in and the token endpoint alike.
pub(crate) async fn throttle_wait(
    state: &AppState,
    keys: &[String],
    now: OffsetDateTime,
) -> Result<i64, portcullis_store::StoreError> {
    let counters: Vec<(String, i64, OffsetDateTime)> = state
        .store
        .throttle_counters(keys)
        .await?
        .into_iter()
        .map(|(k, n, last)| (k, n, from_us(last)))
        .collect();
    Ok(match portcullis_core::throttle::admit(&counters, now) {
        Ok(()) => 0,
        Err(wait) => wait.whole_seconds() + 1,
    })
}

/// One attempt at a person's credential under throttling (`portcullis_core::throttle`).
///
/// A reserved attempt is counted on its keys *before* the credential is checked (one
/// serialised write), so concurrent guesses cannot all pass a check that none has failed yet;
/// a success gives the reservation back. Break-glass accounts are never reserved or refused
/// before their credential is checked (invariant 4): their failures are counted afterwards,
/// and audited (so they alert), but a correct credential always goes through.
pub(crate) struct Attempt {
    keys: Vec<String>,
    reserved: bool,
}

impl Attempt {
    /// The keys of an attempt on account `name` (known as `p`, if it exists) from `client`:
    /// the account-wide key only from an address where the account has not signed in
    /// successfully lately (smart lockout).
    async fn keys(
        state: &AppState,
        p: Option<&Principal>,
        name: &str,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<Vec<String>, ApiError> {
        let familiar = match p {
            Some(p) => {
                state
                    .store
                    .familiar_address(
                        &p.id,
                        &portcullis_core::throttle::address_key(&client.ip),
                        us(now - portcullis_core::throttle::FAMILIAR_FOR),
                    )
                    .await?
            }
            None => false,
        };
        Ok(portcullis_core::throttle::signin_keys(
            name, &client.ip, familiar,
        ))
    }

    /// Reserves an attempt as `action` on account `name` (refused with 429 and audited while
    /// its counters must wait); break-glass accounts get an unreserved one.
    pub(crate) async fn reserve(
        state: &AppState,
        p: Option<&Principal>,
        name: &str,
        action: &str,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<Attempt, ApiError> {
        let keys = Self::keys(state, p, name, client, now).await?;
        if p.is_some_and(|p| p.emergency) {
            return Ok(Attempt {
                keys,
                reserved: false,
            });
        }
        Self::reserve_keys(state, keys, name, action, client, now).await
    }

    /// Reserves an attempt on explicit `keys`.
    pub(crate) async fn reserve_keys(
        state: &AppState,
        keys: Vec<String>,
        name: &str,
        action: &str,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<Attempt, ApiError> {
        let reserve = Change::ReserveAttempt {
            keys: keys.clone(),
            at_us: us(now),
        };
        match state.store.write(reserve, vec![]).await {
            Ok(_) => Ok(Attempt {
                keys,
                reserved: true,
            }),
            Err(StoreError::Conflict(m)) if m == portcullis_store::THROTTLED => {
                Err(throttled(state, &keys, name, action, client, now).await)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A step that costs nothing (a WebAuthn challenge): refused while throttled, not counted
    /// unless it fails.
    pub(crate) async fn check(
        state: &AppState,
        p: Option<&Principal>,
        name: &str,
        action: &str,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<Attempt, ApiError> {
        let keys = Self::keys(state, p, name, client, now).await?;
        let emergency = p.is_some_and(|p| p.emergency);
        if !emergency && throttle_wait(state, &keys, now).await? > 0 {
            return Err(throttled(state, &keys, name, action, client, now).await);
        }
        Ok(Attempt {
            keys,
            reserved: false,
        })
    }

    /// Records the failure `ev` (audited; counted now unless it was reserved).
    pub(crate) async fn failed(&self, state: &AppState, ev: NewAuditEvent) -> Result<(), ApiError> {
        self.failed_with(state, Change::None, ev).await
    }

    /// Records the failure `ev` together with `change` (a spent ceremony) in one write.
    pub(crate) async fn failed_with(
        &self,
        state: &AppState,
        change: Change,
        ev: NewAuditEvent,
    ) -> Result<(), ApiError> {
        let change = if self.reserved {
            change
        } else {
            Change::Many(vec![
                change,
                Change::RecordFailures {
                    keys: self.keys.clone(),
                    at_us: us(OffsetDateTime::now_utc()),
                },
            ])
        };
        state.store.write(change, vec![ev]).await?;
        Ok(())
    }

    /// The change a success writes: the reservation given back (or, unreserved, the account's
    /// counters cleared).
    pub(crate) fn succeeded(&self) -> Change {
        if self.reserved {
            Change::ReleaseAttempt {
                keys: self.keys.clone(),
            }
        } else {
            Change::ResetThrottle {
                keys: self
                    .keys
                    .iter()
                    .filter(|k| portcullis_core::throttle::ThrottleKey::cleared_by_success(k))
                    .cloned()
                    .collect(),
            }
        }
    }

    /// The change that gives this reservation back without clearing earlier failures: for a
    /// first step that passed while the sign-in is not complete (the password before its
    /// second factor), so the counters keep watching the step that follows.
    pub(crate) fn given_back(&self) -> Change {
        if self.reserved {
            Change::RefundAttempt {
                keys: self.keys.clone(),
            }
        } else {
            Change::None
        }
    }

    /// Gives a reservation back when the credential was never checked (the server was too
    /// busy to check it).
    pub(crate) async fn abandon(&self, state: &AppState) {
        if self.reserved
            && let Err(e) = state.store.write(self.given_back(), vec![]).await
        {
            tracing::warn!(error = %e, "could not give back a throttle reservation");
        }
    }
}

/// The refusal of a throttled attempt as `action` on `subject`: audited (a throttled attempt is
/// still an attempt, and one with a service account's name must raise its alert like any
/// other), answered 429 with `Retry-After`.
async fn throttled(
    state: &AppState,
    keys: &[String],
    subject: &str,
    action: &str,
    client: &ClientInfo,
    now: OffsetDateTime,
) -> ApiError {
    let wait = match throttle_wait(state, keys, now).await {
        Ok(w) => w.max(1),
        Err(e) => return e.into(),
    };
    let mut details = serde_json::json!({ "retry_after_seconds": wait });
    if let Ok(Some(p)) = state.store.principal_by_name(subject).await
        && p.kind == PrincipalKind::ServiceAccount
        && let Some(d) = details.as_object_mut()
    {
        d.insert("attempted_as".into(), "service_account".into());
    }
    let ev = signin_event(
        subject,
        action,
        Outcome::Failure,
        "throttled",
        client,
        details,
    );
    if let Err(e) = state.store.append(ev).await {
        return e.into();
    }
    ApiError::new(
        ErrorCode::TooManyAttempts,
        format!("too many failed attempts; try again in {wait} seconds"),
    )
    .retry_after(wait)
}
