//! The one retry of every reader that meets a record deleted under it.
//!
//! A reader reads the tenant's view, then the records it names (`P:r:<record>`). A modify or a
//! delete that applies between those two reads deletes the record the view named (a record is
//! deleted only after a newer view stopped naming it), so the reader finds nothing: it reads the
//! view again, which names the new record. While one secret is modified without pause, a round can
//! lose that race several times in a row; after [`ROUNDS`] rounds, with short pauses between them
//! (1, 2, 4, … up to [`MAX_PAUSE_MS`] ms, through the [`Clock`], about 80 ms in all), the read gives
//! up with 503 `TenantBusy` and `Retry-After` ([`RETRY_AFTER_SECS`]): nothing is wrong with the
//! secret, the tenant's writes were only too fast for this read. Never a 500.
//!
//! Export, the pull-time lookup, the verification of a stored secret, the chained mint of an
//! export and the workload trust all read through [`settled`].

use std::time::Duration;

use crate::clock::Clock;
use crate::error::Error;

/// How many times a reader reads the view and its records before it answers 503.
pub const ROUNDS: u32 = 8;

/// The longest pause between two rounds.
pub const MAX_PAUSE_MS: u64 = 25;

/// What the 503 tells the client: a second is many times what a write takes.
pub const RETRY_AFTER_SECS: u64 = 1;

/// The answer of a read that lost the race [`ROUNDS`] times in a row.
pub fn contended() -> Error {
    Error::TenantBusy { retry_after_secs: RETRY_AFTER_SECS }
}

/// Runs `round` until it answers `Some` (a read that found every record it needed), pausing
/// between rounds; an error ends it at once. After [`ROUNDS`] rounds of `None`: [`contended`].
pub fn settled<C: Clock, T>(clock: &C, mut round: impl FnMut() -> Result<Option<T>, Error>) -> Result<T, Error> {
    let mut pause_ms = 1;
    for attempt in 0..ROUNDS {
        if attempt > 0 {
            clock.sleep(Duration::from_millis(pause_ms));
            pause_ms = (pause_ms * 2).min(MAX_PAUSE_MS);
        }
        if let Some(done) = round()? {
            return Ok(done);
        }
    }
    Err(contended())
}

/// A mint chained to the `verify` component reads the view there: a 404 from it means the secret
/// was deleted or replaced after our view was read, the same race as a record found gone, so the
/// round reads again (and answers 404 itself if the secret is gone from its view too).
pub fn gone_is_a_lost_round<T>(minted: Result<T, Error>) -> Result<Option<T>, Error> {
    match minted {
        Err(Error::SecretNotFound) => Ok(None),
        other => other.map(Some),
    }
}

#[cfg(test)]
#[path = "reread_tests.rs"]
mod tests;
