use domain::error::Internal;
use domain::store::{Key, KeyValue, StoreResult, BACKEND_ERROR, CONTENDED};
use spin_sdk::wit::wasi::keyvalue::{atomics, store};

/// The domain's store over Spin's `wasi:keyvalue` (draft 2): the same calls on every backend.
pub struct SpinStore {
    bucket: Result<store::Bucket, Internal>,
}

fn fault(e: store::Error) -> Internal {
    // The kind only: backend messages are not ours to vouch for.
    Internal::Store(
        match e {
            store::Error::NoSuchStore => "no such store",
            store::Error::AccessDenied => "access denied",
            store::Error::Other(_) => BACKEND_ERROR,
        }
        .into(),
    )
}

/// An `increment`'s failure: contention when another writer moved the counter first, else as any.
///
/// Spin's DynamoDB backend (`key-value-aws`, Spin 4.0.2) increments with a consistent `GetItem`
/// and then a `TransactWriteItems` conditioned on the value it read (`#VAL = :old_val`, or
/// `attribute_not_exists (#VAL)`); when another writer got there first the transaction is cancelled
/// and the guest gets `other(<the AWS SDK error's Debug form>)`, which names the exception and each
/// cancellation reason's code. A cancelled transaction wrote nothing. SQLite and Redis increment
/// atomically and never fail this way.
fn increment_fault(e: store::Error) -> Internal {
    match &e {
        store::Error::Other(message) if is_contention(message) => Internal::Store(CONTENDED.into()),
        _ => fault(e),
    }
}

/// A transaction cancelled because its condition failed (the counter moved) or because another
/// transaction held the item (`TransactionConflict`): both leave the item as the other writer left it.
fn is_contention(message: &str) -> bool {
    message.contains("TransactionCanceledException")
        && (message.contains("ConditionalCheckFailed") || message.contains("TransactionConflict"))
}

impl SpinStore {
    pub fn open_default() -> SpinStore {
        SpinStore { bucket: store::open("default").map_err(fault) }
    }

    fn bucket(&self) -> StoreResult<&store::Bucket> {
        self.bucket.as_ref().map_err(Clone::clone)
    }
}

impl KeyValue for SpinStore {
    fn get(&self, key: &Key) -> StoreResult<Option<Vec<u8>>> {
        self.bucket()?.get(key.as_str()).map_err(fault)
    }

    fn set(&self, key: &Key, value: &[u8]) -> StoreResult<()> {
        self.bucket()?.set(key.as_str(), value).map_err(fault)
    }

    fn delete(&self, key: &Key) -> StoreResult<()> {
        self.bucket()?.delete(key.as_str()).map_err(fault)
    }

    fn exists(&self, key: &Key) -> StoreResult<bool> {
        self.bucket()?.exists(key.as_str()).map_err(fault)
    }

    fn increment(&self, key: &Key, delta: i64) -> StoreResult<i64> {
        atomics::increment(self.bucket()?, key.as_str(), delta).map_err(increment_fault)
    }

    /// Every key, page by page (Spin answers them all in one page on every backend: a scan).
    fn keys(&self) -> StoreResult<Vec<String>> {
        let bucket = self.bucket()?;
        let mut keys = Vec::new();
        let mut cursor = None;
        loop {
            let page = bucket.list_keys(cursor.as_deref()).map_err(fault)?;
            keys.extend(page.keys);
            match page.cursor {
                Some(next) if Some(&next) != cursor.as_ref() => cursor = Some(next),
                _ => return Ok(keys),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_conditional_increment_is_contention_and_other_failures_are_not() {
        // The shape of the AWS SDK's Debug form that Spin hands the guest (abridged).
        let cancelled = |code: &str| {
            format!(
                "ServiceError(ServiceError {{ source: TransactionCanceledException(TransactionCanceledException {{ \
                 message: Some(\"Transaction cancelled, please refer cancellation reasons for specific reasons \
                 [{code}]\"), cancellation_reasons: Some([CancellationReason {{ item: None, code: Some(\"{code}\"), \
                 message: None }}]), meta: ErrorMetadata {{ code: Some(\"TransactionCanceledException\") }} }}) }})"
            )
        };
        for code in ["ConditionalCheckFailed", "TransactionConflict"] {
            assert_eq!(increment_fault(store::Error::Other(cancelled(code))), Internal::Store(CONTENDED.into()));
        }
        for other in [
            cancelled("ValidationError"),
            cancelled("ThrottlingError"),
            "DispatchFailure(DispatchFailure { source: ConnectorError { kind: Timeout } })".to_owned(),
            "ParseIntError { kind: InvalidDigit }".to_owned(),
        ] {
            assert_eq!(increment_fault(store::Error::Other(other)), Internal::Store(BACKEND_ERROR.into()));
        }
        assert_eq!(increment_fault(store::Error::AccessDenied), Internal::Store("access denied".into()));
    }
}
