//! The console, tested as a person uses it: Playwright drives Debian's Chromium against the app
//! in the test host (tests/browser). `.ci/run` installs Chromium and the npm packages.

use std::path::Path;
use std::process::Command;

use std::collections::BTreeMap;

use e2e::minting::{google_key_file, GoogleTokens};
use e2e::{repo_root, structured, unique_tenant, Options, TestApp, Tokens};
use jwt_simple::prelude::RS256KeyPair;

#[test]
fn the_console_in_a_real_browser() {
    let browser_dir = repo_root().join("tests/browser");
    if !browser_dir.join("node_modules").exists() || !Path::new("/usr/bin/chromium").exists() {
        eprintln!("skipped: run `npm ci` in tests/browser and install Debian's chromium (.ci/run does both)");
        return;
    }
    // Secrets that mint (minting.test.js): Google's token endpoint is a local one that trusts this key.
    let key = RS256KeyPair::generate(2048).unwrap();
    let google = GoogleTokens::start(key.public_key());
    let extra = BTreeMap::from([("google_token_url".to_owned(), google.url())]);
    let app = TestApp::start_with(Options::default(), Tokens::default(), extra);
    let tenant = unique_tenant("console");
    let operator = app.token(&tenant, &["regsecrets.operator"]);
    let managed = app.create(&operator, &structured("platform-mirror", "mirror.example.com", "svc", "pw"));
    assert_eq!(managed.status, 201, "{}", managed.body);
    let output = Command::new("npm")
        .arg("test")
        .current_dir(&browser_dir)
        .env("REGSECRETS_URL", app.app.base_url())
        .env(
            "REGSECRETS_ADMIN_TOKEN",
            app.token(&tenant, &["regsecrets.admin", "regsecrets.viewer", "regsecrets.puller"]),
        )
        .env("REGSECRETS_VIEWER_TOKEN", app.token(&tenant, &["regsecrets.viewer"]))
        .env("REGSECRETS_PULLER_TOKEN", app.token(&tenant, &["regsecrets.puller"]))
        .env("REGSECRETS_GOOGLE_KEY", google_key_file(&key))
        .output()
        .expect("npm runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(output.status.success(), "browser tests failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(browser_dir.join("artifacts/console-list.png").exists(), "the list page's screenshot is saved");
}
