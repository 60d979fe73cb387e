//! The posture report (`portcullis posture`, `GET /api/v1/posture`): the tenant's facts read
//! at one moment and judged by `portcullis_core::posture` (SCuBA MS.AAD.7.1–7.9 and PIM's
//! alerts), and the daily digest the posture worker records.
//!
//! Invariants:
//! - Reading the report changes nothing; it needs `posture.read`.
//! - People reached through role-assignable groups count like direct holders.
//! - The counts on `/metrics` (`portcullis_posture_findings`) come from the same evaluation,
//!   at most a second old (the caches' rule), so a flood of scrapes costs one evaluation a
//!   second.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use portcullis_core::api::{PostureFindingView, PostureReport};
use portcullis_core::posture::{
    self, AccountFacts, ChannelFacts, Eligibility, Facts, Finding, GaReach, RoleFacts, Severity,
    StandingGrant,
};
use portcullis_core::roles::perm;
use portcullis_core::session::AuthStrength;
use portcullis_store::AuditFilter;
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::services::caller::Caller;
use crate::state::AppState;
use crate::time_us::{from_us, rfc3339, us};

/// The tenant's facts at `now`.
pub async fn facts(state: &AppState, now: OffsetDateTime) -> Result<Facts, ApiError> {
    let rows = state
        .store
        .posture_rows(us(now), us(now - posture::FREQUENT_WINDOW))
        .await?;
    let roles = crate::services::grants::all_roles(state).await?;
    let mut role_facts = Vec::new();
    let mut privileged_roles = BTreeSet::new();
    for def in &roles {
        let privileged = def.tier().is_privileged();
        if privileged {
            privileged_roles.insert(def.slug.clone());
        }
        let s = crate::services::roles::settings(state, def).await?;
        role_facts.push(RoleFacts {
            slug: def.slug.clone(),
            privileged,
            weaker_than_mfa: s.required_strength < AuthStrength::Mfa,
            require_approval: s.require_approval,
        });
    }
    let members: BTreeMap<&str, Vec<&str>> =
        rows.group_members
            .iter()
            .fold(BTreeMap::new(), |mut m, (g, u)| {
                m.entry(g.as_str()).or_default().push(u.as_str());
                m
            });
    let ga: BTreeSet<&str> = rows.global_admins.iter().map(|(n, _)| n.as_str()).collect();
    let mut other_privileged = BTreeSet::new();
    let mut privileged_people = BTreeSet::new();
    let mut standing = Vec::new();
    let mut eligibilities = Vec::new();
    let mut first_admins = BTreeSet::new();
    let mut accounts: BTreeMap<String, AccountFacts> = BTreeMap::new();
    for a in &rows.assignments {
        let privileged = privileged_roles.contains(&a.role);
        if a.first_admin
            && a.enabled
            && a.kind == "active"
            && a.role == portcullis_core::alerts::GLOBAL_ADMINISTRATOR
        {
            first_admins.insert(a.principal.clone());
        }
        if privileged && a.kind == "active" && a.ends_at_us.is_none() {
            standing.push(StandingGrant {
                principal: a.principal.clone(),
                role: a.role.clone(),
                emergency: a.emergency || a.first_admin,
            });
        }
        if a.kind == "eligible" && a.enabled {
            eligibilities.push(Eligibility {
                principal: a.principal.clone(),
                role: a.role.clone(),
                created: from_us(a.created_at_us),
                last_activated: a.last_activated_us.map(from_us),
            });
        }
        if !privileged || a.emergency || !a.enabled {
            continue;
        }
        let people: Vec<&str> = match a.principal_kind.as_str() {
            "user" => vec![a.principal.as_str()],
            "group" => members
                .get(a.principal.as_str())
                .cloned()
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        for p in people {
            privileged_people.insert(p.to_owned());
            if !ga.contains(p) {
                other_privileged.insert(p.to_owned());
            }
        }
        if a.principal_kind == "user" {
            accounts.entry(a.principal.clone()).or_insert(AccountFacts {
                name: a.principal.clone(),
                created: from_us(a.principal_created_at_us),
                last_sign_in: a.last_sign_in_us.map(from_us),
            });
        }
    }
    let drift = state
        .store
        .list_events(&AuditFilter {
            action: Some("target.drift".into()),
            since_us: Some(us(now - posture::DRIFT_WINDOW)),
            limit: 1000,
            ..AuditFilter::default()
        })
        .await?
        .into_iter()
        .map(|e| {
            let text = |k: &str| e.details[k].as_str().unwrap_or("").to_owned();
            (e.target.clone(), text("holder"), text("right"))
        })
        .collect();
    let rules = state.store.alert_rules().await?;
    let readiness = crate::services::breakglass::readiness(state).await?;
    let drills_overdue = state
        .store
        .breakglass_accounts()
        .await?
        .iter()
        .filter(|a| {
            crate::services::breakglass::drill_overdue(a, now, state.breakglass.drill_max_age)
        })
        .map(|a| a.principal.name.clone())
        .collect();
    Ok(Facts {
        global_admins: rows
            .global_admins
            .iter()
            .map(|(name, standing)| GaReach {
                name: name.clone(),
                standing: *standing,
            })
            .collect(),
        other_privileged_people: other_privileged.len(),
        standing_privileged: standing,
        recent_drift: drift,
        roles: role_facts,
        assignment_alert_rule: rules.iter().any(|r| r.rule.action == "assignment.created"),
        activation_alert_rule: rules.iter().any(|r| r.rule.action == "request.activated"),
        channels: rows
            .channels
            .iter()
            .map(|(name, ok)| ChannelFacts {
                name: name.clone(),
                last_success: ok.map(from_us),
            })
            .collect(),
        eligibilities,
        activations: rows
            .activations
            .iter()
            .map(|(p, r, n)| (p.clone(), r.clone(), usize::try_from(*n).unwrap_or(0)))
            .collect(),
        privileged_accounts: accounts.into_values().collect(),
        breakglass_usable: readiness.breakglass_accounts,
        breakglass_required: readiness.breakglass_required,
        drills_overdue,
        first_admins_standing: first_admins.into_iter().collect(),
    })
}

fn count(findings: &[Finding], s: Severity) -> usize {
    findings.iter().filter(|f| f.severity == s).count()
}

/// The report at `now` (no permission check: for the worker and the API's handler below).
pub async fn evaluate(state: &AppState, now: OffsetDateTime) -> Result<PostureReport, ApiError> {
    let findings = posture::evaluate(&facts(state, now).await?, now);
    Ok(PostureReport {
        generated_at: rfc3339(us(now)),
        high: count(&findings, Severity::High),
        medium: count(&findings, Severity::Medium),
        low: count(&findings, Severity::Low),
        findings: findings
            .into_iter()
            .map(|f| PostureFindingView {
                id: f.id.to_owned(),
                severity: f.severity.as_str().to_owned(),
                title: f.title,
                evidence: f.evidence,
                fix: f.fix,
            })
            .collect(),
    })
}

/// `GET /api/v1/posture`.
pub async fn report(state: &AppState, caller: &Caller) -> Result<PostureReport, ApiError> {
    caller.require(perm::POSTURE_READ)?;
    evaluate(state, OffsetDateTime::now_utc()).await
}

/// Findings per severity for `/metrics` (high, medium, low), through the cache.
pub async fn counts(state: &AppState) -> Result<Arc<[usize; 3]>, ApiError> {
    state
        .caches
        .posture
        .get_or_load(&(), async {
            let r = evaluate(state, OffsetDateTime::now_utc()).await?;
            Ok::<_, ApiError>(Arc::new([r.high, r.medium, r.low]))
        })
        .await
}
