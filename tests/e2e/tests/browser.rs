//! The console, tested as a person uses it: Playwright drives Debian's Chromium against the app
//! in the test host (tests/browser). `.ci/run` installs Chromium and the npm packages.

use std::path::Path;
use std::process::Command;

use e2e::{repo_root, structured, unique_tenant, TestApp};

#[test]
fn the_console_in_a_real_browser() {
    let browser_dir = repo_root().join("tests/browser");
    if !browser_dir.join("node_modules").exists() || !Path::new("/usr/bin/chromium").exists() {
        eprintln!("skipped: run `npm ci` in tests/browser and install Debian's chromium (.ci/run does both)");
        return;
    }
    let app = TestApp::shared();
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
        .output()
        .expect("npm runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(output.status.success(), "browser tests failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(browser_dir.join("artifacts/console-list.png").exists(), "the list page's screenshot is saved");
}
