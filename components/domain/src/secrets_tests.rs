//! The operations over the in-memory store: the contract's rules, races between threads, and
//! crashes (a panic right after the Nth store call, as a trapped component leaves things).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use base64::Engine;

use super::*;
use crate::clock::SystemClock;
use crate::identity::{Scope, Scopes};
use crate::log::WritePolicy;
use crate::mint::{MintComponent, Minted, Source};
use crate::paging::ListQuery;
use crate::quota;
use crate::reencrypt::reencrypt;
use crate::store::{Forward, Forwarding, Key, MemoryStore, StoreResult};

fn keyring(spec: &[(&str, u8)]) -> Keyring {
    let entries: Vec<String> = spec
        .iter()
        .map(|(id, fill)| format!("{id}:{}", base64::engine::general_purpose::STANDARD.encode([*fill; 32])))
        .collect();
    Keyring::parse(&entries.join(",")).unwrap()
}

fn who(tenant: &str, scopes: &[Scope]) -> Principal {
    let scopes = scopes.iter().fold(Scopes::empty(), |s, scope| s.with(*scope));
    Principal { tenant: TenantId::parse(tenant).unwrap(), scopes, subject: None, client: None }
}

fn admin(tenant: &str) -> Principal {
    who(tenant, &[Scope::Admin, Scope::Viewer, Scope::Puller])
}

/// These secrets are static: the export never mints, so a mint would be a fault.
struct NoMinting;

impl MintComponent for NoMinting {
    fn mint(&self, _: &str, _: &str, _: &str) -> Result<Minted, Error> {
        Err(Internal::Platform("a static secret was minted").into())
    }
}

fn export<S: KeyValue, C: Clock>(
    env: &Env<S, C>,
    who: &Principal,
    keyring: &Keyring,
    name: &str,
) -> Result<crate::export::KubernetesSecret, Error> {
    let source = Source::Component { component: &NoMinting, authorization: "", request_id: "" };
    crate::export::export(env, who, keyring, name, &source)
}

fn request(name: &str, password: &str) -> SecretRequest {
    let body = serde_json::json!({"name": name, "registry": "ghcr.io", "username": "bot", "password": password});
    SecretRequest::from_json(body, true).unwrap()
}

fn env<S: KeyValue>(store: &S, lease_ms: u64) -> Env<'_, S, SystemClock> {
    Env { store, clock: &SystemClock, policy: WritePolicy::with_lease(Duration::from_millis(lease_ms)) }
}

fn names<S: KeyValue>(store: &S, who: &Principal) -> Vec<String> {
    list(&env(store, 10_000), who, &ListQuery::default()).unwrap().resources.into_iter().map(|m| m.name).collect()
}

fn used<S: KeyValue>(store: &S, who: &Principal) -> usize {
    quota::resource_quota(&env(store, 10_000), who, false).unwrap().usage.unwrap().count as usize
}

/// What must hold whenever nothing is in flight: every record key of the tenant is referenced by
/// the current view and every referenced record exists; no slot registers are left; at most the
/// window of views is kept.
fn assert_consistent(store: &MemoryStore, tenant: &str) {
    let keys = TenantKeys::new(&TenantId::parse(tenant).unwrap());
    let view = crate::log::read(&env(store, 10_000), &keys).unwrap().view;
    let under = |part: &str| {
        let prefix = format!("{}:{part}:", keys.prefix());
        store.dump().keys().filter(|k| k.starts_with(&prefix)).map(|k| k[prefix.len()..].to_owned()).collect::<Vec<_>>()
    };
    let mut stored: Vec<u64> = under("r").iter().map(|v| v.parse().unwrap()).collect();
    stored.sort();
    let mut referenced: Vec<u64> = view.records().unwrap();
    referenced.sort();
    assert_eq!(stored, referenced, "records in the store vs. records the view references");
    assert_eq!(under("s"), Vec::<String>::new(), "slot registers left behind");
    // The log keeps the last `W + 1` views once quiet (`log`, "Layout").
    assert!(under("v").len() as u64 <= crate::store::WINDOW + 1, "views kept: {:?}", under("v"));
}

