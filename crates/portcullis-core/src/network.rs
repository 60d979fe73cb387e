//! Client networks: the CIDR allow-list of a service account.
//!
//! Invariants:
//! - A list is either empty (any network) or a set of canonical CIDRs, IPv4 and IPv6, with no
//!   host bits set and no two entries overlapping, at most [`MAX_NETWORKS`] of them; anything
//!   else is refused with every bad entry named, so a typo never widens or narrows access
//!   silently.
//! - An IPv4 address carried in IPv6 (`::ffff:192.0.2.1`) is judged as the IPv4 address it is.

use std::net::IpAddr;

use ipnet::IpNet;

/// The most entries one list may hold.
pub const MAX_NETWORKS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    #[error("{0}")]
    Invalid(String),
}

/// A validated allow-list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkList(Vec<IpNet>);

impl NetworkList {
    /// Parses CIDRs (`10.0.0.0/8`, `2001:db8::/32`; a bare address is a /32 or /128).
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, NetworkError> {
        if items.len() > MAX_NETWORKS {
            return Err(NetworkError::Invalid(format!(
                "at most {MAX_NETWORKS} networks, not {}",
                items.len()
            )));
        }
        let mut problems = Vec::new();
        let mut nets: Vec<IpNet> = Vec::new();
        for item in items {
            let raw = item.as_ref().trim();
            let parsed = raw
                .parse::<IpNet>()
                .or_else(|_| raw.parse::<IpAddr>().map(IpNet::from));
            match parsed {
                Err(_) => problems.push(format!("{raw:?} is not a CIDR range")),
                Ok(net) if net.trunc() != net => problems.push(format!(
                    "{raw} has host bits set (did you mean {}?)",
                    net.trunc()
                )),
                Ok(net) => {
                    if let Some(other) = nets.iter().find(|o| o.contains(&net) || net.contains(*o))
                    {
                        problems.push(format!("{net} overlaps {other}"));
                    } else {
                        nets.push(net);
                    }
                }
            }
        }
        if !problems.is_empty() {
            return Err(NetworkError::Invalid(problems.join("; ")));
        }
        nets.sort();
        Ok(Self(nets))
    }

    /// Whether `ip` may authenticate: always when the list is empty.
    pub fn allows(&self, ip: IpAddr) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|n| n.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The canonical CIDRs, sorted.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn empty_allows_everything_and_lists_restrict() {
        assert!(NetworkList::default().allows(ip("203.0.113.7")));
        let l = NetworkList::parse(&["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]).expect("ok");
        assert!(l.allows(ip("10.1.2.3")));
        assert!(l.allows(ip("2001:db8::1")));
        assert!(l.allows(ip("192.0.2.7")));
        assert!(
            l.allows(ip("::ffff:10.9.9.9")),
            "IPv4 in IPv6 is judged as IPv4"
        );
        assert!(!l.allows(ip("192.0.2.8")));
        assert!(!l.allows(ip("11.0.0.1")));
        assert!(!l.allows(ip("2001:db9::1")));
        assert_eq!(
            l.to_strings(),
            ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]
        );
    }

    #[test]
    fn bad_lists_are_refused_naming_every_problem() {
        let e = NetworkList::parse(&[
            "10.0.0.1/8",
            "nonsense",
            "10.0.0.0/33",
            "192.168.0.0/16",
            "192.168.1.0/24",
        ])
        .expect_err("refused")
        .to_string();
        for needle in [
            "did you mean 10.0.0.0/8",
            "\"nonsense\"",
            "\"10.0.0.0/33\"",
            "192.168.1.0/24 overlaps 192.168.0.0/16",
        ] {
            assert!(e.contains(needle), "{needle} missing from {e}");
        }
        let many: Vec<String> = (0..=MAX_NETWORKS)
            .map(|i| format!("10.{i}.0.0/16"))
            .collect();
        assert!(NetworkList::parse(&many).is_err());
        assert!(NetworkList::parse(&[""]).is_err());
    }
}
