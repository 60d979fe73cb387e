//! The posture report: what a tenant's own configuration says about its privileged access,
//! as findings with a severity, the evidence and the fix. The checks follow CISA's SCuBA
//! baseline for privileged access (MS.AAD.7.1–7.9) as they apply to Portcullis, and the alerts
//! Entra PIM raises (roles without MFA or approval, stale eligibility, too many activations,
//! dormant accounts, break-glass readiness, the first administrator, untested alert channels).
//!
//! Invariants:
//! - [`evaluate`] is pure: the facts and the time in, the findings out, in a stable order
//!   (severity, then id), each id at most once, so a report can be diffed and counted.
//! - A finding never names a secret: only principal names, role slugs, channel names, targets.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// Global Administrators a tenant should have at least (MS.AAD.7.1)…
pub const MIN_GLOBAL_ADMINS: usize = 2;
/// …and at most.
pub const MAX_GLOBAL_ADMINS: usize = 8;
/// An eligible assignment not activated for this long is stale (PIM's default).
pub const STALE_AFTER: Duration = Duration::days(90);
/// An account not signed in for this long is dormant.
pub const DORMANT_AFTER: Duration = Duration::days(90);
/// Activations of one role by one person within [`FREQUENT_WINDOW`] beyond this are too many.
pub const FREQUENT_ACTIVATIONS: usize = 10;
pub const FREQUENT_WINDOW: Duration = Duration::days(7);
/// Drift found within this long counts as provisioning outside the PAM (MS.AAD.7.5).
pub const DRIFT_WINDOW: Duration = Duration::days(30);

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    High,
    Medium,
    Low,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
        }
    }
    pub const ALL: [Severity; 3] = [Self::High, Self::Medium, Self::Low];
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `MS.AAD.7.1` for a SCuBA policy, `pim.*` / `portcullis.*` for the others.
    pub id: &'static str,
    pub severity: Severity,
    pub title: String,
    /// What was seen (names, counts, times).
    pub evidence: Vec<String>,
    /// What to do about it.
    pub fix: String,
}

/// A person who can reach Global Administrator at the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GaReach {
    pub name: String,
    /// Holds it standing (an active assignment, or the first administrator's bootstrap grant).
    pub standing: bool,
}

/// An active assignment of a privileged role without an end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandingGrant {
    pub principal: String,
    pub role: String,
    pub emergency: bool,
}

/// An eligible assignment and when it was last activated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eligibility {
    pub principal: String,
    pub role: String,
    pub created: OffsetDateTime,
    pub last_activated: Option<OffsetDateTime>,
}

/// A role and what its settings ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleFacts {
    pub slug: String,
    pub privileged: bool,
    /// Below `mfa`: a password alone activates it.
    pub weaker_than_mfa: bool,
    pub require_approval: bool,
}

/// An alert channel and its last successful delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelFacts {
    pub name: String,
    pub last_success: Option<OffsetDateTime>,
}

/// An account that can sign in and hold privilege, and when it last did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountFacts {
    pub name: String,
    pub created: OffsetDateTime,
    pub last_sign_in: Option<OffsetDateTime>,
}

/// What [`evaluate`] judges, read at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub global_admins: Vec<GaReach>,
    /// People holding privileged roles other than Global Administrator (MS.AAD.7.2).
    pub other_privileged_people: usize,
    pub standing_privileged: Vec<StandingGrant>,
    /// `(target, holder, right)` drift found within [`DRIFT_WINDOW`].
    pub recent_drift: Vec<(String, String, String)>,
    pub roles: Vec<RoleFacts>,
    /// Custom alert rules on `assignment.created` and on `request.activated`.
    pub assignment_alert_rule: bool,
    pub activation_alert_rule: bool,
    pub channels: Vec<ChannelFacts>,
    pub eligibilities: Vec<Eligibility>,
    /// `(person, role, activations)` within [`FREQUENT_WINDOW`].
    pub activations: Vec<(String, String, usize)>,
    /// Enabled people who hold, or are eligible for, a privileged role.
    pub privileged_accounts: Vec<AccountFacts>,
    pub breakglass_usable: i64,
    pub breakglass_required: i64,
    pub drills_overdue: Vec<String>,
    /// First administrators who still hold Global Administrator standing.
    pub first_admins_standing: Vec<String>,
}

