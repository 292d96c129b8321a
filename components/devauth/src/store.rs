//! The key files under the dev directory: created once, readable by their owner only, never overwritten.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::Path;

use anyhow::Context;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jwt_simple::prelude::Ed25519KeyPair;

use crate::{DevKeys, ENCRYPTION_KEY_ID};

const SIGNING_KEY_FILE: &str = "devauth-ed25519.pem";
const ENCRYPTION_KEYS_FILE: &str = "encryption_keys";

/// Which files a [`DevKeys::load_or_create_reporting`] call created (the others were there already).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Created {
    pub signing_key: bool,
    pub encryption_keys: bool,
}

pub(crate) fn load_or_create(dir: &Path) -> anyhow::Result<(DevKeys, Created)> {
    create_private_dir(dir)?;
    let key_path = dir.join(SIGNING_KEY_FILE);
    let signing_key = create_once(&key_path, || Ed25519KeyPair::generate().to_pem())?;
    let keys_path = dir.join(ENCRYPTION_KEYS_FILE);
    let encryption_keys = create_once(&keys_path, new_encryption_keys)?;

    let pem = fs::read_to_string(&key_path).with_context(|| format!("reading {}", key_path.display()))?;
    let ed = Ed25519KeyPair::from_pem(&pem)
        .map_err(|_| anyhow::anyhow!("{} is not an Ed25519 private key in PEM", key_path.display()))?;
    let value = fs::read_to_string(&keys_path).with_context(|| format!("reading {}", keys_path.display()))?;
    let value = value.trim().to_string();
    domain::crypto::Keyring::parse(&value)
        .map_err(|_| anyhow::anyhow!("{} is not a valid encryption_keys value", keys_path.display()))?;
    Ok((DevKeys::with_ed25519(ed, value), Created { signing_key, encryption_keys }))
}

/// `<id>:<base64 of 32 random bytes>`, the format `domain::crypto::Keyring::parse` reads.
pub(crate) fn new_encryption_keys() -> String {
    let mut key = [0u8; domain::crypto::KEY_LENGTH];
    getrandom::fill(&mut key).expect("the system's random source");
    format!("{ENCRYPTION_KEY_ID}:{}", STANDARD.encode(key))
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Writes `content()` to a new file readable by its owner only; keeps an existing file. True if created.
fn create_once(path: &Path, content: impl FnOnce() -> String) -> anyhow::Result<bool> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(content().as_bytes()).with_context(|| format!("writing {}", path.display()))?;
            Ok(true)
        }
        Err(error) if error.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(error) => Err(error).with_context(|| format!("creating {}", path.display())),
    }
}
