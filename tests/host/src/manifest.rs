//! The parts of a Spin v2 manifest (`spin.toml`) that the test host acts on.

use anyhow::{bail, Context};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
pub struct Manifest {
    pub spin_manifest_version: u32,
    pub application: Application,
    #[serde(default)]
    pub variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    pub trigger: Triggers,
    #[serde(default)]
    pub component: BTreeMap<String, ComponentDecl>,
}

#[derive(Debug, Deserialize)]
pub struct Application {
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct VariableDecl {
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct Triggers {
    #[serde(default)]
    pub http: Vec<HttpTrigger>,
}

#[derive(Debug, Deserialize)]
pub struct HttpTrigger {
    pub route: RouteConfig,
    pub component: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RouteConfig {
    Route(String),
    Private { private: bool },
}

#[derive(Debug, Clone, Deserialize)]
pub struct ComponentDecl {
    pub source: String,
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
}

impl Manifest {
    pub fn load(path: &Path) -> anyhow::Result<Manifest> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read manifest {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("invalid manifest {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Manifest> {
        let manifest: Manifest = toml::from_str(text)?;
        if manifest.spin_manifest_version != 2 {
            bail!("only spin_manifest_version = 2 is supported");
        }
        for trigger in &manifest.trigger.http {
            if !manifest.component.contains_key(&trigger.component) {
                bail!("trigger refers to component {:?}, which is not declared", trigger.component);
            }
            if let RouteConfig::Private { private: false } = trigger.route {
                bail!(
                    "route must be a string pattern or '{{ private = true }}': '{}' has {{ private = false }}",
                    trigger.component
                );
            }
        }
        Ok(manifest)
    }

    /// Component source paths are relative to the manifest's directory, as in `spin up`.
    pub fn source_path(&self, manifest_dir: &Path, component: &ComponentDecl) -> PathBuf {
        manifest_dir.join(&component.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_routes_private_and_variables() {
        let m = Manifest::parse(
            r#"
spin_manifest_version = 2
[application]
name = "app"
[variables]
auth_jwks = { required = true, secret = true }
tenant_claim = { default = "tenant" }
[[trigger.http]]
route = "/v2/..."
component = "gateway"
[[trigger.http]]
route = { private = true }
component = "create"
[component.gateway]
source = "target/gateway.wasm"
allowed_outbound_hosts = ["http://*.spin.internal"]
[component.gateway.variables]
jwks = "{{ auth_jwks }}"
[component.create]
source = "create.wasm"
key_value_stores = ["default"]
"#,
        )
        .unwrap();
        assert_eq!(m.application.name, "app");
        assert!(m.variables["auth_jwks"].required);
        assert_eq!(m.variables["tenant_claim"].default.as_deref(), Some("tenant"));
        assert!(matches!(&m.trigger.http[0].route, RouteConfig::Route(r) if r == "/v2/..."));
        assert!(matches!(m.trigger.http[1].route, RouteConfig::Private { private: true }));
        assert_eq!(m.component["create"].key_value_stores, vec!["default"]);
        assert_eq!(m.component["gateway"].variables["jwks"], "{{ auth_jwks }}");
    }

    #[test]
    fn refuses_trigger_of_undeclared_component() {
        let err = Manifest::parse(
            "spin_manifest_version = 2\n[application]\nname = \"a\"\n[[trigger.http]]\nroute = \"/\"\ncomponent = \"x\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("not declared"), "{err}");
    }
}