fn when(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The findings for `f` at `now`, most severe first.
pub fn evaluate(f: &Facts, now: OffsetDateTime) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut add = |id: &'static str, severity, title: String, evidence: Vec<String>, fix: &str| {
        out.push(Finding {
            id,
            severity,
            title,
            evidence,
            fix: fix.to_owned(),
        })
    };
    let ga = f.global_admins.len();
    if !(MIN_GLOBAL_ADMINS..=MAX_GLOBAL_ADMINS).contains(&ga) {
        add(
            "MS.AAD.7.1",
            Severity::High,
            format!(
                "{ga} people can reach Global Administrator; keep between {MIN_GLOBAL_ADMINS} and {MAX_GLOBAL_ADMINS}"
            ),
            f.global_admins.iter().map(|g| g.name.clone()).collect(),
            if ga < MIN_GLOBAL_ADMINS {
                "make a second person eligible: portcullis assign NAME global-administrator --eligible"
            } else {
                "give the others a finer-grained role and end their Global Administrator assignments"
            },
        );
    }
    if ga > f.other_privileged_people.max(1) {
        add(
            "MS.AAD.7.2",
            Severity::Medium,
            format!(
                "{ga} people can reach Global Administrator and {} hold only finer-grained privileged roles",
                f.other_privileged_people
            ),
            Vec::new(),
            "give administrators the narrowest role that does their work (Privileged Role, Security, Helpdesk, Service Administrator)",
        );
    }
    let standing: Vec<String> = f
        .standing_privileged
        .iter()
        .filter(|s| !s.emergency)
        .map(|s| format!("{} holds {} standing", s.principal, s.role))
        .collect();
    if !standing.is_empty() {
        add(
            "MS.AAD.7.4",
            Severity::High,
            format!(
                "{} permanent active privileged assignment(s) outside the break-glass accounts",
                standing.len()
            ),
            standing,
            "make them eligible: portcullis make-eligible (or unassign and assign --eligible)",
        );
    }
    if !f.recent_drift.is_empty() {
        add(
            "MS.AAD.7.5",
            Severity::High,
            format!(
                "{} privileged grant(s) made outside Portcullis in the last {} days",
                f.recent_drift.len(),
                DRIFT_WINDOW.whole_days()
            ),
            f.recent_drift
                .iter()
                .map(|(t, h, r)| format!("{h} held {r} at {t}"))
                .collect(),
            "set the target's drift mode to revert, and find who granted it there",
        );
    }
    if f.roles
        .iter()
        .any(|r| r.slug == crate::alerts::GLOBAL_ADMINISTRATOR && !r.require_approval)
    {
        add(
            "MS.AAD.7.6",
            Severity::High,
            "activating Global Administrator does not require approval".into(),
            Vec::new(),
            "portcullis roles settings global-administrator --require-approval --approvers group:NAME",
        );
    }
    let reached: Vec<&ChannelFacts> = f
        .channels
        .iter()
        .filter(|c| c.last_success.is_some())
        .collect();
    if reached.is_empty() {
        add(
            "MS.AAD.7.8",
            Severity::High,
            "no alert channel has ever delivered: Global Administrator alerts reach nobody".into(),
            f.channels.iter().map(|c| c.name.clone()).collect(),
            "add a channel and test it: portcullis alerts channels add …, portcullis alerts test NAME",
        );
    }
    if !f.assignment_alert_rule {
        add(
            "MS.AAD.7.7",
            Severity::Medium,
            "assignments of privileged roles other than Global Administrator raise no alert".into(),
            Vec::new(),
            "add a rule: portcullis alerts rules add privileged-assignments --action assignment.created --count 1",
        );
    }
    if !f.activation_alert_rule {
        add(
            "MS.AAD.7.9",
            Severity::Low,
            "activations of privileged roles other than Global Administrator raise no alert".into(),
            Vec::new(),
            "add a rule: portcullis alerts rules add privileged-activations --action request.activated --count 1",
        );
    }
    let weak: Vec<String> = f
        .roles
        .iter()
        .filter(|r| r.privileged && r.weaker_than_mfa)
        .map(|r| r.slug.clone())
        .collect();
    if !weak.is_empty() {
        add(
            "pim.role_without_mfa",
            Severity::High,
            format!("{} privileged role(s) activate without MFA", weak.len()),
            weak,
            "portcullis roles settings ROLE --strength mfa (or phishing_resistant)",
        );
    }
    let no_approval: Vec<String> = f
        .roles
        .iter()
        .filter(|r| {
            r.privileged && !r.require_approval && r.slug != crate::alerts::GLOBAL_ADMINISTRATOR
        })
        .map(|r| r.slug.clone())
        .collect();
    if !no_approval.is_empty() {
        add(
            "pim.role_without_approval",
            Severity::Low,
            format!(
                "{} privileged role(s) activate without approval",
                no_approval.len()
            ),
            no_approval,
            "require approval where a second pair of eyes is worth the wait: portcullis roles settings ROLE --require-approval",
        );
    }
    let stale: Vec<String> = f
        .eligibilities
        .iter()
        .filter(|e| now - e.last_activated.unwrap_or(e.created) > STALE_AFTER)
        .map(|e| match e.last_activated {
            Some(t) => format!("{} for {}: last activated {}", e.principal, e.role, when(t)),
            None => format!(
                "{} for {}: never activated since {}",
                e.principal,
                e.role,
                when(e.created)
            ),
        })
        .collect();
    if !stale.is_empty() {
        add(
            "pim.stale_eligible",
            Severity::Medium,
            format!(
                "{} eligible assignment(s) not activated in {} days",
                stale.len(),
                STALE_AFTER.whole_days()
            ),
            stale,
            "remove what is not needed: portcullis unassign PRINCIPAL ROLE",
        );
    }
    let frequent: Vec<String> = f
        .activations
        .iter()
        .filter(|(_, _, n)| *n > FREQUENT_ACTIVATIONS)
        .map(|(p, r, n)| format!("{p} activated {r} {n} times"))
        .collect();
    if !frequent.is_empty() {
        add(
            "pim.frequent_activation",
            Severity::Low,
            format!(
                "roles activated more than {FREQUENT_ACTIVATIONS} times by one person in {} days",
                FREQUENT_WINDOW.whole_days()
            ),
            frequent,
            "check the role's maximum activation length, or whether the person needs a narrower standing role",
        );
    }
    let dormant: Vec<String> = f
        .privileged_accounts
        .iter()
        .filter(|a| now - a.last_sign_in.unwrap_or(a.created) > DORMANT_AFTER)
        .map(|a| match a.last_sign_in {
            Some(t) => format!("{}: last sign-in {}", a.name, when(t)),
            None => format!("{}: never signed in since {}", a.name, when(a.created)),
        })
        .collect();
    if !dormant.is_empty() {
        add(
            "pim.dormant_account",
            Severity::Medium,
            format!(
                "{} privileged account(s) not signed in for {} days",
                dormant.len(),
                DORMANT_AFTER.whole_days()
            ),
            dormant,
            "disable accounts nobody uses: portcullis users disable NAME",
        );
    }
    if f.breakglass_usable < f.breakglass_required {
        add(
            "portcullis.breakglass_minimum",
            Severity::High,
            format!(
                "{} usable break-glass account(s); {} required",
                f.breakglass_usable, f.breakglass_required
            ),
            Vec::new(),
            "portcullis breakglass create NAME --custodians … (each with Global Administrator)",
        );
    }
    if !f.drills_overdue.is_empty() {
        add(
            "portcullis.breakglass_drill_overdue",
            Severity::Medium,
            format!(
                "{} break-glass account(s) with an overdue drill",
                f.drills_overdue.len()
            ),
            f.drills_overdue.clone(),
            "run a drill: portcullis breakglass drill NAME",
        );
    }
    if !f.first_admins_standing.is_empty() {
        add(
            "portcullis.first_admin_standing",
            Severity::High,
            "the first administrator still holds Global Administrator standing".into(),
            f.first_admins_standing.clone(),
            "once two break-glass accounts exist: portcullis make-eligible global-administrator",
        );
    }
    let untested: Vec<String> = f
        .channels
        .iter()
        .filter(|c| c.last_success.is_none())
        .map(|c| c.name.clone())
        .collect();
    if !untested.is_empty() && !reached.is_empty() {
        add(
            "portcullis.alert_channel_untested",
            Severity::Medium,
            format!(
                "{} alert channel(s) never delivered successfully",
                untested.len()
            ),
            untested,
            "portcullis alerts test NAME, then check that it arrived",
        );
    }
    out.sort_by(|a, b| a.severity.cmp(&b.severity).then(a.id.cmp(b.id)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(days_ago: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(1000 - days_ago)
    }

    fn now() -> OffsetDateTime {
        t(0)
    }

    /// A tenant that passes every check.
    fn good() -> Facts {
        Facts {
            global_admins: vec![
                GaReach {
                    name: "ada".into(),
                    standing: false,
                },
                GaReach {
                    name: "grace".into(),
                    standing: false,
                },
            ],
            other_privileged_people: 3,
            roles: vec![RoleFacts {
                slug: "global-administrator".into(),
                privileged: true,
                weaker_than_mfa: false,
                require_approval: true,
            }],
            assignment_alert_rule: true,
            activation_alert_rule: true,
            channels: vec![ChannelFacts {
                name: "soc".into(),
                last_success: Some(t(1)),
            }],
            eligibilities: vec![Eligibility {
                principal: "ada".into(),
                role: "global-administrator".into(),
                created: t(400),
                last_activated: Some(t(10)),
            }],
            privileged_accounts: vec![AccountFacts {
                name: "ada".into(),
                created: t(400),
                last_sign_in: Some(t(2)),
            }],
            breakglass_usable: 2,
            breakglass_required: 2,
            ..Facts::default()
        }
    }

    fn ids(f: &Facts) -> Vec<&'static str> {
        evaluate(f, now()).iter().map(|x| x.id).collect()
    }

    #[test]
    fn a_good_tenant_has_no_findings() {
        assert!(evaluate(&good(), now()).is_empty());
    }

    #[test]
    fn global_administrators_between_two_and_eight() {
        let mut f = good();
        f.global_admins.truncate(1);
        assert_eq!(ids(&f), ["MS.AAD.7.1"]);
        f.global_admins = (0..9)
            .map(|i| GaReach {
                name: format!("p{i}"),
                standing: false,
            })
            .collect();
        f.other_privileged_people = 20;
        assert_eq!(ids(&f), ["MS.AAD.7.1"]);
    }

    #[test]
    fn standing_privilege_outside_breakglass_and_the_first_admin() {
        let mut f = good();
        f.standing_privileged = vec![
            StandingGrant {
                principal: "bg-one".into(),
                role: "global-administrator".into(),
                emergency: true,
            },
            StandingGrant {
                principal: "ada".into(),
                role: "security-administrator".into(),
                emergency: false,
            },
        ];
        f.first_admins_standing = vec!["root-admin".into()];
        let found = evaluate(&f, now());
        assert_eq!(
            found.iter().map(|x| x.id).collect::<Vec<_>>(),
            ["MS.AAD.7.4", "portcullis.first_admin_standing"]
        );
        assert_eq!(
            found[0].evidence,
            ["ada holds security-administrator standing"]
        );
    }

    #[test]
    fn approval_mfa_drift_and_alerting() {
        let mut f = good();
        f.roles[0].require_approval = false;
        f.roles.push(RoleFacts {
            slug: "helpdesk".into(),
            privileged: true,
            weaker_than_mfa: true,
            require_approval: false,
        });
        f.recent_drift = vec![("payroll-db".into(), "mallory".into(), "pct_reader".into())];
        f.assignment_alert_rule = false;
        f.activation_alert_rule = false;
        assert_eq!(
            ids(&f),
            [
                "MS.AAD.7.5",
                "MS.AAD.7.6",
                "pim.role_without_mfa",
                "MS.AAD.7.7",
                "MS.AAD.7.9",
                "pim.role_without_approval",
            ]
        );
    }

    #[test]
    fn channels_that_never_delivered() {
        let mut f = good();
        f.channels.push(ChannelFacts {
            name: "pager".into(),
            last_success: None,
        });
        assert_eq!(ids(&f), ["portcullis.alert_channel_untested"]);
        f.channels.retain(|c| c.last_success.is_none());
        assert_eq!(ids(&f), ["MS.AAD.7.8"]);
    }

    #[test]
    fn stale_eligibility_frequent_activation_dormancy_and_breakglass() {
        let mut f = good();
        f.eligibilities.push(Eligibility {
            principal: "grace".into(),
            role: "x".into(),
            created: t(200),
            last_activated: None,
        });
        f.activations = vec![
            ("ada".into(), "x".into(), 11),
            ("grace".into(), "x".into(), 10),
        ];
        f.privileged_accounts.push(AccountFacts {
            name: "linus".into(),
            created: t(120),
            last_sign_in: None,
        });
        f.breakglass_usable = 1;
        f.drills_overdue = vec!["bg-one".into()];
        let found = evaluate(&f, now());
        assert_eq!(
            found.iter().map(|x| x.id).collect::<Vec<_>>(),
            [
                "portcullis.breakglass_minimum",
                "pim.dormant_account",
                "pim.stale_eligible",
                "portcullis.breakglass_drill_overdue",
                "pim.frequent_activation",
            ]
        );
        let freq = found
            .iter()
            .find(|x| x.id == "pim.frequent_activation")
            .expect("frequent");
        assert_eq!(
            freq.evidence,
            ["ada activated x 11 times"],
            "10 is not too many"
        );
    }
}
