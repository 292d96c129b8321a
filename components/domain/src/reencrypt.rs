//! Re-encryption after a key rotation: re-seal a tenant's secrets under the newest key.

use serde::Serialize;

use crate::clock::Clock;
use crate::crypto::{BindingContext, Keyring};
use crate::error::Error;
use crate::identity::{Need, Principal};
use crate::name::{TenantId, TenantIdError};
use crate::secrets::{under_lock, Env, Record};
use crate::store::{KeyValue, TenantKeys};

/// What a re-encryption did.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reencrypted {
    pub tenant: String,
    /// The key every secret of the tenant is now sealed with.
    pub key: String,
    pub reencrypted: usize,
    pub secrets: usize,
}

/// Re-seals every secret of a tenant that is not yet under the keyring's write key, so that the
/// old keys can be dropped from `encryption_keys`. Each record is rewritten in place, under the
/// tenant lock: a single `set` of a key replaces the value whole, and both the old and the new
/// value decrypt while both keys are configured, so a crash midway loses nothing; running it
/// again finishes the job. Versions and ETags do not change: the secrets did not.
pub fn reencrypt<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    who: &Principal,
    keyring: &Keyring,
    tenant: &str,
) -> Result<Reencrypted, Error> {
    who.require(Need::Operate)?;
    let tenant = TenantId::parse(tenant).map_err(TenantIdError::into_invalid_tenant)?;
    let keys = TenantKeys::new(&tenant);
    under_lock(env, &keys, |held, index| {
        let mut reencrypted = 0;
        for entry in &index.secrets {
            let key = keys.record(entry.version);
            let Some(bytes) = env.store.get(&key)? else { continue };
            let record = Record::decode(&bytes)?;
            if !keyring.needs_reencrypt(&record.sealed) {
                continue;
            }
            let binding = BindingContext { tenant: tenant.as_str(), name: &entry.name };
            let sealed = keyring.seal(&binding, &keyring.open(&binding, &record.sealed)?)?;
            let bytes = Record { name: entry.name.clone(), sealed }.encode()?;
            held.confirm(env.store, &keys)?;
            env.store.set(&key, &bytes)?;
            reencrypted += 1;
        }
        Ok(Reencrypted {
            tenant: tenant.as_str().to_owned(),
            key: keyring.write_kid().to_owned(),
            reencrypted,
            secrets: index.secrets.len(),
        })
    })
}
