use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use domain::crypto::{BindingContext, Keyring};
use domain::error::AuthFailure;
use domain::identity::{authenticate, Scope};
use domain::Error;
use serde_json::json;

use super::*;

/// RSA key generation is slow in debug builds: one in-memory set for the tests that need all algorithms.
fn keys() -> &'static DevKeys {
    static KEYS: OnceLock<DevKeys> = OnceLock::new();
    KEYS.get_or_init(generate_test_keys_in_memory)
}

const HOUR: Duration = Duration::from_secs(3600);

fn verify(keys: &DevKeys, token: &str) -> Result<domain::identity::Principal, Error> {
    authenticate(Some(&format!("Bearer {token}")), &keys.auth_settings())
}

fn refusal(keys: &DevKeys, token: &str) -> AuthFailure {
    match verify(keys, token) {
        Err(Error::Unauthenticated(failure)) => failure,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).unwrap();
        let name = format!("devauth-{label}-{}-{}", std::process::id(), u64::from_le_bytes(random));
        TempDir(std::env::temp_dir().join(name))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn tokens_of_every_algorithm_verify_against_the_jwks() {
    let claims = keys().claims("acme", &["regsecrets.admin", "regsecrets.puller"], HOUR);
    for alg in [Alg::Rs256, Alg::Es256, Alg::EdDsa] {
        let principal = verify(keys(), &keys().sign(alg, &claims)).unwrap();
        assert_eq!(principal.tenant.as_str(), "acme", "{alg:?}");
        assert!(principal.scopes.contains(Scope::Admin) && principal.scopes.contains(Scope::Puller), "{alg:?}");
    }
    let principal = verify(keys(), &keys().token("globex", &["regsecrets.viewer"], HOUR)).unwrap();
    assert_eq!(principal.tenant.as_str(), "globex");
    assert!(principal.scopes.contains(Scope::Viewer) && !principal.scopes.contains(Scope::Admin));
}

#[test]
fn the_wrong_tokens_are_wrong_in_the_intended_way() {
    let keys = keys();
    let good = keys.claims("acme", &["regsecrets.admin"], HOUR);
    let with = |member: &str, value: serde_json::Value| {
        let mut claims = good.clone();
        claims[member] = value;
        claims
    };
    let now = unix_now();
    let cases = [
        (keys.sign(Alg::EdDsa, &with("exp", json!(now - 120))), AuthFailure::Expired),
        (keys.sign(Alg::EdDsa, &with("iss", json!("https://evil.example"))), AuthFailure::WrongIssuer),
        (keys.sign(Alg::Es256, &with("aud", json!("other"))), AuthFailure::WrongAudience),
        (keys.sign(Alg::Rs256, &with("nbf", json!(now + 600))), AuthFailure::NotYetValid),
        (keys.sign(Alg::EdDsa, &with("iat", json!(now + 600))), AuthFailure::IssuedInFuture),
        (keys.sign(Alg::EdDsa, &with("tenant", json!("a/b"))), AuthFailure::InvalidTenant),
        (keys.sign(Alg::EdDsa, &with("exp", json!(null))), AuthFailure::Malformed),
        (keys.sign_with_kid(Alg::EdDsa, Some("nobody"), &good), AuthFailure::UnknownKey),
        (keys.sign_with_kid(Alg::EdDsa, None, &good), AuthFailure::UnknownKey),
        (keys.alg_none(&good), AuthFailure::UnsupportedAlgorithm),
        (keys.hs256_with_public_key(Alg::Rs256, &good), AuthFailure::UnsupportedAlgorithm),
        (keys.hs256_with_public_key(Alg::EdDsa, &good), AuthFailure::UnsupportedAlgorithm),
        (tamper_signature(&keys.sign(Alg::EdDsa, &good)), AuthFailure::BadSignature),
        (tamper_signature(&keys.sign(Alg::Rs256, &good)), AuthFailure::BadSignature),
        (keys.sign_raw(r#"{"alg":"EdDSA","kid":"x"}"#, "{}"), AuthFailure::UnknownKey),
    ];
    for (token, expected) in cases {
        assert_eq!(refusal(keys, &token), expected);
    }
    let mut no_exp = good.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_eq!(refusal(keys, &keys.sign(Alg::EdDsa, &no_exp)), AuthFailure::MissingExpiry);
    let mut no_tenant = good.clone();
    no_tenant.as_object_mut().unwrap().remove("tenant");
    assert_eq!(refusal(keys, &keys.sign(Alg::EdDsa, &no_tenant)), AuthFailure::MissingTenant);

    let kid = keys.kid(Alg::EdDsa).unwrap();
    let crit = format!(r#"{{"alg":"EdDSA","kid":"{kid}","crit":["exp"]}}"#);
    assert_eq!(refusal(keys, &keys.sign_raw(&crit, &good.to_string())), AuthFailure::Malformed);
    let plain = format!(r#"{{"alg":"EdDSA","kid":"{kid}"}}"#);
    assert!(verify(keys, &keys.sign_raw(&plain, &good.to_string())).is_ok());
}

#[test]
fn another_key_set_is_not_trusted() {
    let stranger = DevKeys::with_ed25519(jwt_simple::prelude::Ed25519KeyPair::generate(), String::new());
    let token = stranger.token("acme", &["regsecrets.admin"], HOUR);
    assert_eq!(refusal(keys(), &token), AuthFailure::UnknownKey);
    // Even naming our kid, its signature does not verify.
    let claims = stranger.claims("acme", &["regsecrets.admin"], HOUR);
    let forged = stranger.sign_with_kid(Alg::EdDsa, keys().kid(Alg::EdDsa), &claims);
    assert_eq!(refusal(keys(), &forged), AuthFailure::BadSignature);
}

#[test]
fn init_creates_private_files_once_and_keeps_them() {
    let dir = TempDir::new("init");
    let (first, created) = DevKeys::load_or_create_reporting(&dir.0.join(".dev")).unwrap();
    assert_eq!(created, Created { signing_key: true, encryption_keys: true });
    let (again, created) = DevKeys::load_or_create_reporting(&dir.0.join(".dev")).unwrap();
    assert_eq!(created, Created { signing_key: false, encryption_keys: false });
    assert_eq!(first.kid(Alg::EdDsa), again.kid(Alg::EdDsa));
    assert_eq!(first.encryption_keys(), again.encryption_keys());
    assert_eq!(first.jwks(), again.jwks());
    // A token minted by one process verifies in the next.
    assert!(verify(&again, &first.token("acme", &["regsecrets.viewer"], HOUR)).is_ok());
    assert!(first.kid(Alg::Rs256).is_none() && first.kid(Alg::Es256).is_none());

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: PathBuf| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.0.join(".dev/devauth-ed25519.pem")), 0o600);
        assert_eq!(mode(dir.0.join(".dev/encryption_keys")), 0o600);
        assert_eq!(mode(dir.0.join(".dev")), 0o700);
    }
}

#[test]
fn refuses_damaged_files_instead_of_replacing_them() {
    let dir = TempDir::new("damaged");
    DevKeys::load_or_create(&dir.0).unwrap();
    std::fs::write(dir.0.join("encryption_keys"), "local1:short").unwrap();
    assert!(DevKeys::load_or_create(&dir.0).is_err());
    assert_eq!(std::fs::read_to_string(dir.0.join("encryption_keys")).unwrap(), "local1:short");
}

#[test]
fn the_encryption_keys_value_is_a_working_keyring() {
    let dir = TempDir::new("keyring");
    let keys = DevKeys::load_or_create(&dir.0).unwrap();
    for value in [keys.encryption_keys(), generate_test_keys_in_memory_cheap().encryption_keys()] {
        let ring = Keyring::parse(value).unwrap();
        assert_eq!(ring.write_kid(), ENCRYPTION_KEY_ID);
        let context = BindingContext { tenant: "acme", name: "web" };
        assert_eq!(ring.open(&context, &ring.seal(&context, b"pw").unwrap()).unwrap(), b"pw");
    }
    assert_ne!(keys.encryption_keys(), generate_test_keys_in_memory_cheap().encryption_keys());
}

fn generate_test_keys_in_memory_cheap() -> DevKeys {
    DevKeys::with_ed25519(jwt_simple::prelude::Ed25519KeyPair::generate(), store::new_encryption_keys())
}

#[test]
fn spin_variables_name_what_the_service_reads() {
    let names: Vec<&str> = keys().spin_variables().iter().map(|(name, _)| *name).collect();
    assert_eq!(names, ["auth_jwks", "auth_issuer", "auth_audience", "encryption_keys"]);
    let jwks: serde_json::Value = serde_json::from_str(&keys().jwks()).unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 3);
}

#[test]
fn debug_shows_key_ids_only() {
    let printed = format!("{:?}", keys());
    assert!(printed.contains(keys().kid(Alg::EdDsa).unwrap()), "{printed}");
    let secret = keys().encryption_keys().split_once(':').unwrap().1;
    assert!(!printed.contains(&secret[..10]), "{printed}");
    assert!(!printed.contains("PRIVATE"), "{printed}");
}
