//! Applying target operations and comparing targets with the desired state: what the target
//! worker ([`crate::workers::targets`]) runs, and what `targets observe` and `targets reconcile`
//! call.
//!
//! Invariants:
//! - One attempt is one claim (a conditional update that lapses after [`CLAIM_FOR`]), one
//!   connector call and one recorded outcome; a claim lost meanwhile records nothing.
//! - A revoke takes away every right any earlier grant of the same grant carried there, except
//!   the rights another live grant of the same principal still needs there.
//! - Applied operations are audited (`target.granted`, `target.revoked`, with how late a
//!   revoke was after the grant's end); the first failure of a revoke and a dead-lettered
//!   grant are audited as alerts. Failed attempts are recorded with the operation.
//! - Drift (a right held at the target that no live grant means, and that no pending operation
//!   is about to change) is audited and alerted on every reconciliation that finds it; with `drift = "revert"` it is removed and that is
//!   audited too. A right that a live grant means and the target lacks is granted again
//!   through an ordinary operation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use portcullis_core::audit::{NewAuditEvent, Outcome};
use portcullis_store::targets::{LiveGrant, NewCredential, Target, TargetOp, TargetOpAttempt};
use portcullis_store::{Change, MasterKey, Store, StoreError};
use secrecy::ExposeSecret;
use time::OffsetDateTime;

use super::grants_of;
use crate::services::support::new_id;
use crate::targets::{Connector, Held, Issued, TargetError, TargetGrant};
use crate::time_us::{rfc3339, us};

/// How long a claim holds before another worker may take the operation over (a worker killed
/// mid-attempt). Longer than a connector call can take (a PostgreSQL connection gives up after
/// 5 s, a webhook after 10 s); an attempt repeated after a lapse changes nothing (operations
/// are idempotent).
pub const CLAIM_FOR: time::Duration = time::Duration::seconds(30);

/// Target operations and reconciliation, with a connector per target kept between uses.
#[derive(Clone)]
pub struct Engine {
    store: Store,
    master: Arc<MasterKey>,
    worker: String,
    connectors: Arc<Mutex<Connectors>>,
}

/// Connectors by target name, with the creation time of the target each was built for.
type Connectors = HashMap<String, (i64, Arc<Connector>)>;

/// What a target holds against what it must hold.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    pub observable: bool,
    /// Held there, with the grant that means each right (if any).
    pub held: Vec<(Held, Option<String>)>,
    /// Meant by a live grant (its id), not held.
    pub missing: Vec<(Held, String)>,
    /// Held, meant by no live grant.
    pub drift: Vec<Held>,
    /// msgraph with emergency accounts: what the tenant should fix.
    pub findings: Vec<crate::targets::msgraph::Finding>,
}

/// What the tenant watch of an msgraph target remembers between polls (a setting).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct WatchState {
    /// Ids of the sign-ins already alerted on, within the lookback.
    seen: Vec<String>,
    /// The findings of the last poll (`code: message`).
    findings: Vec<String>,
    /// The tenant was found without Entra ID P1 and that was said.
    no_premium_reported: bool,
}

fn target_grant(o: &TargetOp, rights: Vec<String>) -> TargetGrant {
    TargetGrant {
        id: o.grant_id.clone(),
        person: o.principal_name.clone(),
        role: o.role.clone(),
        scope: format!("/targets/{}", o.target),
        target_grants: rights,
        starts_at: rfc3339(o.starts_at_us),
        ends_at: o.ends_at_us.map(rfc3339),
        mode: o.mode.clone(),
        account: o.account.clone(),
        account_id: o.account_id.clone(),
    }
}

fn live_grant(target: &str, g: &LiveGrant) -> TargetGrant {
    TargetGrant {
        id: g.id.clone(),
        person: g.principal_name.clone(),
        role: g.role.clone(),
        scope: format!("/targets/{target}"),
        target_grants: grants_of(&g.grants),
        starts_at: rfc3339(g.starts_at_us),
        ends_at: g.ends_at_us.map(rfc3339),
        mode: g.mode.clone(),
        account: g.account.clone(),
        account_id: g.account_id.clone(),
    }
}

impl Engine {
    pub fn new(store: Store, master: Arc<MasterKey>) -> Self {
        Self {
            store,
            master,
            worker: new_id("tw"),
            connectors: Arc::default(),
        }
    }