#[test]
fn create_get_list_export_round_trip() {
    let store = MemoryStore::new();
    let ring = keyring(&[("k1", 1)]);
    let written = create(&env(&store, 10_000), &admin("acme"), &ring, request("app", "pw-1")).unwrap();
    let meta = get(&env(&store, 10_000), &admin("acme"), "app").unwrap();
    assert_eq!(
        (meta.version, meta.registries.clone(), meta.managed),
        (written.version, vec!["ghcr.io".to_owned()], false)
    );
    assert_eq!(names(&store, &admin("acme")), ["app"]);
    let manifest = export(&env(&store, 10_000), &admin("acme"), &ring, "app").unwrap();
    let config = base64::engine::general_purpose::STANDARD.decode(manifest.data.dockerconfigjson).unwrap();
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(config["auths"]["ghcr.io"]["password"], "pw-1");
    assert_eq!(config["auths"]["ghcr.io"]["auth"], base64::engine::general_purpose::STANDARD.encode("bot:pw-1"));
    assert_consistent(&store, "acme");
}

#[test]
fn credentials_are_stored_only_as_ciphertext() {
    let store = MemoryStore::new();
    create(&env(&store, 10_000), &admin("acme"), &keyring(&[("k1", 1)]), request("app", "very-secret-pw")).unwrap();
    for (key, value) in store.dump() {
        let text = String::from_utf8_lossy(&value);
        assert!(
            !text.contains("very-secret-pw") && !text.contains("Ym90OnZlcnktc2VjcmV0LXB3"),
            "plaintext under {key}"
        );
    }
}

#[test]
fn refusals_against_the_current_view_write_nothing() {
    let store = MemoryStore::new();
    let ring = keyring(&[("k1", 1)]);
    create(&env(&store, 10_000), &admin("acme"), &ring, request("app", "pw")).unwrap();
    let before = store.dump();
    assert_eq!(create(&env(&store, 10_000), &admin("acme"), &ring, request("app", "pw")), Err(Error::SecretNameExists));
    assert_eq!(delete(&env(&store, 10_000), &admin("acme"), "nope", None), Err(Error::SecretNotFound));
    assert_eq!(
        delete(&env(&store, 10_000), &admin("acme"), "app", Some(IfMatch::Versions(vec![999]))),
        Err(Error::PreconditionFailed)
    );
    assert_eq!(
        create(&env(&store, 10_000), &who("acme", &[Scope::Viewer]), &ring, request("x", "pw")),
        Err(Error::Forbidden)
    );
    assert_eq!(store.dump(), before);
}

#[test]
fn tenants_never_see_each_other() {
    let store = MemoryStore::new();
    let ring = keyring(&[("k1", 1)]);
    create(&env(&store, 10_000), &admin("a"), &ring, request("same", "pw-a")).unwrap();
    create(&env(&store, 10_000), &admin("b"), &ring, request("same", "pw-b")).unwrap();
    assert_eq!(get(&env(&store, 10_000), &admin("c"), "same"), Err(Error::SecretNotFound));
    delete(&env(&store, 10_000), &admin("a"), "same", None).unwrap();
    assert_eq!(names(&store, &admin("b")), ["same"]);
}

#[test]
fn a_record_copied_to_another_tenant_does_not_decrypt() {
    let store = MemoryStore::new();
    let ring = keyring(&[("k1", 1)]);
    let a = create(&env(&store, 10_000), &admin("a"), &ring, request("app", "pw-a")).unwrap();
    let b = create(&env(&store, 10_000), &admin("b"), &ring, request("app", "pw-b")).unwrap();
    let keys_a = TenantKeys::new(&TenantId::parse("a").unwrap());
    let keys_b = TenantKeys::new(&TenantId::parse("b").unwrap());
    let stolen = store.get(&keys_a.record(a.version)).unwrap().unwrap();
    store.set(&keys_b.record(b.version), &stolen).unwrap();
    assert!(matches!(
        export(&env(&store, 10_000), &admin("b"), &ring, "app"),
        Err(Error::Internal(Internal::Crypto(_)))
    ));
}

#[test]
fn rotation_keeps_old_secrets_readable_and_modify_reencrypts_under_the_new_key() {
    let store = MemoryStore::new();
    let keys = TenantKeys::new(&TenantId::parse("acme").unwrap());
    let old = keyring(&[("k1", 1)]);
    create(&env(&store, 10_000), &admin("acme"), &old, request("app", "pw")).unwrap();
    let rotated = keyring(&[("k2", 2), ("k1", 1)]);
    assert!(export(&env(&store, 10_000), &admin("acme"), &rotated, "app").is_ok());
    let written = modify(&env(&store, 10_000), &admin("acme"), &rotated, "app", request("app", "pw2"), None).unwrap();
    let record: serde_json::Value =
        serde_json::from_slice(&store.get(&keys.record(written.version)).unwrap().unwrap()).unwrap();
    assert_eq!(record["sealed"]["kid"], "k2");
    assert!(export(&env(&store, 10_000), &admin("acme"), &keyring(&[("k2", 2)]), "app").is_ok(), "k1 no longer needed");
    assert_consistent(&store, "acme");
}

