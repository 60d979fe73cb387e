//! How the CLI prints: a table for people (every cell escaped for the terminal) or JSON for
//! scripts (`--output json`). Every command module prints through here, so none imports
//! another for it.

use anyhow::Result;
use clap::ValueEnum;
use comfy_table::Table;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    Table,
    Json,
}

pub(crate) fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Prints a table. Every cell is escaped: a control, bidirectional or invisible character
/// that came from a request (a client id in an audit event, say) is shown as `\u{…}`, never
/// interpreted by the terminal.
pub(crate) fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut t = Table::new();
    t.set_header(header.to_vec());
    for r in rows {
        t.add_row(
            r.iter()
                .map(|c| portcullis_core::text::escape_for_terminal(c).into_owned())
                .collect::<Vec<_>>(),
        );
    }
    println!("{t}");
}
