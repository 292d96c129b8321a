//! wasi:keyvalue@0.2.0-draft2 and fermyon:spin/key-value@2.0.0 for guests, as Spin's
//! factor-key-value implements them, plus the crash-test hook: with trap injection on, the
//! instance traps right after its Nth store call has taken effect.

use crate::bindings::fermyon::spin::key_value as legacy;
use crate::bindings::wasi::keyvalue::{atomics, batch, store};
use crate::kv::{Backend, Cas, KvError, Store, SwapError};
use crate::state::InstanceState;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use wasmtime::component::Resource;

pub struct CasEntry {
    store: Store,
    cas: Cas,
}

pub struct LegacyStore(Store);

/// What one instance may reach, and its trap-injection counter.
pub struct KvState {
    pub allowed: Arc<HashSet<String>>,
    pub backends: Arc<BTreeMap<String, Backend>>,
    pub trap_after: Option<u32>,
    pub calls: u32,
}

type Wr<T> = wasmtime::Result<T>;

fn wasi_err(e: KvError) -> store::Error {
    match e {
        KvError::AccessDenied => store::Error::AccessDenied,
        KvError::NoSuchStore => store::Error::NoSuchStore,
        KvError::Other(m) => store::Error::Other(m),
    }
}

fn legacy_err(e: KvError) -> legacy::Error {
    match e {
        KvError::AccessDenied => legacy::Error::AccessDenied,
        KvError::NoSuchStore => legacy::Error::NoSuchStore,
        KvError::Other(m) => legacy::Error::Other(m),
    }
}

impl KvState {
    fn open(&self, label: &str) -> Result<Store, KvError> {
        if !self.allowed.contains(label) {
            return Err(KvError::AccessDenied);
        }
        let backend = self.backends.get(label).ok_or(KvError::NoSuchStore)?;
        Ok(Store { label: label.to_string(), backend: backend.clone() })
    }

    /// Called once a store call has completed; its effect stays, the guest never sees its result.
    fn call_done(&mut self) -> Wr<()> {
        self.calls += 1;
        match self.trap_after {
            Some(n) if n == self.calls => {
                Err(wasmtime::format_err!("trap injected after key-value call {n} (spin-test-trap-after-store-calls)"))
            }
            _ => Ok(()),
        }
    }
}

impl InstanceState {
    fn bucket(&self, r: &Resource<Store>) -> Wr<Store> {
        Ok(self.table.get(r)?.clone())
    }

    fn done<T>(&mut self, value: T) -> Wr<T> {
        self.kv.call_done()?;
        Ok(value)
    }
}

impl store::Host for InstanceState {
    async fn open(&mut self, identifier: String) -> Wr<Result<Resource<Store>, store::Error>> {
        match self.kv.open(&identifier) {
            Ok(s) => Ok(Ok(self.table.push(s)?)),
            Err(e) => Ok(Err(wasi_err(e))),
        }
    }
}

impl store::HostBucket for InstanceState {
    async fn get(&mut self, b: Resource<Store>, key: String) -> Wr<Result<Option<Vec<u8>>, store::Error>> {
        let r = self.bucket(&b)?.get(&key).await.map_err(wasi_err);
        self.done(r)
    }

    async fn set(&mut self, b: Resource<Store>, key: String, value: Vec<u8>) -> Wr<Result<(), store::Error>> {
        let r = self.bucket(&b)?.set(&key, &value).await.map_err(wasi_err);
        self.done(r)
    }

    async fn delete(&mut self, b: Resource<Store>, key: String) -> Wr<Result<(), store::Error>> {
        let r = self.bucket(&b)?.delete(&key).await.map_err(wasi_err);
        self.done(r)
    }

    async fn exists(&mut self, b: Resource<Store>, key: String) -> Wr<Result<bool, store::Error>> {
        let r = self.bucket(&b)?.exists(&key).await.map_err(wasi_err);
        self.done(r)
    }

    async fn list_keys(
        &mut self,
        b: Resource<Store>,
        cursor: Option<String>,
    ) -> Wr<Result<store::KeyResponse, store::Error>> {
        let r = match cursor {
            Some(_) => Err(store::Error::Other("list_keys: cursor not supported".to_owned())),
            None => self
                .bucket(&b)?
                .get_keys()
                .await
                .map(|keys| store::KeyResponse { keys, cursor: None })
                .map_err(wasi_err),
        };
        self.done(r)
    }

    async fn drop(&mut self, b: Resource<Store>) -> Wr<()> {
        self.table.delete(b)?;
        Ok(())
    }
}

impl batch::Host for InstanceState {
    async fn get_many(
        &mut self,
        b: Resource<Store>,
        keys: Vec<String>,
    ) -> Wr<Result<Vec<(String, Option<Vec<u8>>)>, store::Error>> {
        let s = self.bucket(&b)?;
        let r = if keys.is_empty() { Ok(vec![]) } else { s.get_many(keys).await.map_err(wasi_err) };
        self.done(r)
    }

