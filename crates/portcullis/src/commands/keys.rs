//! `portcullis keys`: the token signing keys; list them, rotate the active one.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use portcullis_client::Client;

use crate::output::{Output, print_json, table};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// The signing keys, newest first, and until when retired ones stay in JWKS.
    List,
    /// Make a new key the signing key; the old one stays in JWKS until its tokens expired.
    Rotate {
        /// Only if this key is still the active one (a second run then fails instead of
        /// rotating again).
        #[arg(long)]
        previous: Option<String>,
        /// Which algorithm's key: EdDSA (access tokens, and ID tokens by default), ES256 or
        /// RS256 (ID tokens of clients that chose them).
        #[arg(long, value_parser = ["EdDSA", "ES256", "RS256"], default_value = "EdDSA")]
        algorithm: String,
    },
}

pub async fn run(c: &Client, output: Output, cmd: &KeysCommand) -> Result<ExitCode> {
    match cmd {
        KeysCommand::List => {
            let keys = c.signing_keys().await?;
            if output == Output::Json {
                print_json(&keys)?;
            } else {
                let rows = keys
                    .iter()
                    .map(|k| {
                        let state = if k.active {
                            "active"
                        } else if k.published {
                            "retired, in JWKS"
                        } else {
                            "retired"
                        };
                        vec![
                            k.key_id.clone(),
                            k.algorithm.clone(),
                            state.to_owned(),
                            k.created_at.clone(),
                            k.published_until.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                table(
                    &["key id", "algorithm", "state", "created", "in JWKS until"],
                    rows,
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Rotate {
            previous,
            algorithm,
        } => {
            let r = c
                .rotate_signing_key_of(algorithm, previous.as_deref())
                .await?;
            if output == Output::Json {
                print_json(&r)?;
            } else {
                println!(
                    "signing key {} replaces {}; {} stays in JWKS until {}",
                    r.key_id, r.previous_key_id, r.previous_key_id, r.previous_published_until
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
