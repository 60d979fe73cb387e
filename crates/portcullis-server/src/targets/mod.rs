//! Connectors: where a grant becomes real access in another system (DESIGN.md, Targets).
//!
//! A connector knows one kind of target and does three things, each idempotent:
//! - `grant`: make the target hold what a grant means there (applying it twice changes nothing);
//! - `revoke`: take it away again, except what `keep` lists (rights another live grant of the
//!   same person still needs there); revoking what is not held is a success;
//! - `observe`: what the target holds now for the target-side rights Portcullis manages there,
//!   so the reconciler can find drift (rights given outside Portcullis) and missing grants.
//!
//! Invariants:
//! - Target-side names are never formatted into a command: SQL identifiers are quoted
//!   ([`postgres::quote_ident`]), URLs are configuration, bodies are JSON.
//! - A connector's credential comes from the target's sealed secret or a
//!   `PORTCULLIS_TARGET_SECRET_*` environment variable; it never appears in an error, a log line
//!   or an audit event ([`TargetError`]'s text is written for people and stored with attempts).
//! - Connectors hold no state about grants: the store is the desired state, the target is the
//!   observed state, and the worker ([`crate::workers::targets`]) and the reconciler compare them.

pub mod msgraph;
pub mod postgres;
pub mod ssh;
pub mod webhook;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// One grant as a connector sees it (also the webhook's `grant` object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetGrant {
    /// The grant's id in Portcullis: the activation request's or the active assignment's id.
    pub id: String,
    /// The principal's name (a person's username or a service account's name).
    pub person: String,
    /// The Portcullis role.
    pub role: String,
    /// `/targets/NAME`.
    pub scope: String,
    /// What the role means in this target (the binding's grants): target-side roles or
    /// principals.
    pub target_grants: Vec<String>,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339; `None` for a permanent active assignment.
    pub ends_at: Option<String>,
    /// The binding's mode: `grant`, or `dynamic` (PostgreSQL: a login made for this grant).
    #[serde(default = "grant_mode")]
    pub mode: String,
    /// The person's own account at this target, where one is set (`targets accounts set`):
    /// used instead of the target's login template. Taken when the grant was written, so a
    /// revoke acts on what was granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// That account's id at the target (an Entra object id), resolved when it was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
}

/// The person a login template (`{user}` standing for the person's name) maps `name` to, if
/// `name` has the template's shape (compared without regard to case, as Entra compares UPNs).
pub fn template_person(template: &str, name: &str) -> Option<String> {
    let (prefix, suffix) = template.split_once("{user}")?;
    let lower = name.to_lowercase();
    let (prefix, suffix) = (prefix.to_lowercase(), suffix.to_lowercase());
    if lower.len() <= prefix.len() + suffix.len()
        || !lower.starts_with(&prefix)
        || !lower.ends_with(&suffix)
    {
        return None;
    }
    let person = lower
        .get(prefix.len()..lower.len() - suffix.len())?
        .to_owned();
    (template.to_lowercase().replace("{user}", &person) == lower).then_some(person)
}

fn grant_mode() -> String {
    "grant".to_owned()
}

/// A credential a grant created at the target (a dynamic PostgreSQL login), to be sealed and
/// handed to the grant's holder once.
pub struct Issued {
    pub login: String,
    pub password: SecretString,
}

/// One right the target holds: `holder` (the target-side principal: a PostgreSQL login, the
/// webhook receiver's person) holds `right` (a target-side role).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Held {
    pub holder: String,
    pub right: String,
}

/// Why a connector call failed, in words fit for an operator (no secret, no connection string).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The target's configuration cannot work (a bad URL, a missing secret variable).
    #[error("configuration: {0}")]
    Config(String),
    /// The target could not be reached or did not answer in time; worth retrying.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The target answered and refused (a missing role, a permission, a non-2xx answer).
    #[error("refused: {0}")]
    Refused(String),
}

/// A connector of one target, built from its kind, configuration and secret.
#[derive(Debug)]
pub enum Connector {
    Postgres(postgres::Postgres),
    Webhook(webhook::Webhook),
    SshCa(ssh::SshCa),
    MsGraph(msgraph::MsGraph),
}

/// The kinds a target may have.
pub const KINDS: &[&str] = &["postgres", "webhook", "ssh-ca", "msgraph"];

impl Connector {
    /// Checks `config` for `kind` and builds the connector (no connection is made yet).
    pub fn new(
        kind: &str,
        config: &serde_json::Value,
        secret: Option<SecretString>,
    ) -> Result<Self, TargetError> {
        match kind {
            "postgres" => Ok(Self::Postgres(postgres::Postgres::new(config, secret)?)),
            "webhook" => Ok(Self::Webhook(webhook::Webhook::new(config, secret)?)),
            "ssh-ca" => Ok(Self::SshCa(ssh::SshCa::new(config)?)),
            "msgraph" => Ok(Self::MsGraph(msgraph::MsGraph::new(config, secret)?)),
            other => Err(TargetError::Config(format!(
                "unknown target kind {other:?} (one of: {})",
                KINDS.join(", ")
            ))),
        }
    }

    /// A person's own account at this target, checked and, where the target can say, resolved:
    /// (the account as the target names it, its id there). Only PostgreSQL logins and Entra
    /// users are accounts of a person; a webhook receiver and an SSH CA take the person's name
    /// and the binding's principals.
    pub async fn account(&self, account: &str) -> Result<(String, Option<String>), TargetError> {
        match self {
            Self::Postgres(_) => Ok((postgres::Postgres::check_account(account)?, None)),
            Self::MsGraph(c) => {
                let (upn, id) = c.resolve_account(account).await?;
                Ok((upn, Some(id)))
            }
            Self::Webhook(_) | Self::SshCa(_) => Err(TargetError::Config(
                "a person's own account is for postgres and msgraph targets".into(),
            )),
        }
    }

