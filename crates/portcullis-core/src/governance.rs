//! Four eyes on the PAM's own settings: which changes weaken it, and the change requests that
//! hold them until a second top-tier person approves (or, where no other exists, a cooling-off
//! period passes).
//!
//! Invariants:
//! - A weakening change to a privileged role's settings never applies on one person's word:
//!   it becomes a change request. Strengthening (or neutral) changes apply at once.
//! - Nobody approves their own change request; the approver is a person (never a service or
//!   break-glass account) who is top tier now, signed in with at least `mfa`.
//! - Where no other person can reach the top tier, the change takes effect after the cooling-off
//!   period (default [`COOLING_OFF`]) and can be cancelled until then; it alerts at request and
//!   at effect.
//! - A change request moves `pending → applied | denied | cancelled` once (conditional writes).

use time::Duration;

use crate::conditional_access::{GrantControl, Policy, PolicyState, Selection};
use crate::error::ErrorCode;
use crate::roles::RoleSettings;

/// How long a weakening change of a lone top-tier person waits before it takes effect.
pub const COOLING_OFF: Duration = Duration::hours(24);

/// How a role-settings change weakens the role's protection; empty when it does not.
pub fn settings_weakenings(old: &RoleSettings, new: &RoleSettings) -> Vec<&'static str> {
    let mut w = Vec::new();
    if old.require_approval && !new.require_approval {
        w.push("approval_removed");
    }
    if new.require_approval
        && old.require_approval
        && new.approvals_required < old.approvals_required
    {
        w.push("fewer_approvals");
    }
    // Replacing approvers is how one would name an accomplice: any approver removed counts.
    if new.require_approval && old.approvers.iter().any(|a| !new.approvers.contains(a)) {
        w.push("approver_removed");
    }
    if new.required_strength < old.required_strength {
        w.push("weaker_strength");
    }
    if new.max_activation > old.max_activation {
        w.push("longer_activation");
    }
    if old.require_justification && !new.require_justification {
        w.push("justification_removed");
    }
    if old.require_ticket && !new.require_ticket {
        w.push("ticket_removed");
    }
    if longer(old.max_eligible_seconds, new.max_eligible_seconds) {
        w.push("longer_eligibility");
    }
    if longer(old.max_active_seconds, new.max_active_seconds) {
        w.push("longer_active_assignments");
    }
    if !old.allow_permanent_active && new.allow_permanent_active {
        w.push("permanent_active_allowed");
    }
    w
}

/// Whether a maximum (`None`: none) grew.
fn longer(old: Option<i64>, new: Option<i64>) -> bool {
    match (old, new) {
        (Some(_), None) => true,
        (Some(o), Some(n)) => n > o,
        (None, _) => false,
    }
}

/// How replacing conditional-access policy `old` by `new` (`None`: deleted) weakens what it
/// enforces; empty when it does not. Only an enabled policy enforces anything, so a policy in
/// report-only or disabled state never weakens. Whether `old` applies to a privileged role is
/// the caller's to decide (it needs the roles and their holders).
///
/// A policy is a requirement added on top of the others, so the change weakens it when the
/// new one applies to fewer sign-ins (a selection narrowed: an inclusion gone or an exclusion
/// added; or a condition that was "any" now limited) or asks less of them (a block dropped, a
/// weaker strength, a longer or no sign-in frequency). A selection changed in any other way is
/// counted as narrowed: whether two different lists cover the same sign-ins is not decided
/// here, and the safe answer is to ask a second person.
pub fn policy_weakenings(old: &Policy, new: Option<&Policy>) -> Vec<&'static str> {
    if old.state() != PolicyState::Enabled {
        return Vec::new();
    }
    let Some(new) = new else {
        return vec!["policy_deleted"];
    };
    if new.state() != PolicyState::Enabled {
        return vec!["policy_disabled"];
    }
    let mut w = Vec::new();
    let (o, n) = (old.conditions(), new.conditions());
    if narrows(Some(&o.principals), Some(&n.principals)) {
        w.push("principals_narrowed");
    }
    if narrows(o.applications.as_ref(), n.applications.as_ref())
        || narrows(o.locations.as_ref(), n.locations.as_ref())
        || narrows(o.strengths.as_ref(), n.strengths.as_ref())
        || narrows(
            o.authentication_flows.as_ref(),
            n.authentication_flows.as_ref(),
        )
    {
        w.push("conditions_narrowed");
    }
    let weaker_grant = match (old.grant(), new.grant()) {
        (None, _) | (Some(GrantControl::Block), Some(GrantControl::Block)) => false,
        (Some(GrantControl::Block), _) | (Some(_), None) => true,
        (Some(GrantControl::Require(_)), Some(GrantControl::Block)) => false,
        (Some(GrantControl::Require(a)), Some(GrantControl::Require(b))) => b < a,
    };
    if weaker_grant {
        w.push("weaker_control");
    }
    let longer_frequency = match (old.sign_in_frequency_hours(), new.sign_in_frequency_hours()) {
        (Some(_), None) => true,
        (Some(a), Some(b)) => b > a,
        (None, _) => false,
    };
    if longer_frequency {
        w.push("longer_sign_in_frequency");
    }
    w
}

