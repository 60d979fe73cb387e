//! The API client a command talks through: with the credential in effect (`PORTCULLIS_TOKEN`,
//! else the stored login for the server) or anonymous; and the refresh of a device login's
//! access token before a command uses it.

use anyhow::{Context, Result, bail};
use portcullis_client::Client;
use secrecy::SecretString;

use crate::login;

/// A client with the credential in effect: `PORTCULLIS_TOKEN`, else the stored login for
/// this server.
pub(crate) fn client(server: &str) -> Result<Client> {
    let token = match std::env::var("PORTCULLIS_TOKEN") {
        Ok(t) => Some(t),
        Err(_) => match login::load().filter(|l| l.server == server) {
            Some(l) => Some(login::bearer(&l)?.to_string()),
            None => None,
        },
    };
    Ok(Client::new(server, token.map(SecretString::from))?)
}

pub(crate) fn anonymous(server: &str) -> Result<Client> {
    Ok(Client::new(server, None)?)
}

/// Seconds before expiry at which the CLI refreshes its access token.
const REFRESH_AHEAD_SECONDS: i64 = 60;

/// Refreshes a device login's access token when it is about to expire, keeping the rotated
/// refresh token; a refused refresh ends the stored login with one clear line.
pub(crate) async fn refresh_if_due(server: &str) -> Result<()> {
    let Some(stored) = login::load().filter(|l| l.server == server) else {
        return Ok(());
    };
    let (Some(store), Some(expires_at)) = (stored.refresh_store(), stored.expires_at) else {
        return Ok(());
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if expires_at - REFRESH_AHEAD_SECONDS > now {
        return Ok(());
    }
    let refresh = login::refresh_token(&stored)?;
    match anonymous(server)?.refresh(&refresh).await {
        Ok(t) => {
            let next = t
                .refresh_token
                .context("the server sent no refresh token")?;
            login::save_device_login(
                &stored.server,
                &t.access_token,
                &stored.user,
                now + t.expires_in,
                &next,
                Some(store),
            )
        }
        Err(e) if e.code() == Some("invalid_grant") => {
            login::forget(server)?;
            bail!(
                "your login has ended (revoked, expired or disabled); run `portcullis login` again"
            )
        }
        Err(e) => Err(e.into()),
    }
}
