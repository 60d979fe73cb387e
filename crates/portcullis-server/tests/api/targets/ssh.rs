//! The ssh-ca target: certificates from active grants read back with the real `ssh-keygen -L`,
//! used against a real `sshd` (login during the grant; refused after it, at once after a
//! deactivation once the KRL is fetched, and as an account the principal does not name), and
//! the refusals: bad keys, no grant, another person's grant, an access token, the CA key.

use std::path::{Path, PathBuf};

use portcullis_core::api::{SshCertificateView, TargetView};

use super::sshd::{Sshd, keygen};
use super::*;

api_tests!(
    a_certificate_carries_the_grant_principals_validity_and_key_id,
    sshd_accepts_the_certificate_during_the_grant_only,
    a_deactivated_grant_is_refused_by_sshd_once_the_krl_is_fetched,
    a_certificate_for_deploy_cannot_log_in_as_root,
    disabling_the_person_revokes_their_certificates,
    unbinding_the_role_revokes_its_certificates,
    bad_public_keys_are_refused_with_a_reason,
    no_certificate_without_a_live_grant,
    a_person_gets_only_their_own_principals,
    an_access_token_cannot_obtain_a_certificate,
    the_ca_private_key_never_leaves_the_server,
    rotation_keeps_the_old_key_trusted_and_signs_with_the_new,
    a_certificate_nobody_was_granted_is_drift_and_reverted,
);

const TARGET: &str = "web-fleet";

/// An ssh-ca target whose [`DB_ROLE`] grants the SSH principal `principal`.
async fn ssh_target(admin: &Client, principal: &str, drift: Option<&str>) -> TargetView {
    let t = admin
        .create_target(&portcullis_core::api::CreateTargetRequest {
            name: TARGET.into(),
            kind: "ssh-ca".into(),
            url: String::new(),
            observe_url: None,
            login: None,
            secret: None,
            secret_env: None,
            drift: drift.map(str::to_owned),
            reconcile_interval: Some("1h".into()),
            ssh: None,
            msgraph: None,
        })
        .await
        .expect("add ssh-ca target");
    bind_db_role(admin, TARGET, principal).await;
    t
}

/// A user key pair in `dir` (ssh-keygen), its public line.
fn user_key(dir: &Path) -> (PathBuf, String) {
    keygen(dir, "id_ed25519")
}

async fn sign(c: &Client, public_key: &str) -> Result<SshCertificateView, ClientError> {
    c.ssh_sign(
        TARGET,
        &portcullis_core::api::SignSshRequest {
            public_key: public_key.into(),
            role: None,
        },
    )
    .await
}

/// Writes the certificate where ssh expects it for `key`.
fn write_cert(key: &Path, v: &SshCertificateView) -> PathBuf {
    let path = PathBuf::from(format!("{}-cert.pub", key.display()));
    std::fs::write(&path, format!("{}\n", v.certificate)).expect("cert");
    path
}

