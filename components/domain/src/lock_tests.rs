//! The lock alone: hand-over, recovery from dead tickets on a fake clock (so the bounds are exact),
//! give-ups, superseded holders, and racing threads on the real clock.

use super::*;
use crate::clock::SystemClock;
use crate::name::TenantId;
use crate::store::MemoryStore;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};

/// Time that passes only when someone sleeps: a waiter's whole wait is its sleeps.
struct FakeClock(AtomicU64);

impl Clock for FakeClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
    fn sleep(&self, d: Duration) {
        self.0.fetch_add(d.as_millis() as u64, Ordering::SeqCst);
    }
}

fn keys() -> TenantKeys {
    TenantKeys::new(&TenantId::parse("acme").unwrap())
}

fn lease_ms(ms: u64) -> LockPolicy {
    LockPolicy::with_lease(Duration::from_millis(ms))
}

fn serving(store: &MemoryStore) -> Serving {
    read_serving(store, &keys()).unwrap()
}

#[test]
fn first_ticket_holds_an_untouched_lock() {
    let store = MemoryStore::new();
    let held = acquire(&store, &SystemClock, &keys(), LockPolicy::default()).unwrap();
    assert_eq!(held.ticket, 1);
    held.release(&store, &keys(), vec![]).unwrap();
    let held = acquire(&store, &SystemClock, &keys(), LockPolicy::default()).unwrap();
    assert_eq!(held.ticket, 2);
}

#[test]
fn a_dead_holder_is_skipped_after_one_lease_and_becomes_a_suspect() {
    let store = MemoryStore::new();
    let clock = FakeClock(AtomicU64::new(1_000));
    let policy = lease_ms(500);
    let dead = acquire(&store, &clock, &keys(), policy).unwrap();
    let before = clock.now_ms();
    let next = acquire(&store, &clock, &keys(), policy).unwrap();
    assert!(next.ticket > dead.ticket);
    assert_eq!(next.suspects, vec![dead.ticket]);
    let waited = clock.now_ms() - before;
    assert!((500..1000).contains(&waited), "a lease to notice, half a lease to settle: waited {waited} ms");
    assert!(dead.confirm(&store, &keys()).is_err(), "the dead holder no longer holds it");
}

#[test]
fn recovery_takes_the_same_time_whatever_the_number_of_dead_tickets() {
    let mut waits = Vec::new();
    for dead_waiters in [0, 10, 100, 1000] {
        let store = MemoryStore::new();
        let clock = FakeClock(AtomicU64::new(0));
        let policy = lease_ms(2_000);
        let dead_holder = acquire(&store, &clock, &keys(), policy).unwrap();
        for _ in 0..dead_waiters {
            take_ticket(&store, &keys()).unwrap(); // a waiter that died right after taking its ticket
        }
        let before = clock.now_ms();
        let live = acquire(&store, &clock, &keys(), policy).unwrap();
        let waited = clock.now_ms() - before;
        assert_eq!(live.suspects, vec![dead_holder.ticket], "only the holder can have written");
        assert!(waited < 4_000, "{dead_waiters} dead waiters: {waited} ms is more than two leases");
        waits.push(waited);
        // The next writer is not slowed by any of them either.
        live.release(&store, &keys(), vec![]).unwrap();
        let before = clock.now_ms();
        acquire(&store, &clock, &keys(), policy).unwrap();
        assert_eq!(clock.now_ms(), before, "the lock passes straight on after recovery");
    }
    // Only the poll interval (at most 25 ms) differs with the queue's length.
    let spread = waits.iter().max().unwrap() - waits.iter().min().unwrap();
    assert!(spread <= 25, "recovery does not depend on the dead: {waits:?}");
}

#[test]
fn a_waiter_that_gives_up_does_not_slow_anyone_behind_it() {
    let store = MemoryStore::new();
    let clock = FakeClock(AtomicU64::new(0));
    // Gives up long before it would declare the holder dead.
    let impatient = LockPolicy { lease: Duration::from_millis(10_000), max_wait: Duration::from_millis(100) };
    let holder = acquire(&store, &clock, &keys(), impatient).unwrap();
    let first = holder.ticket;
    let refused = acquire(&store, &clock, &keys(), impatient).unwrap_err();
    assert_eq!(refused, Error::TenantBusy { retry_after_secs: 10 });
    assert_eq!(read_gone(&store, &keys()).unwrap(), vec![first + 1]);
    holder.release(&store, &keys(), vec![]).unwrap();
    assert_eq!(serving(&store).ticket, first + 2, "the release skipped the ticket that left");
    let before = clock.now_ms();
    let next = acquire(&store, &clock, &keys(), impatient).unwrap();
    assert_eq!((next.ticket, clock.now_ms()), (first + 2, before), "no wait at all");
}

#[test]
fn a_waiter_that_gives_up_as_the_lock_reaches_it_holds_it() {
    let store = MemoryStore::new();
    let policy = lease_ms(10_000);
    // The lock was handed to ticket 2 just as its waiter ran out of time.
    write_serving(&store, &keys(), &Serving { ticket: 2, suspects: vec![] }).unwrap();
    take_ticket(&store, &keys()).unwrap();
    let held = give_up(&store, &keys(), 2, policy).unwrap();
    assert_eq!(held.ticket, 2);
}

