//! Configuration: flags (`--url=…` or `--url …`) over environment variables. The helper is run by
//! clients with fixed arguments, so it reads the environment only; the kubelet passes a provider
//! its `args` and `env` from the `CredentialProviderConfig`.

use std::path::PathBuf;
use std::time::Duration;

use crate::Fault;

/// How the binaries prove who they are to the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A file holding a bearer token, read again on every call (a projected or rotated token).
    TokenFile(PathBuf),
    /// OAuth 2.0 client credentials against a token endpoint (RFC 6749 §4.4), asked on every call.
    Client { id: String, secret: String, token_url: String, scope: Option<String> },
}

impl std::fmt::Display for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::TokenFile(path) => write!(f, "token file {}", path.display()),
            // Never the secret.
            Credential::Client { id, token_url, .. } => write!(f, "client {id} at {token_url}"),
        }
    }
}

/// How a provider's answer may be cached by the kubelet (`cacheKeyType`), which also decides what
/// it asks the service: the image, every key of its registry, or every key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheKeyType {
    Image,
    Registry,
    Global,
}

impl CacheKeyType {
    pub fn parse(text: &str) -> Result<CacheKeyType, Fault> {
        match text {
            "Image" => Ok(CacheKeyType::Image),
            "Registry" => Ok(CacheKeyType::Registry),
            "Global" => Ok(CacheKeyType::Global),
            _ => Err(Fault::Config("the cache key type must be Image, Registry or Global".into())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CacheKeyType::Image => "Image",
            CacheKeyType::Registry => "Registry",
            CacheKeyType::Global => "Global",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The service's base URL, e.g. `https://regsecrets.example.com`.
    pub url: String,
    pub credential: Credential,
    /// Extra CA certificates (PEM) trusted besides the platform's.
    pub ca_file: Option<PathBuf>,
    pub cache_key_type: CacheKeyType,
    pub timeout: Duration,
}

pub const USAGE: &str = "\
Configuration (flags override the environment):
  --url URL                  REGSECRETS_URL            the service, e.g. https://regsecrets.example.com
  --token-file PATH          REGSECRETS_TOKEN_FILE     a bearer token (puller scope), read on every call
  --client-id ID             REGSECRETS_CLIENT_ID      or OAuth2 client credentials instead of a token file:
  --client-secret SECRET     REGSECRETS_CLIENT_SECRET    (prefer the environment for the secret)
  --token-url URL            REGSECRETS_TOKEN_URL        the token endpoint
  --scope SCOPE              REGSECRETS_SCOPE            optional scope to ask for
  --ca-file PATH             REGSECRETS_CA_FILE        extra CA certificates (PEM) to trust
  --cache-key-type TYPE      REGSECRETS_CACHE_KEY_TYPE Image (default), Registry or Global (provider only)
  --timeout-seconds N        REGSECRETS_TIMEOUT_SECONDS each HTTP request's limit (default 10)";

/// Reads `--name value` and `--name=value` flags; anything else is an error.
fn flags(args: &[String]) -> Result<Vec<(String, String)>, Fault> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let Some(flag) = arg.strip_prefix("--") else {
            return Err(Fault::Config(format!("unexpected argument {arg:?}\n{USAGE}")));
        };
        let (name, value) = match flag.split_once('=') {
            Some((name, value)) => (name.to_owned(), value.to_owned()),
            None => {
                i += 1;
                let value = args.get(i).ok_or_else(|| Fault::Config(format!("--{flag} needs a value")))?;
                (flag.to_owned(), value.clone())
            }
        };
        out.push((name, value));
        i += 1;
    }
    Ok(out)
}

impl Config {
    /// From flags and an environment lookup (the process's, or a test's).
    pub fn load(args: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Config, Fault> {
        let flags = flags(args)?;
        const KNOWN: [&str; 9] = [
            "url",
            "token-file",
            "client-id",
            "client-secret",
            "token-url",
            "scope",
            "ca-file",
            "cache-key-type",
            "timeout-seconds",
        ];
        if let Some((unknown, _)) = flags.iter().find(|(name, _)| !KNOWN.contains(&name.as_str())) {
            return Err(Fault::Config(format!("unknown flag --{unknown}\n{USAGE}")));
        }
        let get = |flag: &str, variable: &str| {
            flags
                .iter()
                .rev()
                .find(|(name, _)| name == flag)
                .map(|(_, value)| value.clone())
                .or_else(|| env(variable))
                .filter(|value| !value.trim().is_empty())
        };
        let url = get("url", "REGSECRETS_URL")
            .ok_or_else(|| Fault::Config(format!("REGSECRETS_URL (or --url) is required\n{USAGE}")))?;
        let url = url.trim_end_matches('/').to_owned();
        if !url.starts_with("https://") && !url.starts_with("http://") {
            return Err(Fault::Config("REGSECRETS_URL must start with https:// (or http:// on loopback)".into()));
        }
        let credential = match (get("token-file", "REGSECRETS_TOKEN_FILE"), get("client-id", "REGSECRETS_CLIENT_ID")) {
            (Some(path), None) => Credential::TokenFile(PathBuf::from(path)),
            (None, Some(id)) => Credential::Client {
                id,
                secret: get("client-secret", "REGSECRETS_CLIENT_SECRET")
                    .ok_or_else(|| Fault::Config("REGSECRETS_CLIENT_SECRET is required with a client id".into()))?,
                token_url: get("token-url", "REGSECRETS_TOKEN_URL")
                    .ok_or_else(|| Fault::Config("REGSECRETS_TOKEN_URL is required with a client id".into()))?,
                scope: get("scope", "REGSECRETS_SCOPE"),
            },
            (Some(_), Some(_)) => {
                return Err(Fault::Config("give either a token file or client credentials, not both".into()))
            }
            (None, None) => {
                return Err(Fault::Config(format!(
                    "REGSECRETS_TOKEN_FILE or REGSECRETS_CLIENT_ID (with _SECRET and _TOKEN_URL) is required\n{USAGE}"
                )))
            }
        };
        let cache_key_type = match get("cache-key-type", "REGSECRETS_CACHE_KEY_TYPE") {
            Some(text) => CacheKeyType::parse(&text)?,
            None => CacheKeyType::Image,
        };
        let timeout = match get("timeout-seconds", "REGSECRETS_TIMEOUT_SECONDS") {
            Some(text) => Duration::from_secs(
                text.parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| Fault::Config("the timeout must be whole seconds".into()))?,
            ),
            None => Duration::from_secs(10),
        };
        Ok(Config {
            url,
            credential,
            ca_file: get("ca-file", "REGSECRETS_CA_FILE").map(PathBuf::from),
            cache_key_type,
            timeout,
        })
    }

