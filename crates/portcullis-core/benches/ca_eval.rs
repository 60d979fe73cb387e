//! Conditional-access evaluation in-process: one sign-in against 200 policies, by a user in 50
//! groups (3 roles eligible, 1 active), with 10 named locations (IPv4 and IPv6) and 20 OIDC
//! clients. The policies mix user/group/role/guest/`all` includes and excludes, locations,
//! applications, strength conditions, sign-in frequencies, report-only and disabled states;
//! several of them apply to the benchmarked sign-in.
//!
//! Prints p50/p99 over 100,000 individually timed evaluations (and over 20,000 evaluations
//! followed by serialising the decision to JSON, as the audit event does), the time to compile
//! the set, and one lockout-guard run; then criterion's own figures.
//!
//! Run: `cargo bench -p portcullis-core --bench ca_eval`

use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration as StdDuration, Instant};

use criterion::{Criterion, criterion_group};
use portcullis_core::conditional_access::{
    AccountProfile, Application, AuthenticationFlow, CompiledPolicies, NamedLocation, Policy,
    PolicySpec, SignInContext, Subject, SubjectKind, check_lockout,
};
use portcullis_core::session::AuthStrength;
use serde_json::json;
use time::{Duration, OffsetDateTime};

const POLICIES: usize = 200;
const GROUPS_OF_USER: usize = 50;

fn locations() -> Vec<NamedLocation> {
    (0..10u8)
        .map(|i| {
            let cidrs = [
                format!("10.{i}.0.0/16"),
                format!("172.{}.{i}.0/24", 16 + i),
                format!("2001:db8:{i}::/48"),
            ];
            NamedLocation::parse(&format!("site-{i}"), &cidrs, i % 3 == 0).expect("location")
        })
        .collect()
}

/// Group `g{n}`: the user is in g000..g049 (every other one of g000..g099).
fn group(n: usize) -> String {
    format!("group:g{n:03}")
}

fn policies() -> Vec<Policy> {
    let roles = [
        "global-administrator",
        "security-administrator",
        "helpdesk-administrator",
        "db-operator",
        "app-owner",
    ];
    (0..POLICIES)
        .map(|i| {
            let state = match i % 20 {
                9 => "report_only",
                13 => "disabled",
                _ => "enabled",
            };
            let site = format!("site-{}", i % 10);
            let client = format!("client:pcc_{:02}", i % 20);
            let (conditions, grant, session) = match i % 8 {
                // Groups (one policy in five names a group of the user), with an exclusion.
                0 => (
                    json!({"principals": {"include": [
                                if i % 40 == 0 { group(i % 100) } else { group(100 + i) },
                                group(300 + i % 90)],
                            "exclude": [group(150 + i % 40)]}}),
                    json!({"require": "mfa"}),
                    None,
                ),
                // Admin roles: blocked outside trusted sites, or MFA everywhere.
                1 if i % 16 == 1 => (
                    json!({"principals": {"include": [format!("role:{}", roles[i % 5])],
                                          "exclude": [group(120 + i % 30)]},
                           "locations": {"include": ["any"], "exclude": ["trusted", site]}}),
                    json!({"block": true}),
                    None,
                ),
                1 => (
                    json!({"principals": {"include": [format!("role:{}", roles[i % 5])]}}),
                    json!({"require": "mfa"}),
                    None,
                ),
                // Named users on one client.
                2 => (
                    json!({"principals": {"include": [format!("user:u{i}"), format!("user:u{}", i + 1)]},
                           "applications": {"include": [client]}}),
                    json!({"require": "phishing_resistant"}),
                    None,
                ),
                // Everyone on the CLI from untrusted networks, but some groups.
                3 => (
                    json!({"principals": {"include": ["all"], "exclude": [group(200 + i % 50), "guests"]},
                           "applications": {"include": ["cli", "api"]},
                           "locations": {"include": ["untrusted"]}}),
                    json!({"require": "mfa"}),
                    Some(12 + (i % 5) as u32),
                ),
                // Guests from anywhere but trusted sites.
                4 => (
                    json!({"principals": {"include": ["guests"]},
                           "locations": {"include": ["any"], "exclude": ["trusted"]}}),
                    json!({"block": true}),
                    None,
                ),
                // Active admin roles with passwords.
                5 => (
                    json!({"principals": {"include": [format!("active_role:{}", roles[i % 5])]},
                           "strengths": {"include": ["password"]}}),
                    json!({"require": "phishing_resistant"}),
                    None,
                ),
                // Groups with a sign-in frequency, all apps but one client (one in five names a
                // group of the user).
                6 => (
                    json!({"principals": {"include": [
                                if i % 40 == 6 { group((i * 7) % 100) } else { group(100 + i) },
                                group(300 + i)]},
                           "applications": {"include": ["all"], "exclude": [client]}}),
                    json!({"require": "mfa"}),
                    Some(8 + (i % 16) as u32),
                ),
                // Service accounts outside the sites.
                _ => (
                    json!({"principals": {"include": ["service_accounts"]},
                           "locations": {"include": ["any"], "exclude": [site, "trusted"]}}),
                    json!({"block": true}),
                    None,
                ),
            };
            let mut v = json!({"name": format!("policy {i:03}"), "state": state,
                "conditions": conditions, "grant": grant});
            if let Some(h) = session {
                v["session"] = json!({"sign_in_frequency_hours": h});
            }
            let spec: PolicySpec = serde_json::from_value(v).expect("spec");
            Policy::from_spec(&spec).expect("valid")
        })
        .collect()
}

