//! Credential steps shared by several commands: a new password (asked twice), a TOTP secret
//! shown to scan, and a fresh proof that it is you (`portcullis reauth`, and credential
//! changes that ask for one).

use anyhow::{Result, bail};
use clap::Args;
use portcullis_client::Client;

use crate::login::{self, ask, ask_secret, qr};

#[derive(Args)]
pub struct ReauthArgs {
    /// The TOTP code (otherwise it is asked for).
    #[arg(long)]
    pub code: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
}

/// Shows a TOTP secret for an authenticator app: a QR code and the URI on stderr, the secret
/// on stdout (one line `secret: BASE32`, so scripts can read it).
pub(super) fn show_totp(secret_b32: &str, uri: &str) {
    eprintln!("Add this to your authenticator app (scan the QR code or enter the secret):");
    eprintln!("{}", qr(uri));
    eprintln!("otpauth URI: {uri}");
    println!("secret: {secret_b32}");
    let _ = std::io::Write::flush(&mut std::io::stdout());
}

/// A password asked twice on a terminal, or one line of stdin with `--password-stdin`.
pub(super) fn new_password(from_stdin: bool, prompt: &str) -> Result<String> {
    if from_stdin {
        return login::read_stdin_line("password");
    }
    let a = ask_secret(prompt, "password")?;
    let b = ask_secret("Repeat it: ", "password")?;
    if a != b {
        bail!("the passwords differ");
    }
    Ok(a)
}

/// A fresh proof in the stored session: the password and a TOTP code.
pub async fn reauth(c: &Client, code: Option<String>, password_stdin: bool) -> Result<()> {
    let password = if password_stdin {
        login::read_stdin_line("password")?
    } else {
        ask_secret("Password (to prove it is you): ", "password")?
    };
    let code = match code {
        Some(c) => c,
        None => ask("Code from the authenticator app: ", "code")?,
    };
    let r = c
        .reauth(&portcullis_core::api::ReauthRequest {
            password: Some(password),
            code: Some(code.trim().to_owned()),
            ceremony_id: None,
            credential: None,
        })
        .await?;
    eprintln!(
        "re-authenticated ({}); credential changes are allowed until {}",
        r.strength, r.fresh_until
    );
    Ok(())
}

/// Runs a credential change; when the server asks for a fresh proof (`reauth_required`),
/// asks for the password and a code, re-authenticates and runs it once more.
pub(super) async fn with_fresh_proof<T, F, Fut>(c: &Client, change: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, portcullis_client::ClientError>>,
{
    match change().await {
        Err(e) if e.code() == Some("reauth_required") => {
            eprintln!("{e}");
            reauth(c, None, false).await?;
            Ok(change().await?)
        }
        other => Ok(other?),
    }
}
