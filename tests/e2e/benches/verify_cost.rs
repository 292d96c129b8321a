//! What token verification costs inside a component, per algorithm, and what the verified-token
//! cache saves. On the built wasm in the test host, p50 over many requests of:
//! - a request refused before any verification (no Authorization header): the baseline;
//! - `GET /{name}` of a missing name with an RS256, ES256 or EdDSA token: verified every time
//!   (a refused read is never remembered);
//! - `GET /{name}` of an existing secret with the same token again and again: cache hits.
//!
//! Run: `cargo bench -p e2e --bench verify_cost`.

use std::time::{Duration, Instant};

use e2e::tokens::Alg;
use e2e::{structured, TestApp, SECRETS};

const SAMPLES: usize = 400;

fn p50(app: &TestApp, path: &str, authorization: Option<&str>, expect: u16) -> Duration {
    let mut samples: Vec<Duration> = (0..SAMPLES)
        .map(|_| {
            let mut call = app.call("GET", path);
            if let Some(value) = authorization {
                call = call.header("authorization", value);
            }
            let started = Instant::now();
            assert_eq!(call.send().status, expect);
            started.elapsed()
        })
        .collect();
    samples.sort();
    samples[SAMPLES / 2]
}

fn main() {
    let app = TestApp::start(Default::default());
    let admin = app.token("bench", &["regsecrets.admin"]);
    assert_eq!(app.create(&admin, &structured("present", "ghcr.io", "u", "p")).status, 201);
    let claims = app.tokens.claims("bench", &["regsecrets.viewer"]);
    let (missing, present) = (format!("{SECRETS}/missing"), format!("{SECRETS}/present"));
    p50(&app, &missing, None, 401); // warm-up
    let baseline = p50(&app, &missing, None, 401);
    println!("p50 over {SAMPLES} requests each; baseline (refused before verification): {baseline:.2?}");
    println!("{:<7} {:>22} {:>22}", "alg", "verified every time", "verified once, cached");
    for alg in [Alg::EdDsa, Alg::Es256, Alg::Rs256] {
        let header = format!("Bearer {}", app.tokens.sign(alg, &claims));
        let verified = p50(&app, &missing, Some(&header), 404);
        let cached = p50(&app, &present, Some(&header), 200);
        println!(
            "{:<7} {:>10.2?} (+{:>8.2?}) {:>10.2?} (+{:>8.2?})",
            format!("{alg:?}"),
            verified,
            verified.saturating_sub(baseline),
            cached,
            cached.saturating_sub(baseline)
        );
    }
}