/// `ssh-keygen -L` of a certificate file, in UTC.
fn keygen_l(cert: &Path) -> String {
    let out = std::process::Command::new("ssh-keygen")
        .env("TZ", "UTC")
        .arg("-L")
        .arg("-f")
        .arg(cert)
        .output()
        .expect("ssh-keygen -L");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Whether `ssh-keygen -Q` finds the certificate in the KRL (exit 1 and "REVOKED").
fn revoked_in(krl: &[u8], cert: &Path) -> bool {
    let file = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(file.path(), krl).expect("krl");
    let out = std::process::Command::new("ssh-keygen")
        .arg("-Q")
        .arg("-f")
        .arg(file.path())
        .arg(cert)
        .output()
        .expect("ssh-keygen -Q");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let revoked = text.contains("REVOKED");
    assert_eq!(revoked, !out.status.success(), "{text}");
    revoked
}

fn sshd_for(app_ca: &str, principals: &[(&str, &[&str])]) -> Option<Sshd> {
    Sshd::start(app_ca, principals)
}

async fn a_certificate_carries_the_grant_principals_validity_and_key_id(app: TestApp) {
    let admin = admin(&app).await;
    let t = ssh_target(&admin, "root", None).await;
    let ca = t.ssh.expect("the CA").keys;
    assert_eq!(ca.len(), 1);
    let ada = db_person(&app, &admin, "ada", TARGET).await;
    let id = activate_at(&ada, TARGET, 600).await;
    let dir = tempfile::tempdir().expect("dir");
    let (key, public) = user_key(dir.path());
    let v = sign(&ada, &public).await.expect("sign");
    assert_eq!(v.principals, ["root"]);
    assert_eq!(v.key_id, format!("portcullis:ada:{id}"));
    assert_eq!(v.extensions, ["permit-pty"]);
    let request = ada.activation_request(&id).await.expect("request");
    let ends = time::OffsetDateTime::parse(
        request.ends_at.as_deref().expect("ends"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("time");
    let before = time::OffsetDateTime::parse(
        &v.valid_before,
        &time::format_description::well_known::Rfc3339,
    )
    .expect("time");
    assert!(
        before <= ends && ends - before < time::Duration::seconds(1),
        "ends with the grant"
    );

    let shown = keygen_l(&write_cert(&key, &v));
    assert!(shown.contains("user certificate"), "{shown}");
    assert!(
        shown.contains(&format!("Key ID: \"portcullis:ada:{id}\"")),
        "{shown}"
    );
    assert!(shown.contains(&format!("Serial: {}", v.serial)), "{shown}");
    assert!(
        shown.contains(&format!("Signing CA: ED25519 {}", ca[0].fingerprint)),
        "{shown}"
    );
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let after = time::OffsetDateTime::parse(
        &v.valid_after,
        &time::format_description::well_known::Rfc3339,
    )
    .expect("time");
    assert!(
        shown.contains(&format!(
            "Valid: from {} to {}",
            after.format(&fmt).expect("fmt"),
            before.format(&fmt).expect("fmt")
        )),
        "{shown}"
    );
    let principals = shown
        .split("Principals:")
        .nth(1)
        .and_then(|s| s.split("Critical Options:").next())
        .expect("principals");
    assert_eq!(principals.split_whitespace().collect::<Vec<_>>(), ["root"]);
    let issued = events_named(&admin, "ssh.certificate_issued").await;
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].details["serial"], v.serial);
    assert_eq!(issued[0].details["principals"], serde_json::json!(["root"]));
    assert_eq!(issued[0].details["valid_before"], v.valid_before);
}

async fn sshd_accepts_the_certificate_during_the_grant_only(app: TestApp) {
    let admin = admin(&app).await;
    ssh_target(&admin, "root", None).await;
    let ca = app.anonymous.ssh_ca_pub(TARGET).await.expect("ca.pub");
    let Some(sshd) = sshd_for(&ca, &[("root", &["root"])]) else {
        return;
    };
    let bea = db_person(&app, &admin, "bea", TARGET).await;
    activate_at(&bea, TARGET, 8).await;
    let dir = tempfile::tempdir().expect("dir");
    let (key, public) = user_key(dir.path());
    let v = sign(&bea, &public).await.expect("sign");
    let cert = write_cert(&key, &v);
    sshd.login("root", &key, &cert)
        .expect("login during the grant");
    let before = time::OffsetDateTime::parse(
        &v.valid_before,
        &time::format_description::well_known::Rfc3339,
    )
    .expect("time");
    let wait = before - time::OffsetDateTime::now_utc() + time::Duration::seconds(1);
    tokio::time::sleep(wait.try_into().unwrap_or_default()).await;
    let e = sshd
        .login("root", &key, &cert)
        .expect_err("refused after valid_before");
    assert!(
        e.contains("expired") || e.contains("Permission denied"),
        "{e}"
    );
}

async fn a_deactivated_grant_is_refused_by_sshd_once_the_krl_is_fetched(app: TestApp) {
    let admin = admin(&app).await;
    ssh_target(&admin, "root", None).await;
    let ca = app.anonymous.ssh_ca_pub(TARGET).await.expect("ca.pub");
    let Some(sshd) = sshd_for(&ca, &[("root", &["root"])]) else {
        return;
    };
    let cal = db_person(&app, &admin, "cal", TARGET).await;
    let id = activate_at(&cal, TARGET, 600).await;
    let dir = tempfile::tempdir().expect("dir");
    let (key, public) = user_key(dir.path());
    let v = sign(&cal, &public).await.expect("sign");
    let cert = write_cert(&key, &v);
    sshd.set_krl(&app.anonymous.ssh_krl(TARGET).await.expect("krl"));
    sshd.login("root", &key, &cert)
        .expect("login during the grant");

    cal.deactivate(&id, &DecisionRequest { reason: None })
        .await
        .expect("deactivate");
    // The KRL served right after the deactivation answered lists the serial.
    let krl = app.anonymous.ssh_krl(TARGET).await.expect("krl");
    assert!(
        revoked_in(&krl, &cert),
        "the KRL lists the certificate at once"
    );
    sshd.set_krl(&krl);
    let e = sshd.login("root", &key, &cert).expect_err("revoked");
    assert!(e.contains("revoked"), "sshd says why: {e}");
    assert_eq!(settled_events(&admin, "target.revoked", 1).await.len(), 1);
}

async fn a_certificate_for_deploy_cannot_log_in_as_root(app: TestApp) {
    let admin = admin(&app).await;
    ssh_target(&admin, "deploy", None).await;
    let ca = app.anonymous.ssh_ca_pub(TARGET).await.expect("ca.pub");
    let Some(sshd) = sshd_for(&ca, &[("root", &["root"])]) else {
        return;
    };
    let dee = db_person(&app, &admin, "dee", TARGET).await;
    activate_at(&dee, TARGET, 600).await;
    let dir = tempfile::tempdir().expect("dir");
    let (key, public) = user_key(dir.path());
    let v = sign(&dee, &public).await.expect("sign");
    assert_eq!(v.principals, ["deploy"]);
    let e = sshd
        .login("root", &key, &write_cert(&key, &v))
        .expect_err("deploy is not root");
    assert!(e.contains("authorized principal"), "{e}");
}

async fn disabling_the_person_revokes_their_certificates(app: TestApp) {
    let admin = admin(&app).await;
    ssh_target(&admin, "root", None).await;
    let eve = db_person(&app, &admin, "eve", TARGET).await;
    activate_at(&eve, TARGET, 600).await;
    let dir = tempfile::tempdir().expect("dir");
    let (key, public) = user_key(dir.path());
    let cert = write_cert(&key, &sign(&eve, &public).await.expect("sign"));
    let krl = app.anonymous.ssh_krl(TARGET).await.expect("krl");
    assert!(!revoked_in(&krl, &cert), "live");
    admin.disable_user("eve").await.expect("disable");
    let krl = app.anonymous.ssh_krl(TARGET).await.expect("krl");
    assert!(revoked_in(&krl, &cert), "revoked with the person");
}

async fn unbinding_the_role_revokes_its_certificates(app: TestApp) {
    let admin = admin(&app).await;
    ssh_target(&admin, "root", None).await;
    let ned = db_person(&app, &admin, "ned", TARGET).await;
    activate_at(&ned, TARGET, 600).await;
    let dir = tempfile::tempdir().expect("dir");
    let (key, public) = user_key(dir.path());
    let cert = write_cert(&key, &sign(&ned, &public).await.expect("sign"));
    admin.unbind_role(TARGET, DB_ROLE).await.expect("unbind");
    let krl = app.anonymous.ssh_krl(TARGET).await.expect("krl");
    assert!(revoked_in(&krl, &cert), "revoked with the binding");
    let e = sign(&ned, &public)
        .await
        .expect_err("the role means nothing here now");
    assert_eq!(e.code(), Some("no_active_grant"));
}

async fn bad_public_keys_are_refused_with_a_reason(app: TestApp) {
    let admin = admin(&app).await;
    ssh_target(&admin, "root", None).await;
    let fay = db_person(&app, &admin, "fay", TARGET).await;
    activate_at(&fay, TARGET, 600).await;
    let e = sign(&fay, "ssh-ed25519 not-base64!!")
        .await
        .expect_err("garbage");
    assert_eq!(e.code(), Some("invalid_public_key"), "{e}");
    let dir = tempfile::tempdir().expect("dir");
    let short = dir.path().join("rsa2048");
    let ok = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"])
        .arg(&short)
        .status()
        .expect("ssh-keygen");
    assert!(ok.success());
    let line = std::fs::read_to_string(short.with_extension("pub")).expect("pub");
    let e = sign(&fay, &line).await.expect_err("short RSA");
    assert_eq!(e.code(), Some("invalid_public_key"));
    assert!(
        e.to_string().contains("3072") && e.to_string().contains("2048"),
        "{e}"
    );
    let (key, public) = user_key(dir.path());
    let v = sign(&fay, &public).await.expect("sign");
    let cert = std::fs::read_to_string(write_cert(&key, &v)).expect("cert");
    let e = sign(&fay, &cert)
        .await
        .expect_err("a certificate is not a key");
    assert_eq!(e.code(), Some("invalid_public_key"));
    // Nothing was issued for the refusals.
    assert_eq!(
        events_named(&admin, "ssh.certificate_issued").await.len(),
        1
    );
}

async fn no_certificate_without_a_live_grant(app: TestApp) {
    let admin = admin(&app).await;
    ssh_target(&admin, "root", None).await;
    let gus = db_person(&app, &admin, "gus", TARGET).await;
    let dir = tempfile::tempdir().expect("dir");
    let (_, public) = user_key(dir.path());
    let e = sign(&gus, &public)
        .await
        .expect_err("eligible is not active");
    assert_eq!(e.code(), Some("no_active_grant"), "{e}");
    assert!(e.to_string().contains(TARGET), "{e}");
    // A refusal is evidence: on record at once (later ones of the minute are summed).
    let refused = events_named(&admin, "authz.refused").await;
    assert!(
        refused
            .iter()
            .any(|r| r.actor == "user:gus" && r.details["code"] == "no_active_grant"),
        "{refused:?}"
    );
    // Asking just before a grant ends gets nothing that could outlive it.
    let short = activate_at(&gus, TARGET, 4).await;
    let e = sign(&gus, &public).await.expect_err("less than 5 s left");
    assert_eq!(e.code(), Some("no_active_grant"));
    assert!(e.to_string().contains("less than"), "{e}");
    gus.deactivate(&short, &DecisionRequest { reason: None })
        .await
        .expect("deactivate");
    let id = activate_at(&gus, TARGET, 600).await;
    gus.deactivate(&id, &DecisionRequest { reason: None })
        .await
        .expect("deactivate");
    let e = sign(&gus, &public)
        .await
        .expect_err("after the grant ended");
    assert_eq!(e.code(), Some("no_active_grant"));
    let e = gus
        .ssh_sign(
            "no-such-target",
            &portcullis_core::api::SignSshRequest {
                public_key: public.clone(),
                role: None,
            },
        )
        .await
        .expect_err("no target");
    assert_eq!(e.code(), Some("not_found"));
    assert!(
        events_named(&admin, "ssh.certificate_issued")
            .await
            .is_empty()
    );
}

async fn a_person_gets_only_their_own_principals(app: TestApp) {
    let admin = admin(&app).await;
    ssh_target(&admin, "root", None).await;
    let hal = db_person(&app, &admin, "hal", TARGET).await;
    let ivy = db_person(&app, &admin, "ivy", TARGET).await;
    let hal_grant = activate_at(&hal, TARGET, 600).await;
    let dir = tempfile::tempdir().expect("dir");
    let (_, public) = user_key(dir.path());
    // Ivy, eligible but not active, cannot ride on Hal's grant, even with Hal's key.
    let e = sign(&ivy, &public).await.expect_err("not hers");
    assert_eq!(e.code(), Some("no_active_grant"));
    let ivy_grant = activate_at(&ivy, TARGET, 60).await;
    let v = sign(&ivy, &public).await.expect("her own");
    assert_eq!(v.grant_ids, std::slice::from_ref(&ivy_grant));
    assert!(!v.key_id.contains(&hal_grant));
    assert!(v.key_id.starts_with("portcullis:ivy:"));
    // And her certificate ends with her grant, not with Hal's longer one.
    let ivy_req = ivy.activation_request(&ivy_grant).await.expect("request");
    let rfc = |s: &str| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .expect("time")
    };
    assert!(rfc(&v.valid_before) <= rfc(ivy_req.ends_at.as_deref().expect("ends")));
}

