//! What verifying one request's token costs natively, per algorithm: the whole of
//! `domain::identity::authenticate` (JWKS parse, building the one key, signature, claims), and the
//! JWKS part alone. Figures inside wasm are measured by the host's own benchmark.

use std::hint::black_box;
use std::time::{Duration, Instant};

use domain::identity::{authenticate_at, AuthSettings};
use domain::jwks::{Algorithm, Jwks};

use crate::{generate_test_keys_in_memory, unix_now, Alg};

#[derive(Debug, Clone)]
pub struct Figure {
    pub alg: &'static str,
    pub iterations: u32,
    /// Mean microseconds of one `authenticate` call, JWKS parse and key construction included.
    pub authenticate_us: f64,
    /// Mean microseconds of parsing the JWKS and building the token's key only.
    pub key_lookup_us: f64,
}

/// Runs each algorithm for at least `per_alg` (after a short warm-up) and reports the means.
pub fn verify_cost(per_alg: Duration) -> anyhow::Result<Vec<Figure>> {
    let keys = generate_test_keys_in_memory();
    let settings: AuthSettings = keys.auth_settings();
    let now = unix_now();
    let mut figures = Vec::new();
    for (alg, algorithm, name) in [
        (Alg::Rs256, Algorithm::Rs256, "RS256"),
        (Alg::Es256, Algorithm::Es256, "ES256"),
        (Alg::EdDsa, Algorithm::EdDsa, "EdDSA"),
    ] {
        let claims = keys.claims("bench-tenant", &["regsecrets.viewer", "regsecrets.admin"], Duration::from_secs(3600));
        let header = format!("Bearer {}", keys.sign(alg, &claims));
        let kid = keys.kid(alg).expect("in-memory keys hold every algorithm").to_string();
        anyhow::ensure!(authenticate_at(Some(&header), &settings, now).is_ok(), "{name} token was refused");

        let (iterations, authenticate_us) = mean_micros(per_alg, || {
            black_box(authenticate_at(Some(black_box(&header)), &settings, now).is_ok());
        });
        let (_, key_lookup_us) = mean_micros(per_alg / 4, || {
            let jwks = Jwks::parse(black_box(&settings.jwks)).expect("own JWKS");
            black_box(jwks.key_for(&kid, algorithm).is_ok());
        });
        figures.push(Figure { alg: name, iterations, authenticate_us, key_lookup_us });
    }
    Ok(figures)
}

fn mean_micros(at_least: Duration, mut run: impl FnMut()) -> (u32, f64) {
    for _ in 0..10 {
        run();
    }
    let start = Instant::now();
    let mut iterations = 0u32;
    while iterations < 20 || start.elapsed() < at_least {
        run();
        iterations += 1;
    }
    (iterations, start.elapsed().as_secs_f64() * 1e6 / f64::from(iterations))
}
