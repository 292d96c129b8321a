//! Searching schedules for a counterexample to the log's proof, with the parameters shrunk so
//! that a few writers wrap the window (`W` = 2) and the outcome memory (2 slots):
//! - an exhaustive bounded search: for a few small configurations, every combination of faults
//!   per writer (none, a pause at any store call, a death at any store call, a pause then a death,
//!   a pause then another pause), every single failed call whose effect lands at once, a window
//!   later or never, and every single preemption of the earliest-ready order; it prints how many
//!   schedules ran; and the same again with Spin's DynamoDB `increment` (a read, then a write
//!   conditioned on it), where writers contend for `P:seq` and for a stalled slot's ballots;
//! - a random explorer (proptest, which shrinks a failing schedule to a minimal one): up to 30
//!   writers on four names, logs longer than the window and the outcome memory, up to two faults
//!   per writer (pauses of up to six leases, writers held while a hundred leases pass, deaths,
//!   failed calls that land later or never), wall-clock steps, and shapes from 1 to 8 outcomes;
//!   three in ten with Spin's DynamoDB `increment`, which contention can refuse.
//!   `REGSECRETS_SCHEDULES=N` sets how many (default 200); the soak, `cargo test --release -p
//!   domain soak -- --ignored` with `REGSECRETS_SOAK=1000000`, runs as many and prints the count
//!   and the fault classes met at each kind of store call.
//!
//! Every schedule ends with [`check`]: the invariants of `tests.rs`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::sim::{Actor, Sim, Step};
use super::tests::{check, tally, Kind, Run, LEASE, SMALL};
use super::Shape;

/// A fault of one writer, at its store call number `at` (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hit {
    /// Held for this many tenths of a lease.
    Pause(u64),
    /// Held for this many milliseconds: a stall inside a call (between the read and the
    /// conditional write of DynamoDB's `increment`, say).
    Hold(u64),
    Death,
    /// The call fails on the writer's side; its effect lands this many tenths of a lease later
    /// (`None`: never).
    Fail(Option<u64>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Planned {
    writer: usize,
    at: usize,
    hit: Hit,
}

/// One schedule: the writers' operations (on names `n0`…`n3`, `n0` and `n1` existing first), the
/// faults, the shape, an optional preemption (at turn `t`, run the `k`-th waiting actor instead of
/// the earliest ready) and a wall-clock step.
#[derive(Debug, Clone)]
struct Schedule {
    shape: Shape,
    writers: Vec<(Kind, usize)>,
    faults: Vec<Planned>,
    preempt: Option<(usize, usize)>,
    wall_step: Option<(u64, i64)>,
    /// Increments as Spin's DynamoDB makes them: a read, then a conditional write that another
    /// writer's increment in between refuses as contention (`Sim::dynamo`).
    dynamo: bool,
}

/// What each fault class met, by the kind of store call it met it at (`set v`, `get s`, …).
type Coverage = BTreeMap<String, BTreeMap<&'static str, usize>>;

fn class(hit: Hit, second: bool) -> &'static str {
    match (hit, second) {
        (Hit::Pause(t), _) if t >= 100 => "held across many slots",
        (Hit::Pause(_), false) => "pause",
        (Hit::Pause(_), true) => "second pause",
        (Hit::Hold(_), _) => "short stall",
        (Hit::Death, false) => "death",
        (Hit::Death, true) => "death after a pause",
        (Hit::Fail(Some(_)), _) => "failed call, effect later",
        (Hit::Fail(None), _) => "failed call, no effect",
    }
}

fn call_kind(actor: &Actor) -> String {
    match &actor.step {
        Step::Call(op, key) => {
            let family = key.split(':').next().unwrap_or("");
            let family = if key.starts_with("s:") && key.ends_with(":n") { "s(n)" } else { family };
            format!("{op} {family}")
        }
        _ => "other".into(),
    }
}

/// What the schedules of a search met, besides the writes' answers: how many left keys that only
/// the sweep collected (written late by a writer overtaken while paused that then died, or by a
/// failed call that landed late), how many such keys, and how many failed calls landed late.
#[derive(Debug, Default)]
struct Met {
    answers: BTreeMap<&'static str, usize>,
    left_for_the_sweep: usize,
    swept_keys: usize,
    landed_late: usize,
    /// Increments refused for contention (DynamoDB schedules): of `P:seq`, of ballot counters.
    contended: (usize, usize),
}

