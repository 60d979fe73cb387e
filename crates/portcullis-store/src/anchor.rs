//! Anchors: every checkpoint the writer commits is also written outside the database, so
//! that deleting the newest history (checkpoints and the events after the remaining last one)
//! can be proved against a record the database's owner cannot rewrite.
//!
//! Invariants:
//! - An anchor is written only after the transaction holding its checkpoint committed, so
//!   every anchored checkpoint was durable in the database (a database that lacks one has lost
//!   or deleted history).
//! - Anchoring never blocks or fails a write: a sink that cannot take the record reports why
//!   and the writer logs it at ERROR and raises an alert-worthy audit event.
//! - [`AnchorFile`] appends one JSON line per checkpoint and fsyncs it (and the directory when
//!   it creates the file); a line torn by a crash is ended with a newline before the next
//!   record, so the torn line stays alone on its line and the reader skips it
//!   ([`portcullis_core::audit::parse_anchor_lines`]).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use portcullis_core::audit::AnchorRecord;

/// Somewhere outside the database that keeps checkpoint records.
pub trait AnchorSink: Send + Sync + std::fmt::Debug + 'static {
    /// A short name for logs and audit events (`file`, `webhook`).
    fn name(&self) -> &'static str;
    /// Records `record` durably, blocking until done. `Err` carries a reason that is safe to
    /// put in an audit event (no paths, no secrets).
    fn append(&self, record: &AnchorRecord) -> Result<(), String>;
}

/// Appends records to a file, one JSON line each, fsynced (`audit_anchor_file`).
#[derive(Debug)]
pub struct AnchorFile {
    path: PathBuf,
    /// One append at a time from this process (the writer is single, but tests share sinks).
    lock: Mutex<()>,
}

impl AnchorFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            lock: Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append_line(&self, line: &str) -> std::io::Result<()> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let existed = self.path.exists();
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .mode(0o600)
            .open(&self.path)?;
        let mut out = String::with_capacity(line.len() + 2);
        if ends_mid_line(&f)? {
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
        f.write_all(out.as_bytes())?;
        f.sync_data()?;
        if !existed && let Some(dir) = self.path.parent() {
            // The new file's directory entry must be durable too.
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// Whether the file's last byte is not a newline (an earlier append was torn).
fn ends_mid_line(f: &File) -> std::io::Result<bool> {
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(false);
    }
    let mut last = [0u8; 1];
    f.read_exact_at(&mut last, len - 1)?;
    Ok(last[0] != b'\n')
}

impl AnchorSink for AnchorFile {
    fn name(&self) -> &'static str {
        "file"
    }

    fn append(&self, record: &AnchorRecord) -> Result<(), String> {
        let line = serde_json::to_string(record).map_err(|_| "cannot encode".to_owned())?;
        self.append_line(&line).map_err(|e| {
            tracing::error!(path = %self.path.display(), error = %e, "cannot append to the audit anchor file");
            // The kind only: the OS message may name the path.
            format!("cannot append to the anchor file ({})", e.kind())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: i64) -> AnchorRecord {
        AnchorRecord {
            seq,
            hash: "00".repeat(32),
            digest: "11".repeat(32),
            prev_seq: 0,
            prev_digest: "00".repeat(32),
            key_id: "k".into(),
            signature: "22".repeat(64),
            time: "2024-01-01T00:00:00Z".into(),
            checkpoint_events: 10,
            checkpoint_seconds: 60,
        }
    }

    #[test]
    fn appends_lines_and_finishes_a_torn_one() {
        let dir = tempfile::tempdir().expect("tmp");
        let sink = AnchorFile::new(dir.path().join("anchor.jsonl"));
        sink.append(&record(1)).expect("append");
        // A crash mid-append left half a line.
        let mut f = OpenOptions::new()
            .append(true)
            .open(sink.path())
            .expect("open");
        f.write_all(b"{\"seq\":2,\"ha").expect("torn");
        sink.append(&record(3)).expect("append");
        let text = std::fs::read_to_string(sink.path()).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].contains("\"seq\":1"));
        assert!(lines[2].contains("\"seq\":3"));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(sink.path()).expect("meta").permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_missing_directory_is_an_error_without_the_path() {
        let sink = AnchorFile::new("/nonexistent-portcullis-dir/anchor.jsonl");
        let err = sink.append(&record(1)).expect_err("fails");
        assert!(!err.contains("nonexistent"), "{err}");
    }
}
