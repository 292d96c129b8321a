//! What a secret that mints costs to export (issue 19), next to a static secret's export and a
//! hello-world component, in one run on the host that serves as Spin 4.0.2 does: a cache miss
//! (the export chains to the `verify` component, which signs a Google JWT-bearer assertion with
//! RS256 and asks the token endpoint, then caches the credential sealed), and a cached read. The
//! token endpoint is the test crate's local one (loopback), so the figures are our cost, not a
//! provider's. Prints markdown; asserts nothing about speed.
//!
//! Run: `cargo bench -p e2e --bench mint_cost` (`MINT_ROUNDS=N` samples each, default 200).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use e2e::hello::{manifest_with_hello, HELLO};
use e2e::minting::{google_key_file, GoogleTokens};
use e2e::tokens::Tokens;
use e2e::wire::Connection;
use e2e::{structured, Options, TestApp, SECRETS};
use jwt_simple::prelude::*;
use serde_json::json;

fn rounds() -> usize {
    std::env::var("MINT_ROUNDS").ok().and_then(|n| n.parse().ok()).unwrap_or(200)
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let key = RS256KeyPair::generate(2048).unwrap();
    let google = GoogleTokens::start(key.public_key());
    let tokens = Tokens::default();
    let extra = BTreeMap::from([("google_token_url".to_owned(), google.url())]);
    let app = TestApp::start_from(manifest_with_hello(), Options::default(), tokens.clone(), extra);
    let addr = app.app.addr();
    let token = app.token("bench-mint", &["regsecrets.admin", "regsecrets.puller"]);
    let bearer = format!("Bearer {token}");
    let n = rounds();

    // One secret per sample: raise the tenant's quota (default 50) first.
    let operator = app.token("bench-mint", &["regsecrets.operator"]);
    let quota =
        app.call("PUT", "/v2/operator/tenants/bench-mint/quota").bearer(&operator).json(&json!({"limit": 1000})).send();
    assert_eq!(quota.status, 200, "{}", quota.body);
    assert_eq!(app.create(&token, &structured("static", "ghcr.io", "bot", "pw")).status, 201);
    // One minting secret per cache miss: a fresh secret has nothing cached.
    for i in 0..=n {
        let body = json!({"name": format!("gar-{i}"), "google": {"serviceAccountKey": google_key_file(&key), "registries": ["europe-docker.pkg.dev"]}});
        assert_eq!(app.create(&token, &body).status, 201);
    }

    let mut connection = Connection::open(addr).expect("connect");
    let mut time = |path: &str, auth: bool| {
        let headers: Vec<(&str, &str)> = if auth { vec![("authorization", bearer.as_str())] } else { vec![] };
        let started = Instant::now();
        let answer = connection.send("GET", path, &headers, b"").expect("the host answers");
        let took = started.elapsed();
        assert_eq!(answer.status, 200, "{path}: {}", String::from_utf8_lossy(&answer.body));
        took
    };
    // Warm up each path once (the cached read's secret is minted here).
    time(HELLO, false);
    time(&format!("{SECRETS}/static/credentials"), true);
    time(&format!("{SECRETS}/gar-0/credentials"), true);

    let mut rows: Vec<(&str, Vec<Duration>)> = vec![
        ("hello-world component", vec![]),
        ("export, static secret", vec![]),
        ("export, minting secret, cached", vec![]),
        ("export, minting secret, minted (cache miss)", vec![]),
    ];
    for i in 1..=n {
        rows[0].1.push(time(HELLO, false));
        rows[1].1.push(time(&format!("{SECRETS}/static/credentials"), true));
        rows[2].1.push(time(&format!("{SECRETS}/gar-0/credentials"), true));
        rows[3].1.push(time(&format!("{SECRETS}/gar-{i}/credentials"), true));
    }
    assert_eq!(
        google.issued.load(std::sync::atomic::Ordering::SeqCst),
        n + 1,
        "one grant per cache miss, none per cached read"
    );

    println!("\n### What an export of a minting secret costs ({n} samples each, kept-alive connection, one run)\n");
    println!("| request | p50 | p99 |");
    println!("|---|---|---|");
    for (label, mut samples) in rows {
        let p50 = percentile(&mut samples, 0.5);
        let p99 = percentile(&mut samples, 0.99);
        println!("| {label} | {:.2} ms | {:.2} ms |", p50.as_secs_f64() * 1e3, p99.as_secs_f64() * 1e3);
    }
}
