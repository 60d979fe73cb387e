//! Role settings and the durations they are written in. Invariant: no role is ever activated
//! with a password alone (at least `mfa`), and approval without an approver is refused.

use serde::{Deserialize, Serialize};
use time::Duration;

use super::RoleError;
use super::builtin::BuiltinRole;
use crate::session::AuthStrength;

const MAX_DAYS: i64 = 3650;

/// `90s`, `15m`, `8h`, `30d`.
pub fn parse_duration(s: &str) -> Result<Duration, RoleError> {
    let bad = || RoleError::BadDuration(s.chars().take(40).collect());
    // Split before the last character (not byte): a multi-byte unit is refused, never a panic.
    let cut = s.char_indices().last().map_or(0, |(i, _)| i);
    let (digits, unit) = s.split_at(cut);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => None,
    }
    .ok_or_else(bad)?;
    if secs <= 0 || secs > MAX_DAYS * 86_400 {
        return Err(bad());
    }
    Ok(Duration::seconds(secs))
}

/// The largest exact unit: 3600 s → `1h`, 90 s → `90s`.
pub fn format_duration(d: Duration) -> String {
    let s = d.whole_seconds();
    if s != 0 && s % 86_400 == 0 {
        format!("{}d", s / 86_400)
    } else if s != 0 && s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s != 0 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

mod strength_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::session::AuthStrength;

    pub fn serialize<S: Serializer>(s: &AuthStrength, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<AuthStrength, D::Error> {
        let s = String::deserialize(de)?;
        AuthStrength::parse(&s).ok_or_else(|| serde::de::Error::custom("unknown strength"))
    }
}

/// How a role may be assigned and activated. Durations in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSettings {
    pub max_activation: i64,
    #[serde(with = "strength_serde")]
    pub required_strength: AuthStrength,
    pub require_justification: bool,
    pub require_ticket: bool,
    pub require_approval: bool,
    /// `user:NAME` or `group:NAME`.
    pub approvers: Vec<String>,
    pub approvals_required: u32,
    /// None: permanent eligible assignments allowed.
    pub max_eligible_seconds: Option<i64>,
    /// None: no limit on active assignments' duration.
    pub max_active_seconds: Option<i64>,
    pub allow_permanent_active: bool,
    /// `user:NAME`, `group:NAME` or an email address.
    pub notify: Vec<String>,
}

impl RoleSettings {
    /// The defaults: 8 h activations (1 h for Global Administrator), `mfa` (`phishing_resistant`
    /// for Global and Privileged Role Administrator), justification required, no ticket,
    /// approval only for Global Administrator, active assignments at most 180 days and never
    /// permanent.
    pub fn defaults_for(role: Option<BuiltinRole>) -> Self {
        use BuiltinRole::*;
        let ga = role == Some(GlobalAdministrator);
        let strong = matches!(
            role,
            Some(GlobalAdministrator | PrivilegedRoleAdministrator)
        );
        Self {
            max_activation: if ga { 3600 } else { 8 * 3600 },
            required_strength: if strong {
                AuthStrength::PhishingResistant
            } else {
                AuthStrength::Mfa
            },
            require_justification: true,
            require_ticket: false,
            require_approval: ga,
            approvers: Vec::new(),
            approvals_required: 1,
            max_eligible_seconds: None,
            max_active_seconds: Some(180 * 86_400),
            allow_permanent_active: false,
            notify: Vec::new(),
        }
    }

    /// The settings of just-in-time membership of a group whose roles have `roles` (their
    /// tier and settings): the strictest of them, so that joining the group is never an easier
    /// way to a role than activating it. The strongest strength, the shortest activation and
    /// eligibility, justification or ticket if any asks, approval if any asks with the most
    /// approvals any asks, from the approvers of the highest-tier role that asks for approval
    /// (ties: all of theirs), and everyone any role notifies. A group holding no role gets the
    /// defaults of an ordinary role.
    pub fn strictest<'a>(
        roles: impl IntoIterator<Item = (crate::privilege::Tier, &'a RoleSettings)>,
    ) -> Self {
        let roles: Vec<_> = roles.into_iter().collect();
        let mut out = Self::defaults_for(None);
        if roles.is_empty() {
            return out;
        }
        out.max_activation = roles
            .iter()
            .map(|(_, s)| s.max_activation)
            .min()
            .unwrap_or(out.max_activation);
        out.required_strength = roles
            .iter()
            .map(|(_, s)| s.required_strength)
            .max()
            .unwrap_or(out.required_strength);
        out.require_justification = roles.iter().any(|(_, s)| s.require_justification);
        out.require_ticket = roles.iter().any(|(_, s)| s.require_ticket);
        out.max_eligible_seconds = roles
            .iter()
            .filter_map(|(_, s)| s.max_eligible_seconds)
            .min();
        out.max_active_seconds = roles.iter().filter_map(|(_, s)| s.max_active_seconds).min();
        out.allow_permanent_active = false;
        let asking: Vec<_> = roles.iter().filter(|(_, s)| s.require_approval).collect();
        out.require_approval = !asking.is_empty();
        out.approvals_required = asking
            .iter()
            .map(|(_, s)| s.approvals_required)
            .max()
            .unwrap_or(1);
        out.approvers = Vec::new();
        if let Some(top) = asking.iter().map(|(t, _)| *t).max() {
            for (_, s) in asking.iter().filter(|(t, _)| *t == top) {
                for a in &s.approvers {
                    if !out.approvers.contains(a) {
                        out.approvers.push(a.clone());
                    }
                }
            }
        }
        out.notify = Vec::new();
        for (_, s) in &roles {
            for n in &s.notify {
                if !out.notify.contains(n) {
                    out.notify.push(n.clone());
                }
            }
        }
        out
    }

    pub fn validate(&self) -> Result<(), RoleError> {
        let bad = |m: &str| Err(RoleError::BadSettings(m.to_owned()));
        if !(60..=86_400).contains(&self.max_activation) {
            return bad("maximum activation must be between 1 minute and 24 hours");
        }
        // A role is never activated on a password alone: that would make "JIT with MFA" moot.
        if self.required_strength < AuthStrength::Mfa {
            return bad("required strength must be mfa or phishing_resistant");
        }
        if !(1..=10).contains(&self.approvals_required) {
            return bad("approvals required must be between 1 and 10");
        }
        if self.require_approval && self.approvers.is_empty() {
            return bad("approval is required but no approver is named");
        }
        for d in [self.max_eligible_seconds, self.max_active_seconds]
            .into_iter()
            .flatten()
        {
            if d <= 0 {
                return bad("maximum assignment durations must be positive");
            }
        }
        for a in &self.approvers {
            let ok = a
                .split_once(':')
                .filter(|(k, _)| *k == "user" || *k == "group")
                .is_some_and(|(_, n)| {
                    crate::principal::PrincipalName::parse("approver", n).is_ok()
                });
            if !ok {
                return Err(RoleError::BadSettings(format!(
                    "approver {a:?} must be user:NAME or group:NAME"
                )));
            }
        }
        for n in &self.notify {
            let ok = match n.split_once(':') {
                Some((k, name)) if k == "user" || k == "group" => {
                    crate::principal::PrincipalName::parse("recipient", name).is_ok()
                }
                _ => crate::principal::parse_email(n).is_ok(),
            };
            if !ok {
                return Err(RoleError::BadSettings(format!(
                    "notify entry {n:?} must be user:NAME, group:NAME or an email address"
                )));
            }
        }
        Ok(())
    }
}