#[test]
fn racing_creates_of_one_name_have_exactly_one_winner() {
    let store = Arc::new(MemoryStore::new());
    let ring = Arc::new(keyring(&[("k1", 1)]));
    let barrier = Arc::new(Barrier::new(16));
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let (store, ring, barrier) = (store.clone(), ring.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                create(&env(&*store, 10_000), &admin("acme"), &ring, request("one", &format!("pw-{i}"))).map(|_| i)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1);
    assert!(results.iter().filter(|r| r.is_err()).all(|r| *r == Err(Error::SecretNameExists)));
    let config = export(&env(&*store, 10_000), &admin("acme"), &ring, "one").unwrap().data.dockerconfigjson;
    let config = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(config).unwrap()).unwrap();
    assert!(config.contains(&format!("pw-{}", winners[0])), "the stored secret is the winner's");
    assert_consistent(&store, "acme");
}

#[test]
fn racing_creates_never_pass_the_quota() {
    let store = Arc::new(MemoryStore::new());
    let ring = Arc::new(keyring(&[("k1", 1)]));
    for i in 0..45 {
        create(&env(&*store, 10_000), &admin("acme"), &ring, request(&format!("pre-{i}"), "pw")).unwrap();
    }
    let barrier = Arc::new(Barrier::new(20));
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let (store, ring, barrier) = (store.clone(), ring.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                create(&env(&*store, 10_000), &admin("acme"), &ring, request(&format!("new-{i}"), "pw"))
            })
        })
        .collect();
    let ok = handles.into_iter().map(|h| h.join().unwrap()).filter(Result::is_ok).count();
    assert_eq!(ok, 5);
    assert_eq!(names(&*store, &admin("acme")).len(), 50);
    assert_eq!(used(&*store, &admin("acme")), 50);
}

/// A store that "traps" (panics) right after its Nth call has taken effect.
struct Trapping<'a> {
    inner: &'a MemoryStore,
    calls: AtomicUsize,
    trap_after: usize,
}

impl Trapping<'_> {
    fn tick(&self) {
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.trap_after {
            panic!("trap injected after store call {}", self.trap_after);
        }
    }
}

impl KeyValue for Trapping<'_> {
    fn get(&self, key: &Key) -> StoreResult<Option<Vec<u8>>> {
        let r = self.inner.get(key);
        self.tick();
        r
    }
    fn set(&self, key: &Key, value: &[u8]) -> StoreResult<()> {
        let r = self.inner.set(key, value);
        self.tick();
        r
    }
    fn delete(&self, key: &Key) -> StoreResult<()> {
        let r = self.inner.delete(key);
        self.tick();
        r
    }
    fn exists(&self, key: &Key) -> StoreResult<bool> {
        let r = self.inner.exists(key);
        self.tick();
        r
    }
    fn increment(&self, key: &Key, delta: i64) -> StoreResult<i64> {
        let r = self.inner.increment(key, delta);
        self.tick();
        r
    }
    fn keys(&self) -> StoreResult<Vec<String>> {
        let r = self.inner.keys();
        self.tick();
        r
    }
}

