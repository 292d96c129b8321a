use domain::error::Internal;
use domain::store::{Key, KeyValue, StoreResult, BACKEND_ERROR};
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
        atomics::increment(self.bucket()?, key.as_str(), delta).map_err(fault)
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
