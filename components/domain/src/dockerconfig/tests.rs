use super::*;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::json;

const PASSWORD: &str = "hunter2-Sup3r";
const USER: &str = "alice";

fn sap(config: &str) -> Value {
    json!({"name": "pull", "data": {".dockerconfigjson": config}})
}

fn parse(body: Value) -> Result<DockerConfig, Error> {
    SecretRequest::from_json(body, true).map(|request| match request.credentials {
        Credentials::Static(config) => config,
        Credentials::Minting(_) => panic!("not a static body"),
    })
}

fn message(result: Result<DockerConfig, Error>) -> (String, &'static str) {
    let error = result.expect_err("should be refused");
    assert_eq!(error.status(), 400);
    let message = error.message();
    for secret in [PASSWORD, USER, "aHVudGVy", &STANDARD.encode(format!("{USER}:{PASSWORD}"))] {
        assert!(!message.contains(secret), "message leaks a credential: {message}");
    }
    (message, error.code())
}

fn only(config: &DockerConfig) -> (&str, &RegistryAuth) {
    assert_eq!(config.auths().len(), 1);
    let (key, auth) = config.auths().iter().next().unwrap();
    (key, auth)
}

fn auth_of(user: &str, pass: &str) -> String {
    STANDARD.encode(format!("{user}:{pass}"))
}

#[test]
fn structured_form_builds_what_kubectl_builds() {
    let config = parse(json!({
        "name": "pull", "registry": "ghcr.io", "username": "alice",
        "password": "p@ss", "email": "a@example.com"
    }))
    .unwrap();
    assert_eq!(
        String::from_utf8(config.to_dockerconfigjson()).unwrap(),
        r#"{"auths":{"ghcr.io":{"username":"alice","password":"p@ss","email":"a@example.com","auth":"YWxpY2U6cEBzcw=="}}}"#
    );
}

#[test]
fn structured_form_defaults_to_docker_hub_and_omits_empty_email() {
    for body in [
        json!({"name": "pull", "username": "alice", "password": "hunter2"}),
        json!({"name": "pull", "username": "alice", "password": "hunter2", "email": ""}),
        json!({"name": "pull", "username": "alice", "password": "hunter2", "registry": null, "email": null}),
    ] {
        let config = parse(body).unwrap();
        assert_eq!(
            String::from_utf8(config.to_dockerconfigjson()).unwrap(),
            r#"{"auths":{"https://index.docker.io/v1/":{"username":"alice","password":"hunter2","auth":"YWxpY2U6aHVudGVyMg=="}}}"#
        );
        assert_eq!(config.registries(), vec!["docker.io"]);
    }
}

#[test]
fn output_escapes_strings_as_go_does() {
    let config = DockerConfig::from_credentials(Some("ghcr.io"), "bob", "s3cr3t&<>\"\\\n\u{1}\u{2028}é", None).unwrap();
    let expected_auth = auth_of("bob", "s3cr3t&<>\"\\\n\u{1}\u{2028}é");
    assert_eq!(
        String::from_utf8(config.to_dockerconfigjson()).unwrap(),
        format!(
            r#"{{"auths":{{"ghcr.io":{{"username":"bob","password":"s3cr3t\u0026\u003c\u003e\"\\\n\u0001\u2028é","auth":"{expected_auth}"}}}}}}"#
        )
    );
    assert_eq!(DockerConfig::from_stored(&config.to_dockerconfigjson()).unwrap(), config);
}

