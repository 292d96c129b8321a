//! Create, modify, delete, list and get: the operations, as functions over the store
//! (the export is in `export.rs`, re-encryption in `reencrypt.rs`).
//!
//! Writes run under the tenant lock ([`crate::lock`]); reads never wait for it. The store calls
//! of each operation (P = the tenant prefix; "lock" = the acquire/release calls of `lock.rs`:
//! acquire `increment P:lock:next`, `get P:lock:serving` until ours; release `get P:lock:serving`,
//! `get P:lock:gone`, `set P:lock:serving`; recovery from dead writers adds the calls listed there):
//!
//! | operation | calls in order | writes |
//! |-----------|----------------|--------|
//! | create | `get P:index`, `get P:limit` (a refusal stops here, having written nothing); lock acquire; `get P:index`; [repair]; `get P:limit`; `set P:r:<t>`; `get P:lock:serving`; `set P:index`; lock release | 4 |
//! | modify | `get P:index` (a refusal stops here); lock acquire; `get P:index`; [repair]; `set P:r:<t>`; `get P:lock:serving`; `set P:index`; `delete P:r:<old>`; [`delete P:mint:<old>` for a minting kind]; lock release | 5 (6) |
//! | delete | `get P:index` (a refusal stops here); lock acquire; `get P:index`; [repair]; `get P:lock:serving`; `set P:index`; `delete P:r:<old>`; [`delete P:mint:<old>` for a minting kind]; lock release | 4 (5) |
//! | list, get | `get P:index` | 0 |
//! | export | `get P:index`; `get P:r:<v>` (again if a modify raced it) | 0 |
//!
//! Why this is safe on every backend: the index is the only commit point, and only the lock
//! holder writes it, so read-modify-write of the index loses nothing and names stay unique.
//! A new record is written under a key no one else uses (the holder's own ticket) *before* the
//! index points to it, so readers never see a half-written secret; an old record is deleted only
//! *after* the index stops pointing to it. A crash therefore leaves at most: an unreferenced record
//! of the dead ticket (removed by the next holder, which inherits that ticket as a suspect), or a
//! replaced record listed in `garbage` (removed by the next holder). Neither is visible to anyone
//! meanwhile, and list, get and quota are derived from the index, so they are exact at all times.
//! A holder that finds at its confirm that it lost the lock deletes its own record itself (see
//! [`under_lock`]); a refused request (503) is never named by the index.

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::crypto::{BindingContext, Keyring, Sealed};
use crate::dockerconfig::{Credentials, SecretRequest};
use crate::error::{Error, Internal};
use crate::identity::{Need, Principal, Scope};
use crate::index::{IfMatch, IndexEntry, SecretMetadata, TenantIndex};
use crate::lock::{self, Held, LockPolicy};
use crate::name::{SecretName, TenantId};
use crate::paging::{ListQuery, Page};
use crate::quota;
use crate::store::{KeyValue, TenantKeys};

/// What an operation needs from the platform.
pub struct Env<'a, S: KeyValue, C: Clock> {
    pub store: &'a S,
    pub clock: &'a C,
    pub lock: LockPolicy,
}

/// A secret's credentials as stored at `P:r:<version>`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Record {
    pub(crate) name: String,
    pub(crate) sealed: Sealed,
}

impl Record {
    pub(crate) fn decode(bytes: &[u8]) -> Result<Record, Error> {
        serde_json::from_slice(bytes).map_err(|_| Internal::CorruptRecord.into())
    }

