//! Debian's `docker-registry` (distribution 2.8.2) on a loopback port, with TLS from the test CA
//! and either htpasswd (bcrypt) or token auth; storage in a temp dir; killed on drop.

use super::pki::Pki;
use super::token_server::{TokenPolicy, TokenServer, ISSUER, SERVICE};
use super::{image, require_tools};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const START_LIMIT: Duration = Duration::from_secs(15);

pub struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    pki: Arc<Pki>,
    token_server: Option<TokenServer>,
}

enum Auth<'a> {
    Htpasswd(&'a [(&'a str, &'a str)]),
    Token(&'a TokenServer),
}

impl Registry {
    /// A registry whose users (name, password) log in with HTTP Basic; `None` (and a message)
    /// when the tools are missing outside CI.
    pub fn with_htpasswd(pki: &Arc<Pki>, users: &[(&str, &str)]) -> Option<Registry> {
        require_tools(&["docker-registry", "skopeo", "htpasswd"])?;
        Some(Self::start(pki, Auth::Htpasswd(users)))
    }

    /// A registry with token auth, and its token server (same CA) applying `policy`.
    pub fn with_token_auth(pki: &Arc<Pki>, policy: TokenPolicy) -> Option<Registry> {
        require_tools(&["docker-registry", "skopeo"])?;
        let token_server = TokenServer::start(policy, pki.server_config());
        let mut registry = Self::start(pki, Auth::Token(&token_server));
        registry.token_server = Some(token_server);
        Some(registry)
    }

    fn start(pki: &Arc<Pki>, auth: Auth) -> Registry {
        let dir = tempfile::tempdir().expect("temp dir");
        let auth_yaml = match auth {
            Auth::Htpasswd(users) => {
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, htpasswd_lines(users)).expect("htpasswd file");
                format!("  htpasswd:\n    realm: regsecrets-test\n    path: {}\n", file.display())
            }
            Auth::Token(server) => {
                let bundle = dir.path().join("token-signing.crt");
                std::fs::write(&bundle, server.signing_cert_pem()).expect("rootcertbundle");
                format!(
                    "  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
                    server.realm(),
                    bundle.display()
                )
            }
        };
        // A port picked now may be taken by the time the registry binds it: retry a few times.
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = free_port();
            let config = dir.path().join("config.yml");
            std::fs::write(&config, config_yaml(dir.path(), pki, port, &auth_yaml)).expect("config.yml");
            let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .expect("docker-registry runs");
            match wait_until_listening(&mut child, port) {
                Ok(()) => return Registry { child, port, dir, pki: pki.clone(), token_server: None },
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default();
                    last_error = format!("{e}: {log}");
                }
            }
        }
        panic!("docker-registry did not start: {last_error}");
    }

    /// Replaces the htpasswd users (a password rotated at the registry) and restarts the registry
    /// on the same port with the same storage, so the change holds from the next request on
    /// whether or not the registry re-reads the file by itself.
    pub fn replace_users(&mut self, users: &[(&str, &str)]) {
        let file = self.dir.path().join("htpasswd");
        assert!(file.exists(), "replace_users is for htpasswd registries");
        std::fs::write(&file, htpasswd_lines(users)).expect("htpasswd file");
        let _ = self.child.kill();
        let _ = self.child.wait();
        let log =
            std::fs::OpenOptions::new().append(true).open(self.dir.path().join("registry.log")).expect("log file");
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("docker-registry runs");
        if let Err(e) = wait_until_listening(&mut child, self.port) {
            panic!("docker-registry did not restart on port {}: {e}: {}", self.port, self.log());
        }
        self.child = child;
    }

    /// What the registry wrote to stdout/stderr (its log level is `warn`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `localhost:<port>`: the registry as a secret names it (the verify component refuses
    /// loopback IP literals before connecting; it listens on 127.0.0.1).
    pub fn host(&self) -> String {
        format!("localhost:{}", self.port)
    }

    /// `https://localhost:<port>`
    pub fn url(&self) -> String {
        format!("https://{}", self.host())
    }

    pub fn pki(&self) -> &Arc<Pki> {
        &self.pki
    }

    /// The token server, for a registry with token auth.
    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token_server.as_ref()
    }

    /// Pushes a tiny image as `<repository>:<tag>` with skopeo, logging in as `creds`.
    pub fn push_image(&self, repository: &str, tag: &str, creds: (&str, &str)) {
        let layout = tempfile::tempdir().expect("temp dir");
        image::write_layout(layout.path(), tag);
        image::push(layout.path(), tag, &format!("{}/{repository}:{tag}", self.host()), creds, &self.pki.trust_dir());
    }
}

fn wait_until_listening(child: &mut Child, port: u16) -> Result<(), String> {
    let started = Instant::now();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while started.elapsed() < START_LIMIT {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("exited with {status}"));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err(format!("not listening after {START_LIMIT:?}"))
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

fn config_yaml(dir: &Path, pki: &Pki, port: u16, auth_yaml: &str) -> String {
    format!(
        "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: regsecrets-test-secret\n  tls:\n    certificate: {cert}\n    key: {key}\n\
         auth:\n{auth_yaml}",
        data = dir.join("data").display(),
        cert = pki.server_cert_file().display(),
        key = pki.server_key_file().display(),
    )
}

/// bcrypt lines by Apache's `htpasswd -B`, the format distribution's htpasswd auth reads.
fn htpasswd_lines(users: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (user, password) in users {
        let output = Command::new("htpasswd")
            .args(["-nbB", "-C", "5", user, password])
            .stdin(Stdio::null())
            .output()
            .expect("htpasswd runs");
        assert!(output.status.success(), "htpasswd failed: {}", String::from_utf8_lossy(&output.stderr));
        out.push_str(String::from_utf8_lossy(&output.stdout).trim());
        out.push('\n');
    }
    out
}
