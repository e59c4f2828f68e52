//! Opening large objects (and fast-path calls) from a transaction guard or a savepoint.

use bytes::Bytes;

use super::calls::{F, Lo, bad_result, bounded};
use super::{LargeObject, LoMode};
use crate::connection::Params;
use crate::connection::fastpath::{Function, decode_result};
use crate::error::Error;
#[cfg(doc)]
use crate::error::ErrorKind;
use crate::transaction::{Savepoint, Transaction};
use crate::types::{FromSqlOwned, Oid};

/// Large objects and fast-path calls on a transaction guard or a savepoint.
macro_rules! large_object_methods {
    () => {
        /// Creates an empty large object and returns its OID (`lo_create(0)`); it is
        /// kept only if the transaction commits.
        ///
        /// ```no_run
        /// # async fn demo(conn: pgkeel::Connection) -> Result<(), pgkeel::Error> {
        /// let mut tx = conn.transaction().await?;
        /// let oid = tx.create_large_object().await?;
        /// tx.execute("INSERT INTO documents (blob) VALUES ($1)", &[&oid]).await?;
        /// tx.commit().await?;
        /// # Ok(()) }
        /// ```
        ///
        /// # Errors
        /// A server error; [`ErrorKind::Broken`]/[`ErrorKind::Closed`].
        ///
        /// # Cancel safety
        /// As [`Connection::query`](crate::Connection::query).
        pub async fn create_large_object(&mut self) -> Result<Oid, Error> {
            let mut guard = self.wire_ready().await?;
            let wire = &mut *guard;
            let limit = wire.shared.limits.query;
            bounded(limit, async {
                let lo = Lo::resolve(wire).await?;
                let oid = lo
                    .int4(wire, F::Create, &[Some(&0u32.to_be_bytes())])
                    .await?;
                Ok(oid as Oid)
            })
            .await
        }

        /// Opens large object `oid`; the object borrows the transaction until it is
        /// dropped or closed.
        ///
        /// ```no_run
        /// # async fn demo(conn: pgkeel::Connection, oid: u32) -> Result<(), Box<dyn std::error::Error>> {
        /// let mut tx = conn.transaction().await?;
        /// let mut lo = tx.large_object(oid, pgkeel::LoMode::Read).await?;
        /// let mut out = tokio::io::sink();
        /// let n = tokio::io::copy(&mut lo, &mut out).await?;
        /// drop(lo);
        /// tx.commit().await?;
        /// # Ok(()) }
        /// ```
        ///
        /// # Errors
        /// A server error: SQLSTATE 42704 (undefined object) for an object that does
        /// not exist, 42501 without the privilege.
        ///
        /// # Cancel safety
        /// As [`Connection::query`](crate::Connection::query).
        pub async fn large_object(
            &mut self,
            oid: Oid,
            mode: LoMode,
        ) -> Result<LargeObject<'_>, Error> {
            let wire = self.wire_ready().await?;
            let limit = wire.shared.limits.query;
            LargeObject::open(wire, oid, mode, limit).await
        }

        /// Deletes large object `oid` (`lo_unlink`), when the transaction commits.
        ///
        /// ```no_run
        /// # async fn demo(conn: pgkeel::Connection, oid: u32) -> Result<(), pgkeel::Error> {
        /// let mut tx = conn.transaction().await?;
        /// tx.unlink_large_object(oid).await?;
        /// tx.commit().await?;
        /// # Ok(()) }
        /// ```
        ///
        /// # Errors
        /// SQLSTATE 42704 for an object that does not exist; a server error.
        ///
        /// # Cancel safety
        /// As [`Connection::query`](crate::Connection::query).
        pub async fn unlink_large_object(&mut self, oid: Oid) -> Result<(), Error> {
            let mut guard = self.wire_ready().await?;
            let wire = &mut *guard;
            let limit = wire.shared.limits.query;
            bounded(limit, async {
                let lo = Lo::resolve(wire).await?;
                lo.int4(wire, F::Unlink, &[Some(&oid.to_be_bytes())])
                    .await?;
                Ok(())
            })
            .await
        }

        /// Creates a large object holding `data` in one call (`lo_from_bytea`), for
        /// objects small enough to hold in memory (up to 1 GiB); returns its OID.
        ///
        /// ```no_run
        /// # async fn demo(mut tx: pgkeel::Transaction) -> Result<(), pgkeel::Error> {
        /// let oid = tx.import_large_object(b"small enough").await?;
        /// assert_eq!(&tx.export_large_object(oid).await?[..], b"small enough");
        /// # Ok(()) }
        /// ```
        ///
        /// # Errors
        /// A server error; [`ErrorKind::Encode`] for more than 1 GiB (nothing is sent).
        ///
        /// # Cancel safety
        /// As [`Connection::query`](crate::Connection::query).
        pub async fn import_large_object(&mut self, data: &[u8]) -> Result<Oid, Error> {
            let mut guard = self.wire_ready().await?;
            let wire = &mut *guard;
            let limit = wire.shared.limits.query;
            bounded(limit, async {
                let lo = Lo::resolve(wire).await?;
                let args = [Some(&0u32.to_be_bytes()[..]), Some(data)];
                let oid = lo.int4(wire, F::FromBytea, &args).await?;
                Ok(oid as Oid)
            })
            .await
        }

        /// The whole content of large object `oid` in one call (`lo_get`), for objects
        /// small enough to hold in memory (the server refuses more than 1 GiB); stream
        /// larger ones through [`large_object`](Self::large_object).
        ///
        /// ```no_run
        /// # async fn demo(mut tx: pgkeel::Transaction, oid: u32) -> Result<(), pgkeel::Error> {
        /// let bytes = tx.export_large_object(oid).await?;
        /// println!("{} bytes", bytes.len());
        /// # Ok(()) }
        /// ```
        ///
        /// # Errors
        /// SQLSTATE 42704 for an object that does not exist; a server error.
        ///
        /// # Cancel safety
        /// As [`Connection::query`](crate::Connection::query).
        pub async fn export_large_object(&mut self, oid: Oid) -> Result<Bytes, Error> {
            let mut guard = self.wire_ready().await?;
            let wire = &mut *guard;
            let limit = wire.shared.limits.query;
            bounded(limit, async {
                let lo = Lo::resolve(wire).await?;
                match lo.call(wire, F::Get, &[Some(&oid.to_be_bytes())]).await? {
                    Some(data) => Ok(data),
                    None => Err(bad_result(F::Get, None)),
                }
            })
            .await
        }

        /// Calls a server function over the fast path inside the transaction; see
        /// [`Connection::fast_path_call`](crate::Connection::fast_path_call).
        ///
        /// ```no_run
        /// # async fn demo(mut tx: pgkeel::Transaction) -> Result<(), pgkeel::Error> {
        /// let raw = tx.fast_path_call("pg_catalog.lo_create(oid)", &[&0u32]).await?;
        /// # Ok(()) }
        /// ```
        ///
        /// # Errors
        /// As [`Connection::fast_path_call`](crate::Connection::fast_path_call); a server
        /// error fails the transaction, as any statement's would.
        ///
        /// # Cancel safety
        /// As [`Connection::query`](crate::Connection::query).
        pub async fn fast_path_call(
            &mut self,
            function: impl Into<Function>,
            args: Params<'_>,
        ) -> Result<Option<Bytes>, Error> {
            let function = function.into();
            let mut guard = self.wire_ready().await?;
            let wire = &mut *guard;
            let limit = wire.shared.limits.query;
            let call = wire.fast_path_call(&function, args);
            bounded(limit, async { call.await.map(|(_, raw)| raw) }).await
        }

        /// As [`fast_path_call`](Self::fast_path_call), with the result decoded as `T`;
        /// see [`Connection::fast_path_call_typed`](crate::Connection::fast_path_call_typed).
        ///
        /// ```no_run
        /// # async fn demo(mut tx: pgkeel::Transaction) -> Result<(), pgkeel::Error> {
        /// let oid: u32 = tx.fast_path_call_typed("pg_catalog.lo_create(oid)", &[&0u32]).await?;
        /// # Ok(()) }
        /// ```
        ///
        /// # Errors
        /// As [`Connection::fast_path_call_typed`](crate::Connection::fast_path_call_typed).
        ///
        /// # Cancel safety
        /// As [`Connection::query`](crate::Connection::query).
        pub async fn fast_path_call_typed<T: FromSqlOwned>(
            &mut self,
            function: impl Into<Function>,
            args: Params<'_>,
        ) -> Result<T, Error> {
            let function = function.into();
            let mut guard = self.wire_ready().await?;
            let wire = &mut *guard;
            let limit = wire.shared.limits.query;
            bounded(limit, async {
                let (info, raw) = wire.fast_path_call(&function, args).await?;
                decode_result(&info, raw)
            })
            .await
        }
    };
}

impl Transaction {
    large_object_methods!();
}

impl Savepoint<'_> {
    large_object_methods!();
}
