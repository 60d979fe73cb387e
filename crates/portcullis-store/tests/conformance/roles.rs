//! Roles and their settings in one read.

use super::*;

/// A role and its settings in one read: a custom role with its settings, a built-in name with
/// settings only, an unknown name with neither, and a name that only looks like SQL.
async fn a_role_and_its_settings_come_in_one_read(db: Db) {
    let store = initialised(&db).await;
    let now = OffsetDateTime::now_utc().unix_timestamp() * 1_000_000;
    store
        .write(
            Change::Many(vec![
                Change::CreateCustomRole {
                    slug: "db-reader".into(),
                    display_name: "DB reader".into(),
                    description: "reads".into(),
                    permissions: r#"["app:db.read"]"#.into(),
                    at_us: now,
                },
                Change::SetRoleSettings {
                    role: "db-reader".into(),
                    settings: r#"{"max":1}"#.into(),
                    at_us: now,
                },
                Change::SetRoleSettings {
                    role: "helpdesk-administrator".into(),
                    settings: r#"{"max":2}"#.into(),
                    at_us: now,
                },
            ]),
            vec![],
        )
        .await
        .expect("write");
    let (custom, settings) = store.role_with_settings("db-reader").await.expect("read");
    let custom = custom.expect("the custom role");
    assert_eq!(custom.slug, "db-reader");
    assert_eq!(custom.permissions, vec!["app:db.read".to_owned()]);
    assert_eq!(settings.as_deref(), Some(r#"{"max":1}"#));
    let (custom, settings) = store
        .role_with_settings("helpdesk-administrator")
        .await
        .expect("read");
    assert!(custom.is_none(), "built-in roles are not stored");
    assert_eq!(settings.as_deref(), Some(r#"{"max":2}"#));
    for unknown in ["nobody", "x' OR '1'='1", "é\u{202e}"] {
        assert_eq!(
            store.role_with_settings(unknown).await.expect("read"),
            (None, None),
            "{unknown}"
        );
    }
}

conformance!(a_role_and_its_settings_come_in_one_read,);
