//! `allowed_outbound_hosts` as Spin 4.0.2 parses and enforces it (outbound-networking-config):
//! `scheme://host[:port]` with `*` for any scheme, host or port, `*.domain` subdomain wildcards,
//! CIDR hosts (`https://10.0.0.0/8`; an IP literal is a /32 or /128 network), port ranges `a..b`
//! (end excluded), default ports per scheme, and `http://*.spin.internal` expanded to every
//! component of the app. Request URLs are parsed with the `url` crate as Spin does, so a default
//! port written out (`https://x:443`) is the same as none.
//!
//! Entries may be templates over the application's variables (`"{{ aws_endpoint_url }}"`), as in
//! Spin 4.0.2 (`outbound-networking-config`, `loader`): at load, a template whose variables all
//! have defaults is resolved with the defaults and must parse (else the app does not load); when an
//! instance is prepared, templates are resolved with the variables' values. A value that does not
//! parse then (an empty one included: 4.0.2 does not skip empty entries) makes Spin's allow-list
//! an error, and every outbound request of that component is refused; so it is here.

use anyhow::{bail, Context, Result};
use ip_network::IpNetwork;
use url::Host;

pub const SERVICE_CHAINING_SUFFIX: &str = ".spin.internal";

#[derive(Debug, Clone, PartialEq)]
enum HostRule {
    Any,
    /// The suffix with its leading dot, as written (Spin does not lower-case it).
    AnySubdomain(String),
    ToSelf,
    Literal(Host),
    Cidr(IpNetwork),
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

impl HostRule {
    fn parse(host: &str) -> Result<HostRule> {
        let host = host.trim();
        if host == "*" {
            return Ok(HostRule::Any);
        }
        if host == "self" || host == "self.alt" {
            return Ok(HostRule::ToSelf);
        }
        if host.starts_with('{') {
            bail!("host lists are not yet supported");
        }
        if let Ok(net) = IpNetwork::from_str_truncate(host) {
            return Ok(HostRule::Cidr(net));
        }
        let host = host.trim_end_matches('/');
        if host.contains('/') {
            bail!("must not include a path");
        }
        if let Some(domain) = host.strip_prefix("*.") {
            if domain.contains('*') {
                bail!("wildcards are allowed only as prefixes");
            }
            return Ok(HostRule::AnySubdomain(format!(".{domain}")));
        }
        if host.contains('*') {
            bail!("wildcards are allowed only as subdomains");
        }
        Ok(HostRule::Literal(Host::parse(host)?))
    }

    fn allows(&self, host: &str) -> bool {
        let Ok(host) = Host::parse(host) else {
            return false;
        };
        match (self, host) {
            (HostRule::Any, _) => true,
            (HostRule::AnySubdomain(suffix), Host::Domain(domain)) => domain.ends_with(suffix.as_str()),
            (HostRule::Literal(literal), host) => host == *literal,
            (HostRule::Cidr(net), Host::Ipv4(ip)) => net.contains(ip),
            (HostRule::Cidr(net), Host::Ipv6(ip)) => net.contains(ip),
            (HostRule::AnySubdomain(_) | HostRule::Cidr(_) | HostRule::ToSelf, _) => false,
        }
    }
}

impl PortRule {
    fn parse(port: &str, scheme: &str) -> Result<PortRule> {
        if port.is_empty() {
            return well_known_port(scheme).map(PortRule::Port).with_context(|| {
                format!("no port was provided and the scheme {scheme:?} does not have a known default port number")
            });
        }
        if port == "*" {
            return Ok(PortRule::Any);
        }
        if port.starts_with('{') {
            bail!("port lists are not yet supported");
        }
        if let Some((a, b)) = port.split_once("..") {
            let number = |s: &str| s.parse().with_context(|| format!("port range {port:?} contains non-number"));
            return Ok(PortRule::Range(number(a)?, number(b)?));
        }
        Ok(PortRule::Port(port.parse().with_context(|| format!("port {port:?} is not a number"))?))
    }

    fn allows(&self, port: Option<u16>, scheme: &str) -> bool {
        let Some(port) = port.or_else(|| well_known_port(scheme)) else {
            return matches!(self, PortRule::Any);
        };
        match self {
            PortRule::Any => true,
            PortRule::Port(p) => *p == port,
            PortRule::Range(a, b) => (*a..*b).contains(&port),
        }
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
        let port = PortRule::parse(port, scheme).with_context(|| format!("Invalid allowed host port {port:?}"))?;
        let scheme = if scheme == "*" {
            None
        } else if scheme.starts_with('{') {
            bail!("Invalid allowed host scheme {scheme:?}: scheme lists are not supported");
        } else if scheme.chars().all(|c| c.is_alphabetic()) {
            Some(scheme.to_string())
        } else {
            bail!("Invalid allowed host scheme {scheme:?}: only alphabetic characters are allowed");
        };
        let host = HostRule::parse(host).with_context(|| format!("Invalid allowed host {host:?}"))?;
        Ok(AllowedHost { scheme, host, port })
    }

