//! The PostgreSQL connector: a grant is membership of the person's database login in
//! target-side roles (`GRANT "role" TO "login"`), a revoke takes the membership away and ends
//! the login's sessions.
//!
//! Invariants:
//! - Identifiers (roles, logins) only ever reach SQL through [`quote_ident`], after
//!   [`check_ident`] refused NUL and names longer than PostgreSQL's 63 bytes; every value is a
//!   bound parameter.
//! - The connection string holds no password (refused at configuration); the password is the
//!   target's secret, kept in [`SecretString`] and in sqlx's connect options only. The server's
//!   own `PGPASSWORD` is never sent to a target: without a secret the password is empty. No
//!   error, log line or `Debug` output contains the URL or the password: database errors are
//!   reduced to the server's message (`role "x" does not exist`), transport errors to a few words.
//! - Every statement is bounded (`lock_timeout` 5 s, `statement_timeout` 10 s), and getting a
//!   connection gives up after 5 s, so an attempt ends within the engine's claim.
//! - No connection is made at construction: the pool is built on first use (inside the async
//!   runtime) and connects lazily, at most two connections, five seconds to get one.
//! - Revoking ends every session of the login open at that moment, not only those opened
//!   during the grant: a session opened *before* the grant can `SET ROLE` to the granted role
//!   while the membership is held and keeps that role after `REVOKE` (PostgreSQL checks
//!   membership at `SET ROLE`, not afterwards). No catalogue view shows a session's current
//!   role, so which sessions did so cannot be known; all of them are ended. Sessions are ended
//!   only when at least one role was revoked: when every right is still kept by another live
//!   grant nothing changes and nothing is ended. Ending another login's sessions needs
//!   `pg_signal_backend`; a connector with only CREATEROLE takes membership of the login in a
//!   transaction it rolls back (see `end_sessions`), so the membership is never committed.

use std::sync::OnceLock;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::{Held, TargetError, TargetGrant};

/// PostgreSQL's longest identifier (NAMEDATALEN - 1), in bytes.
pub const MAX_IDENT: usize = 63;
/// Most connections one target's pool opens.
const MAX_CONNECTIONS: u32 = 2;
/// SQLSTATE undefined_object (a role that does not exist).
const UNDEFINED_OBJECT: &str = "42704";
/// SQLSTATE insufficient_privilege.
const INSUFFICIENT_PRIVILEGE: &str = "42501";
/// How long getting a connection (including connecting) may take.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// The default login template: the person's name is their database login.
const DEFAULT_LOGIN: &str = "{user}";

/// A PostgreSQL target.
pub struct Postgres {
    /// Connect options parsed from `url`, with the secret as password (never shown).
    options: PgConnectOptions,
    /// Built on first use (see the header).
    pool: OnceLock<PgPool>,
    /// `login` template: `{user}` is replaced by the person's name.
    login: String,
    /// Whether revoking ends the login's sessions.
    terminate_sessions: bool,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither the URL nor the options: the options carry the password.
        f.debug_struct("Postgres")
            .field("login", &self.login)
            .field("terminate_sessions", &self.terminate_sessions)
            .finish_non_exhaustive()
    }
}

/// `name` as a PostgreSQL identifier: in double quotes, every `"` doubled. Check the name with
/// [`check_ident`] first (a NUL cannot be quoted).
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Refuses what PostgreSQL cannot name: empty, longer than 63 bytes, or holding a NUL.
pub fn check_ident(what: &str, name: &str) -> Result<(), TargetError> {
    if name.is_empty() {
        return Err(TargetError::Refused(format!("empty {what} name")));
    }
    if name.len() > MAX_IDENT {
        return Err(TargetError::Refused(format!(
            "{what} name {:?}… is longer than {MAX_IDENT} bytes",
            name.chars().take(32).collect::<String>()
        )));
    }
    if name.contains('\0') {
        return Err(TargetError::Refused(format!("{what} name holds a NUL")));
    }
    Ok(())
}

