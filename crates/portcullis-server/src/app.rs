//! Start-up: configuration → TLS files → data directory → master key → store → tenant →
//! listener → public URL.
//!
//! Order matters for "a failed start changes nothing": the TLS files are checked before
//! anything is written, the master key is proved against the tenant before any event is
//! written, and a `master.key` file created by this start is removed again if it turns out not
//! to be the tenant's key. The public URL (issuer, WebAuthn origin, links) is known only once
//! the listener is bound, since by default it follows the bound port.
//!
//! The audit chain is checkpointed at the start (recording the cadence now in force) and at a
//! clean stop, so a stopped tenant always ends on a checkpoint; each checkpoint is anchored to
//! `audit_anchor_file` and `audit_anchor_webhook` when set.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::audit::NewAuditEvent;
use portcullis_store::{
    AnchorFile, AnchorSink, Change, CheckpointPolicy, Store, StoreError, StoreOptions,
};
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::http;
use crate::secrets::{self, KeySource, SecretsError};
use crate::state::{AppState, ServerInfo};

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
    #[error("public_url cannot serve as a WebAuthn relying party")]
    Webauthn,
    #[error(transparent)]
    Tls(#[from] crate::http::edge::tls::TlsError),
    #[error("cannot set up token signing")]
    Tokens,
    #[error("cannot set up alert delivery")]
    Alerts,
    #[error("cannot set up the audit anchor webhook")]
    AnchorWebhook,
    #[error(transparent)]
    AuditExport(#[from] crate::services::audit_export::SetupError),
    #[error("cannot write the bootstrap token file {path}: {source}")]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A built server, bound and ready to run.
pub struct Application {
    listener: TcpListener,
    refusals: Arc<crate::services::refusals::Refusals>,
    /// How long expired rows are kept before the sweeper deletes them.
    retention: portcullis_store::sweep::Retention,
    alerts: crate::workers::alerts::Deliverer,
    router: axum::Router,
    /// What every handler shares (a clone: the router holds its own).
    state: AppState,
    expiry_wake: Arc<tokio::sync::Notify>,
    tokens: Arc<crate::services::keys::TokenSigner>,
    master: Arc<portcullis_store::MasterKey>,
    store: Store,
    port: u16,
    bootstrap_token: Option<SecretString>,
    /// Break-glass drill age and overdue-alert period.
    drill_policy: (time::Duration, time::Duration),
    /// Connection limits, trusted proxies and TLS for the accept loop.
    edge: crate::http::edge::EdgeOptions,
    tls_reloader: Option<crate::http::edge::tls::TlsReloader>,
    rate_limits: crate::http::edge::limits::RateLimits,
    /// The URL people and clients use, without a trailing slash (the token issuer).
    public_url: String,
    anchor_webhook: Option<crate::services::anchor::WebhookWorker>,
    /// The SIEM export (`audit_export`), if configured.
    audit_export: Option<crate::workers::audit_export::Exporter>,
}

/// The setting under which the last effective (public) configuration is remembered, so a
/// change between starts is chained as a `config.changed` event.
const CONFIG_SETTING: &str = "server.config";

impl Application {
    pub async fn build(config: Config, options: BuildOptions) -> Result<Self, StartError> {
        // Unreadable or mismatched TLS files fail the start before anything is written.
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(crate::http::edge::tls::Tls::load(cert, key)?),
            _ => None,
        };
        let db_url = config.database_url();
        let sqlite_default = config.database_url.is_none();
        if sqlite_default {
            secrets::ensure_data_dir(&config.data_dir)?;
        }
        let mut anchors: Vec<Arc<dyn AnchorSink>> = Vec::new();
        if let Some(path) = &config.audit_anchor_file {
            anchors.push(Arc::new(AnchorFile::new(path)));
        }
        let mut anchor_webhook = None;
        if let Some(url) = config.anchor_webhook()? {
            let (sink, worker) =
                crate::services::anchor::webhook(url).map_err(|_| StartError::AnchorWebhook)?;
            anchors.push(sink);
            anchor_webhook = Some(worker);
        }
        let store_opts = StoreOptions {
            checkpoints: CheckpointPolicy {
                every_events: config.audit_checkpoint_events,
                every: Duration::from_secs(config.audit_checkpoint_seconds),
            },
            anchors,
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
        // ID tokens may be asked for in ES256 or RS256: a tenant without those keys gets them,
        // recorded by the start's event.
        let (key_changes, keys_created) = crate::services::keys::missing_keys(&store, &master, now)
            .await
            .map_err(|_| StartError::Tokens)?;
        let started = |created: &[serde_json::Value]| {
            let mut d = serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "backend": if store.is_postgres() { "postgres" } else { "sqlite" },
                "signing_key_id": tenant.signing_key.key_id,
            });
            if !created.is_empty() {
                d["signing_keys_created"] = created.into();
            }
            NewAuditEvent::new("system", "server.started", "server").details(d)
        };
        let mut events = vec![started(&keys_created)];
        let config_change = if previous.as_deref() != Some(public_text.as_str()) {
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
        // Checkpointed at once: the cadence this start writes under is on record before any
        // request is served.
        let mut changes = vec![config_change.clone()];
        changes.extend(key_changes);
        changes.push(Change::ForceCheckpoint);
        match store.write(Change::Many(changes), events.clone()).await {
            Ok(_) => {}
            // Another replica starting at once made a missing key first: start without.
            Err(portcullis_store::StoreError::Conflict(_)) if !keys_created.is_empty() => {
                events[0] = started(&[]);
                let change = Change::Many(vec![config_change, Change::ForceCheckpoint]);
                store.write(change, events).await?;
            }
            Err(e) => return Err(e.into()),
        }
        // Channel configurations stored in clear by an older version are sealed now: the
        // migration could not (it has no key).
        let sealed = crate::services::alerts::seal_legacy_channels(&store, &master).await?;
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
        let bound = listener.local_addr().map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
        let port = bound.port();
        let public_url = config.public_url_for(bound)?;
        let webauthn_origin = webauthn_origin(&public_url);
        let audit_export = audit_exporter(&config, &public_url)?;
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
            crate::services::keys::TokenSigner::load(
                &store,
                &master,
                public_url.as_str().trim_end_matches('/').to_owned(),
                time::Duration::seconds(config.access_token_seconds.into()),
                time::Duration::seconds(config.signing_key_grace_seconds.into()),
            )
            .await
            .map_err(|_| StartError::Tokens)?,
        );
        let master = Arc::new(master);
        let refusals = Arc::new(crate::services::refusals::Refusals::default());
        let (drill_max_age, drill_every) = config.drill_policy()?;
        let state = AppState::new(crate::state::Parts {
            store: store.clone(),
            info,
            master: master.clone(),
            passwords: crate::services::passwords::Passwords::new()
                .map_err(|_| StartError::Passwords)?,
            lifetimes: config.lifetimes(),
            device: config.device(),
            webauthn: Arc::new(
                crate::services::webauthn::relying_party(&webauthn_origin)
                    .map_err(|_| StartError::Webauthn)?,
            ),
            tokens: tokens.clone(),
            expiry_wake: expiry_wake.clone(),
            reviews_wake: Arc::default(),
            ca: Arc::default(),
            breakglass: Arc::new(crate::services::breakglass::BreakGlassSettings::new(
                drill_max_age,
                drill_every,
            )),
            refusals: refusals.clone(),
            caches: Arc::new(crate::state::caches::Caches::new(&store)),
            change_cooling_off: config.change_cooling_off()?,
        });
        crate::http::metrics::handle();
        let limits = config.connection_limits();
        let trusted_proxies = Arc::new(crate::http::edge::TrustedProxies::new(
            config.trusted_proxies()?,
        ));
        let rate_limits = crate::http::edge::limits::RateLimits::new(config.rate_limits());
        let router = http::router(
            state.clone(),
            &http::RouterOptions {
                max_body_bytes: config.max_body_bytes,
                body_timeout: limits.body_timeout,
                trusted_proxies: trusted_proxies.clone(),
                rate_limits: rate_limits.clone(),
            },
        );
        let (acceptor, tls_reloader) = match tls {
            Some(t) => (Some(t.acceptor), Some(t.reloader)),
            None => (None, None),
        };
        let alerts = crate::workers::alerts::Deliverer::new(
            store.clone(),
            master.clone(),
            config.alert_max_attempts,
            config.sms_max_per_hour,
        )
        .map_err(|_| StartError::Alerts)?;
        Ok(Self {
            retention: crate::workers::sweeper::retention(
                config.device().refresh.absolute,
                config.lifetimes().absolute,
            ),
            refusals,
            anchor_webhook,
            audit_export,
            drill_policy: (drill_max_age, drill_every),
            listener,
            alerts,
            router,
            state,
            expiry_wake,
            tokens,
            master,
            store,
            port,
            bootstrap_token,
            edge: crate::http::edge::EdgeOptions {
                limits,
                trusted_proxies,
                tls: acceptor,
            },
            tls_reloader,
            rate_limits,
            public_url: public_url.as_str().trim_end_matches('/').to_owned(),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The state the handlers share, for calling services in-process (tests, benches).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The URL people and clients use (the token issuer), without a trailing slash.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Reloads the TLS certificate from its files (what SIGHUP does); `None` without TLS.
    pub fn tls_reloader(&self) -> Option<crate::http::edge::tls::TlsReloader> {
        self.tls_reloader.clone()
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
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let worker = tokio::spawn(crate::workers::expiry::run(
            self.store.clone(),
            self.expiry_wake.clone(),
            async move {
                let mut rx = stop_rx;
                let _ = rx.wait_for(|stop| *stop).await;
            },
        ));
        let mut keys_stop = stop_tx.subscribe();
        let keys = tokio::spawn(crate::workers::keys::reload_loop(
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
        let drills = tokio::spawn(crate::workers::drills::drill_watch(
            self.store.clone(),
            max_age,
            every,
            async move {
                let _ = drills_stop.wait_for(|stop| *stop).await;
            },
        ));
        let engine = crate::services::targets::Engine::new(self.store.clone(), self.master.clone());
        let mut targets_stop = stop_tx.subscribe();
        let targets = tokio::spawn(crate::workers::targets::run(
            engine.clone(),
            self.store.clone(),
            async move {
                let _ = targets_stop.wait_for(|stop| *stop).await;
            },
        ));
        let mut reconcile_stop = stop_tx.subscribe();
        let reconciler = tokio::spawn(crate::workers::targets::reconcile_loop(
            engine,
            self.store.clone(),
            async move {
                let _ = reconcile_stop.wait_for(|stop| *stop).await;
            },
        ));
        let mut posture_stop = stop_tx.subscribe();
        let posture = tokio::spawn(crate::workers::posture::digest(
            self.state.clone(),
            async move {
                let _ = posture_stop.wait_for(|stop| *stop).await;
            },
        ));
        let mut reviews_stop = stop_tx.subscribe();
        let reviews = tokio::spawn(crate::workers::reviews::run(
            self.state.clone(),
            async move {
                let _ = reviews_stop.wait_for(|stop| *stop).await;
            },
        ));
        let mut governance_stop = stop_tx.subscribe();
        let governance = tokio::spawn(crate::workers::governance::run(
            self.state.clone(),
            async move {
                let _ = governance_stop.wait_for(|stop| *stop).await;
            },
        ));
        let mut sweeper_stop = stop_tx.subscribe();
        let sweeper = tokio::spawn(crate::workers::sweeper::run(
            self.store.clone(),
            self.retention,
            async move {
                let _ = sweeper_stop.wait_for(|stop| *stop).await;
            },
        ));
        let mut refusals_stop = stop_tx.subscribe();
        let refusals = tokio::spawn(crate::services::refusals::flusher(
            self.store.clone(),
            self.refusals.clone(),
            async move {
                let _ = refusals_stop.wait_for(|stop| *stop).await;
            },
        ));
        let mut hup_stop = stop_tx.subscribe();
        let hup = tokio::spawn(reload_on_sighup(self.tls_reloader.clone(), async move {
            let _ = hup_stop.wait_for(|stop| *stop).await;
        }));
        let mut sweep_stop = stop_tx.subscribe();
        let limits = self.rate_limits.clone();
        let sweep = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = every.tick() => limits.forget_idle(),
                    _ = sweep_stop.wait_for(|stop| *stop) => break,
                }
            }
        });
        // The webhook worker outlives the others: it still has the final checkpoint to send.
        let (anchor_stop_tx, anchor_stop_rx) = tokio::sync::oneshot::channel::<()>();
        let anchor_webhook = self.anchor_webhook.map(|w| {
            tokio::spawn(w.run(self.store.clone(), async move {
                let _ = anchor_stop_rx.await;
            }))
        });
        // The SIEM export outlives the others too: the final events go out before it stops.
        let (export_stop_tx, export_stop_rx) = tokio::sync::oneshot::channel::<()>();
        let audit_export = self.audit_export.map(|e| {
            tokio::spawn(e.run(self.store.clone(), async move {
                let _ = export_stop_rx.await;
            }))
        });
        let result =
            crate::http::edge::serve(self.listener, self.router, self.edge, shutdown).await;
        let _ = stop_tx.send(true);
        let _ = hup.await;
        let _ = sweep.await;
        let _ = worker.await;
        let _ = keys.await;
        let _ = alerts.await;
        let _ = drills.await;
        let _ = refusals.await;
        let _ = sweeper.await;
        let _ = posture.await;
        let _ = reviews.await;
        let _ = governance.await;
        let _ = targets.await;
        let _ = reconciler.await;
        // A stopped tenant ends on a checkpoint (anchored before this write returns), so
        // nothing after the last checkpoint is ever a stopped server's tail.
        let stop = NewAuditEvent::new("system", "server.stopped", "server");
        if let Err(e) = self.store.write(Change::ForceCheckpoint, vec![stop]).await {
            tracing::warn!(error = %e, "could not record server stop");
        }
        let _ = anchor_stop_tx.send(());
        let _ = export_stop_tx.send(());
        if let Some(w) = anchor_webhook {
            let _ = w.await;
        }
        if let Some(e) = audit_export {
            let _ = e.await;
        }
        self.store.close().await;
        result
    }
}

/// The SIEM exporter `config` asks for, named for this deployment's public host.
fn audit_exporter(
    config: &Config,
    public_url: &url::Url,
) -> Result<Option<crate::workers::audit_export::Exporter>, StartError> {
    use crate::services::audit_export::{Settings, Sink};
    let Some(sink) = config.audit_export()? else {
        return Ok(None);
    };
    let name = sink.name();
    let sink = Sink::new(Settings {
        sink,
        ca: config.audit_export_ca.clone(),
        file_max_bytes: config.audit_export_file_max_bytes,
        file_keep: config.audit_export_file_keep,
        hostname: public_url.host_str().unwrap_or("-").to_owned(),
    })?;
    // This replica, for the export's lease: unique per process.
    let holder = format!(
        "{}-{}",
        std::process::id(),
        hex::encode(rand::random::<[u8; 8]>())
    );
    Ok(Some(crate::workers::audit_export::Exporter {
        sink,
        name,
        holder,
    }))
}

/// The WebAuthn origin for `public`: itself when it names a host; otherwise (an address
/// derived from a non-loopback IP listener) passkeys cannot work there, because WebAuthn needs a
/// host name, so the relying party is `localhost` on the same port and a warning says so.
fn webauthn_origin(public: &url::Url) -> url::Url {
    if matches!(public.host(), Some(url::Host::Domain(_))) {
        return public.clone();
    }
    tracing::warn!(
        public_url = %public,
        "public_url is not set and the listener is not on a loopback address: links and the issuer use the address, and passkeys will not work (WebAuthn needs a host name); set public_url"
    );
    let mut local = public.clone();
    let _ = local.set_host(Some("localhost"));
    local
}

/// Reloads the TLS certificate on every SIGHUP until `stop` resolves. Without TLS, SIGHUP is
/// logged and ignored (rather than ending the process, its default).
async fn reload_on_sighup(
    reloader: Option<crate::http::edge::tls::TlsReloader>,
    stop: impl std::future::Future<Output = ()>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; the TLS certificate will not be reloaded");
        return;
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            got = hup.recv() => {
                if got.is_none() {
                    return;
                }
                match &reloader {
                    // The reloader logs the outcome either way.
                    Some(r) => { let _ = r.reload(); }
                    None => tracing::info!("SIGHUP: no TLS certificate to reload"),
                }
            }
            () = &mut stop => return,
        }
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
