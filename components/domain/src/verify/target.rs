//! Where a check goes: the registry base for an `auths` key, the rules that refuse a destination
//! before any connection (plain http, IP literals in private and reserved ranges), and the
//! repository name a check may be asked about.
//!
//! Host *names* are not resolved here: a component cannot see what a name resolves to, so names are
//! left to Spin's `[outbound_networking] block_networks` (the production runtime config blocks
//! private networks), whose refusal the check reports as `blocked`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use super::outcome::{Finding, Verdict, Why};
use crate::dockerconfig::DOCKER_HUB_SERVER;
use crate::error::Error;

/// Docker Hub's registry API lives on another host than its `auths` key names.
pub const DOCKER_HUB_REGISTRY: &str = "https://registry-1.docker.io";

/// The operator's plain-http registries (`host[:port]`, lower-case), from a Spin variable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlainHttpRegistries(Vec<String>);

impl PlainHttpRegistries {
    /// A comma- or space-separated list of `host[:port]`.
    pub fn parse(list: &str) -> PlainHttpRegistries {
        PlainHttpRegistries(
            list.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(str::to_ascii_lowercase)
                .collect(),
        )
    }

    fn allows(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else { return false };
        let with_port = url.port().map(|p| format!("{host}:{p}"));
        self.0.iter().any(|entry| entry == host || Some(entry) == with_port.as_ref())
    }
}

/// The base URL (`scheme://host[:port]/`) whose `/v2/` is checked for this `auths` key.
/// A key's path is not part of the registry API's address.
pub fn registry_base(server_key: &str, plain_http: &PlainHttpRegistries) -> Result<Url, Finding> {
    if server_key == DOCKER_HUB_SERVER {
        return Ok(Url::parse(DOCKER_HUB_REGISTRY).expect("a valid constant"));
    }
    let (scheme, rest) = match server_key.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, server_key),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let not_a_registry = || Finding::new(Verdict::NotARegistry, Why::NoRegistryApi);
    let https = Url::parse(&format!("https://{authority}/")).map_err(|_| not_a_registry())?;
    let http = Url::parse(&format!("http://{authority}/")).map_err(|_| not_a_registry())?;
    let url = match scheme {
        _ if plain_http.allows(&http) => http,
        Some("http") => return Err(Finding::new(Verdict::Blocked, Why::PlainHttp)),
        _ => https,
    };
    admit(&url, plain_http)?;
    Ok(url)
}

/// Whether a check may send anything to `url`: https (or http for a registry the operator
/// listed), and not an IP literal in a private or reserved range.
pub fn admit(url: &Url, plain_http: &PlainHttpRegistries) -> Result<(), Finding> {
    match url.scheme() {
        "https" => {}
        "http" if plain_http.allows(url) => {}
        _ => return Err(Finding::new(Verdict::Blocked, Why::PlainHttp)),
    }
    let refused = match url.host() {
        Some(Host::Ipv4(ip)) => !is_public(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => !is_public(IpAddr::V6(ip)),
        Some(Host::Domain(_)) => false,
        None => true,
    };
    if refused {
        return Err(Finding::new(Verdict::Blocked, Why::PrivateAddress));
    }
    Ok(())
}

/// False for loopback, link-local, RFC 1918, CGNAT, unique-local, unspecified, multicast,
/// broadcast and reserved addresses (IPv4-mapped and -compatible IPv6 as their IPv4 address).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped().or_else(|| embedded_v4(v6)) {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let cgnat = a == 100 && (64..128).contains(&b);
    let reserved = a >= 240 || a == 0;
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_unspecified()
        || cgnat
        || reserved)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let unique_local = first & 0xfe00 == 0xfc00;
    let link_local = first & 0xffc0 == 0xfe80;
    !(ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || unique_local || link_local)
}

/// `::a.b.c.d` (IPv4-compatible, deprecated but still parsed) and NAT64's `64:ff9b::a.b.c.d`.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let compatible = s[..6].iter().all(|&x| x == 0) && !ip.is_loopback() && !ip.is_unspecified();
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|&x| x == 0);
    (compatible || nat64).then_some(tail)
}

/// A Docker repository name (`org/app`), as the distribution spec's grammar allows it:
/// lower-case components of `[a-z0-9]` joined by `.`, `_`, `__` or runs of `-`, separated by `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository(String);

impl Repository {
    pub const MAX_LEN: usize = 255;

