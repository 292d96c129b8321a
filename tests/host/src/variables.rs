//! Spin's variables: `{{ name }}` templates in `[component.X.variables]` resolved over the
//! application's `[variables]`, whose values come from (first wins) the host's overrides,
//! `SPIN_VARIABLE_<NAME>` in the environment, then the manifest default.

use crate::manifest::Manifest;
use anyhow::{anyhow, bail, Result};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Lit(String),
    Var(String),
}

/// Why a `get` failed, with the messages Spin's expressions crate gives.
#[derive(Debug, Clone, PartialEq)]
pub enum VarError {
    InvalidName(String),
    Undefined(String),
    Provider(String),
}

pub fn validate_key(key: &str) -> Result<(), String> {
    let Some(first) = key.bytes().next() else {
        return Err("must not be empty".into());
    };
    if let Some(c) = key.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')) {
        return Err(format!(
            "invalid character {c:?}. Variable names may contain only lower-case letters, numbers, and underscores."
        ));
    }
    if !first.is_ascii_lowercase() {
        return Err("must start with a lowercase ASCII letter".into());
    }
    if !key.bytes().last().unwrap_or(b'_').is_ascii_alphanumeric() {
        return Err("must end with a lowercase ASCII letter or digit".into());
    }
    if key.contains("__") {
        return Err("must not contain multiple consecutive underscores".into());
    }
    Ok(())
}

pub fn parse_template(s: &str) -> Result<Vec<Part>> {
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            parts.push(Part::Lit(rest[..start].to_string()));
        }
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| anyhow!("unterminated template expression in {s:?}"))?;
        let name = after[..end].trim();
        validate_key(name).map_err(|e| anyhow!("invalid variable name {name:?}: {e}"))?;
        parts.push(Part::Var(name.to_string()));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        parts.push(Part::Lit(rest.to_string()));
    }
    Ok(parts)
}

fn resolve_with(template: &str, value: impl Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::new();
    for part in parse_template(template)? {
        match part {
            Part::Lit(l) => out.push_str(&l),
            Part::Var(v) => out.push_str(&value(&v).ok_or_else(|| anyhow!("unknown variable {v:?}"))?),
        }
    }
    Ok(out)
}

/// All component variables of an app, resolved once at load.
#[derive(Debug, Clone, Default)]
pub struct Variables {
    /// component id -> variable -> value
    resolved: HashMap<String, BTreeMap<String, String>>,
    /// The application's variables as resolved (override, environment, default).
    app: HashMap<String, String>,
    /// The application's variables that have a default, with it.
    defaults: HashMap<String, String>,
}

impl Variables {
    pub fn resolve(
        manifest: &Manifest,
        overrides: &BTreeMap<String, String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Variables> {
        let mut app: HashMap<&str, String> = HashMap::new();
        let mut missing = Vec::new();
        for (name, decl) in &manifest.variables {
            validate_key(name).map_err(|e| anyhow!("invalid variable name {name:?}: {e}"))?;
            if decl.required && decl.default.is_some() {
                bail!("variable {name:?} cannot be both required and have a default");
            }
            let value = overrides
                .get(name)
                .cloned()
                .or_else(|| env(&format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase())))
                .or_else(|| decl.default.clone());
            match value {
                Some(v) => {
                    app.insert(name, v);
                }
                None => missing.push(name.clone()),
            }
        }
        if !missing.is_empty() {
            bail!("no provider resolved required variable(s): {missing:?}");
        }
        let mut resolved = HashMap::new();
        for (id, component) in &manifest.component {
            let mut vars = BTreeMap::new();
            for (key, template) in &component.variables {
                validate_key(key).map_err(|e| anyhow!("component {id:?}: invalid variable name {key:?}: {e}"))?;
                let mut value = String::new();
                for part in parse_template(template)? {
                    match part {
                        Part::Lit(l) => value.push_str(&l),
                        Part::Var(v) => value
                            .push_str(app.get(v.as_str()).ok_or_else(|| {
                                anyhow!("component {id:?}: variable {key:?}: unknown variable {v:?}")
                            })?),
                    }
                }
                vars.insert(key.clone(), value);
            }
            resolved.insert(id.clone(), vars);
        }
        let defaults =
            manifest.variables.iter().filter_map(|(n, d)| d.default.clone().map(|v| (n.clone(), v))).collect();
        let app = app.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        Ok(Variables { resolved, app, defaults })
    }

    /// A template over the application's variables (as in `allowed_outbound_hosts`), resolved with
    /// their values; an error names an unknown variable.
    pub fn resolve_app_template(&self, template: &str) -> Result<String> {
        resolve_with(template, |v| self.app.get(v).cloned())
    }

