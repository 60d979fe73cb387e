//! The compiled form of one policy and the facts derived from a sign-in context.

use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use crate::session::AuthStrength;

use super::*;

/// The exclusions of `p` the subject's membership would have met but for the group not being
/// role-assignable (for the explanation).
pub(super) fn ignored_exclusions(p: &CompiledPolicy, s: &Subject) -> Vec<Arc<str>> {
    p.excluded_groups
        .iter()
        .filter(|(group, _)| {
            s.groups.iter().any(|g| **g == **group)
                && !s.role_assignable_groups.iter().any(|g| **g == **group)
        })
        .map(|(_, entry)| Arc::clone(entry))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PrincipalAtom {
    All,
    Members,
    Guests,
    ServiceAccounts,
    Bit(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ApplicationAtom {
    All,
    Cli,
    Api,
    Client(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LocationAtom {
    Any,
    Trusted,
    Untrusted,
    Named(u32),
}

#[derive(Debug, Clone)]
pub(super) struct CompiledSelection<A> {
    pub(super) include: Vec<A>,
    pub(super) exclude: Vec<(A, Arc<str>)>,
}

#[derive(Debug, Clone)]
pub(super) struct CompiledPolicy {
    pub(super) name: Arc<str>,
    pub(super) state: PolicyState,
    pub(super) principals: CompiledSelection<PrincipalAtom>,
    pub(super) applications: Option<CompiledSelection<ApplicationAtom>>,
    pub(super) locations: Option<CompiledSelection<LocationAtom>>,
    pub(super) strengths: Option<CompiledSelection<AuthStrength>>,
    pub(super) flows: Option<CompiledSelection<AuthenticationFlow>>,
    pub(super) grant: Option<GrantControl>,
    pub(super) sign_in_frequency_hours: Option<u32>,
    /// The groups of `principals.exclude` (name, entry), to explain an exclusion that did not
    /// apply because the group is not role-assignable (what-if only).
    pub(super) excluded_groups: Vec<(Arc<str>, Arc<str>)>,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Bits(pub(super) Vec<u64>);

impl Bits {
    pub(super) fn with_capacity(bits: usize) -> Self {
        Self(vec![0; bits.div_ceil(64)])
    }

    pub(super) fn set(&mut self, i: u32) {
        if let Some(w) = self.0.get_mut(i as usize / 64) {
            *w |= 1 << (i % 64);
        }
    }

    pub(super) fn get(&self, i: u32) -> bool {
        self.0
            .get(i as usize / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

/// What evaluation derives from a context once, before looking at the policies.
pub(super) struct Facts {
    pub(super) kind: SubjectKind,
    pub(super) principal: Bits,
    pub(super) application: Option<ApplicationAtom>,
    pub(super) locations: Bits,
    pub(super) trusted: bool,
    pub(super) strength: AuthStrength,
    pub(super) flow: Option<AuthenticationFlow>,
}

impl Facts {
    pub(super) fn principal(&self, a: &PrincipalAtom) -> bool {
        match *a {
            PrincipalAtom::All => self.kind != SubjectKind::ServiceAccount,
            PrincipalAtom::Members => self.kind == SubjectKind::Member,
            PrincipalAtom::Guests => self.kind == SubjectKind::Guest,
            PrincipalAtom::ServiceAccounts => self.kind == SubjectKind::ServiceAccount,
            PrincipalAtom::Bit(b) => self.principal.get(b),
        }
    }

    pub(super) fn application(&self, a: &ApplicationAtom) -> bool {
        *a == ApplicationAtom::All || Some(*a) == self.application
    }

    pub(super) fn location(&self, a: &LocationAtom) -> bool {
        match *a {
            LocationAtom::Any => true,
            LocationAtom::Trusted => self.trusted,
            LocationAtom::Untrusted => !self.trusted,
            LocationAtom::Named(i) => self.locations.get(i),
        }
    }
}

fn check_selection<A>(
    sel: &CompiledSelection<A>,
    kind: ConditionKind,
    matches: impl Fn(&A) -> bool,
) -> Result<(), Verdict> {
    if let Some((_, entry)) = sel.exclude.iter().find(|(a, _)| matches(a)) {
        return Err(Verdict::Excluded {
            condition: kind,
            entry: Arc::clone(entry),
        });
    }
    if sel.include.iter().any(matches) {
        Ok(())
    } else {
        Err(Verdict::NotIncluded(kind))
    }
}

impl CompiledPolicy {
    pub(super) fn check(&self, f: &Facts) -> Result<(), Verdict> {
        check_selection(&self.principals, ConditionKind::Principals, |a| {
            f.principal(a)
        })?;
        if let Some(s) = &self.applications {
            check_selection(s, ConditionKind::Applications, |a| f.application(a))?;
        }
        if let Some(s) = &self.locations {
            check_selection(s, ConditionKind::Locations, |a| f.location(a))?;
        }
        if let Some(s) = &self.strengths {
            check_selection(s, ConditionKind::Strengths, |a| *a == f.strength)?;
        }
        if let Some(s) = &self.flows {
            check_selection(s, ConditionKind::AuthenticationFlows, |a| {
                Some(*a) == f.flow
            })?;
        }
        Ok(())
    }

    pub(super) fn result(
        &self,
        strength: AuthStrength,
        authenticated_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> PolicyResult {
        match self.grant {
            Some(GrantControl::Block) => return PolicyResult::Block,
            Some(GrantControl::Require(s)) if strength < s => {
                return PolicyResult::Require { strength: s };
            }
            _ => {}
        }
        match (self.sign_in_frequency_hours, authenticated_at) {
            (Some(h), Some(t)) if now - t >= Duration::hours(i64::from(h)) => {
                PolicyResult::ReauthRequired { max_age_hours: h }
            }
            _ => PolicyResult::Satisfied,
        }
    }
}
