//! The one connection type the changes are written against: a transaction (or savepoint) on
//! either backend, with statements whose arguments are bound the same way on both.
//!
//! Why not generic over `sqlx::Database`: every bound type would need its own `Encode`/`Type`
//! bound on every function. A change binds only a handful of column types ([`Arg`]), so the
//! functions take one concrete type and the backend is matched once, here.
//!
//! Statements are `&'static str`: SQL is never built from input. The only text added at run
//! time is PostgreSQL's ` FOR UPDATE` ([`Conn::lock_rows`]).

use sqlx::{PgConnection, SqliteConnection};

use crate::Result;

/// An open write transaction on one backend.
pub(crate) enum Conn<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection),
}

impl<'c> From<&'c mut SqliteConnection> for Conn<'c> {
    fn from(c: &'c mut SqliteConnection) -> Self {
        Conn::Sqlite(c)
    }
}

impl<'c> From<&'c mut PgConnection> for Conn<'c> {
    fn from(c: &'c mut PgConnection) -> Self {
        Conn::Postgres(c)
    }
}

/// A value bound to a statement.
#[derive(Debug)]
pub(crate) enum Arg<'a> {
    Text(Option<&'a str>),
    OwnedText(Option<String>),
    Int(Option<i64>),
    Bool(bool),
    Bytes(Option<&'a [u8]>),
}

/// What can be bound: the column types a change writes.
pub(crate) trait IntoArg<'a> {
    fn into_arg(self) -> Arg<'a>;
}

impl<'a> IntoArg<'a> for &'a str {
    fn into_arg(self) -> Arg<'a> {
        Arg::Text(Some(self))
    }
}
impl<'a> IntoArg<'a> for &'a String {
    fn into_arg(self) -> Arg<'a> {
        Arg::Text(Some(self))
    }
}
impl<'a> IntoArg<'a> for &'a &'a str {
    fn into_arg(self) -> Arg<'a> {
        Arg::Text(Some(self))
    }
}
impl<'a> IntoArg<'a> for Option<&'a str> {
    fn into_arg(self) -> Arg<'a> {
        Arg::Text(self)
    }
}
impl<'a> IntoArg<'a> for &'a Option<String> {
    fn into_arg(self) -> Arg<'a> {
        Arg::Text(self.as_deref())
    }
}
impl<'a> IntoArg<'a> for String {
    fn into_arg(self) -> Arg<'a> {
        Arg::OwnedText(Some(self))
    }
}
impl<'a> IntoArg<'a> for Option<String> {
    fn into_arg(self) -> Arg<'a> {
        Arg::OwnedText(self)
    }
}
impl<'a> IntoArg<'a> for i64 {
    fn into_arg(self) -> Arg<'a> {
        Arg::Int(Some(self))
    }
}
impl<'a> IntoArg<'a> for &'a i64 {
    fn into_arg(self) -> Arg<'a> {
        Arg::Int(Some(*self))
    }
}
impl<'a> IntoArg<'a> for Option<i64> {
    fn into_arg(self) -> Arg<'a> {
        Arg::Int(self)
    }
}
impl<'a> IntoArg<'a> for &'a Option<i64> {
    fn into_arg(self) -> Arg<'a> {
        Arg::Int(*self)
    }
}
impl<'a> IntoArg<'a> for bool {
    fn into_arg(self) -> Arg<'a> {
        Arg::Bool(self)
    }
}
impl<'a> IntoArg<'a> for &'a bool {
    fn into_arg(self) -> Arg<'a> {
        Arg::Bool(*self)
    }
}
impl<'a> IntoArg<'a> for &'a [u8] {
    fn into_arg(self) -> Arg<'a> {
        Arg::Bytes(Some(self))
    }
}
impl<'a> IntoArg<'a> for &'a Vec<u8> {
    fn into_arg(self) -> Arg<'a> {
        Arg::Bytes(Some(self))
    }
}
impl<'a> IntoArg<'a> for Option<&'a [u8]> {
    fn into_arg(self) -> Arg<'a> {
        Arg::Bytes(self)
    }
}
impl<'a> IntoArg<'a> for &'a Option<Vec<u8>> {
    fn into_arg(self) -> Arg<'a> {
        Arg::Bytes(self.as_deref())
    }
}

