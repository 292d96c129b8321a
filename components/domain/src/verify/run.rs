//! The verification of a stored secret, and the check of credentials not yet stored (create and
//! patch with `?verify=true`, through the `verify` component).
//!
//! Store calls of `POST …/{name}/verification` (P the tenant prefix, v the secret's version):
//!
//! | step | calls | why it is safe |
//! |------|-------|----------------|
//! | read | the tenant's view (`get P:seq`, `get P:v:<S>`); `get P:r:<record>` (the view and the record again if a modify raced it, `crate::reread`); for a minting kind `get P:mint:<record>` and, on a miss, the mint, `set P:mint:<record>` and `get P:r:<record>` (see `mint::cache`) | a read of the log: linearizable |
//! | claim | `increment P:check:<v>:<w>`, `increment P:check:<v>:<w+1>`; leftovers: `exists`/`delete` | see [`super::inflight`] |
//! | check | network only; nothing of the log is held (a write's slot would stall the tenant: a check may take longer than a lease) | |
//! | release | `delete P:check:<v>:<w>`, `delete P:check:<v>:<w+1>` | |
//! | record | a write through the log (`Op::Check`), applied only if the secret still has version v | as every write, see `log` |
//!
//! The outcome is kept in the secret's metadata (`verification`), so get and list show it at no
//! extra read.
//!
//! Failure model (a node dies between any two calls): before the claim, nothing was written. After
//! it, the claim's keys stay until they expire (at most two leases) and the next check of that
//! version removes them; the secret is untouched. During the record, the log's own recovery
//! applies (the record writes no `P:r:` key). A modify or delete that applies while the check runs
//! wins: the outcome, which is about credentials no longer stored, is dropped (`version` changed),
//! never written over the new ones.

use super::outcome::{Checked, LastCheck, Report};
use super::{inflight, Checker, Repository};
use crate::clock::{rfc3339, Clock};
use crate::crypto::Keyring;
use crate::dockerconfig::DockerConfig;
use crate::error::Error;
use crate::identity::{Need, Principal};
use crate::index::IndexEntry;
use crate::log::op::Op;
use crate::mint::{self, Source};
use crate::name::SecretName;
use crate::provider::Identity;
use crate::reread;
use crate::secrets::{commit, current, managed_guard, open_entry, Env};
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
    let (entry, config) = read_current(env, who, keyring, source, &name)?;
    let claim = inflight::claim(env.store, &keys, entry.version, env.clock.now_ms(), checker.policy.lease_ms())?;
    let registries = checker.check_all(&config, repository);
    drop(config);
    claim.release(env.store)?;
    let checked = Checked::of(registries);
    let last = LastCheck { at: env.clock.now_ms(), ok: checked.ok };
    let check = Op::Check { name: name.as_str().to_owned(), version: entry.version, check: last };
    match commit(env, &who.tenant, check, None, |_| Ok(())) {
        Ok(_) | Err(Error::SecretNotFound) => {} // changed meanwhile: the outcome is not about it
        Err(other) => return Err(other),
    }
    Ok(Report {
        name: name.as_str().to_owned(),
        checked_at: rfc3339(last.at),
        ok: checked.ok,
        registries: checked.registries,
    })
}

/// The secret's metadata and its decrypted credentials (minted, for a minting kind), as of one
/// state of the log.
fn read_current<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    who: &Principal,
    keyring: &Keyring,
    source: &Source,
    name: &SecretName,
) -> Result<(IndexEntry, DockerConfig), Error> {
    // A record is deleted only once a newer view stopped naming it: read the view again then.
    reread::settled(env.clock, || {
        let entry = current(env, &who.tenant)?.view.find(name.as_str())?.ok_or(Error::SecretNotFound)?;
        managed_guard(who, &entry, Error::Forbidden)?;
        let Some(plain) = open_entry(env.store, keyring, &who.tenant, &entry)? else { return Ok(None) };
        if entry.kind.is_static() {
            return Ok(Some((entry, DockerConfig::from_stored(&plain)?)));
        }
        let identity = Identity::from_document(&plain)?;
        let now_ms = env.clock.now_ms();
        let minted = mint::current(env.store, keyring, &who.tenant, &entry, &identity, source, now_ms);
        let Some(minted) = reread::gone_is_a_lost_round(minted)? else { return Ok(None) };
        Ok(Some((entry, minted.to_docker_config()?)))
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