/// Whether selection `new` may cover less than `old` (`None`: everything). It covers at least
/// as much when it is everything, or keeps every inclusion and adds no exclusion.
fn narrows<T: PartialEq>(old: Option<&Selection<T>>, new: Option<&Selection<T>>) -> bool {
    match (old, new) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(o), Some(n)) => {
            o.include.iter().any(|x| !n.include.contains(x))
                || n.exclude.iter().any(|x| !o.exclude.contains(x))
        }
    }
}

/// Where a change request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeState {
    Pending,
    Applied,
    Denied,
    Cancelled,
}

impl ChangeState {
    pub const ALL: [ChangeState; 4] = [Self::Pending, Self::Applied, Self::Denied, Self::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Applied => "applied",
            Self::Denied => "denied",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeApprovalError {
    #[error("nobody approves their own change request")]
    SelfApproval,
    #[error("approvers of a change are people; a service or break-glass account never approves")]
    NotAPerson,
    #[error(
        "approving a change to the PAM's settings needs a top-tier role held now (Global or Privileged Role Administrator, activated)"
    )]
    NotTopTier,
    #[error("approvers must be signed in with a second factor")]
    NeedsMfa,
    #[error("this change request is {0}, not pending")]
    NotPending(&'static str),
}

impl ChangeApprovalError {
    /// The stable code the server answers with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::SelfApproval => ErrorCode::SelfApproval,
            Self::NotAPerson | Self::NotTopTier => ErrorCode::Forbidden,
            Self::NeedsMfa => ErrorCode::StepUpRequired,
            Self::NotPending(_) => ErrorCode::AlreadyDecided,
        }
    }
}

/// Who is deciding on a change request.
#[derive(Debug, Clone, Copy)]
pub struct ChangeApprover<'a> {
    pub id: &'a str,
    /// A person: a member or guest, not a service or break-glass account.
    pub person: bool,
    /// Holds the top-tier permission at `/` now.
    pub top_tier: bool,
    pub mfa: bool,
}

