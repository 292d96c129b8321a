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

use crate::clock::jitter_below;
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
    fn increment(&self, key: &Key, delta: i64) -> StoreResult<i64>;
    /// As `increment`, except that a wrapper that retries contention ([`Retrying`]) answers it at
    /// once ([`CONTENDED`], nothing written) instead: for a caller with something better to do
    /// first than try again (the write log's writer, which checks its operation again).
    fn increment_or_contended(&self, key: &Key, delta: i64) -> StoreResult<i64> {
        self.increment(key, delta)
    }
    /// Every key of the store (all tenants'): a scan of the whole store on every Spin backend, so
    /// only the write log's sweep calls it, and rarely (see `log::sweep`).
    fn keys(&self) -> StoreResult<Vec<String>>;

    /// A counter's value without creating it (`None`: absent). Backends encode counters
    /// differently: Spin's SQLite (and the stores built on its generic increment) as 8 bytes
    /// little-endian, Redis as decimal text. No counter of ours comes near the values where the
    /// two could be confused (an 8-byte little-endian value made only of ASCII digits is > 3e18).
    fn counter(&self, key: &Key) -> StoreResult<Option<u64>> {
        let Some(bytes) = self.get(key)? else { return Ok(None) };
        let decimal = !bytes.is_empty() && bytes.iter().all(u8::is_ascii_digit);
        let value = if decimal {
            std::str::from_utf8(&bytes).ok().and_then(|s| s.parse::<u64>().ok())
        } else {
            <[u8; 8]>::try_from(bytes.as_slice()).ok().map(i64::from_le_bytes).and_then(|v| u64::try_from(v).ok())
        };
        value.map(Some).ok_or_else(|| Internal::Store("a counter holds a value that is not a counter".into()))
    }
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

/// An issuer's signing keys as last fetched by discovery (`auth:keys:<32 hex of SHA-256(issuer)>`),
/// shared by every node and component: public keys and their freshness, no secret material (see
/// `identity::discovery`).
pub fn issuer_key_set(issuer: &str) -> Key {
    Key::from_parts(&["auth", "keys", &digest_hex("issuer", issuer)])
}

/// The counter that lets one request per 30-second `window` fetch an issuer's keys
/// (`auth:keys:<digest>:<window>`; `increment` only). Each is deleted by the next window's fetcher.
pub fn issuer_key_fetch_claim(issuer: &str, window: u64) -> Key {
    Key::from_parts(&["auth", "keys", &digest_hex("issuer", issuer), &window.to_string()])
}

/// A console session (`auth:session:<32 hex of SHA-256(session id)>`): the principal the
/// provider's access token was verified to, and the provider's tokens sealed with the keyring (see
/// `identity::session`). The session id itself (the cookie's value) is never stored, so a copy of
/// the store yields no cookie.
pub fn console_session(session_id: &str) -> Key {
    Key::from_parts(&["auth", "session", &digest_hex("session", session_id)])
}

/// A console session's sign-out mark (`auth:session:<digest>:out`): set by sign-out before the
/// record is deleted, and checked by every read of the record, so that a refresh writing the record
/// back late cannot undo a sign-out (`identity::session::read`). Its value is the session's end,
/// after which the collection removes it (`identity::session::collect`).
pub fn console_signed_out(session_id: &str) -> Key {
    Key::from_parts(&["auth", "session", &digest_hex("session", session_id), "out"])
}

/// The counter of a console session's refresh lease for `window` (`auth:session:<digest>:refresh:<window>`;
/// `increment` only, see `crate::lease`): at most one refresh of a session at a time, whatever the
/// number of tabs and nodes (`signin`). Deleted by the refresher when done, or, left by one that
/// died, by the collection of ended sessions (`identity::session::collect`).
pub fn console_refresh_claim(session_id: &str, window: u64) -> Key {
    Key::from_parts(&["auth", "session", &digest_hex("session", session_id), "refresh", &window.to_string()])
}

/// The counter that lets one sign-in per `window` (of `identity::session::COLLECTION_WINDOW_SECS`)
/// collect the keys of ended sessions (`auth:session-collect:<window>`; `increment` only). Each is
/// deleted by a later window's collection, which lists it.
pub fn console_collection_claim(window: u64) -> Key {
    Key::from_parts(&["auth", "session-collect", &window.to_string()])
}

