//! Re-encryption after a key rotation: re-seal a tenant's secrets under the newest key.

use serde::Serialize;

use crate::clock::Clock;
use crate::crypto::{BindingContext, Keyring};
use crate::error::Error;
use crate::identity::{Need, Principal};
use crate::log::op::Op;
use crate::name::{TenantId, TenantIdError};
use crate::secrets::{commit, current, seal, Env, Record};
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
/// old keys can be dropped from `encryption_keys`. Each secret is re-sealed into a new record by a
/// write of its own through the log (`Op::Reseal`), which switches the secret to the new record
/// only if it still uses the one that was read; a modify that raced it wins and the re-sealed copy
/// is garbage. Both the old and the new record decrypt while both keys are configured, so a crash
/// midway loses nothing; running it again finishes the job. Versions and ETags do not change: the
/// secrets did not.
pub fn reencrypt<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    who: &Principal,
    keyring: &Keyring,
    tenant: &str,
) -> Result<Reencrypted, Error> {
    who.require(Need::Operate)?;
    let tenant = TenantId::parse(tenant).map_err(TenantIdError::into_invalid_tenant)?;
    let keys = TenantKeys::new(&tenant);
    let entries = current(env, &tenant)?.view.entries()?;
    let mut reencrypted = 0;
    for entry in &entries {
        let Some(bytes) = env.store.get(&keys.record(entry.record))? else { continue };
        let record = Record::decode(&bytes)?;
        if !keyring.needs_reencrypt(&record.sealed) {
            continue;
        }
        let binding = BindingContext { tenant: tenant.as_str(), name: &entry.name };
        let plain = keyring.open(&binding, &record.sealed)?;
        let resealed = seal(keyring, &tenant, &entry.name, &plain)?;
        let op = Op::Reseal { name: entry.name.clone(), record: entry.record };
        match commit(env, &tenant, op, Some(resealed), |_| Ok(())) {
            Ok(_) => reencrypted += 1,
            Err(Error::SecretNotFound) => {} // changed meanwhile: its new record is sealed anew
            Err(other) => return Err(other),
        }
    }
    Ok(Reencrypted {
        tenant: tenant.as_str().to_owned(),
        key: keyring.write_kid().to_owned(),
        reencrypted,
        secrets: entries.len(),
    })
}