impl Postgres {
    /// Checks `config` (`url`, `login`, `terminate_sessions`) and prepares the connection;
    /// nothing is connected yet.
    pub fn new(
        config: &serde_json::Value,
        secret: Option<SecretString>,
    ) -> Result<Self, TargetError> {
        let raw = config.get("url").and_then(|u| u.as_str()).ok_or_else(|| {
            TargetError::Config("url is required (postgres://user@host:port/db)".into())
        })?;
        // The URL is not repeated in errors: a mistyped one may still hold a password.
        let url = url::Url::parse(raw).map_err(|_| {
            TargetError::Config("url is not a URL (postgres://user@host:port/db)".into())
        })?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(TargetError::Config(
                "url must start with postgres:// or postgresql://".into(),
            ));
        }
        if url.password().is_some() || url.query_pairs().any(|(k, _)| k == "password") {
            return Err(TargetError::Config(
                "put no password in url; set it as the target's secret".into(),
            ));
        }
        if url.username().is_empty() {
            return Err(TargetError::Config(
                "url names no login (postgres://user@host:port/db)".into(),
            ));
        }
        let login = match config.get("login") {
            None | Some(serde_json::Value::Null) => DEFAULT_LOGIN.to_owned(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(TargetError::Config(
                    "login is a string such as \"{user}\"".into(),
                ));
            }
        };
        if !login.contains("{user}") {
            // Without `{user}` every person would share one login, and revoking one grant
            // would end everyone's sessions.
            return Err(TargetError::Config(
                "login must contain {user} (the person's name)".into(),
            ));
        }
        let terminate_sessions = match config.get("terminate_sessions") {
            None | Some(serde_json::Value::Null) => true,
            Some(serde_json::Value::Bool(b)) => *b,
            Some(_) => {
                return Err(TargetError::Config(
                    "terminate_sessions is true or false".into(),
                ));
            }
        };
        let options: PgConnectOptions = raw.parse().map_err(|_| {
            TargetError::Config("url is not a usable PostgreSQL connection URL".into())
        })?;
        // Always set: an unset password would fall back to the server's own PGPASSWORD.
        let options = match &secret {
            Some(s) => options.password(s.expose_secret()),
            None => options.password(""),
        };
        // Every statement is bounded, so an attempt ends well within its claim: a REVOKE
        // waiting behind another session's lock gives up and is retried.
        let options = options.options([
            ("lock_timeout", "5s"),
            ("statement_timeout", "10s"),
            ("application_name", "portcullis"),
        ]);
        Ok(Self {
            options,
            pool: OnceLock::new(),
            login,
            terminate_sessions,
        })
    }

    /// The pool, built on first use (only from the async methods, so inside the runtime).
    fn pool(&self) -> &PgPool {
        self.pool.get_or_init(|| {
            PgPoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_lazy_with(self.options.clone())
        })
    }

    /// The database login of `person` from the `login` template.
    pub fn login_of(&self, person: &str) -> Result<String, TargetError> {
        let login = self.login.replace("{user}", person);
        check_ident("login", &login)?;
        Ok(login)
    }

    /// The login a grant acts on: the person's own account at this target if one is set, else
    /// the template's.
    fn login(&self, g: &TargetGrant) -> Result<String, TargetError> {
        match &g.account {
            Some(a) => {
                check_ident("login", a)?;
                Ok(a.clone())
            }
            None => self.login_of(&g.person),
        }
    }

    /// A person's own account here: a login name PostgreSQL accepts.
    pub fn check_account(account: &str) -> Result<String, TargetError> {
        check_ident("login", account)?;
        Ok(account.to_owned())
    }

    /// The person the login template maps `login` to, if its shape fits the template.
    pub fn template_person(&self, login: &str) -> Option<String> {
        super::template_person(&self.login, login)
    }

    /// The memberships `g` means: its person's login in each target-side role.
    pub fn desired(&self, g: &TargetGrant) -> Vec<Held> {
        let Ok(login) = self.login(g) else {
            return Vec::new();
        };
        g.target_grants
            .iter()
            .map(|r| Held {
                holder: login.clone(),
                right: r.clone(),
            })
            .collect()
    }

    /// `GRANT "role" TO "login"` for every target-side role of `g` (idempotent in PostgreSQL).
    pub async fn grant(&self, g: &TargetGrant) -> Result<(), TargetError> {
        let login = self.login(g)?;
        for role in &g.target_grants {
            check_ident("role", role)?;
        }
        for role in &g.target_grants {
            let sql = format!("GRANT {} TO {}", quote_ident(role), quote_ident(&login));
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(self.pool())
                .await
                .map_err(db_error)?;
        }
        Ok(())
    }

    /// `REVOKE "role" FROM "login"` for every target-side role of `g` not in `keep`, then (if
    /// configured and something was revoked) ends every session of the login (see the header).
    pub async fn revoke(&self, g: &TargetGrant, keep: &[Held]) -> Result<(), TargetError> {
        let login = self.login(g)?;
        let roles: Vec<&String> = g
            .target_grants
            .iter()
            .filter(|role| !keep.iter().any(|h| h.holder == login && &h.right == *role))
            .collect();
        self.revoke_from(&login, &roles).await
    }

    /// The login a dynamic grant creates: `pc_` + the person's name (letters, digits and `_`
    /// only, at most 24) + `_` + 10 hex digits of the SHA-256 of the grant's id, so every
    /// attempt at the grant and its revoke name the same login, and no two grants share one.
    pub fn dynamic_login(g: &TargetGrant) -> String {
        use sha2::Digest;
        let person: String = g
            .person
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(24)
            .collect();
        let digest = hex::encode(sha2::Sha256::digest(g.id.as_bytes()));
        format!("pc_{person}_{}", &digest[..10])
    }

    /// A dynamic grant: a login of its own (`LOGIN`, `VALID UNTIL` the grant's end, a fresh
    /// random password) with membership of the target-side roles. Applied again, the login is
    /// given a new password. The password reaches PostgreSQL only as a SCRAM-SHA-256 verifier,
    /// so no server log can show it; it is returned once, to be sealed and handed to the holder.
    pub async fn grant_dynamic(&self, g: &TargetGrant) -> Result<super::Issued, TargetError> {
        for role in &g.target_grants {
            check_ident("role", role)?;
        }
        let login = Self::dynamic_login(g);
        let password = hex::encode(rand::random::<[u8; 24]>());
        let verifier = scram_verifier(&password);
        let until = g.ends_at.clone().unwrap_or_else(|| "infinity".to_owned());
        let attributes = format!(
            "LOGIN PASSWORD {} VALID UNTIL {}",
            quote_literal(&verifier),
            quote_literal(&until)
        );
        let create = format!("CREATE ROLE {} {attributes}", quote_ident(&login));
        match sqlx::query(sqlx::AssertSqlSafe(create))
            .execute(self.pool())
            .await
        {
            Ok(_) => {}
            // duplicate_object: an earlier attempt created it; it gets the new password.
            Err(sqlx::Error::Database(d)) if d.code().as_deref() == Some("42710") => {
                let alter = format!("ALTER ROLE {} {attributes}", quote_ident(&login));
                sqlx::query(sqlx::AssertSqlSafe(alter))
                    .execute(self.pool())
                    .await
                    .map_err(db_error)?;
            }
            Err(e) => return Err(db_error(e)),
        }
        for role in &g.target_grants {
            let sql = format!("GRANT {} TO {}", quote_ident(role), quote_ident(&login));
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(self.pool())
                .await
                .map_err(db_error)?;
        }
        Ok(super::Issued {
            login,
            password: SecretString::from(password),
        })
    }

    /// Ends a dynamic grant: its login loses the roles and `LOGIN`, its sessions end, what it
    /// owns in this database goes to the connector's login, and the login is dropped. A login
    /// already gone is a success.
    pub async fn revoke_dynamic(&self, g: &TargetGrant) -> Result<(), TargetError> {
        let login = Self::dynamic_login(g);
        let roles: Vec<&String> = g.target_grants.iter().collect();
        self.revoke_from(&login, &roles).await?;
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_roles WHERE rolname = $1")
            .bind(&login)
            .fetch_optional(self.pool())
            .await
            .map_err(db_error)?;
        if exists.is_none() {
            return Ok(());
        }
        let nologin = format!("ALTER ROLE {} NOLOGIN", quote_ident(&login));
        sqlx::query(sqlx::AssertSqlSafe(nologin))
            .execute(self.pool())
            .await
            .map_err(db_error)?;
        self.end_sessions(&login).await?;
        // REASSIGN and DROP OWNED need the privileges of the login: membership taken in the
        // same transaction that drops it.
        let mut tx = self.pool().begin().await.map_err(db_error)?;
        let l = quote_ident(&login);
        for sql in [
            format!("GRANT {l} TO CURRENT_USER"),
            format!("REASSIGN OWNED BY {l} TO CURRENT_USER"),
            format!("DROP OWNED BY {l}"),
            format!("DROP ROLE {l}"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(())
    }

    /// Takes one right away that no grant explains (drift being reverted): `REVOKE "right"
    /// FROM "holder"`, then ends the holder's sessions as [`Postgres::revoke`] does.
    pub async fn remove(&self, h: &Held) -> Result<(), TargetError> {
        check_ident("login", &h.holder)?;
        self.revoke_from(&h.holder, &[&h.right]).await
    }

    /// Revokes `roles` from `login` and, if one was revoked and configured so, ends every
    /// session of `login` (see the header). A login or role that does not exist holds nothing.
    async fn revoke_from(&self, login: &str, roles: &[&String]) -> Result<(), TargetError> {
        for role in roles {
            check_ident("role", role)?;
        }
        if roles.is_empty() {
            // Everything is kept by another grant: nothing changes, no session is ended.
            return Ok(());
        }
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_roles WHERE rolname = $1")
            .bind(login)
            .fetch_optional(self.pool())
            .await
            .map_err(db_error)?;
        if exists.is_none() {
            // No login, no membership: nothing to revoke, no session to end.
            return Ok(());
        }
        let mut revoked = false;
        for role in roles {
            let sql = format!("REVOKE {} FROM {}", quote_ident(role), quote_ident(login));
            match sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(self.pool())
                .await
            {
                // A membership that does not exist only raises a warning; a session may still
                // have switched to the role earlier, so it counts as revoked.
                Ok(_) => revoked = true,
                // undefined_object: the role itself is gone (the login exists, checked above),
                // so nothing of it is held.
                Err(sqlx::Error::Database(d)) if d.code().as_deref() == Some(UNDEFINED_OBJECT) => {}
                Err(e) => return Err(db_error(e)),
            }
        }
        if revoked && self.terminate_sessions {
            self.end_sessions(login).await?;
        }
        Ok(())
    }

    /// Ends every session of `login` but the connector's own (see the header for why all).
    ///
    /// `pg_terminate_backend` needs the privileges of the session's role or membership of
    /// `pg_signal_backend`. A connector with only CREATEROLE has neither, so when refused
    /// (insufficient_privilege) it takes membership of `login` inside a transaction, ends the
    /// sessions and rolls back: the signals are sent at once, the membership is never
    /// committed and never visible to another session.
    async fn end_sessions(&self, login: &str) -> Result<(), TargetError> {
        const TERMINATE: &str = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                                 WHERE usename = $1 AND pid <> pg_backend_pid()";
        match sqlx::query(TERMINATE)
            .bind(login)
            .execute(self.pool())
            .await
        {
            Ok(_) => return Ok(()),
            Err(sqlx::Error::Database(d))
                if d.code().as_deref() == Some(INSUFFICIENT_PRIVILEGE) => {}
            Err(e) => return Err(db_error(e)),
        }
        let mut tx = self.pool().begin().await.map_err(db_error)?;
        let sql = format!("GRANT {} TO CURRENT_USER", quote_ident(login));
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query(TERMINATE)
            .bind(login)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.rollback().await.map_err(db_error)?;
        Ok(())
    }

    /// The members of the `managed` roles (other than the connector's own login), sorted.
    pub async fn observe(&self, managed: &[String]) -> Result<Vec<Held>, TargetError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT r.rolname::text, m.rolname::text FROM pg_auth_members am \
             JOIN pg_roles r ON r.oid = am.roleid \
             JOIN pg_roles m ON m.oid = am.member \
             WHERE r.rolname = ANY($1) AND m.rolname <> current_user",
        )
        .bind(managed)
        .fetch_all(self.pool())
        .await
        .map_err(db_error)?;
        let mut held: Vec<Held> = rows
            .into_iter()
            .map(|(right, holder)| Held { holder, right })
            .collect();
        held.sort();
        held.dedup();
        Ok(held)
    }

    /// Connects (failing with [`TargetError::Unreachable`] when it cannot) and lists what
    /// stops the connector from working: missing roles, a login without CREATEROLE.
    pub async fn test(&self, managed: &[String]) -> Result<Vec<String>, TargetError> {
        let mut conn = self.pool().acquire().await.map_err(db_error)?;
        let mut problems = Vec::new();
        let existing: Vec<String> =
            sqlx::query_scalar("SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1)")
                .bind(managed)
                .fetch_all(&mut *conn)
                .await
                .map_err(db_error)?;
        for role in managed {
            if !existing.contains(role) {
                problems.push(format!("role {role:?} does not exist in the database"));
            }
        }
        let rights: Option<(bool, bool)> = sqlx::query_as(
            "SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?;
        if !matches!(rights, Some((true, _)) | Some((_, true))) {
            problems.push(
                "the connector's login needs CREATEROLE (or membership WITH ADMIN OPTION of the mapped roles)"
                    .to_owned(),
            );
        }
        if self.terminate_sessions {
            // Ending another login's sessions needs pg_signal_backend, or (see `end_sessions`)
            // taking membership of the login: CREATEROLE allows that before PostgreSQL 16.
            let can_signal: Option<bool> = sqlx::query_scalar(
                "SELECT rolsuper OR pg_has_role(current_user, 'pg_signal_backend', 'MEMBER') \
                 OR (rolcreaterole AND current_setting('server_version_num')::int < 160000) \
                 FROM pg_roles WHERE rolname = current_user",
            )
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_error)?;
            if can_signal != Some(true) {
                problems.push(
                    "the connector's login needs membership of pg_signal_backend to end sessions \
                     on revoke (or set terminate_sessions to false)"
                        .to_owned(),
                );
            }
        }
        Ok(problems)
    }
}