/// One of the console's session keys, as listed by [`KeyValue::keys`] (`digest`: the session's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleKey {
    /// [`console_session`].
    Session { digest: String },
    /// [`console_signed_out`].
    SignedOut { digest: String },
    /// [`console_refresh_claim`].
    RefreshClaim { digest: String, window: u64 },
    /// [`console_collection_claim`].
    CollectionClaim { window: u64 },
}

/// Reads back a listed key of the console's sessions (`None`: not one), with the key itself to
/// read or delete it by.
pub fn console_key(listed: &str) -> Option<(ConsoleKey, Key)> {
    let parts: Vec<&str> = listed.split(':').collect();
    let digest = |d: &str| {
        (d.len() == 32 && d.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then(|| d.to_owned())
    };
    let number = |n: &str| n.parse::<u64>().ok().filter(|v| v.to_string() == n);
    let family = match parts.as_slice() {
        ["auth", "session", d] => ConsoleKey::Session { digest: digest(d)? },
        ["auth", "session", d, "out"] => ConsoleKey::SignedOut { digest: digest(d)? },
        ["auth", "session", d, "refresh", w] => ConsoleKey::RefreshClaim { digest: digest(d)?, window: number(w)? },
        ["auth", "session-collect", w] => ConsoleKey::CollectionClaim { window: number(w)? },
        _ => return None,
    };
    Some((family, Key(listed.to_owned())))
}

/// How many slots hold console logins in progress ([`console_login`]): a fixed share of the
/// store's keys (two per slot used) however many `/auth/login` requests come; small, for Fermyon
/// Cloud's 1,024-key stores. A login whose slot a later login takes before its callback is refused
/// (the user starts again): rare where sign-ins are minutes apart.
pub const LOGIN_SLOTS: u16 = 128;

/// A console login in progress (`auth:login:<slot>`): the `state` digest, and the `nonce` and PKCE
/// verifier sealed, until its callback, or until a later login takes the slot (see `signin`).
pub fn console_login(slot: u16) -> Key {
    Key::from_parts(&["auth", "login", &slot.to_string()])
}

/// The counter of a login slot (`auth:login:<slot>:n`; `increment` only): each login takes a value,
/// and its callback must take the next one, so a callback is served once (a replay, or a callback
/// that lost its slot to a later login, finds the counter moved on).
pub fn console_login_counter(slot: u16) -> Key {
    Key::from_parts(&["auth", "login", &slot.to_string(), "n"])
}

/// The slot of a login's `state`.
pub fn console_login_slot(state: &str) -> u16 {
    let digest = Sha256::digest(state.as_bytes());
    u16::from_be_bytes([digest[0], digest[1]]) % LOGIN_SLOTS
}

/// An OpenID provider's discovery document as last read for the console's sign-in
/// (`auth:provider:<digest>`): public endpoints and their freshness.
pub fn provider_metadata(issuer: &str) -> Key {
    Key::from_parts(&["auth", "provider", &digest_hex("issuer", issuer)])
}

/// SHA-256 of a value in lower-case hex (128 bits), for values kept only as digests.
pub fn digest_of(domain: &str, value: &str) -> String {
    digest_hex(domain, value)
}

/// All keys of one tenant. Layout (P = `t-<32 hex digits of SHA-256(tenant id)>`; the write
/// protocol that uses them is in [`crate::log`], with its proof):
///
/// | key              | holds                                                          | written by                 |
/// |------------------|----------------------------------------------------------------|----------------------------|
/// | `P:seq`          | counter: the last slot of the tenant's write log handed out     | `increment` only           |
/// | `P:v:<k>`        | the tenant's state after slot `k` (the view); the last [`WINDOW`] are kept | whoever applies slot `k` (same bytes whoever) |
/// | `P:r:<id>`       | one secret's sealed credentials, or the workload-identity trust; `id` names the slot that wrote it | the slot's writer, before it proposes |
/// | `P:s:<k>:0`      | slot `k`'s intent, written by the writer that took the slot     | that writer, once          |
/// | `P:s:<k>:n`      | counter: ballots of writers that take slot `k` over             | `increment` only           |
/// | `P:s:<k>:<b>:p`  | ballot `b`'s promise (phase 1) for slot `k`                     | the holder of ballot `b`, once |
/// | `P:s:<k>:<b>:a`  | ballot `b`'s accepted value (phase 2) for slot `k`              | the holder of ballot `b`, once |
/// | `P:mint:<id>`    | the registry credential minted from record `id` (a minting secret's identity), sealed, with its expiry | readers that minted; deleted after `P:r:<id>` by whoever deletes that record (`mint::cache`) |
///
/// Secret names never appear in keys (a 253-byte name would not fit): secrets are found through
/// the view. Every key but the records (with a minting record's cached credential) and the last views
/// exists only while a write is in flight. Each register is written with one value only, so that a
/// write that takes effect late (or twice) can never revert a later one; [`TenantKeys::parse`] reads
/// a key back for the log's sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantKeys {
    prefix: String,
}