async fn an_access_token_cannot_obtain_a_certificate(app: TestApp) {
    let admin = admin(&app).await;
    ssh_target(&admin, "root", None).await;
    admin
        .create_service_account(&portcullis_core::api::CreateServiceAccountRequest {
            name: "deployer".into(),
            display_name: None,
            public_key: None,
            key_id: None,
        })
        .await
        .expect("sa");
    let (sam, _) = holder(&app, &admin, "sam", "service-administrator").await;
    let s = sam.add_client_secret("deployer").await.expect("secret");
    admin
        .create_assignment(&CreateAssignmentRequest {
            principal: "service_account:deployer".into(),
            role: DB_ROLE.into(),
            scope: Some(format!("/targets/{TARGET}")),
            kind: Some("active".into()),
            duration_seconds: Some(600),
            ends_at: None,
        })
        .await
        .expect("an active grant at the target");
    let token = access_token(&app, "deployer", &s.client_secret).await;
    let bearer = Client::new(&app.base, Some(secrecy::SecretString::from(token))).expect("client");
    let dir = tempfile::tempdir().expect("dir");
    let (_, public) = user_key(dir.path());
    let e = sign(&bearer, &public)
        .await
        .expect_err("a bearer token mints nothing");
    assert_eq!(e.code(), Some("forbidden"), "{e}");
    assert!(e.to_string().contains("access token"), "{e}");
    assert!(
        events_named(&admin, "ssh.certificate_issued")
            .await
            .is_empty()
    );
}