/// A sqlx error in words for an operator: the database's own message (which holds no
/// password) or a few words; never the URL.
/// A PostgreSQL string literal: single quotes doubled (the values quoted here are our own hex
/// digits and timestamps; quoted all the same).
fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677, 4096
/// iterations, a random 16-byte salt): `SCRAM-SHA-256$4096:SALT$STOREDKEY:SERVERKEY`. Given as
/// the password of `CREATE ROLE`, PostgreSQL keeps it as it is and never sees the password.
/// Written here because it is PBKDF2 and two HMACs over crates the server has (hmac, sha2).
pub fn scram_verifier(password: &str) -> String {
    scram_verifier_with_salt(password, rand::random())
}

fn scram_verifier_with_salt(password: &str, salt: [u8; 16]) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    let hmac = |key: &[u8], data: &[u8]| -> [u8; 32] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
        m.update(data);
        m.finalize().into_bytes().into()
    };
    const ITERATIONS: u32 = 4096;
    // PBKDF2-HMAC-SHA-256, one block (the output is one hash long).
    let mut u = hmac(
        password.as_bytes(),
        &[&salt[..], &1u32.to_be_bytes()].concat(),
    );
    let mut salted = u;
    for _ in 1..ITERATIONS {
        u = hmac(password.as_bytes(), &u);
        for (s, x) in salted.iter_mut().zip(u.iter()) {
            *s ^= x;
        }
    }
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(&salted, b"Server Key");
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        "SCRAM-SHA-256${ITERATIONS}:{}${}:{}",
        b64.encode(salt),
        b64.encode(stored_key),
        b64.encode(server_key)
    )
}