/// How many of the latest views are kept (the production value of the log's `Shape::window`):
/// readers find the state within this many slots of the log's head.
pub const WINDOW: u64 = 16;

impl TenantKeys {
    pub fn new(tenant: &TenantId) -> TenantKeys {
        TenantKeys { prefix: format!("t-{}", digest_hex("tenant", tenant.as_str())) }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn seq(&self) -> Key {
        Key::from_parts(&[&self.prefix, "seq"])
    }

    pub fn view(&self, slot: u64) -> Key {
        Key::from_parts(&[&self.prefix, "v", &slot.to_string()])
    }

    pub fn record(&self, id: u64) -> Key {
        Key::from_parts(&[&self.prefix, "r", &id.to_string()])
    }

    /// Slot `slot`'s intent: the operation of the writer that took the slot, accepted at ballot 0.
    pub fn intent(&self, slot: u64) -> Key {
        Key::from_parts(&[&self.prefix, "s", &slot.to_string(), "0"])
    }

    /// Ballot `ballot`'s promise (phase 1) for slot `slot` (`ballot` ≥ 1).
    pub fn promise(&self, slot: u64, ballot: u64) -> Key {
        Key::from_parts(&[&self.prefix, "s", &slot.to_string(), &ballot.to_string(), "p"])
    }

    /// Ballot `ballot`'s accepted value (phase 2) for slot `slot` (`ballot` ≥ 1).
    pub fn accepted(&self, slot: u64, ballot: u64) -> Key {
        Key::from_parts(&[&self.prefix, "s", &slot.to_string(), &ballot.to_string(), "a"])
    }

    /// The counter that hands out ballots for taking slot `slot` over.
    pub fn ballots(&self, slot: u64) -> Key {
        Key::from_parts(&[&self.prefix, "s", &slot.to_string(), "n"])
    }

    /// The registry credential minted from record `record` (a minting secret's identity), sealed,
    /// with its expiry (see `mint::cache`). Written by readers that minted; deleted right after
    /// the record by whoever deletes the record as garbage (`log`).
    pub fn mint(&self, record: u64) -> Key {
        Key::from_parts(&[&self.prefix, "mint", &record.to_string()])
    }

    /// A claim on checking version `version` in lease window `window` (counter; see `verify::inflight`).
    pub fn check_claim(&self, version: u64, window: u64) -> Key {
        Key::from_parts(&[&self.prefix, "check", &version.to_string(), &window.to_string()])
    }

    /// Reads back one of this tenant's keys, as listed by [`KeyValue::keys`] (`None`: another
    /// tenant's, or not one of ours), with the key itself to delete it by.
    pub fn parse(&self, key: &str) -> Option<(TenantKey, Key)> {
        let family = self.family(key)?;
        Some((family, Key(key.to_owned())))
    }

    fn family(&self, key: &str) -> Option<TenantKey> {
        let rest = key.strip_prefix(self.prefix.as_str())?.strip_prefix(':')?;
        let parts: Vec<&str> = rest.split(':').collect();
        let num = |s: &str| s.parse::<u64>().ok();
        Some(match parts.as_slice() {
            ["seq"] => TenantKey::Seq,
            ["v", k] => TenantKey::View(num(k)?),
            ["r", k] => TenantKey::Record(num(k)?),
            ["mint", k] => TenantKey::Mint(num(k)?),
            ["s", k, _] | ["s", k, _, _] => TenantKey::Register(num(k)?),
            ["check", version, _] => TenantKey::CheckClaim(num(version)?),
            _ => TenantKey::Other,
        })
    }
}

/// One of a tenant's keys, by family and the slot (or version) it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantKey {
    Seq,
    View(u64),
    Record(u64),
    Mint(u64),
    /// Any of slot `k`'s registers (intent, ballot counter, promises, accepted values).
    Register(u64),
    CheckClaim(u64),
    Other,
}

