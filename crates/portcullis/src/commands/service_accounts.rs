//! CLI for service accounts (daemons): create with a public key (`private_key_jwt`) or a
//! client secret, list, show, and manage keys, secrets and consent.
//!
//! A client secret is printed once, on stdout, and never stored by the CLI. A public key is
//! read from a file and only its public half ever leaves this machine: a private key given
//! by mistake is refused by the server with a message saying so, and nothing is registered.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;
use portcullis_client::Client;
use portcullis_core::api::{
    AddClientKeyRequest, ClientSecretIssued, ConsentRequest, CreateServiceAccountRequest,
    NetworksRequest, ServiceAccountDetail, ServiceAccountView,
};

use crate::output::{Output, print_json, table};

#[derive(Subcommand)]
pub enum ServiceAccountsCommand {
    /// Create a service account. With --public-key it authenticates with `private_key_jwt`;
    /// without, a client secret is created and printed once.
    Create {
        name: String,
        #[arg(long)]
        display_name: Option<String>,
        /// PEM public key (Ed25519 or P-256), e.g. from
        /// `openssl genpkey -algorithm ed25519 -out key.pem && openssl pkey -in key.pem -pubout -out key.pub`.
        #[arg(long, value_name = "FILE")]
        public_key: Option<PathBuf>,
        /// The key id (`kid`) its assertions carry; the RFC 7638 thumbprint when absent.
        #[arg(long, requires = "public_key")]
        key_id: Option<String>,
    },
    List,
    /// One service account: client id, secrets (ids only), public keys, consents.
    Show {
        name: String,
    },
    /// Public keys for `private_key_jwt`.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Client secrets (at most two live: add, switch the daemon over, remove the old one).
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Consent to application permissions (persists after your own role ends).
    Consent {
        name: String,
        #[arg(long, value_delimiter = ',', required = true)]
        permissions: Vec<String>,
    },
    /// Limit the networks the account may authenticate from (IPv4/IPv6 CIDRs), or lift it.
    Networks {
        name: String,
        #[arg(
            long,
            value_delimiter = ',',
            required_unless_present = "any",
            conflicts_with = "any"
        )]
        cidr: Vec<String>,
        /// Lift the limit: any network.
        #[arg(long)]
        any: bool,
    },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Register another public key.
    Add {
        name: String,
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
        #[arg(long)]
        key_id: Option<String>,
    },
    /// Remove a public key; assertions signed with it are refused at once.
    Remove { name: String, key_id: String },
}

#[derive(Subcommand)]
pub enum SecretCommand {
    /// Create a client secret (printed once).
    Add { name: String },
    /// Remove a client secret by id.
    Remove { name: String, id: String },
}

/// Reads a public key file (a few hundred bytes; anything large is not one).
fn read_key(path: &Path) -> Result<String> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.len() > 16 * 1024 {
        anyhow::bail!("{} is too large to be a public key", path.display());
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn print_accounts(output: Output, list: &[ServiceAccountView]) -> Result<()> {
    if output == Output::Json {
        return print_json(&list);
    }
    let rows = list
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.display_name.clone(),
                s.enabled.to_string(),
                s.created_at.clone(),
            ]
        })
        .collect();
    table(&["name", "display name", "enabled", "created"], rows);
    Ok(())
}

fn print_detail(output: Output, d: &ServiceAccountDetail) -> Result<()> {
    if output == Output::Json {
        return print_json(d);
    }
    println!("client id: {}", d.client_id);
    println!("enabled: {}", d.account.enabled);
    let mut rows: Vec<Vec<String>> = d
        .keys
        .iter()
        .map(|k| {
            vec![
                "public key".into(),
                k.key_id.clone(),
                k.algorithm.clone(),
                k.created_at.clone(),
                k.created_by.clone(),
            ]
        })
        .collect();
    rows.extend(d.secrets.iter().map(|s| {
        vec![
            "client secret".into(),
            s.id.clone(),
            String::new(),
            s.created_at.clone(),
            s.created_by.clone(),
        ]
    }));
    table(&["credential", "id", "algorithm", "created", "by"], rows);
    if !d.consents.is_empty() {
        let perms: Vec<&str> = d.consents.iter().map(|c| c.permission.as_str()).collect();
        println!("consented: {}", perms.join(", "));
    }
    if d.allowed_networks.is_empty() {
        println!("networks: any");
    } else {
        println!("networks: {}", d.allowed_networks.join(", "));
    }
    Ok(())
}

fn print_secret(output: Output, s: &ClientSecretIssued) -> Result<()> {
    if output == Output::Json {
        return print_json(s);
    }
    eprintln!("The client secret is shown once; store it in the daemon's secret store now.");
    println!("client_id: {}", s.client_id);
    println!("client_secret: {}", s.client_secret);
    println!("secret_id: {}", s.id);
    Ok(())
}

pub async fn run(c: &Client, output: Output, cmd: &ServiceAccountsCommand) -> Result<()> {
    match cmd {
        ServiceAccountsCommand::Create {
            name,
            display_name,
            public_key,
            key_id,
        } => {
            let pem = public_key.as_deref().map(read_key).transpose()?;
            let with_key = pem.is_some();
            c.create_service_account(&CreateServiceAccountRequest {
                name: name.clone(),
                display_name: display_name.clone(),
                public_key: pem,
                key_id: key_id.clone(),
            })
            .await?;
            if with_key {
                print_detail(output, &c.service_account(name).await?)?;
            } else {
                let secret = c
                    .add_client_secret(name)
                    .await
                    .with_context(|| format!("created {name}, but not its client secret"))?;
                print_secret(output, &secret)?;
            }
        }
        ServiceAccountsCommand::List => print_accounts(output, &c.service_accounts().await?)?,
        ServiceAccountsCommand::Show { name } => {
            print_detail(output, &c.service_account(name).await?)?
        }
        ServiceAccountsCommand::Key(KeyCommand::Add {
            name,
            public_key,
            key_id,
        }) => {
            let k = c
                .add_client_key(
                    name,
                    &AddClientKeyRequest {
                        public_key: read_key(public_key)?,
                        key_id: key_id.clone(),
                    },
                )
                .await?;
            if output == Output::Json {
                print_json(&k)?;
            } else {
                println!("added key {} ({}) to {name}", k.key_id, k.algorithm);
            }
        }
        ServiceAccountsCommand::Key(KeyCommand::Remove { name, key_id }) => {
            c.remove_client_key(name, key_id).await?;
            println!("removed key {key_id} from {name}");
        }
        ServiceAccountsCommand::Secret(SecretCommand::Add { name }) => {
            print_secret(output, &c.add_client_secret(name).await?)?
        }
        ServiceAccountsCommand::Secret(SecretCommand::Remove { name, id }) => {
            c.remove_client_secret(name, id).await?;
            println!("removed secret {id} from {name}");
        }
        ServiceAccountsCommand::Consent { name, permissions } => {
            let d = c
                .consent(
                    name,
                    &ConsentRequest {
                        permissions: permissions.clone(),
                    },
                )
                .await?;
            print_detail(output, &d)?;
        }
        ServiceAccountsCommand::Networks { name, cidr, any } => {
            let cidrs = if *any { Vec::new() } else { cidr.clone() };
            let d = c.set_networks(name, &NetworksRequest { cidrs }).await?;
            print_detail(output, &d)?;
        }
    }
    Ok(())
}
