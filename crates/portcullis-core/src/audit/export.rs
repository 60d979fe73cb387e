//! The SIEM export's formats: where events go (`audit_export`) and what each message is.
//!
//! - `syslog://host[:port]` sends RFC 5424 messages over TCP (port 514 by default),
//!   `syslog+tls://host[:port]` over TLS (RFC 5425, port 6514 by default); both with octet
//!   counting (`LEN SP MSG`, RFC 6587 §3.4.1 / RFC 5425 §4.3), so a message may hold any byte.
//! - `file:///absolute/path` appends one JSON event per line.
//!
//! Invariants:
//! - Every message's body is the event exactly as the API shows it (`AuditEventView`: seq,
//!   time, actor, action, target, outcome, details, prev_hash, hash), as JSON in ASCII (other
//!   characters escaped), so a receiver can check the chain and see any gap in `seq`.
//! - The syslog header is built only from printable ASCII (RFC 5424 §6): the host name and the
//!   action are cleaned, never trusted.

use std::path::PathBuf;

use crate::api::AuditEventView;

/// Default port of syslog over TCP.
pub const SYSLOG_TCP_PORT: u16 = 514;
/// Default port of syslog over TLS (RFC 5425).
pub const SYSLOG_TLS_PORT: u16 = 6514;

/// Where the SIEM export delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportSink {
    Syslog { host: String, port: u16, tls: bool },
    File { path: PathBuf },
}

