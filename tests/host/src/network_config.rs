//! The outbound-networking part of a Spin runtime-config file, read as Spin 4.0.2 reads it:
//! `[outbound_networking] block_networks = ["private", "10.0.0.0/8", ...]` and `[[client_tls]]`
//! tables (both refuse unknown fields), plus the host's own test-only loopback safety net.

use crate::blocked_networks::BlockedNetworks;
use crate::client_tls::{ClientTlsConfigs, ClientTlsToml};
use anyhow::{Context, Result};
use ip_network::IpNetwork;
use serde::Deserialize;
use std::path::Path;

/// What the host applies to every outbound request that leaves the process.
#[derive(Default)]
pub struct NetworkPolicy {
    pub blocked: BlockedNetworks,
    pub tls: ClientTlsConfigs,
    /// The test-only safety net: refuse every destination but loopback, before any DNS lookup.
    pub loopback_only: bool,
}

#[derive(Debug, Default, Deserialize)]
struct RuntimeConfigToml {
    outbound_networking: Option<OutboundNetworkingToml>,
    #[serde(default)]
    client_tls: Vec<ClientTlsToml>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutboundNetworkingToml {
    #[serde(default)]
    block_networks: Vec<String>,
}

impl NetworkPolicy {
    /// Reads the runtime-config file's outbound sections (none: Spin's defaults).
    pub fn load(runtime_config: Option<&Path>, loopback_only: bool) -> Result<NetworkPolicy> {
        let Some(path) = runtime_config else {
            return Ok(NetworkPolicy { loopback_only, ..Default::default() });
        };
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, dir, loopback_only).with_context(|| format!("invalid runtime config {}", path.display()))
    }

    pub fn parse(text: &str, config_dir: &Path, loopback_only: bool) -> Result<NetworkPolicy> {
        let config: RuntimeConfigToml = toml::from_str(text)?;
        let blocked = match config.outbound_networking {
            Some(table) => {
                block_networks(&table.block_networks).context("failed to parse [outbound_networking] table")?
            }
            None => BlockedNetworks::default(),
        };
        let tls =
            ClientTlsConfigs::new(config.client_tls, config_dir).context("failed to parse [[client_tls]] table")?;
        Ok(NetworkPolicy { blocked, tls, loopback_only })
    }
}

fn block_networks(entries: &[String]) -> Result<BlockedNetworks> {
    let mut networks = Vec::new();
    let mut private = false;
    for entry in entries {
        if entry == "private" {
            private = true;
        } else {
            let network = IpNetwork::from_str_truncate(entry).map_err(|_| {
                anyhow::anyhow!(
                    "invalid value {entry:?}: expected an IP network in CIDR notation or the keyword 'private'"
                )
            })?;
            networks.push(network);
        }
    }
    Ok(BlockedNetworks::new(&networks, private))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NetworkPolicy> {
        NetworkPolicy::parse(text, Path::new("."), false)
    }

    #[test]
    fn block_networks_private_and_cidrs() {
        let p = parse("[key_value_store.default]\ntype = \"spin\"\n[outbound_networking]\nblock_networks = [\"private\", \"1.2.3.0/24\"]\n").unwrap();
        assert!(p.blocked.is_blocked("127.0.0.1".parse().unwrap()));
        assert!(p.blocked.is_blocked("1.2.3.4".parse().unwrap()));
        assert!(!p.blocked.is_blocked("1.2.4.4".parse().unwrap()));
        // CIDRs are truncated to their network, as Spin does.
        let p = parse("[outbound_networking]\nblock_networks = [\"8.8.8.8/16\"]\n").unwrap();
        assert!(p.blocked.is_blocked("8.8.1.1".parse().unwrap()));
    }

    #[test]
    fn no_section_blocks_nothing() {
        assert!(parse("").unwrap().blocked.is_empty());
        assert!(parse("[outbound_networking]\n").unwrap().blocked.is_empty());
    }

    #[test]
    fn refuses_unknown_keys_and_bad_networks() {
        assert!(parse("[outbound_networking]\nblock_networks = [\"privat\"]\n").is_err());
        assert!(parse("[outbound_networking]\nblock = [\"private\"]\n").is_err());
    }

    #[test]
    fn the_shipped_production_config_blocks_private_networks_only() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../runtime-config/production.toml");
        let p = NetworkPolicy::load(Some(&path), false).unwrap();
        for private in ["127.0.0.1", "10.0.0.5", "172.16.3.4", "192.168.1.1", "169.254.169.254", "::1", "fd00::1"] {
            assert!(p.blocked.is_blocked(private.parse().unwrap()), "{private}");
        }
        assert!(!p.blocked.is_blocked("140.82.112.3".parse().unwrap()));
        assert!(!p.loopback_only);
        // Its key-value store table is one the host (and Spin) reads.
        crate::kv::runtime_config::RuntimeConfig::load(&path).unwrap();
    }
}
