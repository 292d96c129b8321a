use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwt_simple::prelude::*;
use serde_json::{json, Map, Value};

use super::*;
use super::{MAX_HEADER_LENGTH, MAX_TOKEN_LENGTH};
use crate::jwks::encode_member;

const NOW: u64 = 1_700_000_000;
const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "regsecrets";

struct TestKeys {
    rsa: RS256KeyPair,
    es: ES256KeyPair,
    ed: Ed25519KeyPair,
    jwks: String,
}

/// RSA key generation is slow in debug builds: one set of keys for every test.
fn keys() -> &'static TestKeys {
    static KEYS: OnceLock<TestKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let rsa = RS256KeyPair::generate(2048).unwrap().with_key_id("rsa");
        let es = ES256KeyPair::generate().with_key_id("es");
        let ed = Ed25519KeyPair::generate().with_key_id("ed");
        let rsa_public = rsa.public_key().to_components();
        let es_point = es.public_key().public_key().to_bytes_uncompressed();
        let jwks = json!({"keys": [
            {"kty": "RSA", "kid": "rsa", "use": "sig", "n": encode_member(&rsa_public.n), "e": encode_member(&rsa_public.e)},
            {"kty": "EC", "crv": "P-256", "kid": "es", "x": encode_member(&es_point[1..33]), "y": encode_member(&es_point[33..])},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "alg": "EdDSA", "x": encode_member(&ed.public_key().to_bytes())},
        ]})
        .to_string();
        TestKeys { rsa, es, ed, jwks }
    })
}

fn settings() -> AuthSettings {
    AuthSettings::new(keys().jwks.clone(), ISSUER, AUDIENCE)
}

fn claims_with(custom: Value) -> JWTClaims<Map<String, Value>> {
    let Value::Object(custom) = custom else { panic!("custom claims must be an object") };
    let mut claims =
        Claims::with_custom_claims(custom, Duration::from_secs(3600)).with_issuer(ISSUER).with_audience(AUDIENCE);
    claims.issued_at = Some(Duration::from_secs(NOW));
    claims.invalid_before = Some(Duration::from_secs(NOW));
    claims.expires_at = Some(Duration::from_secs(NOW + 3600));
    claims
}

fn claims() -> JWTClaims<Map<String, Value>> {
    claims_with(json!({"tenant": "acme", "scope": "regsecrets.admin"}))
}

