//! The Docker credential helper protocol (docker-credential-helpers): `get` reads a server URL on
//! stdin and prints `{"ServerURL","Username","Secret"}`; `list` prints `{server: username}`;
//! `store` and `erase` are refused, since the credentials live in regsecrets. Errors are printed on
//! stdout with exit status 1, as the protocol's clients read them; when nothing matches, the
//! message is exactly [`NOT_FOUND`], which clients (docker, podman, skopeo, buildah, crane) take
//! as "no credentials" and pull anonymously.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{Ask, Fault, PullCredential, Resolved, Service};

/// docker-credential-helpers' `credentials.ErrCredentialsNotFound` message, which clients match.
pub const NOT_FOUND: &str = "credentials not found in native keychain";
pub const READ_ONLY: &str =
    "regsecrets manages these credentials: change them in the service (its API or console), not through a credential helper";
pub const USAGE: &str = "Usage: docker-credential-regsecrets <get|list|store|erase|version>";

#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    NotFound,
    Refused(&'static str),
    Fault(Fault),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NotFound => f.write_str(NOT_FOUND),
            Failure::Refused(why) => f.write_str(why),
            Failure::Fault(fault) => write!(f, "docker-credential-regsecrets: {fault}"),
        }
    }
}

impl From<Fault> for Failure {
    fn from(fault: Fault) -> Self {
        Failure::Fault(fault)
    }
}

#[derive(Serialize)]
struct Found<'a> {
    #[serde(rename = "ServerURL")]
    server_url: &'a str,
    #[serde(rename = "Username")]
    username: &'a str,
    #[serde(rename = "Secret")]
    secret: &'a str,
}

/// A helper is asked per registry, not per image: the most specific key that covers the whole
/// registry (no path), as docker itself would pick from `auths`.
pub fn for_registry(resolved: &Resolved) -> Option<&PullCredential> {
    resolved.credentials.iter().find(|c| !c.pattern.contains('/'))
}

pub fn get_answer(server_url: &str, resolved: Option<&Resolved>) -> Result<String, Failure> {
    let credential = resolved.and_then(for_registry).ok_or(Failure::NotFound)?;
    let found = Found { server_url, username: &credential.username, secret: &credential.password };
    Ok(serde_json::to_string(&found).expect("serializes"))
}

pub fn list_answer(resolved: Option<&Resolved>) -> String {
    let mut servers = BTreeMap::new();
    for credential in resolved.map(|r| r.credentials.as_slice()).unwrap_or_default() {
        servers.entry(credential.server.as_str()).or_insert(credential.username.as_str());
    }
    serde_json::to_string(&servers).expect("serializes")
}

/// One invocation: the command and stdin to what goes to stdout.
pub fn run(command: &str, input: &[u8], service: impl FnOnce() -> Result<Service, Fault>) -> Result<String, Failure> {
    match command {
        "get" => {
            let server_url =
                std::str::from_utf8(input).map_err(|_| Fault::Input("the server URL is not UTF-8".into()))?;
            let server_url = server_url.trim();
            if server_url.is_empty() {
                return Err(Fault::Input("no server URL on stdin".into()).into());
            }
            let service = service()?;
            let bearer = service.bearer()?;
            let resolved = service.resolve(&Ask::Registry(server_url), &bearer, None)?;
            get_answer(server_url, resolved.as_ref())
        }
        "list" => {
            let service = service()?;
            let bearer = service.bearer()?;
            Ok(list_answer(service.resolve(&Ask::All, &bearer, None)?.as_ref()))
        }
        "store" | "erase" => Err(Failure::Refused(READ_ONLY)),
        "version" => Ok(format!("docker-credential-regsecrets (regsecrets) {}", env!("CARGO_PKG_VERSION"))),
        _ => Err(Failure::Refused(USAGE)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(secret: &str, server: &str, pattern: &str, username: &str) -> PullCredential {
        PullCredential {
            secret: secret.into(),
            server: server.into(),
            pattern: pattern.into(),
            username: username.into(),
            password: format!("{username}-pw"),
        }
    }

    #[test]
    fn get_answers_the_most_specific_registry_wide_key() {
        let resolved = Resolved {
            cache_seconds: 300,
            credentials: vec![
                credential("team", "r.example/team", "r.example/team", "t"),
                credential("exact", "r.example", "r.example", "e"),
                credential("glob", "*.example", "*.example", "g"),
            ],
        };
        assert_eq!(
            get_answer("r.example", Some(&resolved)).unwrap(),
            r#"{"ServerURL":"r.example","Username":"e","Secret":"e-pw"}"#
        );
        let only_paths = Resolved { cache_seconds: 1, credentials: vec![credential("team", "r/t", "r/t", "t")] };
        assert_eq!(get_answer("r", Some(&only_paths)), Err(Failure::NotFound));
        assert_eq!(get_answer("r", None), Err(Failure::NotFound));
        assert_eq!(Failure::NotFound.to_string(), "credentials not found in native keychain");
    }

    #[test]
    fn among_keys_of_one_registry_get_answers_the_first_the_service_ranked() {
        // The service ranks a verified secret before a stale one of the same pattern
        // (`domain::resolve::rank`); the helper must not reorder them.
        let resolved = Resolved {
            cache_seconds: 300,
            credentials: vec![
                credential("z-fresh", "r.example", "r.example", "fresh"),
                credential("a-stale", "r.example", "r.example", "stale"),
            ],
        };
        assert_eq!(
            get_answer("r.example", Some(&resolved)).unwrap(),
            r#"{"ServerURL":"r.example","Username":"fresh","Secret":"fresh-pw"}"#
        );
        // The answer's `rank` (additive) is read past.
        let answer = r#"{"cacheSeconds": 300, "credentials": [{"secret": "z-fresh", "server": "r.example",
            "match": "r.example", "username": "fresh", "password": "fresh-pw", "auth": "x",
            "rank": {"verification": "verified", "modifiedAt": "2026-12-01T09:00:00Z", "reason": "verified"}}]}"#;
        let parsed: Resolved = serde_json::from_str(answer).unwrap();
        assert_eq!(for_registry(&parsed).unwrap().username, "fresh");
    }

    #[test]
    fn list_names_servers_and_users_never_secrets() {
        let resolved = Resolved {
            cache_seconds: 300,
            credentials: vec![
                credential("a", "https://index.docker.io/v1/", "index.docker.io", "hub"),
                credential("b", "r.example", "r.example", "r"),
            ],
        };
        let listed = list_answer(Some(&resolved));
        assert_eq!(listed, r#"{"https://index.docker.io/v1/":"hub","r.example":"r"}"#);
        assert!(!listed.contains("-pw"));
        assert_eq!(list_answer(None), "{}");
    }

    #[test]
    fn store_erase_and_unknown_commands_are_refused_without_calling_the_service() {
        let never = || -> Result<Service, Fault> { panic!("the service is not asked") };
        assert_eq!(run("store", b"{}", never), Err(Failure::Refused(READ_ONLY)));
        assert_eq!(run("erase", b"r.example", never), Err(Failure::Refused(READ_ONLY)));
        assert_eq!(run("frobnicate", b"", never), Err(Failure::Refused(USAGE)));
        assert!(matches!(run("get", b"  \n", never), Err(Failure::Fault(Fault::Input(_)))));
    }
}
