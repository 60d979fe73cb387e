//! Access tokens: their claims and the rule for their lifetime.
//!
//! Invariants:
//! - An access token never outlives the grants whose claims it carries (invariant 3): its
//!   `exp` is the earlier of the configured lifetime and the earliest end among its roles.
//! - Tokens name their audience, issuer, a unique `jti` (for revocation), and the
//!   authentication behind them (`amr`, `acr`), so a relying party can require a strength.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::session::AuthStrength;

/// A role held when the token was issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleClaim {
    pub role: String,
    pub scope: String,
    /// Unix seconds; absent for a permanent assignment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
}

/// The claims of an access token (a JWT signed with EdDSA).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    pub client_id: String,
    /// Roles in effect (active assignments and activations) with their scopes.
    pub roles: Vec<RoleClaim>,
    /// Application permissions consented to this client (service accounts).
    #[serde(default)]
    pub permissions: Vec<String>,
    /// How the subject authenticated (RFC 8176 values where they exist).
    pub amr: Vec<String>,
    /// The authentication strength: `password`, `mfa`, `phishing_resistant`, or
    /// `client_credentials` for a service account.
    pub acr: String,
    /// When the person last proved their strongest factor (Unix seconds; OIDC `auth_time`),
    /// for step-up checks. Absent for service accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The OAuth scopes granted (tokens issued to OpenID Connect clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// The claims of an OpenID Connect ID token (signed like access tokens, `typ: JWT`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    pub sub: String,
    /// The client id.
    pub aud: String,
    pub azp: String,
    pub iat: i64,
    /// Never later than the access token issued with it.
    pub exp: i64,
    pub auth_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub acr: String,
    pub amr: Vec<String>,
    /// The session the person signed in with (OIDC front-channel `sid`).
    pub sid: String,
    /// Roles in effect at issuance, as in the access token.
    pub roles: Vec<RoleClaim>,
    /// `profile` scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// `email` scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

/// When a token issued at `now` must expire: never later than `now + lifetime` nor than the
/// earliest end among the grants it carries (`None` = permanent).
pub fn access_token_expiry(
    now: OffsetDateTime,
    lifetime: Duration,
    grant_ends: impl IntoIterator<Item = Option<OffsetDateTime>>,
) -> OffsetDateTime {
    grant_ends
        .into_iter()
        .flatten()
        .fold(now + lifetime, |earliest, end| earliest.min(end))
}

/// `amr` values for a session of the given strength.
pub fn amr_for(strength: AuthStrength) -> Vec<String> {
    match strength {
        AuthStrength::Password => vec!["pwd".into()],
        AuthStrength::Mfa => vec!["pwd".into(), "otp".into(), "mfa".into()],
        AuthStrength::PhishingResistant => vec!["hwk".into(), "user".into(), "mfa".into()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time")
    }

    #[test]
    fn expiry_never_passes_the_earliest_grant() {
        let now = t0();
        let ten = Duration::minutes(10);
        assert_eq!(access_token_expiry(now, ten, []), now + ten);
        assert_eq!(access_token_expiry(now, ten, [None, None]), now + ten);
        let soon = now + Duration::minutes(3);
        let later = now + Duration::hours(1);
        assert_eq!(
            access_token_expiry(now, ten, [Some(later), None, Some(soon)]),
            soon
        );
        assert_eq!(access_token_expiry(now, ten, [Some(later)]), now + ten);
    }

    #[test]
    fn claims_round_trip() {
        let c = AccessClaims {
            iss: "https://pam.example".into(),
            sub: "sa_1".into(),
            aud: "portcullis".into(),
            iat: 1,
            nbf: 1,
            exp: 2,
            jti: "j".into(),
            client_id: "payroll".into(),
            roles: vec![RoleClaim {
                role: "audit-reader".into(),
                scope: "/".into(),
                exp: None,
            }],
            permissions: vec!["app:payroll.read".into()],
            amr: vec![],
            acr: "client_credentials".into(),
            auth_time: None,
            scope: None,
        };
        let json = serde_json::to_string(&c).expect("json");
        assert!(!json.contains("\"exp\":null"));
        assert_eq!(
            serde_json::from_str::<AccessClaims>(&json).expect("back"),
            c
        );
        assert_eq!(
            amr_for(AuthStrength::PhishingResistant),
            ["hwk", "user", "mfa"]
        );
    }
}