    pub(crate) fn encode(&self) -> Result<Vec<u8>, Error> {
        serde_json::to_vec(self).map_err(|_| Internal::CorruptRecord.into())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub name: SecretName,
    pub version: u64,
}

fn seal(keyring: &Keyring, tenant: &TenantId, name: &SecretName, credentials: &Credentials) -> Result<Vec<u8>, Error> {
    let sealed =
        keyring.seal(&BindingContext { tenant: tenant.as_str(), name: name.as_str() }, &credentials.to_document())?;
    Record { name: name.as_str().to_owned(), sealed }.encode()
}

/// Runs `write` under the tenant's lock, after repairing what dead holders left, and always
/// releases. `write` gets the repaired index and returns what to answer.
///
/// A holder that finds at its confirm that it lost the lock (declared dead while stalled) deletes
/// the record it wrote under its own ticket, which nothing references (the confirm comes before
/// the commit), and answers 503. A write that fails otherwise passes its suspects and its own
/// ticket on to the next holder's repair, which deletes only records the index does not reference.
pub(crate) fn under_lock<S: KeyValue, C: Clock, T>(
    env: &Env<S, C>,
    keys: &TenantKeys,
    write: impl FnOnce(&Held, TenantIndex) -> Result<T, Error>,
) -> Result<T, Error> {
    let held = lock::acquire(env.store, env.clock, keys, env.lock)?;
    let outcome = TenantIndex::load(env.store, keys).and_then(|index| {
        let index = repair(env.store, keys, &held, index)?;
        write(&held, index)
    });
    if held.superseded() {
        let own = keys.record(held.ticket);
        if env.store.exists(&own)? {
            env.store.delete(&own)?;
        }
        return outcome;
    }
    let unrepaired =
        if outcome.is_ok() { Vec::new() } else { held.suspects.iter().copied().chain([held.ticket]).collect() };
    let released = held.release(env.store, keys, unrepaired);
    match (outcome, released) {
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(e),
        (Ok(v), Ok(())) => Ok(v),
    }
}

/// Removes what dead holders wrote but never committed (their tickets' records, if the index does
/// not reference them) and the records that committed writes replaced. Deletes only what exists,
/// so a repair with nothing to do costs reads only. The cleaned `garbage` list is persisted by the
/// caller's own index write.
fn repair<S: KeyValue>(
    store: &S,
    keys: &TenantKeys,
    held: &Held,
    mut index: TenantIndex,
) -> Result<TenantIndex, Error> {
    let mut candidates: Vec<u64> = held.suspects.iter().copied().filter(|t| !index.references(*t)).collect();
    candidates.append(&mut index.garbage);
    for version in candidates {
        let key = keys.record(version);
        if store.exists(&key)? {
            store.delete(&key)?;
        }
    }
    Ok(index)
}

pub(crate) fn managed_guard(who: &Principal, entry: &IndexEntry, refusal: Error) -> Result<(), Error> {
    match (entry.managed, who.is_operator()) {
        (true, false) => Err(refusal),
        // The operator's scope covers managed secrets only; tenants' own are the tenants'.
        (false, true) if !who.scopes.contains(Scope::Admin) => Err(Error::Forbidden),
        _ => Ok(()),
    }
}

/// Whether a create may go ahead on this index. Checked once without the lock, so that a
/// refusal touches nothing in the store, and again under the lock, where it decides.
fn admit_create<S: KeyValue>(
    store: &S,
    keys: &TenantKeys,
    index: &TenantIndex,
    name: &SecretName,
) -> Result<(), Error> {
    if index.find(name.as_str()).is_some() {
        return Err(Error::SecretNameExists);
    }
    let limit = quota::limit(store, keys)?;
    if index.used() >= limit {
        return Err(Error::QuotaExceeded { limit, used: index.used() });
    }
    Ok(())
}

/// Whether a modify or delete may go ahead on this index; the entry it changes. Checked without
/// and then under the lock, as [`admit_create`].
fn admit_change(
    who: &Principal,
    index: &TenantIndex,
    name: &SecretName,
    if_match: Option<&IfMatch>,
    managed_refusal: Error,
) -> Result<IndexEntry, Error> {
    let entry = index.find(name.as_str()).cloned().ok_or(Error::SecretNotFound)?;
    managed_guard(who, &entry, managed_refusal)?;
    if let Some(precondition) = if_match {
        precondition.check(entry.version)?;
    }
    Ok(entry)
}

pub fn create<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    who: &Principal,
    keyring: &Keyring,
    request: SecretRequest,
) -> Result<Written, Error> {
    who.require(Need::WriteSecrets)?;
    let name = SecretName::parse(request.name.as_deref().unwrap_or_default())?;
    let record = seal(keyring, &who.tenant, &name, &request.credentials)?;
    let keys = TenantKeys::new(&who.tenant);
    admit_create(env.store, &keys, &TenantIndex::load(env.store, &keys)?, &name)?;
    under_lock(env, &keys, |held, mut index| {
        admit_create(env.store, &keys, &index, &name)?;
        let now = env.clock.now_ms();
        env.store.set(&keys.record(held.ticket), &record)?;
        index.upsert(IndexEntry {
            name: name.as_str().to_owned(),
            registries: request.credentials.registries(),
            managed: who.is_operator(),
            created: now,
            modified: now,
            version: held.ticket,
            verification: request.verification,
            kind: request.credentials.kind(),
        });
        held.confirm(env.store, &keys)?;
        index.save(env.store, &keys)?;
        Ok(Written { name: name.clone(), version: held.ticket })
    })
}

