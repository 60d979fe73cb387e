//! Loading and validating configuration: files, environment, defaults and refusals.

use super::*;

fn no_env() -> Env {
    Env::prefixed("PORTCULLIS_TEST_UNUSED_PREFIX_")
}

#[test]
fn defaults_without_anything() {
    let c = Config::load_from(None, no_env()).expect("defaults");
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.data_dir, PathBuf::from("portcullis-data"));
    assert!(c.database_url().starts_with("sqlite://portcullis-data/"));
}

#[test]
fn alert_aggregation_and_sms_cap_are_checked() {
    let c = Config::load_from(None, no_env()).expect("defaults");
    assert_eq!(
        c.alert_aggregation_window().expect("window"),
        time::Duration::minutes(5)
    );
    assert_eq!(c.sms_max_per_hour, 10);
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("c.toml");
    for (bad, key) in [
        (
            "alert_aggregation_window = \"2d\"\n",
            "alert_aggregation_window",
        ),
        (
            "alert_aggregation_window = \"soon\"\n",
            "alert_aggregation_window",
        ),
        ("sms_max_per_hour = 0\n", "sms_max_per_hour"),
        ("sms_max_per_hour = 1001\n", "sms_max_per_hour"),
    ] {
        std::fs::write(&p, bad).expect("write");
        let e = Config::load_from(Some(&p), no_env()).expect_err(bad);
        assert!(e.to_string().contains(key), "{e}");
    }
    std::fs::write(
        &p,
        "alert_aggregation_window = \"90s\"\nsms_max_per_hour = 3\n",
    )
    .expect("write");
    let c = Config::load_from(Some(&p), no_env()).expect("ok");
    assert_eq!(
        c.alert_aggregation_window().expect("window"),
        time::Duration::seconds(90)
    );
    assert_eq!(c.sms_max_per_hour, 3);
}

#[test]
fn unknown_key_is_refused_and_named() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("c.toml");
    std::fs::write(&p, "listn = \"127.0.0.1:1\"\n").expect("write");
    let e = Config::load_from(Some(&p), no_env()).expect_err("refused");
    assert!(e.to_string().contains("listn"), "{e}");
}

#[test]
fn garbage_and_truncated_files_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("c.toml");
    std::fs::write(&p, "master_key = \"c2VjcmV0LXZhbHVl").expect("write");
    let e = Config::load_from(Some(&p), no_env()).expect_err("truncated");
    assert!(
        !e.to_string().contains("c2VjcmV0"),
        "no excerpt of the file: {e}"
    );
    assert_eq!(e.to_string().lines().count(), 1);
    std::fs::write(&p, [0xff, 0xfe, 0x00, 0x41]).expect("write");
    assert!(Config::load_from(Some(&p), no_env()).is_err());
    assert!(Config::load_from(Some(&dir.path().join("missing.toml")), no_env()).is_err());
}

#[test]
fn secrets_are_not_in_errors_or_debug() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("c.toml");
    std::fs::write(
        &p,
        "master_key = \"c2VjcmV0LXZhbHVlLXNob3VsZC1uZXZlci1sZWFr\"\nlisten = 5\n",
    )
    .expect("write");
    let e = Config::load_from(Some(&p), no_env()).expect_err("bad listen");
    assert!(!e.to_string().contains("c2VjcmV0"), "{e}");
    std::fs::write(
        &p,
        "master_key = \"c2VjcmV0LXZhbHVlLXNob3VsZC1uZXZlci1sZWFr\"\n",
    )
    .expect("write");
    let c = Config::load_from(Some(&p), no_env()).expect("ok");
    assert!(!format!("{c:?}").contains("c2VjcmV0"));
}

#[test]
fn redacts_database_password() {
    assert_eq!(
        redact_url("postgres://app:hunter2@db.example/portcullis"),
        "postgres://app:***@db.example/portcullis"
    );
    assert_eq!(redact_url("sqlite://x/y.db"), "sqlite://x/y.db");
}