impl Met {
    fn add(&mut self, other: Met) {
        for (k, v) in other.answers {
            *self.answers.entry(k).or_default() += v;
        }
        self.left_for_the_sweep += other.left_for_the_sweep;
        self.swept_keys += other.swept_keys;
        self.landed_late += other.landed_late;
        self.contended.0 += other.contended.0;
        self.contended.1 += other.contended.1;
    }
}

/// Runs one schedule and checks it.
fn run(schedule: &Schedule, coverage: Option<&Mutex<Coverage>>) -> Met {
    let mut run = Run::seeded(schedule.shape, &["n0", "n1"]);
    if schedule.dynamo {
        run.sim.dynamo();
    }
    let ids: Vec<usize> = schedule.writers.iter().map(|(kind, name)| run.op(*kind, &format!("n{name}"))).collect();
    let mut pending: Vec<(Planned, bool)> = Vec::new();
    for (i, fault) in schedule.faults.iter().enumerate() {
        let second = schedule.faults[..i].iter().any(|f| f.writer == fault.writer);
        pending.push((*fault, second));
    }
    let mut stepped = false;
    let mut fault = |sim: &Sim, id: usize, actor: &Actor| {
        if let Some((at, ms)) = schedule.wall_step {
            if !stepped && sim.now() >= at {
                stepped = true;
                sim.step_wall_clock(ms);
            }
        }
        if !matches!(actor.step, Step::Call(..)) {
            return;
        }
        let Some(writer) = ids.iter().position(|w| *w == id) else { return };
        // The first pending fault of this writer, once its call number is reached.
        let Some(index) = pending.iter().position(|(p, _)| p.writer == writer) else { return };
        let (planned, second) = pending[index];
        if actor.calls + 1 < planned.at {
            return;
        }
        pending.remove(index);
        if let Some(coverage) = coverage {
            *coverage
                .lock()
                .unwrap()
                .entry(call_kind(actor))
                .or_default()
                .entry(class(planned.hit, second))
                .or_default() += 1;
        }
        match planned.hit {
            Hit::Pause(tenths) => sim.hold(id, sim.now() + LEASE * tenths / 10),
            Hit::Hold(ms) => sim.hold(id, sim.now() + ms),
            Hit::Death => sim.kill(id),
            Hit::Fail(lands) => sim.fail_next(id, lands.map(|t| sim.now() + LEASE * t / 10)),
        }
    };
    let mut choose = |turn: usize, waiting: &[usize]| match schedule.preempt {
        Some((t, k)) if t == turn => waiting.get(k).copied(),
        _ => None,
    };
    run.drive_choosing(400_000, &mut fault, &mut choose);
    let finished = run.finish();
    let checked = check(&finished);
    let mut met = Met {
        left_for_the_sweep: usize::from(checked.swept > 0),
        swept_keys: checked.swept,
        landed_late: finished.sim.landed(),
        contended: finished.sim.contended(),
        ..Met::default()
    };
    tally(&finished.answers, &mut met.answers);
    met
}

/// The store calls a writer makes in a fault-free run of this configuration, at most.
fn calls_made(shape: Shape, writers: &[(Kind, usize)], dynamo: bool) -> usize {
    let mut run = Run::seeded(shape, &["n0", "n1"]);
    if dynamo {
        run.sim.dynamo();
    }
    for (kind, name) in writers {
        run.op(*kind, &format!("n{name}"));
    }
    run.drive(100_000, &mut |_, _, _| {});
    let calls = run.sim.actors().iter().map(|a| a.calls).max().unwrap_or(0);
    check(&run.finish());
    calls
}

/// Every fault a single writer can get within the bound: none; a pause of 2.5 leases or a death
/// at any of its first `calls` store calls; with `pairs`, a pause then a death, or a pause then a
/// pause of 1.5 leases, at any two of them.
fn faults_of(writer: usize, calls: usize, pairs: bool) -> Vec<Vec<Planned>> {
    let at = |at, hit| Planned { writer, at, hit };
    let mut all = vec![vec![]];
    for c in 1..=calls {
        all.push(vec![at(c, Hit::Pause(25))]);
        all.push(vec![at(c, Hit::Death)]);
        for d in (c + 1..=calls).filter(|_| pairs) {
            all.push(vec![at(c, Hit::Pause(25)), at(d, Hit::Death)]);
            all.push(vec![at(c, Hit::Pause(25)), at(d, Hit::Pause(15))]);
        }
    }
    all
}

