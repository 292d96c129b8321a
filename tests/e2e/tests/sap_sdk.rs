//! SAP's published Python client SDKs drive the API unchanged. `.ci/run` installs the pinned
//! SDKs into virtual environments and names their interpreters in `REGSECRETS_SAP_SDK_PYTHONS`.

use std::process::Command;

use e2e::{unique_tenant, TestApp};

#[test]
fn sap_python_sdks_create_get_query_modify_and_delete() {
    let Ok(pythons) = std::env::var("REGSECRETS_SAP_SDK_PYTHONS") else {
        eprintln!("skipped: REGSECRETS_SAP_SDK_PYTHONS is not set (.ci/run sets it after installing the SDKs)");
        return;
    };
    let app = TestApp::shared();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sap_sdk.py");
    for python in pythons.split(':').filter(|p| !p.is_empty()) {
        let tenant = unique_tenant("sap-sdk");
        let token = app.token(&tenant, &["regsecrets.admin", "regsecrets.viewer"]);
        let output = Command::new(python)
            .arg(script)
            .env("REGSECRETS_URL", app.app.base_url())
            .env("REGSECRETS_TOKEN", token)
            .output()
            .expect("python runs");
        assert!(
            output.status.success(),
            "{python}: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