#[test]
fn a_trap_after_any_store_call_leaves_invariants_that_the_next_write_restores() {
    let ring = keyring(&[("k1", 1)]);
    for operation in ["create", "modify", "delete"] {
        for trap_after in 1..=16 {
            let store: &'static MemoryStore = Box::leak(Box::new(MemoryStore::new()));
            create(&env(store, 50), &admin("acme"), &ring, request("existing", "pw")).unwrap();
            let trapping = Trapping { inner: store, calls: AtomicUsize::new(0), trap_after };
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                let env = env(&trapping, 50);
                match operation {
                    "create" => create(&env, &admin("acme"), &ring, request("new", "pw")).map(|_| ()),
                    "modify" => {
                        modify(&env, &admin("acme"), &ring, "existing", request("existing", "pw2"), None).map(|_| ())
                    }
                    _ => delete(&env, &admin("acme"), "existing", None).map(|_| ()),
                }
            }));
            // The next write of the tenant waits out the dead writer's lease and takes its slot over.
            create(&env(store, 50), &admin("acme"), &ring, request("after", "pw")).unwrap();
            assert_consistent(store, "acme");
            let listed = names(store, &admin("acme"));
            assert_eq!(used(store, &admin("acme")), listed.len(), "{operation} trapped after call {trap_after}");
            assert!(listed.contains(&"after".to_owned()));
            for name in &listed {
                assert!(
                    export(&env(store, 10_000), &admin("acme"), &ring, name).is_ok(),
                    "{name} readable after {operation}/{trap_after}"
                );
            }
            if outcome.is_ok() {
                break; // the operation made fewer calls than trap_after: every position was covered
            }
        }
    }
}

#[test]
fn operators_write_managed_secrets_only_and_admins_tenants_own_only() {
    let store = MemoryStore::new();
    let ring = keyring(&[("k1", 1)]);
    let operator = who("acme", &[Scope::Operator]);
    create(&env(&store, 10_000), &operator, &ring, request("managed", "pw")).unwrap();
    create(&env(&store, 10_000), &admin("acme"), &ring, request("own", "pw")).unwrap();
    assert!(get(&env(&store, 10_000), &admin("acme"), "managed").unwrap().managed);
    assert_eq!(
        modify(&env(&store, 10_000), &admin("acme"), &ring, "managed", request("managed", "x"), None),
        Err(Error::UpdateManagedSecretNotAllowed)
    );
    assert_eq!(
        delete(&env(&store, 10_000), &admin("acme"), "managed", None),
        Err(Error::DeleteManagedSecretNotAllowed)
    );
    assert_eq!(modify(&env(&store, 10_000), &operator, &ring, "own", request("own", "x"), None), Err(Error::Forbidden));
    assert_eq!(delete(&env(&store, 10_000), &operator, "own", None), Err(Error::Forbidden));
    assert!(modify(&env(&store, 10_000), &operator, &ring, "managed", request("managed", "x"), None).is_ok());
    assert!(delete(&env(&store, 10_000), &operator, "managed", None).is_ok());
}

#[test]
fn reencrypt_moves_every_secret_to_the_write_key_so_old_keys_can_go() {
    let store = MemoryStore::new();
    let old = keyring(&[("k1", 1)]);
    for name in ["a", "b", "c"] {
        create(&env(&store, 10_000), &admin("acme"), &old, request(name, "pw")).unwrap();
    }
    let before: Vec<u64> = list(&env(&store, 10_000), &admin("acme"), &ListQuery::default())
        .unwrap()
        .resources
        .iter()
        .map(|m| m.version)
        .collect();
    let rotated = keyring(&[("k2", 2), ("k1", 1)]);
    let operator = who("platform", &[Scope::Operator]);
    assert_eq!(reencrypt(&env(&store, 10_000), &admin("acme"), &rotated, "acme").unwrap_err(), Error::Forbidden);
    let done = reencrypt(&env(&store, 10_000), &operator, &rotated, "acme").unwrap();
    assert_eq!((done.reencrypted, done.secrets, done.key.as_str()), (3, 3, "k2"));
    assert_eq!(reencrypt(&env(&store, 10_000), &operator, &rotated, "acme").unwrap().reencrypted, 0, "idempotent");
    let after: Vec<u64> = list(&env(&store, 10_000), &admin("acme"), &ListQuery::default())
        .unwrap()
        .resources
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(before, after, "versions do not change");
    for name in ["a", "b", "c"] {
        assert!(export(&env(&store, 10_000), &admin("acme"), &keyring(&[("k2", 2)]), name).is_ok());
    }
    assert_consistent(&store, "acme");
}

