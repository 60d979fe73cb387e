//! Rebuild when a migration is added: `sqlx::migrate!` embeds the migrations directory at
//! compile time and cannot tell cargo about new files itself.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