/// The exhaustive bounded search (see the module doc). In CI the second writer gets one fault at
/// most, at its first eight calls, and three writers one each at their first four;
/// `REGSECRETS_EXHAUSTIVE=full` gives the second writer every pair too, and three writers their
/// first six calls.
fn exhaustive(dynamo: bool) -> (usize, Met) {
    let full = std::env::var("REGSECRETS_EXHAUSTIVE").is_ok_and(|v| v == "full");
    let configurations: [&[(Kind, usize)]; 3] = [
        &[(Kind::Modify, 0), (Kind::Create, 2)],
        &[(Kind::Create, 2), (Kind::Create, 2)],
        &[(Kind::Delete, 0), (Kind::Modify, 0)],
    ];
    let mut schedules = 0usize;
    let mut met = Met::default();
    let mut add = |m: Met| met.add(m);
    for writers in configurations {
        let calls = calls_made(SMALL, writers, dynamo);
        // Faults of both writers, every combination (pauses are at most 2.5 leases, so the
        // writers meet each other's stalls and takeovers).
        for a in faults_of(0, calls, true) {
            for b in faults_of(1, calls.min(8), full) {
                let faults = a.iter().chain(&b).copied().collect();
                add(run(
                    &Schedule {
                        shape: SMALL,
                        writers: writers.to_vec(),
                        faults,
                        preempt: None,
                        wall_step: None,
                        dynamo,
                    },
                    None,
                ));
                schedules += 1;
            }
        }
        // One failed call, anywhere, landing at once, after two leases, or never; with every
        // single preemption of the order of the first turns.
        for writer in 0..2 {
            for at in 1..=calls {
                for lands in [Some(0), Some(20), None] {
                    for preempt in std::iter::once(None).chain((0..12).map(|t| Some((t, 1)))) {
                        let faults = vec![Planned { writer, at, hit: Hit::Fail(lands) }];
                        add(run(
                            &Schedule {
                                shape: SMALL,
                                writers: writers.to_vec(),
                                faults,
                                preempt,
                                wall_step: None,
                                dynamo,
                            },
                            None,
                        ));
                        schedules += 1;
                    }
                }
            }
        }
    }
    // Three writers, a pause or a death each at any of their first six calls.
    let writers = [(Kind::Modify, 0), (Kind::Create, 2), (Kind::Delete, 1)];
    let single = |w: usize| {
        let mut all = vec![vec![]];
        for c in 1..=if full { 6 } else { 4 } {
            all.push(vec![Planned { writer: w, at: c, hit: Hit::Pause(25) }]);
            all.push(vec![Planned { writer: w, at: c, hit: Hit::Death }]);
        }
        all
    };
    for a in single(0) {
        for b in single(1) {
            for c in single(2) {
                let faults = a.iter().chain(&b).chain(&c).copied().collect();
                add(run(
                    &Schedule {
                        shape: SMALL,
                        writers: writers.to_vec(),
                        faults,
                        preempt: None,
                        wall_step: None,
                        dynamo,
                    },
                    None,
                ));
                schedules += 1;
            }
        }
    }
    if dynamo {
        // Takeovers racing: writer 0 dies, or pauses for 1.5 leases, at any of its calls; writers
        // 1 and 2, behind it in a window of 4, are each stalled a few milliseconds at any of their
        // calls, so that both take a stalled slot over at once and one loses the slot's ballot
        // counter to the other (70 times), or a taker back from its pause meets the takeover of
        // its own slot. (No schedule here has a taker lose its own slot's counter while it runs
        // a ballot for it, `Taker::run`; a unit test does, `secrets::tests::a_taker_that_loses_…`.)
        // An outcome memory of 8: the paused taker learns its slot's outcome on its return.
        let shape = Shape { window: 4, outcomes: 8, ..SMALL };
        let writers = [(Kind::Create, 2), (Kind::Create, 3), (Kind::Modify, 0)];
        let calls = calls_made(shape, &writers, true);
        for (death, first) in (1..=calls).flat_map(|c| [(c, Hit::Death), (c, Hit::Pause(15))]) {
            for (writer, at, ms) in (1..=2).flat_map(|w| (1..=calls).flat_map(move |c| [2, 5].map(|ms| (w, c, ms)))) {
                let faults =
                    vec![Planned { writer: 0, at: death, hit: first }, Planned { writer, at, hit: Hit::Hold(ms) }];
                let schedule =
                    Schedule { shape, writers: writers.to_vec(), faults, preempt: None, wall_step: None, dynamo };
                let met = run(&schedule, None);
                // No call fails here and nobody waits long: every write that took a slot learns
                // its outcome (a lost ballot counter is no failure).
                assert!(!met.answers.contains_key("503 WriteOutcomeUnknown"), "{schedule:?}: {met:?}");
                add(met);
                schedules += 1;
            }
        }
    }
    (schedules, met)
}

