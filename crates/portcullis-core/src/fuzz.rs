//! Hostile input for every parser that takes outside input (issue "Hostile traffic", finding
//! 10): arbitrary strings and bytes — multi-byte text, control characters, huge numbers, random
//! structure — must give `Ok` or a clear error, never a panic. Property tests with arbitrary
//! input stand in for cargo-fuzz, which needs a nightly toolchain this project does not use;
//! `PROPTEST_CASES` bounds the time (CI runs the default).

use proptest::prelude::*;

use crate::conditional_access::{KnownNames, PolicyFormat, import_policies, parse_policy_specs};

/// Text that looks like what the parsers expect (digits, units, separators, YAML and JSON
/// punctuation) mixed with anything at all.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9a-zA-Zéß\u{202e}\u{200b}\\x00-\\x1f:{}\\[\\],\" \\n-]{0,64}",
        "[0-9]{0,40}[smhdé\u{1F600}]?",
        proptest::collection::vec(any::<u8>(), 0..256)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A client assertion's claims (after its signature checked out: a client holding a
    /// registered key chooses them freely), with times anywhere in `i64`, including the edges
    /// of what a date can hold, and a clock at either end of the representable range.
    #[test]
    fn assertion_claims_never_panic(
        iss in proptest::option::of(prop_oneof![Just("svc".to_owned()), hostile_text()]),
        same_sub in any::<bool>(),
        aud in proptest::option::of(prop_oneof![
            Just(crate::client_key::Audience::One("https://pc.example/oauth2/token".into())),
            hostile_text().prop_map(crate::client_key::Audience::One),
            proptest::collection::vec(hostile_text(), 0..4).prop_map(crate::client_key::Audience::Many),
        ]),
        exp in proptest::option::of(prop_oneof![any::<i64>(), Just(253_402_300_799i64), Just(-377_705_116_800i64), 0i64..4_000_000_000]),
        nbf in proptest::option::of(prop_oneof![any::<i64>(), Just(253_402_300_799i64), Just(i64::MIN)]),
        iat in proptest::option::of(prop_oneof![any::<i64>(), Just(253_402_300_799i64), Just(i64::MAX)]),
        jti in proptest::option::of(prop_oneof![Just("j1".to_owned()), hostile_text()]),
        now in prop_oneof![Just(0i64), Just(253_402_300_700i64), Just(-377_705_116_700i64), 0i64..4_000_000_000],
    ) {
        let client = iss.clone().unwrap_or_default();
        let claims = crate::client_key::AssertionClaims {
            sub: if same_sub { iss.clone() } else { Some("other".into()) },
            iss,
            aud,
            exp,
            nbf,
            iat,
            jti,
        };
        let now = time::OffsetDateTime::from_unix_timestamp(now).expect("a valid clock");
        let audiences = ["https://pc.example/oauth2/token", "https://pc.example"];
        let _ = crate::client_key::check_assertion(&claims, &client, &audiences, now);
    }

    #[test]
    fn durations_never_panic(s in hostile_text()) {
        if let Ok(d) = crate::roles::parse_duration(&s) {
            prop_assert!(d.whole_seconds() > 0);
            prop_assert!(d.whole_days() <= 3650);
        }
    }

    #[test]
    fn policy_files_never_panic(s in hostile_text(), yaml in any::<bool>()) {
        let format = if yaml { PolicyFormat::Yaml } else { PolicyFormat::Json };
        let _ = parse_policy_specs(&s, format);
        let _ = import_policies(&s, format, &KnownNames::default());
    }

    #[test]
    fn structured_policy_files_never_panic(
        name in hostile_text(),
        include in proptest::collection::vec(hostile_text(), 0..4),
        cidr in hostile_text(),
        hours in any::<i64>(),
    ) {
        let doc = serde_json::json!([{
            "name": name, "state": "enabled",
            "conditions": {
                "principals": { "include": include },
                "locations": { "include": [cidr] },
                "applications": { "include": ["all"] },
            },
            "grant": { "block": true },
            "session": { "sign_in_frequency_hours": hours },
        }]);
        let _ = import_policies(&doc.to_string(), PolicyFormat::Json, &KnownNames::default());
    }

    #[test]
    fn share_files_never_panic(s in hostile_text()) {
        let _ = crate::breakglass::Share::parse(&s);
        let _ = crate::breakglass::Share::parse(&format!("{}:{s}", crate::breakglass::SHARE_PREFIX));
    }

    #[test]
    fn client_keys_and_key_ids_never_panic(s in hostile_text(), der in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = crate::client_key::ClientPublicKey::from_pem(&s);
        let _ = crate::client_key::ClientPublicKey::from_pem(&format!("-----BEGIN PUBLIC KEY-----\n{s}\n-----END PUBLIC KEY-----\n"));
        let _ = crate::client_key::ClientPublicKey::from_spki_der(&der);
        let _ = crate::client_key::KeyId::parse(&s);
    }

    #[test]
    fn oauth_parameters_never_panic(s in hostile_text(), t in hostile_text()) {
        let _ = crate::oidc::Scopes::parse(&s);
        let _ = crate::oidc::valid_verifier(&s);
        let _ = crate::oidc::valid_challenge(&s);
        let _ = crate::oidc::pkce_matches(&s, &t);
        let _ = crate::oidc::validate_redirect_uris(&[s.clone(), t.clone()]);
        let _ = crate::device::normalize_user_code(&s);
        let get = |k: &str| match k {
            "response_type" => Some("code"),
            "scope" => Some(s.as_str()),
            "code_challenge" => Some(t.as_str()),
            "code_challenge_method" => Some("S256"),
            "state" | "nonce" | "prompt" | "max_age" => Some(t.as_str()),
            _ => None,
        };
        let _ = crate::oidc::validate_authorize(&s, &t, get);
    }

    #[test]
    fn names_and_contact_details_never_panic(s in hostile_text()) {
        let _ = crate::principal::PrincipalName::parse("name", &s);
        let _ = crate::principal::parse_display_name(&s);
        let _ = crate::principal::parse_email(&s);
        let _ = crate::principal::parse_phone(&s);
        let _ = crate::roles::Scope::parse(&s);
        let _ = crate::roles::Permission::parse(&s);
        let _ = crate::roles::RoleName::parse(&s);
        let _ = crate::text::escape_for_terminal(&s);
    }
}
