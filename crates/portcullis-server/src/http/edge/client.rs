//! Who the client is: the address every rule keyed on "where a request came from" uses.
//!
//! Invariants:
//! - `X-Forwarded-For` is believed only when the TCP peer is a configured trusted proxy
//!   (`trusted_proxies`); then the client is the right-most entry that is not itself a trusted
//!   proxy (each proxy appends the address it saw, so everything left of the first untrusted
//!   hop is the client's own claim). From anyone else the header is ignored.
//! - The result is computed once per request ([`resolve_client`]) and stored as
//!   [`ClientAddr`]; `auth::ClientInfo` (sign-in throttling, network allow-lists, conditional
//!   access, audit `client_ip`), the access-token path and the rate limiters all read it.
//! - IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, from a dual-stack listener) are the IPv4
//!   address, so allow-lists and proxies written in IPv4 match.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::http::{Extensions, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

/// The resolved client address of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The configured reverse proxies.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self { nets }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client behind a connection from `peer` carrying `headers` (see the module's rules).
    pub fn client_of(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.contains(client) {
            return client;
        }
        // Several X-Forwarded-For headers are one list, in order (RFC 9110 §5.3).
        let entries: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        for entry in entries.iter().rev() {
            // An entry that is not an address ends the walk: nothing left of it can be
            // attributed, so the last trusted hop stands.
            let Some(ip) = parse_entry(entry) else { break };
            client = ip;
            if !self.contains(ip) {
                break;
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: a bare address, or one with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// The key rate limits and connection caps count by: the address itself for IPv4, its /64
/// for IPv6 (one subscriber usually holds a whole /64, so counting single IPv6 addresses
/// would give one client 2^64 budgets).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// The client address of a request: the resolved one, else the TCP peer, else `None` (a
/// router driven without a connection, as in-process tests do).
pub fn client_ip(extensions: &Extensions) -> Option<IpAddr> {
    extensions.get::<ClientAddr>().map(|c| c.0).or_else(|| {
        extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_canonical())
    })
}

/// Middleware: resolves the client address once, before anything that keys on it.
pub async fn resolve_client(
    trusted: Arc<TrustedProxies>,
    mut req: Request,
    next: Next,
) -> Response {
    if let Some(peer) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
        let client = trusted.client_of(peer.0.ip(), req.headers());
        req.extensions_mut().insert(ClientAddr(client));
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|n| n.parse().expect("net")).collect())
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn forwarded_for_is_ignored_from_an_untrusted_peer() {
        let t = proxies(&["10.0.0.0/8"]);
        let h = xff(&["203.0.113.7"]);
        assert_eq!(t.client_of(ip("192.0.2.1"), &h), ip("192.0.2.1"));
        assert_eq!(
            TrustedProxies::default().client_of(ip("10.0.0.1"), &h),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn the_right_most_untrusted_entry_is_the_client() {
        let t = proxies(&["10.0.0.0/8"]);
        // The client forged the first entry; the proxy appended what it saw.
        let h = xff(&["198.51.100.1, 203.0.113.7"]);
        assert_eq!(t.client_of(ip("10.0.0.1"), &h), ip("203.0.113.7"));
        // Two proxies, the inner one appended the outer one's address, in two headers.
        let h = xff(&["198.51.100.1, 203.0.113.7", "10.1.2.3"]);
        assert_eq!(t.client_of(ip("10.0.0.1"), &h), ip("203.0.113.7"));
        // With ports and brackets.
        let h = xff(&["[2001:db8::7]:4711"]);
        assert_eq!(t.client_of(ip("10.0.0.1"), &h), ip("2001:db8::7"));
    }

    #[test]
    fn garbage_stops_the_walk_at_the_last_trusted_hop() {
        let t = proxies(&["10.0.0.0/8"]);
        let h = xff(&["203.0.113.7, not-an-ip, 10.9.9.9"]);
        assert_eq!(t.client_of(ip("10.0.0.1"), &h), ip("10.9.9.9"));
        // No header at all: the proxy itself.
        assert_eq!(
            t.client_of(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn mapped_ipv4_is_ipv4() {
        let t = proxies(&["127.0.0.1/32"]);
        let h = xff(&["::ffff:203.0.113.7"]);
        assert_eq!(t.client_of(ip("::ffff:127.0.0.1"), &h), ip("203.0.113.7"));
    }

    #[test]
    fn ipv6_counts_per_64() {
        assert_eq!(
            address_key(ip("2001:db8:1:2:3:4:5:6")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            address_key(ip("2001:db8:1:2::1")),
            address_key(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            address_key(ip("2001:db8:1:2::1")),
            address_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(address_key(ip("192.0.2.9")), ip("192.0.2.9"));
        assert_eq!(address_key(ip("::ffff:192.0.2.9")), ip("192.0.2.9"));
    }
}
