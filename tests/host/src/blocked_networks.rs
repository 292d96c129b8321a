//! `[outbound_networking] block_networks` as Spin 4.0.2 enforces it (outbound-networking-config's
//! `BlockedNetworks`): CIDRs, plus `"private"` for every address that is not globally routable
//! (`ip_network`'s `is_global`: loopback, RFC 1918, link-local, shared 100.64/10, 0/8, 192.0.0/24,
//! ULA fc00::/7, ...). Spin resolves the name first and drops blocked addresses; when none is left
//! the guest sees `destination-ip-prohibited`.

use ip_network::IpNetwork;
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, Default)]
pub struct BlockedNetworks {
    networks: Vec<IpNetwork>,
    block_private: bool,
}

impl BlockedNetworks {
    pub fn new(networks: &[IpNetwork], block_private: bool) -> BlockedNetworks {
        // As Spin: networks that "private" already covers are left out.
        let networks =
            IpNetwork::collapse_addresses(networks).into_iter().filter(|n| !block_private || n.is_global()).collect();
        BlockedNetworks { networks, block_private }
    }

    pub fn is_empty(&self) -> bool {
        !self.block_private && self.networks.is_empty()
    }

    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        if self.block_private && !IpNetwork::from(ip).is_global() {
            return true;
        }
        if self.networks.iter().any(|n| n.contains(ip)) {
            return true;
        }
        // IPv4-compatible and -mapped IPv6 addresses are checked as IPv4 too, so they cannot bypass.
        match ip {
            IpAddr::V6(v6) => v6.to_ipv4().is_some_and(|v4| self.is_blocked(IpAddr::V4(v4))),
            IpAddr::V4(_) => false,
        }
    }

    /// Removes blocked addresses from `addrs` and returns them.
    pub fn remove_blocked(&self, addrs: &mut Vec<SocketAddr>) -> Vec<SocketAddr> {
        if self.is_empty() {
            return Vec::new();
        }
        let (blocked, allowed) = std::mem::take(addrs).into_iter().partition(|a| self.is_blocked(a.ip()));
        *addrs = allowed;
        blocked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> IpNetwork {
        IpNetwork::from_str_truncate(s).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_covers_what_spin_says() {
        let blocked = BlockedNetworks::new(&[cidr("10.0.0.0/8")], true);
        for private in [
            "0.0.0.0",
            "10.10.10.10",
            "100.64.1.1",
            "127.0.0.1",
            "127.9.9.9",
            "169.254.169.254",
            "172.16.0.1",
            "192.168.1.1",
            "192.0.0.1",
            "::1",
            "::ffff:10.10.10.10",
            "::ffff:127.0.0.1",
            "fc00::f00d",
            "fe80::1",
        ] {
            assert!(blocked.is_blocked(ip(private)), "{private}");
        }
        assert!(!blocked.is_blocked(ip("123.123.123.123")));
        assert!(!blocked.is_blocked(ip("2600::beef")));
    }

    #[test]
    fn explicit_networks_and_mapped_addresses() {
        let blocked = BlockedNetworks::new(&[cidr("123.123.0.0/16"), cidr("2001::/96")], false);
        assert!(blocked.is_blocked(ip("123.123.123.123")));
        assert!(blocked.is_blocked(ip("::ffff:123.123.123.123")));
        assert!(blocked.is_blocked(ip("2001::1000")));
        assert!(!blocked.is_blocked(ip("123.100.100.100")));
        assert!(!blocked.is_blocked(ip("127.0.0.1")), "without \"private\" loopback is reachable");
        assert!(BlockedNetworks::default().is_empty());
    }

    #[test]
    fn remove_blocked_keeps_the_rest_in_order() {
        let blocked = BlockedNetworks::new(&[cidr("123.123.0.0/16")], true);
        let mut addrs: Vec<SocketAddr> =
            ["127.0.0.1:3000", "123.200.0.1:443", "123.123.1.1:443", "[::1]:80", "[2600:beef::1]:80"]
                .iter()
                .map(|a| a.parse().unwrap())
                .collect();
        let removed = blocked.remove_blocked(&mut addrs);
        assert_eq!(addrs, vec!["123.200.0.1:443".parse().unwrap(), "[2600:beef::1]:80".parse().unwrap()]);
        assert_eq!(removed.len(), 3);
    }
}
