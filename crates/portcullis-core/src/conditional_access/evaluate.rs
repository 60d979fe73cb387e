//! [`CompiledPolicies`]: compilation, evaluation and what-if.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;
use time::{Duration, OffsetDateTime};

use crate::session::AuthStrength;

use super::*;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("; "))]
pub struct CompileError {
    pub problems: Vec<String>,
}

#[derive(Debug, Clone)]
struct CompiledLocation {
    location: NamedLocation,
}

/// A policy set and the named locations, prepared once for fast evaluation: every name a policy
/// mentions is interned to a bit, so evaluating a sign-in costs one hash lookup per group/role
/// of the subject plus a few bit tests per policy.
#[derive(Debug, Clone)]
pub struct CompiledPolicies {
    policies: Vec<CompiledPolicy>,
    locations: Vec<CompiledLocation>,
    users: HashMap<String, u32>,
    service_accounts: HashMap<String, u32>,
    groups: HashMap<String, u32>,
    /// Groups named in `principals.exclude`: a bit set only for role-assignable membership,
    /// so an ordinary group never excludes anyone (privilege rule 4).
    exclusion_groups: HashMap<String, u32>,
    roles: HashMap<String, u32>,
    active_roles: HashMap<String, u32>,
    principal_bits: u32,
    clients: HashMap<String, u32>,
}

fn intern(map: &mut HashMap<String, u32>, next: &mut u32, key: &str) -> u32 {
    if let Some(&id) = map.get(key) {
        return id;
    }
    let id = *next;
    *next += 1;
    map.insert(key.to_owned(), id);
    id
}