    pub fn parse(given: &str) -> Result<Repository, Error> {
        let refuse = |rule: &str| Err(Error::InvalidRequest(format!("`repository` {rule}")));
        if given.is_empty() || given.len() > Repository::MAX_LEN {
            return refuse("must be 1 to 255 characters");
        }
        if !given.split('/').all(component_ok) {
            return refuse(
                "must be a Docker repository name such as `org/app`: lower-case letters and digits, \
                 separated by '.', '_', '__' or '-' within a part and by '/' between parts",
            );
        }
        Ok(Repository(given.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn component_ok(part: &str) -> bool {
    let bytes = part.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !bytes.first().is_some_and(alnum) || !bytes.last().is_some_and(alnum) {
        return false;
    }
    // Between alphanumeric runs: one '.', one '_', two '_', or any number of '-'.
    part.split(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        .filter(|sep| !sep.is_empty())
        .all(|sep| matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-'))
        && bytes.iter().all(|b| alnum(b) || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(key: &str) -> Result<String, Verdict> {
        registry_base(key, &PlainHttpRegistries::parse("insecure.example:5000, lab.example"))
            .map(|u| u.to_string())
            .map_err(|f| f.verdict)
    }

    #[test]
    fn docker_hub_is_checked_at_registry_1_and_others_where_they_are() {
        assert_eq!(base("https://index.docker.io/v1/").unwrap(), "https://registry-1.docker.io/");
        assert_eq!(base("ghcr.io").unwrap(), "https://ghcr.io/");
        assert_eq!(base("https://quay.io/some/path").unwrap(), "https://quay.io/");
        assert_eq!(base("registry.example:5443").unwrap(), "https://registry.example:5443/");
        assert_eq!(base("localhost:5000").unwrap(), "https://localhost:5000/");
    }

    #[test]
    fn plain_http_is_blocked_unless_the_operator_lists_the_registry() {
        assert_eq!(base("http://registry.example"), Err(Verdict::Blocked));
        assert_eq!(base("http://insecure.example:5000").unwrap(), "http://insecure.example:5000/");
        assert_eq!(base("insecure.example:5000").unwrap(), "http://insecure.example:5000/");
        assert_eq!(base("http://insecure.example:5001"), Err(Verdict::Blocked), "another port is another registry");
        assert_eq!(base("http://lab.example/x").unwrap(), "http://lab.example/");
    }

    #[test]
    fn ip_literals_in_private_and_reserved_ranges_are_refused_before_connecting() {
        for key in [
            "127.0.0.1:5000",
            "https://127.1.2.3",
            "10.0.0.8",
            "172.16.5.4",
            "172.31.255.255",
            "192.168.1.1:443",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "[::1]:5000",
            "[::]",
            "[fe80::1]",
            "[fd00::1]",
            "[fc12::3]",
            "[ff02::1]",
            "[::ffff:127.0.0.1]",
            "[::ffff:10.1.2.3]",
            "[64:ff9b::a9fe:a9fe]",
        ] {
            assert_eq!(base(key), Err(Verdict::Blocked), "{key}");
        }
        for key in ["8.8.8.8", "172.32.0.1", "100.128.0.1", "[2001:4860:4860::8888]", "192.169.0.1"] {
            assert!(base(key).is_ok(), "{key}");
        }
    }

    #[test]
    fn a_redirect_target_is_admitted_by_the_same_rules() {
        let none = PlainHttpRegistries::default();
        assert!(admit(&Url::parse("https://cdn.example/x").unwrap(), &none).is_ok());
        assert!(admit(&Url::parse("http://cdn.example/x").unwrap(), &none).is_err());
        assert!(admit(&Url::parse("https://10.0.0.1/x").unwrap(), &none).is_err());
        assert!(admit(&Url::parse("ftp://example.com/").unwrap(), &none).is_err());
    }

    #[test]
    fn repository_names_follow_the_distribution_grammar() {
        for ok in ["app", "org/app", "a/b/c", "my-org/my_app", "a__b", "a.b", "a---b", "library/ubuntu", "x1/2y"] {
            assert!(Repository::parse(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(256);
        for bad in ["", "Org/app", "/app", "app/", "a//b", "-a", "a-", "a..b", "a___b", "a b", "a:tag", "a@x", &long] {
            assert!(Repository::parse(bad).is_err(), "{bad}");
        }
    }
}
