//! Validation: a [`PolicySpec`] becomes a [`Policy`], every problem reported at once.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::Serialize;

use crate::roles::{BuiltinRole, RoleName};
use crate::session::AuthStrength;

use super::*;

/// The names that exist in the tenant, for validating the references in policies. Built-in role
/// slugs are always known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownNames {
    pub users: HashSet<String>,
    pub service_accounts: HashSet<String>,
    pub groups: HashSet<String>,
    /// The role-assignable groups among `groups`: only these may appear in
    /// `principals.exclude` (privilege rule 4).
    pub role_assignable_groups: HashSet<String>,
    /// Custom role names.
    pub roles: HashSet<String>,
    /// Registered OIDC client ids.
    pub clients: HashSet<String>,
    /// Named locations.
    pub locations: HashSet<String>,
}

/// One problem found in a policy set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyProblem {
    /// Position in the submitted list, from 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// The policy's name as written, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    pub message: String,
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.index, &self.policy) {
            (Some(i), Some(p)) => write!(f, "policy #{} {p:?}: {}", i + 1, self.message),
            (Some(i), None) => write!(f, "policy #{}: {}", i + 1, self.message),
            (None, Some(p)) => write!(f, "policy {p:?}: {}", self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

/// Every problem found in a policy (set), never just the first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}", render_problems(.problems))]
pub struct PolicyErrors {
    pub problems: Vec<PolicyProblem>,
}

fn render_problems(problems: &[PolicyProblem]) -> String {
    let parts: Vec<String> = problems.iter().map(ToString::to_string).collect();
    match parts.len() {
        1 => parts.join(""),
        n => format!("{n} problems: {}", parts.join("; ")),
    }
}

/// Validates a whole set (an import, or the proposed set after a change): the form of each
/// policy, every name it mentions against `known`, duplicated names (case-insensitive) and the
/// size. Reports every problem at once.
pub fn validate_policies(
    specs: &[PolicySpec],
    known: &KnownNames,
) -> Result<Vec<Policy>, PolicyErrors> {
    let items: Vec<(usize, &PolicySpec)> = specs.iter().enumerate().collect();
    validate_indexed(&items, specs.len(), known, usize::MAX, Vec::new())
}

/// Validates the set a change would produce: `new` (the policies being written) by every rule
/// of [`validate_policies`], and `kept` (stored policies the change leaves as they are) by
/// every rule but the one that came after some of them were stored — an ordinary group in
/// `principals.exclude` (privilege rule 4). Such a stored policy keeps working with that
/// exclusion ignored (it fails closed, see the module header) until it is re-imported, so it
/// does not block unrelated changes. Returns the `new` policies, then the `kept` ones; problem
/// positions count `new` first, then `kept`.
pub fn validate_change(
    new: &[PolicySpec],
    kept: &[PolicySpec],
    known: &KnownNames,
) -> Result<Vec<Policy>, PolicyErrors> {
    let items: Vec<(usize, &PolicySpec)> = new.iter().chain(kept).enumerate().collect();
    validate_indexed(&items, items.len(), known, new.len(), Vec::new())
}

/// `legacy_from`: items at this position and after are stored policies, exempt from the
/// exclusion-group rule.
pub(super) fn validate_indexed(
    items: &[(usize, &PolicySpec)],
    total: usize,
    known: &KnownNames,
    legacy_from: usize,
    mut problems: Vec<PolicyProblem>,
) -> Result<Vec<Policy>, PolicyErrors> {
    if total > MAX_POLICIES {
        problems.push(PolicyProblem {
            index: None,
            policy: None,
            message: format!("at most {MAX_POLICIES} policies, not {total}"),
        });
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    for &(index, spec) in items {
        let mut messages = Vec::new();
        let key = spec.name.trim().to_lowercase();
        match seen.get(&key) {
            Some(first) => messages.push(format!(
                "the name is already used by policy #{} (names are compared ignoring case)",
                first + 1
            )),
            None => {
                seen.insert(key, index);
            }
        }
        let policy = parse_spec(
            spec,
            Some(Known {
                names: known,
                exclusion_groups_checked: index < legacy_from,
            }),
            &mut messages,
        );
        if messages.is_empty()
            && let Some(p) = policy
        {
            out.push(p);
        }
        problems.extend(messages.into_iter().map(|message| PolicyProblem {
            index: Some(index),
            policy: Some(spec.name.clone()),
            message,
        }));
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        problems.sort_by_key(|p| p.index);
        Err(PolicyErrors { problems })
    }
}

pub(super) fn is_role_slug(s: &str) -> bool {
    BuiltinRole::from_slug(s).is_some() || RoleName::parse(s).is_ok()
}

pub(super) fn parse_client_id(id: &str) -> Result<String, String> {
    if id.is_empty() {
        return Err("a client id must not be empty".into());
    }
    if id.len() > CLIENT_ID_MAX {
        return Err(format!("a client id is at most {CLIENT_ID_MAX} characters"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("a client id may contain only letters, digits, '-', '_' and '.'".into());
    }
    Ok(id.to_owned())
}

fn check_text(field: &str, s: &str, max: usize, problems: &mut Vec<String>) {
    if s.trim().is_empty() {
        problems.push(format!("{field} must not be empty"));
    } else if s.trim() != s {
        problems.push(format!("{field} must not start or end with spaces"));
    }
    if s.chars().count() > max {
        problems.push(format!("{field} must be at most {max} characters"));
    }
    if crate::text::has_invisible_but_newlines(s) || (field == "name" && s.contains('\n')) {
        problems.push(format!("{field} must not contain control characters"));
    }
}

/// Parses one include/exclude section, pushing every problem; `None` when a problem was found.
fn parse_selection<T>(
    section: &str,
    spec: &SelectionSpec,
    wildcard: Option<&str>,
    parse: impl Fn(&str) -> Result<T, String>,
    check_known: impl Fn(&str, &T) -> Option<String>,
    problems: &mut Vec<String>,
) -> Option<Selection<T>> {
    let before = problems.len();
    if spec.include.is_empty() {
        problems.push(match wildcard {
            Some(w) => {
                format!("{section}.include must name at least one entry (\"{w}\" for every one)")
            }
            None => format!("{section}.include must name at least one entry"),
        });
    }
    let mut seen: HashMap<&str, &str> = HashMap::new();
    let mut lists: [Vec<T>; 2] = [Vec::new(), Vec::new()];
    for (which, entries) in [("include", &spec.include), ("exclude", &spec.exclude)] {
        if entries.len() > MAX_ENTRIES {
            problems.push(format!(
                "{section}.{which} has {} entries, at most {MAX_ENTRIES} are allowed",
                entries.len()
            ));
            continue;
        }
        for raw in entries {
            if wildcard == Some(raw.as_str()) {
                if which == "exclude" {
                    problems.push(format!(
                        "{section}.exclude must not contain {raw:?} (the policy would never apply)"
                    ));
                    continue;
                }
                if spec.include.len() > 1 {
                    problems.push(format!(
                        "{section}.include: {raw:?} stands alone (it already covers the other entries)"
                    ));
                    continue;
                }
            }
            if let Some(first) = seen.insert(raw.as_str(), which) {
                problems.push(if first == which {
                    format!("{section}.{which}: {raw:?} is listed more than once")
                } else {
                    format!("{section}: {raw:?} is both included and excluded")
                });
                continue;
            }
            match parse(raw) {
                Ok(v) => {
                    if let Some(msg) = check_known(which, &v) {
                        problems.push(format!("{section}.{which}: {msg}"));
                    }
                    lists[usize::from(which == "exclude")].push(v);
                }
                Err(e) => problems.push(format!("{section}.{which}: {e}")),
            }
        }
    }
    if problems.len() > before {
        return None;
    }
    let [include, exclude] = lists;
    Some(Selection { include, exclude })
}

/// The directory a policy is checked against.
#[derive(Clone, Copy)]
pub(super) struct Known<'a> {
    names: &'a KnownNames,
    /// Whether a `principals.exclude` group must be role-assignable (not for stored policies,
    /// see [`validate_change`]).
    exclusion_groups_checked: bool,
}

pub(super) fn parse_spec(
    spec: &PolicySpec,
    known: Option<Known<'_>>,
    problems: &mut Vec<String>,
) -> Option<Policy> {
    let before = problems.len();
    check_text("name", &spec.name, POLICY_NAME_MAX, problems);
    if let Some(d) = &spec.description {
        check_text("description", d, DESCRIPTION_MAX, problems);
    }
    let state = PolicyState::parse(&spec.state);
    if state.is_none() {
        problems.push(format!(
            "state {:?} is not one of enabled, report_only, disabled",
            spec.state
        ));
    }

    let empty = ConditionsSpec::default();
    let cs = spec.conditions.as_ref().unwrap_or(&empty);
    let principals = match &cs.principals {
        None => {
            problems.push(
                "conditions must name at least principals (a policy without conditions would \
                 apply to everyone)"
                    .into(),
            );
            None
        }
        Some(s) => parse_selection(
            "principals",
            s,
            Some("all"),
            PrincipalRef::parse,
            |which, p| {
                let Known {
                    names: k,
                    exclusion_groups_checked,
                } = known?;
                match p {
                    PrincipalRef::User(n) if !k.users.contains(n.as_str()) => {
                        Some(format!("unknown user {:?}", n.as_str()))
                    }
                    PrincipalRef::ServiceAccount(n) if !k.service_accounts.contains(n.as_str()) => {
                        Some(format!("unknown service account {:?}", n.as_str()))
                    }
                    PrincipalRef::Group(n) if !k.groups.contains(n.as_str()) => {
                        Some(format!("unknown group {:?}", n.as_str()))
                    }
                    PrincipalRef::Group(n)
                        if which == "exclude"
                            && exclusion_groups_checked
                            && !k.role_assignable_groups.contains(n.as_str()) =>
                    {
                        Some(format!(
                            "group {:?} is not role-assignable: membership of an exclusion \
                             group lifts the policy, so only a role-assignable group (which \
                             only role administrators can change) may be excluded",
                            n.as_str()
                        ))
                    }
                    PrincipalRef::Role(r) | PrincipalRef::ActiveRole(r)
                        if BuiltinRole::from_slug(r).is_none() && !k.roles.contains(r) =>
                    {
                        Some(format!("unknown role {r:?}"))
                    }
                    _ => None,
                }
            },
            problems,
        ),
    };
    let applications = cs.applications.as_ref().map(|s| {
        parse_selection(
            "applications",
            s,
            Some("all"),
            ApplicationRef::parse,
            |_, a| match (a, known) {
                (ApplicationRef::Client(id), Some(k)) if !k.names.clients.contains(id) => {
                    Some(format!("unknown client {id:?}"))
                }
                _ => None,
            },
            problems,
        )
    });
    let locations = cs.locations.as_ref().map(|s| {
        parse_selection(
            "locations",
            s,
            Some("any"),
            LocationRef::parse,
            |_, l| match (l, known) {
                (LocationRef::Named(n), Some(k)) if !k.names.locations.contains(n.as_str()) => {
                    Some(format!("unknown named location {:?}", n.as_str()))
                }
                _ => None,
            },
            problems,
        )
    });
    let strengths = cs.strengths.as_ref().map(|s| {
        if !s.exclude.is_empty() {
            problems.push(
                "strengths take no exclude: include the strengths the policy is about".into(),
            );
        }
        parse_selection(
            "strengths",
            s,
            None,
            parse_strength_entry,
            |_, _| None,
            problems,
        )
    });
    let authentication_flows = cs.authentication_flows.as_ref().map(|s| {
        if !s.exclude.is_empty() {
            problems.push(
                "authentication_flows take no exclude: include the flows the policy is about \
                 (leave the condition out for every flow)"
                    .into(),
            );
        }
        parse_selection(
            "authentication_flows",
            s,
            None,
            parse_flow_entry,
            |_, _| None,
            problems,
        )
    });

    let grant = match &spec.grant {
        None => None,
        Some(g) => match (g.block, &g.require) {
            (Some(true), None) => Some(GrantControl::Block),
            (None, Some(r)) => match AuthStrength::parse(r) {
                Some(s @ (AuthStrength::Mfa | AuthStrength::PhishingResistant)) => {
                    Some(GrantControl::Require(s))
                }
                _ => {
                    problems.push(format!(
                        "grant.require {r:?} is not one of mfa, phishing_resistant"
                    ));
                    None
                }
            },
            (Some(true), Some(_)) => {
                problems.push("grant: block and require exclude each other".into());
                None
            }
            (Some(false), _) => {
                problems.push(
                    "grant: \"block\": false is not a control (write {\"block\": true} or \
                     {\"require\": …}, or leave grant out)"
                        .into(),
                );
                None
            }
            (None, None) => {
                problems.push("grant must be {\"block\": true} or {\"require\": …}".into());
                None
            }
        },
    };
    let frequency = match &spec.session {
        None => None,
        Some(SessionSpec {
            sign_in_frequency_hours: None,
        }) => {
            problems.push("session must set sign_in_frequency_hours".into());
            None
        }
        Some(SessionSpec {
            sign_in_frequency_hours: Some(h),
        }) => {
            if (1..=MAX_SIGN_IN_FREQUENCY_HOURS).contains(h) {
                Some(*h)
            } else {
                problems.push(format!(
                    "session.sign_in_frequency_hours must be between 1 and \
                     {MAX_SIGN_IN_FREQUENCY_HOURS}, not {h}"
                ));
                None
            }
        }
    };
    if spec.grant.is_none() && spec.session.is_none() {
        problems.push("a policy needs a grant control, a session control, or both".into());
    }

    if problems.len() > before {
        return None;
    }
    Some(Policy {
        name: spec.name.clone(),
        description: spec.description.clone(),
        state: state?,
        conditions: Conditions {
            principals: principals?,
            applications: applications.flatten(),
            locations: locations.flatten(),
            strengths: strengths.flatten(),
            authentication_flows: authentication_flows.flatten(),
        },
        grant,
        sign_in_frequency_hours: frequency,
    })
}