    async fn set_many(
        &mut self,
        b: Resource<Store>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Wr<Result<(), store::Error>> {
        let s = self.bucket(&b)?;
        let r = if key_values.is_empty() { Ok(()) } else { s.set_many(key_values).await.map_err(wasi_err) };
        self.done(r)
    }

    async fn delete_many(&mut self, b: Resource<Store>, keys: Vec<String>) -> Wr<Result<(), store::Error>> {
        let s = self.bucket(&b)?;
        let r = if keys.is_empty() { Ok(()) } else { s.delete_many(keys).await.map_err(wasi_err) };
        self.done(r)
    }
}

impl atomics::HostCas for InstanceState {
    async fn new(&mut self, b: Resource<Store>, key: String) -> Wr<Result<Resource<CasEntry>, store::Error>> {
        let store = self.bucket(&b)?;
        match store.new_cas(&key).await {
            Ok(cas) => Ok(Ok(self.table.push(CasEntry { store, cas })?)),
            Err(e) => Ok(Err(wasi_err(e))),
        }
    }

    async fn current(&mut self, c: Resource<CasEntry>) -> Wr<Result<Option<Vec<u8>>, store::Error>> {
        let entry = self.table.get_mut(&c)?;
        let store = entry.store.clone();
        let r = store.cas_current(&mut entry.cas).await.map_err(wasi_err);
        self.done(r)
    }

    async fn drop(&mut self, c: Resource<CasEntry>) -> Wr<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

impl atomics::Host for InstanceState {
    async fn increment(&mut self, b: Resource<Store>, key: String, delta: i64) -> Wr<Result<i64, store::Error>> {
        let r = self.bucket(&b)?.increment(&key, delta).await.map_err(wasi_err);
        self.done(r)
    }

    /// As Spin: on cas-failed the guest gets a fresh cas for the same key whose `current` has
    /// already been read.
    async fn swap(&mut self, c: Resource<CasEntry>, value: Vec<u8>) -> Wr<Result<(), atomics::CasError>> {
        let entry = self.table.delete(c)?;
        let r = match entry.store.cas_swap(&entry.cas, value).await {
            Ok(()) => Ok(()),
            Err(SwapError::Other(m)) => Err(atomics::CasError::StoreError(store::Error::Other(m))),
            Err(SwapError::CasFailed(_)) => {
                let store = entry.store.clone();
                match store.new_cas(entry.cas.key()).await {
                    Err(e) => Err(atomics::CasError::StoreError(wasi_err(e))),
                    Ok(mut cas) => match store.cas_current(&mut cas).await {
                        Err(e) => Err(atomics::CasError::StoreError(wasi_err(e))),
                        Ok(_) => {
                            let fresh = self.table.push(CasEntry { store, cas })?;
                            Err(atomics::CasError::CasFailed(fresh))
                        }
                    },
                }
            }
        };
        self.done(r)
    }
}

impl legacy::Host for InstanceState {}

impl legacy::HostStore for InstanceState {
    async fn open(&mut self, label: String) -> Wr<Result<Resource<LegacyStore>, legacy::Error>> {
        match self.kv.open(&label) {
            Ok(s) => Ok(Ok(self.table.push(LegacyStore(s))?)),
            Err(e) => Ok(Err(legacy_err(e))),
        }
    }

    async fn get(&mut self, s: Resource<LegacyStore>, key: String) -> Wr<Result<Option<Vec<u8>>, legacy::Error>> {
        let store = self.table.get(&s)?.0.clone();
        let r = store.get(&key).await.map_err(legacy_err);
        self.done(r)
    }

    async fn set(&mut self, s: Resource<LegacyStore>, key: String, value: Vec<u8>) -> Wr<Result<(), legacy::Error>> {
        let store = self.table.get(&s)?.0.clone();
        let r = store.set(&key, &value).await.map_err(legacy_err);
        self.done(r)
    }

    async fn delete(&mut self, s: Resource<LegacyStore>, key: String) -> Wr<Result<(), legacy::Error>> {
        let store = self.table.get(&s)?.0.clone();
        let r = store.delete(&key).await.map_err(legacy_err);
        self.done(r)
    }

    async fn exists(&mut self, s: Resource<LegacyStore>, key: String) -> Wr<Result<bool, legacy::Error>> {
        let store = self.table.get(&s)?.0.clone();
        let r = store.exists(&key).await.map_err(legacy_err);
        self.done(r)
    }

    async fn get_keys(&mut self, s: Resource<LegacyStore>) -> Wr<Result<Vec<String>, legacy::Error>> {
        let store = self.table.get(&s)?.0.clone();
        let r = store.get_keys().await.map_err(legacy_err);
        self.done(r)
    }

    async fn drop(&mut self, s: Resource<LegacyStore>) -> Wr<()> {
        self.table.delete(s)?;
        Ok(())
    }
}
