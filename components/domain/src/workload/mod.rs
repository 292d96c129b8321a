//! Workload identity: a tenant admin trusts a cluster's service-account issuer (issuer URL,
//! audience, and the issuer's JWKS, uploaded; or, without a JWKS, its keys discovered from the
//! issuer's `/.well-known/openid-configuration` under the rules of `identity::discovery`, so pulls
//! follow the cluster's key rotation) and binds service accounts
//! (`system:serviceaccount:<namespace>:<name>`, or `…:<namespace>:*` for a whole namespace) of that
//! issuer to the secrets they may pull with. A lookup at pull time that carries a pod's
//! service-account token ([`WORKLOAD_TOKEN_HEADER`], passed on by the credential provider from the
//! kubelet's `serviceAccountToken`) answers only the secrets bound to that service account.
//!
//! The token is verified as the service's own callers' tokens are (`identity::verify_token`):
//! signature by the trusted JWKS's key that its `kid` names, `iss` exactly a trusted issuer, `aud`
//! that issuer's audience, `exp` required, `nbf`/`iat` when present, 60 s leeway; and its
//! `kubernetes.io` claims (`namespace`, `serviceaccount.name`) must name the same service account
//! as its `sub`. Any failure is one refusal (403 `WorkloadNotPermitted`), its kind logged.
//!
//! Storage: the whole trust of a tenant is one record written through the tenant's write log, as
//! every write is (`Op::SetTrust`): the view names the current one, so a PUT answered 200 is never
//! lost to a paused writer, and the last PUT to take a slot wins.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::Clock;
use crate::error::{Error, Internal};
use crate::identity::discovery::{Discovery, Issuer, KeySource};
use crate::identity::{verify_discovered, verify_token, Need, Principal};
use crate::jwks::Jwks;
use crate::log::op::Op;
use crate::name::{SecretName, TenantId};
use crate::reread;
use crate::secrets::{commit, current, Env};
use crate::store::{KeyValue, TenantKeys};

/// The request header carrying a pod's service-account token to the lookup.
pub const WORKLOAD_TOKEN_HEADER: &str = "x-regsecrets-service-account-token";
pub const MAX_ISSUERS: usize = 8;
pub const MAX_BINDINGS: usize = 256;
const SUBJECT_PREFIX: &str = "system:serviceaccount:";

/// A tenant's trusted issuers and bindings, as `GET`/`PUT /v2/admin/workloadIdentity` carry it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkloadTrust {
    #[serde(default)]
    pub issuers: Vec<TrustedIssuer>,
    #[serde(default)]
    pub bindings: Vec<Binding>,
    /// When true, the tenant's pull-time calls (`GET /v2/pull/credentials` and the export of one
    /// secret) must carry a pod's service-account token (`x-regsecrets-service-account-token`) and
    /// answer only what its service account is bound to: a node's puller token alone gets nothing
    /// (403 `WorkloadNotPermitted`). Pair it with `requireServiceAccount: true` in the kubelet's
    /// `CredentialProviderConfig`.
    #[serde(default, rename = "requirePodToken", skip_serializing_if = "std::ops::Not::not")]
    pub require_pod_token: bool,
}

/// A cluster's service-account token issuer (`kubectl get --raw /.well-known/openid-configuration`
/// names it; its JWKS is at `/openid/v1/jwks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuer {
    /// The tokens' exact `iss`.
    pub issuer: String,
    /// The audience the kubelet requests tokens for (`tokenAttributes.serviceAccountTokenAudience`).
    pub audience: String,
    /// The issuer's public keys, a JSON Web Key Set (`{"keys": [...]}`), for a private cluster; when
    /// absent, they are discovered from the issuer (its discovery document's `jwks_uri`) and follow
    /// its key rotation. The issuer's origin must be one the operator allows
    /// (`auth_keys_origin_N`).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
}

/// Service accounts of one issuer that may pull with these secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Binding {
    pub issuer: String,
    /// `system:serviceaccount:<namespace>:<name>`, or `system:serviceaccount:<namespace>:*`.
    pub subject: String,
    pub secrets: Vec<String>,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidRequest(message.into())
}

/// A DNS-1123 label (a namespace): 1 to 63 of `a-z0-9-`, alphanumeric at both ends.
fn is_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

/// A DNS-1123 subdomain (a service account name): labels joined by '.', at most 253.
fn is_subdomain(text: &str) -> bool {
    text.len() <= 253 && text.split('.').all(is_label)
}

/// `(namespace, name)` of a binding's subject; the name may be `*`.
fn parse_subject(subject: &str) -> Option<(&str, &str)> {
    let (namespace, name) = subject.strip_prefix(SUBJECT_PREFIX)?.split_once(':')?;
    (is_label(namespace) && (name == "*" || is_subdomain(name))).then_some((namespace, name))
}