async fn the_ca_private_key_never_leaves_the_server(app: TestApp) {
    let admin = admin(&app).await;
    ssh_target(&admin, "root", None).await;
    let jo = db_person(&app, &admin, "jo", TARGET).await;
    activate_at(&jo, TARGET, 600).await;
    let dir = tempfile::tempdir().expect("dir");
    let (_, public) = user_key(dir.path());
    let v = sign(&jo, &public).await.expect("sign");
    // The seed, opened here only to look for it elsewhere.
    let stored = app.state.store.ssh_ca_keys(TARGET).await.expect("keys");
    assert_ne!(stored[0].sealed_private.len(), 32, "sealed, not clear");
    let seed = app
        .state
        .master
        .open(
            &format!("ssh_ca:{TARGET}:{}", stored[0].fingerprint),
            &stored[0].sealed_private,
        )
        .expect("opens with the master key");
    let forms = [
        hex::encode(&*seed),
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &*seed),
        "PRIVATE KEY".to_owned(),
    ];
    let mut seen = vec![
        serde_json::to_string(&admin.target(TARGET).await.expect("show")).expect("json"),
        serde_json::to_string(&admin.targets().await.expect("list")).expect("json"),
        serde_json::to_string(&v).expect("json"),
        app.anonymous.ssh_ca_pub(TARGET).await.expect("ca.pub"),
        serde_json::to_string(&admin.test_target(TARGET).await.expect("test")).expect("json"),
    ];
    let events = admin
        .audit_events(&EventFilter {
            limit: Some(500),
            ..Default::default()
        })
        .await
        .expect("events");
    seen.push(serde_json::to_string(&events).expect("json"));
    for text in &seen {
        for f in &forms {
            assert!(!text.contains(f.as_str()), "the CA key leaked: {f}");
        }
    }
    assert!(admin.test_target(TARGET).await.expect("test").ok);
}

