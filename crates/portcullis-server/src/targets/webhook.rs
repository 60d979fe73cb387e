//! The webhook connector: a grant or revoke is a signed JSON POST to the receiver's `url`; what
//! the receiver holds is read from its optional `observe_url`.
//!
//! Invariants:
//! - URLs are https, or http only on a loopback host (the alert channels' rule), and carry no
//!   credentials; redirects are not followed, so a signed request goes only where configured.
//! - Every request is signed with the target's secret as in alert webhooks
//!   ([`crate::workers::alerts::signature`]: `t=UNIX,v1=HEX` over `UNIX.BODY`); the body is
//!   serialised once and exactly that string is signed and sent. The key never appears in an
//!   error or in `Debug`.
//! - Operations carry their id as `idempotency-key`: a receiver applies each id at most once,
//!   so a retried operation changes nothing.
//! - The receiver's answers are not trusted: only the status is read from operations, and the
//!   observation body is read up to 4 MiB and must be `{"grants": [...]}`.
//! - A webhook has no notion of rights another grant keeps: `revoke` names the grant, and the
//!   receiver takes away what that grant gave.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{Held, TargetError, TargetGrant};
use crate::workers::alerts::signature;

/// Timeout of one request.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest observation body read.
const MAX_OBSERVE_BODY: usize = 4 * 1024 * 1024;

/// A webhook target.
pub struct Webhook {
    url: url::Url,
    observe_url: Option<url::Url>,
    key: SecretString,
    http: reqwest::Client,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url.as_str())
            .field(
                "observe_url",
                &self.observe_url.as_ref().map(|u| u.as_str()),
            )
            .finish_non_exhaustive()
    }
}

/// What `observe_url` answers (other fields ignored).
#[derive(Deserialize)]
struct Observed {
    grants: Vec<ObservedGrant>,
}

#[derive(Deserialize)]
struct ObservedGrant {
    person: String,
    target_grants: Vec<String>,
}

/// `u` if it is https, or http on a loopback host, without credentials.
pub(crate) fn check_url(field: &str, u: &str) -> Result<url::Url, TargetError> {
    let parsed =
        url::Url::parse(u).map_err(|_| TargetError::Config(format!("{field} is not a URL")))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(TargetError::Config(format!(
            "put no credentials in {field}; the target's secret signs every request"
        )));
    }
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if portcullis_core::oidc::is_loopback(&parsed) => Ok(parsed),
        _ => Err(TargetError::Config(format!(
            "{field} {u}: use https (http only on a loopback address)"
        ))),
    }
}