    fn allows(&self, url: &url::Url) -> bool {
        let scheme = url.scheme();
        self.scheme.as_deref().is_none_or(|s| s == scheme)
            && url.host_str().is_some_and(|h| self.host.allows(h))
            && self.port.allows(url.port(), scheme)
    }
}

/// One component's outbound allow-list.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    hosts: Vec<AllowedHost>,
    /// Why the resolved allow-list is unusable (a template resolved to something that does not
    /// parse): every request is refused.
    broken: Option<String>,
}

impl AllowedHosts {
    /// Entries without templates.
    pub fn parse(entries: &[String], component_ids: &[String]) -> Result<AllowedHosts> {
        Self::parse_templated(entries, component_ids, &crate::variables::Variables::default())
    }

    /// Entries that may be templates over the application's variables (see the module's notes).
    pub fn parse_templated(
        entries: &[String],
        component_ids: &[String],
        variables: &crate::variables::Variables,
    ) -> Result<AllowedHosts> {
        if entries.len() == 1 && entries[0] == "insecure:allow-all" {
            bail!("'insecure:allow-all' is not allowed - use '*://*:*' instead if you really want to allow all outbound traffic'");
        }
        let mut resolved = Vec::new();
        for entry in entries {
            if !entry.contains("{{") {
                AllowedHost::parse(entry)?;
                resolved.push(Ok(entry.clone()));
                continue;
            }
            if let Some(with_defaults) = variables.resolve_with_defaults(entry) {
                let with_defaults = with_defaults?;
                AllowedHost::parse(&with_defaults).with_context(|| {
                    format!("using default variable value(s) with template {entry:?} results in invalid config {with_defaults:?}")
                })?;
            }
            resolved.push(variables.resolve_app_template(entry).map_err(|e| format!("{entry:?}: {e}")));
        }
        let mut hosts = Vec::new();
        for entry in resolved {
            let parsed = entry.and_then(|text| AllowedHost::parse(&text).map_err(|e| format!("{text:?}: {e}")));
            let host = match parsed {
                Ok(host) => host,
                Err(why) => return Ok(AllowedHosts { hosts: Vec::new(), broken: Some(why) }),
            };
            // As Spin: `*.spin.internal` means "every component of this app", nothing else.
            match &host.host {
                HostRule::AnySubdomain(s) if s == SERVICE_CHAINING_SUFFIX => {
                    for id in component_ids {
                        let mut h = host.clone();
                        h.host = HostRule::Literal(Host::Domain(format!("{id}{SERVICE_CHAINING_SUFFIX}")));
                        hosts.push(h);
                    }
                }
                _ => hosts.push(host),
            }
        }
        Ok(AllowedHosts { hosts, broken: None })
    }

    /// Why every request is refused, when a template resolved to an invalid entry.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Whether an absolute outbound URL may be requested (Spin parses it with the `url` crate,
    /// defaulting the scheme to https; a URL it cannot parse is refused).
    pub fn allows_url(&self, uri: &http::Uri) -> bool {
        let text = uri.to_string();
        let parsed = match url::Url::parse(&text) {
            Ok(u) if u.has_host() => Ok(u),
            _ => url::Url::parse(&format!("https://{text}")),
        };
        match parsed {
            Ok(url) if url.has_host() && self.broken.is_none() => self.hosts.iter().any(|h| h.allows(&url)),
            _ => false,
        }
    }

