//! What token verification costs inside a component, per algorithm: p50 of a metadata read with
//! an RS256, ES256 or EdDSA token, against the same request refused before any verification
//! (no Authorization header), on the built wasm in the test host.
//! Run: `cargo bench -p e2e --bench verify_cost`.

use std::time::{Duration, Instant};

use e2e::tokens::Alg;
use e2e::{TestApp, SECRETS};

const SAMPLES: usize = 400;

fn p50(app: &TestApp, authorization: Option<&str>, expect: u16) -> Duration {
    let mut samples: Vec<Duration> = (0..SAMPLES)
        .map(|_| {
            let mut call = app.call("GET", &format!("{SECRETS}/nothing-here"));
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
    let claims = app.tokens.claims("bench", &["regsecrets.viewer"]);
    p50(&app, None, 401); // warm-up
    let baseline = p50(&app, None, 401);
    println!("p50 of GET {SECRETS}/{{name}} (404 after verification) over {SAMPLES} requests; baseline refused before verification: {baseline:.2?}");
    for alg in [Alg::EdDsa, Alg::Es256, Alg::Rs256] {
        let token = app.tokens.sign(alg, &claims);
        let total = p50(&app, Some(&format!("Bearer {token}")), 404);
        println!("  {alg:?}: {total:.2?} per request, {:.2?} more than the baseline", total.saturating_sub(baseline));
    }
}
