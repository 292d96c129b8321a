//! The probes for orchestrators, on the host: `GET /healthz` and `GET /readyz` answer without a
//! token; readiness reads the store and, with the store gone, answers 503 or nothing within the
//! bound a probe waits, never 200; the components are granted only what they use.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use domain::readiness::PROBE_TENANT;
use e2e::{repo_root, Backend, Options, TestApp};

/// How long an orchestrator's probe waits for an answer in docs/deployment.md (`timeoutSeconds`).
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// A GET as a probe sends it: no token, a short timeout. `None`: no answer within the timeout.
fn probe(app: &TestApp, path: &str) -> Option<(u16, String)> {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(PROBE_TIMEOUT)).build().into();
    let mut response = agent.get(&app.url(path)).call().ok()?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    Some((status, body))
}

#[test]
fn liveness_and_readiness_answer_200_without_a_token_and_write_nothing() {
    let app = TestApp::shared();
    let (status, body) = probe(app, "/healthz").expect("liveness answers");
    assert_eq!((status, body.as_str()), (200, r#"{"status":"alive"}"#));
    let (status, body) = probe(app, "/readyz").expect("readiness answers");
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ready"}"#));
    assert!(app.tenant_rows(PROBE_TENANT).is_empty(), "the probe reads; it stores nothing");
    let reply = app.call("POST", "/readyz").send();
    assert_eq!((reply.status, reply.header("allow")), (405, Some("GET")), "{}", reply.body);
}

#[test]
fn liveness_has_no_grants_and_readiness_only_the_store() {
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(repo_root().join("spin.toml")).unwrap()).unwrap();
    let component = |id: &str| manifest["component"][id].as_table().unwrap().clone();
    let live = component("live");
    let keys: Vec<&str> = live.keys().map(String::as_str).collect();
    assert_eq!(keys, ["source"], "the liveness component is granted nothing: {live:?}");
    let ready = component("ready");
    let mut keys: Vec<&str> = ready.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["build", "key_value_stores", "source"], "{ready:?}");
    assert_eq!(ready["key_value_stores"].as_array().unwrap(), &[toml::Value::from("default")]);
    let routes = manifest["trigger"]["http"].as_array().unwrap();
    let route_of = |id: &str| -> Vec<String> {
        routes
            .iter()
            .filter(|r| r["component"].as_str() == Some(id))
            .filter_map(|r| r["route"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(route_of("live"), [domain::routes::LIVENESS]);
    assert_eq!(route_of("ready"), [domain::routes::READINESS]);
}

/// A Redis server of this test's own, so the test can take it away.
struct Redis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start_on(port: u16, dir: tempfile::TempDir) -> Option<Redis> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "redis-server did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Redis { child, port, _dir: dir })
    }

    fn start() -> Option<Redis> {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Redis::start_on(port, tempfile::tempdir().unwrap())
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: the store goes away as a crashed node does) and waits for it.
    fn stop(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn readiness_with_the_store_gone_answers_503_or_nothing_never_200() {
    let Some(mut redis) = Redis::start() else {
        assert!(std::env::var("CI").is_err(), "CI must have redis-server (.ci/run installs it)");
        eprintln!("note: no redis-server on PATH; the store-gone probe test did not run");
        return;
    };
    let app = TestApp::start(Options { backend: Backend::Redis(redis.url()), ..Options::default() });
    assert_eq!(probe(&app, "/readyz").map(|(s, _)| s), Some(200), "ready while Redis serves");

    redis.stop();
    for round in 0..3 {
        let started = Instant::now();
        let answer = probe(&app, "/readyz");
        let took = started.elapsed();
        eprintln!("round {round}, Redis gone: readiness answered {answer:?} after {took:?}");
        match &answer {
            Some((status, body)) => {
                assert_eq!(*status, 503, "never 200 with the store gone: {body}");
                let body: serde_json::Value = serde_json::from_str(body).unwrap();
                assert_eq!(body["error"]["code"], "NotReady");
            }
            None => assert!(took >= PROBE_TIMEOUT, "no answer means the probe's timeout ran out"),
        }
        assert!(took < PROBE_TIMEOUT + Duration::from_secs(1), "the probe's bound holds: {took:?}");
        // Liveness does not touch the store: it still answers.
        assert_eq!(probe(&app, "/healthz").map(|(s, _)| s), Some(200), "liveness with Redis gone");
    }
    assert!(app.logs().contains("not ready"), "the cause is logged: {}", app.logs());

    // Redis back on the same port. The host's client reconnects; Spin's may stay wedged (see
    // docs/deployment.md: that is what the liveness setting there turns into a restart). Either
    // way readiness never said 200 while the store was gone; this only reports what came next.
    let _redis = Redis::start_on(redis.port, tempfile::tempdir().unwrap()).expect("redis-server restarts");
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < Duration::from_secs(10) {
        last = probe(&app, "/readyz").map(|(s, _)| s);
        if last == Some(200) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("Redis back: readiness answered {last:?} after {:?}", started.elapsed());
}
