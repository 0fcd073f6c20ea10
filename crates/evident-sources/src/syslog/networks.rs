//! Which facility (site, plant, line) a sender belongs to, by its network: configured as
//! `CIDR: facility`, the longest matching prefix wins.

use ipnet::IpNet;
use std::net::IpAddr;

/// Sender networks and their facilities, most specific first.
#[derive(Debug, Clone, Default)]
pub struct Networks {
    entries: Vec<(IpNet, String)>,
}

/// A network map entry that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "sender network `{network}` is not a CIDR network (such as 10.20.0.0/16 or fd00::/8): {reason}"
)]
pub struct NetworkError {
    /// The entry as written.
    pub network: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Networks {
    /// The map from `(CIDR, facility)` pairs; a bare address is a network of one.
    pub fn new<'a>(
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, NetworkError> {
        let mut parsed = Vec::new();
        for (network, facility) in entries {
            let net = network
                .parse::<IpNet>()
                .or_else(|e| network.parse::<IpAddr>().map(IpNet::from).map_err(|_| e))
                .map_err(|e| NetworkError {
                    network: network.to_owned(),
                    reason: e.to_string(),
                })?;
            parsed.push((net.trunc(), facility.to_owned()));
        }
        parsed.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        Ok(Self { entries: parsed })
    }

    /// The facility of the most specific network holding `addr`, if any. An IPv4
    /// address seen as IPv6 (`::ffff:10.0.0.1`, from a dual-stack socket) is matched as
    /// IPv4.
    pub fn facility_of(&self, addr: IpAddr) -> Option<&str> {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        self.entries
            .iter()
            .find(|(net, _)| net.contains(&addr))
            .map(|(_, facility)| facility.as_str())
    }

    /// Whether no network is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_prefix_names_the_facility() {
        let networks = Networks::new([
            ("10.0.0.0/8", "group"),
            ("10.20.0.0/16", "plant-a"),
            ("10.20.4.0/24", "plant-a-line-3"),
            ("192.0.2.7", "historian"),
        ])
        .unwrap();
        let of = |a: &str| networks.facility_of(a.parse().unwrap());
        assert_eq!(of("10.20.4.9"), Some("plant-a-line-3"));
        assert_eq!(of("10.20.5.9"), Some("plant-a"));
        assert_eq!(of("10.99.0.1"), Some("group"));
        assert_eq!(of("192.0.2.7"), Some("historian"));
        assert_eq!(of("::ffff:10.20.4.9"), Some("plant-a-line-3"));
        assert_eq!(of("172.16.0.1"), None);
    }

    #[test]
    fn a_bad_network_is_named() {
        let error = Networks::new([("10.0.0.0/33", "x")]).unwrap_err();
        assert!(error.to_string().contains("`10.0.0.0/33`"), "{error}");
    }
}
