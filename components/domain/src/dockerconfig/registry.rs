//! Registry names: validated, Docker Hub's spellings folded into the one server key the kubelet
//! looks up, and the identity two spellings share when they name the same registry.

use crate::Error;

/// The server key Docker Hub is stored under: the one `kubectl create secret docker-registry`,
/// `docker login` and the kubelet agree on.
pub const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";
/// How Docker Hub appears in metadata ([`super::DockerConfig::registries`]).
pub const DOCKER_HUB_HOST: &str = "docker.io";

const DOCKER_HUB_SPELLINGS: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];
const DOCKER_HUB_PATHS: [&str; 4] = ["", "/", "/v1", "/v1/"];
/// Long enough for a 253-character host, a port and a path; short enough to keep messages small.
const MAX_REGISTRY_LEN: usize = 512;

fn invalid_config(message: impl Into<String>) -> Error {
    Error::InvalidDockerConfig(message.into())
}

/// A registry as given, validated: its server key and what identifies it for duplicate checks.
pub(super) struct Registry {
    /// The key in `auths`: Docker Hub's canonical one, or the given string with the host
    /// lower-cased and trailing '/' removed.
    pub(super) key: String,
    /// `host[:port]` plus path: two spellings that differ only in scheme or trailing '/' name the
    /// same registry to the kubelet, so they count as the same.
    pub(super) identity: String,
}

pub(crate) fn host_of(key: &str) -> &str {
    if key == DOCKER_HUB_SERVER {
        return DOCKER_HUB_HOST;
    }
    let rest = key.split_once("://").map_or(key, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest)
}

pub(super) fn parse_registry(given: &str) -> Result<Registry, Error> {
    let refuse = |rule: &str| Err(invalid_config(format!("A registry {rule}")));
    if given.is_empty() {
        return refuse("must not be empty");
    }
    if given.len() > MAX_REGISTRY_LEN {
        return refuse("must be at most 512 characters");
    }
    if given.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return refuse("must not contain spaces or control characters");
    }
    if !given.is_ascii() {
        return refuse("must be ASCII (write an internationalised host name in its xn-- form)");
    }
    let (scheme, rest) = match given.split_once("://") {
        Some((scheme, rest)) => (Some(scheme.to_ascii_lowercase()), rest),
        None => (None, given),
    };
    if scheme.as_deref().is_some_and(|scheme| scheme != "http" && scheme != "https") {
        return refuse("may only have the scheme http:// or https://");
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.contains('@') {
        return refuse("must not carry a user name or password; give them as the credentials");
    }
    if authority.is_empty()
        || authority.ends_with(':')
        || !authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':' | b'[' | b']' | b'*'))
        || authority.rsplit_once(':').is_some_and(|(_, port)| port.contains('*'))
    {
        return refuse("must be a host name or IP address, optionally with :port (a '*' may stand for part of a host name, as in *.example.com)");
    }
    if !path.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/')) {
        return refuse("may have a path only of letters, digits, '-', '.', '_', '~' and '/'");
    }
    let authority = authority.to_ascii_lowercase();
    let url = url::Url::parse(&format!("{}://{authority}{path}", scheme.as_deref().unwrap_or("https")))
        .map_err(|_| invalid_config("A registry must be a host name or IP address, optionally with :port"))?;
    let Some(host) = url.host_str() else {
        return refuse("must name a host");
    };
    if DOCKER_HUB_SPELLINGS.contains(&host) && url.port().is_none() && DOCKER_HUB_PATHS.contains(&path) {
        return Ok(Registry { key: DOCKER_HUB_SERVER.to_owned(), identity: DOCKER_HUB_HOST.to_owned() });
    }
    let path = path.trim_end_matches('/');
    let key = match &scheme {
        Some(scheme) => format!("{scheme}://{authority}{path}"),
        None => format!("{authority}{path}"),
    };
    Ok(Registry { key, identity: format!("{authority}{path}") })
}

/// The server key a registry is stored under; see [`DockerConfig`] for the normalisation.
pub fn server_key(registry: &str) -> Result<String, Error> {
    parse_registry(registry).map(|registry| registry.key)
}