/// A shared reference to a store is a store (so that wrappers such as [`Retrying`] can borrow one).
impl<S: KeyValue + ?Sized> KeyValue for &S {
    fn get(&self, key: &Key) -> StoreResult<Option<Vec<u8>>> {
        (**self).get(key)
    }
    fn set(&self, key: &Key, value: &[u8]) -> StoreResult<()> {
        (**self).set(key, value)
    }
    fn delete(&self, key: &Key) -> StoreResult<()> {
        (**self).delete(key)
    }
    fn exists(&self, key: &Key) -> StoreResult<bool> {
        (**self).exists(key)
    }
    fn increment(&self, key: &Key, delta: i64) -> StoreResult<i64> {
        (**self).increment(key, delta)
    }
    fn increment_or_contended(&self, key: &Key, delta: i64) -> StoreResult<i64> {
        (**self).increment_or_contended(key, delta)
    }
    fn keys(&self) -> StoreResult<Vec<String>> {
        (**self).keys()
    }
}

/// A store that passes calls on to another and changes a few: it names its inner store and
/// overrides only the calls it changes (the test stores that contend, pause, count or play another
/// request between two calls). Wrapped in [`Forwarding`], it is a [`KeyValue`]. Tests only.
#[cfg(test)]
pub(crate) trait Forward {
    type Inner: KeyValue;
    fn inner(&self) -> &Self::Inner;
    fn get(&self, key: &Key) -> StoreResult<Option<Vec<u8>>> {
        self.inner().get(key)
    }
    fn set(&self, key: &Key, value: &[u8]) -> StoreResult<()> {
        self.inner().set(key, value)
    }
    fn delete(&self, key: &Key) -> StoreResult<()> {
        self.inner().delete(key)
    }
    fn exists(&self, key: &Key) -> StoreResult<bool> {
        self.inner().exists(key)
    }
    fn increment(&self, key: &Key, delta: i64) -> StoreResult<i64> {
        self.inner().increment(key, delta)
    }
    /// As [`KeyValue`]'s: through this store's own `increment` (so that a hook on `increment`
    /// sees the write log's counters too). So wrap a plain store, not a [`Retrying`], whose
    /// `increment` retries the contention this call must answer at once.
    fn increment_or_contended(&self, key: &Key, delta: i64) -> StoreResult<i64> {
        self.increment(key, delta)
    }
    fn keys(&self) -> StoreResult<Vec<String>> {
        self.inner().keys()
    }
}

/// A [`Forward`] as a store.
#[cfg(test)]
pub(crate) struct Forwarding<F>(pub F);

#[cfg(test)]
impl<F: Forward> KeyValue for Forwarding<F> {
    fn get(&self, key: &Key) -> StoreResult<Option<Vec<u8>>> {
        self.0.get(key)
    }
    fn set(&self, key: &Key, value: &[u8]) -> StoreResult<()> {
        self.0.set(key, value)
    }
    fn delete(&self, key: &Key) -> StoreResult<()> {
        self.0.delete(key)
    }
    fn exists(&self, key: &Key) -> StoreResult<bool> {
        self.0.exists(key)
    }
    fn increment(&self, key: &Key, delta: i64) -> StoreResult<i64> {
        self.0.increment(key, delta)
    }
    fn increment_or_contended(&self, key: &Key, delta: i64) -> StoreResult<i64> {
        self.0.increment_or_contended(key, delta)
    }
    fn keys(&self) -> StoreResult<Vec<String>> {
        self.0.keys()
    }
}

#[cfg(test)]
impl<F> std::ops::Deref for Forwarding<F> {
    type Target = F;
    fn deref(&self) -> &F {
        &self.0
    }
}

/// Retries a call that failed with a backend error, after short pauses, before giving up; and an
/// `increment` refused because another writer moved the counter first, with jittered backoff until
/// the request's deadline.
///
/// Why a retry is safe, for every call the domain makes: `get` and `exists` read; `set` and
/// `delete` of one key are idempotent; an `increment` that failed after taking effect (a call that
/// timed out, say) hands out one slot or ballot that nobody uses, which the write log treats as a
/// dead writer's: it costs a slot and a lease, never safety. A contended `increment` did not take
/// effect at all: Spin's DynamoDB backend reads the counter and then writes the new value in a
/// `TransactWriteItems` conditioned on the old value (`key-value-aws`, Spin 4.0.2), and a
/// transaction cancelled on its condition wrote nothing. So an increment is retried as often as
/// the deadline allows; each attempt reads the counter afresh.
pub struct Retrying<S> {
    pub inner: S,
    /// When the request gives up on contention (and answers 503); `None`: contention is retried
    /// as any backend error is, twice.
    pub deadline: Option<std::time::Instant>,
}

