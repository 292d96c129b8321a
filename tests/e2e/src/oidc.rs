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
        Self::start_with_access_ttl(None)
    }

    /// As [`OidcProvider::start`], its access tokens living `access_ttl_secs` (default 3600).
    pub fn start_with_access_ttl(access_ttl_secs: Option<u64>) -> Option<OidcProvider> {
        let dir = repo_root().join("tests/oidc");
        if !dir.join("node_modules/oidc-provider").exists() {
            return None;
        }
        let mut command = Command::new("node");
        if let Some(ttl) = access_ttl_secs {
            command.env("OIDC_ACCESS_TTL", ttl.to_string());
        }
        let mut child = command
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

impl OidcProvider {
    /// Registers the app at `base` (`http://127.0.0.1:<port>`) as the console client's redirect
    /// (`<base>/auth/callback`) and post-logout (`<base>/`) URI.
    pub fn register_console(&mut self, base: &str) {
        let answer = self.command(&format!("console {base}"));
        assert_eq!(answer["redirect_uri"], format!("{base}/auth/callback"), "{answer}");
    }

    /// The grant types the token endpoint served so far, in order.
    pub fn grants(&mut self) -> Vec<String> {
        let stats = self.command("stats");
        stats["grants"].as_array().expect("grants").iter().map(|g| g.as_str().unwrap_or_default().to_owned()).collect()
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub fn client_secret(&self) -> &str {
        &self.client_secret
    }

    /// The variables that make the app's console sign in with this provider, whose access tokens
    /// the API accepts (audience `regsecrets`), with its callback at `base`.
    pub fn console_variables(&self, base: &str) -> std::collections::BTreeMap<String, String> {
        let issuers = serde_json::json!([{"issuer": self.issuer, "audience": "regsecrets"}]).to_string();
        std::collections::BTreeMap::from([
            ("auth_issuers".to_owned(), issuers),
            ("auth_keys_origin_1".to_owned(), self.issuer.clone()),
            ("console_oidc_issuer".to_owned(), self.issuer.clone()),
            ("console_oidc_client_id".to_owned(), self.client_id.clone()),
            ("console_oidc_client_secret".to_owned(), self.client_secret.clone()),
            ("console_oidc_redirect_uri".to_owned(), format!("{base}/auth/callback")),
            (
                "console_oidc_scopes".to_owned(),
                "openid offline_access regsecrets.admin regsecrets.viewer regsecrets.puller".to_owned(),
            ),
            ("console_oidc_resource".to_owned(), "urn:regsecrets".to_owned()),
        ])
    }
}

/// A browser without a browser: cookies kept by name (the provider and the app both run on
/// 127.0.0.1, and cookies do not tell ports apart), redirects followed by hand.
#[derive(Default, Clone)]
pub struct CookieJar {
    pub cookies: std::collections::BTreeMap<String, String>,
}

impl CookieJar {
    /// Sends `call` with the jar's cookies and keeps what the answer sets.
    pub fn send(&mut self, call: Call) -> crate::Reply {
        let call = if self.cookies.is_empty() {
            call
        } else {
            let header = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
            call.header("cookie", &header)
        };
        let reply = call.send_without_redirects();
        for (name, value) in &reply.headers {
            if !name.eq_ignore_ascii_case("set-cookie") {
                continue;
            }
            let pair = value.split(';').next().unwrap_or_default();
            let Some((key, val)) = pair.split_once('=') else { continue };
            let expired =
                value.to_ascii_lowercase().contains("max-age=0") || value.contains("expires=Thu, 01 Jan 1970");
            if val.is_empty() || expired {
                self.cookies.remove(key.trim());
            } else {
                self.cookies.insert(key.trim().to_owned(), val.to_owned());
            }
        }
        reply
    }

    pub fn get(&mut self, url: &str) -> crate::Reply {
        self.send(Call::new("GET", url.to_owned()))
    }
}

/// The steps of a sign-in, each a request a browser would make.
pub struct SignIn<'a> {
    pub idp: &'a OidcProvider,
    pub app_base: String,
}

impl SignIn<'_> {
    /// `GET /auth/login`: the provider's authorization URL (the login cookie is in the jar).
    pub fn start(&self, jar: &mut CookieJar) -> String {
        let reply = jar.get(&format!("{}/auth/login", self.app_base));
        assert_eq!(reply.status, 302, "{}", reply.body);
        reply.header("location").expect("Location").to_owned()
    }

    /// At the provider, `alice` signs in: follows its redirects until they lead back to the app,
    /// and answers that callback URL (not followed).
    pub fn at_provider(&self, jar: &mut CookieJar, authorize: &str) -> String {
        let mut url = authorize.to_owned();
        for _ in 0..10 {
            if url.starts_with(&self.app_base) {
                return url;
            }
            let reply = if url.contains("/interaction/") {
                let page = jar.get(&url);
                assert_eq!(page.status, 200, "{}", page.body);
                jar.send(
                    Call::new("POST", url.clone())
                        .header("content-type", "application/x-www-form-urlencoded")
                        .raw(b"login=alice".to_vec()),
                )
            } else {
                jar.get(&url)
            };
            assert!((300..400).contains(&reply.status), "{url}: {} {}", reply.status, reply.body);
            let location = reply.header("location").expect("Location").to_owned();
            url = if location.starts_with('/') { format!("{}{location}", self.idp.issuer) } else { location };
        }
        panic!("the provider never sent the browser back: {url}");
    }

    /// A whole sign-in; answers the callback's reply (the session cookie is in the jar).
    pub fn complete(&self, jar: &mut CookieJar) -> crate::Reply {
        let authorize = self.start(jar);
        let callback = self.at_provider(jar, &authorize);
        jar.get(&callback)
    }
}

/// The `name` parameter of a URL's query.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}
