//! Spin's SQLite key-value store (key-value-spin): one table `spin_key_value(store, key, value)`,
//! one connection behind a process-wide mutex, SQLite's default journal and `synchronous` settings
//! (Spin sets no pragmas), counters as 8-byte little-endian i64 blobs.

use super::{other, KvResult, SwapError};
use rusqlite::{named_params, Connection};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

const UPSERT: &str = "INSERT INTO spin_key_value (store, key, value) VALUES ($1, $2, $3)
                     ON CONFLICT(store, key) DO UPDATE SET value=$3";
const SELECT: &str = "SELECT value FROM spin_key_value WHERE store=$1 AND key=$2";

pub struct SqliteKv {
    path: Option<PathBuf>,
    connection: Arc<Mutex<Connection>>,
    pub(crate) calls: super::calls::Calls,
}

/// SQLite work blocks; Spin does it in `block_in_place`, so it holds a runtime worker meanwhile.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

impl SqliteKv {
    /// `None` is an in-memory database, as `type = "spin"` without `path`.
    pub fn open(path: Option<&Path>) -> anyhow::Result<SqliteKv> {
        let connection = match path {
            Some(p) => {
                if let Some(parent) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)?;
                }
                Connection::open(p)?
            }
            None => Connection::open_in_memory()?,
        };
        connection.execute(
            "CREATE TABLE IF NOT EXISTS spin_key_value (
               store TEXT NOT NULL,
               key   TEXT NOT NULL,
               value BLOB NOT NULL,
               PRIMARY KEY (store, key)
            )",
            [],
        )?;
        rusqlite::vtab::array::load_module(&connection)?;
        Ok(SqliteKv {
            path: path.map(Path::to_path_buf),
            connection: Arc::new(Mutex::new(connection)),
            calls: Default::default(),
        })
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Every row, for tests that check what a request left behind.
    pub fn dump(&self) -> anyhow::Result<Vec<(String, String, Vec<u8>)>> {
        let conn = self.connection.lock().unwrap();
        let mut stmt = conn.prepare("SELECT store, key, value FROM spin_key_value ORDER BY store, key")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn get(&self, store: &str, key: &str) -> KvResult<Option<Vec<u8>>> {
        blocking(|| {
            self.connection
                .lock()
                .unwrap()
                .prepare_cached(SELECT)
                .map_err(other)?
                .query_map([store, key], |row| row.get::<_, Vec<u8>>(0))
                .map_err(other)?
                .next()
                .transpose()
                .map_err(other)
        })
    }

    pub fn set(&self, store: &str, key: &str, value: &[u8]) -> KvResult<()> {
        blocking(|| {
            self.connection
                .lock()
                .unwrap()
                .prepare_cached(UPSERT)
                .map_err(other)?
                .execute(rusqlite::params![store, key, value])
                .map_err(other)
                .map(drop)
        })
    }

    pub fn delete(&self, store: &str, key: &str) -> KvResult<()> {
        blocking(|| {
            self.connection
                .lock()
                .unwrap()
                .prepare_cached("DELETE FROM spin_key_value WHERE store=$1 AND key=$2")
                .map_err(other)?
                .execute([store, key])
                .map_err(other)
                .map(drop)
        })
    }

    pub fn get_keys(&self, store: &str) -> KvResult<Vec<String>> {
        blocking(|| {
            self.connection
                .lock()
                .unwrap()
                .prepare_cached("SELECT key FROM spin_key_value WHERE store=$1")
                .map_err(other)?
                .query_map([store], |row| row.get::<_, String>(0))
                .map_err(other)?
                .map(|r| r.map_err(other))
                .collect()
        })
    }

    /// As Spin: keys that are absent are left out of the answer rather than paired with `none`.
    pub fn get_many(&self, store: &str, keys: Vec<String>) -> KvResult<Vec<(String, Option<Vec<u8>>)>> {
        blocking(|| {
            let keys: Vec<rusqlite::types::Value> = keys.into_iter().map(Into::into).collect();
            let keys = Rc::new(keys);
            self.connection
                .lock()
                .unwrap()
                .prepare_cached("SELECT key, value FROM spin_key_value WHERE store=:name AND key IN rarray(:keys)")
                .map_err(other)?
                .query_map(named_params! {":name": store, ":keys": keys}, |row| {
                    <(String, Option<Vec<u8>>)>::try_from(row)
                })
                .map_err(other)?
                .map(|r| r.map_err(other))
                .collect()
        })
    }

    pub fn set_many(&self, store: &str, key_values: Vec<(String, Vec<u8>)>) -> KvResult<()> {
        blocking(|| {
            let mut conn = self.connection.lock().unwrap();
            let tx = conn.transaction().map_err(other)?;
            for (k, v) in key_values {
                tx.prepare_cached(UPSERT).map_err(other)?.execute(rusqlite::params![store, k, v]).map_err(other)?;
            }
            tx.commit().map_err(other)
        })
    }

    pub fn delete_many(&self, store: &str, keys: Vec<String>) -> KvResult<()> {
        blocking(|| {
            let keys: Vec<rusqlite::types::Value> = keys.into_iter().map(Into::into).collect();
            let keys = Rc::new(keys);
            self.connection
                .lock()
                .unwrap()
                .prepare_cached("DELETE FROM spin_key_value WHERE store=:name AND key IN rarray(:keys)")
                .map_err(other)?
                .execute(named_params! {":name": store, ":keys": keys})
                .map_err(other)
                .map(drop)
        })
    }

    /// As Spin, a value that is not 8 bytes makes the host panic while it holds the connection's
    /// mutex: the request fails and the poisoned mutex fails every later store call.
    pub fn increment(&self, store: &str, key: &str, delta: i64) -> KvResult<i64> {
        blocking(|| {
            let mut conn = self.connection.lock().unwrap();
            let tx = conn.transaction().map_err(other)?;
            let value: Option<Vec<u8>> = tx
                .prepare_cached(SELECT)
                .map_err(other)?
                .query_map([store, key], |row| row.get(0))
                .map_err(other)?
                .next()
                .transpose()
                .map_err(other)?;
            let current = match value {
                Some(v) => i64::from_le_bytes(v.try_into().expect("incorrect length")),
                None => 0,
            };
            let new_value = current + delta;
            tx.prepare_cached(UPSERT)
                .map_err(other)?
                .execute(rusqlite::params![store, key, new_value.to_le_bytes()])
                .map_err(other)?;
            tx.commit().map_err(other)?;
            Ok(new_value)
        })
    }

    pub fn new_cas(&self, store: &str, key: &str) -> SqliteCas {
        SqliteCas { store: store.to_string(), key: key.to_string(), seen: None }
    }

    pub fn cas_current(&self, cas: &mut SqliteCas) -> KvResult<Option<Vec<u8>>> {
        let value = self.get(&cas.store, &cas.key)?;
        cas.seen.clone_from(&value);
        Ok(value)
    }

    /// Spin's swap: compare by value against what `current` saw; when `current` saw nothing (or
    /// was never called) the swap is an unconditional upsert.
    pub fn cas_swap(&self, cas: &SqliteCas, value: Vec<u8>) -> Result<(), SwapError> {
        let cas_err = |e: rusqlite::Error| SwapError::Other(format!("{e:?}"));
        blocking(|| {
            let mut conn = self.connection.lock().unwrap();
            let rows = match &cas.seen {
                Some(old) => conn
                    .prepare_cached(
                        "UPDATE spin_key_value SET value=:new_value WHERE store=:name and key=:key and value=:old_value",
                    )
                    .map_err(cas_err)?
                    .execute(named_params! {
                        ":name": cas.store,
                        ":key": cas.key,
                        ":old_value": old,
                        ":new_value": value,
                    })
                    .map_err(cas_err)?,
                None => {
                    let tx = conn.transaction().map_err(cas_err)?;
                    let rows = tx
                        .prepare_cached(UPSERT)
                        .map_err(cas_err)?
                        .execute(rusqlite::params![cas.store, cas.key, value])
                        .map_err(cas_err)?;
                    tx.commit().map_err(cas_err)?;
                    rows
                }
            };
            if rows == 1 {
                Ok(())
            } else {
                Err(SwapError::CasFailed("failed to update 1 row".to_owned()))
            }
        })
    }
}