#[test]
fn public_url_must_be_a_usable_origin_under_either_name() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("c.toml");
    for key in ["public_url", "webauthn_origin"] {
        for (value, ok) in [
            ("https://pam.example.com", true),
            ("https://pam.example.com:8443", true),
            ("http://localhost:8080", true),
            ("http://pam.example.com", false),
            ("https://10.0.0.1", false),
            ("https://pam.example.com/console", false),
            ("not a url", false),
        ] {
            std::fs::write(&p, format!("{key} = \"{value}\"\n")).expect("write");
            let r = Config::load_from(Some(&p), no_env());
            assert_eq!(r.is_ok(), ok, "{key} = {value}: {r:?}");
            match r {
                Err(e) => assert!(e.to_string().contains(key), "{e}"),
                Ok(c) => {
                    let bound: SocketAddr = "127.0.0.1:9".parse().expect("addr");
                    let u = c.public_url_for(bound).expect("url");
                    assert_eq!(u.as_str().trim_end_matches('/'), value);
                }
            }
        }
    }
}

#[test]
fn public_url_and_its_old_name_must_agree() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("c.toml");
    std::fs::write(
        &p,
        "public_url = \"https://pam.example.com\"\nwebauthn_origin = \"https://pam.example.com/\"\n",
    )
    .expect("write");
    assert!(Config::load_from(Some(&p), no_env()).is_ok());
    std::fs::write(
        &p,
        "public_url = \"https://pam.example.com\"\nwebauthn_origin = \"https://old.example.com\"\n",
    )
    .expect("write");
    let e = Config::load_from(Some(&p), no_env()).expect_err("conflict");
    assert!(e.to_string().contains("both set"), "{e}");
}

#[test]
fn unset_public_url_follows_the_bound_listener() {
    let c = Config::default();
    let url = |a: &str| {
        c.public_url_for(a.parse().expect("addr"))
            .expect("url")
            .as_str()
            .trim_end_matches('/')
            .to_owned()
    };
    assert_eq!(url("127.0.0.1:41234"), "http://localhost:41234");
    assert_eq!(url("[::1]:41234"), "http://localhost:41234");
    assert_eq!(url("0.0.0.0:8080"), "http://localhost:8080");
    assert_eq!(url("192.0.2.10:8080"), "http://192.0.2.10:8080");
    assert_eq!(url("[2001:db8::5]:8443"), "http://[2001:db8::5]:8443");
    let tls = Config {
        tls_cert: Some("c.pem".into()),
        tls_key: Some("k.pem".into()),
        ..Config::default()
    };
    let u = tls.public_url_for("127.0.0.1:8443".parse().expect("addr"));
    assert_eq!(u.expect("url").as_str(), "https://localhost:8443/");
}

#[test]
fn trusted_proxies_from_a_list_or_a_comma_separated_string() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("c.toml");
    std::fs::write(&p, "trusted_proxies = [\"10.0.0.0/8\", \"2001:db8::1\"]\n").expect("w");
    let c = Config::load_from(Some(&p), no_env()).expect("list");
    let nets: Vec<String> = c
        .trusted_proxies()
        .expect("nets")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(nets, ["10.0.0.0/8", "2001:db8::1/128"]);
    std::fs::write(&p, "trusted_proxies = \"127.0.0.1/32, 192.168.1.7\"\n").expect("w");
    let c = Config::load_from(Some(&p), no_env()).expect("text");
    assert_eq!(c.trusted_proxies().expect("nets").len(), 2);
    std::fs::write(&p, "trusted_proxies = [\"10.0.0.0/33\"]\n").expect("w");
    let e = Config::load_from(Some(&p), no_env()).expect_err("bad cidr");
    assert!(e.to_string().contains("trusted_proxies"), "{e}");
}

