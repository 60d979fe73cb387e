//! Targets: grants become real access in a real PostgreSQL (a fresh database per test on the
//! CI server) and through a real webhook receiver (the example in `examples/`), revoked on
//! time, drift found; and the abuse and bad-input refusals. One file per topic.

use super::*;

mod abuse;
mod accounts;
mod msgraph;
mod postgres;
mod replicas;
mod ssh;
mod sshd;
mod webhook;

/// A database to grant access in, on the test PostgreSQL server: a table only
/// `reader` may read, a connector login with CREATEROLE, and a suffix that makes every
/// cluster-wide role name of this test unique (roles are shared by all databases).
pub(crate) struct PgTarget {
    /// The target database, as its superuser.
    pub(crate) admin: sqlx::PgPool,
    /// `postgres://CONNECTOR@HOST:PORT/DB`, for `targets add`.
    pub(crate) connector_url: String,
    /// The target-side role a binding grants.
    pub(crate) reader: String,
    /// `{user}` → the person's login.
    pub(crate) login_template: String,
    url: url::Url,
    sfx: String,
}

/// The prefix of every role these tests create (CI drops them with the test databases).
pub(crate) const ROLE_PREFIX: &str = "pct_";

impl PgTarget {
    /// A fresh target database; `None` (skip) without PORTCULLIS_TEST_DATABASE_URL.
    pub(crate) async fn new() -> Option<Self> {
        let url = fresh_postgres_url().await?;
        let sfx = hex::encode(rand::random::<[u8; 4]>());
        let admin = sqlx::PgPool::connect(&url).await.expect("target database");
        let reader = format!("{ROLE_PREFIX}reader_{sfx}");
        let connector = format!("{ROLE_PREFIX}connector_{sfx}");
        for sql in [
            format!("CREATE ROLE {reader} NOLOGIN"),
            format!("CREATE ROLE {connector} LOGIN CREATEROLE PASSWORD 'connector-pw'"),
            "CREATE TABLE payroll (employee TEXT, salary INT)".to_owned(),
            "INSERT INTO payroll VALUES ('ada', 100)".to_owned(),
            format!("GRANT SELECT ON payroll TO {reader}"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&admin)
                .await
                .expect("set up");
        }
        let parsed = url::Url::parse(&url).expect("url");
        let mut connector_url = parsed.clone();
        connector_url.set_username(&connector).expect("user");
        let _ = connector_url.set_password(None);
        Some(Self {
            admin,
            connector_url: connector_url.to_string(),
            reader,
            login_template: format!("{ROLE_PREFIX}{{user}}_{sfx}"),
            url: parsed,
            sfx,
        })
    }

    /// The database login of Portcullis user `user`.
    pub(crate) fn login(&self, user: &str) -> String {
        format!("{ROLE_PREFIX}{user}_{}", self.sfx)
    }

    /// Creates `user`'s login role (grant mode: the person has a login already).
    pub(crate) async fn create_login(&self, user: &str) {
        let sql = format!("CREATE ROLE {} LOGIN", self.login(user));
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&self.admin)
            .await
            .expect("login");
    }

    /// A connection as `user`'s login.
    pub(crate) async fn connect_as(&self, user: &str) -> sqlx::PgConnection {
        use sqlx::Connection;
        let mut u = self.url.clone();
        u.set_username(&self.login(user)).expect("user");
        let _ = u.set_password(None);
        sqlx::PgConnection::connect(u.as_str())
            .await
            .expect("connect as the person")
    }

    /// Whether `user` can read the payroll table on a new connection now.
    pub(crate) async fn can_read(&self, user: &str) -> bool {
        let mut c = self.connect_as(user).await;
        sqlx::query("SELECT salary FROM payroll")
            .fetch_all(&mut c)
            .await
            .is_ok()
    }

    /// Who is a member of the reader role now.
    pub(crate) async fn readers(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT m.rolname::text FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles m ON m.oid = am.member WHERE r.rolname = $1 ORDER BY 1")
            .bind(&self.reader)
            .fetch_all(&self.admin)
            .await
            .expect("members")
    }

    /// The database server's port.
    pub(crate) fn port(&self) -> u16 {
        self.url.port().unwrap_or(5432)
    }

    /// `url` with its port replaced (to go through a [`TcpProxy`]).
    pub(crate) fn with_port(&self, url: &str, port: u16) -> String {
        let mut u = url::Url::parse(url).expect("url");
        u.set_port(Some(port)).expect("port");
        u.to_string()
    }

    /// Runs SQL on the target database as its superuser (a change made by hand).
    pub(crate) async fn by_hand(&self, sql: String) {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&self.admin)
            .await
            .expect("by hand");
    }
}

