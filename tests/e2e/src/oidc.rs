//! A real OpenID provider for the tests: panva's `oidc-provider` (npm, OpenID Certified), run by
//! `tests/oidc/provider.mjs` on loopback and driven over its stdin (see that file). `.ci/run`
//! installs its npm packages from the committed lockfile.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use base64::Engine;
use serde_json::Value;

use crate::{repo_root, Call};

pub struct OidcProvider {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub issuer: String,
    client_id: String,
    client_secret: String,
}

impl OidcProvider {
    /// Starts the provider; `None` (the caller skips, saying why) when its npm packages are not
    /// installed.
    pub fn start() -> Option<OidcProvider> {
        let dir = repo_root().join("tests/oidc");
        if !dir.join("node_modules/oidc-provider").exists() {
            return None;
        }
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        stdout.read_line(&mut first).expect("the provider says where it listens");
        let hello: Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("{e}: {first}"));
        let text = |name: &str| hello[name].as_str().expect(name).to_owned();
        Some(OidcProvider {
            issuer: text("issuer"),
            client_id: text("client_id"),
            client_secret: text("client_secret"),
            child,
            stdin,
            stdout,
        })
    }

    /// One command (`publish`, `promote`, `retire`, `stats`) and its answer.
    pub fn command(&mut self, command: &str) -> Value {
        writeln!(self.stdin, "{command}").expect("the provider takes commands");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("the provider answers");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// How many times the key set was fetched so far, and when (Unix ms).
    pub fn key_fetches(&mut self) -> Vec<u64> {
        let stats = self.command("stats");
        stats["jwksAt"].as_array().expect("jwksAt").iter().map(|t| t.as_u64().expect("ms")).collect()
    }

    /// An access token (a JWT signed with the provider's current key) from the client credentials
    /// grant, for the resource `urn:regsecrets`, with these scopes.
    pub fn token(&self, scopes: &[&str]) -> String {
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", self.client_id, self.client_secret));
        let body = format!("grant_type=client_credentials&resource=urn%3Aregsecrets&scope={}", scopes.join("%20"));
        let reply = Call::new("POST", format!("{}/token", self.issuer))
            .header("authorization", &format!("Basic {basic}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .raw(body.into_bytes())
            .send();
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()["access_token"].as_str().expect("access_token").to_owned()
    }

    /// The `kid` a token's header names.
    pub fn kid_of(token: &str) -> String {
        let header = token.split('.').next().expect("header");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).expect("base64url");
        let header: Value = serde_json::from_slice(&bytes).expect("JSON header");
        header["kid"].as_str().expect("kid").to_owned()
    }

    /// Stops the provider: it no longer answers at all.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
    }
}
