//! [`GenericClient`]: one trait over everything that runs statements, so repository code
//! is written once for a connection, a transaction, a savepoint and the pool's handles.

use std::future::Future;

use crate::connection::wire::HolderMark;
use crate::connection::{
    Batch, BatchResults, Connection, DEFAULT_BATCH_ROWS, ParamSet, Params, RowStream, ToStatement,
    WireSlot, bounded_call,
};
use crate::error::Error;
use crate::pool::{PoolTransaction, PooledConnection};
use crate::row::{Row, SimpleQueryMessage};
use crate::statement::Statement;
use crate::transaction::{Savepoint, Transaction};
use crate::types::{ToSql, Type};

mod sealed {
    pub trait Sealed {}
}

/// The query methods of [`Connection`], [`Transaction`], [`Savepoint`],
/// [`PooledConnection`] and [`PoolTransaction`], for code generic over where it runs
/// (tokio-postgres's `GenericClient`).
///
/// Each method is the type's own inherent method (same name, same errors, same cancel
/// safety), reached through static dispatch: a generic call costs what a direct one
/// does. Every future is `Send`, so a generic function can run in `tokio::spawn`:
///
/// ```no_run
/// use pgkeel::{Error, GenericClient};
///
/// async fn add_user<C: GenericClient>(db: &C, name: &str) -> Result<i64, Error> {
///     let row = db
///         .query_one("INSERT INTO users (name) VALUES ($1) RETURNING id", &[&name])
///         .await?;
///     Ok(row.get(0))
/// }
///
/// # async fn demo(pool: pgkeel::Pool) -> Result<(), Error> {
/// let conn = pool.get().await?;
/// add_user(&conn, "ada").await?; // autocommit
/// let mut tx = pool.begin().await?;
/// add_user(&tx, "grace").await?; // inside a transaction
/// let sp = tx.transaction().await?; // a savepoint, through the trait
/// add_user(&sp, "edsger").await?;
/// sp.commit().await?;
/// tx.commit().await?;
/// tokio::spawn(async move { add_user(&conn, "barbara").await }); // the future is Send
/// # Ok(()) }
/// ```
///
/// The trait is sealed: only pgkeel's types implement it.
pub trait GenericClient: sealed::Sealed + Send + Sync {
    /// What [`GenericClient::transaction`] opens: a [`Transaction`] on a connection, a
    /// [`Savepoint`] inside a transaction or savepoint.
    type Transaction<'a>: GenericClient
    where
        Self: 'a;