impl WorkloadTrust {
    /// Every rule a PUT must meet; the messages quote field names and positions, never a value.
    pub fn validate(&self) -> Result<(), Error> {
        if self.issuers.len() > MAX_ISSUERS {
            return Err(invalid(format!("At most {MAX_ISSUERS} issuers may be trusted")));
        }
        if self.bindings.len() > MAX_BINDINGS {
            return Err(invalid(format!("At most {MAX_BINDINGS} bindings may be given")));
        }
        let mut issuers = BTreeSet::new();
        for (i, trusted) in self.issuers.iter().enumerate() {
            let url = url::Url::parse(&trusted.issuer).ok().filter(|u| u.scheme() == "https" && u.host().is_some());
            if url.is_none() || trusted.issuer.len() > 512 {
                return Err(invalid(format!("issuers[{i}].issuer must be an https URL of at most 512 characters")));
            }
            if trusted.audience.is_empty() || trusted.audience.len() > 256 {
                return Err(invalid(format!("issuers[{i}].audience must be 1 to 256 characters")));
            }
            let usable = trusted.jwks.as_ref().is_none_or(|jwks| {
                let text = jwks.to_string();
                Jwks::parse(&text).ok().and_then(|jwks| jwks.build_all().ok()).is_some_and(|keys| !keys.is_empty())
            });
            if !usable {
                return Err(invalid(format!(
                    "issuers[{i}].jwks must be a JSON Web Key Set with at least one RS256, ES256 or EdDSA signing key with a kid"
                )));
            }
            if !issuers.insert(trusted.issuer.as_str()) {
                return Err(invalid(format!("issuers[{i}].issuer is trusted twice")));
            }
        }
        for (i, binding) in self.bindings.iter().enumerate() {
            if !issuers.contains(binding.issuer.as_str()) {
                return Err(invalid(format!("bindings[{i}].issuer is not one of the trusted issuers")));
            }
            if parse_subject(&binding.subject).is_none() {
                return Err(invalid(format!(
                    "bindings[{i}].subject must be system:serviceaccount:<namespace>:<name> or system:serviceaccount:<namespace>:*"
                )));
            }
            if binding.secrets.is_empty() || binding.secrets.len() > 64 {
                return Err(invalid(format!("bindings[{i}].secrets must name 1 to 64 secrets")));
            }
            if binding.secrets.iter().any(|name| SecretName::parse(name).is_err()) {
                return Err(invalid(format!("bindings[{i}].secrets must be secret names")));
            }
        }
        Ok(())
    }
}

/// The tenant's trust; empty when none was ever saved. A record replaced between the view's read
/// and its own is read again with the view ([`crate::reread`]).
pub fn load<S: KeyValue, C: Clock>(env: &Env<S, C>, tenant: &TenantId) -> Result<WorkloadTrust, Error> {
    reread::settled(env.clock, || {
        let Some(record) = current(env, tenant)?.view.header().trust else { return Ok(Some(WorkloadTrust::default())) };
        let Some(bytes) = env.store.get(&TenantKeys::new(tenant).record(record))? else { return Ok(None) };
        serde_json::from_slice(&bytes).map(Some).map_err(|_| Internal::CorruptRecord.into())
    })
}

/// Replaces the tenant's trust through the write log.
pub fn save<S: KeyValue, C: Clock>(env: &Env<S, C>, tenant: &TenantId, trust: &WorkloadTrust) -> Result<(), Error> {
    let bytes = serde_json::to_vec(trust).expect("the trust serializes");
    commit(env, tenant, Op::SetTrust, Some(bytes), |_| Ok(())).map(drop)
}

pub fn get<S: KeyValue, C: Clock>(env: &Env<S, C>, who: &Principal) -> Result<WorkloadTrust, Error> {
    who.require(Need::ReadMetadata)?;
    load(env, &who.tenant)
}

pub fn put<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    who: &Principal,
    trust: WorkloadTrust,
) -> Result<WorkloadTrust, Error> {
    who.require(Need::WriteSecrets)?;
    trust.validate()?;
    save(env, &who.tenant, &trust)?;
    Ok(trust)
}

pub use crate::error::WorkloadFailure;

/// A verified workload: its issuer and service account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub issuer: String,
    /// `system:serviceaccount:<namespace>:<name>`
    pub subject: String,
    namespace: String,
}

fn refuse(why: WorkloadFailure) -> Error {
    Error::WorkloadNotPermitted(why)
}

/// The `iss` of a token, read before verification only to pick the trusted issuer's keys.
fn claimed_issuer(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Value>(&bytes).ok()?.get("iss")?.as_str().map(str::to_owned)
}

