//! A deterministic scheduler for the log's schedule tests: every writer and reader runs on a
//! thread of its own, but only one runs at a time, and only between two of its store calls or
//! sleeps. The test decides who goes next, on a virtual clock: so any interleaving of store calls
//! can be replayed exactly, with pauses of any length, deaths (an actor that is never resumed),
//! and steps of the wall clock.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::clock::Clock;
use crate::store::{Key, KeyValue, MemoryStore, StoreResult};

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
}

struct State {
    now: u64,
    /// Added to `now` for the wall clock only (a clock step), never for durations.
    wall_offset: i64,
    actors: Vec<Actor>,
    turn: Option<usize>,
    releasing: bool,
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
            state: Mutex::new(State { now: 0, wall_offset: 0, actors: Vec::new(), turn: None, releasing: false }),
            wake: Condvar::new(),
            store: MemoryStore::new(),
        })
    }

    pub fn now(&self) -> u64 {
        self.state.lock().unwrap().now
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
            state.actors.push(Actor { status: Status::Waiting, ready_at: now, step: Step::Start, calls: 0 });
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
                std::panic::panic_any(Released);
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
    fn turn(&self, op: &'static str, key: &Key) {
        let part = key.as_str().split_once(':').map_or(key.as_str(), |(_, rest)| rest).to_owned();
        self.sim.yield_turn(self.id, CALL_MS, Step::Call(op, part));
    }
}

impl KeyValue for SimStore {
    fn get(&self, key: &Key) -> StoreResult<Option<Vec<u8>>> {
        self.turn("get", key);
        self.sim.store.get(key)
    }
    fn set(&self, key: &Key, value: &[u8]) -> StoreResult<()> {
        self.turn("set", key);
        self.sim.store.set(key, value)
    }
    fn delete(&self, key: &Key) -> StoreResult<()> {
        self.turn("delete", key);
        self.sim.store.delete(key)
    }
    fn exists(&self, key: &Key) -> StoreResult<bool> {
        self.turn("exists", key);
        self.sim.store.exists(key)
    }
    fn increment(&self, key: &Key, delta: i64) -> StoreResult<i64> {
        self.turn("increment", key);
        self.sim.store.increment(key, delta)
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
}