    /// Runs a statement and returns all its rows; see [`Connection::query`].
    fn query<T>(
        &self,
        statement: &T,
        params: Params<'_>,
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send
    where
        T: ToStatement + Sync + ?Sized;

    /// Runs a statement that must return exactly one row; see [`Connection::query_one`].
    fn query_one<T>(
        &self,
        statement: &T,
        params: Params<'_>,
    ) -> impl Future<Output = Result<Row, Error>> + Send
    where
        T: ToStatement + Sync + ?Sized;

    /// Runs a statement that returns at most one row; see [`Connection::query_opt`].
    fn query_opt<T>(
        &self,
        statement: &T,
        params: Params<'_>,
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send
    where
        T: ToStatement + Sync + ?Sized;

    /// Runs SQL with each parameter's type named; see [`Connection::query_typed`].
    fn query_typed(
        &self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send;

    /// Runs a statement and returns the rows affected; see [`Connection::execute`].
    fn execute<T>(
        &self,
        statement: &T,
        params: Params<'_>,
    ) -> impl Future<Output = Result<u64, Error>> + Send
    where
        T: ToStatement + Sync + ?Sized;

    /// Runs a statement once per parameter set, pipelined; see
    /// [`Connection::execute_many`].
    ///
    /// Through the trait the parameter sets come as a slice (of tuples, arrays or
    /// `&[&dyn ToSql]`): with an iterator, the compiler cannot yet prove a generic
    /// caller's future `Send` (rust-lang/rust#100013).
    fn execute_many<T, P>(
        &self,
        statement: &T,
        rows: &[P],
    ) -> impl Future<Output = Result<u64, Error>> + Send
    where
        T: ToStatement + Sync + ?Sized,
        P: ParamSet + Sync;

    /// Runs a batch of statements in one write; see [`Connection::run_batch`].
    fn run_batch(
        &self,
        batch: &Batch<'_>,
    ) -> impl Future<Output = Result<BatchResults, Error>> + Send;

    /// Prepares a statement; see [`Connection::prepare`].
    fn prepare(&self, sql: &str) -> impl Future<Output = Result<Statement, Error>> + Send;

    /// Prepares a statement with some parameter types given; see
    /// [`Connection::prepare_typed`].
    fn prepare_typed(
        &self,
        sql: &str,
        types: &[Type],
    ) -> impl Future<Output = Result<Statement, Error>> + Send;

    /// Streams a statement's rows in bounded batches; see [`Connection::query_raw`].
    fn query_raw<T>(
        &self,
        statement: &T,
        params: Params<'_>,
    ) -> impl Future<Output = Result<RowStream<'_>, Error>> + Send
    where
        T: ToStatement + Sync + ?Sized;

    /// Runs statements in the simple protocol; see [`Connection::simple_query`].
    fn simple_query(
        &self,
        sql: &str,
    ) -> impl Future<Output = Result<Vec<SimpleQueryMessage>, Error>> + Send;

    /// Runs statements in the simple protocol, ignoring rows; see
    /// [`Connection::batch_execute`].
    fn batch_execute(&self, sql: &str) -> impl Future<Output = Result<(), Error>> + Send;

    /// Opens a transaction: `BEGIN` on a connection, a savepoint inside a transaction.
    /// The result rolls back when dropped unfinished, like any guard.
    fn transaction(&mut self) -> impl Future<Output = Result<Self::Transaction<'_>, Error>> + Send;
}

/// Implements the statement methods by calling the inherent ones through `$via`.
macro_rules! forward_statements {
    ($via:ident, $raw:ident) => {
        fn query<T>(
            &self,
            statement: &T,
            params: Params<'_>,
        ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send
        where
            T: ToStatement + Sync + ?Sized,
        {
            $via(self).query(statement, params)
        }

        fn query_one<T>(
            &self,
            statement: &T,
            params: Params<'_>,
        ) -> impl Future<Output = Result<Row, Error>> + Send
        where
            T: ToStatement + Sync + ?Sized,
        {
            $via(self).query_one(statement, params)
        }

        fn query_opt<T>(
            &self,
            statement: &T,
            params: Params<'_>,
        ) -> impl Future<Output = Result<Option<Row>, Error>> + Send
        where
            T: ToStatement + Sync + ?Sized,
        {
            $via(self).query_opt(statement, params)
        }

        fn query_typed(
            &self,
            sql: &str,
            params: &[(&(dyn ToSql + Sync), Type)],
        ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send {
            $via(self).query_typed(sql, params)
        }

        fn execute<T>(
            &self,
            statement: &T,
            params: Params<'_>,
        ) -> impl Future<Output = Result<u64, Error>> + Send
        where
            T: ToStatement + Sync + ?Sized,
        {
            $via(self).execute(statement, params)
        }

        fn execute_many<T, P>(
            &self,
            statement: &T,
            rows: &[P],
        ) -> impl Future<Output = Result<u64, Error>> + Send
        where
            T: ToStatement + Sync + ?Sized,
            P: ParamSet + Sync,
        {
            $via(self).execute_many(statement, rows.iter())
        }

        fn run_batch(
            &self,
            batch: &Batch<'_>,
        ) -> impl Future<Output = Result<BatchResults, Error>> + Send {
            $via(self).run_batch(batch)
        }

        fn prepare(&self, sql: &str) -> impl Future<Output = Result<Statement, Error>> + Send {
            $via(self).prepare(sql)
        }

        fn prepare_typed(
            &self,
            sql: &str,
            types: &[Type],
        ) -> impl Future<Output = Result<Statement, Error>> + Send {
            $via(self).prepare_typed(sql, types)
        }

        fn query_raw<T>(
            &self,
            statement: &T,
            params: Params<'_>,
        ) -> impl Future<Output = Result<RowStream<'_>, Error>> + Send
        where
            T: ToStatement + Sync + ?Sized,
        {
            $raw(self).query_raw(statement, params)
        }

        fn simple_query(
            &self,
            sql: &str,
        ) -> impl Future<Output = Result<Vec<SimpleQueryMessage>, Error>> + Send {
            $via(self).simple_query(sql)
        }

        fn batch_execute(&self, sql: &str) -> impl Future<Output = Result<(), Error>> + Send {
            $via(self).batch_execute(sql)
        }
    };
}

/// A connection seen through the trait: as [`Connection`], except that its row stream
/// carries the trait's lifetime (a stream on its own lock is `'static`, but the trait
/// names the shorter one a transaction's stream has).
struct ConnClient<'c>(&'c Connection);

impl<'c> ConnClient<'c> {
    async fn query_raw<T: ToStatement + ?Sized>(
        self,
        statement: &T,
        params: Params<'_>,
    ) -> Result<RowStream<'c>, Error> {
        let conn = self.0;
        bounded_call!(conn.inner.shared.limits.query, {
            let wire = conn.lock("query_raw").await?;
            let holder = HolderMark::new(wire.shared.clone());
            let slot = WireSlot::Owned(wire);
            RowStream::start(slot, Some(holder), statement, params, DEFAULT_BATCH_ROWS).await
        })
    }
}

fn conn(c: &Connection) -> &Connection {
    c
}

fn conn_raw(c: &Connection) -> ConnClient<'_> {
    ConnClient(c)
}

fn pooled(c: &PooledConnection) -> &Connection {
    c
}

fn pooled_raw(c: &PooledConnection) -> ConnClient<'_> {
    ConnClient(c)
}

fn tx(t: &Transaction) -> &crate::TxClient {
    t
}

fn savepoint<'s>(s: &'s Savepoint<'_>) -> &'s crate::TxClient {
    s
}

fn pool_tx(t: &PoolTransaction) -> &crate::TxClient {
    t
}

impl sealed::Sealed for Connection {}
impl GenericClient for Connection {
    type Transaction<'a> = Transaction;
    forward_statements!(conn, conn_raw);

