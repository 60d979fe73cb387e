//! Start-up: configuration → data directory → master key → store → tenant → listener.
//!
//! Order matters for "a failed start changes nothing": the master key is proved against the
//! tenant before any event is written, and a `master.key` file created by this start is removed
//! again if it turns out not to be the tenant's key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::audit::NewAuditEvent;
use portcullis_store::{Change, CheckpointPolicy, Store, StoreError, StoreOptions};
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;
use tokio::net::TcpListener;

use crate::api::{self, AppState, ServerInfo};
use crate::config::Config;
use crate::secrets::{self, KeySource, SecretsError};

/// Options of `portcullis serve` that are not configuration.
#[derive(Debug, Default, Clone)]
pub struct BuildOptions {
    /// Write a newly created bootstrap token to this new file (0600) instead of the log.
    pub bootstrap_token_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot set up password hashing")]
    Passwords,
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("webauthn_origin cannot serve as a WebAuthn relying party")]
    Webauthn,
    #[error("cannot set up token signing")]
    Tokens,
    #[error("cannot set up alert delivery")]
    Alerts,
    #[error("cannot write the bootstrap token file {path}: {source}")]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A built server, bound and ready to run.
pub struct Application {
    listener: TcpListener,
    alerts: crate::alerts::Deliverer,
    router: axum::Router,
    expiry_wake: Arc<tokio::sync::Notify>,
    tokens: Arc<crate::keys::TokenSigner>,
    master: Arc<portcullis_store::MasterKey>,
    store: Store,
    port: u16,
    bootstrap_token: Option<SecretString>,
    /// Break-glass drill age and overdue-alert period.
    drill_policy: (time::Duration, time::Duration),
}

/// The setting under which the last effective (public) configuration is remembered, so a
/// change between starts is chained as a `config.changed` event.
const CONFIG_SETTING: &str = "server.config";