/// Waits up to `secs` seconds for `f` to hold; whether it did.
pub(crate) async fn eventually<F, Fut>(secs: f64, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(secs);
    loop {
        if f().await {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The `action` events once there are at least `n` (the target worker records an operation
/// just after the target changed; 5 s at most), to count them exactly.
pub(crate) async fn settled_events(
    admin: &Client,
    action: &str,
    n: usize,
) -> Vec<portcullis_core::api::AuditEventView> {
    eventually(5.0, || async {
        events_named(admin, action).await.len() >= n
    })
    .await;
    // A little longer, so one applied twice would show.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    events_named(admin, action).await
}

/// The custom role every target test binds: it carries one target permission.
pub(crate) const DB_ROLE: &str = "payroll-reader";

/// Adds PostgreSQL target `name` for `pg` (the connector's password sealed) with `drift`,
/// reconciled every `interval`, and binds [`DB_ROLE`] to it with the reader role.
pub(crate) async fn postgres_target(
    admin: &Client,
    pg: &PgTarget,
    name: &str,
    drift: &str,
    interval: &str,
) {
    admin
        .create_target(&portcullis_core::api::CreateTargetRequest {
            name: name.into(),
            kind: "postgres".into(),
            url: pg.connector_url.clone(),
            observe_url: None,
            login: Some(pg.login_template.clone()),
            secret: Some("connector-pw".into()),
            secret_env: None,
            drift: Some(drift.into()),
            reconcile_interval: Some(interval.into()),
            ssh: None,
            msgraph: None,
        })
        .await
        .expect("add target");
    bind_db_role(admin, name, &pg.reader).await;
}

/// [`DB_ROLE`] (created if need be) bound to `target`, granting `right` there.
pub(crate) async fn bind_db_role(admin: &Client, target: &str, right: &str) {
    custom_role(admin).await;
    admin
        .bind_role(
            target,
            DB_ROLE,
            &portcullis_core::api::BindRoleRequest {
                grants: vec![right.into()],
                mode: None,
                ssh: None,
            },
        )
        .await
        .expect("bind");
}

/// The custom role [`DB_ROLE`] (created once per tenant).
pub(crate) async fn custom_role(admin: &Client) {
    let r = admin
        .create_role(&portcullis_core::api::CreateRoleRequest {
            slug: DB_ROLE.into(),
            display_name: None,
            description: "reads the payroll database".into(),
            permissions: vec!["target:payroll-db.read".into()],
        })
        .await;
    match r {
        Ok(_) => {}
        Err(e) if e.code() == Some("already_exists") => {}
        Err(e) => panic!("custom role: {e}"),
    }
}

/// `user` (MFA, signed in) eligible for [`DB_ROLE`] at `/targets/TARGET`.
pub(crate) async fn db_person(app: &TestApp, admin: &Client, user: &str, target: &str) -> Client {
    let (c, _) = mfa_user(app, admin, user, "cobalt-meadow-prism-42").await;
    admin
        .create_assignment(&CreateAssignmentRequest {
            principal: user.into(),
            role: DB_ROLE.into(),
            scope: Some(format!("/targets/{target}")),
            kind: Some("eligible".into()),
            duration_seconds: None,
            ends_at: None,
        })
        .await
        .expect("eligible at the target");
    c
}

/// `c` activates [`DB_ROLE`] at `/targets/TARGET` for `secs`; the request's id.
pub(crate) async fn activate_at(c: &Client, target: &str, secs: i64) -> String {
    let r = c
        .request_activation(&CreateActivationRequest {
            role: DB_ROLE.into(),
            scope: Some(format!("/targets/{target}")),
            duration_seconds: secs,
            justification: Some("month-end payroll check".into()),
            ticket: Some("CHG-1234".into()),
            starts_at: None,
        })
        .await
        .expect("activate");
    assert_eq!(r.state, "active");
    r.id
}

/// A TCP forwarder on loopback to `127.0.0.1:to`: a target that can become unreachable (stop
/// drops the listener and every forwarded connection) and come back on the same port.
pub(crate) struct TcpProxy {
    pub(crate) port: u16,
    accept: tokio::task::JoinHandle<()>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl TcpProxy {
    pub(crate) async fn start(port: u16, to: u16) -> Self {
        let mut listener = None;
        for _ in 0..50 {
            match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
        let listener = listener.expect("bind the proxy");
        let port = listener.local_addr().expect("addr").port();
        let conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> =
            std::sync::Arc::default();
        let held = conns.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", to)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                held.lock().expect("conns").push(task);
            }
        });
        Self {
            port,
            accept,
            conns,
        }
    }

    /// Stops accepting and cuts every forwarded connection.
    pub(crate) fn stop(self) {
        self.accept.abort();
        for c in self.conns.lock().expect("conns").drain(..) {
            c.abort();
        }
    }
}