    /// The connector of `t`, built once per target (and again if it was re-created).
    pub fn connector(&self, t: &Target) -> Result<Arc<Connector>, TargetError> {
        if let Ok(cache) = self.connectors.lock()
            && let Some((created, c)) = cache.get(&t.name)
            && *created == t.created_at_us
        {
            return Ok(c.clone());
        }
        let c = Arc::new(super::connector(&self.master, t)?);
        if let Ok(mut cache) = self.connectors.lock() {
            cache.insert(t.name.clone(), (t.created_at_us, c.clone()));
        }
        Ok(c)
    }

    /// One attempt at operation `id`: claim, apply, record. False when it was not claimed.
    pub async fn attempt(&self, id: i64) -> Result<bool, StoreError> {
        let started = OffsetDateTime::now_utc();
        let claim = Change::ClaimTargetOp {
            id,
            worker: self.worker.clone(),
            now_us: us(started),
            until_us: us(started + CLAIM_FOR),
        };
        match self.store.write(claim, vec![]).await {
            Ok(_) => {}
            Err(StoreError::Conflict(_)) => return Ok(false),
            Err(e) => return Err(e),
        }
        let Some(o) = self.store.target_op(id).await? else {
            return Ok(false);
        };
        let result = self.apply(&o).await;
        let finished = OffsetDateTime::now_utc();
        let revoke = o.op == "revoke";
        let attempt = o.attempts;
        let mut events = Vec::new();
        let details = |extra: serde_json::Value| {
            let mut d = serde_json::json!({
                "operation": o.id, "op": o.op, "grant_id": o.grant_id, "person": o.principal_name,
                "role": o.role, "target_grants": grants_of(&o.target_grants), "reason": o.reason,
                "attempt": attempt,
            });
            if let (Some(d), Some(account)) = (d.as_object_mut(), &o.account) {
                d.insert("account".into(), account.clone().into());
            }
            if let (Some(d), Some(extra)) = (d.as_object_mut(), extra.as_object()) {
                d.extend(extra.clone());
            }
            d
        };
        let target = format!("target:{}", o.target);
        let outcome = match &result {
            Ok(issued) => {
                // How late a revoke was after the grant's end (a grant that had reached its end
                // when the revoke was written), or after the revoke was written (an early end):
                // the figure invariant 3 is about.
                let late_ms = revoke.then(|| {
                    let from = match o.ends_at_us {
                        Some(end) if end <= o.created_at_us => end,
                        _ => o.created_at_us,
                    };
                    (us(finished) - from) / 1000
                });
                events.push(
                    NewAuditEvent::new(
                        "system:targets",
                        if revoke {
                            "target.revoked"
                        } else {
                            "target.granted"
                        },
                        target.clone(),
                    )
                    .details(details(serde_json::json!({ "late_ms": late_ms }))),
                );
                TargetOpAttempt {
                    id,
                    worker: self.worker.clone(),
                    attempt,
                    started_at_us: us(started),
                    finished_at_us: us(finished),
                    applied: true,
                    detail: None,
                    retry_at_us: None,
                    reported: false,
                    credential: issued.as_ref().map(|i| NewCredential {
                        login: i.login.clone(),
                        sealed_password: self.master.seal(
                            &super::credential_aad(&o.target, &o.grant_id),
                            i.password.expose_secret().as_bytes(),
                        ),
                    }),
                }
            }
            Err(e) => {
                let in_budget = attempt - o.budget_from;
                let again = portcullis_core::targets::retries(revoke, in_budget);
                let error = e.to_string();
                tracing::warn!(target = %o.target, operation = o.id, op = %o.op, error = %error, "target operation failed");
                let report = if revoke { !o.failure_reported } else { !again };
                if report {
                    events.push(
                        NewAuditEvent::new(
                            "system:targets",
                            if revoke {
                                "target.revoke_failed"
                            } else {
                                "target.operation_dead"
                            },
                            target.clone(),
                        )
                        .outcome(Outcome::Failure)
                        .details(details(serde_json::json!({ "error": error }))),
                    );
                }
                TargetOpAttempt {
                    id,
                    worker: self.worker.clone(),
                    attempt,
                    started_at_us: us(started),
                    finished_at_us: us(finished),
                    applied: false,
                    detail: Some(error),
                    retry_at_us: again
                        .then(|| us(finished + portcullis_core::targets::backoff(in_budget))),
                    reported: report,
                    credential: None,
                }
            }
        };
        match self
            .store
            .write(Change::FinishTargetOp(outcome), events)
            .await
        {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(true),
            Err(e) => Err(e),
        }
    }

