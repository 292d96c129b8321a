//! The storage seam: the small trait the domain needs from a key-value store, and the key layout.
//!
//! The trait offers what every Spin key-value backend really guarantees and the design needs:
//! `get`, `set`, `delete`, `exists` and an atomic `increment`. Not `get_many`: no operation
//! needs it, and Spin's Redis backend sends it as `KEYS k1 k2 …`, which fails for two keys or more. There is deliberately no
//! compare-and-swap (unusable on Spin: an upsert on SQLite after an absent `current()`, and a
//! permanent `cas-failed` on Redis) and no key listing (it returns every key of the store under a
//! process-wide lock). This module is the only place that knows key strings.

use std::collections::BTreeMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::error::Internal;
use crate::name::TenantId;

/// A failure of the store, described by kind only (never a key or a value).
pub type StoreResult<T> = Result<T, Internal>;

pub trait KeyValue {
    fn get(&self, key: &Key) -> StoreResult<Option<Vec<u8>>>;
    fn set(&self, key: &Key, value: &[u8]) -> StoreResult<()>;
    fn delete(&self, key: &Key) -> StoreResult<()>;
    fn exists(&self, key: &Key) -> StoreResult<bool>;
    /// Atomically adds `delta` and returns the new value; an absent key counts as 0.
    /// Counters are touched only through this call: backends encode them differently.
    fn increment(&self, key: &Key, delta: i64) -> StoreResult<i64>;
}

/// A key that satisfies every Spin backend: `[a-z0-9-]` parts joined by `:`, at most 255 bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(String);

impl Key {
    pub const MAX_LEN: usize = 255;