pub struct SqliteCas {
    pub(crate) store: String,
    pub(crate) key: String,
    seen: Option<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> (tempfile::TempDir, SqliteKv) {
        let dir = tempfile::tempdir().unwrap();
        let kv = SqliteKv::open(Some(&dir.path().join(".spin/sqlite_key_value.db"))).unwrap();
        (dir, kv)
    }

    #[test]
    fn get_set_delete_exists_per_store() {
        let (_d, kv) = temp();
        assert_eq!(kv.get("default", "a").unwrap(), None);
        kv.set("default", "a", b"1").unwrap();
        kv.set("other", "a", b"2").unwrap();
        assert_eq!(kv.get("default", "a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(kv.get_keys("default").unwrap(), vec!["a"]);
        kv.delete("default", "a").unwrap();
        assert_eq!(kv.get("default", "a").unwrap(), None);
        assert_eq!(kv.get("other", "a").unwrap(), Some(b"2".to_vec()));
        assert_eq!(kv.dump().unwrap(), vec![("other".into(), "a".into(), b"2".to_vec())]);
    }

    #[test]
    fn counters_are_le_i64_blobs() {
        let (_d, kv) = temp();
        assert_eq!(kv.increment("s", "c", 5).unwrap(), 5);
        assert_eq!(kv.increment("s", "c", -2).unwrap(), 3);
        assert_eq!(kv.get("s", "c").unwrap(), Some(3i64.to_le_bytes().to_vec()));
    }

    #[test]
    fn increment_of_non_counter_poisons_the_store_like_spin() {
        let (_d, kv) = temp();
        kv.set("s", "x", b"abc").unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| kv.increment("s", "x", 1)));
        assert!(r.is_err());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| kv.get("s", "x")));
        assert!(r.is_err(), "the mutex stays poisoned");
    }

    #[test]
    fn batch_calls() {
        let (_d, kv) = temp();
        kv.set_many("s", vec![("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec())]).unwrap();
        let got = kv.get_many("s", vec!["a".into(), "zz".into(), "b".into()]).unwrap();
        assert_eq!(
            got,
            vec![("a".into(), Some(b"1".to_vec())), ("b".into(), Some(b"2".to_vec()))],
            "absent keys are omitted, as in Spin"
        );
        kv.delete_many("s", vec!["a".into(), "b".into()]).unwrap();
        assert!(kv.get_keys("s").unwrap().is_empty());
    }

    #[test]
    fn swap_after_current_compares_by_value() {
        let (_d, kv) = temp();
        kv.set("s", "k", b"v1").unwrap();
        let mut cas = kv.new_cas("s", "k");
        assert_eq!(kv.cas_current(&mut cas).unwrap(), Some(b"v1".to_vec()));
        kv.set("s", "k", b"v2").unwrap();
        assert!(matches!(kv.cas_swap(&cas, b"mine".to_vec()), Err(SwapError::CasFailed(_))));
        // Same value written back in between: the comparison by value cannot tell (ABA).
        kv.set("s", "k", b"v1").unwrap();
        kv.cas_swap(&cas, b"mine".to_vec()).unwrap();
        assert_eq!(kv.get("s", "k").unwrap(), Some(b"mine".to_vec()));
    }

    #[test]
    fn swap_without_or_after_absent_current_is_unconditional_upsert() {
        let (_d, kv) = temp();
        let mut cas = kv.new_cas("s", "k");
        assert_eq!(kv.cas_current(&mut cas).unwrap(), None);
        kv.set("s", "k", b"someone else").unwrap();
        kv.cas_swap(&cas, b"mine".to_vec()).unwrap();
        assert_eq!(kv.get("s", "k").unwrap(), Some(b"mine".to_vec()));
        let unread = kv.new_cas("s", "k");
        kv.cas_swap(&unread, b"blind".to_vec()).unwrap();
        assert_eq!(kv.get("s", "k").unwrap(), Some(b"blind".to_vec()));
    }

    #[test]
    fn writes_are_visible_to_a_second_connection() {
        let (d, kv) = temp();
        kv.set("s", "k", b"v").unwrap();
        let again = SqliteKv::open(Some(&d.path().join(".spin/sqlite_key_value.db"))).unwrap();
        assert_eq!(again.get("s", "k").unwrap(), Some(b"v".to_vec()));
    }
}