#[test]
fn structured_form_refusals() {
    let cases = [
        (json!({"name": "p", "username": "a:b", "password": "hunter2"}), "must not contain ':'"),
        (json!({"name": "p", "username": "", "password": "hunter2"}), "username must not be empty"),
        (json!({"name": "p", "username": USER, "password": ""}), "password must not be empty"),
        (json!({"name": "p", "username": USER}), "`password` is required"),
        (json!({"name": "p", "password": PASSWORD}), "`username` is required"),
        (json!({"name": "p", "registry": "ghcr.io"}), "`username` is required"),
        (json!({"name": "p", "username": USER, "password": 42}), "`password` must be a string"),
        (json!({"name": "p", "username": ["alice"], "password": PASSWORD}), "`username` must be a string"),
        (json!({"name": "p", "username": USER, "password": PASSWORD, "email": false}), "`email` must be a string"),
        (json!({"name": "p", "username": USER, "password": PASSWORD, "registry": "ftp://x.io"}), "scheme"),
    ];
    for (body, expected) in cases {
        let (message, _) = message(parse(body.clone()));
        assert!(message.contains(expected), "{body}: {message}");
    }
}

#[test]
fn body_shape_refusals() {
    let config = r#"{"auths":{"ghcr.io":{"auth":"YWxpY2U6aHVudGVyMg=="}}}"#;
    let cases = [
        (json!([1]), "must be a JSON object", "InvalidRequest"),
        (json!("text"), "must be a JSON object", "InvalidRequest"),
        (json!({"data": {".dockerconfigjson": config}}), "`name` is required", "InvalidRequest"),
        (json!({"name": 7, "data": {".dockerconfigjson": config}}), "`name` must be a string", "InvalidRequest"),
        (
            json!({"name": "p", "data": {".dockerconfigjson": config}, "username": USER}),
            "mixes two forms",
            "InvalidRequest",
        ),
        (
            json!({"name": "p", "data": {".dockerconfigjson": config}, "extra": 1}),
            "Unknown field \"extra\"",
            "InvalidRequest",
        ),
        (json!({"name": "p"}), "holds no credentials", "InvalidRequest"),
        (json!({"name": "p", "data": {}}), "`data..dockerconfigjson` is required", "InvalidRequest"),
        (json!({"name": "p", "data": config}), "`data` must be an object", "InvalidRequest"),
        (json!({"name": "p", "data": {".dockerconfigjson": {"auths": {}}}}), "must be a string", "InvalidRequest"),
        (
            json!({"name": "p", "data": {".dockerconfigjson": config, "other": "x"}}),
            "Unknown field \"other\" in `data`",
            "InvalidRequest",
        ),
    ];
    for (body, expected, code) in cases {
        let (message, actual_code) = message(parse(body.clone()));
        assert!(message.contains(expected), "{body}: {message}");
        assert_eq!(actual_code, code, "{body}");
    }
}

#[test]
fn name_is_optional_for_modify_and_passed_through() {
    let body = json!({"username": USER, "password": PASSWORD});
    assert_eq!(SecretRequest::from_json(body.clone(), false).unwrap().name, None);
    let named = json!({"name": "Whatever", "username": USER, "password": PASSWORD});
    assert_eq!(SecretRequest::from_json(named, false).unwrap().name.as_deref(), Some("Whatever"));
}

#[test]
fn huge_unknown_field_names_are_cut_in_messages() {
    let long = "x".repeat(10_000);
    let mut body = json!({"name": "p", "username": USER, "password": PASSWORD});
    body[&long] = json!(1);
    let (message, _) = message(parse(body));
    assert!(message.len() < 400, "{message}");
}