    fn from_parts(parts: &[&str]) -> Key {
        let key = parts.join(":");
        debug_assert!(key.len() <= Key::MAX_LEN);
        debug_assert!(parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')));
        Key(key)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 128 bits of SHA-256 in lower-case hex: fixed length, so no tenant's prefix is a prefix of
/// another's, and any tenant id or name fits the 255-byte key limit.
fn digest_hex(domain: &str, value: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(domain.as_bytes());
    hasher.update([0]);
    hasher.update(value.as_bytes());
    hasher.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The slots of the verified-token cache (`auth:cache:<n>`), shared by all tenants: they hold
/// token digests, tenant ids and scopes, no secret material (see `identity::cache`).
pub fn token_cache_slot(slot: u8) -> Key {
    Key::from_parts(&["auth", "cache", &slot.to_string()])
}

/// All keys of one tenant. Layout (P = `t-<32 hex digits of SHA-256(tenant id)>`):
///
/// | key              | holds                                                        | written by          |
/// |------------------|--------------------------------------------------------------|---------------------|
/// | `P:index`        | the tenant's index: every secret's metadata (JSON)           | lock holder only    |
/// | `P:r:<version>`  | one secret's sealed credentials, keyed by the version (ticket) that wrote it | lock holder only |
/// | `P:limit`        | the operator-set quota limit (decimal text); absent = default | operator (plain set) |
/// | `P:lock:next`    | counter: the tenant lock's next ticket                         | `increment` only    |
/// | `P:lock:serving` | the ticket now allowed to write, and tickets to repair (JSON) | lock holder / breaker |
/// | `P:lock:gone`    | tickets of waiters that gave up, for releases to skip (JSON)   | giving-up waiters   |
/// | `P:mint:<version>` | the registry credential minted for that version of a minting secret, sealed, and its expiry (JSON) | readers that minted |
///
/// Secret names never appear in keys (a 253-byte name would not fit): secrets are found through the
/// index. So a tenant spends 1 key per secret plus at most 5 of its own (`gone` only once a waiter
/// of that tenant has given up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantKeys {
    prefix: String,
}

impl TenantKeys {
    pub fn new(tenant: &TenantId) -> TenantKeys {
        TenantKeys { prefix: format!("t-{}", digest_hex("tenant", tenant.as_str())) }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn index(&self) -> Key {
        Key::from_parts(&[&self.prefix, "index"])
    }

    pub fn record(&self, version: u64) -> Key {
        Key::from_parts(&[&self.prefix, "r", &version.to_string()])
    }

    pub fn limit(&self) -> Key {
        Key::from_parts(&[&self.prefix, "limit"])
    }

    pub fn lock_next(&self) -> Key {
        Key::from_parts(&[&self.prefix, "lock", "next"])
    }

    pub fn lock_serving(&self) -> Key {
        Key::from_parts(&[&self.prefix, "lock", "serving"])
    }

    pub fn lock_gone(&self) -> Key {
        Key::from_parts(&[&self.prefix, "lock", "gone"])
    }

    /// The registry credential minted for version `version` of a minting secret, sealed, with its
    /// expiry (see `mint::cache`). Written by any reader that minted; never by the lock holder.
    pub fn mint(&self, version: u64) -> Key {
        Key::from_parts(&[&self.prefix, "mint", &version.to_string()])
    }

    /// A claim on checking version `version` in lease window `window` (counter; see `verify::inflight`).
    pub fn check_claim(&self, version: u64, window: u64) -> Key {
        Key::from_parts(&[&self.prefix, "check", &version.to_string(), &window.to_string()])
    }
}

/// An in-memory store with the same guarantees as the Spin backends, for native tests.
#[derive(Default)]
pub struct MemoryStore {
    data: Mutex<BTreeMap<String, Vec<u8>>>,
    counters: Mutex<BTreeMap<String, i64>>,
    pub ops: OpCounter,
}

/// Counts reads and writes, so that tests and benchmarks can state what an operation costs.
#[derive(Default)]
pub struct OpCounter {
    pub reads: std::sync::atomic::AtomicU64,
    pub writes: std::sync::atomic::AtomicU64,
}

impl OpCounter {
    fn read(&self, n: u64) {
        self.reads.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
    fn write(&self) {
        self.writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    pub fn snapshot(&self) -> (u64, u64) {
        (self.reads.load(std::sync::atomic::Ordering::Relaxed), self.writes.load(std::sync::atomic::Ordering::Relaxed))
    }
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Every key and value, for "nothing changed" assertions.
    pub fn dump(&self) -> BTreeMap<String, Vec<u8>> {
        let mut all = self.data.lock().unwrap().clone();
        for (k, v) in self.counters.lock().unwrap().iter() {
            all.insert(k.clone(), v.to_le_bytes().to_vec());
        }
        all
    }
}

impl KeyValue for MemoryStore {
    fn get(&self, key: &Key) -> StoreResult<Option<Vec<u8>>> {
        self.ops.read(1);
        Ok(self.data.lock().unwrap().get(key.as_str()).cloned())
    }

    fn set(&self, key: &Key, value: &[u8]) -> StoreResult<()> {
        self.ops.write();
        self.data.lock().unwrap().insert(key.0.clone(), value.to_vec());
        Ok(())
    }

    fn delete(&self, key: &Key) -> StoreResult<()> {
        self.ops.write();
        self.data.lock().unwrap().remove(key.as_str());
        self.counters.lock().unwrap().remove(key.as_str());
        Ok(())
    }

    fn exists(&self, key: &Key) -> StoreResult<bool> {
        self.ops.read(1);
        Ok(self.data.lock().unwrap().contains_key(key.as_str())
            || self.counters.lock().unwrap().contains_key(key.as_str()))
    }

    fn increment(&self, key: &Key, delta: i64) -> StoreResult<i64> {
        self.ops.write();
        let mut counters = self.counters.lock().unwrap();
        let value = counters.entry(key.0.clone()).or_insert(0);
        *value += delta;
        Ok(*value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    #[test]
    fn tenant_prefixes_never_overlap_and_keys_stay_short() {
        let long = "a".repeat(128);
        let ids = ["a", "ab", "a.b", "A", "tenant-1", "tenant-10", long.as_str()];
        let prefixes: Vec<String> =
            ids.iter().map(|id| format!("{}:", TenantKeys::new(&tenant(id)).prefix())).collect();
        for (i, a) in prefixes.iter().enumerate() {
            for (j, b) in prefixes.iter().enumerate() {
                if i != j {
                    assert!(!b.starts_with(a.as_str()), "{a} is a prefix of {b}");
                }
            }
        }
        let keys = TenantKeys::new(&tenant(&long));
        for key in
            [keys.index(), keys.record(u64::MAX), keys.limit(), keys.lock_next(), keys.lock_serving(), keys.lock_gone()]
        {
            assert!(key.as_str().len() <= Key::MAX_LEN);
            assert!(key.as_str().split(':').all(|part| !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')));
        }
    }

    #[test]
    fn tenant_ids_differing_only_in_case_get_different_prefixes() {
        assert_ne!(TenantKeys::new(&tenant("Acme")).prefix(), TenantKeys::new(&tenant("acme")).prefix());
    }

    #[test]
    fn memory_store_counts_reads_and_writes() {
        let store = MemoryStore::new();
        let key = TenantKeys::new(&tenant("a")).index();
        store.set(&key, b"x").unwrap();
        store.get(&key).unwrap();
        assert_eq!(store.increment(&TenantKeys::new(&tenant("a")).lock_next(), 2).unwrap(), 2);
        assert_eq!(store.ops.snapshot(), (1, 2));
    }
}