impl Application {
    pub async fn build(config: Config, options: BuildOptions) -> Result<Self, StartError> {
        let db_url = config.database_url();
        let sqlite_default = config.database_url.is_none();
        if sqlite_default {
            secrets::ensure_data_dir(&config.data_dir)?;
        }
        let store_opts = StoreOptions {
            checkpoints: CheckpointPolicy {
                every_events: config.audit_checkpoint_events,
                every: Duration::from_secs(config.audit_checkpoint_seconds),
            },
            alerts: portcullis_store::alerts::AlertSettings {
                aggregation_window: config.alert_aggregation_window()?,
            },
            ..Default::default()
        };
        let store = Store::open(&db_url, store_opts).await?;
        // The master key comes after the store: an unreachable database must not leave a
        // freshly generated key file behind.
        if config.master_key.is_none() {
            secrets::ensure_data_dir(&config.data_dir)?;
        }
        let (master, key_source) =
            secrets::load_or_create_master_key(config.master_key.as_ref(), &config.data_dir)?;
        let now = OffsetDateTime::now_utc();
        let tenant = match store.initialise_tenant(&master, now).await {
            Ok(t) => t,
            Err(e) => {
                if let KeySource::CreatedFile(path) = &key_source {
                    let _ = std::fs::remove_file(path);
                }
                return Err(e.into());
            }
        };

        let mut bootstrap_token = None;
        if let Some(token) = tenant.bootstrap_token {
            match &options.bootstrap_token_file {
                Some(path) => {
                    secrets::write_secret_file(path, &token).map_err(|source| {
                        StartError::TokenFile {
                            path: path.clone(),
                            source,
                        }
                    })?;
                    tracing::info!(path = %path.display(), "bootstrap token written (valid 24 hours, one use)");
                }
                None => {
                    // Printed once, by design: it is how the first administrator gets in.
                    tracing::info!("bootstrap token: {}", token.as_str());
                }
            }
            bootstrap_token = Some(SecretString::from(token.to_string()));
        }

        let public = config.public_view();
        let public_text = public.to_string();
        let previous = store.setting(CONFIG_SETTING).await?;
        let mut events = vec![
            NewAuditEvent::new("system", "server.started", "server").details(serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "backend": if store.is_postgres() { "postgres" } else { "sqlite" },
                "signing_key_id": tenant.signing_key.key_id,
            })),
        ];
        let change = if previous.as_deref() != Some(public_text.as_str()) {
            let before: serde_json::Value = previous
                .as_deref()
                .and_then(|p| serde_json::from_str(p).ok())
                .unwrap_or(serde_json::Value::Null);
            events.push(
                NewAuditEvent::new("system", "config.changed", "server")
                    .details(serde_json::json!({ "before": before, "after": public })),
            );
            Change::SetSetting {
                key: CONFIG_SETTING.to_owned(),
                value: public_text,
            }
        } else {
            Change::None
        };
        store.write(change, events).await?;
        // Channel configurations stored in clear by an older version are sealed now: the
        // migration could not (it has no key).
        let sealed = crate::alerts::seal_legacy_channels(&store, &master).await?;
        if sealed > 0 {
            tracing::info!(
                channels = sealed,
                "sealed alert channel configurations stored in clear"
            );
        }
        if sqlite_default {
            secrets::restrict_sqlite_files(&config.data_dir);
        }

        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Listen {
                    addr: config.listen,
                    source,
                })?;
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let info = Arc::new(ServerInfo {
            backend: if store.is_postgres() {
                "postgres"
            } else {
                "sqlite"
            },
            schema_version: portcullis_store::known_schema_version(store.is_postgres()),
        });
        let expiry_wake = Arc::new(tokio::sync::Notify::new());
        let tokens = Arc::new(
            crate::keys::TokenSigner::load(
                &store,
                &master,
                config.issuer(),
                time::Duration::seconds(config.access_token_seconds.into()),
                time::Duration::seconds(config.signing_key_grace_seconds.into()),
            )
            .await
            .map_err(|_| StartError::Tokens)?,
        );
        let master = Arc::new(master);
        let (drill_max_age, drill_every) = config.drill_policy()?;
        let state = AppState {
            store: store.clone(),
            info,
            master: master.clone(),
            passwords: crate::passwords::Passwords::new().map_err(|_| StartError::Passwords)?,
            lifetimes: config.lifetimes(),
            device: config.device(),
            webauthn: Arc::new(
                crate::webauthn::relying_party(&config.webauthn_origin()?)
                    .map_err(|_| StartError::Webauthn)?,
            ),
            tokens: tokens.clone(),
            expiry_wake: expiry_wake.clone(),
            ca: Arc::default(),
            breakglass: Arc::new(crate::breakglass::BreakGlassSettings::new(
                drill_max_age,
                drill_every,
            )),
        };
        crate::metrics::handle();
        let router = api::router(state, config.max_body_bytes);
        let alerts = crate::alerts::Deliverer::new(
            store.clone(),
            master.clone(),
            config.alert_max_attempts,
            config.sms_max_per_hour,
        )
        .map_err(|_| StartError::Alerts)?;
        Ok(Self {
            drill_policy: (drill_max_age, drill_every),
            listener,
            alerts,
            router,
            expiry_wake,
            tokens,
            master,
            store,
            port,
            bootstrap_token,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The bootstrap token, when this start created the tenant.
    pub fn bootstrap_token(&self) -> Option<&str> {
        self.bootstrap_token.as_ref().map(|t| t.expose_secret())
    }

    /// Serves until `shutdown` resolves, then drains connections and closes the store.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let worker = tokio::spawn(crate::expiry::run(
            self.store.clone(),
            self.expiry_wake.clone(),
            async move {
                let mut rx = stop_rx;
                let _ = rx.wait_for(|stop| *stop).await;
            },
        ));
        let mut keys_stop = stop_tx.subscribe();
        let keys = tokio::spawn(crate::keys::reload_loop(
            self.tokens.clone(),
            self.store.clone(),
            self.master.clone(),
            async move {
                let _ = keys_stop.wait_for(|stop| *stop).await;
            },
        ));
        let mut alerts_stop = stop_tx.subscribe();
        let alerts = tokio::spawn(self.alerts.run(async move {
            let _ = alerts_stop.wait_for(|stop| *stop).await;
        }));
        let mut drills_stop = stop_tx.subscribe();
        let (max_age, every) = self.drill_policy;
        let drills = tokio::spawn(crate::breakglass::drill_watch(
            self.store.clone(),
            max_age,
            every,
            async move {
                let _ = drills_stop.wait_for(|stop| *stop).await;
            },
        ));
        let result = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        let _ = stop_tx.send(true);
        let _ = worker.await;
        let _ = keys.await;
        let _ = alerts.await;
        let _ = drills.await;
        let stop = NewAuditEvent::new("system", "server.stopped", "server");
        if let Err(e) = self.store.append(stop).await {
            tracing::warn!(error = %e, "could not record server stop");
        }
        self.store.close().await;
        result
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