/// Core's enums are stored as their wire names.
macro_rules! enum_args {
    ($($t:ty),*) => {$(
        impl<'a> IntoArg<'a> for $t {
            fn into_arg(self) -> Arg<'a> {
                Arg::Text(Some(self.as_str()))
            }
        }
        impl<'a> IntoArg<'a> for &'a $t {
            fn into_arg(self) -> Arg<'a> {
                Arg::Text(Some(self.as_str()))
            }
        }
    )*};
}
enum_args!(
    portcullis_core::principal::PrincipalKind,
    portcullis_core::roles::AssignmentKind,
    portcullis_core::activation::RequestState,
    portcullis_core::session::AuthStrength
);

/// The arguments of one statement, in `$1, $2, …` order.
macro_rules! args {
    ($($e:expr),* $(,)?) => {
        &[$($crate::changes::sql::IntoArg::into_arg($e)),*]
    };
}
pub(crate) use args;

/// Binds `args` to a query of either backend, in order.
macro_rules! bind_all {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::Text(v) => q.bind(*v),
                Arg::OwnedText(v) => q.bind(v.as_deref()),
                Arg::Int(v) => q.bind(*v),
                Arg::Bool(v) => q.bind(*v),
                Arg::Bytes(v) => q.bind(*v),
            };
        }
        q
    }};
}

/// Runs the same body on whichever connection this is.
macro_rules! on_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::changes::sql::Conn::Sqlite($c) => $body,
            $crate::changes::sql::Conn::Postgres($c) => $body,
        }
    };
}
pub(crate) use on_conn;

impl Conn<'_> {
    /// Runs a statement; the number of rows it changed.
    pub(crate) async fn execute(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<u64> {
        Ok(on_conn!(self, c => bind_all!(sqlx::query(sql), args)
            .execute(&mut **c)
            .await?
            .rows_affected()))
    }

    /// A query that answers one number (a count).
    pub(crate) async fn count(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<i64> {
        Ok(on_conn!(self, c => bind_all!(sqlx::query_scalar(sql), args)
            .fetch_one(&mut **c)
            .await?))
    }

    /// A query that answers one number or no row.
    pub(crate) async fn optional_int(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Option<i64>> {
        Ok(on_conn!(self, c => bind_all!(sqlx::query_scalar(sql), args)
            .fetch_optional(&mut **c)
            .await?))
    }

    /// A query that answers two numbers or no row.
    pub(crate) async fn optional_ints(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Option<(i64, i64)>> {
        Ok(on_conn!(self, c => bind_all!(sqlx::query_as(sql), args)
            .fetch_optional(&mut **c)
            .await?))
    }

    /// A query that answers two strings or no row.
    pub(crate) async fn optional_texts(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Option<(String, String)>> {
        Ok(on_conn!(self, c => bind_all!(sqlx::query_as(sql), args)
            .fetch_optional(&mut **c)
            .await?))
    }

    /// A query that answers a column of strings.
    pub(crate) async fn texts(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Vec<String>> {
        Ok(on_conn!(self, c => bind_all!(sqlx::query_scalar(sql), args)
            .fetch_all(&mut **c)
            .await?))
    }

    /// The counter the caller is about to read, locked for the rest of the transaction.
    /// SQLite's writer holds the database lock for the whole transaction (`BEGIN IMMEDIATE`),
    /// so reads there are serialised already; PostgreSQL locks the rows it reads.
    pub(crate) async fn locked_ints(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Option<(i64, i64)>> {
        match self {
            Conn::Sqlite(_) => self.optional_ints(sql, args).await,
            Conn::Postgres(c) => Ok(bind_all!(
                sqlx::query_as(sqlx::AssertSqlSafe(format!("{sql} FOR UPDATE"))),
                args
            )
            .fetch_optional(&mut **c)
            .await?),
        }
    }

    /// Locks the rows `sql` selects (PostgreSQL) so the check that follows cannot go stale
    /// under another replica; a no-op on SQLite, whose writer holds the database lock.
    pub(crate) async fn lock_rows(&mut self, sql: &'static str) -> Result<()> {
        if let Conn::Postgres(c) = self {
            sqlx::query(sqlx::AssertSqlSafe(format!("{sql} FOR UPDATE")))
                .fetch_all(&mut **c)
                .await?;
        }
        Ok(())
    }
}
