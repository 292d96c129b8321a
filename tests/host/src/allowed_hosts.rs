//! `allowed_outbound_hosts` as Spin parses and enforces it (outbound-networking-config):
//! `scheme://host[:port]` with `*` for any scheme, host or port, `*.domain` subdomain wildcards,
//! port ranges `a..b`, default ports per scheme, and `http://*.spin.internal` expanded to every
//! component of the app.

use anyhow::{bail, Context, Result};

pub const SERVICE_CHAINING_SUFFIX: &str = ".spin.internal";

#[derive(Debug, Clone, PartialEq)]
enum HostRule {
    Any,
    AnySubdomain(String),
    ToSelf,
    Literal(String),
}

#[derive(Debug, Clone, PartialEq)]
enum PortRule {
    Any,
    Port(u16),
    Range(u16, u16),
}

#[derive(Debug, Clone, PartialEq)]
pub struct AllowedHost {
    scheme: Option<String>,
    host: HostRule,
    port: PortRule,
}

fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl AllowedHost {
    pub fn parse(original: &str) -> Result<AllowedHost> {
        let url = original.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            bail!("{url:?} does not contain a scheme (e.g., 'http://' or '*://')");
        };
        let (host, rest) = rest.rsplit_once(':').unwrap_or((rest, ""));
        let port = match rest.split_once('/') {
            Some((port, "")) => port,
            Some(_) => bail!("{url:?} has a path but is not allowed to"),
            None => rest,
        };
        let port = if port.is_empty() {
            PortRule::Port(well_known_port(scheme).with_context(|| {
                format!("no port was provided and the scheme {scheme:?} does not have a known default port number")
            })?)
        } else if port == "*" {
            PortRule::Any
        } else if let Some((a, b)) = port.split_once("..") {
            PortRule::Range(a.parse()?, b.parse()?)
        } else {
            PortRule::Port(port.parse().with_context(|| format!("port {port:?} is not a number"))?)
        };
        let scheme = if scheme == "*" {
            None
        } else if scheme.chars().all(|c| c.is_alphabetic()) {
            Some(scheme.to_string())
        } else {
            bail!("Invalid allowed host scheme {scheme:?}");
        };
        let host = host.trim().trim_end_matches('/');
        let host = if host == "*" {
            HostRule::Any
        } else if host == "self" || host == "self.alt" {
            HostRule::ToSelf
        } else if host.contains('/') {
            bail!("Invalid allowed host {host:?}: must not include a path");
        } else if let Some(domain) = host.strip_prefix("*.") {
            if domain.contains('*') {
                bail!("Invalid allowed host {host:?}: wildcards are allowed only as prefixes");
            }
            HostRule::AnySubdomain(format!(".{}", domain.to_ascii_lowercase()))
        } else if host.contains('*') {
            bail!("Invalid allowed host {host:?}: wildcards are allowed only as subdomains");
        } else {
            HostRule::Literal(host.to_ascii_lowercase())
        };
        Ok(AllowedHost { scheme, host, port })
    }

    fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let scheme_ok = self.scheme.as_deref().is_none_or(|s| s == scheme);
        let host = host.to_ascii_lowercase();
        let host_ok = match &self.host {
            HostRule::Any => true,
            HostRule::AnySubdomain(suffix) => host.ends_with(suffix.as_str()),
            HostRule::Literal(l) => *l == host,
            HostRule::ToSelf => false,
        };
        let port_ok = match self.port {
            PortRule::Any => true,
            _ => match port.or_else(|| well_known_port(scheme)) {
                Some(p) => match self.port {
                    PortRule::Port(q) => p == q,
                    PortRule::Range(a, b) => (a..b).contains(&p),
                    PortRule::Any => true,
                },
                None => false,
            },
        };
        scheme_ok && host_ok && port_ok
    }
}

/// One component's outbound allow-list.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    hosts: Vec<AllowedHost>,
}

