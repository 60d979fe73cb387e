//! Prometheus metrics: request counts and latencies per matched route, and the edge's refusals.
//!
//! The recorder is process-global (the `metrics` facade is), so it is installed once and every
//! application in the process (tests run several) renders from the same handle.
//!
//! Invariants:
//! - Label values come from closed sets: the method is one of the standard ones or `OTHER`,
//!   the route is a route template or `unmatched`, the status a number. A client cannot make
//!   `/metrics` grow by inventing methods or paths.
//! - Every metric has `# HELP` text ([`DESCRIPTIONS`]).

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Every metric this server records, with its `# HELP` text.
pub const DESCRIPTIONS: &[(&str, &str)] = &[
    (
        "http_requests_total",
        "HTTP requests answered, by method (standard methods, else OTHER), route template and status.",
    ),
    (
        "http_request_duration_seconds",
        "Time to answer an HTTP request, by method, route template and status.",
    ),
    (
        "http_rate_limited_total",
        "Requests refused with 429 by a rate limit, by limit (address or global).",
    ),
    (
        "http_connections_refused_total",
        "Connections closed at accept, by reason (per_address_cap).",
    ),
    (
        "http_panics_total",
        "Handler panics answered with 500 instead of a dropped connection.",
    ),
    (
        "portcullis_signin_failures_total",
        "Failed sign-in steps, by reason (the audit event's reason code).",
    ),
];

/// The process's Prometheus handle (installing the recorder and the descriptions on first use).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new().install_recorder().ok()?;
            for (name, help) in DESCRIPTIONS {
                if name.ends_with("_seconds") {
                    metrics::describe_histogram!(*name, metrics::Unit::Seconds, *help);
                } else {
                    metrics::describe_counter!(*name, *help);
                }
            }
            Some(handle)
        })
        .as_ref()
}

/// The method as a label: the standard ones by name, anything else `OTHER`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// Middleware recording `http_requests_total` and `http_request_duration_seconds`.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(req.method());
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", status),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    resp
}

/// How one target gauge is read from the counts (and the time they were read).
type Gauge = fn(&portcullis_store::targets::TargetStats, i64) -> f64;

/// The target operation metrics of this tenant in Prometheus text format: per target, the
/// operations applied, pending (queue depth) and dead, the failed attempts, and the age of the
/// oldest pending revoke (0 when none). Target names are slugs, safe as label values.
pub fn target_lines(stats: &[portcullis_store::targets::TargetStats], now_us: i64) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if stats.is_empty() {
        return out;
    }
    let gauges: [(&str, &str, Gauge); 5] = [
        (
            "portcullis_target_operations_applied",
            "Target operations applied, by target.",
            |s, _| s.applied as f64,
        ),
        (
            "portcullis_target_operations_pending",
            "Target operations waiting to be applied (queue depth), by target.",
            |s, _| s.pending as f64,
        ),
        (
            "portcullis_target_operations_dead",
            "Target operations dead-lettered, by target.",
            |s, _| s.dead as f64,
        ),
        (
            "portcullis_target_attempts_failed",
            "Failed attempts at target operations, by target.",
            |s, _| s.failed_attempts as f64,
        ),
        (
            "portcullis_target_oldest_pending_revoke_seconds",
            "Age of the oldest revoke not yet applied at a target (0 when none).",
            |s, now_us| {
                0.0f64.max(
                    s.oldest_pending_revoke_us
                        .map_or(0.0, |t| (now_us - t) as f64 / 1e6),
                )
            },
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for s in stats {
            let _ = writeln!(
                out,
                "{name}{{target=\"{}\"}} {}",
                s.target,
                value(s, now_us)
            );
        }
    }
    out
}