#[test]
fn sap_form_takes_plain_json() {
    let text = format!(r#"{{"auths":{{"ghcr.io":{{"auth":"{}"}}}}}}"#, auth_of(USER, PASSWORD));
    let config = parse(sap(&text)).unwrap();
    let (key, auth) = only(&config);
    assert_eq!(key, "ghcr.io");
    assert_eq!((auth.username(), auth.password()), (USER, PASSWORD));
    assert_eq!(auth.email(), None);
}

#[test]
fn sap_form_takes_base64_wrapped_json_in_every_alphabet_and_padding() {
    // '?' and '>' make the encodings differ between the alphabets.
    let text = format!(r#"{{"auths":{{"ghcr.io":{{"username":"{USER}","password":"{PASSWORD}??>>"}}}}}}"#);
    let standard = STANDARD.encode(&text);
    assert!(standard.contains('/') || standard.contains('+'));
    let wrapped: String =
        standard.as_bytes().chunks(76).map(|line| format!("{}\n", std::str::from_utf8(line).unwrap())).collect();
    for encoded in [
        standard.clone(),
        STANDARD_NO_PAD.encode(&text),
        URL_SAFE.encode(&text),
        URL_SAFE_NO_PAD.encode(&text),
        wrapped,
    ] {
        let config = parse(sap(&encoded)).unwrap();
        let (key, auth) = only(&config);
        assert_eq!(key, "ghcr.io");
        assert_eq!(auth.password(), format!("{PASSWORD}??>>"));
    }
}

#[test]
fn sap_form_refuses_what_is_neither_json_nor_base64_json() {
    let cases = [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("not base64 !!", "neither JSON nor base64"),
        (r#"{"auths": "#, "is not valid JSON"),
        (&STANDARD.encode(format!("{USER}:{PASSWORD}")), "does not decode to valid JSON"),
        ("[]", "neither JSON nor base64"),
        (&STANDARD.encode("[]"), "must be a JSON object"),
    ];
    for (text, expected) in cases {
        let (message, code) = message(parse(sap(text)));
        assert!(message.contains(expected), "{text}: {message}");
        assert_eq!(code, "InvalidDockerConfig");
    }
}

#[test]
fn auth_is_accepted_padded_and_unpadded() {
    // "u:p" has no padding; "alice:hunter2" needs "==".
    for (user, pass) in [(USER, "hunter2"), ("u", "p"), ("user", "pa:ss")] {
        for auth in [STANDARD.encode(format!("{user}:{pass}")), STANDARD_NO_PAD.encode(format!("{user}:{pass}"))] {
            let text = json!({"auths": {"ghcr.io": {"auth": auth}}}).to_string();
            let config = parse(sap(&text)).unwrap();
            let (_, credentials) = only(&config);
            assert_eq!((credentials.username(), credentials.password()), (user, pass));
            assert_eq!(credentials.auth(), STANDARD.encode(format!("{user}:{pass}")));
        }
    }
}

#[test]
fn auth_that_is_not_user_colon_password_is_refused() {
    let cases = [
        ("%%%notbase64", "must be the base64 of user:password"),
        (&STANDARD.encode(format!("{USER}{PASSWORD}")), "must be the base64 of user:password"),
        (&STANDARD.encode([0xff, 0xfe, b':', b'x']), "must be the base64 of user:password"),
        (&STANDARD.encode(format!(":{PASSWORD}")), "empty user name"),
        (&STANDARD.encode(format!("{USER}:")), "password in the auths entry for \"ghcr.io\" must not be empty"),
    ];
    for (auth, expected) in cases {
        let text = json!({"auths": {"ghcr.io": {"auth": auth}}}).to_string();
        let (message, _) = message(parse(sap(&text)));
        assert!(message.contains(expected), "{auth}: {message}");
    }
}

#[test]
fn auth_and_username_password_must_agree() {
    let auth = auth_of(USER, PASSWORD);
    let agreeing =
        json!({"auths": {"ghcr.io": {"auth": auth, "username": USER, "password": PASSWORD, "email": "a@b.c"}}});
    let config = parse(sap(&agreeing.to_string())).unwrap();
    assert_eq!(only(&config).1.email(), Some("a@b.c"));
    for (field, value) in [("username", "mallory"), ("password", "other-pass")] {
        let mut entry = json!({"auth": auth});
        entry[field] = json!(value);
        let text = json!({"auths": {"ghcr.io": entry}}).to_string();
        let (message, _) = message(parse(sap(&text)));
        assert!(message.contains(&format!("`auth` and `{field}`")), "{message}");
        assert!(!message.contains(value));
    }
}

#[test]
fn entry_with_username_and_password_only() {
    let text = json!({"auths": {"quay.io": {"username": USER, "password": PASSWORD}}}).to_string();
    let config = parse(sap(&text)).unwrap();
    assert_eq!(only(&config).1.auth(), auth_of(USER, PASSWORD));
    let exported = String::from_utf8(config.to_dockerconfigjson()).unwrap();
    assert!(exported.contains(&format!(r#""auth":"{}""#, auth_of(USER, PASSWORD))));
}

#[test]
fn entry_field_names_are_case_insensitive_like_docker() {
    let text = json!({"auths": {"quay.io": {"Username": USER, "Password": PASSWORD}}}).to_string();
    assert_eq!(only(&parse(sap(&text)).unwrap()).1.username(), USER);
    let twice = json!({"auths": {"quay.io": {"auth": auth_of(USER, PASSWORD), "Auth": auth_of(USER, PASSWORD)}}});
    let (message, _) = message(parse(sap(&twice.to_string())));
    assert!(message.contains("gives `auth` twice"), "{message}");
}

#[test]
fn identity_token_may_accompany_and_survives_storage() {
    let text = json!({"auths": {"myacr.azurecr.io": {
        "auth": STANDARD.encode("00000000-0000-0000-0000-000000000000:"),
        "identitytoken": "token-value"
    }}})
    .to_string();
    let config = parse(sap(&text)).unwrap();
    let (_, credentials) = only(&config);
    assert_eq!(credentials.identity_token(), Some("token-value"));
    assert_eq!(credentials.password(), "");
    let stored = config.to_dockerconfigjson();
    assert_eq!(
        String::from_utf8(stored.clone()).unwrap(),
        r#"{"auths":{"myacr.azurecr.io":{"username":"00000000-0000-0000-0000-000000000000","auth":"MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAwOg==","identitytoken":"token-value"}}}"#
    );
    assert_eq!(DockerConfig::from_stored(&stored).unwrap(), config);
}

#[test]
fn incomplete_entries_are_refused() {
    let cases = [
        (json!({"username": USER}), "a username but no password"),
        (json!({"password": PASSWORD}), "a password but no username"),
        (json!({}), "holds no credentials"),
        (json!({"email": "a@b.c"}), "holds no credentials"),
        (json!("x"), "must be an object"),
        (json!({"auth": 5}), "`auth` in the auths entry for \"ghcr.io\" must be a string"),
        (json!({"username": USER, "password": PASSWORD, "registrytoken": "t"}), "unknown field \"registrytoken\""),
        (json!({"username": "a:b", "password": PASSWORD}), "must not contain ':'"),
    ];
    for (entry, expected) in cases {
        let text = json!({"auths": {"ghcr.io": entry}}).to_string();
        let (message, _) = message(parse(sap(&text)));
        assert!(message.contains(expected), "{entry}: {message}");
    }
}

#[test]
fn empty_or_missing_auths_are_refused() {
    for config in [json!({}), json!({"auths": {}}), json!({"auths": null}), json!({"HttpHeaders": {"a": "b"}})] {
        let (message, _) = message(parse(sap(&config.to_string())));
        assert!(message.contains("at least one registry"), "{config}: {message}");
    }
    let (message, _) = message(parse(sap(r#"{"auths": []}"#)));
    assert!(message.contains("`auths` must be an object"));
}

#[test]
fn helper_only_configs_are_refused_with_the_way_out() {
    for config in [
        json!({"credsStore": "desktop"}),
        json!({"auths": {}, "credsStore": "osxkeychain"}),
        json!({"auths": {"https://index.docker.io/v1/": {}}, "credsStore": "desktop"}),
        json!({"credHelpers": {"gcr.io": "gcloud"}}),
        json!({"auths": {"gcr.io": {}}, "credHelpers": {"gcr.io": "gcloud"}}),
    ] {
        let (message, _) = message(parse(sap(&config.to_string())));
        assert_eq!(message, HELPER_ONLY, "{config}");
        assert!(message.contains("docker login"));
    }
}

#[test]
fn docker_hub_spellings_all_become_the_canonical_key() {
    let mut spellings = Vec::new();
    for host in ["docker.io", "index.docker.io", "registry-1.docker.io", "Docker.IO"] {
        for scheme in ["", "http://", "https://", "HTTPS://"] {
            for path in ["", "/", "/v1", "/v1/"] {
                spellings.push(format!("{scheme}{host}{path}"));
            }
        }
    }
    for spelling in spellings {
        assert_eq!(server_key(&spelling).unwrap(), DOCKER_HUB_SERVER, "{spelling}");
        let config = DockerConfig::from_credentials(Some(&spelling), USER, PASSWORD, None).unwrap();
        assert_eq!(only(&config).0, DOCKER_HUB_SERVER);
        assert_eq!(config.registries(), vec!["docker.io"]);
    }
}

#[test]
fn other_registries_keep_their_spelling_with_host_lower_cased() {
    let cases = [
        ("ghcr.io", "ghcr.io", "ghcr.io"),
        ("GHCR.io/", "ghcr.io", "ghcr.io"),
        ("https://My.Registry:5000", "https://my.registry:5000", "my.registry:5000"),
        ("https://my.registry:5000/", "https://my.registry:5000", "my.registry:5000"),
        ("HTTP://localhost:5000", "http://localhost:5000", "localhost:5000"),
        ("gcr.io/My-Project/", "gcr.io/My-Project", "gcr.io"),
        ("127.0.0.1:5000", "127.0.0.1:5000", "127.0.0.1:5000"),
        ("[::1]:5000", "[::1]:5000", "[::1]:5000"),
        ("docker.io:5000", "docker.io:5000", "docker.io:5000"),
        ("docker.io/other", "docker.io/other", "docker.io"),
    ];
    for (given, key, host) in cases {
        let config = DockerConfig::from_credentials(Some(given), USER, PASSWORD, None).unwrap();
        assert_eq!(only(&config).0, key, "{given}");
        assert_eq!(config.registries(), vec![host], "{given}");
    }
}

#[test]
fn malformed_registries_are_refused() {
    let cases = [
        ("", "must not be empty"),
        ("ghcr .io", "spaces"),
        (" ghcr.io", "spaces"),
        ("ftp://ghcr.io", "scheme"),
        ("oci://ghcr.io", "scheme"),
        ("https://", "host name or IP address"),
        ("/path-only", "host name or IP address"),
        ("ghcr.io:", "host name or IP address"),
        ("ghcr.io:99999", "host name or IP address"),
        ("ghcr.io:port", "host name or IP address"),
        ("https://alice:hunter2-Sup3r@ghcr.io", "must not carry a user name or password"),
        ("ghcr.io/a?b=c", "path only"),
        ("ghcr.io/a#b", "path only"),
        ("gh%63r.io", "host name or IP address"),
        ("münchen.de", "ASCII"),
        (&"a".repeat(600), "at most 512"),
    ];
    for (given, expected) in cases {
        let (message, code) = message(DockerConfig::from_credentials(Some(given), USER, PASSWORD, None));
        assert!(message.contains(expected), "{given}: {message}");
        assert_eq!(code, "InvalidDockerConfig");
    }
}

#[test]
fn two_spellings_of_one_registry_are_refused() {
    let auth = auth_of(USER, PASSWORD);
    for (a, b) in [
        ("docker.io", "https://index.docker.io/v1/"),
        ("registry-1.docker.io", "index.docker.io"),
        ("ghcr.io", "https://ghcr.io/"),
        ("GHCR.IO", "ghcr.io"),
        ("http://quay.io", "https://quay.io"),
    ] {
        let text = json!({"auths": {a: {"auth": auth}, b: {"auth": auth}}}).to_string();
        let (message, _) = message(parse(sap(&text)));
        assert!(message.contains("twice"), "{a} {b}: {message}");
    }
}

#[test]
fn several_registries_are_kept_sorted() {
    let auth = auth_of(USER, PASSWORD);
    let text = json!({"auths": {
        "quay.io": {"auth": auth}, "docker.io": {"auth": auth},
        "https://ghcr.io": {"auth": auth}, "ghcr.io/org": {"auth": auth}
    }})
    .to_string();
    let config = parse(sap(&text)).unwrap();
    let keys: Vec<&String> = config.auths().keys().collect();
    assert_eq!(keys, ["ghcr.io/org", "https://ghcr.io", "https://index.docker.io/v1/", "quay.io"]);
    assert_eq!(config.registries(), vec!["docker.io", "ghcr.io", "quay.io"]);
    assert_eq!(DockerConfig::from_stored(&config.to_dockerconfigjson()).unwrap(), config);
}

#[test]
fn at_most_64_registries() {
    let auth = auth_of(USER, PASSWORD);
    let config_of = |n: usize| {
        let auths: Map<String, Value> = (0..n).map(|i| (format!("r{i}.example.com"), json!({"auth": auth}))).collect();
        json!({"auths": auths}).to_string()
    };
    assert_eq!(parse(sap(&config_of(64))).unwrap().auths().len(), 64);
    let (message, _) = message(parse(sap(&config_of(65))));
    assert!(message.contains("at most 64"), "{message}");
}

#[test]
fn other_docker_config_fields_are_ignored() {
    let text = json!({
        "auths": {"ghcr.io": {"auth": auth_of(USER, PASSWORD), "serveraddress": "ghcr.io"}},
        "HttpHeaders": {"User-Agent": "x"}, "psFormat": "table"
    })
    .to_string();
    let config = parse(sap(&text)).unwrap();
    assert_eq!(
        String::from_utf8(config.to_dockerconfigjson()).unwrap(),
        format!(
            r#"{{"auths":{{"ghcr.io":{{"username":"{USER}","password":"{PASSWORD}","auth":"{}"}}}}}}"#,
            auth_of(USER, PASSWORD)
        )
    );
}

#[test]
fn stored_garbage_is_a_corrupt_record() {
    for bytes in [&b"not json"[..], b"{}", br#"{"auths":{"x y":{}}}"#] {
        assert_eq!(DockerConfig::from_stored(bytes), Err(Error::Internal(Internal::CorruptRecord)));
    }
}

#[test]
fn debug_redacts_credentials() {
    let body = json!({"name": "p", "registry": "ghcr.io", "username": USER, "password": PASSWORD, "email": "mail@example.com"});
    let request = SecretRequest::from_json(body, true).unwrap();
    let shown = format!("{request:?} {:#?}", request.credentials);
    assert!(shown.contains("ghcr.io"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
    for secret in [USER, PASSWORD, "mail@example.com", &auth_of(USER, PASSWORD)] {
        assert!(!shown.contains(secret), "{shown}");
    }
}

#[test]
fn control_characters_in_a_username_or_email_are_refused_naming_the_field() {
    for (field, value) in [("username", "bot\u{0}"), ("username", "bot\nx"), ("email", "a@b.c\u{7}")] {
        let mut body = json!({"name": "pull", "registry": "ghcr.io", "username": "bot", "password": PASSWORD});
        body[field] = json!(value);
        let (text, code) = message(parse(body));
        assert_eq!(code, "InvalidDockerConfig");
        assert!(text.contains(field) && text.contains("control characters"), "{text}");
    }
    let entry = json!({"auths": {"ghcr.io": {"username": "a\u{0}b", "password": PASSWORD}}}).to_string();
    assert!(message(parse(sap(&entry))).0.contains("username in the auths entry"));
}

#[test]
fn a_dockerconfigjson_that_names_a_key_twice_is_refused() {
    let config = r#"{"auths": {"ghcr.io": {"username": "u", "password": "a", "password": "b"}}}"#;
    assert!(message(parse(sap(config))).0.contains("\"password\" twice"));
}
