//! The third body form: one provider identity, validated field by field, stored as a tagged
//! document, never shown back.

use jwt_simple::prelude::*;
use serde_json::json;

use super::*;
use crate::dockerconfig::{Credentials, SecretRequest};

fn refusal(body: serde_json::Value) -> String {
    match SecretRequest::from_json(body, true) {
        Err(Error::InvalidRequest(message)) => message,
        other => panic!("expected a 400 InvalidRequest, got {other:?}"),
    }
}

pub(crate) fn google_key_text(key: &RS256KeyPair, token_uri: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": "p",
        "private_key_id": "kid-1",
        "private_key": key.to_pem().unwrap(),
        "client_email": "puller@p.iam.gserviceaccount.com",
        "token_uri": token_uri,
    })
    .to_string()
}

fn aws() -> serde_json::Value {
    json!({"accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "region": "eu-central-1"})
}

#[test]
fn an_aws_identity_is_a_kind_of_its_own_and_names_its_registries() {
    let mut body = aws();
    body["registryIds"] = json!(["123456789012"]);
    body["roleArn"] = json!("arn:aws:iam::123456789012:role/puller");
    let request = SecretRequest::from_json(json!({"name": "ecr", "aws": body}), true).unwrap();
    assert_eq!(request.credentials.kind(), Kind::AwsEcr);
    assert_eq!(request.credentials.registries(), ["123456789012.dkr.ecr.eu-central-1.amazonaws.com"]);
    let Credentials::Minting(Identity::AwsEcr(aws)) = &request.credentials else { panic!() };
    assert_eq!(aws.role_arn.as_deref(), Some("arn:aws:iam::123456789012:role/puller"));
}

#[test]
fn aws_fields_are_named_when_wrong() {
    for (change, field) in [
        (json!({"accessKeyId": null}), "`aws.accessKeyId` is required"),
        (json!({"accessKeyId": "short"}), "`aws.accessKeyId` must be"),
        (json!({"secretAccessKey": ""}), "`aws.secretAccessKey` is required"),
        (json!({"region": "Europe"}), "`aws.region` must be"),
        (json!({"region": "xkcd-vaj-kx"}), "`aws.region` must be"),
        (json!({"region": "eu-central-01"}), "`aws.region` must be"),
        (json!({"region": 5}), "`aws.region` must be a string"),
        (json!({"roleArn": "role/x"}), "`aws.roleArn` must be"),
        (json!({"registryIds": ["12"]}), "`aws.registryIds` must hold"),
        (json!({"registryIds": "123456789012"}), "`aws.registryIds` must be an array"),
        (json!({"profile": "x"}), "Unknown field \"profile\" in `aws`"),
    ] {
        let mut body = aws();
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let message = refusal(json!({"name": "ecr", "aws": body}));
        assert!(message.contains(field), "{change}: {message}");
        assert!(!message.contains("wJalrXUtnFEMI"), "{message}");
    }
}

#[test]
fn aws_regions_are_told_by_their_shape() {
    for region in [
        "us-east-1",
        "eu-central-2",
        "ap-southeast-7",
        "us-gov-west-1",
        "us-isob-east-1",
        "eu-isoe-west-1",
        "cn-northwest-1",
        "eusc-de-east-1",
        "mx-central-1",
        "il-central-1",
    ] {
        assert!(is_aws_region(region), "{region}");
    }
    for region in [
        "",
        "us-east",
        "east-1",
        "us-east-0",
        "us-east-100",
        "us-middle-1",
        "US-EAST-1",
        "u-east-1",
        "usgovx-east-1",
        "us-gov-isob-east-1",
        "aaa-bbb-ccc",
        "us-east-1 ",
        "us_east_1",
    ] {
        assert!(!is_aws_region(region), "{region:?}");
    }
}

#[test]
fn a_body_holds_one_identity_and_nothing_else() {
    assert!(refusal(json!({"name": "x", "aws": aws(), "azure": {}})).contains("exactly one provider identity"));
    assert!(refusal(json!({"name": "x", "aws": aws(), "username": "u"})).contains("mixes two forms"));
    assert!(refusal(json!({"name": "x", "aws": "text"})).contains("`aws` must be an object"));
}

#[test]
fn a_google_key_is_checked_and_only_its_parts_kept() {
    let key = RS256KeyPair::generate(2048).unwrap();
    let text = google_key_text(&key, "https://oauth2.googleapis.com/token");
    let body = json!({"name": "gar", "google": {"serviceAccountKey": text, "registries": ["Europe-Docker.pkg.dev", "gcr.io"]}});
    let request = SecretRequest::from_json(body, true).unwrap();
    assert_eq!(request.credentials.kind(), Kind::Google);
    assert_eq!(request.credentials.registries(), ["europe-docker.pkg.dev", "gcr.io"]);
    let Credentials::Minting(Identity::Google(google)) = &request.credentials else { panic!() };
    assert_eq!(google.client_email, "puller@p.iam.gserviceaccount.com");
    assert_eq!(google.private_key_id.as_deref(), Some("kid-1"));

    for (key_text, registries, field) in [
        ("not json".to_owned(), json!(["gcr.io"]), "`google.serviceAccountKey` must be the service account key file"),
        (text.replace("service_account", "user"), json!(["gcr.io"]), "`google.serviceAccountKey.type`"),
        (
            text.replace("BEGIN PRIVATE KEY", "BEGIN NONSENSE"),
            json!(["gcr.io"]),
            "`google.serviceAccountKey.private_key`",
        ),
        (
            google_key_text(&key, "http://169.254.169.254/token"),
            json!(["gcr.io"]),
            "`google.serviceAccountKey.token_uri`",
        ),
        (text.clone(), json!([]), "`google.registries` is required"),
        (text.clone(), json!(["https://gcr.io/v2"]), "`google.registries` must be a registry host"),
    ] {
        let message =
            refusal(json!({"name": "g", "google": {"serviceAccountKey": key_text, "registries": registries}}));
        assert!(message.contains(field), "{field}: {message}");
        assert!(!message.contains("PRIVATE KEY"), "{message}");
    }
}

#[test]
fn azure_fields_are_named_when_wrong() {
    let good = json!({"tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47", "clientId": "app", "clientSecret": "s3cr3t~", "registry": "MyReg.azurecr.io"});
    let request = SecretRequest::from_json(json!({"name": "acr", "azure": good.clone()}), true).unwrap();
    assert_eq!(request.credentials.registries(), ["myreg.azurecr.io"]);
    for (field, value, expected) in [
        ("tenantId", json!("../evil"), "`azure.tenantId` must be"),
        ("clientSecret", json!(null), "`azure.clientSecret` is required"),
        ("registry", json!("https://myreg.azurecr.io"), "`azure.registry` must be a registry host"),
    ] {
        let mut body = good.clone();
        body[field] = value;
        let message = refusal(json!({"name": "acr", "azure": body}));
        assert!(message.contains(expected), "{message}");
        assert!(!message.contains("s3cr3t~"), "{message}");
    }
}

#[test]
fn identities_are_stored_as_tagged_documents_and_read_back() {
    let request = SecretRequest::from_json(json!({"name": "ecr", "aws": aws()}), true).unwrap();
    let document = request.credentials.to_document();
    let stored: serde_json::Value = serde_json::from_slice(&document).unwrap();
    assert_eq!(stored["kind"], "awsEcr");
    assert_eq!(Credentials::from_document(&document).unwrap(), request.credentials);
    let static_request =
        SecretRequest::from_json(json!({"name": "s", "username": "u", "password": "p"}), true).unwrap();
    let document = static_request.credentials.to_document();
    assert!(matches!(Credentials::from_document(&document).unwrap(), Credentials::Static(_)));
}

#[test]
fn debug_output_shows_no_part_of_an_identity() {
    let request = SecretRequest::from_json(json!({"name": "ecr", "aws": aws()}), true).unwrap();
    let shown = format!("{request:?}");
    assert!(!shown.contains("AKIAIOSFODNN7EXAMPLE") && !shown.contains("wJalrXUtnFEMI"), "{shown}");
}
