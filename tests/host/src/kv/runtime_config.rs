//! `[key_value_store.<label>]` tables of a Spin runtime-config file, as `spin up
//! --runtime-config-file` reads them; relative SQLite paths are relative to that file's directory.

use super::{dynamo::DynamoConfig, dynamo::DynamoKv, redis::RedisKv, sqlite::SqliteKv, Backend};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Default, Deserialize)]
pub struct RuntimeConfig {
    #[serde(default)]
    pub key_value_store: BTreeMap<String, StoreConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum StoreConfig {
    Spin {
        path: Option<PathBuf>,
    },
    Redis {
        url: String,
    },
    /// Spin's `type = "aws_dynamo"` (see [`super::dynamo`]).
    #[serde(rename = "aws_dynamo")]
    AwsDynamo(DynamoConfig),
}

impl RuntimeConfig {
    pub fn load(path: &Path) -> Result<RuntimeConfig> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read runtime config {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid runtime config {}", path.display()))
    }
}

/// The store managers by label: what the runtime config names, plus `default` on SQLite at
/// `default_sqlite` unless the config redefines it. `env` is the process environment, as the
/// AWS SDK's default chain reads it for `aws_dynamo` stores without credentials.
pub fn backends(
    config: &RuntimeConfig,
    config_dir: Option<&Path>,
    default_sqlite: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, Backend>> {
    let mut out = BTreeMap::new();
    for (label, store) in &config.key_value_store {
        let backend = match store {
            StoreConfig::Spin { path } => {
                let path = path.as_ref().map(|p| match config_dir {
                    Some(dir) if p.is_relative() => dir.join(p),
                    _ => p.clone(),
                });
                Backend::Sqlite(Arc::new(SqliteKv::open(path.as_deref())?))
            }
            StoreConfig::Redis { url } => Backend::Redis(Arc::new(RedisKv::new(url)?)),
            StoreConfig::AwsDynamo(dynamo) => Backend::Dynamo(Arc::new(DynamoKv::new(dynamo, env)?)),
        };
        out.insert(label.clone(), backend);
    }
    if !out.contains_key("default") {
        out.insert("default".into(), Backend::Sqlite(Arc::new(SqliteKv::open(Some(default_sqlite))?)));
    }
    Ok(out)
}

pub fn check_labels<'a>(
    backends: &BTreeMap<String, Backend>,
    component: &str,
    labels: impl IntoIterator<Item = &'a String>,
) -> Result<()> {
    for label in labels {
        if !backends.contains_key(label) {
            bail!("unknown key_value_stores label {label:?} for component {component:?}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spin_and_redis_stores() {
        let c: RuntimeConfig = toml::from_str(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n[key_value_store.x]\ntype = \"spin\"\npath = \"x.db\"\n",
        )
        .unwrap();
        assert!(matches!(&c.key_value_store["default"], StoreConfig::Redis { url } if url == "redis://127.0.0.1:6379"));
        assert!(matches!(&c.key_value_store["x"], StoreConfig::Spin { path: Some(p) } if p == Path::new("x.db")));
    }

    #[test]
    fn parses_aws_dynamo_stores_as_spin_does() {
        let text = "[key_value_store.default]\ntype = \"aws_dynamo\"\nregion = \"eu-west-1\"\ntable = \"regsecrets\"\nconsistent_read = true\n";
        let c: RuntimeConfig = toml::from_str(text).unwrap();
        let StoreConfig::AwsDynamo(d) = &c.key_value_store["default"] else { panic!() };
        assert_eq!((d.region.as_str(), d.table.as_str(), d.consistent_read), ("eu-west-1", "regsecrets", Some(true)));
        let env = |name: &str| (name == "AWS_ENDPOINT_URL").then(|| "http://127.0.0.1:1".to_owned());
        let b = backends(&c, None, Path::new("unused.db"), &env).unwrap();
        let Backend::Dynamo(kv) = &b["default"] else { panic!() };
        assert!(kv.consistent_read());
        let without: RuntimeConfig =
            toml::from_str("[key_value_store.default]\ntype = \"aws_dynamo\"\nregion = \"r\"\ntable = \"t\"\n")
                .unwrap();
        let b = backends(&without, None, Path::new("unused.db"), &env).unwrap();
        let Backend::Dynamo(kv) = &b["default"] else { panic!() };
        assert!(!kv.consistent_read(), "Spin's default is eventually consistent reads");
        assert!(
            toml::from_str::<RuntimeConfig>("[key_value_store.default]\ntype = \"aws_dynamo\"\ntable = \"t\"\n")
                .is_err(),
            "region is required"
        );
        let shipped =
            RuntimeConfig::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../runtime-config/dynamo.toml"))
                .unwrap();
        assert!(
            matches!(&shipped.key_value_store["default"], StoreConfig::AwsDynamo(d) if d.consistent_read == Some(true))
        );
    }

    #[test]
    fn default_store_is_sqlite_and_relative_paths_follow_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let c: RuntimeConfig = toml::from_str("[key_value_store.other]\ntype = \"spin\"\npath = \"o.db\"\n").unwrap();
        let b = backends(&c, Some(dir.path()), &dir.path().join("d.db"), &|_| None).unwrap();
        let Backend::Sqlite(d) = &b["default"] else { panic!() };
        assert_eq!(d.path(), Some(dir.path().join("d.db").as_path()));
        let Backend::Sqlite(o) = &b["other"] else { panic!() };
        assert_eq!(o.path(), Some(dir.path().join("o.db").as_path()));
        assert!(check_labels(&b, "c", &["nope".to_string()]).is_err());
    }
}