fn http_error(e: &reqwest::Error) -> TargetError {
    TargetError::Unreachable(crate::workers::alerts::http_error(e))
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Webhook {
    /// Checks `config` (`url`, optional `observe_url`) and the signing key (`secret`).
    pub fn new(
        config: &serde_json::Value,
        secret: Option<SecretString>,
    ) -> Result<Self, TargetError> {
        let url = config
            .get("url")
            .and_then(|u| u.as_str())
            .ok_or_else(|| TargetError::Config("url is required".into()))?;
        let url = check_url("url", url)?;
        let observe_url = match config.get("observe_url") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(u)) => Some(check_url("observe_url", u)?),
            Some(_) => return Err(TargetError::Config("observe_url is a URL string".into())),
        };
        let key = match secret {
            Some(k) if !k.expose_secret().is_empty() => k,
            _ => {
                return Err(TargetError::Config(
                    "a webhook target needs a secret (the key its requests are signed with)".into(),
                ));
            }
        };
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| TargetError::Config("cannot build an HTTP client".into()))?;
        Ok(Self {
            url,
            observe_url,
            key,
            http,
        })
    }

    /// The rights `g` means: its person holds each target-side grant.
    pub fn desired(&self, g: &TargetGrant) -> Vec<Held> {
        g.target_grants
            .iter()
            .map(|r| Held {
                holder: g.person.clone(),
                right: r.clone(),
            })
            .collect()
    }

    /// POSTs `{"op": op, "id": op_id, "grant": g}`, signed, with `op_id` as idempotency key.
    pub async fn send(&self, op: &str, g: &TargetGrant, op_id: &str) -> Result<(), TargetError> {
        let body = serde_json::to_string(&serde_json::json!({ "op": op, "id": op_id, "grant": g }))
            .map_err(|_| TargetError::Config("cannot encode the operation".into()))?;
        let sig = signature(self.key.expose_secret().as_bytes(), now_unix(), &body);
        let r = self
            .http
            .post(self.url.clone())
            .header("content-type", "application/json")
            .header("x-portcullis-signature", sig)
            .header("idempotency-key", op_id)
            .header("x-portcullis-operation", op)
            .body(body)
            .send()
            .await
            .map_err(|e| http_error(&e))?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(TargetError::Refused(format!(
                "HTTP {}",
                r.status().as_u16()
            )))
        }
    }

    /// What the receiver holds, from `observe_url` (signed GET over the empty body); `None`
    /// without `observe_url`.
    pub async fn observe(&self) -> Result<Option<Vec<Held>>, TargetError> {
        let Some(observe_url) = &self.observe_url else {
            return Ok(None);
        };
        let sig = signature(self.key.expose_secret().as_bytes(), now_unix(), "");
        let mut r = self
            .http
            .get(observe_url.clone())
            .header("x-portcullis-signature", sig)
            .send()
            .await
            .map_err(|e| http_error(&e))?;
        if !r.status().is_success() {
            return Err(TargetError::Refused(format!(
                "HTTP {}",
                r.status().as_u16()
            )));
        }
        let too_large = || {
            TargetError::Refused(format!(
                "observe_url answered more than {} MiB",
                MAX_OBSERVE_BODY >> 20
            ))
        };
        if r.content_length()
            .is_some_and(|n| n > MAX_OBSERVE_BODY as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = r.chunk().await.map_err(|e| http_error(&e))? {
            if body.len() + chunk.len() > MAX_OBSERVE_BODY {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let observed: Observed = serde_json::from_slice(&body).map_err(|_| {
            TargetError::Refused(
                "observe_url answered something that is not {\"grants\": [...]}".into(),
            )
        })?;
        let mut held: Vec<Held> = observed
            .grants
            .into_iter()
            .flat_map(|g| {
                let person = g.person;
                g.target_grants.into_iter().map(move |right| Held {
                    holder: person.clone(),
                    right,
                })
            })
            .collect();
        held.sort();
        held.dedup();
        Ok(Some(held))
    }

    /// With `observe_url`: reads it and reports a failure as a problem. Without it the target
    /// cannot be tested without sending an operation (which would change the receiver), so
    /// nothing is sent and no problem is reported.
    pub async fn test(&self) -> Result<Vec<String>, TargetError> {
        if self.observe_url.is_none() {
            return Ok(Vec::new());
        }
        match self.observe().await {
            Ok(_) => Ok(Vec::new()),
            Err(e) => Ok(vec![format!("observe_url: {e}")]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Option<SecretString> {
        Some(SecretString::from("0123456789abcdef"))
    }

    fn refused(config: serde_json::Value, secret: Option<SecretString>) -> bool {
        matches!(Webhook::new(&config, secret), Err(TargetError::Config(_)))
    }

    #[test]
    fn https_and_loopback_http_are_accepted() {
        for u in [
            "https://receiver.example/ops",
            "http://127.0.0.1:8099/ops",
            "http://[::1]:8099/ops",
            "http://localhost/ops",
        ] {
            assert!(
                Webhook::new(&serde_json::json!({ "url": u }), key()).is_ok(),
                "{u}"
            );
        }
        assert!(
            Webhook::new(
                &serde_json::json!({
                    "url": "http://127.0.0.1:8099/ops",
                    "observe_url": "http://127.0.0.1:8099/grants"
                }),
                key()
            )
            .is_ok()
        );
    }

    #[test]
    fn http_off_loopback_is_refused() {
        assert!(refused(
            serde_json::json!({"url": "http://receiver.example/ops"}),
            key()
        ));
        assert!(refused(
            serde_json::json!({"url": "http://10.0.0.1/ops"}),
            key()
        ));
        assert!(refused(
            serde_json::json!({
                "url": "https://receiver.example/ops",
                "observe_url": "http://receiver.example/grants"
            }),
            key()
        ));
        assert!(refused(
            serde_json::json!({"url": "ftp://receiver.example/ops"}),
            key()
        ));
    }

    #[test]
    fn userinfo_is_refused() {
        assert!(refused(
            serde_json::json!({"url": "https://u:p@receiver.example/ops"}),
            key()
        ));
        assert!(refused(
            serde_json::json!({"url": "https://u@receiver.example/ops"}),
            key()
        ));
        assert!(refused(
            serde_json::json!({
                "url": "https://receiver.example/ops",
                "observe_url": "https://u:p@receiver.example/grants"
            }),
            key()
        ));
    }

    #[test]
    fn missing_key_is_refused() {
        assert!(refused(
            serde_json::json!({"url": "https://receiver.example/ops"}),
            None
        ));
        assert!(refused(
            serde_json::json!({"url": "https://receiver.example/ops"}),
            Some(SecretString::from(""))
        ));
        assert!(refused(serde_json::json!({}), key()));
    }

    #[test]
    fn debug_shows_no_key() -> Result<(), TargetError> {
        let w = Webhook::new(
            &serde_json::json!({"url": "https://receiver.example/ops"}),
            key(),
        )?;
        assert!(!format!("{w:?}").contains("0123456789abcdef"));
        Ok(())
    }
}