async fn rotation_keeps_the_old_key_trusted_and_signs_with_the_new(app: TestApp) {
    let admin = admin(&app).await;
    let t = ssh_target(&admin, "root", None).await;
    let old = t.ssh.expect("ca").keys[0].fingerprint.clone();
    let kim = db_person(&app, &admin, "kim", TARGET).await;
    let id = activate_at(&kim, TARGET, 600).await;
    let dir = tempfile::tempdir().expect("dir");
    let (key, public) = user_key(dir.path());
    let first = write_cert(&key, &sign(&kim, &public).await.expect("sign"));
    // Holding a grant at the target is not managing it: the CA is the administrators'.
    let e = kim
        .ssh_rotate(
            TARGET,
            &portcullis_core::api::RotateSshCaRequest { overlap: None },
        )
        .await
        .expect_err("a person with a grant cannot rotate the CA");
    assert_eq!(e.code(), Some("forbidden"), "{e}");
    let e = admin
        .ssh_rotate(
            TARGET,
            &portcullis_core::api::RotateSshCaRequest {
                overlap: Some("1h".into()),
            },
        )
        .await
        .expect_err("shorter than the longest certificate");
    assert_eq!(e.code(), Some("invalid_request"));
    let v = admin
        .ssh_rotate(
            TARGET,
            &portcullis_core::api::RotateSshCaRequest { overlap: None },
        )
        .await
        .expect("rotate");
    assert_eq!(v.keys.len(), 2);
    let new = v.keys.iter().find(|k| k.signing).expect("a signing key");
    assert_ne!(new.fingerprint, old);
    assert!(
        v.keys
            .iter()
            .any(|k| k.fingerprint == old && !k.signing && k.trusted_until.is_some())
    );
    let ca = app.anonymous.ssh_ca_pub(TARGET).await.expect("ca.pub");
    assert_eq!(ca.lines().count(), 2, "both trusted during the overlap");
    let second_key = dir.path().join("second");
    std::fs::create_dir(&second_key).expect("dir");
    let (key2, public2) = user_key(&second_key);
    let v2 = sign(&kim, &public2).await.expect("sign");
    assert_eq!(v2.ca_fingerprint, new.fingerprint);
    let second = write_cert(&key2, &v2);
    // One deactivation revokes certificates of both CA keys, each in its own KRL section.
    kim.deactivate(&id, &DecisionRequest { reason: None })
        .await
        .expect("deactivate");
    let krl = app.anonymous.ssh_krl(TARGET).await.expect("krl");
    assert!(revoked_in(&krl, &first) && revoked_in(&krl, &second));
}

