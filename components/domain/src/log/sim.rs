//! A deterministic scheduler for the log's schedule tests: every writer and reader runs on a
//! thread of its own, but only one runs at a time, and only between two of its store calls or
//! sleeps. The test decides who goes next, on a virtual clock: so any interleaving of store calls
//! can be replayed exactly, with pauses of any length, deaths (an actor that is never resumed),
//! steps of the wall clock, and store calls that fail on the actor's side while their effect
//! reaches the store later (or never): [`Sim::fail_next`]. With [`Sim::dynamo`], `increment` is
//! Spin's on DynamoDB: a read, and in a later turn a write conditioned on the value read, refused
//! as contention (nothing written) when another actor moved the counter in between.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::clock::Clock;
use crate::error::Internal;
use crate::store::{Key, KeyValue, MemoryStore, StoreResult, BACKEND_ERROR, CONTENDED};

/// What an actor is about to do when it waits for its turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Start,
    /// A store call: the operation and the key's part after the tenant prefix (`seq`, `v:3`, …).
    Call(&'static str, String),
    Sleep,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Waiting,
    Running,
    Done,
    /// Never runs again (a death); its thread is released at the end.
    Dead,
}

#[derive(Debug, Clone)]
pub struct Actor {
    pub status: Status,
    /// Not to run before this virtual time.
    pub ready_at: u64,
    pub step: Step,
    /// Store calls made so far (the one in `step` not counted).
    pub calls: usize,
    /// The slot its write took (its first `increment` of `seq` that answered).
    pub slot: Option<u64>,
}

/// A write that failed on the actor's side, still on its way to the store.
#[derive(Debug, Clone)]
enum Effect {
    Set(Key, Vec<u8>),
    Delete(Key),
    Increment(Key, i64),
    /// DynamoDB's conditional write of a counter: `delta` is added only if it still holds `read`.
    IncrementFrom(Key, Option<u64>, i64),
}

struct State {
    now: u64,
    /// Added to `now` for the wall clock only (a clock step), never for durations.
    wall_offset: i64,
    actors: Vec<Actor>,
    turn: Option<usize>,
    releasing: bool,
    /// Actors whose next store call fails, and when its effect lands (`None`: never).
    failing: BTreeMap<usize, Option<u64>>,
    /// Effects of failed calls, with the virtual time they land at.
    delayed: Vec<(u64, Effect)>,
    /// How many failed calls' effects landed.
    landed: usize,
    /// Every view written, by whom: (actor, slot, bytes).
    views: Vec<(usize, u64, Vec<u8>)>,
    /// `increment` as Spin's DynamoDB backend makes it (see the module doc).
    dynamo: bool,
    /// How many increments were refused for contention: of `P:seq`, and of ballot counters.
    contended: (usize, usize),
}

pub struct Sim {
    state: Mutex<State>,
    wake: Condvar,
    pub store: MemoryStore,
}

/// What a released dead actor unwinds with.
struct Released;

/// Virtual milliseconds a store call takes.
const CALL_MS: u64 = 1;

impl Sim {
    pub fn new() -> Arc<Sim> {
        Arc::new(Sim {
            state: Mutex::new(State {
                now: 0,
                wall_offset: 0,
                actors: Vec::new(),
                turn: None,
                releasing: false,
                failing: BTreeMap::new(),
                delayed: Vec::new(),
                landed: 0,
                views: Vec::new(),
                dynamo: false,
                contended: (0, 0),
            }),
            wake: Condvar::new(),
            store: MemoryStore::new(),
        })
    }

    pub fn now(&self) -> u64 {
        self.state.lock().unwrap().now
    }

    /// Makes every `increment` from now on Spin's DynamoDB one (see the module doc).
    pub fn dynamo(&self) {
        self.state.lock().unwrap().dynamo = true;
    }

    /// How many increments were refused for contention so far: of `P:seq`, of ballot counters.
    pub fn contended(&self) -> (usize, usize) {
        self.state.lock().unwrap().contended
    }

    /// Steps the wall clock by `ms` (negative: backwards). Durations do not see it.
    pub fn step_wall_clock(&self, ms: i64) {
        self.state.lock().unwrap().wall_offset += ms;
    }

    pub fn actors(&self) -> Vec<Actor> {
        self.state.lock().unwrap().actors.clone()
    }