impl<S> Retrying<S> {
    /// Pauses before the second and third attempt.
    const PAUSES_MS: [u64; 2] = [5, 40];
    /// Contention is retried until `budget` from now.
    pub fn within(inner: S, budget: std::time::Duration) -> Retrying<S> {
        Retrying { inner, deadline: Some(std::time::Instant::now() + budget) }
    }

    fn retry<T>(&self, call: impl Fn(&S) -> StoreResult<T>) -> StoreResult<T> {
        let mut outcome = call(&self.inner);
        let mut backend_errors = 0;
        let mut contention = ContentionBackoff::new();
        loop {
            let pause = match &outcome {
                Err(Internal::Store(kind)) if kind == BACKEND_ERROR => match Self::PAUSES_MS.get(backend_errors) {
                    Some(pause) => {
                        backend_errors += 1;
                        *pause
                    }
                    None => return outcome,
                },
                Err(Internal::Store(kind)) if kind == CONTENDED => {
                    let pause = contention.next_ms(jitter_below);
                    match self.deadline {
                        Some(deadline)
                            if std::time::Instant::now() + std::time::Duration::from_millis(pause) < deadline =>
                        {
                            pause
                        }
                        Some(_) => return outcome,
                        None => match Self::PAUSES_MS.get(backend_errors) {
                            Some(pause) => {
                                backend_errors += 1;
                                *pause
                            }
                            None => return outcome,
                        },
                    }
                }
                _ => return outcome,
            };
            std::thread::sleep(std::time::Duration::from_millis(pause));
            outcome = call(&self.inner);
        }
    }
}

/// Pauses after contention (another writer won the same `increment`): each drawn uniformly below
/// a ceiling ("full jitter") that starts at 8 ms and doubles up to 1 s, so writers that collided
/// once spread out. One `increment` attempt is two round trips and only one contender can win
/// each, so the cap is high enough that 64 contenders thin out to a few attempts per round trip
/// instead of a herd that costs every win dozens of calls (measured on moto: a 64-way quota race
/// took ~19,000 store calls with a 100 ms cap). Used by [`Retrying`] and by the write's own
/// retry of its slot (`secrets::commit`).
pub(crate) struct ContentionBackoff {
    ceiling: u64,
}

impl ContentionBackoff {
    const FIRST_MS: u64 = 8;
    const CAP_MS: u64 = 1000;

    pub(crate) fn new() -> ContentionBackoff {
        ContentionBackoff { ceiling: Self::FIRST_MS }
    }

    /// The next pause, in ms, drawn by `draw` in `[1, ceiling]` (`clock::jitter_below`, or a
    /// clock's own draw: `Clock::jitter_ms`).
    pub(crate) fn next_ms(&mut self, draw: impl FnOnce(u64) -> u64) -> u64 {
        let pause = draw(self.ceiling);
        self.ceiling = (self.ceiling * 2).min(Self::CAP_MS);
        pause
    }
}

/// The kind of a store failure worth retrying (others, such as a missing store or a denied
/// access, are configuration).
pub const BACKEND_ERROR: &str = "backend error";

/// The kind of an `increment` refused because another writer moved the counter between the
/// backend's read and its conditional write (Spin's DynamoDB backend: a `TransactionCanceledException`
/// whose reason is `ConditionalCheckFailed` or `TransactionConflict`). Nothing was written.
pub const CONTENDED: &str = "contended";