async fn a_certificate_nobody_was_granted_is_drift_and_reverted(app: TestApp) {
    let admin = admin(&app).await;
    ssh_target(&admin, "root", Some("revert")).await;
    let lu = db_person(&app, &admin, "lu", TARGET).await;
    let id = activate_at(&lu, TARGET, 600).await;
    let dir = tempfile::tempdir().expect("dir");
    let (key, public) = user_key(dir.path());
    let cert = write_cert(&key, &sign(&lu, &public).await.expect("sign"));
    let seen = admin.observe_target(TARGET).await.expect("observe");
    assert!(seen.drift.is_empty() && seen.missing.is_empty(), "{seen:?}");
    assert_eq!(seen.held.len(), 1);
    assert_eq!(seen.held[0].grant_id.as_deref(), Some(id.as_str()));
    // A database writer moves the grant elsewhere behind the store's back (no revoke
    // written): the certificate outlives what it rests on.
    db_exec(
        &app.config,
        &format!("UPDATE activation_requests SET scope = '/targets/elsewhere' WHERE id = '{id}'"),
    )
    .await;
    let r = admin.reconcile_target(TARGET).await.expect("reconcile");
    assert_eq!(r.drift.len(), 1, "{r:?}");
    assert_eq!(
        (r.drift[0].holder.as_str(), r.drift[0].right.as_str()),
        ("lu", "root")
    );
    assert_eq!(r.reverted.len(), 1);
    let krl = app.anonymous.ssh_krl(TARGET).await.expect("krl");
    assert!(revoked_in(&krl, &cert), "reverted drift is revoked");
    assert_eq!(events_named(&admin, "target.drift").await.len(), 1);
}
