//! Create, modify, delete, list and get: the operations, over the tenant's write log
//! ([`crate::log`], where the protocol and its proof are). The export is in `export.rs`,
//! re-encryption in `reencrypt.rs`.
//!
//! Every write checks itself against the current view first, so that a refusal writes nothing,
//! then goes through the log, where its slot decides it against the state right before it.
//! Store calls (P = the tenant prefix; `read` = `get P:seq`, `get P:v:<S>`, two more while a write
//! is in flight; W = the window of kept views):
//!
//! | operation | calls in order | writes |
//! |-----------|----------------|--------|
//! | create    | read (a refusal stops here); `increment P:seq` (= k); `set P:r:<k>`; `set P:s:<k>:0`; `get P:s:<k>:n`; `get P:seq` (the fence); `delete P:s:<k-1>:0`; `get P:s:<k-1>:n`; `delete P:v:<k-1-W>`; `set P:v:<k>`; `delete P:s:<k>:0` | 7 |
//! | modify    | the same, and `delete P:r:<old>` after `set P:v:<k>`; for a minting kind then `delete P:mint:<old>` | 8 (9) |
//! | delete    | the same as create without `set P:r:<k>`, and `delete P:r:<old>`; for a minting kind then `delete P:mint:<old>` | 7 (8) |
//! | list, get, quota | read; for each minting secret `get P:mint:<record>` (its expiry) | 0 |
//! | export    | read; `get P:r:<record>`; for a minting kind `get P:mint:<record>`, and on a miss the mint, `set P:mint:<record>`, `get P:r:<record>` (`mint::cache`) | 0 (1) |
//!
//! Reads: 5 per write, 2 per read. Before its view, a write deletes what the view before it left
//! as garbage (a modify's or delete's old record, a refusal's record: one `delete` each, two for a
//! minting secret's record, `P:r:` then `P:mint:`) and the previous slot's registers, in case their
//! writer died; after its view, its own. Once every 1,024 slots of a tenant, a write also sweeps
//! (one `get_keys` of the whole store, see `log::sweep`).
//!
//! A write that finds another in flight before it waits for the view before its slot (one `get`
//! per poll) and checks `exists P:v:<k>` once more at its fence; one that finds a slot stalled for a
//! lease takes it over (see `log`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::crypto::{BindingContext, Keyring, Sealed};
use crate::dockerconfig::{Credentials, SecretRequest};
use crate::error::{Error, Internal};
use crate::identity::{Need, Principal, Scope};
use crate::index::{IfMatch, IndexEntry, SecretMetadata};
use crate::log::op::{admit_change, admit_create, managed_guard as guard, Actor, Op, Refusal};
use crate::log::{self, Committed};
use crate::name::{SecretName, TenantId};
use crate::paging::{ListQuery, Page};
use crate::store::{ContentionBackoff, KeyValue, TenantKeys, CONTENDED};
use crate::view::View;

pub use crate::log::Env;

/// A secret's credentials as stored at `P:r:<record>`.
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

pub(crate) fn seal(keyring: &Keyring, tenant: &TenantId, name: &str, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
    let sealed = keyring.seal(&BindingContext { tenant: tenant.as_str(), name }, plaintext)?;
    Record { name: name.to_owned(), sealed }.encode()
}

/// The sealed record of a secret's credentials: the canonical `.dockerconfigjson`, or the
/// provider identity (see [`Credentials::to_document`]).
fn seal_credentials(
    keyring: &Keyring,
    tenant: &TenantId,
    name: &SecretName,
    credentials: &Credentials,
) -> Result<Vec<u8>, Error> {
    seal(keyring, tenant, name.as_str(), &credentials.to_document())
}

pub(crate) fn actor(who: &Principal) -> Actor {
    Actor { operator: who.is_operator(), admin: who.scopes.contains(Scope::Admin) }
}

/// The managed-secret rule for callers that check it themselves (verification).
pub(crate) fn managed_guard(who: &Principal, entry: &IndexEntry, refusal: Error) -> Result<(), Error> {
    match guard(actor(who), entry, Refusal::ManagedUpdate) {
        Ok(()) => Ok(()),
        Err(Refusal::ManagedUpdate) => Err(refusal),
        Err(other) => Err(other.into_error()),
    }
}

/// The tenant's current state (see `log::read`).
pub(crate) fn current<S: KeyValue, C: Clock>(env: &Env<S, C>, tenant: &TenantId) -> Result<log::Current, Error> {
    log::read(env, &TenantKeys::new(tenant))
}

