//! Key-value backends with the semantics of Spin's own (key-value-spin, key-value-redis,
//! key-value-aws),
//! weak spots included: they are what the components will meet in production.

pub mod calls;
pub mod dynamo;
pub mod redis;
pub mod runtime_config;
pub mod sqlite;

use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
pub enum KvError {
    AccessDenied,
    NoSuchStore,
    Other(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum SwapError {
    CasFailed(String),
    Other(String),
}

pub type KvResult<T> = Result<T, KvError>;

/// Spin logs the backend error and hands the guest its Debug form.
pub(crate) fn other(err: impl std::fmt::Debug) -> KvError {
    KvError::Other(format!("{err:?}"))
}

/// A configured store manager, i.e. the backend behind one `key_value_store` label.
#[derive(Clone)]
pub enum Backend {
    Sqlite(Arc<sqlite::SqliteKv>),
    Redis(Arc<redis::RedisKv>),
    Dynamo(Arc<dynamo::DynamoKv>),
}

impl Backend {
    /// What guests asked of this backend so far (see [`calls`]).
    pub fn calls(&self) -> &calls::Calls {
        match self {
            Backend::Sqlite(s) => &s.calls,
            Backend::Redis(r) => &r.calls,
            Backend::Dynamo(d) => &d.calls,
        }
    }
}

/// What became of a call, for the counts: a DynamoDB `increment` whose transaction was cancelled
/// on its condition is contention (as the components read the error: `spin-bridge`'s store).
fn outcome<T>(kind: &str, result: &KvResult<T>) -> calls::Outcome {
    match result {
        Ok(_) => calls::Outcome::Ok,
        Err(KvError::Other(m))
            if kind == "increment"
                && m.contains("TransactionCanceledException")
                && (m.contains("ConditionalCheckFailed") || m.contains("TransactionConflict")) =>
        {
            calls::Outcome::Contended
        }
        Err(_) => calls::Outcome::Failed,
    }
}

/// An open store (a `bucket` resource).
#[derive(Clone)]
pub struct Store {
    pub label: String,
    pub backend: Backend,
}

/// A `cas` resource.
pub enum Cas {
    Sqlite(sqlite::SqliteCas),
    Redis(redis::RedisCas),
    Dynamo(dynamo::DynamoCas),
}

impl Cas {
    pub fn key(&self) -> &str {
        match self {
            Cas::Sqlite(c) => &c.key,
            Cas::Redis(c) => &c.key,
            Cas::Dynamo(c) => &c.key,
        }
    }
}

impl Store {
    pub async fn get(&self, key: &str) -> KvResult<Option<Vec<u8>>> {
        let family = calls::family(key);
        let result = match &self.backend {
            Backend::Sqlite(s) => s.get(&self.label, key),
            Backend::Redis(r) => r.get(key).await,
            Backend::Dynamo(d) => d.get(key).await,
        };
        self.backend.calls().record("get", family, outcome("get", &result));
        result
    }

    pub async fn set(&self, key: &str, value: &[u8]) -> KvResult<()> {
        let family = calls::family(key);
        let result = match &self.backend {
            Backend::Sqlite(s) => s.set(&self.label, key, value),
            Backend::Redis(r) => r.set(key, value).await,
            Backend::Dynamo(d) => d.set(key, value).await,
        };
        self.backend.calls().record("set", family, outcome("set", &result));
        result
    }

    pub async fn delete(&self, key: &str) -> KvResult<()> {
        let family = calls::family(key);
        let result = match &self.backend {
            Backend::Sqlite(s) => s.delete(&self.label, key),
            Backend::Redis(r) => r.delete(key).await,
            Backend::Dynamo(d) => d.delete(key).await,
        };
        self.backend.calls().record("delete", family, outcome("delete", &result));
        result
    }

    pub async fn exists(&self, key: &str) -> KvResult<bool> {
        let family = calls::family(key);
        let result = match &self.backend {
            Backend::Sqlite(s) => s.get(&self.label, key).map(|v| v.is_some()),
            Backend::Redis(r) => r.exists(key).await,
            Backend::Dynamo(d) => d.exists(key).await,
        };
        self.backend.calls().record("exists", family, outcome("exists", &result));
        result
    }

    pub async fn get_keys(&self) -> KvResult<Vec<String>> {
        let family = String::new();
        let result = match &self.backend {
            Backend::Sqlite(s) => s.get_keys(&self.label),
            Backend::Redis(r) => r.get_keys().await,
            Backend::Dynamo(d) => d.get_keys().await,
        };
        self.backend.calls().record("get_keys", family, outcome("get_keys", &result));
        result
    }

    pub async fn get_many(&self, keys: Vec<String>) -> KvResult<Vec<(String, Option<Vec<u8>>)>> {
        let family = calls::family_of_all(&keys);
        let result = match &self.backend {
            Backend::Sqlite(s) => s.get_many(&self.label, keys),
            Backend::Redis(r) => r.get_many(keys).await,
            Backend::Dynamo(d) => d.get_many(keys).await,
        };
        self.backend.calls().record("get_many", family, outcome("get_many", &result));
        result
    }

    pub async fn set_many(&self, key_values: Vec<(String, Vec<u8>)>) -> KvResult<()> {
        let family = calls::family_of_all(key_values.iter().map(|(k, _)| k));
        let result = match &self.backend {
            Backend::Sqlite(s) => s.set_many(&self.label, key_values),
            Backend::Redis(r) => r.set_many(key_values).await,
            Backend::Dynamo(d) => d.set_many(key_values).await,
        };
        self.backend.calls().record("set_many", family, outcome("set_many", &result));
        result
    }

    pub async fn delete_many(&self, keys: Vec<String>) -> KvResult<()> {
        let family = calls::family_of_all(&keys);
        let result = match &self.backend {
            Backend::Sqlite(s) => s.delete_many(&self.label, keys),
            Backend::Redis(r) => r.delete_many(keys).await,
            Backend::Dynamo(d) => d.delete_many(keys).await,
        };
        self.backend.calls().record("delete_many", family, outcome("delete_many", &result));
        result
    }

    pub async fn increment(&self, key: &str, delta: i64) -> KvResult<i64> {
        let family = calls::family(key);
        let result = match &self.backend {
            Backend::Sqlite(s) => s.increment(&self.label, key, delta),
            Backend::Redis(r) => r.increment(key, delta).await,
            Backend::Dynamo(d) => d.increment(key, delta).await,
        };
        self.backend.calls().record("increment", family, outcome("increment", &result));
        result
    }

    pub async fn new_cas(&self, key: &str) -> KvResult<Cas> {
        match &self.backend {
            Backend::Sqlite(s) => Ok(Cas::Sqlite(s.new_cas(&self.label, key))),
            Backend::Redis(r) => Ok(Cas::Redis(r.new_cas(key).await?)),
            Backend::Dynamo(d) => Ok(Cas::Dynamo(d.new_cas(key))),
        }
    }

    pub async fn cas_current(&self, cas: &mut Cas) -> KvResult<Option<Vec<u8>>> {
        match (&self.backend, cas) {
            (Backend::Sqlite(s), Cas::Sqlite(c)) => s.cas_current(c),
            (_, Cas::Redis(c)) => c.current().await,
            (Backend::Dynamo(d), Cas::Dynamo(c)) => d.cas_current(c).await,
            _ => Err(KvError::Other("cas does not belong to this store".into())),
        }
    }

    pub async fn cas_swap(&self, cas: &Cas, value: Vec<u8>) -> Result<(), SwapError> {
        match (&self.backend, cas) {
            (Backend::Sqlite(s), Cas::Sqlite(c)) => s.cas_swap(c, value),
            (_, Cas::Redis(c)) => c.swap(value).await,
            (Backend::Dynamo(d), Cas::Dynamo(c)) => d.cas_swap(c, value).await,
            _ => Err(SwapError::Other("cas does not belong to this store".into())),
        }
    }
}