#[test]
fn tls_needs_both_files_and_limits_are_bounded() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("c.toml");
    for (text, key) in [
        ("tls_cert = \"c.pem\"\n", "tls_key"),
        (
            "header_read_timeout_seconds = 0\n",
            "header_read_timeout_seconds",
        ),
        ("idle_timeout_seconds = 0\n", "idle_timeout_seconds"),
        ("body_timeout_seconds = 100000\n", "body_timeout_seconds"),
        (
            "max_connections_per_address = 0\n",
            "max_connections_per_address",
        ),
        ("rate_limit_global_burst = 0\n", "rate_limit_global_burst"),
    ] {
        std::fs::write(&p, text).expect("write");
        let e = Config::load_from(Some(&p), no_env()).expect_err(text);
        assert!(e.to_string().contains(key), "{text}: {e}");
    }
    std::fs::write(&p, "rate_limit_global = 0\nrate_limit_global_burst = 0\n").expect("w");
    assert!(
        Config::load_from(Some(&p), no_env()).is_ok(),
        "0 turns it off"
    );
}

#[test]
fn audit_anchor_settings_are_checked_without_quoting_the_webhook() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("c.toml");
    for (value, ok) in [
        ("https://anchor.example.com/in?token=s3cret", true),
        ("http://127.0.0.1:9000/in?token=s3cret", true),
        ("http://anchor.example.com/in?token=s3cret", false),
        ("ftp://anchor.example.com/s3cret", false),
        ("not a url s3cret", false),
    ] {
        std::fs::write(&p, format!("audit_anchor_webhook = \"{value}\"\n")).expect("write");
        let r = Config::load_from(Some(&p), no_env());
        assert_eq!(r.is_ok(), ok, "{value}: {r:?}");
        match r {
            Err(e) => {
                assert!(e.to_string().contains("audit_anchor_webhook"), "{e}");
                assert!(!e.to_string().contains("s3cret"), "{e}");
            }
            Ok(c) => {
                let shown = c.public_view().to_string();
                assert!(!shown.contains("s3cret"), "{shown}");
                assert!(!format!("{c:?}").contains("s3cret"));
            }
        }
    }
    std::fs::write(
        &p,
        format!("audit_anchor_file = \"{}\"\n", dir.path().display()),
    )
    .expect("write");
    let e = Config::load_from(Some(&p), no_env()).expect_err("a directory");
    assert!(e.to_string().contains("audit_anchor_file"), "{e}");
    std::fs::write(&p, "audit_anchor_file = \"/srv/worm/anchor.jsonl\"\n").expect("write");
    let c = Config::load_from(Some(&p), no_env()).expect("ok");
    assert_eq!(
        c.public_view()["audit_anchor_file"],
        "/srv/worm/anchor.jsonl"
    );
}

#[test]
fn audit_export_is_parsed_checked_and_shown_without_surprises() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("c.toml");
    let load = |text: &str| {
        std::fs::write(&p, text).expect("write");
        Config::load_from(Some(&p), no_env())
    };
    let c = load("audit_export = \"syslog+tls://siem.example.com\"\n").expect("tls");
    assert_eq!(
        c.public_view()["audit_export"],
        "syslog+tls://siem.example.com:6514"
    );
    let c = load("audit_export = \"file:///var/log/portcullis/audit.jsonl\"\n").expect("file");
    assert_eq!(
        c.public_view()["audit_export"],
        "file:///var/log/portcullis/audit.jsonl"
    );
    for (bad, key) in [
        ("audit_export = \"udp://siem:514\"\n", "audit_export"),
        (
            "audit_export = \"syslog://ops:hunter2@siem:514\"\n",
            "audit_export",
        ),
        (
            "audit_export = \"syslog://siem:514\"\naudit_export_ca = \"/etc/hosts\"\n",
            "audit_export_ca",
        ),
        (
            "audit_export = \"syslog+tls://siem:6514\"\naudit_export_ca = \"/nonexistent/ca.pem\"\n",
            "audit_export_ca",
        ),
        (
            "audit_export_file_max_bytes = 100\n",
            "audit_export_file_max_bytes",
        ),
        ("audit_export_file_keep = 0\n", "audit_export_file_keep"),
    ] {
        let e = load(bad).expect_err(bad);
        assert!(e.to_string().contains(key), "{bad}: {e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