impl<S: KeyValue> KeyValue for Retrying<S> {
    fn get(&self, key: &Key) -> StoreResult<Option<Vec<u8>>> {
        self.retry(|s| s.get(key))
    }
    fn set(&self, key: &Key, value: &[u8]) -> StoreResult<()> {
        self.retry(|s| s.set(key, value))
    }
    fn delete(&self, key: &Key) -> StoreResult<()> {
        self.retry(|s| s.delete(key))
    }
    fn exists(&self, key: &Key) -> StoreResult<bool> {
        self.retry(|s| s.exists(key))
    }
    fn increment(&self, key: &Key, delta: i64) -> StoreResult<i64> {
        self.retry(|s| s.increment(key, delta))
    }
    /// Backend errors are retried as by `increment`; contention is answered at once.
    fn increment_or_contended(&self, key: &Key, delta: i64) -> StoreResult<i64> {
        let mut outcome = self.inner.increment_or_contended(key, delta);
        for pause in Self::PAUSES_MS {
            if !matches!(&outcome, Err(Internal::Store(kind)) if kind == BACKEND_ERROR) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(pause));
            outcome = self.inner.increment_or_contended(key, delta);
        }
        outcome
    }
    fn keys(&self) -> StoreResult<Vec<String>> {
        self.retry(|s| s.keys())
    }
}

