//! The `[dns]` section of the node configuration.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Configuration of the DNS service. The listen address itself is the node's `dns_listen`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// Top-level domains answered authoritatively from the ledger's signed zones. Not read
    /// from `[dns]`: a node takes them from `[naming] tlds`, the one place they are configured.
    #[serde(skip)]
    pub tlds: Vec<String>,
    /// Upstream resolvers for every other name (`IP` or `IP:PORT`). Empty: the nameservers of
    /// the system's `/etc/resolv.conf`, minus this node itself.
    pub upstreams: Vec<String>,
    /// Networks whose clients may use the forwarding resolver (default: loopback only).
    /// Everyone else gets REFUSED for non-ledger names: never an open resolver.
    pub allowed_clients: Vec<IpNet>,
    /// Total time a forwarded query may take before the client gets SERVFAIL.
    #[serde(with = "humantime_serde")]
    pub forward_timeout: Duration,
    /// Entries of the forwarding cache (positive and negative answers).
    pub forward_cache_entries: u64,
    /// Authoritative responses per second allowed per client network (/24 for IPv4, /56 for
    /// IPv6) outside the allowed client networks; 0 turns response rate limiting off.
    pub rate_limit: u32,
    /// TTL of the synthesized SOA and NS records and of negative answers.
    pub negative_ttl: u32,
    /// TTL of steering answers (A/AAAA synthesized for site names).
    pub steering_ttl: u32,
    /// UDP sockets bound to the DNS port with `SO_REUSEPORT`, each served by its own thread.
    /// 0: one per available core.
    pub udp_sockets: usize,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            tlds: vec!["proxima".to_owned()],
            upstreams: Vec::new(),
            allowed_clients: vec![
                IpNet::V4(ipnet::Ipv4Net::new_assert(
                    std::net::Ipv4Addr::new(127, 0, 0, 0),
                    8,
                )),
                IpNet::from(IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
            ],
            forward_timeout: Duration::from_secs(2),
            forward_cache_entries: 100_000,
            rate_limit: 200,
            negative_ttl: 60,
            steering_ttl: 30,
            udp_sockets: 1,
        }
    }
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("dns.{key} = {value:?}: {problem}")]
pub struct DnsConfigError {
    /// The key under `[dns]`.
    pub key: &'static str,
    /// The offending value.
    pub value: String,
    /// What is wrong and what is allowed.
    pub problem: String,
}

impl DnsConfig {
    /// Checks what types alone cannot; returns the parsed upstream addresses.
    pub fn validate(&self) -> Result<(), DnsConfigError> {
        if self.tlds.is_empty() {
            return Err(DnsConfigError {
                key: "tlds",
                value: "[]".into(),
                problem: "at least one ledger TLD is needed, e.g. [\"proxima\"]".into(),
            });
        }
        for tld in &self.tlds {
            let ok = !tld.is_empty()
                && tld.len() <= 63
                && tld
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !tld.starts_with('-')
                && !tld.ends_with('-');
            if !ok {
                return Err(DnsConfigError {
                    key: "tlds",
                    value: tld.clone(),
                    problem: "expected one lowercase LDH label such as \"proxima\"".into(),
                });
            }
        }
        for u in &self.upstreams {
            parse_upstream(u).map_err(|problem| DnsConfigError {
                key: "upstreams",
                value: u.clone(),
                problem,
            })?;
        }
        if self.forward_timeout < Duration::from_millis(10)
            || self.forward_timeout > Duration::from_secs(30)
        {
            return Err(DnsConfigError {
                key: "forward_timeout",
                value: humantime::format_duration(self.forward_timeout).to_string(),
                problem: "expected between 10ms and 30s".into(),
            });
        }
        if self.udp_sockets > 64 {
            return Err(DnsConfigError {
                key: "udp_sockets",
                value: self.udp_sockets.to_string(),
                problem: "expected 0 (one per core) up to 64".into(),
            });
        }
        Ok(())
    }

    /// The upstream resolvers to use: the configured ones, or the system's, never `own`.
    pub fn resolved_upstreams(&self, own: SocketAddr) -> Vec<SocketAddr> {
        let list: Vec<SocketAddr> = if self.upstreams.is_empty() {
            std::fs::read_to_string("/etc/resolv.conf")
                .map(|text| system_nameservers(&text))
                .unwrap_or_default()
        } else {
            self.upstreams
                .iter()
                .filter_map(|u| parse_upstream(u).ok())
                .collect()
        };
        list.into_iter().filter(|a| !is_self(*a, own)).collect()
    }
}

/// `IP` (port 53) or `IP:PORT` (`[v6]:PORT`).
pub fn parse_upstream(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| "expected IP or IP:PORT such as 9.9.9.9 or 127.0.0.1:5353".into())
}

/// `nameserver` lines of a resolv.conf text.
pub fn system_nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            if words.next()? != "nameserver" {
                return None;
            }
            // Drop a zone index such as fe80::1%eth0: a scoped address cannot be parsed here.
            let ip = words.next()?.split('%').next()?;
            ip.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53))
        })
        .collect()
}

/// Whether `upstream` is this node itself (same port on the same or an unspecified address).
fn is_self(upstream: SocketAddr, own: SocketAddr) -> bool {
    upstream.port() == own.port()
        && (upstream.ip() == own.ip()
            || own.ip().is_unspecified()
            || (upstream.ip().is_loopback() && own.ip().is_loopback()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers_are_read() {
        let text =
            "# comment\nnameserver 127.0.0.53\noptions edns0\nnameserver fe80::1%eth0\nsearch x\n";
        let got = system_nameservers(text);
        assert_eq!(
            got,
            vec![
                "127.0.0.53:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn never_forwards_to_itself() {
        let c = DnsConfig {
            upstreams: vec!["127.0.0.1:5300".into(), "127.0.0.1:5301".into()],
            ..DnsConfig::default()
        };
        let own: SocketAddr = "127.0.0.1:5300".parse().unwrap();
        assert_eq!(
            c.resolved_upstreams(own),
            vec!["127.0.0.1:5301".parse::<SocketAddr>().unwrap()]
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        let c = DnsConfig {
            upstreams: vec!["nope".into()],
            ..DnsConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "upstreams");
        let c = DnsConfig {
            tlds: vec!["Bad.tld".into()],
            ..DnsConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "tlds");
    }
}
