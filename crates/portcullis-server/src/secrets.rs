//! The data directory and the master key file.
//!
//! The data directory is created with mode 0700 and `master.key` with 0600. A `master.key`
//! readable by group or others is refused: a key anyone on the host can read protects nothing.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use portcullis_store::MasterKey;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is readable by group or others (mode {mode:o}); run `chmod 600 {path}` and start again"
    )]
    KeyFileTooOpen { path: PathBuf, mode: u32 },
    #[error("cannot read or write {path}: {source}")]
    KeyFileIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the master key must be base64 of exactly 32 bytes ({0})")]
    BadMasterKey(&'static str),
}

/// Creates the data directory (mode 0700) if it does not exist.
pub fn ensure_data_dir(path: &Path) -> Result<(), SecretsError> {
    if path.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| SecretsError::DataDir {
            path: path.to_owned(),
            source,
        })
}

pub fn decode_master_key(b64: &str) -> Result<MasterKey, SecretsError> {
    let bytes = Zeroizing::new(
        STANDARD
            .decode(b64.trim())
            .map_err(|_| SecretsError::BadMasterKey("not base64"))?,
    );
    MasterKey::from_bytes(&bytes).ok_or(SecretsError::BadMasterKey("wrong length"))
}

/// Where the master key came from; `CreatedFile` lets start-up remove a key file it wrote if
/// the tenant turns out to belong to another key (so a failed start changes nothing).
pub enum KeySource {
    Configured,
    ExistingFile,
    CreatedFile(PathBuf),
}

/// The master key from configuration, else from `DATA_DIR/master.key`, else a new one written
/// to that file (0600, created exclusively).
pub fn load_or_create_master_key(
    configured: Option<&SecretString>,
    data_dir: &Path,
) -> Result<(MasterKey, KeySource), SecretsError> {
    if let Some(k) = configured {
        return Ok((decode_master_key(k.expose_secret())?, KeySource::Configured));
    }
    let path = data_dir.join("master.key");
    let io = |source| SecretsError::KeyFileIo {
        path: path.clone(),
        source,
    };
    match fs::metadata(&path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(SecretsError::KeyFileTooOpen { path, mode });
            }
            let text = Zeroizing::new(fs::read_to_string(&path).map_err(io)?);
            Ok((decode_master_key(&text)?, KeySource::ExistingFile))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = MasterKey::generate();
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(io)?;
            let text = Zeroizing::new(STANDARD.encode(key.as_bytes()));
            f.write_all(text.as_bytes()).map_err(io)?;
            f.write_all(b"\n").map_err(io)?;
            f.sync_all().map_err(io)?;
            Ok((key, KeySource::CreatedFile(path)))
        }
        Err(e) => Err(io(e)),
    }
}

/// Writes `contents` to a new file with mode 0600; refuses to overwrite.
pub fn write_secret_file(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

/// Makes the embedded database files (which hold sealed secrets and token hashes) readable by
/// the owner only. SQLite creates them with the process umask.
pub fn restrict_sqlite_files(data_dir: &Path) {
    for name in ["portcullis.db", "portcullis.db-wal", "portcullis.db-shm"] {
        let p = data_dir.join(name);
        if p.exists()
            && let Err(e) = fs::set_permissions(&p, fs::Permissions::from_mode(0o600))
        {
            tracing::warn!(path = %p.display(), error = %e, "cannot restrict database file mode");
        }
    }
}
