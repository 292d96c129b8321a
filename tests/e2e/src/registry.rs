//! Real peers for credential verification (issue 13): Debian's `docker-registry` (distribution
//! 2.8.2) with TLS from a throwaway CA and htpasswd or token auth, a token server, an image pushed
//! with skopeo, and peers that fail in each way. Everything listens on loopback only and is
//! stopped on drop; every wait is bounded.
//!
//! # Usage
//!
//! ```ignore
//! use e2e::registry::{self, Pki, Registry, TokenPolicy};
//! let pki = Pki::new("verify tests");                      // one CA for the test binary is enough
//! // Basic auth (htpasswd):
//! let Some(basic) = Registry::with_htpasswd(&pki, &[("alice", "right")]) else { return };  // None: skipped
//! basic.push_image("org/app", "v1", ("alice", "right"));   // now org/app:v1 exists
//! // Token auth: alice may pull org/app only; bob logs in but may pull nothing.
//! let policy = TokenPolicy::default().user("alice", "right").user("bob", "pw")
//!     .grant("alice", "org/app", &["pull", "push"]);
//! let Some(bearer) = Registry::with_token_auth(&pki, policy) else { return };
//! bearer.push_image("org/app", "v1", ("alice", "right"));
//! bearer.token_server().unwrap().requests();               // who asked for which scopes, what was granted
//! // Secrets name `basic.host()` ("localhost:<port>": the verify component refuses loopback IP
//! // literals itself); the registry's URL is `basic.url()`. Token realms are `https://localhost:..`.
//!
//! // The app under test: trust the CA for component `verify`, keep the loopback safety net (always
//! // on in the harness) and, for the SSRF case, add the shipped production network rules:
//! let app = TestApp::start(Options { network_config: Some(pki.client_tls_toml("verify")), ..Default::default() });
//! let prod = Options { network_config: Some(registry::production_network_config()), ..Default::default() };
//!
//! // Failure peers (listening on 127.0.0.1; name them `localhost:<port>` in secrets):
//! registry::closed_port();                    // -> connection-refused
//! registry::untrusted_https();                // Server: TLS with a CA nobody trusts -> tls-protocol-error
//! registry::not_a_registry(Some(&pki));       // Server: trusted HTTPS, 200 text/html on /v2/
//! registry::not_a_registry(None);             // the same over plain http: the verify component
//!                                             // refuses it (`blocked`) unless the Spin variable
//!                                             // `verify_insecure_registries` lists it (pass it in
//!                                             // `TestApp::start_with`'s extra variables) and
//!                                             // spin.toml allows `http://` for `verify`
//! registry::never_answers();                  // Server: accepts, never answers -> connection-read-timeout
//! ```
//!
//! What the guest sees from the host (as Spin 4.0.2): refused port `connection-refused`; untrusted
//! or failed TLS `tls-protocol-error`; no answer within `first-byte-timeout` (TLS handshake
//! included) `connection-read-timeout`; a connect that hangs past `connect-timeout`
//! `connection-timeout`; every address blocked by `block_networks` `destination-ip-prohibited`;
//! a host outside loopback under the test safety net `connection-refused` (with a `[host]` log
//! line), before any DNS lookup.
//!
//! Missing binaries (`docker-registry`, `skopeo`, `htpasswd`): the constructors print why and
//! return `None` so the test can return early; under `CI=true` they panic instead.

mod image;
mod peers;
mod pki;
mod process;
mod serve;
mod token_server;

pub use peers::{closed_port, never_answers, not_a_registry, untrusted_https};
pub use pki::Pki;
pub use process::Registry;
pub use serve::{Reply, Request, Server};
pub use token_server::{libtrust_key_id, TokenPolicy, TokenRequest, TokenServer, ISSUER, SERVICE};

/// `Some(())` when every tool is on `PATH`; otherwise a message and `None`, or a panic under CI.
pub fn require_tools(tools: &[&str]) -> Option<()> {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !on_path(t)).collect();
    if missing.is_empty() {
        return Some(());
    }
    let message = format!(
        "{} not installed (Debian: apt-get install docker-registry skopeo apache2-utils; .ci/run does)",
        missing.join(", ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}");
    }
    eprintln!("skipping: {message}");
    None
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

/// The network rules of the shipped `runtime-config/production.toml` (everything but its
/// key-value store), as runtime-config TOML for `Options::network_config`.
pub fn production_network_config() -> String {
    let path = crate::repo_root().join("runtime-config/production.toml");
    let text = std::fs::read_to_string(&path).expect("runtime-config/production.toml");
    let mut table: toml::Table = text.parse().expect("production.toml is TOML");
    table.remove("key_value_store");
    toml::to_string(&table).expect("TOML")
}
