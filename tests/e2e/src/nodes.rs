//! Nodes that die or pause, for the node-death and pause tests and the lock-recovery benchmark:
//! the host as a child process (`testhost serve`, in a process group of its own) that is killed
//! with SIGKILL as a pod or VM dies, or frozen with SIGSTOP as a VM freeze or a long stall pauses
//! it; requests that may meet a dead or frozen node, a tenant's raw lock state, and the trap
//! positions of a create.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::Duration;

use devauth::build::{cargo, newest_file, outdated};

use crate::{repo_root, structured, tenant_prefix, Reply, TestApp, Tokens, SECRETS};

/// The `testhost` binary, built when missing or older than the host's sources: in the debug
/// profile and with the whole workspace's features, as `cargo test` built the host library, so
/// after `cargo test`'s own build this only compiles and links `main.rs`.
fn testhost_binary() -> PathBuf {
    static BUILT: Once = Once::new();
    let root = repo_root();
    let binary = root.join("target/debug/testhost");
    BUILT.call_once(|| {
        if !outdated(&binary, newest_file(&root.join("tests/host/src"))) {
            return;
        }
        let status = cargo()
            .current_dir(&root)
            .args(["build", "--workspace", "--bin", "testhost"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building testhost failed: cargo build --workspace --bin testhost");
    });
    binary
}

/// A second node: the app in its own `testhost serve` process, on the given Redis, trusting
/// `tokens`, with the log's lease `lease_ms`, in a process group of its own (so that a freeze stops
/// every thread and child of it at once, as a VM freeze does). Killed (SIGKILL) when dropped.
pub struct ChildNode {
    child: Child,
    base_url: String,
    _dir: tempfile::TempDir,
}

impl ChildNode {
    pub fn start(redis_url: &str, tokens: &Tokens, lease_ms: u64) -> ChildNode {
        Self::start_on(&crate::Backend::Redis(redis_url.to_owned()), tokens, lease_ms)
    }

    /// As [`ChildNode::start`], on a shared store: Redis, or DynamoDB (the same table as the
    /// in-process hosts given this backend; `AWS_*` in the child's environment, as Spin reads them).
    pub fn start_on(backend: &crate::Backend, tokens: &Tokens, lease_ms: u64) -> ChildNode {
        crate::build::ensure_components();
        let dir = tempfile::tempdir().expect("temp dir");
        let runtime_config = dir.path().join("runtime-config.toml");
        let (store, environment) = crate::store_config(backend);
        let store = store.expect("a node of its own needs a shared store: Redis or DynamoDB");
        std::fs::write(&runtime_config, store).expect("runtime config");
        let mut command = Command::new(testhost_binary());
        command.envs(environment.unwrap_or_default());
        let mut child = command
            .current_dir(repo_root())
            .args(["serve", "--listen", "127.0.0.1:0", "--runtime-config-file"])
            .arg(&runtime_config)
            .env("SPIN_VARIABLE_AUTH_JWKS", tokens.jwks())
            .env("SPIN_VARIABLE_AUTH_ISSUER", crate::tokens::ISSUER)
            .env("SPIN_VARIABLE_AUTH_AUDIENCE", crate::tokens::AUDIENCE)
            .env("SPIN_VARIABLE_TENANT_LOCK_LEASE_MS", lease_ms.to_string())
            .env("SPIN_VARIABLE_ENCRYPTION_KEYS", crate::test_encryption_keys("k1"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("testhost starts");
        // `testhost serve` prints its base URL on stdout once it serves.
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("testhost's URL");
        let base_url = line.trim().to_owned();
        assert!(base_url.starts_with("http://"), "testhost did not start: {line:?}");
        ChildNode { child, base_url, _dir: dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// SIGKILL to the node's process group, as a node dies: no clean-up of any kind runs in it.
    /// A frozen node dies too (SIGKILL needs no SIGCONT).
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal_group(libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGSTOP to the node's process group: every thread stops between any two instructions, as
    /// in a VM freeze, a live migration or a long stall; connections to it are still accepted by
    /// the kernel and wait. Its requests go on where they stopped after [`ChildNode::thaw`].
    pub fn freeze(&self) {
        self.signal_group(libc::SIGSTOP);
    }

    /// SIGCONT to the node's process group: a frozen node goes on where it stopped.
    pub fn thaw(&self) {
        self.signal_group(libc::SIGCONT);
    }

    fn signal_group(&self, signal: libc::c_int) {
        // The child leads its own group (`process_group(0)`): its group id is its pid.
        let group = self.child.id() as libc::pid_t;
        // SAFETY: killpg has no memory effects; the group is the child's own, which we have not
        // reaped while it can be signalled (`kill` reaps it last).
        let sent = unsafe { libc::killpg(group, signal) };
        assert_eq!(sent, 0, "killpg({group}, {signal}): {}", std::io::Error::last_os_error());
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A create that may meet a dead node: the status, or `None` if the connection failed.
pub fn try_create(url: &str, token: &str, name: &str) -> Option<u16> {
    create_within(url, token, name, Duration::from_secs(60)).map(|(status, _)| status)
}

/// A create that may meet a dead or frozen node: the status and the body, or `None` if no answer
/// came within `timeout` (the connection failed, or the node did not answer in time: the write may
/// or may not apply later).
pub fn create_within(url: &str, token: &str, name: &str, timeout: Duration) -> Option<(u16, String)> {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(timeout)).build().into();
    let body = serde_json::to_vec(&structured(name, "ghcr.io", "u", "p")).unwrap();
    let request = http::Request::builder()
        .method("POST")
        .uri(url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let mut response = agent.run(request).ok()?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().ok()?;
    Some((status, body))
}

/// A counter as the backends store it: Spin's SQLite store keeps an `i64` little-endian, Redis
/// decimal text.
fn counter(bytes: &[u8]) -> u64 {
    if !bytes.is_empty() && bytes.iter().all(u8::is_ascii_digit) {
        std::str::from_utf8(bytes).unwrap().parse().unwrap()
    } else {
        i64::from_le_bytes(bytes.try_into().expect("an 8-byte counter")) as u64
    }
}

/// How many slots of its write log the tenant has handed out (`P:seq`; 0 if none).
pub fn slots_taken(app: &TestApp, tenant: &str) -> u64 {
    let key = format!("{}:seq", tenant_prefix(tenant));
    app.tenant_rows(tenant).iter().find(|(k, _)| *k == key).map_or(0, |(_, v)| counter(v))
}

/// Record keys (`P:r:<version>`) stored for the tenant.
pub fn record_versions(app: &TestApp, tenant: &str) -> Vec<u64> {
    let prefix = format!("{}:r:", tenant_prefix(tenant));
    app.tenant_rows(tenant).iter().filter_map(|(k, _)| k.strip_prefix(&prefix)?.parse().ok()).collect()
}

/// Where to trap a create (store calls counted by the host's trap injection), found by trying
/// each position on a fresh tenant, so the tests follow the operation as it is.
#[derive(Debug, Clone, Copy)]
pub struct TrapPositions {
    /// Right after the call that took the slot: a writer that dies before it proposed anything.
    pub after_slot: u32,
    /// Right after the record was written, before the intent: a writer that dies mid-write.
    pub after_record: u32,
}

/// A create whose instance traps (dies) after `position` store calls; `app` must have trap
/// injection on.
pub fn trapped_create(app: &TestApp, token: &str, name: &str, position: u32) -> Reply {
    app.call("POST", SECRETS)
        .bearer(token)
        .json(&structured(name, "ghcr.io", "u", "p"))
        .header(testhost::TRAP_HEADER, &position.to_string())
        .send()
}

impl TrapPositions {
    /// `app` must have trap injection on.
    pub fn find(app: &TestApp) -> TrapPositions {
        let mut after_slot = None;
        for position in 1..40u32 {
            let tenant = crate::unique_tenant("trap-probe");
            let token = app.token(&tenant, &["regsecrets.admin"]);
            // A tenant that has written before, as the tests' tenants have: its reads find a view.
            assert_eq!(app.create(&token, &structured("seed", "ghcr.io", "u", "p")).status, 201);
            let reply = trapped_create(app, &token, "probe", position);
            assert_ne!(reply.status, 201, "a create finished before a record was written at call {position}");
            if after_slot.is_none() && slots_taken(app, &tenant) > 1 {
                after_slot = Some(position);
            }
            if record_versions(app, &tenant).len() > 1 {
                let after_slot = after_slot.expect("the slot comes before the record");
                return TrapPositions { after_slot, after_record: position };
            }
        }
        panic!("no create wrote a record within 40 store calls");
    }
}