fn db_error(e: sqlx::Error) -> TargetError {
    match e {
        sqlx::Error::Database(d) => TargetError::Refused(d.message().to_owned()),
        sqlx::Error::PoolTimedOut => {
            TargetError::Unreachable("cannot connect to the database: timed out".into())
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Configuration(_) => {
            TargetError::Unreachable("cannot connect to the database".into())
        }
        sqlx::Error::Protocol(_) => {
            TargetError::Unreachable("the database answered something unexpected".into())
        }
        _ => TargetError::Refused("unexpected answer from the database".into()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn scram_verifier_matches_an_independent_implementation() {
        // Python's hashlib.pbkdf2_hmac and hmac, salt 00 01 .. 0f, password "pencil".
        let salt: [u8; 16] = std::array::from_fn(|i| i as u8);
        assert_eq!(
            super::scram_verifier_with_salt("pencil", salt),
            "SCRAM-SHA-256$4096:AAECAwQFBgcICQoLDA0ODw==$zHCdol2044/ZyWzPLi7oxApCkamKw9Z+E4U/QApd/5Y=:dd5peBOitVnLNFu7VmwP+HiDaaw4OUCv396eVCWhYiE="
        );
        assert_ne!(
            super::scram_verifier("pencil"),
            super::scram_verifier("pencil"),
            "salted"
        );
    }

    use super::*;

    fn target(config: serde_json::Value) -> Result<Postgres, TargetError> {
        Postgres::new(&config, Some(SecretString::from("s3cr3t-pw")))
    }

    #[test]
    fn quote_ident_doubles_quotes() {
        assert_eq!(quote_ident("plain"), "\"plain\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident(""), "\"\"");
    }

    #[test]
    fn quote_ident_keeps_injection_inside_the_identifier() {
        let q = quote_ident("x\"; DROP ROLE y; --");
        assert_eq!(q, "\"x\"\"; DROP ROLE y; --\"");
        // Strip the outer quotes: what remains has no lone `"` that could end the identifier.
        let inner = &q[1..q.len() - 1];
        assert!(!inner.replace("\"\"", "").contains('"'));
    }

    #[test]
    fn login_of_applies_the_template() -> Result<(), TargetError> {
        let p = target(serde_json::json!({"url": "postgres://portcullis@db:5432/app"}))?;
        assert_eq!(p.login_of("alice")?, "alice");
        let p = target(serde_json::json!({
            "url": "postgres://portcullis@db/app",
            "login": "pc_{user}"
        }))?;
        assert_eq!(p.login_of("alice")?, "pc_alice");
        assert_eq!(
            p.desired(&TargetGrant {
                id: "g1".into(),
                person: "alice".into(),
                role: "dba".into(),
                scope: "/targets/db".into(),
                target_grants: vec!["deploy".into(), "read".into()],
                starts_at: "2026-01-01T00:00:00Z".into(),
                ends_at: None,
                mode: "grant".into(),
                account: None,
                account_id: None,
            }),
            vec![
                Held {
                    holder: "pc_alice".into(),
                    right: "deploy".into()
                },
                Held {
                    holder: "pc_alice".into(),
                    right: "read".into()
                },
            ]
        );
        Ok(())
    }

    #[test]
    fn login_of_refuses_too_long_and_nul() -> Result<(), TargetError> {
        let p = target(serde_json::json!({
            "url": "postgres://portcullis@db/app",
            "login": "pc_{user}"
        }))?;
        assert!(p.login_of(&"a".repeat(60)).is_ok());
        assert!(matches!(
            p.login_of(&"a".repeat(61)),
            Err(TargetError::Refused(_))
        ));
        assert!(matches!(
            p.login_of("al\0ice"),
            Err(TargetError::Refused(_))
        ));
        let p = target(serde_json::json!({"url": "postgres://portcullis@db/app"}))?;
        assert!(matches!(p.login_of(""), Err(TargetError::Refused(_))));
        Ok(())
    }

    #[test]
    fn config_refuses_passwords_and_bad_urls() {
        let refused = |c: serde_json::Value| matches!(target(c), Err(TargetError::Config(_)));
        assert!(refused(
            serde_json::json!({"url": "postgres://u:hunter2@db/app"})
        ));
        assert!(refused(
            serde_json::json!({"url": "postgres://u@db/app?password=hunter2"})
        ));
        assert!(refused(serde_json::json!({"url": "mysql://u@db/app"})));
        assert!(refused(serde_json::json!({})));
        assert!(refused(
            serde_json::json!({"url": "postgres://u@db/app", "login": "shared"})
        ));
        let e = target(serde_json::json!({"url": "postgres://u:hunter2@db/app"}))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!e.is_empty() && !e.contains("hunter2"), "{e}");
        assert!(refused(
            serde_json::json!({"url": "postgres://u@db/app", "terminate_sessions": "no"})
        ));
    }

    #[test]
    fn debug_shows_no_password() -> Result<(), TargetError> {
        let p = target(serde_json::json!({"url": "postgres://portcullis@db/app"}))?;
        assert!(!format!("{p:?}").contains("s3cr3t"));
        Ok(())
    }
}
