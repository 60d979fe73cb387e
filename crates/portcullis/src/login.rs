//! The CLI's stored login and its prompts.
//!
//! The login from `portcullis login` is kept in `CONFIG_DIR/portcullis/session.json`
//! (directory 0700, file 0600), where CONFIG_DIR is `PORTCULLIS_CONFIG_DIR`, else
//! `$XDG_CONFIG_HOME`, else `~/.config`. `PORTCULLIS_TOKEN` wins over the stored login.
//!
//! - After a password sign-in (or a break-glass sign-in) the session token is kept like a
//!   device login's refresh token (below): in the OS keyring (`session_token_store: keyring`)
//!   or sealed in session.json (`sealed_session_token`, the associated data `session:` and the
//!   server URL), never in the clear. Files from before this have it in `token` and still work.
//! - After `login --device` it holds a short-lived access token and, in `refresh_token_store`,
//!   where the refresh token is:
//!   - `keyring`: in the OS keyring, entry service `portcullis`, user the server URL (so logins
//!     to several servers do not collide). On Linux that is the kernel's key retention service
//!     (keyutils, see `keyring_store`); session.json then holds no refresh-token material.
//!   - `file`: in session.json as `sealed_refresh_token`, sealed (XChaCha20-Poly1305, the server
//!     URL as associated data) under a key derived from this machine's id (`/etc/machine-id`)
//!     and this OS user's uid. Files written before `refresh_token_store` existed have
//!     `sealed_refresh_token` alone and are read as `file`.
//!
//! `PORTCULLIS_CREDENTIAL_STORE=keyring|file` forces a store; a forced keyring that does not
//! work is an error before any code is shown. Unset (or `auto`), `login --device` writes the
//! token to the keyring and reads it back, and on any error (no keyutils in the kernel, a
//! seccomp filter forbidding `add_key`/`keyctl` as container runtimes' default profiles do, a
//! full key quota) keeps it in the file instead, saying so on stderr. A refresh writes the
//! rotated token to the store that held the old one. `portcullis logout` revokes the token
//! family on the server, then deletes the keyring entry and the file.
//!
//! Threat model, honestly:
//! - Keyring (keyutils): the token lives in kernel memory only, never on disk, so a backup, a
//!   copied home directory or a disk image carries nothing. Other OS users can neither read nor
//!   see it; every process of this OS user can read it (any of them can link the persistent
//!   keyring, `keyctl get_persistent`), and so can root. It does not survive a reboot, nor the
//!   expiry of the user's persistent keyring (`/proc/sys/kernel/keys/persistent_keyring_expiry`,
//!   3 days by default, restarted on each use) once no session of the user holds it; then the
//!   next refresh says the login is gone and asks for `portcullis login` (the server's token
//!   family ends on its idle timeout). Where the kernel has no persistent keyrings, the key is
//!   only in the session keyring it was made in (the user-session keyring for a process without
//!   one), and other login sessions do not see it.
//! - File: encrypted, but under a key derived from values that are not secret on this machine
//!   (`/etc/machine-id` is world-readable, the uid is public). The sealing binds the file to
//!   this machine and user: a copied home directory or a backup of it alone does not carry a
//!   working token elsewhere, but whoever also has the machine id (a full-disk image or backup,
//!   a look at the machine) can open it. Against other local users only the file mode protects
//!   it; against this user's processes and root nothing does. It survives reboots.
//! - Both: the short-lived access token sits in session.json in the clear (0600) until it
//!   expires, and neither store stops malware running as this user or root (it can also just
//!   run the CLI). What ends a stolen refresh token is the server: rotation with reuse detection
//!   (replaying a rotated token ends the family) and `logout`. The OS keyring of a desktop
//!   session (Secret Service) is not used yet.

use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::keyring_store;

/// Where a device login's refresh token is kept (see the module header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefreshTokenStore {
    Keyring,
    File,
}

#[derive(Serialize, Deserialize)]
pub struct StoredLogin {
    pub server: String,
    pub token: String,
    pub user: String,
    /// After `login --device`: which store holds the refresh token. Absent in files from
    /// before it was recorded, where `sealed_refresh_token` alone means the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_store: Option<RefreshTokenStore>,
    /// The refresh token, sealed (see the module header), when the file holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_refresh_token: Option<String>,
    /// Unix seconds when `token` (an access token) expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// After a password sign-in: which store holds the session token (`token` is then empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token_store: Option<RefreshTokenStore>,
    /// The session token, sealed, when the file holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_session_token: Option<String>,
}