    /// From the process's arguments (after the program name) and environment.
    pub fn from_process(args: &[String]) -> Result<Config, Fault> {
        Config::load(args, |name| std::env::var(name).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn flags_override_the_environment() {
        let args: Vec<String> = ["--url", "https://flag.example", "--cache-key-type=Registry"].map(String::from).into();
        let config =
            Config::load(&args, env(&[("REGSECRETS_URL", "https://env.example/"), ("REGSECRETS_TOKEN_FILE", "/t")]))
                .unwrap();
        assert_eq!(config.url, "https://flag.example");
        assert_eq!(config.credential, Credential::TokenFile("/t".into()));
        assert_eq!(config.cache_key_type, CacheKeyType::Registry);
        let config =
            Config::load(&[], env(&[("REGSECRETS_URL", "https://env.example/"), ("REGSECRETS_TOKEN_FILE", "/t")]))
                .unwrap();
        assert_eq!((config.url.as_str(), config.cache_key_type), ("https://env.example", CacheKeyType::Image));
    }

    #[test]
    fn client_credentials_need_all_three_and_exclude_a_token_file() {
        let full = [
            ("REGSECRETS_URL", "https://s"),
            ("REGSECRETS_CLIENT_ID", "ci"),
            ("REGSECRETS_CLIENT_SECRET", "shh-very-secret"),
            ("REGSECRETS_TOKEN_URL", "https://idp/token"),
        ];
        let config = Config::load(&[], env(&full)).unwrap();
        assert!(matches!(&config.credential, Credential::Client { id, .. } if id == "ci"));
        assert!(!config.credential.to_string().contains("shh"), "Display never shows the secret");
        assert!(Config::load(&[], env(&full[..3])).is_err());
        let mut both = full.to_vec();
        both.push(("REGSECRETS_TOKEN_FILE", "/t"));
        assert!(Config::load(&[], env(&both)).is_err());
    }

    #[test]
    fn missing_or_bad_settings_are_refused() {
        assert!(Config::load(&[], env(&[("REGSECRETS_TOKEN_FILE", "/t")])).is_err(), "no URL");
        assert!(Config::load(&[], env(&[("REGSECRETS_URL", "https://s")])).is_err(), "no credential");
        assert!(Config::load(&[], env(&[("REGSECRETS_URL", "ftp://s"), ("REGSECRETS_TOKEN_FILE", "/t")])).is_err());
        let base = [("REGSECRETS_URL", "https://s"), ("REGSECRETS_TOKEN_FILE", "/t")];
        assert!(Config::load(&["--bogus=1".into()], env(&base)).is_err());
        assert!(Config::load(&["--cache-key-type=image".into()], env(&base)).is_err());
        assert!(Config::load(&["--url".into()], env(&base)).is_err());
        assert!(Config::load(&["positional".into()], env(&base)).is_err());
    }
}
