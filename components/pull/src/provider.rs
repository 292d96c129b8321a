//! The kubelet's image credential provider protocol (`credentialprovider.kubelet.k8s.io/v1`, and
//! `v1beta1`): a `CredentialProviderRequest` on stdin, a `CredentialProviderResponse` on stdout in
//! the same `apiVersion`; any failure on stderr with a non-zero exit, and then the kubelet pulls
//! without these credentials.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{unix_now, Ask, CacheKeyType, Fault, Resolved, Service};

pub const V1: &str = "credentialprovider.kubelet.k8s.io/v1";
pub const V1BETA1: &str = "credentialprovider.kubelet.k8s.io/v1beta1";
const REQUEST_KIND: &str = "CredentialProviderRequest";
const RESPONSE_KIND: &str = "CredentialProviderResponse";

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderRequest {
    pub api_version: String,
    pub kind: String,
    pub image: String,
    /// The pulling pod's service-account token (kubelet ≥ 1.33 with `tokenAttributes`).
    #[serde(default)]
    pub service_account_token: Option<String>,
}

impl std::fmt::Debug for ProviderResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderResponse")
            .field("cache_key_type", &self.cache_key_type)
            .field("cache_duration", &self.cache_duration)
            .field("auth", &self.auth.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthConfig {
    pub username: String,
    pub password: String,
}

#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProviderResponse {
    pub api_version: String,
    pub kind: String,
    pub cache_key_type: String,
    pub cache_duration: String,
    pub auth: BTreeMap<String, AuthConfig>,
}

pub fn parse_request(input: &[u8]) -> Result<ProviderRequest, Fault> {
    let request: ProviderRequest = serde_json::from_slice(input).map_err(|e| {
        Fault::Input(format!("not a CredentialProviderRequest (line {}, column {})", e.line(), e.column()))
    })?;
    if request.api_version != V1 && request.api_version != V1BETA1 {
        return Err(Fault::Input(format!(
            "apiVersion {:?} is not supported; this provider speaks {V1} and {V1BETA1}",
            request.api_version.chars().take(80).collect::<String>()
        )));
    }
    if request.kind != REQUEST_KIND {
        return Err(Fault::Input(format!("kind must be {REQUEST_KIND}")));
    }
    if request.image.is_empty() {
        return Err(Fault::Input("image is empty".into()));
    }
    Ok(request)
}

/// The registry an image is pulled from, as the reference grammar splits it (Docker Hub for a
/// name whose first component has no '.' or ':' and is not `localhost`).
pub fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" || first != first.to_lowercase() => {
            first
        }
        _ => "docker.io",
    }
}

/// What to ask the service for: with the cache keyed by image, the image; by registry, every key
/// of the image's registry (the kubelet reuses the answer for the registry's other images); global,
/// every key (reused for every image).
pub fn ask(image: &str, cache_key_type: CacheKeyType) -> Ask<'_> {
    match cache_key_type {
        CacheKeyType::Image => Ask::Image(image),
        CacheKeyType::Registry => Ask::Registry(registry_of(image)),
        CacheKeyType::Global => Ask::All,
    }
}

/// The response: `auth` keyed by the kubelet's patterns (the service's `match`; the most specific
/// credential of a pattern kept), cached for the service's hint but never past the bearer token's
/// expiry. Nothing found: no `auth` and no caching, so a secret created later is used at once.
pub fn respond(
    request: &ProviderRequest,
    cache_key_type: CacheKeyType,
    resolved: Option<Resolved>,
    token_expires_at: Option<u64>,
    now: u64,
) -> ProviderResponse {
    let mut auth = BTreeMap::new();
    let mut seconds = 0;
    if let Some(resolved) = resolved {
        seconds = resolved.cache_seconds;
        if let Some(expires_at) = token_expires_at {
            seconds = seconds.min(expires_at.saturating_sub(now));
        }
        for credential in resolved.credentials {
            auth.entry(credential.pattern)
                .or_insert(AuthConfig { username: credential.username, password: credential.password });
        }
    }
    ProviderResponse {
        api_version: request.api_version.clone(),
        kind: RESPONSE_KIND.into(),
        cache_key_type: cache_key_type.as_str().into(),
        cache_duration: format!("{seconds}s"),
        auth,
    }
}

