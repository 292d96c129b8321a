//! A registry's authority (`host[:port]`) as the kubelet's keyring reads it, and the key the
//! tenant's view files a secret under for each of its hosts (`view`'s host index), so that a
//! pull-time lookup reads only the secrets that can cover a registry.
//!
//! The two must agree: a host without glob characters matches an authority exactly when both
//! split into the same parts and port (`resolve::keyring::matches` compares part by part, and a
//! part without `*` or `?` matches only itself), so both are filed under the same [`index_key`].

/// Host parts and port of `host[:port]` (brackets of an IPv6 literal removed, as Go's
/// `net.SplitHostPort` does; an authority it cannot split is all host).
pub fn split(authority: &str) -> (Vec<&str>, &str) {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        match rest.split_once(']') {
            Some((inside, "")) => (inside, ""),
            Some((inside, after)) => match after.strip_prefix(':') {
                Some(port) => (inside, port),
                None => (authority, ""),
            },
            None => (authority, ""),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) if !port.contains(':') => (host, port),
            _ => (authority, ""),
        }
    };
    (host.split('.').collect(), port)
}

/// The key an authority is filed under: its parts joined by `.`, then `:` and its port (empty
/// when it has none). `None` for a host that matches more than itself (a glob character) or that
/// the index cannot hold as written (a character outside what registry hosts use): the view files
/// such secrets where every lookup reads them. Two authorities that split alike get one key;
/// different ones may share a key too (`[a]` and `a`): a lookup reads a few more candidates and
/// checks each with the keyring, so a shared key costs a read, never a wrong answer.
pub fn index_key(authority: &str) -> Option<String> {
    let (parts, port) = split(authority);
    let key = format!("{}:{port}", parts.join("."));
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']');
    key.bytes().all(plain).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_split_as_go_splits_them() {
        assert_eq!(split("ghcr.io"), (vec!["ghcr", "io"], ""));
        assert_eq!(split("registry.example.com:5000"), (vec!["registry", "example", "com"], "5000"));
        assert_eq!(split("[::1]:5000"), (vec!["::1"], "5000"));
        assert_eq!(split("[::1]"), (vec!["::1"], ""));
        assert_eq!(split("a:b:c"), (vec!["a:b:c"], ""));
    }

    #[test]
    fn literal_hosts_are_keyed_by_parts_and_port_and_globs_are_not_keyed() {
        assert_eq!(index_key("ghcr.io").as_deref(), Some("ghcr.io:"));
        assert_eq!(index_key("localhost:5000").as_deref(), Some("localhost:5000"));
        assert_eq!(index_key("[::1]:5000"), index_key("[::1]:5000"));
        assert_ne!(index_key("ghcr.io"), index_key("ghcr.io:443"));
        assert_eq!(index_key("*.example.com"), None);
        assert_eq!(index_key("registry?.example.com"), None);
        assert_eq!(index_key("a b"), None);
        assert_eq!(index_key("a\"b"), None);
    }
}