fn subject() -> Subject {
    Subject {
        kind: SubjectKind::Member,
        name: "u42".into(),
        groups: (0..GROUPS_OF_USER)
            .map(|n| format!("g{:03}", n * 2))
            .collect(),
        // Every group role-assignable, so group exclusions apply as they did before rule 4.
        role_assignable_groups: (0..GROUPS_OF_USER)
            .map(|n| format!("g{:03}", n * 2))
            .collect(),
        active_roles: vec!["db-operator".into()],
        eligible_roles: vec![
            "global-administrator".into(),
            "security-administrator".into(),
            "app-owner".into(),
        ],
        emergency: false,
    }
}

fn context(now: OffsetDateTime) -> SignInContext {
    SignInContext {
        subject: subject(),
        application: Application::Cli,
        // Inside site-0, a trusted site.
        ip: "10.0.5.7".parse::<IpAddr>().expect("ip"),
        strength: AuthStrength::Mfa,
        authenticated_at: Some(now - Duration::hours(2)),
        // The CLI is reached through the device flow.
        flow: Some(AuthenticationFlow::DeviceCode),
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + Duration::days(20_000)
}

fn micros(d: StdDuration) -> f64 {
    d.as_nanos() as f64 / 1000.0
}

fn percentiles(label: &str, n: usize, mut f: impl FnMut()) {
    for _ in 0..n / 10 {
        f();
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        f();
        samples.push(start.elapsed());
    }
    samples.sort();
    let at = |q: f64| samples[((n as f64 * q) as usize).min(n - 1)];
    println!(
        "{label:<34} n={n:<7} p50 {:>7.2} µs  p99 {:>7.2} µs  p99.9 {:>7.2} µs  max {:>8.2} µs",
        micros(at(0.50)),
        micros(at(0.99)),
        micros(at(0.999)),
        micros(samples[n - 1]),
    );
}

fn figures() {
    let ps = policies();
    let locs = locations();
    let start = Instant::now();
    let compiled = CompiledPolicies::compile(&ps, &locs).expect("compile");
    let compile_time = start.elapsed();
    let ctx = context(now());
    let d = compiled.evaluate(&ctx, now());
    // `evaluate` carries no explanation (what-if does): count what applied from the decision.
    let applying = d.applied.len() + d.report_only.len();
    println!(
        "ca_eval: {} policies, user in {} groups, {} named locations; {} policies apply, {} report-only; outcome {}",
        compiled.len(),
        ctx.subject.groups.len(),
        locs.len(),
        applying,
        d.report_only.len(),
        serde_json::to_value(&d).expect("json")["outcome"]
    );
    println!(
        "compile 200 policies               {:>9.1} µs",
        micros(compile_time)
    );

    percentiles("evaluate", 100_000, || {
        black_box(compiled.evaluate(black_box(&ctx), now()));
    });
    percentiles("evaluate + decision to JSON", 20_000, || {
        let d = compiled.evaluate(black_box(&ctx), now());
        black_box(serde_json::to_vec(&d).expect("json"));
    });

    let clients: Vec<String> = (0..20).map(|i| format!("pcc_{i:02}")).collect();
    let admins: Vec<AccountProfile> = (0..5)
        .map(|i| AccountProfile {
            subject: Subject {
                name: format!("admin{i}"),
                ..subject()
            },
            strongest: AuthStrength::Mfa,
        })
        .collect();
    let start = Instant::now();
    let verdict = check_lockout(&compiled, &clients, &admins, &admins[0]);
    println!(
        "lockout guard, 5 admins, 22 apps    {:>9.1} µs ({})",
        micros(start.elapsed()),
        if verdict.is_ok() { "passes" } else { "refuses" }
    );
}

fn bench(c: &mut Criterion) {
    let compiled = CompiledPolicies::compile(&policies(), &locations()).expect("compile");
    let ctx = context(now());
    c.bench_function("ca_eval/evaluate 200 policies, 50 groups", |b| {
        b.iter(|| compiled.evaluate(black_box(&ctx), now()))
    });
    let ps = policies();
    let locs = locations();
    c.bench_function("ca_eval/compile 200 policies", |b| {
        b.iter(|| CompiledPolicies::compile(black_box(&ps), &locs).expect("compile"))
    });
}

criterion_group!(benches, bench);

fn main() {
    figures();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
