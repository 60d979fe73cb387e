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
mod derived;
mod validate;

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
    "audit_export",
    "audit_export_ca",
    "audit_export_file_max_bytes",
    "audit_export_file_keep",
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
    "change_cooling_off",
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
    /// Stream every audit event to a SIEM: `syslog://host:port` (RFC 5424 over TCP),
    /// `syslog+tls://host:port` (over TLS, RFC 5425) or `file:///absolute/path` (JSON lines,
    /// rotated). Delivered in order from a cursor kept in the database, by one replica of the
    /// group at a time. Default: none.
    pub audit_export: Option<String>,
    /// PEM certificates trusted for `syslog+tls` instead of the public roots (a private CA).
    pub audit_export_ca: Option<PathBuf>,
    /// A `file://` export is rotated when it reaches this size. Default 100 MiB.
    pub audit_export_file_max_bytes: u64,
    /// Rotated export files kept (`audit.jsonl.1` is the newest). Default 10.
    pub audit_export_file_keep: u32,
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
    /// A weakening change of the PAM's own settings asked by the only person who can reach the
    /// top tier (nobody else could approve it) takes effect after this long, unless cancelled;
    /// it alerts when asked and when it takes effect (`24h`, `1h`; at least 1s, at most 30d).
    /// Default `24h`.
    pub change_cooling_off: String,
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
            audit_export: None,
            audit_export_ca: None,
            audit_export_file_max_bytes: 100 * 1024 * 1024,
            audit_export_file_keep: 10,
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
            change_cooling_off: "24h".into(),
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
mod tests;