fn ed_token(claims: JWTClaims<Map<String, Value>>) -> String {
    keys().ed.sign(claims).unwrap()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn check(token: &str) -> Result<Principal, Error> {
    check_with(token, &settings())
}

fn check_with(token: &str, settings: &AuthSettings) -> Result<Principal, Error> {
    authenticate_at(Some(&bearer(token)), settings, NOW)
}

fn refused(token: &str) -> AuthFailure {
    match check(token) {
        Err(Error::Unauthenticated(failure)) => failure,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A token whose header and claims are exactly these, signed by the Ed25519 test key.
fn hand_built_ed(header: Value, claims: Value) -> String {
    signed_by_ed(&header.to_string(), &claims.to_string())
}

fn signed_by_ed(header: &str, claims: &str) -> String {
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let signature = keys().ed.key_pair().as_ref().sk.sign(signing_input.as_bytes(), None);
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(*signature))
}

fn claims_json() -> Value {
    serde_json::to_value(claims()).unwrap()
}

#[test]
fn accepts_rs256_es256_and_eddsa_tokens() {
    let tokens =
        [keys().rsa.sign(claims()).unwrap(), keys().es.sign(claims()).unwrap(), keys().ed.sign(claims()).unwrap()];
    for token in tokens {
        let principal = check(&token).unwrap();
        assert_eq!(principal.tenant.as_str(), "acme");
        assert_eq!(principal.scopes, Scopes::empty().with(Scope::Admin));
    }
}

#[test]
fn reads_the_clock_when_no_time_is_given() {
    let mut claims = claims();
    let now = Clock::now_since_epoch().as_secs();
    claims.issued_at = Some(Duration::from_secs(now));
    claims.invalid_before = Some(Duration::from_secs(now));
    claims.expires_at = Some(Duration::from_secs(now + 600));
    let principal = authenticate(Some(&bearer(&ed_token(claims))), &settings()).unwrap();
    assert_eq!(principal.tenant.as_str(), "acme");
    // The fixed test time lies years in the past: by the real clock such a token has expired.
    let stale = authenticate(Some(&bearer(&ed_token(self::claims()))), &settings());
    assert_eq!(stale.unwrap_err(), Error::Unauthenticated(AuthFailure::Expired));
}

#[test]
fn refuses_requests_without_a_bearer_token() {
    let token = ed_token(claims());
    let at = |header: Option<&str>| authenticate_at(header, &settings(), NOW).unwrap_err();
    assert_eq!(at(None), Error::Unauthenticated(AuthFailure::MissingHeader));
    assert_eq!(at(Some(&format!("Basic {token}"))), Error::Unauthenticated(AuthFailure::NotBearer));
    assert_eq!(at(Some(&token)), Error::Unauthenticated(AuthFailure::NotBearer));
    assert_eq!(at(Some("")), Error::Unauthenticated(AuthFailure::NotBearer));
    assert_eq!(at(Some("Bearer")), Error::Unauthenticated(AuthFailure::Malformed));
    assert_eq!(at(Some("Bearer   ")), Error::Unauthenticated(AuthFailure::Malformed));
    assert_eq!(at(Some(&format!("Bearer {token} extra"))), Error::Unauthenticated(AuthFailure::Malformed));
}

#[test]
fn the_scheme_is_case_insensitive() {
    let token = ed_token(claims());
    for scheme in ["bearer", "BEARER", "Bearer", "bEaReR"] {
        let header = format!("{scheme}  {token} ");
        assert!(authenticate_at(Some(&header), &settings(), NOW).is_ok(), "{scheme}");
    }
}

#[test]
fn refuses_malformed_tokens() {
    let token = ed_token(claims());
    let (header, rest) = token.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    for bad in [
        "abc",
        "abc.def",
        "a.b.c",
        "....",
        &signed_by_ed(r#"{"alg":"EdDSA","kid":"ed"}"#, "not json"),
        &signed_by_ed(r#"{"alg":"EdDSA","kid":"ed"}"#, r#"{"exp":"tomorrow"}"#),
        &signed_by_ed(r#"{"alg":"EdDSA","kid":"ed","crit":["exp"]}"#, &claims_json().to_string()),
        &signed_by_ed(r#"{"alg":"EdDSA","kid":"ed","typ":"JWE"}"#, &claims_json().to_string()),
        &format!("{token}.extra"),
        &format!("{}.{rest}", URL_SAFE_NO_PAD.encode("not json")),
        &"x".repeat(MAX_TOKEN_LENGTH + 1),
        &format!("{}.{rest}", "e".repeat(MAX_HEADER_LENGTH + 1)),
    ] {
        assert_eq!(refused(bad), AuthFailure::Malformed, "{bad:.40}");
    }
    // A well-formed header over a broken body fails the signature first: nothing of it is read.
    assert_eq!(refused(&format!("{header}.!!!.{signature}")), AuthFailure::BadSignature);
}

#[test]
fn refuses_bad_signatures() {
    let stranger = Ed25519KeyPair::generate().with_key_id("ed");
    assert_eq!(refused(&stranger.sign(claims()).unwrap()), AuthFailure::BadSignature);

    // The same signature over claims naming another tenant.
    let token = ed_token(claims());
    let parts: Vec<&str> = token.split('.').collect();
    let mut forged = claims_json();
    forged["tenant"] = "victim".into();
    let forged = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(forged.to_string()), parts[2]);
    assert_eq!(refused(&forged), AuthFailure::BadSignature);

    let rsa_token = keys().rsa.sign(claims()).unwrap();
    let (signed, signature) = rsa_token.rsplit_once('.').unwrap();
    let mut signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    signature[100] ^= 1;
    let flipped = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&signature));
    assert_eq!(refused(&flipped), AuthFailure::BadSignature);
    let es_stranger = ES256KeyPair::generate().with_key_id("es");
    assert_eq!(refused(&es_stranger.sign(claims()).unwrap()), AuthFailure::BadSignature);
}

#[test]
fn refuses_alg_none() {
    for alg in ["none", "None", "NONE"] {
        let header = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "kid": "ed", "typ": "JWT"}).to_string());
        let body = URL_SAFE_NO_PAD.encode(claims_json().to_string());
        assert_eq!(refused(&format!("{header}.{body}.")), AuthFailure::UnsupportedAlgorithm);
    }
}

