//! What the console's sign-in costs (`domain::signin`), and that a call on the session cookie costs
//! what the same call costs with a bearer token. Against panva's `oidc-provider` (`tests/oidc`) on
//! loopback, the app in the test host (SQLite), p50 of:
//! - a read (`GET /{name}`) and a write (`PATCH /{name}`) on the session cookie (one store read names
//!   the caller), and with the provider's access token as a bearer token, from the verified-token
//!   cache: the same principal, samples taken in turn;
//! - `GET /auth/session` (what the console asks every 30 s; no refresh due);
//! - a whole sign-in as a browser makes it (`/auth/login`, the provider's pages, `/auth/callback`),
//!   and the callback alone (the code exchanged at the provider, the ID and access tokens verified,
//!   the session sealed and stored).
//!
//! Without the provider's npm packages it prints why and measures nothing.
//!
//! Run: `cargo bench -p e2e --bench session_cost`.

use std::time::{Duration, Instant};

use e2e::oidc::{CookieJar, OidcProvider, SignIn};
use e2e::{free_port, structured, Call, Options, TestApp, Tokens, SECRETS};

const SAMPLES: usize = 200;
const SIGN_INS: usize = 30;
const PRESENT: &str = "present";

fn p50(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn timed(call: impl FnOnce() -> u16, expect: u16) -> Duration {
    let started = Instant::now();
    assert_eq!(call(), expect);
    started.elapsed()
}

fn with_cookie(call: Call, jar: &CookieJar) -> Call {
    let header = jar.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
    call.header("cookie", &header).header("x-regsecrets-csrf", "1")
}

fn main() {
    let Some(mut idp) = OidcProvider::start() else {
        println!("skipped: run `npm ci` in tests/oidc (.ci/run does)");
        return;
    };
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    idp.register_console(&base);
    let options = Options { listen: Some(([127, 0, 0, 1], port).into()), ..Options::default() };
    let app = TestApp::start_with(options, Tokens::default(), idp.console_variables(&base));
    let flow = SignIn { idp: &idp, app_base: base.clone() };

    let mut jar = CookieJar::default();
    assert_eq!(flow.complete(&mut jar).status, 303);
    let bearer = idp.token(&["regsecrets.admin", "regsecrets.viewer"]);
    let body = structured(PRESENT, "registry.example.com", "bot", "pw");
    assert_eq!(app.create(&bearer, &body).status, 201);
    let path = format!("{SECRETS}/{PRESENT}");
    let read_cookie = || timed(|| with_cookie(app.call("GET", &path), &jar).send().status, 200);
    let read_bearer = || timed(|| app.call("GET", &path).bearer(&bearer).send().status, 200);
    let write_cookie = || timed(|| with_cookie(app.call("PATCH", &path), &jar).json(&body).send().status, 200);
    let write_bearer = || timed(|| app.call("PATCH", &path).bearer(&bearer).json(&body).send().status, 200);
    for _ in 0..20 {
        read_cookie();
        read_bearer();
        write_cookie();
        write_bearer();
    }
    let (mut rc, mut rb, mut wc, mut wb, mut status) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..SAMPLES {
        rc.push(read_cookie());
        rb.push(read_bearer());
        wc.push(write_cookie());
        wb.push(write_bearer());
        status.push(timed(|| with_cookie(app.call("GET", "/auth/session"), &jar).send().status, 200));
    }

    let (mut whole, mut callbacks) = (Vec::new(), Vec::new());
    for _ in 0..SIGN_INS {
        let mut browser = CookieJar::default();
        let started = Instant::now();
        let authorize = flow.start(&mut browser);
        let callback = flow.at_provider(&mut browser, &authorize);
        callbacks.push(timed(|| browser.get(&callback).status, 303));
        whole.push(started.elapsed());
    }

    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1000.0);
    println!("p50 in ms over {SAMPLES} requests each (sign-ins: {SIGN_INS}); the provider's access tokens are RS256");
    println!();
    println!("| call | session cookie | bearer token (cached) | x |");
    println!("|---|---|---|---|");
    for (name, cookie, token) in [("read", rc, rb), ("write (PATCH)", wc, wb)] {
        let (cookie, token) = (p50(cookie), p50(token));
        println!("| {name} | {} | {} | {:.2} |", ms(cookie), ms(token), cookie.as_secs_f64() / token.as_secs_f64());
    }
    println!();
    println!("| sign-in step | p50 |");
    println!("|---|---|");
    println!("| `GET /auth/session`, no refresh due | {} |", ms(p50(status)));
    println!("| callback: code exchanged, ID and access tokens verified, session stored | {} |", ms(p50(callbacks)));
    println!("| whole sign-in: login, the provider's pages, callback | {} |", ms(p50(whole)));
}