#[test]
fn a_holder_declared_dead_while_alive_is_refused_and_its_release_writes_nothing() {
    let store = MemoryStore::new();
    let clock = FakeClock(AtomicU64::new(0));
    let policy = lease_ms(500);
    let stalled = acquire(&store, &clock, &keys(), policy).unwrap();
    let breaker = acquire(&store, &clock, &keys(), policy).unwrap();
    assert_eq!(stalled.confirm(&store, &keys()), Err(Error::TenantBusy { retry_after_secs: 1 }));
    assert!(stalled.superseded());
    stalled.release(&store, &keys(), vec![]).unwrap();
    assert_eq!(serving(&store).ticket, breaker.ticket, "serving did not move back");
    assert!(breaker.confirm(&store, &keys()).is_ok());
}

#[test]
fn a_release_after_losing_the_lock_writes_nothing() {
    let store = MemoryStore::new();
    let clock = FakeClock(AtomicU64::new(0));
    let policy = lease_ms(500);
    let stalled = acquire(&store, &clock, &keys(), policy).unwrap();
    let breaker = acquire(&store, &clock, &keys(), policy).unwrap();
    // The stalled holder never confirmed (it was past its commit): its release must not undo the break.
    stalled.release(&store, &keys(), vec![]).unwrap();
    assert_eq!(serving(&store).ticket, breaker.ticket);
}

#[test]
fn a_live_waiter_skipped_by_a_break_queues_again_and_gets_the_lock() {
    let store = Arc::new(MemoryStore::new());
    acquire(&*store, &SystemClock, &keys(), lease_ms(100)).unwrap(); // dies holding
                                                                     // A patient waiter (it would never break the lock itself) queues behind the dead holder.
    let waiter = {
        let store = store.clone();
        std::thread::spawn(move || acquire(&*store, &SystemClock, &keys(), lease_ms(60_000)).unwrap().ticket)
    };
    let tickets_taken = || store.dump().get(keys().lock_next().as_str()).map(|v| v[0]);
    while tickets_taken() != Some(2) {
        std::thread::yield_now(); // until the waiter has its ticket
    }
    let breaker = acquire(&*store, &SystemClock, &keys(), lease_ms(100)).unwrap();
    assert!(!waiter.is_finished(), "the waiter does not hold while the breaker does");
    let breaker_ticket = breaker.ticket;
    breaker.release(&*store, &keys(), vec![]).unwrap();
    let requeued = waiter.join().unwrap();
    assert!(requeued > breaker_ticket, "it queued again after the breaker's ticket: {requeued}");
}

#[test]
fn concurrent_holders_never_overlap() {
    let store = Arc::new(MemoryStore::new());
    let inside = Arc::new(AtomicU64::new(0));
    let total = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (store, inside, total) = (store.clone(), inside.clone(), total.clone());
            std::thread::spawn(move || {
                for _ in 0..25 {
                    let held = acquire(&*store, &SystemClock, &keys(), LockPolicy::default()).unwrap();
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders at once");
                    total.fetch_add(1, Ordering::SeqCst);
                    std::thread::yield_now();
                    inside.fetch_sub(1, Ordering::SeqCst);
                    held.release(&*store, &keys(), vec![]).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(total.load(Ordering::SeqCst), 200);
}

/// Many waiters watch one dead holder and several break it at once: still one holder at a time,
/// and every waiter gets the lock.
#[test]
fn simultaneous_breakers_leave_one_holder_at_a_time() {
    let store = Arc::new(MemoryStore::new());
    let policy = lease_ms(200);
    acquire(&*store, &SystemClock, &keys(), policy).unwrap(); // dies holding
    let inside = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(12));
    let threads: Vec<_> = (0..12)
        .map(|_| {
            let (store, inside, barrier) = (store.clone(), inside.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let held = acquire(&*store, &SystemClock, &keys(), policy).unwrap();
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders at once");
                std::thread::sleep(Duration::from_millis(2));
                inside.fetch_sub(1, Ordering::SeqCst);
                held.confirm(&*store, &keys()).unwrap();
                held.release(&*store, &keys(), vec![]).unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Writers keep coming while waiters keep dying: every death costs at most a lease and a half,
/// so live writers keep getting through, never two at once.
#[test]
fn a_storm_with_deaths_throughout_keeps_making_progress() {
    let store = Arc::new(MemoryStore::new());
    let policy = lease_ms(200);
    let inside = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let killer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for _ in 0..10 {
                take_ticket(&*store, &keys()).unwrap(); // a waiter that dies at once
                std::thread::sleep(Duration::from_millis(40));
            }
        })
    };
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (store, inside, done) = (store.clone(), inside.clone(), done.clone());
            std::thread::spawn(move || {
                let mut busy = 0;
                for _ in 0..15 {
                    match acquire(&*store, &SystemClock, &keys(), policy) {
                        Ok(held) => {
                            assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders at once");
                            inside.fetch_sub(1, Ordering::SeqCst);
                            held.release(&*store, &keys(), vec![]).unwrap();
                            done.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(Error::TenantBusy { .. }) => busy += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
                busy
            })
        })
        .collect();
    killer.join().unwrap();
    let busy: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(done.load(Ordering::SeqCst) + busy, 60);
    // After the storm, the tenant is writable at once or within a lease and a half.
    let started = std::time::Instant::now();
    acquire(&*store, &SystemClock, &keys(), policy).unwrap();
    assert!(started.elapsed() < Duration::from_millis(500), "{:?}", started.elapsed());
    eprintln!("{} of 60 got through, {busy} refused", done.load(Ordering::SeqCst));
    assert!(done.load(Ordering::SeqCst) >= 30, "{} of 60 got through", done.load(Ordering::SeqCst));
}