impl StoredLogin {
    /// The OS keyring entry holding this login's secret (a refresh or a session token), if any.
    fn keyring_entry(&self) -> Option<String> {
        if self.session_token_store == Some(RefreshTokenStore::Keyring) {
            Some(session_entry(&self.server))
        } else if self.refresh_store() == Some(RefreshTokenStore::Keyring) {
            Some(self.server.clone())
        } else {
            None
        }
    }

    /// Where this login's refresh token is; `None` when it has none (a password sign-in).
    pub fn refresh_store(&self) -> Option<RefreshTokenStore> {
        match (self.refresh_token_store, &self.sealed_refresh_token) {
            (Some(store), _) => Some(store),
            (None, Some(_)) => Some(RefreshTokenStore::File),
            (None, None) => None,
        }
    }
}

/// What `PORTCULLIS_CREDENTIAL_STORE` asks for: `None` for `auto` (or unset).
fn forced_store() -> Result<Option<RefreshTokenStore>> {
    match std::env::var("PORTCULLIS_CREDENTIAL_STORE") {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(None),
            "keyring" => Ok(Some(RefreshTokenStore::Keyring)),
            "file" => Ok(Some(RefreshTokenStore::File)),
            _ => bail!("PORTCULLIS_CREDENTIAL_STORE must be keyring, file or auto, not {v:?}"),
        },
        Err(e) => bail!("PORTCULLIS_CREDENTIAL_STORE: {e}"),
    }
}

fn keyring_forced_but_unusable(e: anyhow::Error) -> anyhow::Error {
    e.context("PORTCULLIS_CREDENTIAL_STORE=keyring, but the OS keyring is not usable here")
}

/// Checks `PORTCULLIS_CREDENTIAL_STORE` before a login starts: a bad value, or a forced
/// keyring that does not work (probed with a write, a read and a delete), fails here, before a
/// person approves a code for nothing.
pub fn check_credential_store(server: &str) -> Result<()> {
    if forced_store()? == Some(RefreshTokenStore::Keyring) {
        keyring_store::probe(server).map_err(keyring_forced_but_unusable)?;
    }
    Ok(())
}

/// Stores a device login: the refresh token in the forced store, else in `keep_in` (the store
/// that held the token it replaces), else in the OS keyring when a write and a read-back work
/// there, else sealed in the file.
pub fn save_device_login(
    server: &str,
    access_token: &str,
    user: &str,
    expires_at: i64,
    refresh_token: &str,
    keep_in: Option<RefreshTokenStore>,
) -> Result<()> {
    let store = choose_store(server, refresh_token, keep_in)?;
    let sealed = match store {
        RefreshTokenStore::Keyring => None,
        RefreshTokenStore::File => {
            // A keyring entry for this server from an earlier login is stale now.
            let _ = keyring_store::delete(server);
            Some(seal(server, refresh_token)?)
        }
    };
    save(&StoredLogin {
        server: server.to_owned(),
        token: access_token.to_owned(),
        user: user.to_owned(),
        refresh_token_store: Some(store),
        sealed_refresh_token: sealed,
        expires_at: Some(expires_at),
        session_token_store: None,
        sealed_session_token: None,
    })
}

/// The store a login's secret goes to: the forced one, else `keep_in` (the store that held the
/// secret it replaces), else the OS keyring when a write and a read-back work there under
/// `entry` (the secret is then written), else the sealed file.
fn choose_store(
    entry: &str,
    secret: &str,
    keep_in: Option<RefreshTokenStore>,
) -> Result<RefreshTokenStore> {
    let forced = forced_store()?;
    match forced.or(keep_in) {
        Some(RefreshTokenStore::File) => Ok(RefreshTokenStore::File),
        _ => match keyring_store::put(entry, secret) {
            Ok(()) => Ok(RefreshTokenStore::Keyring),
            Err(e) if forced.is_some() => Err(keyring_forced_but_unusable(e)),
            Err(e) => {
                eprintln!(
                    "note: the OS keyring is not usable here ({e:#}); the token is kept sealed in {}",
                    login_path()
                        .map_or_else(|| "session.json".to_owned(), |p| p.display().to_string())
                );
                Ok(RefreshTokenStore::File)
            }
        },
    }
}

