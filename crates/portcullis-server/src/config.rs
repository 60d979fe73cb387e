//! Server configuration: a TOML file plus `PORTCULLIS_*` environment variables (the
//! environment wins). Unknown keys are refused so a typo never silently means "default".
//! Secrets (`master_key`, a `database_url` with a password) are `SecretString`s: never logged,
//! never printed by `Debug`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pretty" => Ok(Self::Pretty),
            "json" => Ok(Self::Json),
            _ => Err(format!(
                "unknown log format {s:?} (expected pretty or json)"
            )),
        }
    }
}

/// The keys a configuration file or `PORTCULLIS_<KEY>` may set.
pub const CONFIG_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "database_url",
    "master_key",
    "log_format",
    "audit_checkpoint_events",
    "audit_checkpoint_seconds",
    "audit_anchor_file",
    "audit_anchor_webhook",
    "max_body_bytes",
    "public_url",
    "webauthn_origin",
    "tls_cert",
    "tls_key",
    "trusted_proxies",
    "header_read_timeout_seconds",
    "body_timeout_seconds",
    "idle_timeout_seconds",
    "max_connections_per_address",
    "rate_limit_per_address",
    "rate_limit_per_address_burst",
    "rate_limit_global",
    "rate_limit_global_burst",
    "session_idle_minutes",
    "session_absolute_hours",
    "signin_step_seconds",
    "access_token_seconds",
    "signing_key_grace_seconds",
    "device_code_seconds",
    "refresh_idle_minutes",
    "refresh_absolute_hours",
    "alert_max_attempts",
    "alert_aggregation_window",
    "sms_max_per_hour",
    "breakglass_drill_max_age",
    "breakglass_drill_alert_every",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Where the SQLite database and `master.key` live. Default `./portcullis-data`.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://…`. Default: SQLite in the data directory.
    pub database_url: Option<SecretString>,
    /// Base64 of 32 bytes. Default: `master.key` in the data directory (created on first start).
    pub master_key: Option<SecretString>,
    pub log_format: LogFormat,
    /// Write a signed audit checkpoint after this many events…
    pub audit_checkpoint_events: i64,
    /// …or after this many seconds, whichever comes first.
    pub audit_checkpoint_seconds: u64,
    /// Append every audit checkpoint (one fsynced JSON line) to this file, meant to live on
    /// other storage than the database, for `portcullis audit verify --anchor FILE`. Several
    /// replicas may each have their own file or share one on a local filesystem. Default: none.
    pub audit_anchor_file: Option<PathBuf>,
    /// Also POST every checkpoint's anchor record (JSON) to this URL (`https`, or `http` to a
    /// loopback address); best effort with retries. A secret: it may carry a token. Default:
    /// none.
    pub audit_anchor_webhook: Option<SecretString>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The one URL people and clients use to reach this server (`https://pam.example.com`):
    /// the token issuer, discovery, the WebAuthn origin (its host is the relying-party id, so
    /// passkeys only work there) and links in mail. Plain `http` is accepted for `localhost`
    /// only. Default: follows the bound listener (see [`Config::public_url_for`]).
    pub public_url: Option<String>,
    /// The old name of `public_url`, still accepted; setting both to different values is refused.
    pub webauthn_origin: Option<String>,
    /// PEM certificate chain served directly over TLS (with `tls_key`); reloaded on SIGHUP.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Reverse proxies (CIDRs) whose `X-Forwarded-For` is believed; from anyone else it is
    /// ignored. A list, or one comma-separated string. Default: none.
    pub trusted_proxies: ProxyList,
    /// A request head (and a TLS handshake, and a new connection's first request) must arrive
    /// within this long; on HTTP/1.1 the wait for the next request on a kept-alive connection
    /// counts too. Default 10.
    pub header_read_timeout_seconds: u64,
    /// A request body must arrive completely within this long of its head. Default 30.
    pub body_timeout_seconds: u64,
    /// A connection with no request in flight for this long is closed. Default 60.
    pub idle_timeout_seconds: u64,
    /// Live connections one client address may hold (IPv6: per /64; trusted proxies are not
    /// capped). Default 128.
    pub max_connections_per_address: u32,
    /// Requests per second one client address may make, sign-in excepted; 0 turns the limit
    /// off. Default 200.
    pub rate_limit_per_address: u32,
    /// How many requests one address may make at once before `rate_limit_per_address` paces
    /// it. Default 1000.
    pub rate_limit_per_address_burst: u32,
    /// Requests per second the whole server takes, sign-in excepted; 0 turns the limit off.
    /// Default 20000.
    pub rate_limit_global: u32,
    /// Burst allowance of `rate_limit_global`. Default 40000.
    pub rate_limit_global_burst: u32,
    /// A session unused for this long ends. Default 60.
    pub session_idle_minutes: u32,
    /// A session ends this long after sign-in, however busy. Default 12.
    pub session_absolute_hours: u32,
    /// How long a half-finished sign-in (second factor pending) or a WebAuthn ceremony may
    /// take. Default 300.
    pub signin_step_seconds: u32,
    /// Lifetime of an access token (shorter when a role it carries ends sooner). Default 600.
    pub access_token_seconds: u32,
    /// After a signing-key rotation the old key stays in JWKS for `access_token_seconds` plus
    /// this allowance for verifiers' clocks. Default 60.
    pub signing_key_grace_seconds: u32,
    /// Delivery attempts of an alert before it is dead-lettered (backoff 5 s, 10 s, 20 s, …
    /// capped at an hour). Default 8.
    pub alert_max_attempts: u32,
    /// Alerts of one rule for one target (or custom-rule key) after the first within this
    /// long are not delivered one by one but summarised in one delivery per channel when the
    /// window closes (`90s`, `5m`, `1h`; at most 1 day). Default `5m`.
    pub alert_aggregation_window: String,
    /// Most messages sent per hour to each number of an SMS channel; more are not sent but
    /// recorded as suppressed, and the next message says how many. Default 10.
    pub sms_max_per_hour: u32,
    /// A break-glass account whose last drill (or creation) is older than this is reported by
    /// `/readyz` and alerted (`90s`, `15m`, `8h`, `30d`). Default `90d`.
    pub breakglass_drill_max_age: String,
    /// How often the overdue-drill alert repeats while a drill stays overdue. Default `24h`.
    pub breakglass_drill_alert_every: String,
    /// How long a device code (`portcullis login` in a browser) waits for approval. Default 600.
    pub device_code_seconds: u32,
    /// A refresh token unused this long ends (each refresh starts a new period). Default 720.
    pub refresh_idle_minutes: u32,
    /// Everything refreshed since one sign-in ends this long after it. Default 168 (7 days).
    pub refresh_absolute_hours: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("portcullis-data"),
            database_url: None,
            master_key: None,
            log_format: LogFormat::Pretty,
            audit_checkpoint_events: 1000,
            audit_checkpoint_seconds: 60,
            audit_anchor_file: None,
            audit_anchor_webhook: None,
            max_body_bytes: 64 * 1024,
            public_url: None,
            webauthn_origin: None,
            tls_cert: None,
            tls_key: None,
            trusted_proxies: ProxyList::default(),
            header_read_timeout_seconds: 10,
            body_timeout_seconds: 30,
            idle_timeout_seconds: 60,
            max_connections_per_address: 128,
            rate_limit_per_address: 200,
            rate_limit_per_address_burst: 1000,
            rate_limit_global: 20_000,
            rate_limit_global_burst: 40_000,
            session_idle_minutes: 60,
            session_absolute_hours: 12,
            signin_step_seconds: 300,
            access_token_seconds: 600,
            signing_key_grace_seconds: 60,
            alert_max_attempts: 8,
            alert_aggregation_window: "5m".into(),
            sms_max_per_hour: 10,
            breakglass_drill_max_age: "90d".into(),
            breakglass_drill_alert_every: "24h".into(),
            device_code_seconds: 600,
            refresh_idle_minutes: 720,
            refresh_absolute_hours: 168,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

