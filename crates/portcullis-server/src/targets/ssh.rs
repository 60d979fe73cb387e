//! The `ssh-ca` connector: OpenSSH servers that trust a Portcullis user CA
//! (`TrustedUserCAKeys`) and its KRL (`RevokedKeys`). Nothing is pushed to the servers: a grant
//! lets its holder ask for a certificate ([`crate::services::targets::ssh`]), and the end of a grant
//! revokes that certificate in the store, in the same transaction, so the KRL served next
//! lists it.
//!
//! Invariants:
//! - `grant` and `revoke` change nothing outside the store (they are recorded and audited like
//!   any other target's operations, with how late the revoke was).
//! - What a certificate may do is the target's configuration (`max_validity`,
//!   `source_address`) and the binding's options (extensions, force command), checked here
//!   when they are stored.

use portcullis_core::ssh::{DEFAULT_MAX_VALIDITY, KNOWN_EXTENSIONS, MAX_MAX_VALIDITY};

use super::{Held, TargetError, TargetGrant};

/// An ssh-ca target's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshCa {
    pub max_validity_s: i64,
    /// Addresses or CIDR blocks, normalised.
    pub source_address: Vec<String>,
}

impl SshCa {
    pub fn new(config: &serde_json::Value) -> Result<Self, TargetError> {
        let max_validity_s = config["max_validity_seconds"]
            .as_i64()
            .unwrap_or(DEFAULT_MAX_VALIDITY.whole_seconds());
        if !(60..=MAX_MAX_VALIDITY.whole_seconds()).contains(&max_validity_s) {
            return Err(TargetError::Config(
                "max_validity must be between 1m and 24h".into(),
            ));
        }
        let source_address = match config.get("source_address") {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(v) => {
                let list: Vec<String> = serde_json::from_value(v.clone()).map_err(|_| {
                    TargetError::Config("source_address must be a list of addresses".into())
                })?;
                list.iter()
                    .map(|a| source_address(a))
                    .collect::<Result<_, _>>()?
            }
        };
        Ok(Self {
            max_validity_s,
            source_address,
        })
    }

    /// A grant means: its person may log in as each of its principals.
    pub fn desired(&self, g: &TargetGrant) -> Vec<Held> {
        g.target_grants
            .iter()
            .map(|p| Held {
                holder: g.person.clone(),
                right: p.clone(),
            })
            .collect()
    }
}

/// One `source-address` entry: an address or a CIDR block, as OpenSSH writes it.
pub fn source_address(a: &str) -> Result<String, TargetError> {
    let bad = || {
        TargetError::Config(format!(
            "source address {:?} is not an IP address or CIDR block",
            a.chars().take(60).collect::<String>()
        ))
    };
    if let Ok(ip) = a.parse::<std::net::IpAddr>() {
        return Ok(ip.to_string());
    }
    a.parse::<ipnet::IpNet>()
        .map(|n| n.trunc().to_string())
        .map_err(|_| bad())
}

/// The options a binding gives its certificates, checked: known extensions only, a force
/// command without control characters.
pub fn binding_options(
    extensions: Option<&[String]>,
    force_command: Option<&str>,
) -> Result<serde_json::Value, String> {
    let extensions: Vec<String> = match extensions {
        None => portcullis_core::ssh::DEFAULT_EXTENSIONS
            .iter()
            .map(|e| (*e).to_owned())
            .collect(),
        Some(list) => {
            for e in list {
                if !KNOWN_EXTENSIONS.contains(&e.as_str()) {
                    return Err(format!(
                        "unknown certificate extension {:?} (one of: {})",
                        e.chars().take(60).collect::<String>(),
                        KNOWN_EXTENSIONS.join(", ")
                    ));
                }
            }
            let mut l = list.to_vec();
            l.sort();
            l.dedup();
            l
        }
    };
    if let Some(c) = force_command
        && (c.is_empty() || c.len() > 1024 || c.chars().any(char::is_control))
    {
        return Err("force_command must be 1 to 1024 bytes without control characters".into());
    }
    Ok(serde_json::json!({ "extensions": extensions, "force_command": force_command }))
}

/// What a stored binding option object says (the defaults when absent).
pub fn options_of(json: Option<&str>) -> (Vec<String>, Option<String>) {
    let v: serde_json::Value = json
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default();
    let extensions = match v.get("extensions") {
        Some(e) => serde_json::from_value(e.clone()).unwrap_or_default(),
        None => portcullis_core::ssh::DEFAULT_EXTENSIONS
            .iter()
            .map(|e| (*e).to_owned())
            .collect(),
    };
    let force = v
        .get("force_command")
        .and_then(|c| c.as_str())
        .map(str::to_owned);
    (extensions, force)
}