/// One invocation: stdin's request to stdout's response.
pub fn run(service: &Service, input: &[u8]) -> Result<String, Fault> {
    let request = parse_request(input)?;
    let cache_key_type = service.config().cache_key_type;
    let bearer = service.bearer()?;
    let resolved =
        service.resolve(&ask(&request.image, cache_key_type), &bearer, request.service_account_token.as_deref())?;
    let response = respond(&request, cache_key_type, resolved, bearer.expires_at, unix_now());
    Ok(serde_json::to_string(&response).expect("responses serialize"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PullCredential;

    fn request(api_version: &str) -> ProviderRequest {
        parse_request(
            format!(r#"{{"apiVersion":"{api_version}","kind":"CredentialProviderRequest","image":"registry.example.com/team/app"}}"#)
                .as_bytes(),
        )
        .unwrap()
    }

    fn credential(secret: &str, pattern: &str, username: &str) -> PullCredential {
        PullCredential {
            secret: secret.into(),
            server: pattern.into(),
            pattern: pattern.into(),
            username: username.into(),
            password: format!("{username}-pw"),
        }
    }

    #[test]
    fn the_response_speaks_the_requests_version_and_keys_auth_by_the_kubelets_patterns() {
        let resolved = Resolved {
            cache_seconds: 300,
            credentials: vec![
                credential("team", "registry.example.com/team", "t"),
                credential("wide", "registry.example.com", "w"),
                credential("also-wide", "registry.example.com", "second"),
            ],
        };
        for version in [V1, V1BETA1] {
            let response = respond(&request(version), CacheKeyType::Image, Some(resolved.clone()), None, 1_000);
            assert_eq!(response.api_version, version);
            assert_eq!(response.kind, "CredentialProviderResponse");
            assert_eq!((response.cache_key_type.as_str(), response.cache_duration.as_str()), ("Image", "300s"));
            let users: Vec<(&str, &str)> =
                response.auth.iter().map(|(k, v)| (k.as_str(), v.username.as_str())).collect();
            assert_eq!(users, [("registry.example.com", "w"), ("registry.example.com/team", "t")]);
        }
    }

    #[test]
    fn the_cache_never_outlives_the_token_and_nothing_found_is_not_cached() {
        let resolved = Resolved { cache_seconds: 300, credentials: vec![credential("w", "r.example", "w")] };
        let at = |expires_at| respond(&request(V1), CacheKeyType::Registry, Some(resolved.clone()), expires_at, 1_000);
        assert_eq!(at(Some(1_120)).cache_duration, "120s");
        assert_eq!(at(Some(999_999)).cache_duration, "300s");
        assert_eq!(at(Some(500)).cache_duration, "0s", "an expired token caches nothing");
        let none = respond(&request(V1), CacheKeyType::Global, None, None, 1_000);
        assert_eq!((none.cache_duration.as_str(), none.auth.len(), none.cache_key_type.as_str()), ("0s", 0, "Global"));
    }

    #[test]
    fn requests_of_other_versions_or_kinds_are_refused() {
        for bad in [
            r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v2","kind":"CredentialProviderRequest","image":"a"}"#,
            r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"Other","image":"a"}"#,
            r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":""}"#,
            r#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest"}"#,
            "not json",
        ] {
            assert!(matches!(parse_request(bad.as_bytes()), Err(Fault::Input(_))), "{bad}");
        }
        let with_token = parse_request(
            br#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"a","serviceAccountToken":"ey.x.y","serviceAccountAnnotations":{"a":"b"}}"#,
        )
        .unwrap();
        assert_eq!(with_token.service_account_token.as_deref(), Some("ey.x.y"));
    }

    #[test]
    fn each_cache_key_type_asks_for_what_the_kubelet_will_reuse_the_answer_for() {
        assert_eq!(ask("ghcr.io/org/app:v1", CacheKeyType::Image), Ask::Image("ghcr.io/org/app:v1"));
        assert_eq!(ask("ghcr.io/org/app:v1", CacheKeyType::Registry), Ask::Registry("ghcr.io"));
        assert_eq!(ask("localhost:5000/app", CacheKeyType::Registry), Ask::Registry("localhost:5000"));
        assert_eq!(ask("localhost/app", CacheKeyType::Registry), Ask::Registry("localhost"));
        assert_eq!(ask("nginx", CacheKeyType::Registry), Ask::Registry("docker.io"));
        assert_eq!(ask("bitnami/redis", CacheKeyType::Registry), Ask::Registry("docker.io"));
        assert_eq!(ask("nginx", CacheKeyType::Global), Ask::All);
    }
}
