//! The checks a configuration must pass before anything starts: every refusal names the key
//! and never echoes a secret value.

use super::*;

impl Config {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
        let export = self.audit_export()?;
        if let Some(ca) = &self.audit_export_ca {
            if !matches!(
                export,
                Some(portcullis_core::audit::export::ExportSink::Syslog { tls: true, .. })
            ) {
                return Err(ConfigError(
                    "audit_export_ca applies only to a syslog+tls:// audit_export".into(),
                ));
            }
            if !ca.is_file() {
                return Err(ConfigError(
                    "audit_export_ca must name a PEM file of certificates".into(),
                ));
            }
        }
        if self.audit_export_file_max_bytes < 4096 {
            return Err(ConfigError(
                "audit_export_file_max_bytes must be at least 4096".into(),
            ));
        }
        if !(1..=1000).contains(&self.audit_export_file_keep) {
            return Err(ConfigError(
                "audit_export_file_keep must be between 1 and 1000".into(),
            ));
        }
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
        self.change_cooling_off()?;
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
}
