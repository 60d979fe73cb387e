//! CLI for registered OpenID Connect clients (relying parties): register, list, show, delete,
//! and manage the secrets of confidential clients.
//!
//! A client secret is printed once, on stdout (the warning goes to stderr), and never stored
//! by the CLI: the server keeps only its hash, so a lost secret is replaced (`secret add`, then
//! `secret remove`), never shown again. A public client has no secret at all; PKCE binds its
//! authorization codes.

use anyhow::{Context, Result};
use clap::Subcommand;
use portcullis_client::Client;
use portcullis_core::api::{ClientCreated, ClientSecretIssued, ClientView, CreateClientRequest};

use crate::output::{Output, print_json, table};

#[derive(Subcommand)]
pub enum ClientsCommand {
    /// Register a client. A confidential client (the default) gets a secret, printed once;
    /// --public registers a single-page or native app, which has none and must use PKCE.
    Create {
        /// A unique name, shown on the consent page.
        name: String,
        /// An exact redirect URI: https, or http on a loopback address only. Repeat the option
        /// or separate URIs with commas (at least one).
        #[arg(
            long = "redirect-uri",
            value_name = "URI",
            value_delimiter = ',',
            required = true
        )]
        redirect_uris: Vec<String>,
        /// A public client: no secret.
        #[arg(long)]
        public: bool,
        /// The algorithm its ID tokens are signed with: EdDSA (the default), ES256 or RS256.
        #[arg(long, value_name = "ALG")]
        id_token_alg: Option<String>,
    },
    /// All registered clients.
    List,
    /// One client: redirect URIs and secrets (ids only).
    Show {
        /// Client id (`pcc_…`) or name.
        client: String,
    },
    /// Delete a client: its refresh tokens stop working and its consents are forgotten.
    Delete {
        /// Client id (`pcc_…`) or name.
        client: String,
    },
    /// Client secrets of a confidential client (at most two live: add, switch the relying
    /// party over, remove the old one).
    #[command(subcommand)]
    Secret(ClientSecretCommand),
}

#[derive(Subcommand)]
pub enum ClientSecretCommand {
    /// Create a client secret (printed once).
    Add {
        /// Client id (`pcc_…`) or name.
        client: String,
    },
    /// Remove a client secret by id; the relying party can no longer use it.
    Remove {
        /// Client id (`pcc_…`) or name.
        client: String,
        secret_id: String,
    },
}

const SHOWN_ONCE: &str =
    "The client secret is shown once; store it in the relying party's secret store now.";

fn print_clients(output: Output, list: &[ClientView]) -> Result<()> {
    if output == Output::Json {
        return print_json(&list);
    }
    let rows = list
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.client_id.clone(),
                c.kind.clone(),
                c.redirect_uris.join("\n"),
                c.secrets.len().to_string(),
                c.created_at.clone(),
            ]
        })
        .collect();
    table(
        &[
            "name",
            "client id",
            "kind",
            "redirect uris",
            "secrets",
            "created",
        ],
        rows,
    );
    Ok(())
}

fn print_client(output: Output, c: &ClientView) -> Result<()> {
    if output == Output::Json {
        return print_json(c);
    }
    println!("name: {}", c.name);
    println!("client_id: {}", c.client_id);
    println!("kind: {}", c.kind);
    for u in &c.redirect_uris {
        println!("redirect_uri: {u}");
    }
    println!("created: {} by {}", c.created_at, c.created_by);
    if !c.secrets.is_empty() {
        let rows = c
            .secrets
            .iter()
            .map(|s| vec![s.id.clone(), s.created_at.clone(), s.created_by.clone()])
            .collect();
        table(&["secret id", "created", "by"], rows);
    }
    Ok(())
}

fn print_created(output: Output, created: &ClientCreated) -> Result<()> {
    if output == Output::Json {
        if created.client_secret.is_some() {
            eprintln!("{SHOWN_ONCE}");
        }
        return print_json(created);
    }
    let c = &created.client;
    println!("registered {} ({})", c.name, c.kind);
    println!("client_id: {}", c.client_id);
    match &created.client_secret {
        Some(secret) => {
            eprintln!("{SHOWN_ONCE}");
            println!("client_secret: {secret}");
            if let Some(s) = c.secrets.first() {
                println!("secret_id: {}", s.id);
            }
        }
        None => println!("no client secret: a public client proves itself with PKCE"),
    }
    Ok(())
}

fn print_secret(output: Output, s: &ClientSecretIssued) -> Result<()> {
    eprintln!("{SHOWN_ONCE}");
    if output == Output::Json {
        return print_json(s);
    }
    println!("client_id: {}", s.client_id);
    println!("client_secret: {}", s.client_secret);
    println!("secret_id: {}", s.id);
    Ok(())
}

pub async fn run(c: &Client, output: Output, cmd: &ClientsCommand) -> Result<()> {
    match cmd {
        ClientsCommand::Create {
            name,
            redirect_uris,
            public,
            id_token_alg,
        } => {
            let created = c
                .create_oidc_client(&CreateClientRequest {
                    name: name.clone(),
                    redirect_uris: redirect_uris.clone(),
                    public: *public,
                    id_token_signed_response_alg: id_token_alg.clone(),
                })
                .await
                .with_context(|| format!("cannot register client {name}"))?;
            print_created(output, &created)?;
        }
        ClientsCommand::List => print_clients(output, &c.oidc_clients().await?)?,
        ClientsCommand::Show { client } => print_client(output, &c.oidc_client(client).await?)?,
        ClientsCommand::Delete { client } => {
            c.delete_oidc_client(client).await?;
            println!("deleted client {client}");
        }
        ClientsCommand::Secret(ClientSecretCommand::Add { client }) => {
            print_secret(output, &c.add_oidc_client_secret(client).await?)?
        }
        ClientsCommand::Secret(ClientSecretCommand::Remove { client, secret_id }) => {
            c.remove_oidc_client_secret(client, secret_id).await?;
            println!("removed secret {secret_id} from {client}");
        }
    }
    Ok(())
}
