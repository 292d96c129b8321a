//! Time, behind a trait so that waiting and the records' timestamps are testable.
//!
//! Two clocks: the wall clock only stamps records (`createdAt`); every duration (how long a slot
//! has stalled, how long a request has waited) is measured on the monotonic clock, so a step of
//! the wall clock, backwards or forwards, changes no decision.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub trait Clock {
    /// Wall-clock time in milliseconds since the Unix epoch: for timestamps only.
    fn now_ms(&self) -> u64;
    /// Milliseconds on a clock that never goes backwards (since an arbitrary origin): for durations.
    fn monotonic_ms(&self) -> u64;
    fn sleep(&self, duration: Duration);
    /// A pause in `[1, ceiling]` ms drawn at random, to spread writers that collided ("full
    /// jitter"). The schedule tests' clock draws deterministically, so that a schedule replays.
    fn jitter_ms(&self, ceiling: u64) -> u64 {
        jitter_below(ceiling)
    }
}

/// A pause in `[1, ceiling]` ms, drawn at random (the ceiling itself when no randomness is to be had).
pub fn jitter_below(ceiling: u64) -> u64 {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => 1 + u64::from_le_bytes(bytes) % ceiling.max(1),
        Err(_) => ceiling,
    }
}

/// A clock set by hand, for tests that step time themselves: both readings are the time last set,
/// and sleeping lets no time pass.
pub struct ManualClock(Cell<u64>);

impl ManualClock {
    pub fn at(ms: u64) -> ManualClock {
        ManualClock(Cell::new(ms))
    }

    pub fn set(&self, ms: u64) {
        self.0.set(ms);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.get()
    }

    fn monotonic_ms(&self) -> u64 {
        self.0.get()
    }

    fn sleep(&self, _: Duration) {}
}

/// A clock for tests whose sleeps pass at once: both readings are the time so far, and sleeping
/// moves it on by the duration, so a wait of a lease costs no real time.
#[derive(Default)]
pub struct FastClock(Cell<u64>);

impl FastClock {
    pub fn at(ms: u64) -> FastClock {
        FastClock(Cell::new(ms))
    }
}

impl Clock for FastClock {
    fn now_ms(&self) -> u64 {
        self.0.get()
    }

    fn monotonic_ms(&self) -> u64 {
        self.0.get()
    }

    fn sleep(&self, duration: Duration) {
        self.0.set(self.0.get() + duration.as_millis() as u64);
    }
}

/// The real clock: `std` maps to WASI's wall and monotonic clocks inside a component.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }

    fn monotonic_ms(&self) -> u64 {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed().as_millis() as u64
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration)
    }
}

/// RFC 3339 in UTC with second precision, e.g. `2026-11-23T18:06:00Z`.
pub fn rfc3339(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_370_399_999), "2026-11-22T17:59:59Z");
    }
}