impl CompiledPolicies {
    /// Prepares `policies` (in the order given: the explanation follows it) with the named
    /// locations. Refuses a policy that names a location not in `locations`, and two locations
    /// with one name.
    pub fn compile(policies: &[Policy], locations: &[NamedLocation]) -> Result<Self, CompileError> {
        let mut problems = Vec::new();
        let mut location_ids: HashMap<&str, u32> = HashMap::new();
        for (i, l) in locations.iter().enumerate() {
            let id = u32::try_from(i).unwrap_or(u32::MAX);
            if location_ids.insert(l.name(), id).is_some() {
                problems.push(format!("named location {:?} is defined twice", l.name()));
            }
        }
        let mut me = Self {
            policies: Vec::with_capacity(policies.len()),
            locations: locations
                .iter()
                .map(|l| CompiledLocation {
                    location: l.clone(),
                })
                .collect(),
            users: HashMap::new(),
            service_accounts: HashMap::new(),
            groups: HashMap::new(),
            exclusion_groups: HashMap::new(),
            roles: HashMap::new(),
            active_roles: HashMap::new(),
            principal_bits: 0,
            clients: HashMap::new(),
        };
        let mut next_client = 0u32;
        for p in policies {
            let c = &p.conditions;
            let principals = {
                // `exclude`: a group there matches only a role-assignable membership.
                let mut atom = |r: &PrincipalRef, exclude: bool| {
                    let next = &mut me.principal_bits;
                    match r {
                        PrincipalRef::All => PrincipalAtom::All,
                        PrincipalRef::Members => PrincipalAtom::Members,
                        PrincipalRef::Guests => PrincipalAtom::Guests,
                        PrincipalRef::ServiceAccounts => PrincipalAtom::ServiceAccounts,
                        PrincipalRef::User(n) => {
                            PrincipalAtom::Bit(intern(&mut me.users, next, n.as_str()))
                        }
                        PrincipalRef::ServiceAccount(n) => {
                            PrincipalAtom::Bit(intern(&mut me.service_accounts, next, n.as_str()))
                        }
                        PrincipalRef::Group(n) if exclude => {
                            PrincipalAtom::Bit(intern(&mut me.exclusion_groups, next, n.as_str()))
                        }
                        PrincipalRef::Group(n) => {
                            PrincipalAtom::Bit(intern(&mut me.groups, next, n.as_str()))
                        }
                        PrincipalRef::Role(r) => PrincipalAtom::Bit(intern(&mut me.roles, next, r)),
                        PrincipalRef::ActiveRole(r) => {
                            PrincipalAtom::Bit(intern(&mut me.active_roles, next, r))
                        }
                    }
                };
                CompiledSelection {
                    include: c
                        .principals
                        .include
                        .iter()
                        .map(|r| atom(r, false))
                        .collect(),
                    exclude: c
                        .principals
                        .exclude
                        .iter()
                        .map(|r| (atom(r, true), Arc::from(r.to_string())))
                        .collect(),
                }
            };
            let excluded_groups = c
                .principals
                .exclude
                .iter()
                .filter_map(|r| match r {
                    PrincipalRef::Group(n) => {
                        Some((Arc::from(n.as_str()), Arc::from(r.to_string())))
                    }
                    _ => None,
                })
                .collect();
            let applications = c.applications.as_ref().map(|s| {
                let mut atom = |a: &ApplicationRef| match a {
                    ApplicationRef::All => ApplicationAtom::All,
                    ApplicationRef::Cli => ApplicationAtom::Cli,
                    ApplicationRef::Api => ApplicationAtom::Api,
                    ApplicationRef::Client(id) => {
                        ApplicationAtom::Client(intern(&mut me.clients, &mut next_client, id))
                    }
                };
                CompiledSelection {
                    include: s.include.iter().map(&mut atom).collect(),
                    exclude: s
                        .exclude
                        .iter()
                        .map(|a| (atom(a), Arc::from(a.to_string())))
                        .collect(),
                }
            });
            let locations = c.locations.as_ref().map(|s| {
                let mut atom = |l: &LocationRef| match l {
                    LocationRef::Any => LocationAtom::Any,
                    LocationRef::Trusted => LocationAtom::Trusted,
                    LocationRef::Untrusted => LocationAtom::Untrusted,
                    LocationRef::Named(n) => match location_ids.get(n.as_str()) {
                        Some(&id) => LocationAtom::Named(id),
                        None => {
                            problems.push(format!(
                                "policy {:?} names unknown location {:?}",
                                p.name,
                                n.as_str()
                            ));
                            LocationAtom::Named(u32::MAX)
                        }
                    },
                };
                CompiledSelection {
                    include: s.include.iter().map(&mut atom).collect(),
                    exclude: s
                        .exclude
                        .iter()
                        .map(|l| (atom(l), Arc::from(l.to_string())))
                        .collect(),
                }
            });
            let strengths = c.strengths.as_ref().map(|s| CompiledSelection {
                include: s.include.clone(),
                exclude: s
                    .exclude
                    .iter()
                    .map(|x| (*x, Arc::from(x.as_str())))
                    .collect(),
            });
            let flows = c.authentication_flows.as_ref().map(|s| CompiledSelection {
                include: s.include.clone(),
                exclude: s
                    .exclude
                    .iter()
                    .map(|x| (*x, Arc::from(x.as_str())))
                    .collect(),
            });
            me.policies.push(CompiledPolicy {
                name: Arc::from(p.name.as_str()),
                state: p.state,
                principals,
                applications,
                locations,
                strengths,
                flows,
                grant: p.grant,
                sign_in_frequency_hours: p.sign_in_frequency_hours,
                excluded_groups,
            });
        }
        if problems.is_empty() {
            Ok(me)
        } else {
            Err(CompileError { problems })
        }
    }

