//! Default ports that are taken fall back to free ones.
//!
//! Every default must work on one machine, including several nodes started side by side with
//! only the ports someone cares about given (as the checks and an operator's quick test do). So
//! a listen address left at its built-in default whose port is already in use is replaced by
//! port 0 (a free port, reported by `/health`) with a warning. An address set to anything else
//! is used as given and fails loudly when taken. The admin endpoint never falls back: it is how
//! the CLI finds the node.

use std::net::{SocketAddr, TcpListener, UdpSocket};

use crate::config::Config;

/// The configuration with taken default ports replaced by port 0.
pub fn free_defaults(config: &Config) -> Config {
    let d = Config::default();
    let mut c = config.clone();
    let tcp = |a: SocketAddr| TcpListener::bind(a).is_ok();
    let udp = |a: SocketAddr| UdpSocket::bind(a).is_ok();
    let fallback = |key: &str, addr: &mut SocketAddr, default: SocketAddr, free: bool| {
        if *addr == default && !free {
            tracing::warn!(
                key,
                %default,
                "the default port is in use; listening on a free port instead (set {key} to choose one)"
            );
            addr.set_port(0);
        }
    };
    let free = tcp(c.dns_listen) && udp(c.dns_listen);
    fallback("dns_listen", &mut c.dns_listen, d.dns_listen, free);
    let free = tcp(c.http_listen);
    fallback("http_listen", &mut c.http_listen, d.http_listen, free);
    let free = tcp(c.redis_listen);
    fallback("redis_listen", &mut c.redis_listen, d.redis_listen, free);
    let free = udp(c.quic_listen);
    fallback("quic_listen", &mut c.quic_listen, d.quic_listen, free);
    if c.p2p_listen == d.p2p_listen {
        let default_p2p = SocketAddr::from(([127, 0, 0, 1], 4301));
        if !udp(default_p2p) {
            tracing::warn!(
                key = "p2p_listen",
                "the default libp2p port is in use; listening on a free port instead"
            );
            c.p2p_listen = vec!["/ip4/127.0.0.1/udp/0/quic-v1".to_owned()];
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taken_default_falls_back_but_explicit_addresses_do_not() {
        let d = Config::default();
        // Hold the default Redis port if we can (another test process may hold it already,
        // which makes the point just as well).
        let _hold = TcpListener::bind(d.redis_listen);
        let c = free_defaults(&d);
        assert_eq!(c.redis_listen.port(), 0);
        let explicit = Config {
            redis_listen: "127.0.0.1:1".parse().unwrap(),
            ..d.clone()
        };
        assert_eq!(free_defaults(&explicit).redis_listen.port(), 1);
        assert_eq!(c.admin_listen, d.admin_listen);
    }
}
