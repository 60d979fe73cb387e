//! The OS keyring as the store of the CLI's refresh token.
//!
//! On Linux this is the kernel's key retention service (keyutils), through `keyring-core` and
//! `linux-keyutils-keyring-store`: no D-Bus and no C library. One entry per server: service
//! `portcullis`, user the server URL, so the keyutils key is a `user` key described
//! `keyring:<server URL>@portcullis`, added to the session keyring and linked into the OS user's
//! persistent keyring. What that protects against, and what it does not, is in the header of
//! the `login` module. Elsewhere there is no keyring here yet: every call fails, and the CLI
//! falls back to its sealed file.

use anyhow::Result;
use zeroize::Zeroizing;

/// The keyring service name of every entry.
pub const SERVICE: &str = "portcullis";

#[cfg(target_os = "linux")]
mod imp {
    use std::sync::Arc;

    use anyhow::{Context, Result, bail};
    use keyring_core::{CredentialStore, Entry, Error};
    use zeroize::Zeroizing;

    fn entry(user: &str) -> Result<Entry> {
        let store: Arc<CredentialStore> = linux_keyutils_keyring_store::Store::new()
            .context("the kernel keyring (keyutils) is not available")?;
        // Built twice on purpose. A process without a session keyring of its own (started by
        // cron, a service manager, `docker exec`, a CI runner) is lent the user-session
        // keyring; linking the persistent keyring into it, which building an entry does, moves
        // the process to a new session keyring instead. An entry built before that move would
        // add its key to a keyring this process no longer possesses (EACCES on the link). The
        // second entry sees the new session keyring, the persistent keyring linked into it.
        let _ = Entry::new_in_store(&store, super::SERVICE, user);
        Entry::new_in_store(&store, super::SERVICE, user)
            .context("the kernel keyring (keyutils) is not available")
    }

    pub fn put(user: &str, secret: &str) -> Result<()> {
        let e = entry(user)?;
        let written = e
            .set_password(secret)
            .and_then(|()| e.get_password().map(Zeroizing::new));
        match written {
            Ok(back) if back.as_str() == secret => Ok(()),
            Ok(_) => {
                let _ = e.delete_credential();
                bail!("the kernel keyring (keyutils) gave back something else than was stored")
            }
            Err(err) => {
                let _ = e.delete_credential();
                Err(err).context("the kernel keyring (keyutils) refused to keep the token")
            }
        }
    }

    pub fn get(user: &str) -> Result<Option<Zeroizing<String>>> {
        match entry(user)?.get_password() {
            Ok(s) => Ok(Some(Zeroizing::new(s))),
            Err(Error::NoEntry) => Ok(None),
            Err(e) => Err(e).context("cannot read the kernel keyring (keyutils)"),
        }
    }

    pub fn delete(user: &str) -> Result<bool> {
        match entry(user)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(Error::NoEntry) => Ok(false),
            Err(e) => Err(e).context("cannot delete from the kernel keyring (keyutils)"),
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use anyhow::{Result, bail};
    use zeroize::Zeroizing;

    const NONE: &str = "this build has no OS keyring for this platform";

    pub fn put(_user: &str, _secret: &str) -> Result<()> {
        bail!(NONE)
    }

    pub fn get(_user: &str) -> Result<Option<Zeroizing<String>>> {
        bail!(NONE)
    }

    pub fn delete(_user: &str) -> Result<bool> {
        bail!(NONE)
    }
}

/// Keeps `secret` as the refresh token for `server`, then reads it back: any failure (no
/// keyutils in this kernel, a seccomp filter that forbids `add_key`/`keyctl`, a full key quota,
/// a different value read back) is an error and leaves no entry behind.
pub fn put(server: &str, secret: &str) -> Result<()> {
    imp::put(server, secret)
}

/// The refresh token kept for `server`; `None` when there is no entry (never written, deleted,
/// or gone with a reboot or an expired persistent keyring).
pub fn get(server: &str) -> Result<Option<Zeroizing<String>>> {
    imp::get(server)
}

/// Deletes the entry for `server`; whether there was one.
pub fn delete(server: &str) -> Result<bool> {
    imp::delete(server)
}

/// Whether the keyring works here: writes, reads back and deletes a probe entry (a user name no
/// server URL has, so it never touches a real login).
pub fn probe(server: &str) -> Result<()> {
    let user = format!("probe {server}");
    imp::put(&user, "portcullis keyring probe")?;
    imp::delete(&user)?;
    Ok(())
}
