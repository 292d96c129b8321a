//! Image references (`registry[:port]/path[:tag][@digest]`), read as the distribution project's
//! reference grammar reads them (what docker, containerd and the kubelet use), and registries as a
//! credential helper is handed them (`host[:port]`, or a server URL such as
//! `https://index.docker.io/v1/`).
//!
//! Messages never quote the input: it reaches the audit trail and the client only once it has
//! parsed, as the canonical text this module writes.

use std::fmt;

/// How every Docker Hub image is named once normalised (as `docker pull nginx` names it).
pub const DOCKER_HUB: &str = "docker.io";
/// Docker Hub's other spellings in references and server URLs. `index.docker.io` is folded by
/// the reference grammar itself; `registry-1.docker.io` (Hub's API host) is folded here too, so a
/// reference written with it finds the Hub credentials (the kubelet would look for that host).
const DOCKER_HUB_ALIASES: [&str; 2] = ["index.docker.io", "registry-1.docker.io"];
/// The grammar's limit on a repository name, registry included.
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;
/// The longest digest taken: `sha512:` and 128 hex digits, with room for longer algorithm names.
const MAX_DIGEST_LEN: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `host[:port]`, lower-case; Docker Hub as [`DOCKER_HUB`].
    pub registry: String,
    /// The repository path; Docker Hub's official images with their `library/`.
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

fn invalid(rule: &str) -> String {
    format!("The image reference {rule}")
}

impl ImageRef {
    pub fn parse(text: &str) -> Result<ImageRef, String> {
        if text.is_empty() {
            return Err(invalid("must not be empty"));
        }
        if text.len() > MAX_NAME_LEN + 1 + MAX_TAG_LEN + 1 + MAX_DIGEST_LEN {
            return Err(invalid("is too long"));
        }
        let (name_tag, digest) = match text.split_once('@') {
            Some((name_tag, digest)) => (name_tag, Some(parse_digest(digest)?)),
            None => (text, None),
        };
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(colon) => {
                let colon = last_slash + colon;
                (&name_tag[..colon], Some(parse_tag(&name_tag[colon + 1..])?))
            }
            None => (name_tag, None),
        };
        let (registry, path) = split_registry(name)?;
        let path = if registry == DOCKER_HUB && !path.contains('/') { format!("library/{path}") } else { path.into() };
        check_path(&path)?;
        if registry.len() + 1 + path.len() > MAX_NAME_LEN {
            return Err(invalid(&format!("must name a repository of at most {MAX_NAME_LEN} characters")));
        }
        Ok(ImageRef { registry, path, tag, digest })
    }

    /// What the kubelet looks credentials up with: `registry/path`, without tag or digest
    /// (`named.Name()` of the reference it pulls).
    pub fn repository(&self) -> String {
        format!("{}/{}", self.registry, self.path)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// The registry part, as the grammar splits it: the first component is a registry when it has a
/// '.' or a ':', is `localhost`, or has an upper-case letter (which a path may not); otherwise the
/// whole name is a Docker Hub path.
fn split_registry(name: &str) -> Result<(String, &str), String> {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':']) || first == "localhost" || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            Ok((parse_host_port(first).map_err(|rule| invalid(&rule))?, rest))
        }
        _ => Ok((DOCKER_HUB.to_owned(), name)),
    }
}

/// `host[:port]` or `[ipv6][:port]`, lower-cased, Docker Hub's aliases folded. The error is the
/// rule, for either message.
fn parse_host_port(text: &str) -> Result<String, String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or("has an unclosed '[' in its registry")?;
        if inside.is_empty() || !inside.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
            return Err("has an invalid IPv6 address as its registry".into());
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or("has text after its registry's IPv6 address")?),
        };
        (&text[..inside.len() + 2], port)
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if !host.starts_with('[') {
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if !host.split('.').all(label_ok) {
            return Err("has a registry that is not a host name or IP address".into());
        }
    }
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err("has a registry port that is not a number".into());
        }
    }
    let host = host.to_ascii_lowercase();
    if port.is_none() && DOCKER_HUB_ALIASES.contains(&host.as_str()) {
        return Ok(DOCKER_HUB.to_owned());
    }
    Ok(match port {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

/// A registry as a credential helper gets it: `host[:port]`, optionally with a scheme and a path
/// (`https://index.docker.io/v1/`), which are ignored. Docker Hub's spellings become [`DOCKER_HUB`].
pub fn parse_registry(text: &str) -> Result<String, String> {
    let rest = text.strip_prefix("https://").or_else(|| text.strip_prefix("http://")).unwrap_or(text);
    let authority = rest.split('/').next().unwrap_or(rest);
    if authority.is_empty() || authority.len() > MAX_NAME_LEN {
        return Err("The registry must be host[:port] of at most 255 characters".into());
    }
    parse_host_port(authority).map_err(|rule| format!("The registry {}", rule.trim_start_matches("has a registry ")))
}

/// Path components: lower-case letters and digits, separated by '.', '_', "__" or dashes.
fn check_path(path: &str) -> Result<(), String> {
    let component_ok = |component: &str| {
        let bytes = component.as_bytes();
        let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if bytes.is_empty() || !alnum(&bytes[0]) || !alnum(&bytes[bytes.len() - 1]) {
            return false;
        }
        let mut i = 0;
        while i < bytes.len() {
            if alnum(&bytes[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && !alnum(&bytes[i]) {
                i += 1;
            }
            let separator = &component[start..i];
            if !(separator == "." || separator == "_" || separator == "__" || separator.bytes().all(|b| b == b'-')) {
                return false;
            }
        }
        true
    };
    if path.split('/').all(component_ok) {
        Ok(())
    } else {
        Err(invalid(
            "must have a repository path of lower-case letters and digits, separated by '/', '.', '_', '__' or '-'",
        ))
    }
}

fn parse_tag(tag: &str) -> Result<String, String> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let ok = !tag.is_empty()
        && tag.len() <= MAX_TAG_LEN
        && word(tag.as_bytes()[0])
        && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-');
    ok.then(|| tag.to_owned()).ok_or_else(|| {
        invalid("must have a tag of at most 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'")
    })
}

fn parse_digest(digest: &str) -> Result<String, String> {
    let refuse = || invalid("must have a digest of the form algorithm:hex (e.g. sha256: and 64 hex digits)");
    let (algorithm, hex) = digest.split_once(':').ok_or_else(refuse)?;
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.as_bytes()[0].is_ascii_alphabetic()
        && algorithm.split(['-', '_', '+', '.']).all(|part| {
            part.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
                && part.bytes().all(|b| b.is_ascii_alphanumeric())
        });
    let hex_ok = hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    if !algorithm_ok || !hex_ok || digest.len() > MAX_DIGEST_LEN {
        return Err(refuse());
    }
    Ok(digest.to_owned())
}