#[test]
fn refuses_hmac_even_keyed_with_the_public_key() {
    // Algorithm confusion: an HMAC "signed" with bytes of a public key anyone can fetch.
    let rsa_public = keys().rsa.public_key();
    let secrets =
        [rsa_public.to_der().unwrap(), rsa_public.to_pem().unwrap().into_bytes(), keys().jwks.clone().into_bytes()];
    for secret in secrets {
        let hs256 = HS256Key::from_bytes(&secret).with_key_id("rsa");
        assert_eq!(refused(&hs256.authenticate(claims()).unwrap()), AuthFailure::UnsupportedAlgorithm);
    }
    let hs384 = HS384Key::from_bytes(&keys().ed.public_key().to_bytes()).with_key_id("ed");
    assert_eq!(refused(&hs384.authenticate(claims()).unwrap()), AuthFailure::UnsupportedAlgorithm);
    let hs512 = HS512Key::from_bytes(&keys().ed.public_key().to_bytes()).with_key_id("ed");
    assert_eq!(refused(&hs512.authenticate(claims()).unwrap()), AuthFailure::UnsupportedAlgorithm);
}

#[test]
fn refuses_an_algorithm_the_named_key_is_not_for() {
    let es_as_ed = ES256KeyPair::generate().with_key_id("ed");
    assert_eq!(refused(&es_as_ed.sign(claims()).unwrap()), AuthFailure::UnsupportedAlgorithm);
    let ed_as_rsa = Ed25519KeyPair::generate().with_key_id("rsa");
    assert_eq!(refused(&ed_as_rsa.sign(claims()).unwrap()), AuthFailure::UnsupportedAlgorithm);
    // Algorithms we do not take at all, even with a matching key type.
    let rs512 = RS512KeyPair::from_der(&keys().rsa.to_der().unwrap()).unwrap().with_key_id("rsa");
    assert_eq!(refused(&rs512.sign(claims()).unwrap()), AuthFailure::UnsupportedAlgorithm);
    let header = json!({"alg": "PS256", "kid": "rsa"});
    assert_eq!(refused(&hand_built_ed(header, claims_json())), AuthFailure::UnsupportedAlgorithm);
}

#[test]
fn refuses_unknown_and_missing_kids() {
    let unknown = Ed25519KeyPair::generate().with_key_id("someone-else");
    assert_eq!(refused(&unknown.sign(claims()).unwrap()), AuthFailure::UnknownKey);
    let no_kid = Ed25519KeyPair::from_bytes(&keys().ed.to_bytes()).unwrap();
    assert_eq!(refused(&no_kid.sign(claims()).unwrap()), AuthFailure::UnknownKey);
}

#[test]
fn expiry_has_sixty_seconds_of_leeway_and_no_more() {
    let mut claims = claims();
    claims.expires_at = Some(Duration::from_secs(NOW - 30));
    assert!(check(&ed_token(claims.clone())).is_ok());
    claims.expires_at = Some(Duration::from_secs(NOW - 61));
    assert_eq!(refused(&ed_token(claims.clone())), AuthFailure::Expired);
    claims.expires_at = Some(Duration::from_secs(NOW - 3600));
    assert_eq!(refused(&ed_token(claims)), AuthFailure::Expired);
}

#[test]
fn refuses_tokens_not_yet_valid_or_issued_in_the_future() {
    let mut claims = claims();
    claims.invalid_before = Some(Duration::from_secs(NOW + 30));
    assert!(check(&ed_token(claims.clone())).is_ok());
    claims.invalid_before = Some(Duration::from_secs(NOW + 120));
    assert_eq!(refused(&ed_token(claims)), AuthFailure::NotYetValid);

    let mut claims = self::claims();
    claims.invalid_before = None;
    claims.issued_at = Some(Duration::from_secs(NOW + 30));
    assert!(check(&ed_token(claims.clone())).is_ok());
    claims.issued_at = Some(Duration::from_secs(NOW + 120));
    assert_eq!(refused(&ed_token(claims)), AuthFailure::IssuedInFuture);
}