/// The OS keyring entry of a session token: per server and configuration directory, because the
/// kernel keyring is shared by every login of this OS user, and two configuration directories
/// (two people's, or one person's two roles) must not overwrite each other's session.
fn session_entry(server: &str) -> String {
    let dir = config_dir().map_or_else(String::new, |d| d.display().to_string());
    format!("session {server} {dir}")
}

/// The associated data a session token is sealed with (distinct from a refresh token's).
fn session_aad(server: &str) -> String {
    format!("session:{server}")
}

/// Stores a password (or break-glass) sign-in: the session token in the OS keyring or sealed in
/// the file (see the module header), never in the clear.
pub fn save_session_login(server: &str, session_token: &str, user: &str) -> Result<()> {
    let store = choose_store(&session_entry(server), session_token, None)?;
    let sealed = match store {
        RefreshTokenStore::Keyring => None,
        RefreshTokenStore::File => {
            let _ = keyring_store::delete(&session_entry(server));
            Some(seal(&session_aad(server), session_token)?)
        }
    };
    save(&StoredLogin {
        server: server.to_owned(),
        token: String::new(),
        user: user.to_owned(),
        refresh_token_store: None,
        sealed_refresh_token: None,
        expires_at: None,
        session_token_store: Some(store),
        sealed_session_token: sealed,
    })
}

/// The bearer credential of a stored login: its session token from whichever store holds it,
/// or the access token of a device login.
pub fn bearer(login: &StoredLogin) -> Result<zeroize::Zeroizing<String>> {
    match login.session_token_store {
        None => Ok(zeroize::Zeroizing::new(login.token.clone())),
        Some(RefreshTokenStore::File) => open(
            &session_aad(&login.server),
            login
                .sealed_session_token
                .as_deref()
                .context("the stored session token is missing; log in again")?,
        ),
        Some(RefreshTokenStore::Keyring) => keyring_store::get(&session_entry(&login.server))
            .context("cannot read the session token from the OS keyring")?
            .context(
                "the session token is no longer in the OS keyring (the kernel keyring does not \
                 survive a reboot); log in again",
            ),
    }
}

/// The refresh token of a device login, from whichever store holds it.
pub fn refresh_token(login: &StoredLogin) -> Result<zeroize::Zeroizing<String>> {
    match login.refresh_store() {
        None => bail!("the stored login has no refresh token"),
        Some(RefreshTokenStore::File) => open(
            &login.server,
            login
                .sealed_refresh_token
                .as_deref()
                .context("the stored refresh token is missing; log in again")?,
        ),
        Some(RefreshTokenStore::Keyring) => keyring_store::get(&login.server)
            .context("cannot read the refresh token from the OS keyring")?
            .context(
                "the refresh token is no longer in the OS keyring (the kernel keyring does not \
                 survive a reboot); log in again",
            ),
    }
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
fn seal(server: &str, refresh_token: &str) -> Result<String> {
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
fn open(server: &str, sealed: &str) -> Result<zeroize::Zeroizing<String>> {
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

/// Writes the stored login; a keyring entry of the login it replaces that no longer belongs to
/// it is deleted.
pub fn save(login: &StoredLogin) -> Result<()> {
    let replaced = load();
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
    if let Some(entry) = replaced
        .and_then(|old| old.keyring_entry())
        .filter(|e| login.keyring_entry().as_ref() != Some(e))
    {
        let _ = keyring_store::delete(&entry);
    }
    Ok(())
}

/// Forgets the stored login: the OS keyring entries of `server` and of the stored login's
/// server, then the file. Whether there was a file.
pub fn forget(server: &str) -> Result<bool> {
    let stored = load();
    let entry = stored.as_ref().and_then(StoredLogin::keyring_entry);
    if let Some(e) = &entry
        && let Err(err) = keyring_store::delete(e)
    {
        eprintln!("warning: cannot delete the token from the OS keyring: {err:#}");
    }
    // Normally nothing is there, but a login cut short may have left an entry (and a keyring
    // that is not usable here holds none).
    for e in [server.to_owned(), session_entry(server)] {
        if entry.as_ref() != Some(&e) {
            let _ = keyring_store::delete(&e);
        }
    }
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
