//! Typed HTTP client of the Portcullis API, used by the CLI and by the end-to-end tests.
//!
//! Every API error comes back as [`ClientError::Api`] with the server's stable code, so callers
//! match on codes, never on messages. The bearer credential is a `SecretString` and is never
//! printed.

#![deny(clippy::unwrap_used)]

mod endpoints;

use portcullis_core::api::{
    CheckpointCreated, CheckpointRequest, ErrorBody, EventPage, Health, Ready, VerifyResult,
};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error body.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// The server could not be reached or the connection failed.
    #[error("cannot reach the server at {url}: {reason}")]
    Transport { url: String, reason: String },
    /// The server answered something that is not the API.
    #[error("unexpected answer from the server (HTTP {status})")]
    Unexpected { status: u16 },
    #[error("invalid server URL {0:?}")]
    InvalidUrl(String),
}

impl ClientError {
    /// The stable error code, for API errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, for API errors and unexpected answers.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::Unexpected { status } => Some(*status),
            _ => None,
        }
    }
}

/// Filters for [`Client::audit_events`].
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub outcome: Option<String>,
    /// RFC 3339.
    pub since: Option<String>,
    /// RFC 3339.
    pub until: Option<String>,
    pub after: Option<i64>,
    pub limit: Option<i64>,
}

#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<SecretString>,
    /// For a client that keeps its own tokens fresh ([`Client::with_refresh_token`]).
    refreshing: Option<std::sync::Arc<Refreshing>>,
}

/// Tokens a long-running client keeps fresh by itself: the access token is refreshed
/// [`REFRESH_AHEAD`] before it expires, and once more after a `401`; the refresh token rotates
/// on every use and the newest is handed to `on_rotate` so it can be persisted.
struct Refreshing {
    state: tokio::sync::Mutex<TokenState>,
    on_rotate: Option<OnRotate>,
}

struct TokenState {
    access: SecretString,
    refresh: SecretString,
    expires_at: std::time::Instant,
}

/// The first `Portcullis-Setup` notice any client of this process received.
static SETUP_NOTICE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The server's setup notice (the tenant lacks its two break-glass accounts), if any answer in
/// this process carried one; the CLI prints it after every command.
pub fn setup_notice() -> Option<&'static str> {
    SETUP_NOTICE.get().map(String::as_str)
}

/// Called with each new refresh token, to persist it (the one before is used up).
pub type OnRotate = Box<dyn Fn(&str) + Send + Sync>;

