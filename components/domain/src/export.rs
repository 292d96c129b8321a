//! The credentials export: a Kubernetes Secret manifest of type `kubernetes.io/dockerconfigjson`,
//! for pullers, so that `curl … | kubectl apply -f -` creates the pull secret in a cluster.

use serde::Serialize;

use crate::clock::Clock;
use crate::crypto::Keyring;
use crate::error::{Error, Internal};
use crate::identity::{Need, Principal};
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
}

#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KubernetesData {
    #[serde(rename = ".dockerconfigjson")]
    pub dockerconfigjson: String,
}

pub fn export<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    who: &Principal,
    keyring: &Keyring,
    name: &str,
) -> Result<KubernetesSecret, Error> {
    use base64::Engine;
    who.require(Need::ReadCredentials)?;
    // A record is deleted only after a newer view stopped naming it; if that happened between
    // our two reads, the view read again names the new record.
    for _ in 0..3 {
        let view = current(env, &who.tenant)?.view;
        let entry = view.find(name)?.ok_or(Error::SecretNotFound)?;
        let Some(plain) = open_entry(env.store, keyring, &who.tenant, &entry)? else { continue };
        return Ok(KubernetesSecret {
            api_version: "v1",
            kind: "Secret",
            secret_type: "kubernetes.io/dockerconfigjson",
            metadata: KubernetesMetadata { name: entry.name.clone() },
            data: KubernetesData { dockerconfigjson: base64::engine::general_purpose::STANDARD.encode(plain) },
        });
    }
    Err(Internal::Platform("secret changed under three consecutive reads").into())
}