    /// The same template resolved with the manifest's defaults only, as Spin's loader validates
    /// it; `None` when a variable it names has no default (Spin then skips the validation).
    pub fn resolve_with_defaults(&self, template: &str) -> Option<Result<String>> {
        let parts = match parse_template(template) {
            Ok(parts) => parts,
            Err(e) => return Some(Err(e)),
        };
        let all_defaulted = parts
            .iter()
            .all(|p| matches!(p, Part::Lit(_)) || matches!(p, Part::Var(v) if self.defaults.contains_key(v)));
        all_defaulted.then(|| resolve_with(template, |v| self.defaults.get(v).cloned()))
    }

    /// `fermyon:spin/variables.get` as a component sees it.
    pub fn get(&self, component: &str, key: &str) -> Result<String, VarError> {
        validate_key(key).map_err(|e| VarError::InvalidName(format!("{key:?}: {e}")))?;
        let vars = self
            .resolved
            .get(component)
            .ok_or_else(|| VarError::Undefined(format!("no variable for component {component:?}")))?;
        vars.get(key).cloned().ok_or_else(|| VarError::Undefined(format!("no variable for {component:?}.{key:?}")))
    }

    pub fn all(&self, component: &str) -> Vec<(String, String)> {
        self.resolved
            .get(component)
            .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
spin_manifest_version = 2
[application]
name = "a"
[variables]
auth_issuer = { required = true }
tenant_claim = { default = "tenant" }
region = { default = "eu" }
[component.gw]
source = "gw.wasm"
[component.gw.variables]
issuer = "{{ auth_issuer }}"
claim = "{{tenant_claim}}"
url = "https://{{ region }}.example/{{ tenant_claim }}"
literal = "plain"
[component.other]
source = "o.wasm"
"#;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn templates_parse() {
        assert_eq!(
            parse_template("a{{ x }}b").unwrap(),
            vec![Part::Lit("a".into()), Part::Var("x".into()), Part::Lit("b".into())]
        );
        assert!(parse_template("{{ x").is_err());
        assert!(parse_template("{{ X }}").is_err());
    }

    #[test]
    fn resolves_overrides_env_then_default() {
        let m = Manifest::parse(MANIFEST).unwrap();
        let overrides = BTreeMap::from([("auth_issuer".to_string(), "iss".to_string())]);
        let env = |k: &str| (k == "SPIN_VARIABLE_REGION").then(|| "us".to_string());
        let v = Variables::resolve(&m, &overrides, env).unwrap();
        assert_eq!(v.get("gw", "issuer").unwrap(), "iss");
        assert_eq!(v.get("gw", "claim").unwrap(), "tenant");
        assert_eq!(v.get("gw", "url").unwrap(), "https://us.example/tenant");
        assert_eq!(v.get("gw", "literal").unwrap(), "plain");
    }

    #[test]
    fn override_beats_env() {
        let m = Manifest::parse(MANIFEST).unwrap();
        let overrides =
            BTreeMap::from([("auth_issuer".to_string(), "iss".to_string()), ("region".to_string(), "ap".to_string())]);
        let env = |_: &str| Some("env".to_string());
        let v = Variables::resolve(&m, &overrides, env).unwrap();
        assert_eq!(v.get("gw", "url").unwrap(), "https://ap.example/env");
    }

    #[test]
    fn missing_required_variable_fails_load() {
        let m = Manifest::parse(MANIFEST).unwrap();
        let err = Variables::resolve(&m, &BTreeMap::new(), no_env).unwrap_err();
        assert!(err.to_string().contains("auth_issuer"), "{err}");
    }

    #[test]
    fn component_sees_only_its_own_variables() {
        let m = Manifest::parse(MANIFEST).unwrap();
        let overrides = BTreeMap::from([("auth_issuer".to_string(), "iss".to_string())]);
        let v = Variables::resolve(&m, &overrides, no_env).unwrap();
        assert!(matches!(v.get("other", "issuer"), Err(VarError::Undefined(_))));
        // App variables are not component variables.
        assert!(matches!(v.get("gw", "region"), Err(VarError::Undefined(_))));
        assert!(matches!(v.get("gw", "Bad"), Err(VarError::InvalidName(_))));
        // `wasi:config/store`'s get-all (Spin's `resolve_all` of the component): its own, resolved.
        let mut all = v.all("gw");
        all.sort();
        let names: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["claim", "issuer", "literal", "url"]);
        assert!(all.contains(&("issuer".to_string(), "iss".to_string())));
        assert!(v.all("other").is_empty());
    }
}