/// How long before its expiry an access token is refreshed.
pub const REFRESH_AHEAD: std::time::Duration = std::time::Duration::from_secs(60);

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(base_url: &str, token: Option<SecretString>) -> Result<Self, ClientError> {
        let base = base_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::InvalidUrl(base_url.to_owned()));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("portcullis-client/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .map_err(|e| ClientError::Transport {
                url: base.clone(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            base,
            http,
            token,
            refreshing: None,
        })
    }

    /// A client that keeps its tokens fresh by itself, for scripts that run for hours:
    /// `access` (valid `expires_in` seconds more) is refreshed with `refresh` before it
    /// expires and after a `401`; every rotated refresh token is passed to `on_rotate`.
    pub fn with_refresh_token(
        base_url: &str,
        access: SecretString,
        expires_in: std::time::Duration,
        refresh: SecretString,
        on_rotate: Option<OnRotate>,
    ) -> Result<Self, ClientError> {
        let mut c = Self::new(base_url, None)?;
        c.refreshing = Some(std::sync::Arc::new(Refreshing {
            state: tokio::sync::Mutex::new(TokenState {
                access,
                refresh,
                expires_at: std::time::Instant::now() + expires_in,
            }),
            on_rotate,
        }));
        Ok(c)
    }

    /// The access token to send now, refreshed first when it is due (or `force`d, after a
    /// 401 with `stale` as the token that was refused).
    async fn fresh_access(
        &self,
        r: &Refreshing,
        stale: Option<&str>,
    ) -> Result<SecretString, ClientError> {
        let mut st = r.state.lock().await;
        let refused_now = stale.is_some_and(|s| s == st.access.expose_secret());
        let due = st
            .expires_at
            .saturating_duration_since(std::time::Instant::now())
            <= REFRESH_AHEAD;
        if due || refused_now {
            let t = self.refresh(st.refresh.expose_secret()).await?;
            let next = t
                .refresh_token
                .ok_or(ClientError::Unexpected { status: 200 })?;
            if let Some(cb) = &r.on_rotate {
                cb(&next);
            }
            st.access = SecretString::from(t.access_token);
            st.refresh = SecretString::from(next);
            st.expires_at = std::time::Instant::now()
                + std::time::Duration::from_secs(t.expires_in.max(0) as u64);
        }
        Ok(st.access.clone())
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, format!("{}{}", self.base, path));
        match &self.token {
            Some(t) => rb.bearer_auth(t.expose_secret()),
            None => rb,
        }
    }

    /// The same client with another bearer credential.
    pub fn with_token(&self, token: Option<SecretString>) -> Self {
        Self {
            base: self.base.clone(),
            http: self.http.clone(),
            token,
            refreshing: None,
        }
    }

    /// Sends and decodes; an empty success body (204) decodes as JSON `null`, i.e. `()`.
    async fn send<T: DeserializeOwned>(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let transport = |e: reqwest::Error| ClientError::Transport {
            url: self.base.clone(),
            reason: transport_reason(&e),
        };
        let resp = match &self.refreshing {
            None => rb.send().await.map_err(transport)?,
            Some(r) => {
                let mut req = rb.build().map_err(transport)?;
                let access = self.fresh_access(r, None).await?;
                set_bearer(&mut req, &access)?;
                let retry = req.try_clone();
                let resp = self.http.execute(req).await.map_err(transport)?;
                match retry {
                    // Refused although fresh (revoked, key rotated): refresh once and retry.
                    Some(mut again) if resp.status() == reqwest::StatusCode::UNAUTHORIZED => {
                        let access = self.fresh_access(r, Some(access.expose_secret())).await?;
                        set_bearer(&mut again, &access)?;
                        self.http.execute(again).await.map_err(transport)?
                    }
                    _ => resp,
                }
            }
        };
        let status = resp.status();
        if let Some(n) = resp
            .headers()
            .get("portcullis-setup")
            .and_then(|v| v.to_str().ok())
        {
            let _ = SETUP_NOTICE.set(n.to_owned());
        }
        let bytes = resp.bytes().await.map_err(|e| ClientError::Transport {
            url: self.base.clone(),
            reason: transport_reason(&e),
        })?;
        if status.is_success() {
            if bytes.is_empty() {
                return serde_json::from_value(serde_json::Value::Null).map_err(|_| {
                    ClientError::Unexpected {
                        status: status.as_u16(),
                    }
                });
            }
            return serde_json::from_slice(&bytes).map_err(|_| ClientError::Unexpected {
                status: status.as_u16(),
            });
        }
        Err(api_error(status, &bytes))
    }

    /// A public document that is not JSON (an ssh-ca target's `ca.pub` or KRL), as bytes;
    /// an error answer in the API's shape becomes [`ClientError::Api`].
    pub async fn get_bytes(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let transport = |e: reqwest::Error| ClientError::Transport {
            url: self.base.clone(),
            reason: transport_reason(&e),
        };
        let resp = self
            .http
            .get(format!("{}{}", self.base, path))
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(transport)?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        Err(api_error(status, &bytes))
    }

    /// An ssh-ca target's CA public keys (`TrustedUserCAKeys`), one OpenSSH line each.
    pub async fn ssh_ca_pub(&self, target: &str) -> Result<String, ClientError> {
        let b = self
            .get_bytes(&format!(
                "/api/v1/targets/{}/ssh/ca.pub",
                endpoints::seg(target)
            ))
            .await?;
        String::from_utf8(b).map_err(|_| ClientError::Unexpected { status: 200 })
    }

    /// An ssh-ca target's binary KRL (`RevokedKeys`).
    pub async fn ssh_krl(&self, target: &str) -> Result<Vec<u8>, ClientError> {
        self.get_bytes(&format!(
            "/api/v1/targets/{}/ssh/krl",
            endpoints::seg(target)
        ))
        .await
    }

    pub async fn health(&self) -> Result<Health, ClientError> {
        self.send(self.request(reqwest::Method::GET, "/healthz"))
            .await
    }

    pub async fn ready(&self) -> Result<Ready, ClientError> {
        self.send(self.request(reqwest::Method::GET, "/readyz"))
            .await
    }

    pub async fn audit_events(&self, f: &EventFilter) -> Result<EventPage, ClientError> {
        let mut q: Vec<(&str, String)> = Vec::new();
        let opts = [
            ("actor", &f.actor),
            ("action", &f.action),
            ("target", &f.target),
            ("outcome", &f.outcome),
            ("since", &f.since),
            ("until", &f.until),
        ];
        for (k, v) in opts {
            if let Some(v) = v {
                q.push((k, v.clone()));
            }
        }
        if let Some(a) = f.after {
            q.push(("after", a.to_string()));
        }
        if let Some(l) = f.limit {
            q.push(("limit", l.to_string()));
        }
        self.send(
            self.request(reqwest::Method::GET, "/api/v1/audit/events")
                .query(&q),
        )
        .await
    }

    pub async fn audit_verify(&self) -> Result<VerifyResult, ClientError> {
        self.send(self.request(reqwest::Method::GET, "/api/v1/audit/verify"))
            .await
    }

    /// Verifies the chain and that the server's database holds these anchored checkpoints
    /// (at most [`portcullis_core::api::MAX_VERIFY_ANCHORS`]).
    pub async fn audit_verify_anchored(
        &self,
        anchors: Vec<portcullis_core::audit::AnchorRecord>,
    ) -> Result<VerifyResult, ClientError> {
        let body = portcullis_core::api::VerifyRequest { anchors };
        self.send(
            self.request(reqwest::Method::POST, "/api/v1/audit/verify")
                .json(&body),
        )
        .await
    }

    pub async fn audit_checkpoint(&self, reason: &str) -> Result<CheckpointCreated, ClientError> {
        let body = CheckpointRequest {
            reason: reason.to_owned(),
        };
        self.send(
            self.request(reqwest::Method::POST, "/api/v1/audit/checkpoints")
                .json(&body),
        )
        .await
    }
}