/// The store calls each operation makes, as the table in `secrets.rs` lists them.
#[test]
fn store_calls_per_operation_are_as_documented() {
    let store = MemoryStore::new();
    let ring = keyring(&[("k1", 1)]);
    // Past the window, so that each write also drops the oldest view, as in steady state.
    for i in 0..=crate::store::WINDOW {
        create(&env(&store, 10_000), &admin("acme"), &ring, request(&format!("warm-{i}"), "pw")).unwrap();
    }
    let calls = |op: &mut dyn FnMut()| {
        let (r0, w0) = store.ops.snapshot();
        op();
        let (r1, w1) = store.ops.snapshot();
        (r1 - r0, w1 - w0)
    };
    let env = env(&store, 10_000);
    assert_eq!(calls(&mut || drop(create(&env, &admin("acme"), &ring, request("app", "pw")).unwrap())), (5, 7));
    let refused = calls(&mut || drop(create(&env, &admin("acme"), &ring, request("app", "pw")).unwrap_err()));
    assert_eq!(refused, (2, 0), "a refused create reads the view and writes nothing");
    let modified =
        calls(&mut || drop(modify(&env, &admin("acme"), &ring, "app", request("app", "pw2"), None).unwrap()));
    assert_eq!(modified, (5, 8));
    // The delete also deletes again what the modify left as garbage, in case its writer died.
    assert_eq!(calls(&mut || drop(delete(&env, &admin("acme"), "app", None).unwrap())), (5, 8));
    assert_eq!(calls(&mut || drop(get(&env, &admin("acme"), "warm-0").unwrap())), (2, 0), "get: two reads");
    assert_eq!(calls(&mut || drop(list(&env, &admin("acme"), &ListQuery::default()).unwrap())), (2, 0), "list");
    assert_eq!(
        calls(&mut || {
            quota::resource_quota(&env, &admin("acme"), false).unwrap();
        }),
        (2, 0),
        "quota"
    );
}

/// A store whose first `times` calls of `increment_or_contended` on a counter whose key ends with
/// `suffix` answer contention, the way Spin's DynamoDB backend does when another writer moved the
/// counter between its read and its conditional write; that other writer, here, creates `winner`
/// (if any) at the first.
struct Contended<'a> {
    inner: &'a MemoryStore,
    suffix: &'a str,
    winner: Option<&'a str>,
    times: std::sync::atomic::AtomicU32,
    first: u32,
}

impl<'a> Contended<'a> {
    fn new(inner: &'a MemoryStore, suffix: &'a str, winner: Option<&'a str>, times: u32) -> Forwarding<Self> {
        Forwarding(Contended { inner, suffix, winner, times: times.into(), first: times })
    }
}

impl Forward for Contended<'_> {
    type Inner = MemoryStore;
    fn inner(&self) -> &MemoryStore {
        self.inner
    }
    fn increment(&self, key: &Key, delta: i64) -> StoreResult<i64> {
        self.increment_or_contended(key, delta)
    }
    fn increment_or_contended(&self, key: &Key, delta: i64) -> StoreResult<i64> {
        if !key.as_str().ends_with(self.suffix) {
            return self.inner.increment(key, delta);
        }
        let Ok(left) = self.times.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)) else {
            return self.inner.increment(key, delta);
        };
        if let Some(winner) = self.winner.filter(|_| left == self.first) {
            create(&env(self.inner, 10_000), &admin("acme"), &keyring(&[("k1", 1)]), request(winner, "pw")).unwrap();
        }
        Err(Internal::Store(crate::store::CONTENDED.into()))
    }
}

/// A create that loses the race for its slot to the create taking the quota's last place checks
/// itself against the state again before trying again, and is refused up front: no slot taken
/// (retrying the counter blindly, it took a slot only to be refused there, and 64 such writers
/// on moto's DynamoDB kept the counter contended for 30 s, until some answered 503).
#[test]
fn a_create_that_loses_the_slot_to_the_quota_s_last_place_is_refused_without_taking_one() {
    let store = MemoryStore::default();
    let ring = keyring(&[("k1", 1)]);
    for i in 0..quota::DEFAULT_LIMIT - 1 {
        create(&env(&store, 10_000), &admin("acme"), &ring, request(&format!("s-{i}"), "pw")).unwrap();
    }
    let contending = Contended::new(&store, ":seq", Some("winner"), 1);
    let retrying = crate::store::Retrying::within(&contending, Duration::from_secs(30));
    let answer = create(&env(&retrying, 10_000), &admin("acme"), &ring, request("loser", "pw"));
    assert!(matches!(answer, Err(Error::QuotaExceeded { .. })), "{answer:?}");
    let keys = TenantKeys::new(&TenantId::parse("acme").unwrap());
    assert_eq!(store.counter(&keys.seq()).unwrap(), Some(u64::from(quota::DEFAULT_LIMIT)), "a slot was taken");
    assert_eq!(used(&store, &admin("acme")), quota::DEFAULT_LIMIT as usize);
    assert!(names(&store, &admin("acme")).contains(&"winner".to_owned()));
}

