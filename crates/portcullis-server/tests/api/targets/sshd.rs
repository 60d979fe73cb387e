//! A real OpenSSH `sshd` on a loopback port for SSH certificate tests: it trusts the given
//! user CA keys, maps local users to the certificate principals allowed to log in as them
//! (`AuthorizedPrincipalsFile`), checks a KRL the test can replace at any time
//! (`RevokedKeys`, re-read at every authentication), and accepts nothing but certificates.
//! `login` runs the real `ssh` client against it. Skipped (`None`) where `/usr/sbin/sshd`
//! is missing, unless `PORTCULLIS_REQUIRE_SSHD=1`. The tests run as root, which sshd needs
//! for privilege separation and for logging in as `root`.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";
const SSH: &str = "/usr/bin/ssh";
const SSH_KEYGEN: &str = "/usr/bin/ssh-keygen";
/// `ssh -o` options for `login`: certificate only, no prompts, no known_hosts, quiet.
const SSH_OPTIONS: [&str; 7] = [
    "BatchMode=yes",
    "IdentitiesOnly=yes",
    "StrictHostKeyChecking=no",
    "UserKnownHostsFile=/dev/null",
    "ConnectTimeout=10",
    "PreferredAuthentications=publickey",
    "LogLevel=ERROR",
];

/// A running `sshd -D -e`, killed on drop, with its config, keys and log in a temp dir.
pub(crate) struct Sshd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Sshd {
    /// Starts sshd on 127.0.0.1 with a free port and a fresh ed25519 host key, trusting
    /// `ca_pub` (one or more OpenSSH public key lines) as user CAs, with an empty KRL, and
    /// `principals`: local user → the certificate principals allowed to log in as that user.
    /// Returns once the port accepts connections. `None` (skip) without `/usr/sbin/sshd`,
    /// unless `PORTCULLIS_REQUIRE_SSHD=1`.
    pub(crate) fn start(ca_pub: &str, principals: &[(&str, &[&str])]) -> Option<Sshd> {
        if !Path::new(SSHD).exists() {
            if std::env::var("PORTCULLIS_REQUIRE_SSHD").as_deref() == Ok("1") {
                panic!("PORTCULLIS_REQUIRE_SSHD=1 but {SSHD} is missing (install openssh-server)");
            }
            eprintln!("skipping: {SSHD} is missing");
            return None;
        }
        // The privilege separation directory; sshd refuses to start without it.
        if !Path::new("/run/sshd").is_dir() {
            fs::create_dir_all("/run/sshd").expect("create /run/sshd");
            fs::set_permissions("/run/sshd", fs::Permissions::from_mode(0o755))
                .expect("chmod /run/sshd");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        // sshd needs absolute paths (and re-executes itself with them).
        let d = dir.path().canonicalize().expect("absolute temp dir");
        let host_key = d.join("host_ed25519");
        run(Command::new(SSH_KEYGEN)
            .args(["-t", "ed25519", "-N", "", "-q", "-f"])
            .arg(&host_key));
        fs::write(d.join("ca.pub"), format!("{}\n", ca_pub.trim())).expect("write ca.pub");
        // An empty KRL ("no keys revoked"); sshd also accepts an empty file.
        run(Command::new(SSH_KEYGEN)
            .args(["-q", "-k", "-f"])
            .arg(d.join("revoked.krl")));
        fs::create_dir(d.join("principals")).expect("principals dir");
        for (user, names) in principals {
            let lines: String = names.iter().map(|n| format!("{n}\n")).collect();
            fs::write(d.join("principals").join(user), lines).expect("write principals");
        }
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
            l.local_addr().expect("local addr").port()
        };
        let config = format!(
            "ListenAddress 127.0.0.1:{port}\n\
             HostKey {d}/host_ed25519\n\
             TrustedUserCAKeys {d}/ca.pub\n\
             RevokedKeys {d}/revoked.krl\n\
             AuthorizedPrincipalsFile {d}/principals/%u\n\
             AuthorizedKeysFile none\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\n\
             StrictModes no\n\
             UsePAM no\n\
             UseDNS no\n\
             PrintMotd no\n\
             PidFile none\n\
             LogLevel VERBOSE\n",
            d = d.display()
        );
        fs::write(d.join("sshd_config"), config).expect("write sshd_config");
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .arg("-E")
            .arg(d.join("sshd.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sshd");
        let mut sshd = Sshd { child, port, dir };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = sshd.child.try_wait().expect("sshd status") {
                panic!("sshd exited ({status}) on start:\n{}", sshd.log_tail());
            }
            if Instant::now() > deadline {
                panic!(
                    "sshd did not listen on {addr} within 10 s:\n{}",
                    sshd.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(sshd)
    }

    /// The loopback port sshd listens on.
    #[allow(dead_code)] // the CLI tests connect with their own ssh arguments
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Replaces the KRL sshd checks (it re-reads `RevokedKeys` at every authentication).
    pub(crate) fn set_krl(&self, krl: &[u8]) {
        let path = self.dir.path().join("revoked.krl");
        let tmp = self.dir.path().join("revoked.krl.new");
        fs::write(&tmp, krl).expect("write KRL");
        fs::rename(&tmp, &path).expect("replace KRL");
    }

    /// `ssh user@127.0.0.1 true` with `private_key` (made mode 0600, as ssh requires) and
    /// certificate `cert`, nothing else. `Err` holds ssh's stderr and the tail of sshd's log.
    pub(crate) fn login(&self, user: &str, private_key: &Path, cert: &Path) -> Result<(), String> {
        fs::set_permissions(private_key, fs::Permissions::from_mode(0o600))
            .expect("chmod private key");
        let out = Command::new(SSH)
            .args(["-F", "/dev/null"])
            .args(SSH_OPTIONS.iter().flat_map(|o| ["-o", o]))
            .arg("-i")
            .arg(private_key)
            .arg("-o")
            .arg(format!("CertificateFile={}", cert.display()))
            .args(["-p", &self.port.to_string()])
            .arg(format!("{user}@127.0.0.1"))
            .arg("true")
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .output()
            .expect("run ssh");
        if out.status.success() {
            return Ok(());
        }
        Err(format!(
            "ssh as {user} failed ({}):\n{}\n--- sshd log ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            self.log_tail()
        ))
    }

    /// The last lines of sshd's log, for assertion messages.
    fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh ed25519 user key pair `dir/name` (private, mode 0600) and `dir/name.pub`:
/// the private key's path and the public key line.
pub(crate) fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    run(Command::new(SSH_KEYGEN)
        .args(["-t", "ed25519", "-N", "", "-q", "-f"])
        .arg(&key));
    let public = fs::read_to_string(dir.join(format!("{name}.pub"))).expect("read public key");
    (key, public.trim().to_owned())
}

/// Runs `cmd`, panicking with its stderr unless it succeeds.
fn run(cmd: &mut Command) {
    let out = cmd.stdin(Stdio::null()).output().expect("run ssh-keygen");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
