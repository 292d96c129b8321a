//! Readiness: can this node read the store now? One `get` of a fixed key through [`KeyValue`], the
//! same call every read begins with (list, get and the quota first `get` a tenant's `P:seq`),
//! so a store that is gone, or a store client that hangs, shows here as it would on a read.
//!
//! The key is the log head of a tenant no token is expected to carry; whatever it holds is discarded.
//! Nothing is written, so the probe spends no key of the store's budget.
//!
//! Liveness needs no function here: a node that can run a component at all is alive (see
//! `endpoints::liveness`). Readiness may take as long as the store takes; the bound is the
//! orchestrator's probe timeout (see docs/deployment.md), after which no answer counts as failure.

use serde::Serialize;

use crate::error::Error;
use crate::name::TenantId;
use crate::store::{KeyValue, TenantKeys};

/// The tenant whose log head the probe reads (read only; its value is never looked at).
pub const PROBE_TENANT: &str = "regsecrets-readiness-probe";

/// What a 503 of the readiness probe tells a client to wait, in seconds.
pub const RETRY_AFTER_SECS: u64 = crate::error::NOT_READY_RETRY_AFTER_SECS;

/// The body of a probe's 200: `{"status": "alive"}` or `{"status": "ready"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProbeStatus {
    /// `alive` (liveness) or `ready` (readiness).
    pub status: &'static str,
}

/// `Ok` when the store answered the read (found or not); [`Error::NotReady`] (503) otherwise.
pub fn readiness<S: KeyValue>(store: &S) -> Result<(), Error> {
    let tenant = TenantId::parse(PROBE_TENANT).expect("the probe tenant is a valid tenant id");
    store.get(&TenantKeys::new(&tenant).seq()).map(|_| ()).map_err(Error::NotReady)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Internal;
    use crate::store::{Key, MemoryStore, StoreResult};
    use std::cell::Cell;

    /// A store that fails every call, counting them.
    struct Gone(Cell<u32>);

    impl KeyValue for Gone {
        fn get(&self, _: &Key) -> StoreResult<Option<Vec<u8>>> {
            self.0.set(self.0.get() + 1);
            Err(Internal::Store("gone".into()))
        }
        fn set(&self, _: &Key, _: &[u8]) -> StoreResult<()> {
            unreachable!("readiness never writes")
        }
        fn delete(&self, _: &Key) -> StoreResult<()> {
            unreachable!("readiness never deletes")
        }
        fn exists(&self, _: &Key) -> StoreResult<bool> {
            unreachable!("readiness only gets")
        }
        fn increment(&self, _: &Key, _: i64) -> StoreResult<i64> {
            unreachable!("readiness never increments")
        }
        fn keys(&self) -> StoreResult<Vec<String>> {
            unreachable!("readiness never lists keys")
        }
    }

    #[test]
    fn a_store_that_answers_is_ready_and_nothing_is_written() {
        let store = MemoryStore::new();
        assert_eq!(readiness(&store), Ok(()));
        assert!(store.dump().is_empty(), "the probe spends no key");
    }

    #[test]
    fn a_store_that_fails_is_not_ready_after_exactly_one_read() {
        let store = Gone(Cell::new(0));
        let error = readiness(&store).unwrap_err();
        assert_eq!(error.status(), 503);
        assert_eq!(error.code(), "NotReady");
        assert_eq!(store.0.get(), 1);
    }
}