    /// The person this target's login template maps `account` to, if it has its shape.
    pub fn template_person(&self, account: &str) -> Option<String> {
        match self {
            Self::Postgres(c) => c.template_person(account),
            Self::MsGraph(c) => c.template_person(account),
            Self::Webhook(_) | Self::SshCa(_) => None,
        }
    }

    /// The rights `g` means in this target: what `grant` makes it hold.
    pub fn desired(&self, g: &TargetGrant) -> Vec<Held> {
        match self {
            Self::Postgres(_) if g.mode == "dynamic" => {
                let login = postgres::Postgres::dynamic_login(g);
                g.target_grants
                    .iter()
                    .map(|r| Held {
                        holder: login.clone(),
                        right: r.clone(),
                    })
                    .collect()
            }
            Self::Postgres(c) => c.desired(g),
            Self::Webhook(c) => c.desired(g),
            Self::SshCa(c) => c.desired(g),
            Self::MsGraph(c) => c.desired(g),
        }
    }

    /// Makes the target hold what `g` means; `op_id` is the operation's idempotency key. A
    /// dynamic grant returns the credential it created.
    pub async fn grant(&self, g: &TargetGrant, op_id: &str) -> Result<Option<Issued>, TargetError> {
        match self {
            Self::Postgres(c) if g.mode == "dynamic" => c.grant_dynamic(g).await.map(Some),
            Self::Postgres(c) => c.grant(g).await.map(|()| None),
            Self::Webhook(c) => c.send("grant", g, op_id).await.map(|()| None),
            // The grant lets its holder ask for certificates; nothing to push.
            Self::SshCa(_) => Ok(None),
            Self::MsGraph(c) => c.grant(g).await.map(|()| None),
        }
    }

    /// Takes away what `g` means, except the rights in `keep`.
    pub async fn revoke(
        &self,
        g: &TargetGrant,
        op_id: &str,
        keep: &[Held],
    ) -> Result<(), TargetError> {
        match self {
            Self::Postgres(c) if g.mode == "dynamic" => c.revoke_dynamic(g).await,
            Self::Postgres(c) => c.revoke(g, keep).await,
            Self::Webhook(c) => c.send("revoke", g, op_id).await,
            // The store revoked its certificates with the grant's end; the KRL lists them.
            Self::SshCa(_) => Ok(()),
            Self::MsGraph(c) => c.revoke(g, keep).await,
        }
    }

    /// Takes away one right no grant means (drift being reverted). A webhook receives it as a
    /// `revoke` of a grant whose id starts with `drift:` and that names only this right.
    pub async fn remove(&self, h: &Held, op_id: &str) -> Result<(), TargetError> {
        match self {
            Self::Postgres(c) => c.remove(h).await,
            Self::Webhook(c) => {
                let g = TargetGrant {
                    id: format!("drift:{op_id}"),
                    person: h.holder.clone(),
                    role: String::new(),
                    scope: String::new(),
                    target_grants: vec![h.right.clone()],
                    starts_at: String::new(),
                    ends_at: None,
                    mode: grant_mode(),
                    account: None,
                    account_id: None,
                };
                c.send("revoke", &g, op_id).await
            }
            // Drift at an ssh-ca target is a live certificate; the engine revokes it.
            Self::SshCa(_) => Ok(()),
            Self::MsGraph(c) => c.remove(h).await,
        }
    }

    /// What the target holds now of `managed` (every target-side right a binding names);
    /// `None` when this target cannot be observed (a webhook without `observe_url`).
    pub async fn observe(&self, managed: &[String]) -> Result<Option<Vec<Held>>, TargetError> {
        match self {
            Self::Postgres(c) => c.observe(managed).await.map(Some),
            Self::Webhook(c) => c.observe().await,
            // Its live certificates are in the store; the engine reads them.
            Self::SshCa(_) => Ok(None),
            Self::MsGraph(c) => c.observe(managed).await.map(Some),
        }
    }

    /// Checks the connection and that every right in `managed` exists there; the problems
    /// found (empty: ready).
    pub async fn test(&self, managed: &[String]) -> Result<Vec<String>, TargetError> {
        match self {
            Self::Postgres(c) => c.test(managed).await,
            Self::Webhook(c) => c.test().await,
            Self::SshCa(_) => Ok(Vec::new()),
            Self::MsGraph(c) => c.test(managed).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::template_person;

    #[test]
    fn template_person_finds_whose_login_a_name_has_the_shape_of() {
        assert_eq!(
            template_person(
                "{user}@contoso.onmicrosoft.com",
                "Alice@Contoso.onmicrosoft.com"
            ),
            Some("alice".to_owned())
        );
        assert_eq!(
            template_person("pc_{user}", "pc_bob"),
            Some("bob".to_owned())
        );
        assert_eq!(template_person("{user}", "carol"), Some("carol".to_owned()));
        assert_eq!(template_person("{user}@contoso.com", "@contoso.com"), None);
        assert_eq!(
            template_person("{user}@contoso.com", "alice@fabrikam.com"),
            None
        );
        assert_eq!(template_person("pc_{user}", "alice"), None);
    }
}