    /// How many policies the set holds.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    fn facts(&self, ctx: &SignInContext) -> Facts {
        let s = &ctx.subject;
        let mut principal = Bits::with_capacity(self.principal_bits as usize);
        let names = if s.kind == SubjectKind::ServiceAccount {
            &self.service_accounts
        } else {
            &self.users
        };
        if let Some(&b) = names.get(s.name.as_str()) {
            principal.set(b);
        }
        for g in &s.groups {
            if let Some(&b) = self.groups.get(g.as_str()) {
                principal.set(b);
            }
        }
        for g in &s.role_assignable_groups {
            if let Some(&b) = self.exclusion_groups.get(g.as_str()) {
                principal.set(b);
            }
        }
        for r in &s.active_roles {
            if let Some(&b) = self.active_roles.get(r.as_str()) {
                principal.set(b);
            }
        }
        for r in s.active_roles.iter().chain(&s.eligible_roles) {
            if let Some(&b) = self.roles.get(r.as_str()) {
                principal.set(b);
            }
        }
        let application = match &ctx.application {
            Application::Cli => Some(ApplicationAtom::Cli),
            Application::Api => Some(ApplicationAtom::Api),
            Application::Client(id) => self
                .clients
                .get(id.as_str())
                .map(|&i| ApplicationAtom::Client(i)),
        };
        let mut locations = Bits::with_capacity(self.locations.len());
        let mut trusted = false;
        for (i, l) in self.locations.iter().enumerate() {
            if l.location.contains(ctx.ip) {
                locations.set(u32::try_from(i).unwrap_or(u32::MAX));
                trusted |= l.location.trusted();
            }
        }
        Facts {
            kind: s.kind,
            principal,
            application,
            locations,
            trusted,
            strength: ctx.strength,
            flow: ctx.flow,
        }
    }

    /// Evaluates a sign-in (or a session use) at `now`. See the module documentation for the
    /// rules; a break-glass subject gets `Allow` without any policy being looked at.
    pub fn evaluate(&self, ctx: &SignInContext, now: OffsetDateTime) -> Decision {
        self.run(ctx, now, false)
    }

    /// "What if": the same evaluation over a hypothetical context; the explanation has one entry
    /// per policy (disabled and report-only included) with its reason.
    pub fn what_if(&self, ctx: &SignInContext, now: OffsetDateTime) -> Decision {
        self.run(ctx, now, true)
    }

    fn run(&self, ctx: &SignInContext, now: OffsetDateTime, explain: bool) -> Decision {
        if ctx.subject.emergency {
            // By construction: nothing below runs for a break-glass account.
            return Decision {
                outcome: Outcome::Allow,
                break_glass: true,
                sign_in_frequency_hours: None,
                applied: Vec::new(),
                report_only: Vec::new(),
                explanation: if explain {
                    self.policies
                        .iter()
                        .map(|p| PolicyExplanation {
                            policy: Arc::clone(&p.name),
                            state: p.state,
                            verdict: Verdict::BreakGlass,
                            ignored_exclusions: Vec::new(),
                        })
                        .collect()
                } else {
                    Vec::new()
                },
                note: Some(BREAK_GLASS_EXPLANATION),
            };
        }
        let facts = self.facts(ctx);
        let mut explanation = Vec::with_capacity(if explain { self.policies.len() } else { 0 });
        let mut report_only = Vec::new();
        let mut applied = Vec::new();
        let mut blocked = Vec::new();
        let mut required: Option<AuthStrength> = None;
        let mut unmet = Vec::new();
        let mut frequency: Option<u32> = None;
        let mut stale = Vec::new();
        for p in &self.policies {
            let verdict = if p.state == PolicyState::Disabled {
                Verdict::Disabled
            } else {
                match p.check(&facts) {
                    Err(v) => v,
                    Ok(()) => {
                        let result = p.result(ctx.strength, ctx.authenticated_at, now);
                        if p.state == PolicyState::ReportOnly {
                            report_only.push(ReportOnlyResult {
                                policy: Arc::clone(&p.name),
                                result,
                            });
                        } else {
                            applied.push(Arc::clone(&p.name));
                            match p.grant {
                                Some(GrantControl::Block) => blocked.push(Arc::clone(&p.name)),
                                Some(GrantControl::Require(s)) => {
                                    required = required.max(Some(s));
                                    if ctx.strength < s {
                                        unmet.push(Arc::clone(&p.name));
                                    }
                                }
                                None => {}
                            }
                            if let Some(h) = p.sign_in_frequency_hours {
                                frequency = Some(frequency.map_or(h, |f| f.min(h)));
                                if let Some(t) = ctx.authenticated_at
                                    && now - t >= Duration::hours(i64::from(h))
                                {
                                    stale.push(Arc::clone(&p.name));
                                }
                            }
                        }
                        Verdict::Applies(result)
                    }
                }
            };
            if explain {
                let ignored_exclusions = if verdict == Verdict::Disabled {
                    Vec::new()
                } else {
                    ignored_exclusions(p, &ctx.subject)
                };
                explanation.push(PolicyExplanation {
                    policy: Arc::clone(&p.name),
                    state: p.state,
                    verdict,
                    ignored_exclusions,
                });
            }
        }
        let outcome = if !blocked.is_empty() {
            Outcome::Block { policies: blocked }
        } else if let (Some(strength), false) = (required, unmet.is_empty()) {
            Outcome::Require {
                strength,
                policies: unmet,
            }
        } else if let (Some(max_age_hours), false) = (frequency, stale.is_empty()) {
            Outcome::ReauthRequired {
                strength: required.unwrap_or(AuthStrength::Password),
                max_age_hours,
                policies: stale,
            }
        } else {
            Outcome::Allow
        };
        Decision {
            outcome,
            break_glass: false,
            sign_in_frequency_hours: frequency,
            applied,
            report_only,
            explanation,
            note: None,
        }
    }

    /// One address in every region of the address space where membership in the named
    /// locations is constant (IPv4 and IPv6): inside each location, in each overlap, and outside
    /// all of them.
    pub(super) fn probe_addresses(&self) -> Vec<IpAddr> {
        let mut v4: BTreeSet<u32> = BTreeSet::from([0, u32::from(Ipv4Addr::new(203, 0, 113, 1))]);
        let mut v6: BTreeSet<u128> = BTreeSet::from([
            0,
            u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        ]);
        for l in &self.locations {
            for net in &l.location.nets {
                match net {
                    IpNet::V4(n) => {
                        v4.insert(u32::from(n.network()));
                        if let Some(after) = u32::from(n.broadcast()).checked_add(1) {
                            v4.insert(after);
                        }
                    }
                    IpNet::V6(n) => {
                        v6.insert(u128::from(n.network()));
                        if let Some(after) = u128::from(n.broadcast()).checked_add(1) {
                            v6.insert(after);
                        }
                    }
                }
            }
        }
        v4.into_iter()
            .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
            .chain(v6.into_iter().map(|a| IpAddr::V6(Ipv6Addr::from(a))))
            .collect()
    }

    /// Whether `account` could sign in somewhere (an application by the flow it is reached
    /// through) with some factor it has: `Ok`, or the policies that stood in its way.
    pub(super) fn can_sign_in(
        &self,
        account: &AccountProfile,
        routes: &[(Application, Option<AuthenticationFlow>)],
        addresses: &[IpAddr],
    ) -> Result<(), BTreeSet<Arc<str>>> {
        // A fresh sign-in (`authenticated_at: None`): the clock plays no part.
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut responsible = BTreeSet::new();
        let mut ctx = SignInContext {
            subject: account.subject.clone(),
            application: Application::Api,
            ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            strength: AuthStrength::Password,
            authenticated_at: None,
            flow: None,
        };
        let strengths = [
            AuthStrength::Password,
            AuthStrength::Mfa,
            AuthStrength::PhishingResistant,
        ];
        for strength in strengths.into_iter().filter(|s| *s <= account.strongest) {
            ctx.strength = strength;
            for (app, flow) in routes {
                ctx.application = app.clone();
                ctx.flow = *flow;
                for ip in addresses {
                    ctx.ip = *ip;
                    let d = self.run(&ctx, now, false);
                    match d.outcome {
                        Outcome::Allow | Outcome::ReauthRequired { .. } => return Ok(()),
                        o => responsible.extend(o.policies().iter().cloned()),
                    }
                }
            }
        }
        Err(responsible)
    }
}
