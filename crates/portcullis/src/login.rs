//! The CLI's stored login and its prompts.
//!
//! The session token from `portcullis login` is kept in `CONFIG_DIR/portcullis/session.json`
//! (directory 0700, file 0600), where CONFIG_DIR is `PORTCULLIS_CONFIG_DIR`, else
//! `$XDG_CONFIG_HOME`, else `~/.config`. Threat model: this protects the token from other users
//! of the machine, not from the same OS user or root; the token-service issue replaces it with a
//! refresh token encrypted at rest and bound to machine and user (OS keyring where available).
//! `PORTCULLIS_TOKEN` wins over the stored login.

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