    async fn apply(&self, o: &TargetOp) -> Result<Option<Issued>, TargetError> {
        let t = self
            .store
            .target(&o.target)
            .await
            .map_err(|_| TargetError::Unreachable("the store cannot be read".into()))?
            .ok_or_else(|| TargetError::Config(format!("target {} is gone", o.target)))?;
        let c = self.connector(&t)?;
        let op_id = format!("top_{}", o.id);
        if o.op == "grant" {
            return c
                .grant(&target_grant(o, grants_of(&o.target_grants)), &op_id)
                .await;
        }
        // Everything any grant of this grant carried here, whatever the binding says now.
        let mut rights = grants_of(&o.target_grants);
        for json in self
            .store
            .granted_rights(&o.target, &o.grant_id, o.id)
            .await
            .map_err(|_| TargetError::Unreachable("the store cannot be read".into()))?
        {
            rights.extend(grants_of(&json));
        }
        rights.sort();
        rights.dedup();
        // What the principal's other live grants still need here stays.
        let now = OffsetDateTime::now_utc();
        let keep: Vec<Held> = self
            .store
            .live_target_grants(&o.target, us(now))
            .await
            .map_err(|_| TargetError::Unreachable("the store cannot be read".into()))?
            .iter()
            .filter(|g| g.principal_name == o.principal_name && g.id != o.grant_id)
            .flat_map(|g| c.desired(&live_grant(&o.target, g)))
            .collect();
        c.revoke(&target_grant(o, rights), &op_id, &keep)
            .await
            .map(|()| None)
    }

    /// What `target` holds against what it must hold now.
    pub async fn observe(&self, t: &Target) -> Result<Observation, TargetError> {
        let read = |_| TargetError::Unreachable("the store cannot be read".into());
        let c = self.connector(t)?;
        let managed = super::managed_rights(&self.store, &t.name)
            .await
            .map_err(read)?;
        let now = OffsetDateTime::now_utc();
        let live = self
            .store
            .live_target_grants(&t.name, us(now))
            .await
            .map_err(read)?;
        let mut meant: Vec<(Held, String)> = live
            .iter()
            .flat_map(|g| {
                c.desired(&live_grant(&t.name, g))
                    .into_iter()
                    .map(|h| (h, g.id.clone()))
            })
            .collect();
        meant.sort();
        if let Connector::SshCa(_) = &*c {
            // Its live certificates are what it holds; a grant needs no certificate, so
            // nothing is ever missing.
            let mut held: Vec<Held> = super::ssh::live_rights(&self.store, &t.name, us(now))
                .await
                .map_err(read)?
                .into_iter()
                .map(|(h, _)| h)
                .collect();
            held.sort();
            held.dedup();
            let wanted: Vec<Held> = meant.iter().map(|(h, _)| h.clone()).collect();
            let (_, drift) = portcullis_core::targets::diff(&wanted, &held);
            let grant_of = |h: &Held| meant.iter().find(|(m, _)| m == h).map(|(_, id)| id.clone());
            return Ok(Observation {
                observable: true,
                held: held.iter().map(|h| (h.clone(), grant_of(h))).collect(),
                missing: Vec::new(),
                drift,
                findings: Vec::new(),
            });
        }
        let Some(held) = c.observe(&managed).await? else {
            return Ok(Observation::default());
        };
        // Rights an operation not yet applied will change are neither missing nor drift: a
        // grant on its way, or a revoke waiting for an unreachable target, is not a right given
        // outside Portcullis.
        let in_flight: Vec<Held> = self
            .store
            .target_ops(Some(&t.name), Some("pending"), 10_000)
            .await
            .map_err(read)?
            .iter()
            .flat_map(|o| c.desired(&target_grant(o, grants_of(&o.target_grants))))
            .collect();
        let wanted: Vec<Held> = meant.iter().map(|(h, _)| h.clone()).collect();
        let (missing, drift) = portcullis_core::targets::diff(&wanted, &held);
        let (missing, drift): (Vec<Held>, Vec<Held>) = (
            missing
                .into_iter()
                .filter(|h| !in_flight.contains(h))
                .collect(),
            drift
                .into_iter()
                .filter(|h| !in_flight.contains(h))
                .collect(),
        );
        // A tenant's own emergency accounts hold Global Administrator permanently on purpose:
        // not drift (their posture is checked apart).
        let drift: Vec<Held> = match &*c {
            Connector::MsGraph(g) => drift
                .into_iter()
                .filter(|h| {
                    !(h.right == crate::targets::msgraph::GLOBAL_ADMINISTRATOR
                        && g.emergency_accounts
                            .iter()
                            .any(|e| e.eq_ignore_ascii_case(&h.holder)))
                })
                .collect(),
            _ => drift,
        };
        let grant_of = |h: &Held| meant.iter().find(|(m, _)| m == h).map(|(_, id)| id.clone());
        let findings = match &*c {
            Connector::MsGraph(g) => {
                let mut f = if g.emergency_accounts.is_empty() {
                    Vec::new()
                } else {
                    g.posture(&g.emergency_accounts).await?
                };
                f.extend(crate::targets::msgraph::standing_findings(&held, &drift));
                f.sort();
                f
            }
            _ => Vec::new(),
        };
        Ok(Observation {
            observable: true,
            held: held.iter().map(|h| (h.clone(), grant_of(h))).collect(),
            missing: missing
                .iter()
                .filter_map(|h| grant_of(h).map(|id| (h.clone(), id)))
                .collect(),
            drift,
            findings,
        })
    }

