//! The retry alone (a clock that records its pauses), then the readers under a writer that never
//! stops: export and the pull-time lookup answer some version's credentials or 503 with
//! `Retry-After`, never a 500.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;

use super::*;
use crate::clock::SystemClock;
use crate::crypto::Keyring;
use crate::dockerconfig::SecretRequest;
use crate::identity::{Principal, Scope, Scopes};
use crate::log::WritePolicy;
use crate::name::TenantId;
use crate::resolve::{ImageRef, Selector};
use crate::secrets::{self, Env};
use crate::store::{Forward, Forwarding, Key, KeyValue, MemoryStore, StoreResult};

/// A clock that records the pauses asked of it.
#[derive(Default)]
struct Pauses(RefCell<Vec<u64>>);

impl Clock for Pauses {
    fn now_ms(&self) -> u64 {
        0
    }
    fn monotonic_ms(&self) -> u64 {
        0
    }
    fn sleep(&self, duration: Duration) {
        self.0.borrow_mut().push(duration.as_millis() as u64);
    }
}

#[test]
fn a_read_that_never_settles_is_a_503_with_retry_after_after_rounds_of_growing_pauses() {
    let clock = Pauses::default();
    let rounds = Cell::new(0);
    let answer: Result<(), Error> = settled(&clock, || {
        rounds.set(rounds.get() + 1);
        Ok(None)
    });
    assert_eq!(answer, Err(Error::TenantBusy { retry_after_secs: RETRY_AFTER_SECS }));
    let error = answer.unwrap_err();
    assert_eq!((error.status(), error.retry_after_secs()), (503, Some(RETRY_AFTER_SECS)));
    assert_eq!(rounds.get(), ROUNDS);
    assert_eq!(*clock.0.borrow(), vec![1, 2, 4, 8, 16, 25, 25]);
}

#[test]
fn a_read_that_settles_answers_at_once_and_an_error_ends_it() {
    let clock = Pauses::default();
    let rounds = Cell::new(0);
    let answer = settled(&clock, || {
        rounds.set(rounds.get() + 1);
        Ok((rounds.get() == 3).then_some("read"))
    });
    assert_eq!(answer, Ok("read"));
    assert_eq!(*clock.0.borrow(), vec![1, 2]);
    let clock = Pauses::default();
    let failed: Result<(), Error> = settled(&clock, || Err(Error::SecretNotFound));
    assert_eq!(failed, Err(Error::SecretNotFound));
    assert!(clock.0.borrow().is_empty());
}

/// A reader's way to the shared store. One that dawdles waits, after each view it reads, until
/// the writer has finished two more modifies (or 100 ms have passed): by then the record that view
/// names is deleted, so it loses every round while the writer writes, whatever the scheduling. It
/// counts the records it found gone.
struct Reader<'a> {
    inner: &'a MemoryStore,
    dawdle_behind: Option<&'a AtomicU64>,
    gone: &'a AtomicUsize,
}

