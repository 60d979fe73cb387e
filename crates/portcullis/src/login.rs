//! The CLI's stored login and its prompts.
//!
//! The credential from `portcullis login` is kept in `CONFIG_DIR/portcullis/session.json`
//! (directory 0700, file 0600), where CONFIG_DIR is `PORTCULLIS_CONFIG_DIR`, else
//! `$XDG_CONFIG_HOME`, else `~/.config`. `PORTCULLIS_TOKEN` wins over the stored login.
//!
//! - After a password sign-in it holds the session token.
//! - After `login --device` it holds a short-lived access token and a refresh token; the
//!   refresh token is sealed (XChaCha20-Poly1305, the server URL as associated data) under a
//!   key derived from this machine's id (`/etc/machine-id`) and this OS user's uid, so a copy
//!   of the file is useless on another machine or to another user.
//!
//! Threat model, honestly: file permissions keep other users out; the sealing binds the file to
//! this machine and user, so a stolen backup or a copied home directory does not carry a
//! working credential elsewhere. It does not protect against this same user or root on this
//! machine (they can derive the same key, as they could read a keyring unlocked in the
//! session). The OS keyring (Secret Service) is not used yet.

use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct StoredLogin {
    pub server: String,
    pub token: String,
    pub user: String,
    /// After `login --device`: the refresh token, sealed (see the module header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_refresh_token: Option<String>,
    /// Unix seconds when `token` (an access token) expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// The key binding a sealed refresh token to this machine and OS user.
fn binding_key() -> Result<chacha20poly1305::Key> {
    use sha2::{Digest, Sha256};
    let machine = ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .context("cannot read this machine's id (/etc/machine-id) to seal the refresh token")?;
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        })
        .context("cannot tell this process's user id")?;
    let mut h = Sha256::new();
    h.update(b"portcullis-cli-login-v1\0");
    h.update(machine.as_bytes());
    h.update(b"\0");
    h.update(uid.as_bytes());
    Ok(h.finalize())
}

/// Seals a refresh token for `server`.
pub fn seal(server: &str, refresh_token: &str) -> Result<String> {
    use base64::Engine;
    use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, Payload};
    let cipher = chacha20poly1305::XChaCha20Poly1305::new(&binding_key()?);
    let nonce = chacha20poly1305::XChaCha20Poly1305::generate_nonce(&mut rand::rngs::OsRng);
    let sealed = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: refresh_token.as_bytes(),
                aad: server.as_bytes(),
            },
        )
        .map_err(|_| anyhow::anyhow!("cannot seal the refresh token"))?;
    let mut out = nonce.to_vec();
    out.extend(sealed);
    Ok(base64::engine::general_purpose::STANDARD.encode(out))
}

/// Opens a sealed refresh token; fails on another machine, for another user or server.
pub fn open(server: &str, sealed: &str) -> Result<zeroize::Zeroizing<String>> {
    use base64::Engine;
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    let raw = base64::engine::general_purpose::STANDARD
        .decode(sealed)
        .context("the stored refresh token is damaged; log in again")?;
    if raw.len() < 24 {
        bail!("the stored refresh token is damaged; log in again");
    }
    let (nonce, ct) = raw.split_at(24);
    let cipher = chacha20poly1305::XChaCha20Poly1305::new(&binding_key()?);
    let plain = cipher
        .decrypt(
            nonce.into(),
            Payload {
                msg: ct,
                aad: server.as_bytes(),
            },
        )
        .map_err(|_| {
            anyhow::anyhow!(
                "the stored login was made on another machine or by another user; log in again"
            )
        })?;
    Ok(zeroize::Zeroizing::new(String::from_utf8(plain).context(
        "the stored refresh token is damaged; log in again",
    )?))
}

fn config_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("PORTCULLIS_CONFIG_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CONFIG_HOME") {
        return Some(PathBuf::from(d).join("portcullis"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config").join("portcullis"))
}

fn login_path() -> Option<PathBuf> {
    config_dir().map(|d| d.join("session.json"))
}

pub fn load() -> Option<StoredLogin> {
    let text = std::fs::read_to_string(login_path()?).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn save(login: &StoredLogin) -> Result<()> {
    let dir = config_dir()
        .context("cannot find a configuration directory (set PORTCULLIS_CONFIG_DIR)")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("session.json");
    let tmp = dir.join("session.json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(serde_json::to_string(login)?.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

pub fn forget() -> Result<bool> {
    match login_path() {
        Some(p) if p.exists() => {
            std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// One line from standard input, without its line ending.
pub fn read_stdin_line(what: &str) -> Result<String> {
    let mut line = String::new();
    let n = std::io::stdin()
        .lock()
        .read_line(&mut line)
        .with_context(|| format!("cannot read the {what}"))?;
    if n == 0 {
        bail!("no {what} on standard input");
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Asks for a visible value: on a terminal with a prompt, otherwise one line of stdin.
pub fn ask(prompt: &str, what: &str) -> Result<String> {
    if std::io::stdin().is_terminal() {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
    }
    read_stdin_line(what)
}

/// Asks for a secret: hidden on a terminal, otherwise one line of stdin.
pub fn ask_secret(prompt: &str, what: &str) -> Result<String> {
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password(prompt)
            .with_context(|| format!("cannot read the {what}"));
    }
    read_stdin_line(what)
}

/// A QR code of `data` for the terminal.
pub fn qr(data: &str) -> String {
    match qrcode::QrCode::new(data.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .build(),
        Err(_) => String::new(),
    }
}
