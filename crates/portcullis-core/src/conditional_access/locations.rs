//! Named locations: named CIDR lists, trusted or not.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::network::NetworkList;
use crate::principal::PrincipalName;

use super::*;

/// A named location as written in an API body or a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedLocationSpec {
    pub name: String,
    pub cidrs: Vec<String>,
    #[serde(default)]
    pub trusted: bool,
}

/// A named set of networks (IPv4 and IPv6 CIDRs), possibly marked trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "NamedLocationSpec", into = "NamedLocationSpec")]
pub struct NamedLocation {
    name: PrincipalName,
    networks: NetworkList,
    pub(super) nets: Vec<IpNet>,
    trusted: bool,
}

/// Why a named location was refused (every problem).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid named location: {}", .problems.join("; "))]
pub struct LocationError {
    pub problems: Vec<String>,
}

impl NamedLocation {
    /// Names follow the principal-name rules and may not be `any`, `trusted` or `untrusted`;
    /// the list needs at least one CIDR and follows [`NetworkList::parse`].
    pub fn parse<S: AsRef<str>>(
        name: &str,
        cidrs: &[S],
        trusted: bool,
    ) -> Result<Self, LocationError> {
        let mut problems = Vec::new();
        let parsed_name = match PrincipalName::parse("location name", name) {
            Ok(n) if RESERVED_LOCATION_NAMES.contains(&name) => {
                problems.push(format!(
                    "{name:?} is reserved in policies; choose another location name"
                ));
                Some(n)
            }
            Ok(n) => Some(n),
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        };
        let networks = if cidrs.is_empty() {
            problems.push("a named location needs at least one CIDR range".into());
            None
        } else {
            match NetworkList::parse(cidrs) {
                Ok(l) => Some(l),
                Err(e) => {
                    problems.push(e.to_string());
                    None
                }
            }
        };
        match (parsed_name, networks) {
            (Some(name), Some(networks)) if problems.is_empty() => {
                let nets = networks
                    .to_strings()
                    .iter()
                    .filter_map(|s| s.parse::<IpNet>().ok())
                    .collect();
                Ok(Self {
                    name,
                    networks,
                    nets,
                    trusted,
                })
            }
            _ => Err(LocationError { problems }),
        }
    }

    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    pub fn networks(&self) -> &NetworkList {
        &self.networks
    }

    pub fn trusted(&self) -> bool {
        self.trusted
    }

    /// Whether `ip` is inside (IPv4-mapped IPv6 judged as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        // `NetworkList::allows` is true for an empty list; `parse` refuses empty lists.
        !self.nets.is_empty() && self.networks.allows(ip)
    }
}

impl TryFrom<NamedLocationSpec> for NamedLocation {
    type Error = LocationError;
    fn try_from(s: NamedLocationSpec) -> Result<Self, LocationError> {
        Self::parse(&s.name, &s.cidrs, s.trusted)
    }
}

impl From<NamedLocation> for NamedLocationSpec {
    fn from(l: NamedLocation) -> Self {
        Self {
            name: l.name.as_str().to_owned(),
            cidrs: l.networks.to_strings(),
            trusted: l.trusted,
        }
    }
}