impl AllowedHosts {
    pub fn parse(entries: &[String], component_ids: &[String]) -> Result<AllowedHosts> {
        if entries.len() == 1 && entries[0] == "insecure:allow-all" {
            bail!("'insecure:allow-all' is not allowed - use '*://*:*' instead if you really want to allow all outbound traffic'");
        }
        let mut hosts = Vec::new();
        for entry in entries {
            if entry.contains("{{") {
                bail!("templated allowed_outbound_hosts ({entry:?}) are not supported by the test host");
            }
            let host = AllowedHost::parse(entry)?;
            // As Spin: `*.spin.internal` means "every component of this app", nothing else.
            match &host.host {
                HostRule::AnySubdomain(s) if s == SERVICE_CHAINING_SUFFIX => {
                    for id in component_ids {
                        let mut h = host.clone();
                        h.host = HostRule::Literal(format!("{id}{SERVICE_CHAINING_SUFFIX}"));
                        hosts.push(h);
                    }
                }
                _ => hosts.push(host),
            }
        }
        Ok(AllowedHosts { hosts })
    }

    /// Whether an absolute outbound URL may be requested.
    pub fn allows_url(&self, uri: &http::Uri) -> bool {
        let scheme = uri.scheme_str().unwrap_or("https");
        let Some(host) = uri.host() else {
            return false;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.hosts.iter().any(|h| h.allows(scheme, host, uri.port_u16()))
    }

    /// Whether a relative URL (a request to the app itself) may be requested.
    pub fn allows_relative(&self) -> bool {
        self.hosts.iter().any(|h| {
            matches!(h.host, HostRule::Any | HostRule::ToSelf)
                && h.scheme.as_deref().is_none_or(|s| s == "http" || s == "https")
        })
    }
}

/// The component a `http://<id>.spin.internal` URL chains to.
pub fn service_chaining_target(uri: &http::Uri) -> Option<String> {
    let host = uri.host()?.trim();
    let (first, rest) = host.split_once('.')?;
    (rest == "spin.internal").then(|| first.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(entries: &[&str], url: &str) -> bool {
        let entries: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        let ids = vec!["create".to_string(), "list".to_string()];
        AllowedHosts::parse(&entries, &ids).unwrap().allows_url(&url.parse().unwrap())
    }

    #[test]
    fn exact_host_and_port() {
        assert!(allows(&["http://127.0.0.1:8080"], "http://127.0.0.1:8080/x"));
        assert!(!allows(&["http://127.0.0.1:8080"], "http://127.0.0.1:8081/x"));
        assert!(!allows(&["http://127.0.0.1:8080"], "https://127.0.0.1:8080/x"));
    }

    #[test]
    fn default_ports_by_scheme() {
        assert!(allows(&["https://example.com"], "https://example.com/a"));
        assert!(allows(&["https://example.com"], "https://example.com:443/a"));
        assert!(!allows(&["https://example.com"], "https://example.com:8443/a"));
        assert!(!allows(&["https://example.com"], "http://example.com/a"));
    }

    #[test]
    fn wildcards() {
        assert!(allows(&["*://*:*"], "http://anything:1/"));
        assert!(allows(&["https://*.example.com"], "https://a.example.com/"));
        assert!(!allows(&["https://*.example.com"], "https://example.com/"));
        assert!(allows(&["http://localhost:*"], "http://localhost:9999/"));
        assert!(allows(&["http://localhost:8000..8010"], "http://localhost:8005/"));
        assert!(!allows(&["http://localhost:8000..8010"], "http://localhost:8010/"));
    }

    #[test]
    fn service_chaining_wildcard_covers_only_app_components() {
        assert!(allows(&["http://*.spin.internal"], "http://create.spin.internal/v2"));
        assert!(!allows(&["http://*.spin.internal"], "http://other.spin.internal/v2"));
        assert!(!allows(&["http://create.spin.internal"], "http://list.spin.internal/"));
        assert!(!allows(&[], "http://create.spin.internal/"));
    }

    #[test]
    fn refuses_malformed_entries() {
        assert!(AllowedHost::parse("example.com").is_err());
        assert!(AllowedHost::parse("http://example.com/path").is_err());
        assert!(AllowedHost::parse("http://a.*.com").is_err());
        assert!(AllowedHosts::parse(&["insecure:allow-all".into()], &[]).is_err());
    }

    #[test]
    fn chaining_target() {
        let u: http::Uri = "http://create.spin.internal/v2/x".parse().unwrap();
        assert_eq!(service_chaining_target(&u).as_deref(), Some("create"));
        let u: http::Uri = "http://create.example/".parse().unwrap();
        assert_eq!(service_chaining_target(&u), None);
    }
}