/// A label value in the text format: `\`, `"` and line breaks escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The posture report's findings per severity (high, medium, low).
pub fn posture_lines(counts: &[usize; 3]) -> String {
    use std::fmt::Write;
    let mut out = String::from(
        "# HELP portcullis_posture_findings Findings of the posture report (portcullis posture), by severity.\n# TYPE portcullis_posture_findings gauge\n",
    );
    for (severity, n) in ["high", "medium", "low"].iter().zip(counts) {
        let _ = writeln!(
            out,
            "portcullis_posture_findings{{severity=\"{severity}\"}} {n}"
        );
    }
    out
}

/// The tenant's domain in Prometheus text format (every family with HELP and TYPE).
pub fn domain_lines(d: &portcullis_store::stats::DomainSnapshot, now_us: i64) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut family = |name: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let s = &d.stats;
    family(
        "portcullis_active_grants",
        "Grants in effect now (activations and active assignments), by role.",
        s.active_grants
            .iter()
            .map(|(r, n)| (format!("{{role=\"{}\"}}", label(r)), *n as f64))
            .collect(),
    );
    family(
        "portcullis_requests_pending_approval",
        "Activation requests waiting for an approver's decision.",
        vec![(String::new(), s.pending_approval as f64)],
    );
    family(
        "portcullis_outbox_pending",
        "Alert and notification deliveries waiting, by channel.",
        s.outbox_pending
            .iter()
            .map(|(c, n, _)| (format!("{{channel=\"{}\"}}", label(c)), *n as f64))
            .collect(),
    );
    family(
        "portcullis_outbox_oldest_pending_seconds",
        "Age of the oldest delivery waiting, by channel.",
        s.outbox_pending
            .iter()
            .map(|(c, _, oldest)| {
                (
                    format!("{{channel=\"{}\"}}", label(c)),
                    ((now_us - oldest).max(0)) as f64 / 1e6,
                )
            })
            .collect(),
    );
    family(
        "portcullis_outbox_dead",
        "Deliveries dead-lettered (retry them: portcullis alerts retry).",
        vec![(String::new(), s.outbox_dead as f64)],
    );
    family(
        "portcullis_audit_head_sequence",
        "Sequence number of the newest audit event.",
        vec![(String::new(), s.audit_head_seq as f64)],
    );
    family(
        "portcullis_audit_export_lag_events",
        "Audit events written and not yet delivered to the SIEM export, by sink.",
        s.export_lag
            .iter()
            .map(|l| (format!("{{sink=\"{}\"}}", label(&l.sink)), l.events as f64))
            .collect(),
    );
    family(
        "portcullis_audit_export_lag_seconds",
        "Age of the oldest audit event not yet delivered to the SIEM export (0 when none waits), by sink.",
        s.export_lag
            .iter()
            .map(|l| {
                (
                    format!("{{sink=\"{}\"}}", label(&l.sink)),
                    l.oldest_us
                        .map_or(0.0, |t| ((now_us - t).max(0)) as f64 / 1e6),
                )
            })
            .collect(),
    );
    family(
        "portcullis_audit_seconds_since_checkpoint",
        "Seconds since the newest signed audit checkpoint (absent before the first).",
        d.checkpoint_at_us
            .map(|at| vec![(String::new(), ((now_us - at).max(0)) as f64 / 1e6)])
            .unwrap_or_default(),
    );
    family(
        "portcullis_breakglass_usable",
        "Break-glass accounts usable now (enabled, with their credential and Global Administrator).",
        vec![(String::new(), d.breakglass_usable as f64)],
    );
    family(
        "portcullis_breakglass_required",
        "Break-glass accounts required.",
        vec![(String::new(), d.breakglass_required as f64)],
    );
    family(
        "portcullis_breakglass_drills_overdue",
        "Break-glass accounts whose last drill is older than the drill age.",
        vec![(String::new(), d.drills_overdue as f64)],
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_are_other() {
        for m in ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            let method: Method = m.parse().expect("method");
            assert_eq!(method_label(&method), m);
        }
        for m in ["FOO", "get", "PROPFIND", "X1234567"] {
            let method: Method = m.parse().expect("method");
            assert_eq!(method_label(&method), "OTHER", "{m}");
        }
    }
}
