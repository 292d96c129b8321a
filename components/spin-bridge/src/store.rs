use domain::error::Internal;
use domain::store::{Key, KeyValue, StoreResult};
use spin_sdk::wit::wasi::keyvalue::{atomics, batch, store};

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
            store::Error::Other(_) => "backend error",
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

    fn get_many(&self, keys: &[Key]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        let names: Vec<String> = keys.iter().map(|k| k.as_str().to_owned()).collect();
        let found = batch::get_many(self.bucket()?, &names).map_err(fault)?;
        // Backends differ in whether absent keys are returned; match by key, not position.
        let mut by_key: std::collections::HashMap<String, Option<Vec<u8>>> = found.into_iter().collect();
        Ok(names.iter().map(|k| by_key.remove(k).flatten()).collect())
    }

    fn increment(&self, key: &Key, delta: i64) -> StoreResult<i64> {
        atomics::increment(self.bucket()?, key.as_str(), delta).map_err(fault)
    }
}