pub fn modify<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    who: &Principal,
    keyring: &Keyring,
    name: &str,
    request: SecretRequest,
    if_match: Option<IfMatch>,
) -> Result<Written, Error> {
    who.require(Need::WriteSecrets)?;
    let name = SecretName::parse(name).map_err(|_| Error::SecretNotFound)?;
    if request.name.as_deref().is_some_and(|n| n != name.as_str()) {
        return Err(Error::NameMismatch);
    }
    let record = seal(keyring, &who.tenant, &name, &request.credentials)?;
    let keys = TenantKeys::new(&who.tenant);
    let refusal = || Error::UpdateManagedSecretNotAllowed;
    admit_change(who, &TenantIndex::load(env.store, &keys)?, &name, if_match.as_ref(), refusal())?;
    under_lock(env, &keys, |held, mut index| {
        let old = admit_change(who, &index, &name, if_match.as_ref(), refusal())?;
        env.store.set(&keys.record(held.ticket), &record)?;
        index.upsert(IndexEntry {
            registries: request.credentials.registries(),
            modified: env.clock.now_ms(),
            version: held.ticket,
            verification: request.verification,
            kind: request.credentials.kind(),
            ..old.clone()
        });
        index.garbage.push(old.version);
        held.confirm(env.store, &keys)?;
        index.save(env.store, &keys)?;
        env.store.delete(&keys.record(old.version))?;
        forget_minted(env.store, &keys, &old)?;
        Ok(Written { name: name.clone(), version: held.ticket })
    })
}

/// A replaced or deleted secret that minted leaves its cached credential (`P:mint:<version>`,
/// see `mint::cache`): removed after the commit, as its record is. A reader that minted for the old
/// version and writes after this leaves one expired value behind (documented there).
fn forget_minted<S: KeyValue>(store: &S, keys: &TenantKeys, old: &IndexEntry) -> Result<(), Error> {
    if !old.kind.is_static() {
        store.delete(&keys.mint(old.version))?;
    }
    Ok(())
}

pub fn delete<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    who: &Principal,
    name: &str,
    if_match: Option<IfMatch>,
) -> Result<SecretName, Error> {
    who.require(Need::WriteSecrets)?;
    let name = SecretName::parse(name).map_err(|_| Error::SecretNotFound)?;
    let keys = TenantKeys::new(&who.tenant);
    let refusal = || Error::DeleteManagedSecretNotAllowed;
    admit_change(who, &TenantIndex::load(env.store, &keys)?, &name, if_match.as_ref(), refusal())?;
    under_lock(env, &keys, |held, mut index| {
        let old = admit_change(who, &index, &name, if_match.as_ref(), refusal())?;
        index.remove(name.as_str());
        index.garbage.push(old.version);
        held.confirm(env.store, &keys)?;
        index.save(env.store, &keys)?;
        env.store.delete(&keys.record(old.version))?;
        forget_minted(env.store, &keys, &old)?;
        Ok(name.clone())
    })
}

/// Every secret of a tenant as it is now (metadata only, sorted by name). Readers outside this
/// module (export, resolve, minting) read the tenant's state only through this and [`open_entry`],
/// so the store layout stays private to the write protocol.
pub fn load_entries<S: KeyValue>(store: &S, tenant: &TenantId) -> Result<Vec<IndexEntry>, Error> {
    Ok(TenantIndex::load(store, &TenantKeys::new(tenant))?.secrets)
}

/// The credentials document of one entry, unsealed (the `.dockerconfigjson`, or whatever the
/// secret's kind stores). `None` when a write replaced the entry's version after it was read:
/// read the entries again.
pub fn open_entry<S: KeyValue>(
    store: &S,
    keyring: &Keyring,
    tenant: &TenantId,
    entry: &IndexEntry,
) -> Result<Option<Vec<u8>>, Error> {
    let Some(bytes) = store.get(&TenantKeys::new(tenant).record(entry.version))? else { return Ok(None) };
    let record = Record::decode(&bytes)?;
    Ok(Some(keyring.open(&BindingContext { tenant: tenant.as_str(), name: &entry.name }, &record.sealed)?))
}

pub fn list<S: KeyValue>(store: &S, who: &Principal, query: &ListQuery) -> Result<Page<SecretMetadata>, Error> {
    who.require(Need::ReadMetadata)?;
    let index = TenantIndex::load(store, &TenantKeys::new(&who.tenant))?;
    let items = index.secrets.iter().map(SecretMetadata::from).collect();
    Ok(query.apply(items, |m: &SecretMetadata| m.name.as_str()))
}

pub fn get<S: KeyValue>(store: &S, who: &Principal, name: &str) -> Result<SecretMetadata, Error> {
    who.require(Need::ReadMetadata)?;
    let index = TenantIndex::load(store, &TenantKeys::new(&who.tenant))?;
    index.find(name).map(SecretMetadata::from).ok_or(Error::SecretNotFound)
}

#[cfg(test)]
#[path = "secrets_tests.rs"]
mod tests;
