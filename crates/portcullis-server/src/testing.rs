//! What the integration tests and the benchmarks share (feature `testing`, never in a release
//! build): a real server on port 0, TOTP codes, and the password + TOTP sign-in. Each keeps its
//! own assertions; this only does the steps.

use portcullis_client::Client;
use portcullis_core::api::{PasswordSignInRequest, SignInResponse, TotpSignInRequest};

use crate::state::AppState;
use crate::{Application, BuildOptions, Config};

/// A TOTP code for `secret`, `offset` time steps (30 s) from now.
pub fn totp_code(secret: &[u8], offset: i64) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp() + offset * 30;
    portcullis_core::totp::generate(secret, now as u64).expect("a TOTP code")
}

/// The two answers of a password + TOTP sign-in: the password step's and the TOTP step's (with
/// a code `offset` steps from now).
pub async fn password_and_totp(
    anon: &Client,
    user: &str,
    pw: &str,
    secret: &[u8],
    offset: i64,
) -> (SignInResponse, SignInResponse) {
    let first = anon
        .signin_password(&PasswordSignInRequest {
            username: user.into(),
            password: pw.into(),
        })
        .await
        .expect("password step");
    let second = anon
        .signin_totp(&TotpSignInRequest {
            signin_id: first.signin_id.clone().expect("a sign-in id"),
            code: totp_code(secret, offset),
        })
        .await
        .expect("totp step");
    (first, second)
}

/// A server running on its own task until [`Served::stop`].
pub struct Served {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The server's public URL (issuer), without a trailing slash.
    pub public_url: String,
    /// The bootstrap token, on the start that created the tenant.
    pub bootstrap_token: Option<String>,
    /// The handlers' shared state, for calling a service in-process.
    pub state: AppState,
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Served {
    /// Stops accepting, drains, and waits for the server to end.
    pub async fn stop(self) -> std::io::Result<()> {
        let _ = self.stop.send(());
        self.done.await.expect("server task")
    }
}

/// Builds a server from `config` (as `portcullis serve` does) and runs it on a task.
pub async fn serve(config: Config) -> Served {
    let app = Application::build(config, BuildOptions::default())
        .await
        .expect("server builds");
    let bootstrap_token = app.bootstrap_token().map(str::to_owned);
    let base = format!("http://127.0.0.1:{}", app.port());
    let public_url = app.public_url().to_owned();
    let state = app.state().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    Served {
        base,
        public_url,
        bootstrap_token,
        state,
        stop,
        done,
    }
}
