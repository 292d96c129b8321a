//! Which `.dockerconfigjson` keys cover an image, decided as the kubelet's keyring decides it
//! (`pkg/credentialprovider/keyring.go`), so that what regsecrets answers for an image is what
//! the kubelet would have used had it held the same secrets as `imagePullSecrets`:
//!
//! - A key is read as a URL (`https://` added when it has no scheme); its match pattern is the
//!   host with its port, plus the path unless that is empty or `/`. A leading `/v1/` or `/v2/` of
//!   the path is dropped (`https://index.docker.io/v1/` is `index.docker.io`).
//! - A pattern matches an image's repository (`registry/path`, no tag or digest) when the ports
//!   are equal (no port matches only no port), the hosts have as many '.'-separated parts and each
//!   pattern part matches its part as a glob (`*`, `?`: `*.example.com` matches `a.example.com`,
//!   not `example.com` nor `a.b.example.com`), and the pattern's path is a *string* prefix of the
//!   image's path (`host/team` covers `host/team/app`, and also `host/teamwork/app`).
//! - Every matching key counts, most specific first: patterns in reverse byte order (longer before
//!   shorter with the same prefix, names before globs). The kubelet tries them in that order.
//! - Only when nothing matched, a Docker Hub image gets the credentials stored under
//!   `index.docker.io` (Docker Hub's `https://index.docker.io/v1/`).
//!
//! One deliberate difference: the kubelet's `isDefaultRegistryMatch` counts `localhost/app` as a
//! Docker Hub image (its first component has no '.' or ':'), although it is pulled from
//! `localhost`, and would hand it Docker Hub's credentials. Here only a repository whose
//! normalised registry is `docker.io` falls back to them, so they never go to another registry.

use crate::host;

/// The pattern the kubelet files a config key under.
pub fn pattern(key: &str) -> String {
    let rest = match key.split_once("://") {
        Some((scheme, rest)) if scheme == "http" || scheme == "https" => rest,
        _ => key,
    };
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.starts_with("/v1/") || path.starts_with("/v2/") { &path[3..] } else { path };
    if path.is_empty() || path == "/" {
        host.to_owned()
    } else {
        format!("{host}{path}")
    }
}

/// Go's `filepath.Match` for what a host part can hold: `*` (any run of characters) and `?`
/// (one character); everything else literally.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| glob(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && glob(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..]),
    }
}

fn split_path(schemeless: &str) -> (&str, &str) {
    schemeless.split_at(schemeless.find('/').unwrap_or(schemeless.len()))
}

/// Whether the pattern matches the repository (both schemeless: `host[:port][/path]`).
pub fn matches(pattern: &str, repository: &str) -> bool {
    let (pattern_authority, pattern_path) = split_path(pattern);
    let (target_authority, target_path) = split_path(repository);
    let (pattern_parts, pattern_port) = host::split(pattern_authority);
    let (target_parts, target_port) = host::split(target_authority);
    pattern_port == target_port
        && pattern_parts.len() == target_parts.len()
        && target_path.starts_with(pattern_path)
        && pattern_parts.iter().zip(&target_parts).all(|(p, t)| glob(p.as_bytes(), t.as_bytes()))
}

/// Whether the pattern could match some image of the registry (`host[:port]`): host and port
/// match, whatever the path.
pub fn on_registry(pattern: &str, registry: &str) -> bool {
    matches(split_path(pattern).0, registry)
}

/// The pattern of Docker Hub's own key, which Hub images fall back to.
pub const DOCKER_HUB_PATTERN: &str = "index.docker.io";

/// A repository pulled from Docker Hub: normalised ([`super::ImageRef::repository`]), its
/// registry is `docker.io` (see the module's note on `localhost`).
pub fn is_docker_hub(repository: &str) -> bool {
    repository.strip_prefix(super::reference::DOCKER_HUB).is_some_and(|rest| rest.starts_with('/'))
}

/// The keyring's lookup: the indices of `patterns` that apply to the repository, in the order
/// the kubelet tries them.
pub fn lookup(patterns: &[String], repository: &str) -> Vec<usize> {
    let mut found: Vec<usize> = (0..patterns.len()).filter(|&i| matches(&patterns[i], repository)).collect();
    if found.is_empty() && is_docker_hub(repository) {
        found = (0..patterns.len()).filter(|&i| patterns[i] == DOCKER_HUB_PATTERN).collect();
    }
    most_specific_first(patterns, &mut found);
    found
}

/// Reverse byte order of the patterns; equal patterns keep their order (stable sort).
pub fn most_specific_first(patterns: &[String], found: &mut [usize]) {
    found.sort_by(|&a, &b| patterns[b].cmp(&patterns[a]));
}