/// Writes `op` after checking it against the current state with `admit` (a refusal there
/// writes nothing). When the slot could not be taken because another writer took one at the same
/// moment (a contended `increment`, nothing written), the operation is checked again against the
/// state before the next try, after a jittered pause: many writers racing for the last places of
/// a quota then drop out with the refusal as the places fill, instead of all retrying the counter
/// and each taking a slot only to be refused there. Contention that lasts the policy's `max_wait`
/// is answered 503 `TenantBusy`, as any writer that could not join the log in that time.
pub(crate) fn commit<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    tenant: &TenantId,
    op: Op,
    record: Option<Vec<u8>>,
    admit: impl Fn(&View) -> Result<(), Refusal>,
) -> Result<Committed, Error> {
    let keys = TenantKeys::new(tenant);
    let started = env.clock.monotonic_ms();
    let mut contention = ContentionBackoff::new();
    loop {
        let now = log::read_for_write(env, &keys)?;
        if now.validated {
            admit(&now.view).map_err(Refusal::into_error)?;
        }
        match log::write(env, &keys, &op, record.as_deref(), now) {
            Err(Error::StoreUnavailable(kind)) if kind == CONTENDED => {
                // Nothing was written. Past the wait a writer is allowed to join the log, the
                // answer is the log's own: too busy to join, retry later (the store is up).
                if env.elapsed_since(started) >= env.policy.max_wait.as_millis() as u64 {
                    return Err(env.policy.busy());
                }
                env.clock.sleep(Duration::from_millis(contention.next_ms(|ceiling| env.clock.jitter_ms(ceiling))));
            }
            answer => return answer,
        }
    }
}

pub fn create<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    who: &Principal,
    keyring: &Keyring,
    request: SecretRequest,
) -> Result<Written, Error> {
    who.require(Need::WriteSecrets)?;
    let name = SecretName::parse(request.name.as_deref().unwrap_or_default())?;
    let record = seal_credentials(keyring, &who.tenant, &name, &request.credentials)?;
    let op = Op::Create {
        name: name.as_str().to_owned(),
        registries: request.credentials.registries(),
        actor: actor(who),
        now: env.clock.now_ms(),
        verification: request.verification,
        kind: request.credentials.kind(),
    };
    let committed = commit(env, &who.tenant, op, Some(record), |view| admit_create(view, name.as_str()))?;
    Ok(Written { name, version: committed.slot })
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
    let record = seal_credentials(keyring, &who.tenant, &name, &request.credentials)?;
    let op = Op::Modify {
        name: name.as_str().to_owned(),
        registries: request.credentials.registries(),
        actor: actor(who),
        now: env.clock.now_ms(),
        if_match: if_match.clone(),
        verification: request.verification,
        kind: request.credentials.kind(),
    };
    let admit = |view: &View| {
        admit_change(view, name.as_str(), actor(who), if_match.as_ref(), Refusal::ManagedUpdate).map(|_| ())
    };
    let committed = commit(env, &who.tenant, op, Some(record), admit)?;
    Ok(Written { name, version: committed.slot })
}

/// Answers the name and the slot of the delete (`version`).
pub fn delete<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    who: &Principal,
    name: &str,
    if_match: Option<IfMatch>,
) -> Result<Written, Error> {
    who.require(Need::WriteSecrets)?;
    let name = SecretName::parse(name).map_err(|_| Error::SecretNotFound)?;
    let op = Op::Delete { name: name.as_str().to_owned(), actor: actor(who), if_match: if_match.clone() };
    let admit = |view: &View| {
        admit_change(view, name.as_str(), actor(who), if_match.as_ref(), Refusal::ManagedDelete).map(|_| ())
    };
    let committed = commit(env, &who.tenant, op, None, admit)?;
    Ok(Written { name, version: committed.slot })
}

pub fn list<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    who: &Principal,
    query: &ListQuery,
) -> Result<Page<SecretMetadata>, Error> {
    who.require(Need::ReadMetadata)?;
    let view = current(env, &who.tenant)?.view;
    let (count, chosen) = query.select(view.used() as usize, |i| view.name_at(i));
    let resources =
        chosen.into_iter().map(|i| view.entry_at(i).map(|e| SecretMetadata::from(&e))).collect::<Result<_, _>>()?;
    Ok(Page { count, resources })
}

pub fn get<S: KeyValue, C: Clock>(env: &Env<S, C>, who: &Principal, name: &str) -> Result<SecretMetadata, Error> {
    who.require(Need::ReadMetadata)?;
    let view = current(env, &who.tenant)?.view;
    view.find(name)?.as_ref().map(SecretMetadata::from).ok_or(Error::SecretNotFound)
}

/// The credentials document of one entry, unsealed (the `.dockerconfigjson`, or whatever the
/// secret's kind stores). `None` when a write replaced the entry's record after it was read:
/// read the entries again.
pub fn open_entry<S: KeyValue>(
    store: &S,
    keyring: &Keyring,
    tenant: &TenantId,
    entry: &IndexEntry,
) -> Result<Option<Vec<u8>>, Error> {
    let Some(bytes) = store.get(&TenantKeys::new(tenant).record(entry.record))? else { return Ok(None) };
    let record = Record::decode(&bytes)?;
    Ok(Some(keyring.open(&BindingContext { tenant: tenant.as_str(), name: &entry.name }, &record.sealed)?))
}

#[cfg(test)]
#[path = "secrets_tests.rs"]
mod tests;
