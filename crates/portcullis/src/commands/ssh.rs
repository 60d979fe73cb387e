//! CLI for SSH certificates from active grants (ssh-ca targets).
//!
//! - `portcullis ssh sign TARGET [--public-key FILE]` certifies a public key (default
//!   `~/.ssh/id_ed25519.pub`) and writes the certificate next to it (`…-cert.pub`, mode 0600),
//!   where `ssh` finds it.
//! - `portcullis ssh TARGET -- user@host …` certifies a key for this one session and runs the
//!   system `ssh` with it. Without `~/.ssh/id_ed25519` a key pair is made for the session in a
//!   private temporary directory; `ssh` runs as a child (not `exec`) so that directory, key
//!   and certificate included, is deleted when the session ends.
//! - `portcullis targets ssh krl-sync TARGET --out FILE` fetches the KRL for a server (no
//!   sign-in: the KRL is public), checks it is a whole KRL and replaces FILE atomically, so a
//!   proxy's error page never becomes the server's revocation list.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use portcullis_client::Client;
use portcullis_core::api::{RotateSshCaRequest, SignSshRequest, SshCertificateView};

use crate::output::{Output, print_json};

/// `portcullis ssh`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SshArgs {
    #[command(subcommand)]
    pub command: Option<SshCommand>,
    /// The ssh-ca target to connect through.
    pub target: Option<String>,
    /// Only the grants of this role.
    #[arg(long)]
    pub role: Option<String>,
    /// The arguments for `ssh` (after `--`), e.g. `-- root@db1.example.com uptime`.
    #[arg(last = true)]
    pub ssh_args: Vec<String>,
}

