//! The SIEM export's sinks (`audit_export`): syslog over TCP or TLS, and a JSON-lines file.
//! Which events go out, and when, is the worker's business (`crate::workers::audit_export`);
//! formats are `portcullis_core::audit::export`.
//!
//! Invariants:
//! - `deliver` returns `Ok` only once every event of the batch was written: flushed to the
//!   socket (syslog) or fsynced (file). On any error nothing is assumed delivered and the next
//!   attempt resends the whole batch.
//! - Syslog: a connection the receiver closed is noticed before a batch is written to it (a
//!   read that finds the end of the stream), so a batch is not lost into a dead socket that
//!   still accepts writes. TLS verifies the receiver's certificate and name, against the public
//!   roots or `audit_export_ca`.
//! - File: lines are appended, never rewritten; a partial last line (a crash mid-write) is cut
//!   off before resuming, and the last whole line tells where the file stands, so a restart
//!   after a crash between the write and the cursor's commit neither skips nor repeats an
//!   event. The file is rotated (`.1` newest … `.N` oldest) before it grows past its limit,
//!   and created readable by its owner only.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::api::AuditEventView;
use portcullis_core::audit::export::{ExportSink, json_line, syslog_frame};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connecting, and writing one batch, each take at most this long.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the export cannot be set up (at start).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot read audit_export_ca {path}: {why}")]
    Ca { path: PathBuf, why: String },
}

/// Why a batch was not delivered (no secrets: the sink's name and the reason).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DeliveryError(pub String);

/// How the sinks are configured.
#[derive(Debug, Clone)]
pub struct Settings {
    pub sink: ExportSink,
    /// Trusted for `syslog+tls` instead of the public roots.
    pub ca: Option<PathBuf>,
    pub file_max_bytes: u64,
    pub file_keep: u32,
    /// The HOSTNAME of syslog messages: this deployment's public host.
    pub hostname: String,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}

/// A configured sink.
pub enum Sink {
    Syslog(SyslogSink),
    File(FileSink),
}

impl Sink {
    pub fn new(settings: Settings) -> Result<Self, SetupError> {
        Ok(match settings.sink {
            ExportSink::Syslog { host, port, tls } => {
                let tls = if tls {
                    Some(tls_connector(settings.ca.as_deref())?)
                } else {
                    None
                };
                Sink::Syslog(SyslogSink {
                    host,
                    port,
                    tls,
                    hostname: settings.hostname,
                    conn: None,
                })
            }
            ExportSink::File { path } => Sink::File(FileSink {
                path,
                max_bytes: settings.file_max_bytes,
                keep: settings.file_keep,
            }),
        })
    }

    /// The last event this sink is known to hold, where it can tell (a file; a syslog receiver
    /// cannot be asked). Cuts off a partial last line.
    pub async fn resume_after(&mut self) -> Result<Option<i64>, DeliveryError> {
        match self {
            Sink::Syslog(_) => Ok(None),
            Sink::File(f) => {
                let f = f.clone();
                tokio::task::spawn_blocking(move || f.last_seq())
                    .await
                    .map_err(|_| DeliveryError("the export file task failed".into()))?
                    .map_err(|e| DeliveryError(format!("cannot read the export file: {e}")))
            }
        }
    }

    /// Delivers `events` in order.
    pub async fn deliver(&mut self, events: &[AuditEventView]) -> Result<(), DeliveryError> {
        match self {
            Sink::Syslog(s) => s.deliver(events).await,
            Sink::File(f) => {
                let f = f.clone();
                let lines: Vec<String> = events.iter().map(json_line).collect();
                tokio::task::spawn_blocking(move || f.append(&lines))
                    .await
                    .map_err(|_| DeliveryError("the export file task failed".into()))?
                    .map_err(|e| DeliveryError(format!("cannot write the export file: {e}")))
            }
        }
    }
}

