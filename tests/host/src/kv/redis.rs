//! Spin's Redis key-value store (key-value-redis, Spin 4.0.2): the store label is ignored (every
//! store is the whole database), counters are decimal text (INCRBY), `get_keys` is `KEYS *`,
//! `get_many` sends `KEYS <keys...>` as Spin does (so it fails for two keys or more), and `swap`
//! writes the value and then reports `cas-failed` because Spin's `UNWATCH <key>` is refused.

use super::{other, KvResult, SwapError};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Client, RedisError};
use tokio::sync::OnceCell;

pub struct RedisKv {
    url: String,
    connection: OnceCell<ConnectionManager>,
    pub(crate) calls: super::calls::Calls,
}

impl RedisKv {
    pub fn new(url: &str) -> anyhow::Result<RedisKv> {
        redis::parse_redis_url(url).ok_or_else(|| anyhow::anyhow!("Invalid Redis URL"))?;
        Ok(RedisKv { url: url.to_string(), connection: OnceCell::new(), calls: Default::default() })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    async fn conn(&self) -> KvResult<ConnectionManager> {
        self.connection
            .get_or_try_init(|| async { Client::open(self.url.as_str())?.get_connection_manager().await })
            .await
            .cloned()
            .map_err(other)
    }

    /// Every key and value of the database, through a separate blocking connection.
    pub fn dump(&self) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let mut conn = Client::open(self.url.as_str())?.get_connection()?;
        let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn)?;
        keys.sort();
        let mut out = Vec::new();
        for k in keys {
            let v: Option<Vec<u8>> = redis::cmd("GET").arg(&k).query(&mut conn)?;
            if let Some(v) = v {
                out.push((k, v));
            }
        }
        Ok(out)
    }

    pub async fn get(&self, key: &str) -> KvResult<Option<Vec<u8>>> {
        self.conn().await?.get(key).await.map_err(other)
    }

    pub async fn set(&self, key: &str, value: &[u8]) -> KvResult<()> {
        self.conn().await?.set(key, value).await.map_err(other)
    }

    pub async fn delete(&self, key: &str) -> KvResult<()> {
        self.conn().await?.del(key).await.map_err(other)
    }

    pub async fn exists(&self, key: &str) -> KvResult<bool> {
        self.conn().await?.exists(key).await.map_err(other)
    }

    pub async fn get_keys(&self) -> KvResult<Vec<String>> {
        self.conn().await?.keys("*").await.map_err(other)
    }

    pub async fn get_many(&self, keys: Vec<String>) -> KvResult<Vec<(String, Option<Vec<u8>>)>> {
        self.conn().await?.keys(keys).await.map_err(other)
    }

    pub async fn set_many(&self, key_values: Vec<(String, Vec<u8>)>) -> KvResult<()> {
        self.conn().await?.mset(&key_values).await.map_err(other)
    }

    pub async fn delete_many(&self, keys: Vec<String>) -> KvResult<()> {
        self.conn().await?.del(keys).await.map_err(other)
    }

    pub async fn increment(&self, key: &str, delta: i64) -> KvResult<i64> {
        self.conn().await?.incr(key, delta).await.map_err(other)
    }

    /// As Spin, each cas gets a connection of its own, for its WATCH.
    pub async fn new_cas(&self, key: &str) -> KvResult<RedisCas> {
        let connection =
            Client::open(self.url.as_str()).map_err(other)?.get_connection_manager().await.map_err(other)?;
        Ok(RedisCas { key: key.to_string(), connection })
    }
}

pub struct RedisCas {
    pub(crate) key: String,
    connection: ConnectionManager,
}

impl RedisCas {
    pub async fn current(&self) -> KvResult<Option<Vec<u8>>> {
        redis::cmd("WATCH").arg(&self.key).exec_async(&mut self.connection.clone()).await.map_err(other)?;
        self.connection.clone().get(&self.key).await.map_err(other)
    }

    pub async fn swap(&self, value: Vec<u8>) -> Result<(), SwapError> {
        let res: Result<(), RedisError> =
            redis::pipe().atomic().set(&self.key, value).query_async(&mut self.connection.clone()).await;
        redis::cmd("UNWATCH")
            .arg(&self.key)
            .exec_async(&mut self.connection.clone())
            .await
            .map_err(|err| SwapError::CasFailed(format!("{err:?}")))?;
        res.map_err(|err| SwapError::CasFailed(format!("{err:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests run against a real server only when REDIS_URL is set; they flush that database.
    fn redis() -> Option<RedisKv> {
        match std::env::var("REDIS_URL") {
            Ok(url) => Some(RedisKv::new(&url).unwrap()),
            Err(_) => {
                eprintln!("note: REDIS_URL is unset; skipping Redis backend test");
                None
            }
        }
    }

    async fn flush(kv: &RedisKv) {
        let _: () = redis::cmd("FLUSHDB").query_async(&mut kv.conn().await.unwrap()).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn redis_semantics_match_spin() {
        let Some(kv) = redis() else { return };
        flush(&kv).await;
        kv.set("a", b"1").await.unwrap();
        assert_eq!(kv.get("a").await.unwrap(), Some(b"1".to_vec()));
        assert!(kv.exists("a").await.unwrap());
        assert_eq!(kv.increment("n", 5).await.unwrap(), 5);
        assert_eq!(kv.get("n").await.unwrap(), Some(b"5".to_vec()), "counters are decimal text");
        let mut keys = kv.get_keys().await.unwrap();
        keys.sort();
        assert_eq!(keys, vec!["a", "n"]);
        kv.set_many(vec![("b".into(), b"2".to_vec()), ("c".into(), b"3".to_vec())]).await.unwrap();
        assert!(kv.get_many(vec!["b".into(), "c".into()]).await.is_err(), "KEYS b c is refused");
        kv.delete_many(vec!["b".into(), "c".into()]).await.unwrap();
        assert!(!kv.exists("b").await.unwrap());
        assert!(kv.increment("a", 1).await.is_ok(), "\"1\" is an integer to Redis");
        kv.set("t", b"text").await.unwrap();
        assert!(kv.increment("t", 1).await.is_err());

        let cas = kv.new_cas("k").await.unwrap();
        assert_eq!(cas.current().await.unwrap(), None);
        let swapped = cas.swap(b"v".to_vec()).await;
        assert!(matches!(swapped, Err(SwapError::CasFailed(_))), "{swapped:?}");
        assert_eq!(kv.get("k").await.unwrap(), Some(b"v".to_vec()), "yet the value was written");
        flush(&kv).await;
    }
}