#[test]
fn nbf_and_iat_are_optional_exp_is_not() {
    let mut claims = claims();
    claims.invalid_before = None;
    claims.issued_at = None;
    assert!(check(&ed_token(claims.clone())).is_ok());
    claims.expires_at = None;
    assert_eq!(refused(&ed_token(claims)), AuthFailure::MissingExpiry);
}

#[test]
fn refuses_other_issuers() {
    assert_eq!(refused(&ed_token(claims().with_issuer("https://evil.test"))), AuthFailure::WrongIssuer);
    assert_eq!(refused(&ed_token(claims().with_issuer(format!("{ISSUER}/")))), AuthFailure::WrongIssuer);
    let mut no_issuer = claims();
    no_issuer.issuer = None;
    assert_eq!(refused(&ed_token(no_issuer)), AuthFailure::WrongIssuer);
}

#[test]
fn audience_must_be_or_contain_ours() {
    assert_eq!(refused(&ed_token(claims().with_audience("someone-else"))), AuthFailure::WrongAudience);
    let mut no_audience = claims();
    no_audience.audiences = None;
    assert_eq!(refused(&ed_token(no_audience)), AuthFailure::WrongAudience);

    let ours_among_others = claims().with_audiences(HashSet::from(["account", AUDIENCE]));
    assert!(check(&ed_token(ours_among_others)).is_ok());
    let others_only = claims().with_audiences(HashSet::from(["account", "api"]));
    assert_eq!(refused(&ed_token(others_only)), AuthFailure::WrongAudience);
}

#[test]
fn the_tenant_claim_is_required_and_must_be_a_valid_tenant_id() {
    assert_eq!(refused(&ed_token(claims_with(json!({"scope": "regsecrets.admin"})))), AuthFailure::MissingTenant);
    assert_eq!(refused(&ed_token(claims_with(json!({"tenant": null})))), AuthFailure::MissingTenant);
    for not_a_string in [json!(42), json!(["acme"]), json!({"id": "acme"}), json!(true)] {
        let token = ed_token(claims_with(json!({ "tenant": not_a_string })));
        assert_eq!(refused(&token), AuthFailure::InvalidTenant, "{not_a_string}");
    }
    let long = "a".repeat(1000);
    for bad in ["", "a/b", "../etc", "a:b", "a..b", "..", ".hidden", "nul\0byte", "sp ace", "ümlaut", &long] {
        let token = ed_token(claims_with(json!({ "tenant": bad })));
        assert_eq!(refused(&token), AuthFailure::InvalidTenant, "{bad:.20}");
    }
    for good in ["acme", "Acme_Corp-1.eu", &"a".repeat(128)] {
        let principal = check(&ed_token(claims_with(json!({ "tenant": good })))).unwrap();
        assert_eq!(principal.tenant.as_str(), good);
    }
}

#[test]
fn the_tenant_claim_name_is_configurable() {
    let settings = AuthSettings { tenant_claim: "org_id".into(), ..settings() };
    let token = ed_token(claims_with(json!({"org_id": "globex", "tenant": "acme"})));
    assert_eq!(check_with(&token, &settings).unwrap().tenant.as_str(), "globex");
    let token = ed_token(claims_with(json!({"tenant": "acme"})));
    assert_eq!(check_with(&token, &settings).unwrap_err(), Error::Unauthenticated(AuthFailure::MissingTenant));

    let by_subject = AuthSettings { tenant_claim: "sub".into(), ..settings.clone() };
    let token = ed_token(claims().with_subject("initech"));
    assert_eq!(check_with(&token, &by_subject).unwrap().tenant.as_str(), "initech");
    assert_eq!(
        check_with(&ed_token(claims()), &by_subject).unwrap_err(),
        Error::Unauthenticated(AuthFailure::MissingTenant)
    );
}