/// Whether `approver` may approve (or deny) a change requested by `requester_id` that is in
/// `state`.
pub fn check_change_approval(
    requester_id: &str,
    state: ChangeState,
    approver: &ChangeApprover,
) -> Result<(), ChangeApprovalError> {
    if state != ChangeState::Pending {
        return Err(ChangeApprovalError::NotPending(state.as_str()));
    }
    if approver.id == requester_id {
        return Err(ChangeApprovalError::SelfApproval);
    }
    if !approver.person {
        return Err(ChangeApprovalError::NotAPerson);
    }
    if !approver.top_tier {
        return Err(ChangeApprovalError::NotTopTier);
    }
    if !approver.mfa {
        return Err(ChangeApprovalError::NeedsMfa);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roles::BuiltinRole;
    use crate::session::AuthStrength;

    fn ga() -> RoleSettings {
        let mut s = RoleSettings::defaults_for(Some(BuiltinRole::GlobalAdministrator));
        s.approvers = vec!["group:ga-approvers".into(), "user:bob".into()];
        s.approvals_required = 2;
        s
    }

    type Edit = Box<dyn Fn(&mut RoleSettings)>;

    #[test]
    fn each_weakening_is_named() {
        let old = ga();
        let cases: Vec<(&str, Edit)> = vec![
            ("approval_removed", Box::new(|s| s.require_approval = false)),
            ("fewer_approvals", Box::new(|s| s.approvals_required = 1)),
            (
                "approver_removed",
                Box::new(|s| s.approvers = vec!["user:bob".into()]),
            ),
            (
                "weaker_strength",
                Box::new(|s| s.required_strength = AuthStrength::Mfa),
            ),
            ("longer_activation", Box::new(|s| s.max_activation = 7200)),
            (
                "justification_removed",
                Box::new(|s| s.require_justification = false),
            ),
            (
                "longer_active_assignments",
                Box::new(|s| s.max_active_seconds = None),
            ),
            (
                "permanent_active_allowed",
                Box::new(|s| s.allow_permanent_active = true),
            ),
        ];
        for (name, f) in cases {
            let mut new = old.clone();
            f(&mut new);
            assert_eq!(settings_weakenings(&old, &new), vec![name], "{name}");
        }
    }

    #[test]
    fn strengthening_and_neutral_changes_are_not_weakenings() {
        let old = ga();
        let mut new = old.clone();
        new.approvers.push("user:carol".into());
        new.approvals_required = 3;
        new.max_activation = 1800;
        new.require_ticket = true;
        new.notify = vec!["secops@example.com".into()];
        assert!(settings_weakenings(&old, &new).is_empty());
        // Naming the first approvers of a role that had none removes nobody.
        let mut bare = RoleSettings::defaults_for(Some(BuiltinRole::GlobalAdministrator));
        bare.approvers.clear();
        assert!(settings_weakenings(&bare, &old).is_empty());
        // Approvers of a role that no longer needs approval are moot; the removal of the
        // approval itself is what is named.
        let mut off = old.clone();
        off.require_approval = false;
        off.approvers.clear();
        assert_eq!(settings_weakenings(&old, &off), vec!["approval_removed"]);
    }

    #[test]
    fn approvals_of_changes() {
        let ok = ChangeApprover {
            id: "u_bob",
            person: true,
            top_tier: true,
            mfa: true,
        };
        assert_eq!(
            check_change_approval("u_ada", ChangeState::Pending, &ok),
            Ok(())
        );
        assert_eq!(
            check_change_approval("u_bob", ChangeState::Pending, &ok),
            Err(ChangeApprovalError::SelfApproval)
        );
        assert_eq!(
            check_change_approval(
                "u_ada",
                ChangeState::Pending,
                &ChangeApprover {
                    top_tier: false,
                    ..ok
                }
            ),
            Err(ChangeApprovalError::NotTopTier)
        );
        assert_eq!(
            check_change_approval(
                "u_ada",
                ChangeState::Pending,
                &ChangeApprover {
                    person: false,
                    ..ok
                }
            ),
            Err(ChangeApprovalError::NotAPerson)
        );
        assert_eq!(
            check_change_approval(
                "u_ada",
                ChangeState::Pending,
                &ChangeApprover { mfa: false, ..ok }
            )
            .map_err(|e| e.code()),
            Err(ErrorCode::StepUpRequired)
        );
        assert_eq!(
            check_change_approval("u_ada", ChangeState::Cancelled, &ok),
            Err(ChangeApprovalError::NotPending("cancelled"))
        );
    }

    fn policy(state: &str, conditions: serde_json::Value, grant: serde_json::Value) -> Policy {
        serde_json::from_value(serde_json::json!({
            "name": "admins-mfa", "state": state, "conditions": conditions, "grant": grant,
            "session": {"sign_in_frequency_hours": 8},
        }))
        .expect("a valid policy")
    }

    fn admins() -> Policy {
        policy(
            "enabled",
            serde_json::json!({"principals": {"include": ["role:global-administrator"], "exclude": ["group:ops"]}}),
            serde_json::json!({"require": "phishing_resistant"}),
        )
    }

    #[test]
    fn deleting_or_disabling_an_enforced_policy_weakens_it() {
        assert_eq!(policy_weakenings(&admins(), None), ["policy_deleted"]);
        for to in [PolicyState::ReportOnly, PolicyState::Disabled] {
            let new = admins().with_state(to);
            assert_eq!(
                policy_weakenings(&admins(), Some(&new)),
                ["policy_disabled"]
            );
        }
    }

    #[test]
    fn a_policy_that_enforces_nothing_cannot_be_weakened() {
        for from in [PolicyState::ReportOnly, PolicyState::Disabled] {
            let old = admins().with_state(from);
            assert!(policy_weakenings(&old, None).is_empty());
        }
        let enabling = admins();
        assert!(
            policy_weakenings(&admins().with_state(PolicyState::Disabled), Some(&enabling))
                .is_empty()
        );
    }

    #[test]
    fn each_policy_weakening_is_named() {
        let cases = [
            (
                "principals_narrowed",
                serde_json::json!({"principals": {"include": ["role:helpdesk"], "exclude": ["group:ops"]}}),
                serde_json::json!({"require": "phishing_resistant"}),
            ),
            (
                "principals_narrowed",
                serde_json::json!({"principals": {"include": ["role:global-administrator"], "exclude": ["group:ops", "user:mallory"]}}),
                serde_json::json!({"require": "phishing_resistant"}),
            ),
            (
                "conditions_narrowed",
                serde_json::json!({"principals": {"include": ["role:global-administrator"], "exclude": ["group:ops"]}, "applications": {"include": ["cli"]}}),
                serde_json::json!({"require": "phishing_resistant"}),
            ),
            (
                "weaker_control",
                serde_json::json!({"principals": {"include": ["role:global-administrator"], "exclude": ["group:ops"]}}),
                serde_json::json!({"require": "mfa"}),
            ),
        ];
        for (name, conditions, grant) in cases {
            let new = policy("enabled", conditions, grant);
            assert_eq!(policy_weakenings(&admins(), Some(&new)), [name], "{name}");
        }
        let longer: Policy = serde_json::from_value(serde_json::json!({
            "name": "admins-mfa", "state": "enabled",
            "conditions": {"principals": {"include": ["role:global-administrator"], "exclude": ["group:ops"]}},
            "grant": {"require": "phishing_resistant"},
        }))
        .expect("a valid policy");
        assert_eq!(
            policy_weakenings(&admins(), Some(&longer)),
            ["longer_sign_in_frequency"]
        );
    }

    #[test]
    fn strengthening_a_policy_is_not_a_weakening() {
        let wider = policy(
            "enabled",
            serde_json::json!({"principals": {"include": ["role:global-administrator", "role:helpdesk"]}}),
            serde_json::json!({"block": true}),
        );
        assert!(policy_weakenings(&admins(), Some(&wider)).is_empty());
        assert!(policy_weakenings(&admins(), Some(&admins())).is_empty());
    }
}
