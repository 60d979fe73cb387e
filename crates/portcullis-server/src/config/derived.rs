//! What the server derives from a validated configuration: the public URL, proxies, limits,
//! lifetimes and the redacted view `config show` prints.

use super::*;

impl Config {
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

    /// Where the SIEM export delivers, if anywhere.
    pub fn audit_export(
        &self,
    ) -> Result<Option<portcullis_core::audit::export::ExportSink>, ConfigError> {
        let Some(raw) = &self.audit_export else {
            return Ok(None);
        };
        portcullis_core::audit::export::ExportSink::parse(raw)
            .map(Some)
            .map_err(|e| ConfigError(e.to_string()))
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

    /// The cooling-off of a lone top-tier person's weakening change in effect.
    pub fn change_cooling_off(&self) -> Result<time::Duration, ConfigError> {
        let bad = || {
            ConfigError(
                "change_cooling_off must be a duration such as 24h or 1h (at least 1s, at most 30d)"
                    .into(),
            )
        };
        let d =
            portcullis_core::roles::parse_duration(&self.change_cooling_off).map_err(|_| bad())?;
        if d < time::Duration::seconds(1) || d > time::Duration::days(30) {
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
            "audit_export": self.audit_export().ok().flatten().map(|s| s.name()),
            "audit_export_ca": self.audit_export_ca.as_ref().map(|p| p.display().to_string()),
            "audit_export_file_max_bytes": self.audit_export_file_max_bytes,
            "audit_export_file_keep": self.audit_export_file_keep,
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
            "change_cooling_off": self.change_cooling_off,
            "device_code_seconds": self.device_code_seconds,
            "refresh_idle_minutes": self.refresh_idle_minutes,
            "refresh_absolute_hours": self.refresh_absolute_hours,
        })
    }
}
