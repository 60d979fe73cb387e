//! What goes out to channels: the retry schedule, the SMS cap's note, SMS body templates and
//! the message text. Invariant: values put into a body template are escaped for its content
//! type, so an event's text cannot change the request's structure.

use time::Duration;

use super::alert::Alert;
use crate::audit::AuditEvent;

/// How long the SMS cap counts messages over.
pub const SMS_CAP_PERIOD: Duration = Duration::hours(1);

/// What an SMS that goes out says about those the cap held back before it.
pub fn suppressed_note(n: i64, cap: i64) -> String {
    let what = if n == 1 {
        "message was"
    } else {
        "messages were"
    };
    format!(
        " [+{n} earlier {what} not sent: SMS cap of {cap} per hour; portcullis alerts list --state suppressed]"
    )
}

/// When attempt `n` (1-based) failed, how long until the next: 5 s, 10 s, 20 s, … capped at
/// one hour.
pub fn backoff(n: u32) -> Duration {
    let exp = n.saturating_sub(1).min(20);
    let secs = 5i64.saturating_mul(1i64 << exp);
    Duration::seconds(secs.min(3600))
}

/// How values are escaped into a body template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Inside a JSON string literal (the template supplies the quotes).
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// Plain text.
    Plain,
}

impl Escape {
    /// The escaping for a `Content-Type`.
    pub fn for_content_type(ct: &str) -> Self {
        let ct = ct.to_ascii_lowercase();
        if ct.starts_with("application/json") {
            Self::Json
        } else if ct.starts_with("application/x-www-form-urlencoded") {
            Self::Form
        } else {
            Self::Plain
        }
    }

    fn apply(self, s: &str) -> String {
        match self {
            Self::Json => {
                let quoted = serde_json::Value::String(s.to_owned()).to_string();
                quoted[1..quoted.len() - 1].to_owned()
            }
            Self::Form => form_encode(s),
            Self::Plain => s.to_owned(),
        }
    }
}

fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Why a body template is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("the template must contain {{message}}")]
    NoMessage,
    #[error("the template is at most 2000 characters")]
    TooLong,
}

/// Checks an SMS body template at registration.
pub fn validate_template(t: &str) -> Result<(), TemplateError> {
    if t.len() > 2000 {
        return Err(TemplateError::TooLong);
    }
    if !t.contains("{message}") {
        return Err(TemplateError::NoMessage);
    }
    Ok(())
}

/// The body for one recipient: `{to}` and `{message}` replaced, each value escaped.
pub fn render_template(t: &str, to: &str, message: &str, escape: Escape) -> String {
    // One pass, so a value that contains "{message}" is not substituted again.
    let mut out = String::with_capacity(t.len() + message.len());
    let mut rest = t;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(r) = tail.strip_prefix("{to}") {
            out.push_str(&escape.apply(to));
            rest = r;
        } else if let Some(r) = tail.strip_prefix("{message}") {
            out.push_str(&escape.apply(message));
            rest = r;
        } else {
            out.push('{');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// The text of an alert as people read it (email body, SMS, chat).
pub fn message_text(a: &Alert, e: &AuditEvent) -> String {
    format!(
        "[{}] {} (rule {}, audit event #{})",
        a.severity.as_str().to_uppercase(),
        a.summary,
        a.rule,
        e.seq
    )
}