/// A writer that cannot take a slot for contention (every `increment` of `P:seq` lost to another
/// writer) for the whole wait a writer is allowed to join the log is answered as any writer that
/// could not join in time: 503 `TenantBusy` with a retry hint, nothing written. (It answered 503
/// `StoreUnavailable`, which says the store is down, while it was up and busy.)
#[test]
fn a_create_that_loses_the_slot_for_the_whole_wait_is_answered_tenant_busy_and_nothing_is_written() {
    let store = MemoryStore::default();
    let ring = keyring(&[("k1", 1)]);
    create(&env(&store, 10_000), &admin("acme"), &ring, request("before", "pw")).unwrap();
    let contending = Contended::new(&store, ":seq", None, u32::MAX);
    let answer = create(&env(&contending, 100), &admin("acme"), &ring, request("loser", "pw"));
    assert!(matches!(answer, Err(Error::TenantBusy { retry_after_secs: 1 })), "{answer:?}");
    let keys = TenantKeys::new(&TenantId::parse("acme").unwrap());
    assert_eq!(store.counter(&keys.seq()).unwrap(), Some(1), "no slot was taken");
    assert_eq!(names(&store, &admin("acme")), vec!["before".to_owned()]);
}

/// A writer that holds a slot and takes over a stalled one before it (its taker died right after
/// `increment`) loses the race for the stalled slot's ballot counter (contention, nothing written)
/// after its request's wait to join the log has passed: it watches the other ballot, as it would a
/// higher one, and takes over again after a lease, instead of answering 503 `WriteOutcomeUnknown`
/// for a write the log was about to apply (CI met that on moto's DynamoDB under a queue of 64).
#[test]
fn a_takeover_that_loses_the_ballot_counter_late_in_the_request_waits_for_the_slot_instead_of_giving_up() {
    let store = MemoryStore::default();
    let ring = keyring(&[("k1", 1)]);
    create(&env(&store, 10_000), &admin("acme"), &ring, request("before", "pw")).unwrap();
    let keys = TenantKeys::new(&TenantId::parse("acme").unwrap());
    store.increment(&keys.seq(), 1).unwrap(); // slot 2's taker dies at once
    let contending = Contended::new(&store, ":n", None, 1);
    let late = crate::store::Retrying::within(&contending, Duration::ZERO);
    let written = create(&env(&late, 50), &admin("acme"), &ring, request("after", "pw")).unwrap();
    assert_eq!(written.version, 3, "slot 2 was voided, ours is 3");
    assert_eq!(contending.times.load(Ordering::SeqCst), 0, "the ballot counter was contended once");
    assert_eq!(names(&store, &admin("acme")), vec!["after".to_owned(), "before".to_owned()]);
}

/// The taker of a slot that finds a takeover of it begun (a ballot handed out and promised: it
/// was slow after taking the slot) runs a ballot for its own slot; when that ballot's counter is
/// contended (DynamoDB: nothing written) after its request's wait to join the log has passed, it
/// waits and tries again, as for a higher ballot, and its write applies: not 503
/// `WriteOutcomeUnknown`.
#[test]
fn a_taker_that_loses_its_own_slot_s_ballot_counter_late_in_the_request_tries_again_and_applies() {
    let store = MemoryStore::default();
    let ring = keyring(&[("k1", 1)]);
    create(&env(&store, 10_000), &admin("acme"), &ring, request("before", "pw")).unwrap();
    let keys = TenantKeys::new(&TenantId::parse("acme").unwrap());
    // A takeover of slot 2 has begun: ballot 1 handed out and promised, nothing accepted.
    store.increment(&keys.ballots(2), 1).unwrap();
    store.set(&keys.promise(2, 1), b"p").unwrap();
    let contending = Contended::new(&store, ":n", None, 1);
    let late = crate::store::Retrying::within(&contending, Duration::ZERO);
    let written = create(&env(&late, 50), &admin("acme"), &ring, request("after", "pw")).unwrap();
    assert_eq!(written.version, 2, "the taker's own slot decided its operation");
    assert_eq!(contending.times.load(Ordering::SeqCst), 0, "its ballot counter was contended once");
    assert_eq!(names(&store, &admin("acme")), vec!["after".to_owned(), "before".to_owned()]);
}