/// `trusted_proxies`: a TOML list, or one comma-separated string (what an environment
/// variable holds).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(untagged)]
pub enum ProxyList {
    #[default]
    None,
    List(Vec<String>),
    Text(String),
}

impl ProxyList {
    /// The entries, trimmed, empty ones skipped.
    pub fn entries(&self) -> impl Iterator<Item = &str> {
        let items: Vec<&str> = match self {
            ProxyList::None => Vec::new(),
            ProxyList::List(v) => v.iter().map(String::as_str).collect(),
            ProxyList::Text(t) => t.split(',').collect(),
        };
        items.into_iter().map(str::trim).filter(|e| !e.is_empty())
    }
}

impl From<Vec<&str>> for ProxyList {
    fn from(v: Vec<&str>) -> Self {
        ProxyList::List(v.into_iter().map(str::to_owned).collect())
    }
}

impl Config {
    /// Loads defaults, then `file` (if given; it must exist), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, Env::prefixed("PORTCULLIS_").only(CONFIG_KEYS))
    }

    fn load_from(file: Option<&Path>, env: Env) -> Result<Self, ConfigError> {
        let mut fig = Figment::new();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError(format!(
                    "configuration file {} does not exist",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        let config: Config = fig
            .merge(env)
            .extract()
            .map_err(|e| ConfigError(describe(&e)))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.audit_checkpoint_events < 1 {
            return Err(ConfigError(
                "audit_checkpoint_events must be at least 1".into(),
            ));
        }
        if self.audit_checkpoint_seconds < 1 {
            return Err(ConfigError(
                "audit_checkpoint_seconds must be at least 1".into(),
            ));
        }
        if self
            .audit_anchor_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty() || p.is_dir())
        {
            return Err(ConfigError(
                "audit_anchor_file must name a file (it is created if missing)".into(),
            ));
        }
        self.anchor_webhook()?;
        if self.max_body_bytes < 1024 {
            return Err(ConfigError("max_body_bytes must be at least 1024".into()));
        }
        self.configured_public_url()?;
        self.trusted_proxies()?;
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError(
                "tls_cert and tls_key must be set together (or neither, for plain HTTP)".into(),
            ));
        }
        for (key, value, max) in [
            (
                "header_read_timeout_seconds",
                self.header_read_timeout_seconds,
                300,
            ),
            ("body_timeout_seconds", self.body_timeout_seconds, 3600),
            ("idle_timeout_seconds", self.idle_timeout_seconds, 3600),
        ] {
            if !(1..=max).contains(&value) {
                return Err(ConfigError(format!("{key} must be between 1 and {max}")));
            }
        }
        if self.max_connections_per_address < 1 {
            return Err(ConfigError(
                "max_connections_per_address must be at least 1".into(),
            ));
        }
        for (rate, burst, key) in [
            (
                self.rate_limit_per_address,
                self.rate_limit_per_address_burst,
                "rate_limit_per_address_burst",
            ),
            (
                self.rate_limit_global,
                self.rate_limit_global_burst,
                "rate_limit_global_burst",
            ),
        ] {
            if rate > 0 && burst < 1 {
                return Err(ConfigError(format!("{key} must be at least 1")));
            }
        }
        if !(1..=24 * 60).contains(&self.session_idle_minutes) {
            return Err(ConfigError(
                "session_idle_minutes must be between 1 and 1440".into(),
            ));
        }
        if !(1..=7 * 24).contains(&self.session_absolute_hours) {
            return Err(ConfigError(
                "session_absolute_hours must be between 1 and 168".into(),
            ));
        }
        if !(10..=86_400).contains(&self.access_token_seconds) {
            return Err(ConfigError(
                "access_token_seconds must be between 10 and 86400".into(),
            ));
        }
        if !(1..=1800).contains(&self.device_code_seconds) {
            return Err(ConfigError(
                "device_code_seconds must be between 1 and 1800".into(),
            ));
        }
        if !(1..=30 * 24 * 60).contains(&self.refresh_idle_minutes) {
            return Err(ConfigError(
                "refresh_idle_minutes must be between 1 and 43200".into(),
            ));
        }
        if !(1..=90 * 24).contains(&self.refresh_absolute_hours) {
            return Err(ConfigError(
                "refresh_absolute_hours must be between 1 and 2160".into(),
            ));
        }
        if !(1..=50).contains(&self.alert_max_attempts) {
            return Err(ConfigError(
                "alert_max_attempts must be between 1 and 50".into(),
            ));
        }
        self.alert_aggregation_window()?;
        if !(1..=1000).contains(&self.sms_max_per_hour) {
            return Err(ConfigError(
                "sms_max_per_hour must be between 1 and 1000".into(),
            ));
        }
        self.drill_policy()?;
        if self.signing_key_grace_seconds > 3600 {
            return Err(ConfigError(
                "signing_key_grace_seconds must be at most 3600".into(),
            ));
        }
        if !(1..=900).contains(&self.signin_step_seconds) {
            return Err(ConfigError(
                "signin_step_seconds must be between 1 and 900".into(),
            ));
        }
        if let Some(url) = &self.database_url {
            let u = url.expose_secret();
            if !(u.starts_with("sqlite:")
                || u.starts_with("postgres://")
                || u.starts_with("postgresql://"))
            {
                return Err(ConfigError(
                    "database_url must start with sqlite:, postgres:// or postgresql://".into(),
                ));
            }
        }
        Ok(())
    }

    /// The configured public URL (`public_url`, or its old name `webauthn_origin`), checked:
    /// `https`, or `http` on `localhost`; no path, query or fragment; a host that can serve as
    /// the WebAuthn relying-party id. `None` when neither is set.
    pub fn configured_public_url(&self) -> Result<Option<url::Url>, ConfigError> {
        let (key, value) = match (&self.public_url, &self.webauthn_origin) {
            (None, None) => return Ok(None),
            (Some(p), None) => ("public_url", p),
            (None, Some(w)) => ("webauthn_origin (now public_url)", w),
            (Some(p), Some(w)) => {
                if p.trim_end_matches('/') != w.trim_end_matches('/') {
                    return Err(ConfigError(
                        "public_url and webauthn_origin (its old name) are both set, to different values; keep only public_url".into(),
                    ));
                }
                ("public_url", p)
            }
        };
        let bad = |why: &str| ConfigError(format!("{key} {why}"));
        let u = url::Url::parse(value)
            .map_err(|_| bad("must be a URL such as https://pam.example.com"))?;
        let host = match u.host() {
            Some(url::Host::Domain(h)) => h.to_owned(),
            _ => return Err(bad("must name a host by its DNS name (not an IP address)")),
        };
        match u.scheme() {
            "https" => {}
            "http" if host == "localhost" => {}
            _ => return Err(bad("must use https (http only for localhost)")),
        }
        if u.path() != "/" || u.query().is_some() || u.fragment().is_some() {
            return Err(bad(
                "must be an origin only, without path, query or fragment",
            ));
        }
        Ok(Some(u))
    }

    /// The public URL in effect for a server bound to `bound`: the configured one, else one
    /// that follows the listener: `http://localhost:PORT` for a loopback or unspecified
    /// address (WebAuthn needs a host name, not an IP), else `http://IP:PORT`; `https` when
    /// TLS is served directly.
    pub fn public_url_for(&self, bound: SocketAddr) -> Result<url::Url, ConfigError> {
        if let Some(u) = self.configured_public_url()? {
            return Ok(u);
        }
        let scheme = if self.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        let ip = bound.ip().to_canonical();
        let host = if ip.is_loopback() || ip.is_unspecified() {
            "localhost".to_owned()
        } else {
            match ip {
                IpAddr::V4(a) => a.to_string(),
                IpAddr::V6(a) => format!("[{a}]"),
            }
        };
        url::Url::parse(&format!("{scheme}://{host}:{}", bound.port()))
            .map_err(|_| ConfigError(format!("cannot form a public URL for {bound}")))
    }

    /// The trusted proxies, parsed (a bare address is a /32 or /128).
    pub fn trusted_proxies(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        self.trusted_proxies
            .entries()
            .map(|e| {
                e.parse::<ipnet::IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(ipnet::IpNet::from))
                    .map(|n| n.trunc())
                    .map_err(|_| {
                        ConfigError(format!(
                            "trusted_proxies: {e:?} is not an address or CIDR such as 10.0.0.0/8"
                        ))
                    })
            })
            .collect()
    }

    /// Timeouts and caps of the connection layer (crate::http::edge).
    pub fn connection_limits(&self) -> crate::http::edge::ConnectionLimits {
        crate::http::edge::ConnectionLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_seconds),
            body_timeout: Duration::from_secs(self.body_timeout_seconds),
            idle_timeout: Duration::from_secs(self.idle_timeout_seconds),
            max_connections_per_address: self.max_connections_per_address as usize,
        }
    }

    /// The request rate limits (crate::http::edge::limits); a rate of 0 is off.
    pub fn rate_limits(&self) -> crate::http::edge::limits::RateLimitSettings {
        crate::http::edge::limits::RateLimitSettings {
            per_address: (
                self.rate_limit_per_address,
                self.rate_limit_per_address_burst,
            ),
            global: (self.rate_limit_global, self.rate_limit_global_burst),
        }
    }

    /// The anchor webhook URL, checked: `https`, or `http` only to a loopback address.
    pub fn anchor_webhook(&self) -> Result<Option<url::Url>, ConfigError> {
        let Some(raw) = &self.audit_anchor_webhook else {
            return Ok(None);
        };
        // The value may hold a token: never quoted in the error.
        let bad = || {
            ConfigError(
                "audit_anchor_webhook must be an https URL (http only to a loopback address)"
                    .into(),
            )
        };
        let u = url::Url::parse(raw.expose_secret()).map_err(|_| bad())?;
        match u.scheme() {
            "https" => {}
            "http" if portcullis_core::oidc::is_loopback(&u) => {}
            _ => return Err(bad()),
        }
        Ok(Some(u))
    }

    /// The alert aggregation window in effect.
    pub fn alert_aggregation_window(&self) -> Result<time::Duration, ConfigError> {
        let bad = || {
            ConfigError(
                "alert_aggregation_window must be a duration such as 90s, 5m or 1h (at most 1d)"
                    .into(),
            )
        };
        let d = portcullis_core::roles::parse_duration(&self.alert_aggregation_window)
            .map_err(|_| bad())?;
        if d > time::Duration::days(1) {
            return Err(bad());
        }
        Ok(d)
    }

    /// The break-glass drill age and alert period in effect.
    pub fn drill_policy(&self) -> Result<(time::Duration, time::Duration), ConfigError> {
        let parse = |key: &str, v: &str| {
            portcullis_core::roles::parse_duration(v).map_err(|_| {
                ConfigError(format!(
                    "{key} must be a duration such as 90s, 15m, 8h or 90d (at most 3650d)"
                ))
            })
        };
        Ok((
            parse("breakglass_drill_max_age", &self.breakglass_drill_max_age)?,
            parse(
                "breakglass_drill_alert_every",
                &self.breakglass_drill_alert_every,
            )?,
        ))
    }

    /// Session and sign-in lifetimes in effect.
    pub fn lifetimes(&self) -> portcullis_core::session::SessionLifetimes {
        use time::Duration;
        portcullis_core::session::SessionLifetimes {
            idle: Duration::minutes(self.session_idle_minutes.into()),
            absolute: Duration::hours(self.session_absolute_hours.into()),
            pending_signin: Duration::seconds(self.signin_step_seconds.into()),
            ..Default::default()
        }
    }

    /// Device-grant and refresh-token settings in effect.
    pub fn device(&self) -> crate::services::device::DeviceSettings {
        use time::Duration;
        crate::services::device::DeviceSettings {
            code_lifetime: Duration::seconds(self.device_code_seconds.into()),
            refresh: portcullis_core::device::RefreshLifetimes {
                idle: Duration::minutes(self.refresh_idle_minutes.into()),
                absolute: Duration::hours(self.refresh_absolute_hours.into()),
            },
        }
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.expose_secret().to_owned(),
            None => format!("sqlite://{}", self.data_dir.join("portcullis.db").display()),
        }
    }

    /// The effective configuration without secrets, for logs and the `config.changed` event.
    pub fn public_view(&self) -> serde_json::Value {
        serde_json::json!({
            "listen": self.listen.to_string(),
            "data_dir": self.data_dir.display().to_string(),
            "database": redact_url(&self.database_url()),
            "master_key_source": if self.master_key.is_some() { "environment_or_config" } else { "master.key file" },
            "audit_checkpoint_events": self.audit_checkpoint_events,
            "audit_checkpoint_seconds": self.audit_checkpoint_seconds,
            "audit_anchor_file": self.audit_anchor_file.as_ref().map(|p| p.display().to_string()),
            // Origin only: the rest of the URL may carry a token.
            "audit_anchor_webhook": self.anchor_webhook().ok().flatten().map(|u| u.origin().ascii_serialization()),
            "max_body_bytes": self.max_body_bytes,
            "public_url": self.public_url.as_ref().or(self.webauthn_origin.as_ref()),
            "tls_cert": self.tls_cert.as_ref().map(|p| p.display().to_string()),
            "tls_key": self.tls_key.as_ref().map(|p| p.display().to_string()),
            "trusted_proxies": self.trusted_proxies.entries().collect::<Vec<_>>(),
            "header_read_timeout_seconds": self.header_read_timeout_seconds,
            "body_timeout_seconds": self.body_timeout_seconds,
            "idle_timeout_seconds": self.idle_timeout_seconds,
            "max_connections_per_address": self.max_connections_per_address,
            "rate_limit_per_address": self.rate_limit_per_address,
            "rate_limit_per_address_burst": self.rate_limit_per_address_burst,
            "rate_limit_global": self.rate_limit_global,
            "rate_limit_global_burst": self.rate_limit_global_burst,
            "session_idle_minutes": self.session_idle_minutes,
            "session_absolute_hours": self.session_absolute_hours,
            "signin_step_seconds": self.signin_step_seconds,
            "access_token_seconds": self.access_token_seconds,
            "signing_key_grace_seconds": self.signing_key_grace_seconds,
            "alert_max_attempts": self.alert_max_attempts,
            "alert_aggregation_window": self.alert_aggregation_window,
            "sms_max_per_hour": self.sms_max_per_hour,
            "breakglass_drill_max_age": self.breakglass_drill_max_age,
            "breakglass_drill_alert_every": self.breakglass_drill_alert_every,
            "device_code_seconds": self.device_code_seconds,
            "refresh_idle_minutes": self.refresh_idle_minutes,
            "refresh_absolute_hours": self.refresh_absolute_hours,
        })
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((creds, host)) = rest.rsplit_once('@')
    {
        let user = creds.split(':').next().unwrap_or("");
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_owned()
}

/// A figment error in one line, naming the key and the source but never the value.
fn describe(e: &figment::Error) -> String {
    let mut parts = Vec::new();
    for err in e.clone() {
        let mut s = match &err.kind {
            figment::error::Kind::UnknownField(f, _) => format!("unknown key `{f}`"),
            figment::error::Kind::InvalidType(actual, expected) => {
                format!("invalid type: found {actual}, expected {expected}")
            }
            figment::error::Kind::InvalidValue(_, expected) => {
                format!("invalid value, expected {expected}")
            }
            // Parser messages quote the offending source line, which may hold a secret: keep
            // the position and the reason, drop the excerpt, and keep it to one line.
            figment::error::Kind::Message(m) => m
                .lines()
                .map(str::trim)
                .filter(|l| {
                    !l.is_empty()
                        && !l.starts_with('|')
                        && !l.starts_with(|c: char| c.is_ascii_digit())
                })
                .collect::<Vec<_>>()
                .join(": "),
            other => other.to_string(),
        };
        if !err.path.is_empty() {
            s = format!("{}: {s}", err.path.join("."));
        }
        if let Some(md) = &err.metadata {
            s = match &md.source {
                Some(src) => format!("{s} (in {src})"),
                None => format!("{s} (in {})", md.name),
            };
        }
        parts.push(s);
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
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
}
