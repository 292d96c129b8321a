//! TEMPORARY stub of the tenant id type, so that identity compiles on its own branch.
//! The real `name.rs` (another branch) replaces this file at merge; drop this commit then.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantId(String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantIdError;

impl fmt::Display for TenantIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid tenant id")
    }
}

impl TenantId {
    /// 1..=128 characters of `[A-Za-z0-9._-]`, not starting with '.', no "..".
    pub fn parse(s: &str) -> Result<TenantId, TenantIdError> {
        let charset_ok = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if s.is_empty() || s.len() > 128 || !charset_ok || s.starts_with('.') || s.contains("..") {
            return Err(TenantIdError);
        }
        Ok(TenantId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