    /// Observes `t` and acts on it: missing grants are written again, drift is audited and
    /// alerted (and removed with `drift = "revert"`). Returns the observation and what was
    /// reverted.
    pub async fn reconcile(
        &self,
        t: &Target,
        actor: &str,
    ) -> Result<(Observation, Vec<Held>), TargetError> {
        let seen = self.observe(t).await?;
        let now = OffsetDateTime::now_utc();
        let mut reapplied: Vec<&String> = seen.missing.iter().map(|(_, id)| id).collect();
        reapplied.sort();
        reapplied.dedup();
        let target = format!("target:{}", t.name);
        for id in reapplied {
            let rights: Vec<&Held> = seen
                .missing
                .iter()
                .filter(|(_, g)| g == id)
                .map(|(h, _)| h)
                .collect();
            let ev = NewAuditEvent::new(actor, "target.reapplied", target.clone())
                .details(serde_json::json!({ "grant_id": id, "missing": rights }));
            let change = Change::ReapplyTargetGrant {
                target: t.name.clone(),
                grant_id: id.clone(),
                at_us: us(now),
            };
            if let Err(e) = self.store.write(change, vec![ev]).await {
                tracing::warn!(target = %t.name, error = %e, "cannot write a grant again");
            }
        }
        let revert = t.drift_mode == "revert";
        let c = self.connector(t)?;
        let mut reverted = Vec::new();
        for h in &seen.drift {
            let removed = if revert {
                let result = match &*c {
                    Connector::SshCa(_) => self.revoke_certificates(t, h).await,
                    _ => c
                        .remove(h, &format!("drift_{}", new_id("d")))
                        .await
                        .map_err(|e| e.to_string()),
                };
                match result {
                    Ok(()) => {
                        reverted.push(h.clone());
                        Some(Ok(()))
                    }
                    Err(e) => Some(Err(e)),
                }
            } else {
                None
            };
            let ev = NewAuditEvent::new(actor, "target.drift", target.clone()).details(
                serde_json::json!({
                    "holder": h.holder, "right": h.right, "drift": t.drift_mode,
                    "reverted": matches!(removed, Some(Ok(()))),
                    "revert_error": removed.and_then(|r| r.err()),
                }),
            );
            if let Err(e) = self.store.append(ev).await {
                tracing::warn!(target = %t.name, error = %e, "cannot record drift");
            }
        }
        if let Connector::MsGraph(g) = &*c {
            self.watch_tenant(t, g, &seen.findings).await;
        }
        Ok((seen, reverted))
    }