#[test]
fn scopes_come_as_a_string_or_an_array_and_unknown_ones_are_ignored() {
    let scopes_of =
        |scope: Value| check(&ed_token(claims_with(json!({"tenant": "acme", "scope": scope})))).map(|p| p.scopes);
    assert_eq!(
        scopes_of(json!("openid regsecrets.viewer  regsecrets.puller profile")).unwrap(),
        Scopes::from_iter([Scope::Viewer, Scope::Puller])
    );
    assert_eq!(
        scopes_of(json!(["regsecrets.operator", "email", "regsecrets.admin"])).unwrap(),
        Scopes::from_iter([Scope::Operator, Scope::Admin])
    );
    assert_eq!(scopes_of(json!("")).unwrap(), Scopes::empty());
    assert_eq!(scopes_of(json!([])).unwrap(), Scopes::empty());
    // Near misses grant nothing.
    assert_eq!(scopes_of(json!("REGSECRETS.ADMIN regsecrets.admin2 regsecrets")).unwrap(), Scopes::empty());
    for bad in [json!(1), json!({"a": 1}), json!(["regsecrets.admin", 2]), json!(null)] {
        assert_eq!(scopes_of(bad).unwrap_err(), Error::Unauthenticated(AuthFailure::InvalidScopeClaim));
    }
    let no_scope = check(&ed_token(claims_with(json!({"tenant": "acme"})))).unwrap();
    assert!(no_scope.scopes.is_empty());
}

#[test]
fn unusable_settings_are_a_misconfiguration() {
    let token = ed_token(claims());
    let misconfigured = Error::Unauthenticated(AuthFailure::Misconfigured);
    for jwks in ["", "not json", r#"{"keys": []}"#, r#"{"keys": "x"}"#] {
        let settings = AuthSettings { jwks: jwks.into(), ..settings() };
        assert_eq!(check_with(&token, &settings).unwrap_err(), misconfigured, "{jwks}");
    }
    let empty_issuer = AuthSettings { issuer: String::new(), ..settings() };
    assert_eq!(check_with(&token, &empty_issuer).unwrap_err(), misconfigured);
    let empty_audience = AuthSettings { audience: String::new(), ..settings() };
    assert_eq!(check_with(&token, &empty_audience).unwrap_err(), misconfigured);
    for claim in ["", "iss", "exp", "aud"] {
        let settings = AuthSettings { tenant_claim: claim.into(), ..settings() };
        assert_eq!(check_with(&token, &settings).unwrap_err(), misconfigured, "{claim}");
    }
    let broken_key = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "AAAA"}]}).to_string();
    let settings = AuthSettings { jwks: broken_key, ..settings() };
    assert_eq!(check_with(&token, &settings).unwrap_err(), misconfigured);
}

#[test]
fn each_need_is_granted_by_the_contracts_scopes_only() {
    let tenant = TenantId::parse("acme").unwrap();
    let principal = |scopes: &[Scope]| Principal {
        tenant: tenant.clone(),
        scopes: scopes.iter().copied().collect(),
        subject: None,
        client: None,
    };
    let table = [
        (Scope::Viewer, [true, false, false, false]),
        (Scope::Admin, [true, true, false, false]),
        (Scope::Puller, [false, false, true, false]),
        (Scope::Operator, [false, true, false, true]),
    ];
    let needs = [Need::ReadMetadata, Need::WriteSecrets, Need::ReadCredentials, Need::Operate];
    for (scope, granted) in table {
        let principal = principal(&[scope]);
        for (need, expected) in needs.into_iter().zip(granted) {
            let result = principal.require(need);
            if expected {
                assert_eq!(result, Ok(()), "{scope:?} {need:?}");
            } else {
                assert_eq!(result, Err(Error::Forbidden), "{scope:?} {need:?}");
            }
        }
        assert_eq!(principal.is_operator(), scope == Scope::Operator);
    }
    for need in needs {
        assert_eq!(principal(&[]).require(need), Err(Error::Forbidden));
    }
    assert!(principal(&[Scope::Viewer, Scope::Puller]).may(Need::ReadCredentials));
}