/// Verifies a pod's service-account token against the tenant's trusted issuers; the keys of an
/// issuer trusted without a JWKS come through `discovery` (503 when its provider cannot give a key
/// we lack).
pub fn verify(
    trust: &WorkloadTrust,
    token: &str,
    discovery: Option<&Discovery<'_>>,
    now_unix_secs: u64,
) -> Result<Workload, Error> {
    let token = token.trim();
    if token.is_empty() || token.len() > 8192 {
        return Err(refuse(WorkloadFailure::Malformed));
    }
    let issuer = claimed_issuer(token).ok_or(refuse(WorkloadFailure::Malformed))?;
    let trusted = trust.issuers.iter().find(|t| t.issuer == issuer).ok_or(refuse(WorkloadFailure::UntrustedIssuer))?;
    let claims = match &trusted.jwks {
        Some(jwks) => verify_token(token, &jwks.to_string(), &trusted.issuer, &trusted.audience, now_unix_secs)
            .map_err(|why| refuse(WorkloadFailure::Invalid(why)))?,
        None => {
            let issuer = Issuer {
                issuer: trusted.issuer.clone(),
                audience: trusted.audience.clone(),
                tenant_claim: String::new(),
                keys: KeySource::Discovered { jwks_uri: None },
            };
            verify_discovered(token, &issuer, discovery, now_unix_secs)
                .map_err(|error| match error {
                    Error::Unauthenticated(why) => refuse(WorkloadFailure::Invalid(why)),
                    unavailable => unavailable,
                })?
                .0
        }
    };
    if claims.expires_at.is_none() {
        return Err(refuse(WorkloadFailure::Invalid(crate::error::AuthFailure::MissingExpiry)));
    }
    let subject = claims.subject.clone().ok_or(refuse(WorkloadFailure::NotAServiceAccount))?;
    let kubernetes = claims.custom.get("kubernetes.io").ok_or(refuse(WorkloadFailure::NotAServiceAccount))?;
    let namespace = kubernetes.get("namespace").and_then(Value::as_str);
    let name = kubernetes.pointer("/serviceaccount/name").and_then(Value::as_str);
    let (Some(namespace), Some(name)) = (namespace, name) else {
        return Err(refuse(WorkloadFailure::NotAServiceAccount));
    };
    if subject != format!("{SUBJECT_PREFIX}{namespace}:{name}") || parse_subject(&subject) != Some((namespace, name)) {
        return Err(refuse(WorkloadFailure::NotAServiceAccount));
    }
    Ok(Workload { issuer, subject, namespace: namespace.to_owned() })
}

/// The secrets bound to the workload (by its exact subject or its namespace's `*`); refused when
/// none is.
pub fn bound_secrets(trust: &WorkloadTrust, workload: &Workload) -> Result<BTreeSet<String>, Error> {
    let whole_namespace = format!("{SUBJECT_PREFIX}{}:*", workload.namespace);
    let secrets: BTreeSet<String> = trust
        .bindings
        .iter()
        .filter(|b| b.issuer == workload.issuer && (b.subject == workload.subject || b.subject == whole_namespace))
        .flat_map(|b| b.secrets.iter().cloned())
        .collect();
    if secrets.is_empty() {
        return Err(refuse(WorkloadFailure::NotBound));
    }
    Ok(secrets)
}

/// What a pull-time call of `who` may answer: `None`, everything its tenant holds (no pod token,
/// and the tenant does not require one); `Some`, the verified workload and the secrets bound to it.
/// Without a pod token where the tenant requires one: 403 `WorkloadNotPermitted`.
pub fn pull_scope<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    who: &Principal,
    pod_token: Option<&str>,
    discovery: Option<&Discovery<'_>>,
    now_unix_secs: u64,
) -> Result<Option<(Workload, BTreeSet<String>)>, Error> {
    let trust = load(env, &who.tenant)?;
    match pod_token {
        Some(token) => {
            let workload = verify(&trust, token, discovery, now_unix_secs)?;
            let secrets = bound_secrets(&trust, &workload)?;
            Ok(Some((workload, secrets)))
        }
        None if trust.require_pod_token => Err(refuse(WorkloadFailure::PodTokenRequired)),
        None => Ok(None),
    }
}

/// The names of the secrets a workload's token may resolve, for the tenant of `who`.
pub fn admit<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    who: &Principal,
    token: &str,
    discovery: Option<&Discovery<'_>>,
    now_unix_secs: u64,
) -> Result<(Workload, BTreeSet<String>), Error> {
    let trust = load(env, &who.tenant)?;
    let workload = verify(&trust, token, discovery, now_unix_secs)?;
    let secrets = bound_secrets(&trust, &workload)?;
    Ok((workload, secrets))
}

#[cfg(test)]
mod tests;
