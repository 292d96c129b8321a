//! The test-only safety net (`HostConfig::loopback_only`): this machine and CI may send traffic
//! only to loopback, so under it the host refuses any other destination before any DNS lookup.
//! Stricter than Spin, never kinder: it only takes destinations away.

use std::net::IpAddr;

/// Whether a URI host (IPv6 literals in brackets) is `localhost` or an IP literal in
/// 127.0.0.0/8 or `::1`.
pub fn is_loopback_destination(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    match literal.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => v6.is_loopback(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_literals_and_localhost_pass() {
        for ok in ["localhost", "LocalHost", "127.0.0.1", "127.1.2.3", "[::1]"] {
            assert!(is_loopback_destination(ok), "{ok}");
        }
        for refused in [
            "ghcr.io",
            "docker.io",
            "registry-1.docker.io",
            "localhost.",
            "localhost.example.com",
            "127.0.0.1.nip.io",
            "10.0.0.1",
            "0.0.0.0",
            "[::]",
            "[::ffff:127.0.0.1]",
            "169.254.169.254",
            "",
        ] {
            assert!(!is_loopback_destination(refused), "{refused}");
        }
    }
}