    fn transaction(&mut self) -> impl Future<Output = Result<Transaction, Error>> + Send {
        Connection::transaction(self)
    }
}

impl sealed::Sealed for PooledConnection {}
impl GenericClient for PooledConnection {
    type Transaction<'a> = Transaction;
    forward_statements!(pooled, pooled_raw);

    fn transaction(&mut self) -> impl Future<Output = Result<Transaction, Error>> + Send {
        Connection::transaction(self)
    }
}

impl sealed::Sealed for Transaction {}
impl GenericClient for Transaction {
    type Transaction<'a> = Savepoint<'a>;
    forward_statements!(tx, tx);

    fn transaction(&mut self) -> impl Future<Output = Result<Savepoint<'_>, Error>> + Send {
        self.savepoint()
    }
}

impl sealed::Sealed for Savepoint<'_> {}
impl<'s> GenericClient for Savepoint<'s> {
    type Transaction<'a>
        = Savepoint<'a>
    where
        Self: 'a;
    forward_statements!(savepoint, savepoint);

    fn transaction(&mut self) -> impl Future<Output = Result<Savepoint<'_>, Error>> + Send {
        self.savepoint()
    }
}

impl sealed::Sealed for PoolTransaction {}
impl GenericClient for PoolTransaction {
    type Transaction<'a> = Savepoint<'a>;
    forward_statements!(pool_tx, pool_tx);

    fn transaction(&mut self) -> impl Future<Output = Result<Savepoint<'_>, Error>> + Send {
        self.savepoint()
    }
}