/// An in-memory store with the same guarantees as the Spin backends, for native tests.
/// Counters are kept as Spin's SQLite keeps them: 8 bytes little-endian, readable with `get`.
#[derive(Default)]
pub struct MemoryStore {
    data: Mutex<BTreeMap<String, Vec<u8>>>,
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
        self.data.lock().unwrap().clone()
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
        Ok(())
    }

    fn exists(&self, key: &Key) -> StoreResult<bool> {
        self.ops.read(1);
        Ok(self.data.lock().unwrap().contains_key(key.as_str()))
    }

    fn increment(&self, key: &Key, delta: i64) -> StoreResult<i64> {
        self.ops.write();
        let mut data = self.data.lock().unwrap();
        let current = match data.get(key.as_str()) {
            None => 0,
            Some(bytes) => {
                i64::from_le_bytes(bytes.as_slice().try_into().map_err(|_| Internal::Store("not a counter".into()))?)
            }
        };
        data.insert(key.0.clone(), (current + delta).to_le_bytes().to_vec());
        Ok(current + delta)
    }

    fn keys(&self) -> StoreResult<Vec<String>> {
        let data = self.data.lock().unwrap();
        self.ops.read(data.len().max(1) as u64);
        Ok(data.keys().cloned().collect())
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
        for key in [
            keys.seq(),
            keys.view(u64::MAX),
            keys.record(u64::MAX),
            keys.intent(u64::MAX),
            keys.promise(u64::MAX, u64::MAX),
            keys.accepted(u64::MAX, u64::MAX),
            keys.ballots(u64::MAX),
            keys.check_claim(u64::MAX, u64::MAX),
        ] {
            assert!(key.as_str().len() <= Key::MAX_LEN);
            assert!(key.as_str().split(':').all(|part| !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')));
        }
    }

    #[test]
    fn console_session_keys_are_read_back_and_nothing_else_is_taken_for_one() {
        let id = "a-session-id";
        let digest = digest_hex("session", id);
        for (key, family) in [
            (console_session(id), ConsoleKey::Session { digest: digest.clone() }),
            (console_signed_out(id), ConsoleKey::SignedOut { digest: digest.clone() }),
            (console_refresh_claim(id, 7), ConsoleKey::RefreshClaim { digest: digest.clone(), window: 7 }),
            (console_collection_claim(9), ConsoleKey::CollectionClaim { window: 9 }),
        ] {
            assert_eq!(console_key(key.as_str()), Some((family, key.clone())));
        }
        for other in [
            "auth:session",
            "auth:session:abc",
            &format!("auth:session:{digest}:other"),
            &format!("auth:session:{digest}:refresh:x"),
            &format!("auth:session:{digest}:refresh:07"),
            "auth:session-collect:",
            "auth:login:1",
            TenantKeys::new(&tenant("a")).seq().as_str(),
        ] {
            assert_eq!(console_key(other), None, "{other}");
        }
    }

    #[test]
    fn tenant_ids_differing_only_in_case_get_different_prefixes() {
        assert_ne!(TenantKeys::new(&tenant("Acme")).prefix(), TenantKeys::new(&tenant("acme")).prefix());
    }

    /// Fails the first `failures` calls with an error of kind `kind`.
    struct Flaky {
        inner: MemoryStore,
        failures: std::sync::atomic::AtomicU32,
        kind: &'static str,
    }

    fn flaky(failures: u32, kind: &'static str) -> Flaky {
        Flaky { inner: MemoryStore::new(), failures: failures.into(), kind }
    }

    impl KeyValue for Flaky {
        fn get(&self, key: &Key) -> StoreResult<Option<Vec<u8>>> {
            self.fail()?;
            self.inner.get(key)
        }
        fn set(&self, key: &Key, value: &[u8]) -> StoreResult<()> {
            self.fail()?;
            self.inner.set(key, value)
        }
        fn delete(&self, key: &Key) -> StoreResult<()> {
            self.fail()?;
            self.inner.delete(key)
        }
        fn exists(&self, key: &Key) -> StoreResult<bool> {
            self.fail()?;
            self.inner.exists(key)
        }
        fn increment(&self, key: &Key, delta: i64) -> StoreResult<i64> {
            self.fail()?;
            self.inner.increment(key, delta)
        }
        fn keys(&self) -> StoreResult<Vec<String>> {
            self.fail()?;
            self.inner.keys()
        }
    }

    impl Flaky {
        fn fail(&self) -> StoreResult<()> {
            use std::sync::atomic::Ordering;
            if self.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
                return Err(Internal::Store(self.kind.into()));
            }
            Ok(())
        }
    }

    #[test]
    fn a_backend_error_is_retried_twice_then_reported() {
        let key = TenantKeys::new(&tenant("a")).seq();
        let store = Retrying { inner: flaky(2, BACKEND_ERROR), deadline: None };
        assert_eq!(store.increment(&key, 1).unwrap(), 1, "two failures, then the third attempt");
        let store = Retrying { inner: flaky(3, BACKEND_ERROR), deadline: None };
        assert_eq!(store.get(&key), Err(Internal::Store(BACKEND_ERROR.into())));
        let store = Retrying::within(flaky(3, BACKEND_ERROR), std::time::Duration::from_secs(60));
        assert_eq!(store.get(&key), Err(Internal::Store(BACKEND_ERROR.into())), "a deadline does not lengthen these");
        let error: crate::Error = Internal::Store(BACKEND_ERROR.into()).into();
        assert_eq!((error.status(), error.code(), error.retry_after_secs()), (503, "StoreUnavailable", Some(1)));
    }

    #[test]
    fn contention_is_retried_until_the_deadline_then_reported() {
        let key = TenantKeys::new(&tenant("a")).seq();
        // 8 writers got there first, one after the other: more than the backend-error retries.
        let store = Retrying::within(flaky(8, CONTENDED), std::time::Duration::from_secs(30));
        assert_eq!(store.increment(&key, 1).unwrap(), 1, "the 9th attempt counts once");
        assert_eq!(store.inner.inner.dump().len(), 1);

        let started = std::time::Instant::now();
        let store = Retrying::within(flaky(u32::MAX, CONTENDED), std::time::Duration::from_millis(300));
        assert_eq!(store.increment(&key, 1), Err(Internal::Store(CONTENDED.into())));
        let took = started.elapsed();
        assert!(took <= std::time::Duration::from_millis(300), "gave up within the deadline: {took:?}");
        assert!(store.inner.failures.load(std::sync::atomic::Ordering::SeqCst) < u32::MAX - 3, "kept trying meanwhile");
        let error: crate::Error = Internal::Store(CONTENDED.into()).into();
        assert_eq!(error.status(), 503, "contention past the deadline is the store's failure to keep up");

        let store = Retrying { inner: flaky(3, CONTENDED), deadline: None };
        assert_eq!(store.increment(&key, 1), Err(Internal::Store(CONTENDED.into())), "no deadline: tried thrice");
    }

    #[test]
    fn backoff_pauses_are_jittered_below_the_ceiling() {
        let pauses: std::collections::BTreeSet<u64> = (0..200).map(|_| jitter_below(1000)).collect();
        assert!(pauses.iter().all(|p| (1..=1000).contains(p)), "{pauses:?}");
        assert!(pauses.len() > 20, "spread out, not one value: {pauses:?}");
    }

    #[test]
    fn memory_store_counts_reads_and_writes() {
        let store = MemoryStore::new();
        let key = TenantKeys::new(&tenant("a")).view(1);
        store.set(&key, b"x").unwrap();
        store.get(&key).unwrap();
        assert_eq!(store.increment(&TenantKeys::new(&tenant("a")).seq(), 2).unwrap(), 2);
        assert_eq!(store.ops.snapshot(), (1, 2));
    }
}