fn tls_connector(ca: Option<&Path>) -> Result<tokio_rustls::TlsConnector, SetupError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let bad = |why: String| SetupError::Ca {
                path: path.to_owned(),
                why,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad("no CERTIFICATE block in the file".into()));
            }
            for c in certs {
                roots.add(c).map_err(|e| bad(e.to_string()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError::Ca {
            path: PathBuf::new(),
            why: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// RFC 5424 over TCP or TLS, one connection kept open between batches.
pub struct SyslogSink {
    host: String,
    port: u16,
    tls: Option<tokio_rustls::TlsConnector>,
    hostname: String,
    conn: Option<Box<dyn Stream>>,
}

impl SyslogSink {
    fn name(&self) -> String {
        ExportSink::Syslog {
            host: self.host.clone(),
            port: self.port,
            tls: self.tls.is_some(),
        }
        .name()
    }

    async fn connect(&self) -> Result<Box<dyn Stream>, DeliveryError> {
        let tcp = tokio::time::timeout(
            IO_TIMEOUT,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| DeliveryError(format!("{}: connecting timed out", self.name())))?
        .map_err(|e| DeliveryError(format!("{}: cannot connect: {e}", self.name())))?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let name = ServerName::try_from(self.host.clone())
            .map_err(|_| DeliveryError(format!("{}: not a TLS server name", self.name())))?;
        let stream = tokio::time::timeout(IO_TIMEOUT, tls.connect(name, tcp))
            .await
            .map_err(|_| DeliveryError(format!("{}: the TLS handshake timed out", self.name())))?
            .map_err(|e| DeliveryError(format!("{}: TLS: {e}", self.name())))?;
        Ok(Box::new(stream))
    }

    /// Whether a kept connection still looks open: the receiver never sends, so a read that is
    /// ready means the end of the stream or an error.
    async fn still_open(conn: &mut Box<dyn Stream>) -> bool {
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::ZERO, conn.read(&mut buf)).await {
            Err(_) => true,
            Ok(Ok(n)) => n > 0,
            Ok(Err(_)) => false,
        }
    }

    async fn deliver(&mut self, events: &[AuditEventView]) -> Result<(), DeliveryError> {
        let mut payload = Vec::new();
        for e in events {
            payload.extend_from_slice(&syslog_frame(e, &self.hostname));
        }
        let kept = match self.conn.take() {
            Some(mut c) => Self::still_open(&mut c).await.then_some(c),
            None => None,
        };
        let mut conn = match kept {
            Some(c) => c,
            None => self.connect().await?,
        };
        let written = tokio::time::timeout(IO_TIMEOUT, async {
            conn.write_all(&payload).await?;
            conn.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => {
                self.conn = Some(conn);
                Ok(())
            }
            Ok(Err(e)) => Err(DeliveryError(format!("{}: write failed: {e}", self.name()))),
            Err(_) => Err(DeliveryError(format!("{}: write timed out", self.name()))),
        }
    }
}

/// JSON lines appended to a file, rotated by size.
#[derive(Debug, Clone)]
pub struct FileSink {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
}

/// How much of a file's end is read to find its last line (an event is far smaller).
const TAIL: u64 = 1024 * 1024;

impl FileSink {
    fn rotated(&self, n: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    fn open(&self) -> std::io::Result<std::fs::File> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .mode(0o600)
            .open(&self.path)
    }

    /// The seq of the last whole line of the current file (or, when it is empty, of the newest
    /// rotated one), after cutting off a partial last line.
    fn last_seq(&self) -> std::io::Result<Option<i64>> {
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = self.open()?;
        let len = file.metadata()?.len();
        if len > 0 {
            let start = len.saturating_sub(TAIL);
            file.seek(SeekFrom::Start(start))?;
            let mut tail = Vec::new();
            file.read_to_end(&mut tail)?;
            let whole = match tail.iter().rposition(|b| *b == b'\n') {
                Some(i) => i + 1,
                None => 0,
            };
            if whole < tail.len() {
                // A crash mid-write left part of a line: it was never counted as delivered.
                file.set_len(start + whole as u64)?;
                file.sync_all()?;
            }
            if let Some(seq) = last_line_seq(&tail[..whole]) {
                return Ok(Some(seq));
            }
        }
        match std::fs::read(self.rotated(1)) {
            Ok(bytes) => Ok(last_line_seq(&bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn append(&self, lines: &[String]) -> std::io::Result<()> {
        let mut file = self.open()?;
        let mut size = file.metadata()?.len();
        let mut buf = Vec::new();
        for line in lines {
            let n = line.len() as u64 + 1;
            if size > 0 && size + buf.len() as u64 + n > self.max_bytes {
                file.write_all(&buf)?;
                file.sync_all()?;
                buf.clear();
                self.rotate()?;
                file = self.open()?;
                size = 0;
            }
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
        }
        file.write_all(&buf)?;
        file.sync_all()
    }

    /// `path` becomes `path.1`, `path.1` becomes `path.2`, …; the oldest beyond `keep` goes.
    fn rotate(&self) -> std::io::Result<()> {
        match std::fs::remove_file(self.rotated(self.keep)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        for n in (1..self.keep).rev() {
            match std::fs::rename(self.rotated(n), self.rotated(n + 1)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(&self.path, self.rotated(1))?;
        if let Some(dir) = self.path.parent()
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// The `seq` of the last line of `bytes` that is an exported event.
fn last_line_seq(bytes: &[u8]) -> Option<i64> {
    bytes
        .split(|b| *b == b'\n')
        .rev()
        .filter(|l| !l.is_empty())
        .find_map(|l| {
            serde_json::from_slice::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["seq"].as_i64())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(seq: i64) -> AuditEventView {
        AuditEventView {
            seq,
            time: "2026-12-07T12:00:00Z".into(),
            actor: "system".into(),
            action: "test.event".into(),
            target: "x".into(),
            outcome: "success".into(),
            details: serde_json::json!({ "pad": "x".repeat(100) }),
            prev_hash: "00".into(),
            hash: "11".into(),
        }
    }

    fn sink(dir: &Path, max_bytes: u64, keep: u32) -> FileSink {
        FileSink {
            path: dir.join("audit.jsonl"),
            max_bytes,
            keep,
        }
    }

    fn seqs(path: &Path) -> Vec<i64> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).expect("test")["seq"]
                    .as_i64()
                    .expect("test")
            })
            .collect()
    }

    #[test]
    fn a_partial_last_line_is_cut_and_the_last_whole_one_tells_the_position() {
        let dir = tempfile::tempdir().expect("test");
        let f = sink(dir.path(), 1 << 20, 3);
        assert_eq!(f.last_seq().expect("test"), None);
        f.append(&[json_line(&view(1)), json_line(&view(2))])
            .expect("test");
        let mut raw = std::fs::OpenOptions::new()
            .append(true)
            .open(&f.path)
            .expect("test");
        raw.write_all(b"{\"seq\":3,\"ti").expect("test");
        assert_eq!(f.last_seq().expect("test"), Some(2));
        f.append(&[json_line(&view(3))]).expect("test");
        assert_eq!(seqs(&f.path), vec![1, 2, 3]);
    }

    #[test]
    fn rotation_keeps_every_line_once_and_the_newest_files() {
        let dir = tempfile::tempdir().expect("test");
        let f = sink(dir.path(), 4096, 3);
        let line_len = json_line(&view(1)).len() as u64 + 1;
        let per_file = 4096 / line_len;
        let total = per_file * 3 + 2;
        for chunk in (1..=total as i64).collect::<Vec<_>>().chunks(7) {
            let lines: Vec<String> = chunk.iter().map(|s| json_line(&view(*s))).collect();
            f.append(&lines).expect("test");
        }
        let mut all = Vec::new();
        for n in (1..=3).rev() {
            let p = f.rotated(n);
            assert!(std::fs::metadata(&p).expect("test").len() <= 4096);
            all.extend(seqs(&p));
        }
        all.extend(seqs(&f.path));
        assert_eq!(all, (1..=total as i64).collect::<Vec<_>>());
        // One more rotation drops the oldest file, never a line of the others.
        f.append(
            &(0..per_file as i64)
                .map(|i| json_line(&view(total as i64 + 1 + i)))
                .collect::<Vec<_>>(),
        )
        .expect("test");
        assert!(!f.rotated(4).exists());
        // After a rotation left the current file empty, the position comes from `.1`.
        std::fs::write(&f.path, b"").expect("test");
        assert_eq!(
            f.last_seq().expect("test"),
            seqs(&f.rotated(1)).last().copied()
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&f.path)
            .expect("test")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
