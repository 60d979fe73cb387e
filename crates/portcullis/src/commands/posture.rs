//! `portcullis posture`: the posture report (SCuBA MS.AAD.7 and PIM's checks), most severe
//! first; `--fail-on` makes it a gate for a pipeline.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, ValueEnum};
use portcullis_client::Client;

use crate::output::{Output, table};

/// Exit code when a finding at or above `--fail-on` is present.
const EXIT_FINDINGS: u8 = 4;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum FailOn {
    High,
    Medium,
    Low,
}

#[derive(Args)]
pub struct PostureArgs {
    /// Exit with code 4 when a finding of this severity or worse is present.
    #[arg(long, value_enum)]
    pub fail_on: Option<FailOn>,
}

pub async fn posture(c: &Client, output: Output, args: &PostureArgs) -> Result<ExitCode> {
    let r = c.posture().await?;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&r)?),
        Output::Table => {
            println!(
                "posture at {}: {} high, {} medium, {} low",
                r.generated_at, r.high, r.medium, r.low
            );
            let rows: Vec<Vec<String>> = r
                .findings
                .iter()
                .map(|f| {
                    vec![
                        f.severity.clone(),
                        f.id.clone(),
                        f.title.clone(),
                        f.evidence.join("; "),
                        f.fix.clone(),
                    ]
                })
                .collect();
            if !rows.is_empty() {
                table(&["SEVERITY", "ID", "FINDING", "EVIDENCE", "FIX"], rows);
            }
        }
    }
    let failing = match args.fail_on {
        None => 0,
        Some(FailOn::High) => r.high,
        Some(FailOn::Medium) => r.high + r.medium,
        Some(FailOn::Low) => r.high + r.medium + r.low,
    };
    Ok(if failing > 0 {
        ExitCode::from(EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    })
}
