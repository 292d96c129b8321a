//! The credentials export: a Kubernetes Secret manifest of type `kubernetes.io/dockerconfigjson`,
//! for pullers, so that `curl … | kubectl apply -f -` creates the pull secret in a cluster.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::clock::{rfc3339, Clock};
use crate::crypto::Keyring;
use crate::error::Error;
use crate::identity::{Need, Principal};
use crate::mint::{self, Source};
use crate::provider::Identity;
use crate::reread;
use crate::secrets::{current, open_entry, Env};
use crate::store::KeyValue;

/// The credentials as a Kubernetes Secret manifest, for `kubectl apply -f -`.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct KubernetesSecret {
    pub api_version: &'static str,
    pub kind: &'static str,
    #[serde(rename = "type")]
    pub secret_type: &'static str,
    pub metadata: KubernetesMetadata,
    pub data: KubernetesData,
}

#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KubernetesMetadata {
    pub name: String,
    /// For secrets that mint: [`EXPIRES_AT_ANNOTATION`], when the credential stops working (RFC 3339).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The annotation that says when a minted credential expires: re-export before then.
pub const EXPIRES_AT_ANNOTATION: &str = "regsecrets.dev/expires-at";

#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KubernetesData {
    #[serde(rename = ".dockerconfigjson")]
    pub dockerconfigjson: String,
}

/// The Secret of `name`: the stored `.dockerconfigjson`, or for a minting kind the current minted
/// credential (cached, or minted through `source`), with its expiry as an annotation.
pub fn export<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    who: &Principal,
    keyring: &Keyring,
    name: &str,
    source: &Source,
) -> Result<KubernetesSecret, Error> {
    use base64::Engine;
    who.require(Need::ReadCredentials)?;
    // A record is deleted only after a newer view stopped naming it; if that happened between
    // our two reads, the view read again names the new record.
    reread::settled(env.clock, || {
        let view = current(env, &who.tenant)?.view;
        let entry = view.find(name)?.ok_or(Error::SecretNotFound)?;
        let Some(plain) = open_entry(env.store, keyring, &who.tenant, &entry)? else { return Ok(None) };
        let mut annotations = BTreeMap::new();
        let plain = if entry.kind.is_static() {
            plain
        } else {
            let identity = Identity::from_document(&plain)?;
            let minted = mint::current(env.store, keyring, &who.tenant, &entry, &identity, source, env.clock.now_ms());
            let Some(minted) = reread::gone_is_a_lost_round(minted)? else { return Ok(None) };
            annotations.insert(EXPIRES_AT_ANNOTATION.to_owned(), rfc3339(minted.expires_at));
            minted.to_docker_config()?.to_dockerconfigjson()
        };
        Ok(Some(KubernetesSecret {
            api_version: "v1",
            kind: "Secret",
            secret_type: "kubernetes.io/dockerconfigjson",
            metadata: KubernetesMetadata { name: entry.name.clone(), annotations },
            data: KubernetesData { dockerconfigjson: base64::engine::general_purpose::STANDARD.encode(plain) },
        }))
    })
}