    /// Starts `body` as a new actor; it waits for its first turn.
    pub fn spawn<T: Send + 'static>(
        self: &Arc<Self>,
        body: impl FnOnce(&SimStore, &SimClock) -> T + Send + 'static,
    ) -> (usize, JoinHandle<Option<T>>) {
        let id = {
            let mut state = self.state.lock().unwrap();
            let now = state.now;
            state.actors.push(Actor {
                status: Status::Waiting,
                ready_at: now,
                step: Step::Start,
                calls: 0,
                slot: None,
            });
            state.actors.len() - 1
        };
        let sim = self.clone();
        let handle = std::thread::spawn(move || {
            let store = SimStore { sim: sim.clone(), id };
            let clock = SimClock { sim: sim.clone(), id };
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                sim.wait_turn(id);
                body(&store, &clock)
            }));
            let mut state = sim.state.lock().unwrap();
            if state.actors[id].status == Status::Running {
                state.actors[id].status = Status::Done;
            }
            if state.turn == Some(id) {
                state.turn = None;
            }
            sim.wake.notify_all();
            drop(state);
            match outcome {
                Ok(value) => Some(value),
                Err(panic) if panic.is::<Released>() => None,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        });
        (id, handle)
    }

    /// Lets actor `id` run until its next store call or sleep (or its end); time moves to when
    /// it is ready if that is later.
    pub fn run(&self, id: usize) {
        let mut state = self.state.lock().unwrap();
        assert_eq!(state.actors[id].status, Status::Waiting, "actor {id} is not waiting");
        state.now = state.now.max(state.actors[id].ready_at);
        let now = state.now;
        self.land(&mut state, now);
        state.turn = Some(id);
        self.wake.notify_all();
        while state.turn.is_some() {
            state = self.wake.wait(state).unwrap();
        }
    }

    /// Holds actor `id` until virtual time `until` at least (a pause).
    pub fn hold(&self, id: usize, until: u64) {
        let mut state = self.state.lock().unwrap();
        let actor = &mut state.actors[id];
        actor.ready_at = actor.ready_at.max(until);
    }

    /// Makes actor `id`'s next store call fail on its side (a backend error, as a dropped
    /// connection or a client time-out gives); its effect, if it writes, reaches the store at
    /// virtual time `lands_at` (`None`: never). Reads just fail.
    pub fn fail_next(&self, id: usize, lands_at: Option<u64>) {
        self.state.lock().unwrap().failing.insert(id, lands_at);
    }

    /// Lands every effect still on its way (the end of a schedule: "later" has come).
    pub fn land_all(&self) {
        let mut state = self.state.lock().unwrap();
        self.land(&mut state, u64::MAX);
    }

    /// Every view written by an actor's own call: (actor, slot, bytes).
    pub fn views_written(&self) -> Vec<(usize, u64, Vec<u8>)> {
        self.state.lock().unwrap().views.clone()
    }

    /// How many failed calls' effects have landed so far.
    pub fn landed(&self) -> usize {
        self.state.lock().unwrap().landed
    }

    fn land(&self, state: &mut State, until: u64) {
        let (due, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut state.delayed).into_iter().partition(|(at, _)| *at <= until);
        state.delayed = later;
        for (_, effect) in due {
            state.landed += 1;
            let _ = match effect {
                Effect::Set(key, value) => self.store.set(&key, &value),
                Effect::Delete(key) => self.store.delete(&key),
                Effect::Increment(key, delta) => self.store.increment(&key, delta).map(|_| ()),
                Effect::IncrementFrom(key, read, delta) => match self.store.counter(&key) {
                    Ok(now) if now == read => self.store.increment(&key, delta).map(|_| ()),
                    _ => Ok(()),
                },
            };
        }
    }

    pub fn kill(&self, id: usize) {
        let mut state = self.state.lock().unwrap();
        if state.actors[id].status == Status::Waiting {
            state.actors[id].status = Status::Dead;
        }
    }

    /// Ends the dead actors' threads (they unwind without touching the store).
    pub fn release(&self) {
        let mut state = self.state.lock().unwrap();
        state.releasing = true;
        self.wake.notify_all();
    }

    /// Called by an actor before each store call or sleep: hands the turn back and waits.
    fn yield_turn(&self, id: usize, delay: u64, step: Step) {
        let mut state = self.state.lock().unwrap();
        let now = state.now;
        let actor = &mut state.actors[id];
        actor.status = Status::Waiting;
        actor.ready_at = now + delay;
        actor.step = step;
        state.turn = None;
        self.wake.notify_all();
        drop(state);
        self.wait_turn(id);
    }

    fn wait_turn(&self, id: usize) {
        let mut state = self.state.lock().unwrap();
        loop {
            if state.releasing && state.actors[id].status == Status::Dead {
                drop(state);
                std::panic::resume_unwind(Box::new(Released));
            }
            if state.turn == Some(id) {
                let actor = &mut state.actors[id];
                actor.status = Status::Running;
                if matches!(actor.step, Step::Call(..)) {
                    actor.calls += 1;
                }
                return;
            }
            state = self.wake.wait(state).unwrap();
        }
    }
}

