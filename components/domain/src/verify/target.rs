//! Where a check goes: the registry base for an `auths` key, the rules that refuse a destination
//! before any connection (plain http, IP literals in private and reserved ranges), and the
//! repository name a check may be asked about.
//!
//! Host *names* are not resolved here: a component cannot see what a name resolves to, so names are
//! left to Spin's `[outbound_networking] block_networks` (the production runtime config blocks
//! private networks), whose refusal the check reports as `blocked`.

use url::Url;

use super::outcome::{Finding, Verdict, Why};
use crate::dockerconfig::DOCKER_HUB_SERVER;
use crate::error::Error;
pub use crate::net::{is_public, PlainHttpRegistries};
use crate::net::{refusal, Refused};

/// Docker Hub's registry API lives on another host than its `auths` key names.
pub const DOCKER_HUB_REGISTRY: &str = "https://registry-1.docker.io";

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

/// Whether a check may send anything to `url` ([`crate::net::refusal`]), as a finding.
pub fn admit(url: &Url, plain_http: &PlainHttpRegistries) -> Result<(), Finding> {
    match refusal(url, plain_http) {
        None => Ok(()),
        Some(Refused::PlainHttp) => Err(Finding::new(Verdict::Blocked, Why::PlainHttp)),
        Some(Refused::PrivateAddress) => Err(Finding::new(Verdict::Blocked, Why::PrivateAddress)),
    }
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
