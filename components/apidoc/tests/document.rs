//! The committed document (served by the console) is the generated one, and it describes exactly
//! the routes of `domain::routes::ROUTES`. Regenerate after a change with
//! `REGSECRETS_WRITE_OPENAPI=1 cargo test -p apidoc --test document`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use domain::routes::ROUTES;
use serde_json::Value;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../console/assets/openapi.json")
}

#[test]
fn the_committed_document_is_the_generated_one() {
    let generated = apidoc::json();
    let path = committed_path();
    if std::env::var_os("REGSECRETS_WRITE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).expect("write the document");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let first = committed.lines().zip(generated.lines()).position(|(a, b)| a != b);
        let line = first.unwrap_or(committed.lines().count().min(generated.lines().count()));
        let show = |text: &str| text.lines().skip(line.saturating_sub(2)).take(5).collect::<Vec<_>>().join("\n");
        panic!(
            "{} is not the generated document; regenerate it with\n  REGSECRETS_WRITE_OPENAPI=1 cargo test -p apidoc --test document\n\
             first difference at line {}:\n--- committed\n{}\n+++ generated\n{}",
            path.display(),
            line + 1,
            show(&committed),
            show(&generated)
        );
    }
}

fn document() -> Value {
    serde_json::from_str(&apidoc::json()).expect("the document is JSON")
}

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

#[test]
fn the_document_has_one_operation_per_route_and_no_other() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if METHODS.contains(&method.as_str()) {
                let id = operation["operationId"].as_str().expect("every operation has an id").to_owned();
                documented.insert((method.to_ascii_uppercase(), path.clone(), id));
            }
        }
    }
    let routes: BTreeSet<_> =
        ROUTES.iter().map(|r| (r.method.to_owned(), r.path.to_owned(), r.operation.to_owned())).collect();
    assert_eq!(documented, routes);
}

#[test]
fn every_operation_is_secured_by_the_bearer_scheme_with_scopes_and_every_reference_resolves() {
    let doc = document();
    assert_eq!(doc["components"]["securitySchemes"][apidoc::BEARER]["scheme"], "bearer");
    let limit = &doc["components"]["schemas"]["SetQuota"]["properties"]["limit"];
    assert_eq!(limit["maximum"], domain::quota::MAX_LIMIT, "the derive's maximum is the domain's");
    for route in ROUTES {
        let operation = &doc["paths"][route.path][route.method.to_ascii_lowercase()];
        let security = operation["security"].as_array().expect("security");
        if [domain::routes::LIVENESS, domain::routes::READINESS].contains(&route.path) {
            // The probes, and only they, take no token: `security: []` says so explicitly.
            assert!(security.is_empty(), "{} is public", route.operation);
            assert!(operation["responses"].get("401").is_none(), "{} never asks for a token", route.operation);
            continue;
        }
        assert!(!security.is_empty(), "{}", route.operation);
        for requirement in security {
            let scopes = requirement[apidoc::BEARER].as_array().expect("bearer requirement");
            assert!(scopes.iter().all(|s| s.as_str().unwrap().starts_with("regsecrets.")), "{}", route.operation);
        }
        for status in ["401", "403", "500"] {
            assert!(operation["responses"].get(status).is_some(), "{} documents {status}", route.operation);
        }
    }
    let text = apidoc::json();
    for link in text.split("\"links\": {").skip(1) {
        assert!(link.contains("\"operationId\"") && !link.contains("operation_id"), "links name their operation");
    }
    for reference in text.split("\"$ref\": \"#/").skip(1) {
        let pointer = &reference[..reference.find('"').unwrap()];
        assert!(doc.pointer(&format!("/{pointer}")).is_some(), "dangling reference #/{pointer}");
    }
}