fn set_bearer(req: &mut reqwest::Request, token: &SecretString) -> Result<(), ClientError> {
    let value =
        reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| ClientError::Unexpected { status: 0 })?;
    req.headers_mut()
        .insert(reqwest::header::AUTHORIZATION, value);
    Ok(())
}

/// An error answer in the API's shape, or an unexpected one.
fn api_error(status: reqwest::StatusCode, bytes: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(b) => ClientError::Api {
            status: status.as_u16(),
            code: b.error.code,
            message: b.error.message,
        },
        Err(_) => ClientError::Unexpected {
            status: status.as_u16(),
        },
    }
}

fn transport_reason(e: &reqwest::Error) -> String {
    if e.is_connect() {
        "connection refused or unreachable".to_owned()
    } else if e.is_timeout() {
        "timed out".to_owned()
    } else {
        "connection error".to_owned()
    }
}

/// The answer of the device authorization endpoint (RFC 8628 §3.2).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct DeviceStart {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub expires_in: i64,
    pub interval: i64,
}

/// Tokens from the token endpoint.
#[derive(Clone, serde::Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
struct OAuthErrorBody {
    error: String,
    #[serde(default)]
    error_description: String,
}

/// The CLI's public client id.
pub const CLI_CLIENT_ID: &str = "portcullis-cli";
/// The device grant's `grant_type`.
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

impl Client {
    /// `POST /oauth2/...` with a form; OAuth errors become [`ClientError::Api`] whose code is
    /// the OAuth `error` (`authorization_pending`, `slow_down`, `invalid_grant`, …).
    async fn oauth_form<T: DeserializeOwned>(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<T, ClientError> {
        let resp = self
            .http
            .post(format!("{}{}", self.base, path))
            .form(form)
            .send()
            .await
            .map_err(|e| ClientError::Transport {
                url: self.base.clone(),
                reason: transport_reason(&e),
            })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| ClientError::Transport {
            url: self.base.clone(),
            reason: transport_reason(&e),
        })?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|_| ClientError::Unexpected {
                status: status.as_u16(),
            });
        }
        match serde_json::from_slice::<OAuthErrorBody>(&bytes) {
            Ok(b) => Err(ClientError::Api {
                status: status.as_u16(),
                code: b.error,
                message: b.error_description,
            }),
            Err(_) => Err(ClientError::Unexpected {
                status: status.as_u16(),
            }),
        }
    }

    /// Starts the device grant for the CLI.
    pub async fn device_authorize(&self) -> Result<DeviceStart, ClientError> {
        self.oauth_form(
            "/oauth2/device_authorization",
            &[("client_id", CLI_CLIENT_ID)],
        )
        .await
    }

    /// One poll for the device grant's tokens.
    pub async fn device_token(&self, device_code: &str) -> Result<Tokens, ClientError> {
        self.oauth_form(
            "/oauth2/token",
            &[
                ("grant_type", DEVICE_GRANT),
                ("client_id", CLI_CLIENT_ID),
                ("device_code", device_code),
            ],
        )
        .await
    }

    /// Revokes one of the CLI's tokens (RFC 7009; a refresh token ends its whole family).
    pub async fn revoke_cli_token(&self, token: &str) -> Result<(), ClientError> {
        let resp = self
            .http
            .post(format!("{}/oauth2/revoke", self.base))
            .form(&[("client_id", CLI_CLIENT_ID), ("token", token)])
            .send()
            .await
            .map_err(|e| ClientError::Transport {
                url: self.base.clone(),
                reason: transport_reason(&e),
            })?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(ClientError::Unexpected {
                status: resp.status().as_u16(),
            })
        }
    }

    /// Trades a refresh token for new tokens (the refresh token rotates: keep the new one).
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, ClientError> {
        self.oauth_form(
            "/oauth2/token",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", CLI_CLIENT_ID),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }
}