    /// Whether a relative URL (a request to the app itself) may be requested.
    pub fn allows_relative(&self) -> bool {
        self.broken.is_none()
            && self.hosts.iter().any(|h| {
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
    fn any_host_any_port_for_one_scheme() {
        assert!(allows(&["https://*:*"], "https://ghcr.io/v2/"));
        assert!(allows(&["https://*:*"], "https://127.0.0.1:5000/v2/"));
        assert!(allows(&["https://*:*"], "https://[::1]:5000/v2/"));
        assert!(!allows(&["https://*:*"], "http://127.0.0.1:5000/v2/"));
    }

    #[test]
    fn subdomain_wildcard_with_port() {
        let entry = ["https://*.example.com:443"];
        assert!(allows(&entry, "https://a.example.com/"));
        assert!(allows(&entry, "https://a.b.example.com:443/"));
        assert!(allows(&entry, "https://A.Example.COM/"), "request hosts are lower-cased by url");
        assert!(!allows(&entry, "https://a.example.com:8443/"));
        assert!(!allows(&entry, "https://aexample.com/"));
        assert!(!allows(&entry, "https://10.0.0.1/"), "a subdomain rule never matches an IP");
        // Spin keeps the rule's suffix as written, so an upper-case rule matches nothing.
        assert!(!allows(&["https://*.Example.com"], "https://a.example.com/"));
    }

    #[test]
    fn literal_with_explicit_port() {
        assert!(allows(&["http://x:8080"], "http://x:8080/"));
        assert!(!allows(&["http://x:8080"], "http://x/"));
        assert!(allows(&["http://Registry.Local:8080"], "http://registry.local:8080/"));
    }

    #[test]
    fn cidr_hosts() {
        let entry = ["https://10.0.0.0/8:*"];
        assert!(allows(&entry, "https://10.1.2.3:5000/"));
        assert!(!allows(&entry, "https://11.1.2.3/"));
        assert!(!allows(&entry, "https://ten.example/"), "a CIDR never matches a name");
        assert!(allows(&["https://10.0.0.0/8"], "https://10.9.9.9/"));
        assert!(!allows(&["https://10.0.0.0/8"], "https://10.9.9.9:444/"));
        assert!(allows(&["https://[::1]:5000"], "https://[::1]:5000/"));
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
        assert!(AllowedHost::parse("ftp://x").is_err(), "no default port for ftp");
        assert!(AllowedHost::parse("h2c://x:1").is_err(), "schemes are alphabetic");
    }

    #[test]
    fn chaining_target() {
        let u: http::Uri = "http://create.spin.internal/v2/x".parse().unwrap();
        assert_eq!(service_chaining_target(&u).as_deref(), Some("create"));
        let u: http::Uri = "http://create.example/".parse().unwrap();
        assert_eq!(service_chaining_target(&u), None);
    }

    fn templated(defaults: &str, overrides: &[(&str, &str)], entries: &[&str]) -> Result<AllowedHosts> {
        let manifest = crate::manifest::Manifest::parse(&format!(
            "spin_manifest_version = 2\n[application]\nname = \"a\"\n[variables]\n{defaults}\n[component.create]\nsource = \"c.wasm\"\n"
        ))
        .unwrap();
        let overrides = overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let variables = crate::variables::Variables::resolve(&manifest, &overrides, |_| None).unwrap();
        let entries: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        AllowedHosts::parse_templated(&entries, &["create".to_string()], &variables)
    }

    #[test]
    fn templates_resolve_with_the_variables_values() {
        let defaults = r#"aws = { default = "https://*.amazonaws.com" }"#;
        let hosts = templated(defaults, &[], &["{{ aws }}"]).unwrap();
        assert!(hosts.allows_url(&"https://api.ecr.eu-west-1.amazonaws.com/".parse().unwrap()));
        assert!(!hosts.allows_url(&"http://127.0.0.1:5000/".parse().unwrap()));
        let hosts = templated(defaults, &[("aws", "http://127.0.0.1:5000")], &["{{ aws }}"]).unwrap();
        assert!(hosts.allows_url(&"http://127.0.0.1:5000/".parse().unwrap()));
        assert!(!hosts.allows_url(&"https://api.ecr.eu-west-1.amazonaws.com/".parse().unwrap()));
        assert!(!hosts.allows_url(&"http://127.0.0.1:5001/".parse().unwrap()));
        // Literal parts around a variable, as Spin's expressions allow.
        let hosts = templated(r#"port = { default = "7000" }"#, &[], &["http://127.0.0.1:{{ port }}"]).unwrap();
        assert!(hosts.allows_url(&"http://127.0.0.1:7000/x".parse().unwrap()));
    }

    #[test]
    fn a_default_that_makes_an_invalid_entry_fails_the_load_as_spins_loader_does() {
        let error =
            templated(r#"url = { default = "https://oauth2.googleapis.com/token" }"#, &[], &["{{ url }}"]).unwrap_err();
        assert!(format!("{error:#}").contains("results in invalid config"), "{error:#}");
        // Spin 4.0.2 does not skip an empty entry.
        assert!(templated(r#"url = { default = "" }"#, &[], &["{{ url }}"]).is_err());
        // No default: nothing to validate at load.
        assert!(templated("url = { required = true }", &[("url", "http://127.0.0.1:1")], &["{{ url }}"]).is_ok());
    }

    #[test]
    fn a_value_that_makes_an_invalid_entry_refuses_every_request() {
        let defaults = r#"url = { default = "https://example.com" }"#;
        let hosts =
            templated(defaults, &[("url", "http://127.0.0.1:4000/token")], &["{{ url }}", "https://*:*"]).unwrap();
        assert!(hosts.broken().is_some());
        assert!(!hosts.allows_url(&"https://example.com/".parse().unwrap()));
        assert!(!hosts.allows_relative());
        let hosts = templated(defaults, &[("url", "")], &["{{ url }}", "https://*:*"]).unwrap();
        assert!(hosts.broken().is_some(), "an empty value is no entry Spin 4.0.2 accepts");
    }
}