/// The shared store, as seen by one actor: every call waits for the actor's turn first.
pub struct SimStore {
    sim: Arc<Sim>,
    id: usize,
}

impl SimStore {
    /// Waits for the actor's turn; then, if this call is to fail, queues its effect (if any) and
    /// answers the failure.
    fn turn(&self, op: &'static str, key: &Key, effect: Option<Effect>) -> StoreResult<()> {
        let part = key.as_str().split_once(':').map_or(key.as_str(), |(_, rest)| rest).to_owned();
        self.sim.yield_turn(self.id, CALL_MS, Step::Call(op, part));
        let mut state = self.sim.state.lock().unwrap();
        let Some(lands) = state.failing.remove(&self.id) else { return Ok(()) };
        if let (Some(at), Some(effect)) = (lands, effect) {
            state.delayed.push((at, effect));
        }
        Err(Internal::Store(BACKEND_ERROR.into()))
    }
}

impl KeyValue for SimStore {
    fn get(&self, key: &Key) -> StoreResult<Option<Vec<u8>>> {
        self.turn("get", key, None)?;
        self.sim.store.get(key)
    }
    fn set(&self, key: &Key, value: &[u8]) -> StoreResult<()> {
        self.turn("set", key, Some(Effect::Set(key.clone(), value.to_vec())))?;
        if let Some(slot) = key.as_str().split_once(":v:").and_then(|(_, k)| k.parse().ok()) {
            self.sim.state.lock().unwrap().views.push((self.id, slot, value.to_vec()));
        }
        self.sim.store.set(key, value)
    }
    fn delete(&self, key: &Key) -> StoreResult<()> {
        self.turn("delete", key, Some(Effect::Delete(key.clone())))?;
        self.sim.store.delete(key)
    }
    fn exists(&self, key: &Key) -> StoreResult<bool> {
        self.turn("exists", key, None)?;
        self.sim.store.exists(key)
    }
    fn increment(&self, key: &Key, delta: i64) -> StoreResult<i64> {
        let value = if self.sim.state.lock().unwrap().dynamo {
            // A consistent read, then (another turn) a transaction conditioned on the value read.
            self.turn("increment (read)", key, None)?;
            let read = self.sim.store.counter(key)?;
            self.turn("increment", key, Some(Effect::IncrementFrom(key.clone(), read, delta)))?;
            if self.sim.store.counter(key)? != read {
                let mut state = self.sim.state.lock().unwrap();
                if key.as_str().ends_with(":seq") {
                    state.contended.0 += 1;
                } else {
                    state.contended.1 += 1;
                }
                return Err(Internal::Store(CONTENDED.into()));
            }
            self.sim.store.increment(key, delta)?
        } else {
            self.turn("increment", key, Some(Effect::Increment(key.clone(), delta)))?;
            self.sim.store.increment(key, delta)?
        };
        if key.as_str().ends_with(":seq") {
            let mut state = self.sim.state.lock().unwrap();
            let actor = &mut state.actors[self.id];
            actor.slot = actor.slot.or(Some(value as u64));
        }
        Ok(value)
    }
    fn keys(&self) -> StoreResult<Vec<String>> {
        self.sim.yield_turn(self.id, CALL_MS, Step::Call("keys", "*".into()));
        if self.sim.state.lock().unwrap().failing.remove(&self.id).is_some() {
            return Err(Internal::Store(BACKEND_ERROR.into()));
        }
        self.sim.store.keys()
    }
}

/// Virtual time, as seen by one actor: sleeping is waiting for a later turn.
pub struct SimClock {
    sim: Arc<Sim>,
    id: usize,
}

impl Clock for SimClock {
    fn now_ms(&self) -> u64 {
        let state = self.sim.state.lock().unwrap();
        state.now.saturating_add_signed(state.wall_offset)
    }
    fn monotonic_ms(&self) -> u64 {
        self.sim.now()
    }
    fn sleep(&self, duration: Duration) {
        self.sim.yield_turn(self.id, duration.as_millis() as u64, Step::Sleep);
    }
    /// Deterministic, so that a schedule replays: from the actor and the virtual time.
    fn jitter_ms(&self, ceiling: u64) -> u64 {
        let seed = (self.id as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ self.sim.now();
        1 + seed.wrapping_mul(0xD1B5_4A32_D192_ED03).rotate_right(29) % ceiling.max(1)
    }
}