#[test]
fn scopes_print_their_names() {
    let scopes = Scopes::from_iter([Scope::Puller, Scope::Viewer]);
    assert_eq!(format!("{scopes:?}"), r#"{"regsecrets.viewer", "regsecrets.puller"}"#);
}

mod cache {
    use super::*;
    use crate::identity::cache::{authenticate_cached, Lookup};
    use crate::store::MemoryStore;

    fn cached(
        store: &MemoryStore,
        token: &str,
        settings: &AuthSettings,
        now: u64,
    ) -> Result<(Principal, Lookup), Error> {
        authenticate_cached(store, Some(&bearer(token)), settings, None, now)
    }

    /// Verifies, and writes the entry as an endpoint does after a successful read.
    fn verify_and_save(store: &MemoryStore, token: &str) {
        match cached(store, token, &settings(), NOW).unwrap().1 {
            Lookup::Verified(Some(remember)) => remember.save(store),
            other => panic!("expected a fresh verification, got {other:?}"),
        }
    }

    #[test]
    fn a_token_verified_once_is_then_answered_from_the_cache() {
        let store = MemoryStore::new();
        let token = ed_token(claims());
        verify_and_save(&store, &token);
        let (principal, lookup) = cached(&store, &token, &settings(), NOW + 10).unwrap();
        assert!(matches!(lookup, Lookup::Hit));
        assert_eq!(principal.tenant.as_str(), "acme");
        assert!(principal.scopes.contains(Scope::Admin));
    }

    #[test]
    fn nothing_but_the_same_token_under_the_same_settings_hits() {
        let store = MemoryStore::new();
        let token = ed_token(claims());
        verify_and_save(&store, &token);
        let tampered = format!("{}x", &token[..token.len() - 1]);
        assert!(matches!(cached(&store, &tampered, &settings(), NOW), Err(Error::Unauthenticated(_))));
        let mut other = settings();
        other.audience = "another-api".into();
        assert_eq!(
            cached(&store, &token, &other, NOW).unwrap_err(),
            Error::Unauthenticated(AuthFailure::WrongAudience),
            "new settings: verified again, and refused"
        );
    }

    #[test]
    fn a_cached_token_still_expires_with_the_same_leeway() {
        let store = MemoryStore::new();
        let token = ed_token(claims());
        verify_and_save(&store, &token);
        assert!(matches!(cached(&store, &token, &settings(), NOW + 3600 + 30).unwrap().1, Lookup::Hit));
        assert_eq!(
            cached(&store, &token, &settings(), NOW + 3600 + 120).unwrap_err(),
            Error::Unauthenticated(AuthFailure::Expired)
        );
    }

    #[test]
    fn refused_tokens_are_never_remembered_and_live_entries_are_not_evicted() {
        let store = MemoryStore::new();
        let mut expired = claims();
        expired.expires_at = Some(Duration::from_secs(NOW - 3600));
        assert!(cached(&store, &ed_token(expired), &settings(), NOW).is_err());
        assert!(store.dump().is_empty());
        // Fill every place of every slot, then a new token finds its slot full of live entries:
        // no write, and every remembered token still hits.
        let places = crate::identity::cache::SLOTS as usize * crate::identity::cache::PER_SLOT;
        let mut tokens = Vec::new();
        let mut n = 0;
        while tokens.len() < places {
            let token = ed_token(claims_with(json!({"tenant": format!("t{n}"), "scope": "regsecrets.viewer"})));
            n += 1;
            if let Lookup::Verified(Some(remember)) = cached(&store, &token, &settings(), NOW).unwrap().1 {
                remember.save(&store);
                tokens.push(token);
            }
        }
        assert_eq!(store.dump().len(), crate::identity::cache::SLOTS as usize, "one key per slot, whatever the tokens");
        let before = store.dump();
        let newcomer = ed_token(claims_with(json!({"tenant": "late", "scope": "regsecrets.viewer"})));
        assert!(matches!(cached(&store, &newcomer, &settings(), NOW).unwrap().1, Lookup::Verified(None)));
        assert_eq!(store.dump(), before);
        for token in &tokens {
            assert!(matches!(cached(&store, token, &settings(), NOW).unwrap().1, Lookup::Hit));
        }
        // Once they expire, their places are free again.
        let later = NOW + 3600 + 120;
        let mut fresh = claims_with(json!({"tenant": "late", "scope": "regsecrets.viewer"}));
        fresh.expires_at = Some(Duration::from_secs(later + 3600));
        assert!(matches!(cached(&store, &ed_token(fresh), &settings(), later).unwrap().1, Lookup::Verified(Some(_))));
    }

    /// A slot written by the release before buckets (one entry alone) is read alike; two misses on
    /// one slot at once lose at most an entry, which costs that token one more verification.
    #[test]
    fn an_old_single_entry_slot_hits_and_a_lost_entry_is_only_verified_again() {
        let store = MemoryStore::new();
        let token = ed_token(claims());
        let Lookup::Verified(Some(remember)) = cached(&store, &token, &settings(), NOW).unwrap().1 else { panic!() };
        remember.save(&store);
        let key = (0..crate::identity::cache::SLOTS)
            .map(crate::store::token_cache_slot)
            .find(|k| store.dump().contains_key(k.as_str()))
            .unwrap();
        let entries: Vec<Value> = serde_json::from_slice(&store.dump()[key.as_str()]).unwrap();
        crate::store::KeyValue::set(&store, &key, &serde_json::to_vec(&entries[0]).unwrap()).unwrap();
        assert!(matches!(cached(&store, &token, &settings(), NOW).unwrap().1, Lookup::Hit), "the old form hits");

        // Two tokens of one slot, both missing at once: the second write wins.
        let store = MemoryStore::new();
        let slot_of = |t: &str| <sha2::Sha256 as sha2::Digest>::digest(t.as_bytes())[0] % crate::identity::cache::SLOTS;
        let a = ed_token(claims_with(json!({"tenant": "a", "scope": "regsecrets.viewer"})));
        let b = (0..)
            .map(|n| ed_token(claims_with(json!({"tenant": format!("b{n}"), "scope": "regsecrets.viewer"}))))
            .find(|b| slot_of(b) == slot_of(&a))
            .unwrap();
        let (Lookup::Verified(Some(first)), Lookup::Verified(Some(second))) =
            (cached(&store, &a, &settings(), NOW).unwrap().1, cached(&store, &b, &settings(), NOW).unwrap().1)
        else {
            panic!("both verified with room to remember")
        };
        first.save(&store);
        second.save(&store);
        assert!(matches!(cached(&store, &b, &settings(), NOW).unwrap().1, Lookup::Hit));
        let Lookup::Verified(Some(again)) = cached(&store, &a, &settings(), NOW).unwrap().1 else {
            panic!("the lost entry is verified again and remembered")
        };
        again.save(&store);
        assert!(matches!(cached(&store, &a, &settings(), NOW).unwrap().1, Lookup::Hit));
        assert!(matches!(cached(&store, &b, &settings(), NOW).unwrap().1, Lookup::Hit));
    }
}

#[test]
fn the_caller_s_subject_and_client_are_kept_for_the_audit_trail_also_through_the_cache() {
    use crate::identity::cache::{authenticate_cached, Lookup};
    let mut with_azp = claims_with(json!({"tenant": "acme", "scope": "regsecrets.puller", "azp": "ci-bot"}));
    with_azp.subject = Some("alice@example.com".into());
    let principal = check(&ed_token(with_azp.clone())).unwrap();
    assert_eq!(principal.subject.as_deref(), Some("alice@example.com"));
    assert_eq!(principal.client.as_deref(), Some("ci-bot"));
    let client_id_only = claims_with(json!({"tenant": "acme", "client_id": "console"}));
    let principal = check(&ed_token(client_id_only)).unwrap();
    assert_eq!((principal.subject, principal.client.as_deref()), (None, Some("console")));

    let store = crate::store::MemoryStore::new();
    let token = ed_token(with_azp);
    let Ok((_, Lookup::Verified(Some(remember)))) =
        authenticate_cached(&store, Some(&bearer(&token)), &settings(), None, NOW)
    else {
        panic!("a fresh verification")
    };
    remember.save(&store);
    let (hit, lookup) = authenticate_cached(&store, Some(&bearer(&token)), &settings(), None, NOW).unwrap();
    assert!(matches!(lookup, Lookup::Hit));
    assert_eq!((hit.subject.as_deref(), hit.client.as_deref()), (Some("alice@example.com"), Some("ci-bot")));
}
