//! The verification of a stored secret, and the check of credentials not yet stored (create and
//! patch with `?verify=true`, through the `verify` component).
//!
//! Store calls of `POST …/{name}/verification` (P the tenant prefix, v the secret's version):
//!
//! | step | calls | why it is safe |
//! |------|-------|----------------|
//! | read | `get P:index`; `get P:r:<v>` (again if a modify raced it); for a minting kind `get P:mint:<v>` and, on a miss, the mint and `set P:mint:<v>` (see `mint::cache`) | no lock: a reader sees a committed state |
//! | claim | `increment P:check:<v>:<w>`, `increment P:check:<v>:<w+1>`; leftovers: `exists`/`delete` | see [`super::inflight`] |
//! | check | network only; **no lock is held** (the lock's lease is seconds, a check may take longer) | |
//! | release | `delete P:check:<v>:<w>`, `delete P:check:<v>:<w+1>` | |
//! | record | lock acquire; `get P:index`; [repair]; `get P:lock:serving`; `set P:index` only if the secret still has version v; lock release | under the tenant lock, as every index write |
//!
//! Writes: 2 increments, 2 deletes, and the lock's `increment` and `set` plus the index `set` (7).
//! The outcome is kept in the index entry (`verification`), so get and list show it at no extra read.
//!
//! Failure model (a node dies between any two calls): before the claim, nothing was written. After
//! it, the claim's keys stay until they expire (at most two leases) and the next check of that
//! version removes them; the secret and the index are untouched. During the record, the tenant
//! lock's own recovery applies (the record writes no `P:r:` key, so a dead holder leaves nothing to
//! repair). A modify or delete that commits while the check runs wins: the outcome, which is about
//! credentials no longer stored, is dropped (`version` changed), never written over the new ones.

use super::outcome::{Checked, LastCheck, Report};
use super::{inflight, Checker, Repository};
use crate::clock::{rfc3339, Clock};
use crate::crypto::Keyring;
use crate::dockerconfig::DockerConfig;
use crate::error::{Error, Internal};
use crate::identity::{Need, Principal};
use crate::index::IndexEntry;
use crate::mint::{self, Source};
use crate::name::SecretName;
use crate::provider::Identity;
use crate::secrets::{load_entries, managed_guard, open_entry, under_lock, Env};
use crate::store::{KeyValue, TenantKeys};

/// Checks the stored credentials of `name` against each of their registries; keeps the outcome.
/// For a secret that mints, the current minted credential is checked (minted through `source`
/// when none is cached).
pub fn verify_secret<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    who: &Principal,
    keyring: &Keyring,
    checker: &Checker,
    source: &Source,
    name: &str,
    repository: Option<&Repository>,
) -> Result<Report, Error> {
    who.require(Need::WriteSecrets)?;
    let name = SecretName::parse(name).map_err(|_| Error::SecretNotFound)?;
    let keys = TenantKeys::new(&who.tenant);
    let (entry, config) = read_current(env.store, who, keyring, source, &name, env.clock.now_ms())?;
    let claim = inflight::claim(env.store, &keys, entry.version, env.clock.now_ms(), checker.policy.lease_ms())?;
    let registries = checker.check_all(&config, repository);
    drop(config);
    claim.release(env.store, &keys)?;
    let checked = Checked::of(registries);
    let last = LastCheck { at: env.clock.now_ms(), ok: checked.ok };
    record(env, &keys, &name, entry.version, last)?;
    Ok(Report {
        name: name.as_str().to_owned(),
        checked_at: rfc3339(last.at),
        ok: checked.ok,
        registries: checked.registries,
    })
}

/// The index entry and the decrypted credentials it points to (minted, for a minting kind), as of
/// one committed state.
fn read_current<S: KeyValue>(
    store: &S,
    who: &Principal,
    keyring: &Keyring,
    source: &Source,
    name: &SecretName,
    now_ms: u64,
) -> Result<(IndexEntry, DockerConfig), Error> {
    // A modify commits the index before deleting the record it replaced: read the index again then.
    for _ in 0..3 {
        let entries = load_entries(store, &who.tenant)?;
        let entry = entries.into_iter().find(|e| e.name == name.as_str()).ok_or(Error::SecretNotFound)?;
        managed_guard(who, &entry, Error::Forbidden)?;
        let Some(plain) = open_entry(store, keyring, &who.tenant, &entry)? else { continue };
        if entry.kind.is_static() {
            return Ok((entry, DockerConfig::from_stored(&plain)?));
        }
        let identity = Identity::from_document(&plain)?;
        let minted = mint::current(store, keyring, &who.tenant, &entry, &identity, source, now_ms)?;
        let config = minted.to_docker_config()?;
        return Ok((entry, config));
    }
    Err(Internal::Platform("secret changed under three consecutive reads").into())
}

/// Keeps the outcome in the index entry, under the tenant lock, if the secret is still the one
/// that was checked. The entry's version stays: a check changes nothing of the secret, so an
/// `If-Match` taken before it still holds.
fn record<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    keys: &TenantKeys,
    name: &SecretName,
    version: u64,
    last: LastCheck,
) -> Result<(), Error> {
    under_lock(env, keys, |held, mut index| {
        let Some(current) = index.find(name.as_str()).filter(|e| e.version == version).cloned() else {
            return Ok(());
        };
        index.upsert(IndexEntry { verification: Some(last), ..current });
        held.confirm(env.store, keys)?;
        index.save(env.store, keys)
    })
}

/// The check of credentials a create or patch is about to store: nothing is read or written.
pub fn check_credentials(who: &Principal, checker: &Checker, config: &DockerConfig) -> Result<Checked, Error> {
    who.require(Need::WriteSecrets)?;
    Ok(Checked::of(checker.check_all(config, None)))
}

/// What create and patch keep when they verified first; the refusal when a registry said no.
pub fn accepted(checked: Checked, now_ms: u64) -> Result<LastCheck, Error> {
    if checked.ok {
        Ok(LastCheck { at: now_ms, ok: true })
    } else {
        Err(Error::CredentialsRejected { registries: checked.registries })
    }
}