/// Why an `audit_export` value was refused (the value itself is not repeated).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "audit_export must be syslog://host:port, syslog+tls://host:port or file:///absolute/path ({0})"
)]
pub struct SinkError(&'static str);

impl ExportSink {
    /// Parses an `audit_export` value.
    pub fn parse(raw: &str) -> Result<Self, SinkError> {
        let url = url::Url::parse(raw.trim()).map_err(|_| SinkError("not a URL"))?;
        let tls = match url.scheme() {
            "syslog" => false,
            "syslog+tls" => true,
            "file" => {
                let raw = raw.trim();
                if !(raw.starts_with("file:///") || raw.starts_with("file://localhost/")) {
                    return Err(SinkError("a file URL is file:///absolute/path"));
                }
                if url
                    .host_str()
                    .is_some_and(|h| !h.is_empty() && h != "localhost")
                {
                    return Err(SinkError("a file URL names a local path, not a host"));
                }
                if url.query().is_some() || url.fragment().is_some() {
                    return Err(SinkError("a file URL has no query or fragment"));
                }
                let path = url
                    .to_file_path()
                    .map_err(|_| SinkError("not an absolute file path"))?;
                if path.file_name().is_none() || raw.ends_with('/') {
                    return Err(SinkError("the file URL must name a file"));
                }
                return Ok(Self::File { path });
            }
            _ => return Err(SinkError("unknown scheme")),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(SinkError("no credentials in a syslog URL"));
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(SinkError("a syslog URL is only a host and a port"));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            _ => return Err(SinkError("no host")),
        };
        let port = url.port().unwrap_or(if tls {
            SYSLOG_TLS_PORT
        } else {
            SYSLOG_TCP_PORT
        });
        if port == 0 {
            return Err(SinkError("port 0"));
        }
        Ok(Self::Syslog { host, port, tls })
    }

    /// The sink's name in the cursor table, metrics and logs: one per destination, so replicas
    /// configured alike share one cursor.
    pub fn name(&self) -> String {
        match self {
            Self::Syslog { host, port, tls } => {
                let scheme = if *tls { "syslog+tls" } else { "syslog" };
                if host.contains(':') {
                    format!("{scheme}://[{host}]:{port}")
                } else {
                    format!("{scheme}://{host}:{port}")
                }
            }
            Self::File { path } => format!("file://{}", path.display()),
        }
    }
}

/// The event as one line of JSON (ASCII only), without the line break.
pub fn json_line(event: &AuditEventView) -> String {
    let json = serde_json::to_string(event).unwrap_or_else(|_| "{}".to_owned());
    ascii_json(&json)
}

/// Escapes every non-ASCII character of serialised JSON as `\uXXXX` (such characters only occur
/// inside strings, where the escape means the same).
fn ascii_json(json: &str) -> String {
    if json.is_ascii() {
        return json.to_owned();
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// RFC 5424 facility 13, "log audit".
const FACILITY_LOG_AUDIT: u8 = 13;

/// The syslog severity of an event: break-glass events are `alert` (1), failures `warning` (4),
/// everything else `notice` (5).
pub fn severity(event: &AuditEventView) -> u8 {
    if event.action.starts_with("breakglass.") {
        1
    } else if event.outcome != "success" {
        4
    } else {
        5
    }
}

/// `s` as an RFC 5424 header field: printable ASCII (33–126) only, at most `max` characters,
/// `-` when nothing is left.
fn header_field(s: &str, max: usize) -> String {
    let v: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if v.is_empty() { "-".to_owned() } else { v }
}

/// One RFC 5424 message for `event`, framed by octet counting: `LEN SP <PRI>1 TIMESTAMP HOST
/// portcullis - ACTION - JSON`. `hostname` names this deployment (its public host).
pub fn syslog_frame(event: &AuditEventView, hostname: &str) -> Vec<u8> {
    let pri = u16::from(FACILITY_LOG_AUDIT) * 8 + u16::from(severity(event));
    let msg = format!(
        "<{pri}>1 {} {} portcullis - {} - {}",
        header_field(&event.time, 64),
        header_field(hostname, 255),
        header_field(&event.action, 32),
        json_line(event),
    );
    let mut out = format!("{} ", msg.len()).into_bytes();
    out.extend_from_slice(msg.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str, outcome: &str) -> AuditEventView {
        AuditEventView {
            seq: 7,
            time: "2026-12-07T12:00:00.123456Z".into(),
            actor: "user:ada".into(),
            action: action.into(),
            target: "role:Global Administrator".into(),
            outcome: outcome.into(),
            details: serde_json::json!({"note": "Zoë ✓ 😀"}),
            prev_hash: "00".into(),
            hash: "11".into(),
        }
    }

    #[test]
    fn syslog_and_file_urls_parse_with_default_ports() {
        assert_eq!(
            ExportSink::parse("syslog://siem.example.com").expect("test"),
            ExportSink::Syslog {
                host: "siem.example.com".into(),
                port: 514,
                tls: false
            }
        );
        assert_eq!(
            ExportSink::parse("syslog+tls://[::1]:7000")
                .expect("test")
                .name(),
            "syslog+tls://[::1]:7000"
        );
        assert_eq!(
            ExportSink::parse("syslog+tls://10.0.0.1")
                .expect("test")
                .name(),
            "syslog+tls://10.0.0.1:6514"
        );
        assert_eq!(
            ExportSink::parse("file:///var/log/portcullis/audit.jsonl").expect("test"),
            ExportSink::File {
                path: "/var/log/portcullis/audit.jsonl".into()
            }
        );
    }

    #[test]
    fn bad_sinks_are_refused() {
        for bad in [
            "",
            "syslog",
            "udp://siem:514",
            "http://siem:514",
            "syslog://",
            "syslog://user:secret@siem:514",
            "syslog://siem:514/path",
            "syslog://siem:514?x=1",
            "syslog://siem:0",
            "file://remote-host/var/log/a.jsonl",
            "file:///var/log/",
            "file:relative.jsonl",
        ] {
            assert!(ExportSink::parse(bad).is_err(), "{bad} was accepted");
        }
        let e = ExportSink::parse("syslog://user:secret@siem:514").expect_err("test");
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    #[test]
    fn a_syslog_frame_is_octet_counted_rfc5424_with_the_event_as_ascii_json() {
        let e = event("role.activated", "success");
        let frame = String::from_utf8(syslog_frame(&e, "pam.example.com")).expect("test");
        let (len, msg) = frame.split_once(' ').expect("test");
        assert_eq!(len.parse::<usize>().expect("test"), msg.len());
        assert!(
            msg.starts_with(
                "<109>1 2026-12-07T12:00:00.123456Z pam.example.com portcullis - role.activated - {"
            ),
            "{msg}"
        );
        assert!(msg.is_ascii());
        let json = msg.split_once(" - {").expect("test").1;
        let back: serde_json::Value = serde_json::from_str(&format!("{{{json}")).expect("test");
        assert_eq!(back["details"]["note"], "Zoë ✓ 😀");
        assert_eq!(back["seq"], 7);
    }

    #[test]
    fn severity_follows_breakglass_and_outcome() {
        assert_eq!(severity(&event("breakglass.used", "success")), 1);
        assert_eq!(severity(&event("signin.failed", "failure")), 4);
        assert_eq!(severity(&event("role.activated", "success")), 5);
    }

    #[test]
    fn header_fields_keep_printable_ascii_only() {
        let e = event("evil action\n<13>1 forged", "success");
        let frame = String::from_utf8(syslog_frame(&e, "bad host\r\n")).expect("test");
        let msg = frame.split_once(' ').expect("test").1;
        let header: Vec<&str> = msg.splitn(8, ' ').collect();
        assert_eq!(header[2], "badhost");
        assert_eq!(header[5], "evilaction<13>1forged");
        assert!(!msg.contains('\n'));
    }
}