#[test]
fn every_small_schedule_within_the_bounds_keeps_every_invariant() {
    let (schedules, met) = exhaustive(false);
    eprintln!("exhaustive bounded search: {schedules} schedules, every invariant held; {met:?}");
}

/// The same search with Spin's DynamoDB `increment` (a read, then a conditional write): writers
/// that take slots together contend for `P:seq`, and writers that take a stalled slot over
/// together contend for its ballot counter; a contended writer goes back to the admission check
/// (`secrets::commit`) or watches the other ballot (`log::take_over`), and may answer 503
/// `TenantBusy` only with nothing written.
#[test]
fn every_small_schedule_with_dynamodb_increments_keeps_every_invariant() {
    let (schedules, met) = exhaustive(true);
    assert!(met.contended.0 > 0 && met.contended.1 > 0, "contention for P:seq and for a ballot counter: {met:?}");
    eprintln!("exhaustive bounded search, DynamoDB increments: {schedules} schedules, every invariant held; {met:?}");
}

fn hit() -> impl Strategy<Value = Hit> {
    prop_oneof![
        4 => (1u64..=60).prop_map(Hit::Pause),
        1 => Just(Hit::Pause(1_000)),
        3 => Just(Hit::Death),
        2 => prop::option::of(0u64..=30).prop_map(Hit::Fail),
    ]
}

fn schedule() -> impl Strategy<Value = Schedule> {
    let shape =
        (1u64..=4, prop_oneof![Just(1u64), Just(2), Just(3), Just(8)], prop_oneof![Just(3u64), Just(4), Just(1024)])
            .prop_map(|(window, outcomes, sweep_every)| Shape {
                window: window.max(2),
                outcomes,
                sweep_every,
                ..SMALL
            });
    let writers = prop::collection::vec(
        (prop_oneof![Just(Kind::Create), Just(Kind::Modify), Just(Kind::Delete)], 0usize..4),
        3..=30,
    );
    (shape, writers)
        .prop_flat_map(|(shape, writers)| {
            let n = writers.len();
            let faults = prop::collection::vec((0..n, 1usize..=30, hit()), 0..=n.min(12)).prop_map(|faults| {
                // At most two faults per writer, in order of their call numbers.
                let mut kept: Vec<Planned> = Vec::new();
                for (writer, at, hit) in faults {
                    if kept.iter().filter(|p| p.writer == writer).count() < 2 {
                        kept.push(Planned { writer, at, hit });
                    }
                }
                kept.sort_by_key(|p| (p.writer, p.at));
                kept
            });
            let wall = prop::option::of((0u64..3 * LEASE, prop_oneof![Just(-7_200_000i64), Just(7_200_000)]));
            (Just(shape), Just(writers), faults, wall, prop::bool::weighted(0.3))
        })
        .prop_map(|(shape, writers, faults, wall_step, dynamo)| Schedule {
            shape,
            writers,
            faults,
            preempt: None,
            wall_step,
            dynamo,
        })
}

fn explore(cases: u32, coverage: Option<&Mutex<Coverage>>) -> Met {
    let met = Mutex::new(Met::default());
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let outcome = runner.run(&schedule(), |s| {
        let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&s, coverage)));
        match found {
            Ok(m) => {
                met.lock().unwrap().add(m);
                Ok(())
            }
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Err(TestCaseError::fail(why))
            }
        }
    });
    if let Err(failure) = outcome {
        panic!("the explorer found a schedule that breaks an invariant (shrunk to a minimal one): {failure}");
    }
    met.into_inner().unwrap()
}

#[test]
fn random_schedules_with_many_writers_and_several_faults_keep_every_invariant() {
    let cases = std::env::var("REGSECRETS_SCHEDULES").ok().and_then(|n| n.parse().ok()).unwrap_or(200);
    let met = explore(cases, None);
    eprintln!("random explorer: {cases} schedules, every invariant held; {met:?}");
}

/// The soak: `REGSECRETS_SOAK=1000000 cargo test --release -p domain soak -- --ignored --nocapture`.
#[test]
#[ignore = "a soak of a million schedules; run it by hand in --release"]
fn soak() {
    let cases = std::env::var("REGSECRETS_SOAK").ok().and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
    let coverage = Mutex::new(Coverage::new());
    let met = explore(cases, Some(&coverage));
    eprintln!("soak: {cases} schedules, every invariant held; {met:?}");
    eprintln!("fault classes met at each kind of store call:");
    for (call, met) in coverage.into_inner().unwrap() {
        eprintln!("  {call:<14} {met:?}");
    }
}