#[derive(Subcommand)]
pub enum SshCommand {
    /// Certify a public key for the principals of your active grants at TARGET.
    Sign {
        target: String,
        /// The public key (default ~/.ssh/id_ed25519.pub).
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// Only the grants of this role.
        #[arg(long)]
        role: Option<String>,
        /// Where to write the certificate (default: next to the key, `…-cert.pub`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// `portcullis targets ssh`.
#[derive(Subcommand)]
pub enum TargetSshCommand {
    /// Fetch TARGET's KRL and replace FILE with it (for a systemd timer on each server).
    KrlSync {
        target: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Print TARGET's CA public keys (for TrustedUserCAKeys).
    CaPub { target: String },
    /// A new signing key; the old one stays trusted for the overlap (default 24h).
    Rotate {
        target: String,
        #[arg(long)]
        overlap: Option<String>,
    },
}

fn home_key() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ssh").join("id_ed25519"))
}

/// Writes `contents` to `path` with mode 0600, replacing it atomically.
fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    tmp.write_all(contents)?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

async fn sign(
    c: &Client,
    target: &str,
    public_key: &str,
    role: Option<&str>,
) -> Result<SshCertificateView> {
    c.ssh_sign(
        target,
        &SignSshRequest {
            public_key: public_key.to_owned(),
            role: role.map(str::to_owned),
        },
    )
    .await
    .with_context(|| format!("cannot get a certificate for target {target}"))
}

fn describe(v: &SshCertificateView) -> String {
    format!(
        "certificate {} for {} valid until {} (key id {})",
        v.serial,
        v.principals.join(","),
        v.valid_before,
        portcullis_core::text::escape_for_terminal(&v.key_id)
    )
}

pub async fn run(c: &Client, output: Output, args: &SshArgs) -> Result<std::process::ExitCode> {
    match (&args.command, &args.target) {
        (
            Some(SshCommand::Sign {
                target,
                public_key,
                role,
                out,
            }),
            _,
        ) => {
            let path = match public_key {
                Some(p) => p.clone(),
                None => home_key()
                    .map(|k| k.with_extension("pub"))
                    .filter(|p| p.exists())
                    .context("no ~/.ssh/id_ed25519.pub: give --public-key, or use `portcullis ssh TARGET -- …`, which makes a key for the session")?,
            };
            let line = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let v = sign(c, target, &line, role.as_deref()).await?;
            let out = out.clone().unwrap_or_else(|| {
                let s = path.to_string_lossy();
                PathBuf::from(format!("{}-cert.pub", s.strip_suffix(".pub").unwrap_or(&s)))
            });
            write_private(&out, format!("{}\n", v.certificate).as_bytes())?;
            if output == Output::Json {
                print_json(&v)?;
            } else {
                println!("{} → {}", describe(&v), out.display());
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        (None, Some(target)) => connect(c, target, args.role.as_deref(), &args.ssh_args).await,
        (None, None) => bail!(
            "give a target: portcullis ssh TARGET -- user@host, or portcullis ssh sign TARGET"
        ),
    }
}

/// Certifies a key for one session and runs `ssh` with it (`PORTCULLIS_SSH` names another
/// ssh binary).
async fn connect(
    c: &Client,
    target: &str,
    role: Option<&str>,
    ssh_args: &[String],
) -> Result<std::process::ExitCode> {
    if ssh_args.is_empty() {
        bail!("give ssh's arguments after --, e.g. portcullis ssh {target} -- root@host");
    }
    // A private directory for this session: the key (if made here) and the certificate.
    let dir = tempfile::Builder::new()
        .prefix("portcullis-ssh-")
        .tempdir()
        .context("cannot make a temporary directory")?;
    let (key_path, public_line) =
        match home_key().filter(|k| k.exists() && k.with_extension("pub").exists()) {
            Some(k) => {
                let line = std::fs::read_to_string(k.with_extension("pub"))?;
                (k, line)
            }
            None => {
                let mut seed = zeroize::Zeroizing::new([0u8; 32]);
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, seed.as_mut());
                let pair = ssh_key::private::Ed25519Keypair::from_seed(&seed);
                let private = ssh_key::PrivateKey::from(pair);
                let pem = private
                    .to_openssh(ssh_key::LineEnding::LF)
                    .context("cannot encode the session key")?;
                let path = dir.path().join("id_ed25519");
                write_private(&path, pem.as_bytes())?;
                let line = private.public_key().to_openssh()?;
                (path, line)
            }
        };
    let v = sign(c, target, &public_line, role).await?;
    let cert = dir.path().join("id_ed25519-cert.pub");
    write_private(&cert, format!("{}\n", v.certificate).as_bytes())?;
    eprintln!("{}", describe(&v));
    let ssh = std::env::var("PORTCULLIS_SSH").unwrap_or_else(|_| "ssh".to_owned());
    let status = tokio::process::Command::new(&ssh)
        .arg("-i")
        .arg(&key_path)
        .arg("-o")
        .arg(format!("CertificateFile={}", cert.display()))
        .arg("-o")
        .arg("IdentitiesOnly=yes")
        .args(ssh_args)
        .status()
        .await
        .with_context(|| format!("cannot run {ssh}"))?;
    drop(dir);
    Ok(match status.code() {
        Some(0) => std::process::ExitCode::SUCCESS,
        Some(n) => std::process::ExitCode::from(u8::try_from(n).unwrap_or(1)),
        None => std::process::ExitCode::FAILURE,
    })
}

pub async fn targets(c: &Client, output: Output, cmd: &TargetSshCommand) -> Result<()> {
    match cmd {
        TargetSshCommand::KrlSync { target, out } => {
            let krl = c
                .ssh_krl(target)
                .await
                .with_context(|| format!("cannot fetch the KRL of {target}"))?;
            let (version, generated) = portcullis_core::ssh::krl_version(&krl)
                .with_context(|| format!("refusing to replace {}", out.display()))?;
            let dir = out.parent().unwrap_or(Path::new("."));
            let mut tmp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("cannot write in {}", dir.display()))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                tmp.as_file()
                    .set_permissions(std::fs::Permissions::from_mode(0o644))?;
            }
            tmp.write_all(&krl)?;
            tmp.as_file().sync_all()?;
            tmp.persist(out)
                .with_context(|| format!("cannot replace {}", out.display()))?;
            if output == Output::Json {
                print_json(
                    &serde_json::json!({ "target": target, "bytes": krl.len(), "version": version, "generated_at": generated }),
                )?;
            } else {
                println!(
                    "{}: KRL version {version}, {} bytes",
                    out.display(),
                    krl.len()
                );
            }
        }
        TargetSshCommand::CaPub { target } => print!("{}", c.ssh_ca_pub(target).await?),
        TargetSshCommand::Rotate { target, overlap } => {
            let v = c
                .ssh_rotate(
                    target,
                    &RotateSshCaRequest {
                        overlap: overlap.clone(),
                    },
                )
                .await?;
            if output == Output::Json {
                print_json(&v)?;
            } else {
                for k in &v.keys {
                    println!(
                        "{} {}{}",
                        k.fingerprint,
                        if k.signing { "signing" } else { "retiring" },
                        k.trusted_until
                            .as_deref()
                            .map(|u| format!(", trusted until {u}"))
                            .unwrap_or_default()
                    );
                }
                println!("servers: fetch ca.pub again (portcullis targets ssh ca-pub {target})");
            }
        }
    }
    Ok(())
}