    /// The tenant watch: every sign-in of its own break-glass accounts in the sign-in logs
    /// raises the critical `breakglass.activity` alert (once per record, whatever its delay);
    /// a tenant without Entra ID P1 is said to be one, once; each new finding (about those
    /// accounts, standing Global Administrators, apps holding a mapped role) is a critical
    /// `target.tenant_posture` alert. What was seen is kept in a setting.
    async fn watch_tenant(
        &self,
        t: &Target,
        g: &crate::targets::msgraph::MsGraph,
        findings: &[crate::targets::msgraph::Finding],
    ) {
        use crate::targets::msgraph::{SIGN_IN_LOOKBACK, SignIns};
        let key = format!("target.watch:{}", t.name);
        let stored = match self.store.setting(&key).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(target = %t.name, error = %e, "cannot read the tenant watch state");
                return;
            }
        };
        let mut state: WatchState = stored
            .as_deref()
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or_default();
        let now = OffsetDateTime::now_utc();
        let since = (now - SIGN_IN_LOOKBACK).max(crate::time_us::from_us(t.created_at_us));
        let since = since
            .replace_nanosecond(0)
            .unwrap_or(since)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let target = format!("target:{}", t.name);
        let mut events = Vec::new();
        let sign_ins = if g.emergency_accounts.is_empty() {
            Ok(SignIns::Read(Vec::new()))
        } else {
            g.sign_ins(&g.emergency_accounts, &since).await
        };
        match sign_ins {
            Ok(SignIns::Read(list)) => {
                for s in &list {
                    if state.seen.contains(&s.id) {
                        continue;
                    }
                    let ev = NewAuditEvent::new(
                        format!("system:tenant-watch:{}", t.name),
                        "breakglass.entra_signin",
                        target.clone(),
                    )
                    .outcome(if s.error_code == 0 {
                        Outcome::Success
                    } else {
                        Outcome::Failure
                    })
                    .details(serde_json::json!({
                        "emergency": true, "upn": s.upn, "ip": s.ip, "app": s.app,
                        "error_code": s.error_code, "failure_reason": s.failure_reason,
                        "sign_in_id": s.id, "created": s.created,
                    }));
                    events.push(ev);
                }
                // Records older than the lookback are not asked for again: only these ids
                // need remembering.
                state.seen = list.into_iter().map(|s| s.id).collect();
            }
            Ok(SignIns::NoPremium) => {
                if !state.no_premium_reported {
                    state.no_premium_reported = true;
                    events.push(
                        NewAuditEvent::new("system:tenant-watch", "target.monitoring_unavailable", target.clone())
                            .outcome(Outcome::Failure)
                            .details(serde_json::json!({
                                "reason": "the tenant has no Entra ID P1: its sign-in logs cannot be read, so sign-ins of its emergency accounts are not alerted on; the other checks go on",
                                "alert": true,
                            })),
                    );
                }
            }
            Err(e) => {
                tracing::warn!(target = %t.name, error = %e, "cannot read the tenant's sign-in logs");
            }
        }
        let now_findings: Vec<String> = findings
            .iter()
            .map(|f| format!("{}: {}", f.code, f.message))
            .collect();
        for f in findings {
            let line = format!("{}: {}", f.code, f.message);
            if !state.findings.contains(&line) {
                events.push(
                    NewAuditEvent::new(
                        "system:tenant-watch",
                        "target.tenant_finding",
                        target.clone(),
                    )
                    .details(serde_json::json!({ "code": f.code, "message": f.message })),
                );
            }
        }
        state.findings = now_findings;
        let value = serde_json::to_string(&state).unwrap_or_default();
        // A poll that saw nothing new writes nothing: a setting's write moves the cache epoch,
        // which every replica's caches would pay for each minute.
        if events.is_empty() && stored.as_deref() == Some(value.as_str()) {
            return;
        }
        if let Err(e) = self
            .store
            .write(Change::SetSetting { key, value }, events)
            .await
        {
            tracing::warn!(target = %t.name, error = %e, "cannot record the tenant watch");
        }
    }

    /// Drift at an ssh-ca target reverted: every live certificate that lets `h.holder` log in
    /// as `h.right` is revoked.
    async fn revoke_certificates(&self, t: &Target, h: &Held) -> Result<(), String> {
        let now = us(OffsetDateTime::now_utc());
        let serials: Vec<i64> = super::ssh::live_rights(&self.store, &t.name, now)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|(held, _)| held == h)
            .map(|(_, serial)| serial)
            .collect();
        let change = Change::RevokeSshCertificates {
            target: t.name.clone(),
            serials,
            reason: "drift".into(),
            at_us: now,
        };
        self.store
            .write(change, vec![])
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
