//! Starting servers: `TestApp`, `spawn_app`/`spawn_with`/`spawn_at_localhost` on either backend,
//! `start` (again with an earlier bootstrap token to restart), two replicas on one database.

use super::*;

pub(crate) struct TestApp {
    pub(crate) base: String,
    pub(crate) client: Client,
    pub(crate) anonymous: Client,
    pub(crate) token: String,
    pub(crate) http: reqwest::Client,
    pub(crate) served: Option<portcullis_server::testing::Served>,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) config: Config,
    /// The server's public URL (issuer), without a trailing slash.
    pub(crate) public_url: String,
    /// The handlers' shared state, for calling a service in-process.
    pub(crate) state: portcullis_server::state::AppState,
}

impl TestApp {
    pub(crate) async fn stop(mut self) -> (tempfile::TempDir, Config, String) {
        if let Some(s) = self.served.take() {
            s.stop().await.expect("serve");
        }
        (self.dir, self.config, self.token.clone())
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

pub(crate) async fn config_for(backend: Backend, dir: &std::path::Path) -> Option<Config> {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.join("data"),
        // The origin the test browser claims (`origin()`), as a deployment behind another
        // address would set it; `public_url_follows_the_listener` checks the unset default.
        public_url: Some("http://localhost:8080".into()),
        // A lone administrator's weakening change (four eyes, nobody else to approve it)
        // takes effect after this: a second, so set-ups that weaken a role wait it out
        // (`settings_now`); the four-eyes tests set their own.
        change_cooling_off: "1s".into(),
        ..Config::default()
    };
    if let Backend::Postgres = backend {
        config.database_url = Some(SecretString::from(fresh_postgres_url().await?));
    }
    Some(config)
}

/// Starts a server; `token` is the bootstrap token of an earlier start on the same tenant.
pub(crate) async fn start(
    config: Config,
    dir: tempfile::TempDir,
    token: Option<String>,
) -> TestApp {
    let served = portcullis_server::testing::serve(config.clone()).await;
    let created = served.bootstrap_token.clone();
    assert_eq!(
        created.is_some(),
        token.is_none(),
        "a token is created on the first start only"
    );
    let token = created.or(token).unwrap_or_default();
    let base = served.base.clone();
    let public_url = served.public_url.clone();
    let state = served.state.clone();
    TestApp {
        client: Client::new(&base, Some(SecretString::from(token.clone()))).expect("client"),
        anonymous: Client::new(&base, None).expect("client"),
        base,
        token,
        http: reqwest::Client::new(),
        served: Some(served),
        dir,
        config,
        public_url,
        state,
    }
}

pub(crate) async fn spawn_app(backend: Backend) -> Option<TestApp> {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_for(backend, dir.path()).await?;
    Some(start(config, dir, None).await)
}

pub(crate) async fn spawn_with(
    backend: Backend,
    tweak: impl FnOnce(&mut Config),
) -> Option<TestApp> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config_for(backend, dir.path()).await?;
    tweak(&mut config);
    Some(start(config, dir, None).await)
}

/// A server whose issuer is its real address (`http://localhost:PORT`, what an unset
/// `public_url` follows), so a relying party can follow discovery.
pub(crate) async fn spawn_at_localhost(backend: Backend) -> Option<TestApp> {
    spawn_with(backend, |c| c.public_url = None).await
}

/// Two servers (replicas) of one tenant on the PostgreSQL database at `url`.
pub(crate) async fn two_replicas(url: &str) -> (TestApp, TestApp) {
    two_replicas_with(url, |_| {}).await
}

/// Two replicas on one database, each configured by `tweak` as well.
pub(crate) async fn two_replicas_with(
    url: &str,
    tweak: impl Fn(&mut Config),
) -> (TestApp, TestApp) {
    let key = base64::engine::general_purpose::STANDARD.encode([5u8; 32]);
    let mk = |dir: &tempfile::TempDir| {
        let mut c = Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            data_dir: dir.path().join("data"),
            database_url: Some(SecretString::from(url.to_owned())),
            master_key: Some(SecretString::from(key.clone())),
            // As for one test server: a lone administrator's weakening waits a second.
            change_cooling_off: "1s".into(),
            ..Config::default()
        };
        tweak(&mut c);
        c
    };
    let d1 = tempfile::tempdir().expect("tmp");
    let a = start(mk(&d1), d1, None).await;
    let d2 = tempfile::tempdir().expect("tmp");
    let b = start(mk(&d2), d2, Some(a.token.clone())).await;
    (a, b)
}