impl Forward for Reader<'_> {
    type Inner = MemoryStore;
    fn inner(&self) -> &MemoryStore {
        self.inner
    }
    fn get(&self, key: &Key) -> StoreResult<Option<Vec<u8>>> {
        let value = self.inner.get(key)?;
        if let (true, Some(written)) = (key.as_str().contains(":v:"), self.dawdle_behind) {
            let (from, started) = (written.load(Ordering::SeqCst), std::time::Instant::now());
            while written.load(Ordering::SeqCst) < from + 2 && started.elapsed() < Duration::from_millis(100) {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        if key.as_str().contains(":r:") && value.is_none() {
            self.gone.fetch_add(1, Ordering::Relaxed);
        }
        Ok(value)
    }
}

fn admin() -> Principal {
    let scopes = Scopes::empty().with(Scope::Admin).with(Scope::Viewer).with(Scope::Puller);
    Principal { tenant: TenantId::parse("acme").unwrap(), scopes, subject: None, client: None }
}

fn request(password: &str) -> SecretRequest {
    let body =
        serde_json::json!({"name": "app", "registry": "registry.example.com", "username": "bot", "password": password});
    SecretRequest::from_json(body, true).unwrap()
}

/// What one reader met.
#[derive(Debug, Default)]
struct Tally {
    credentials: usize,
    busy: usize,
    not_found: usize,
}

/// Checks one answer: the credentials of a version the writer wrote (`pw-<n>`, `n` at most
/// `written`, `auth` made of the same pair), or 503 with `Retry-After`, or, once
/// the writer deleted the secret, not found. Anything else (a 500 above all) fails the test.
fn check(what: &str, answer: Result<(String, String, String), Error>, written: u64, deleting: bool, tally: &mut Tally) {
    match answer {
        Ok((username, password, auth)) => {
            let version: u64 = password
                .strip_prefix("pw-")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{what} answered a password no writer wrote"));
            assert!(version <= written, "{what} answered version {version} before it was written ({written})");
            assert_eq!(username, "bot");
            let pair = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
            assert_eq!(auth, pair, "{what} mixed two versions");
            tally.credentials += 1;
        }
        Err(e @ Error::TenantBusy { .. }) => {
            assert_eq!((e.status(), e.retry_after_secs()), (503, Some(RETRY_AFTER_SECS)), "{what}");
            tally.busy += 1;
        }
        Err(Error::SecretNotFound | Error::NoMatchingCredentials) if deleting => tally.not_found += 1,
        Err(other) => panic!("{what} answered {} {}: {other:?}", other.status(), other.code()),
    }
}

#[test]
fn export_and_lookup_under_a_writer_that_never_stops_answer_a_version_or_503_never_500() {
    // The writer modifies for this long, then deletes.
    const WRITING: Duration = Duration::from_millis(1500);
    let store = MemoryStore::new();
    let ring = Keyring::parse(&format!("k1:{}", base64::engine::general_purpose::STANDARD.encode([7u8; 32]))).unwrap();
    let writer_env = Env { store: &store, clock: &SystemClock, policy: WritePolicy::default() };
    secrets::create(&writer_env, &admin(), &ring, request("pw-0")).unwrap();
    let written = AtomicU64::new(0);
    let deleting = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let gone = AtomicUsize::new(0);
    let selector = Selector::Image(ImageRef::parse("registry.example.com/team/app:v1").unwrap());
    let tallies = std::thread::scope(|scope| {
        let readers: Vec<_> = [("export", false), ("export", true), ("lookup", false), ("lookup", true)]
            .into_iter()
            .map(|(what, dawdles)| {
                let (ring, store, written, deleting, done, gone, selector) =
                    (&ring, &store, &written, &deleting, &done, &gone, &selector);
                scope.spawn(move || {
                    let reader = Forwarding(Reader { inner: store, dawdle_behind: dawdles.then_some(written), gone });
                    let env = Env { store: &reader, clock: &SystemClock, policy: WritePolicy::default() };
                    let mut tally = Tally::default();
                    while !done.load(Ordering::SeqCst) {
                        let answer = if what == "export" {
                            crate::export::export(&env, &admin(), ring, "app", &crate::mint::STATIC_ONLY).map(|s| {
                                let config =
                                    base64::engine::general_purpose::STANDARD.decode(s.data.dockerconfigjson).unwrap();
                                let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
                                let auth = &config["auths"]["registry.example.com"];
                                let text = |field: &str| auth[field].as_str().unwrap().to_owned();
                                (text("username"), text("password"), text("auth"))
                            })
                        } else {
                            crate::resolve::resolve(&env, &admin(), ring, selector, &crate::mint::STATIC_ONLY).map(
                                |resolved| {
                                    assert_eq!(resolved.credentials.len(), 1, "one secret, one key");
                                    let c = resolved.credentials.into_iter().next().unwrap();
                                    (c.username, c.password, c.auth)
                                },
                            )
                        };
                        // Loaded after the answer: version n is applied only once modify n-1 has
                        // returned and was counted, and the flag is set before the delete starts.
                        let (written, deleting) = (written.load(Ordering::SeqCst) + 1, deleting.load(Ordering::SeqCst));
                        let label = format!("{what} (dawdling: {dawdles})");
                        check(&label, answer, written, deleting, &mut tally);
                    }
                    (what, dawdles, tally)
                })
            })
            .collect();
        let started = std::time::Instant::now();
        let mut n = 0;
        while started.elapsed() < WRITING {
            n += 1;
            secrets::modify(&writer_env, &admin(), &ring, "app", request(&format!("pw-{n}")), None).unwrap();
            written.store(n, Ordering::SeqCst);
        }
        deleting.store(true, Ordering::SeqCst);
        secrets::delete(&writer_env, &admin(), "app", None).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        done.store(true, Ordering::SeqCst);
        readers.into_iter().map(|r| r.join().unwrap()).collect::<Vec<_>>()
    });
    println!(
        "{} modifies and a delete; records found gone by a reader: {}",
        written.load(Ordering::SeqCst),
        gone.load(Ordering::Relaxed)
    );
    for (what, dawdles, tally) in &tallies {
        println!("{what}, dawdling: {dawdles}: {tally:?}");
    }
    // The test proves something only if readers met records deleted under them, and both kinds of
    // answer were given: a reader that dawdles loses every round, one that does not mostly wins.
    assert!(gone.load(Ordering::Relaxed) > 0, "no reader met a record deleted under it");
    for (what, dawdles, tally) in &tallies {
        if *dawdles {
            assert!(tally.busy > 0, "{what} dawdling never answered 503: {tally:?}");
        } else {
            assert!(tally.credentials > 0, "{what} never answered credentials: {tally:?}");
        }
    }
}
