//! The fast-path exchange: one FunctionCall, one FunctionCallResponse (or an error), one
//! ReadyForQuery. Reference: PostgreSQL manual, "Function Call" in "Message Flow".
//!
//! A function is named by signature (`lo_open(oid, int4)`), by name when it is not
//! overloaded, or by OID; what the catalogue says of it (OID, argument and result types)
//! is looked up once per connection and kept in [`FunctionCache`]. Arguments go in binary
//! as the function's own argument types, the result comes back in binary.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::Params;
use super::wire::{Closes, Flow, Handler, Wire};
use crate::error::{DbError, Error, ErrorKind, sqlstate};
use crate::protocol::BackendMessage;
use crate::protocol::frontend::{self, Format};
use crate::row::Row;
use crate::types::{FromSqlOwned, IsNull, Oid, Type, catalog};

/// A function to call over the fast path: by signature or name, or by OID.
///
/// A signature (`"lo_open(oid, int4)"`, `"pg_catalog.pg_sleep(float8)"`) is resolved with
/// `to_regprocedure`, a bare name (`"pg_backend_pid"`) with `to_regproc` (so it must not
/// be overloaded), both through the session's `search_path`: schema-qualify to be sure
/// which function runs.
///
/// ```
/// use pgkeel::Function;
/// let by_signature = Function::from("pg_catalog.lo_open(oid, int4)");
/// let by_oid = Function::from(952u32);
/// assert_ne!(by_signature, by_oid);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Function {
    /// A signature or an unambiguous name.
    Named(String),
    /// A `pg_proc` OID.
    Oid(Oid),
}

impl From<&str> for Function {
    fn from(name: &str) -> Function {
        Function::Named(name.to_owned())
    }
}

impl From<String> for Function {
    fn from(name: String) -> Function {
        Function::Named(name)
    }
}

impl From<Oid> for Function {
    fn from(oid: Oid) -> Function {
        Function::Oid(oid)
    }
}

impl std::fmt::Display for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Function::Named(name) => write!(f, "{name:?}"),
            Function::Oid(oid) => write!(f, "with OID {oid}"),
        }
    }
}

/// What the catalogue says of a function.
#[derive(Debug, Clone)]
pub(crate) struct FunctionInfo {
    pub(crate) oid: Oid,
    /// `oid::regprocedure`, for errors.
    pub(crate) name: String,
    pub(crate) args: Vec<Type>,
    pub(crate) result: Type,
}

/// The functions a connection has resolved, by how they were named. Bounded: a program
/// that names functions without end (a signature built from data) only costs lookups.
#[derive(Debug, Default)]
pub(crate) struct FunctionCache {
    by_name: HashMap<Function, Arc<FunctionInfo>>,
}

/// Entries kept before the cache starts over.
const FUNCTION_CACHE_CAPACITY: usize = 256;

impl FunctionCache {
    fn insert(&mut self, f: Function, info: Arc<FunctionInfo>) {
        if self.by_name.len() >= FUNCTION_CACHE_CAPACITY {
            self.by_name.clear();
        }
        self.by_name.insert(f, info);
    }

    /// Forgets a function the server no longer knows under its OID (dropped, or recreated).
    fn forget(&mut self, oid: Oid) {
        self.by_name.retain(|_, info| info.oid != oid);
    }
}

/// Resolves names and OIDs (`$1`, `$2`, element by element; a NULL where unused) to
/// `pg_proc` rows, with no error for one that matches nothing: a missing function is
/// reported by the client, so an open transaction is not failed by a typo.
const RESOLVE_SQL: &str = "\
SELECT f.i, p.oid, p.prorettype, array_to_string(p.proargtypes::pg_catalog.oid[], ','),
    p.oid::pg_catalog.regprocedure::pg_catalog.text
FROM unnest($1::pg_catalog.text[], $2::pg_catalog.oid[]) WITH ORDINALITY AS f(name, id, i)
JOIN pg_catalog.pg_proc p ON p.oid = coalesce(f.id, CASE
    WHEN strpos(f.name, '(') > 0 THEN pg_catalog.to_regprocedure(f.name)::pg_catalog.oid
    ELSE pg_catalog.to_regproc(f.name)::pg_catalog.oid END)";

impl Wire {
    /// The catalogue entries of `functions`, looked up (one exchange for all the ones
    /// this connection has not met) and cached.
    ///
    /// # Errors
    /// A client-made error with SQLSTATE 42883 (undefined function) for a name or OID
    /// that matches no function (or an overloaded bare name); nothing ran, an open
    /// transaction is unaffected. Any error of the lookup query.
    pub(crate) async fn functions(
        &mut self,
        functions: &[Function],
    ) -> Result<Vec<Arc<FunctionInfo>>, Error> {
        let missing: Vec<&Function> = functions
            .iter()
            .filter(|f| !self.functions.by_name.contains_key(*f))
            .collect();
        if !missing.is_empty() {
            self.look_up_functions(&missing).await?;
        }
        let known = |f: &Function| self.functions.by_name.get(f).cloned();
        functions
            .iter()
            .map(|f| known(f).ok_or_else(|| undefined_function(f)))
            .collect()
    }

    async fn look_up_functions(&mut self, missing: &[&Function]) -> Result<(), Error> {
        let names: Vec<Option<&str>> = missing.iter().map(|f| f.name()).collect();
        let oids: Vec<Option<Oid>> = missing.iter().map(|f| f.oid()).collect();
        let mut rows: Vec<Row> = Vec::new();
        let params: Params<'_> = &[&names, &oids];
        super::run_on(self, RESOLVE_SQL, params, &mut rows).await?;
        let mut found = Vec::new();
        for row in &rows {
            let (i, info) = function_row(row)?;
            found.push((missing[i].clone(), info));
        }
        self.resolve_function_types(&mut found).await?;
        for (f, info) in found {
            self.functions.insert(f, Arc::new(info));
        }
        Ok(())
    }

    /// Puts the catalogue's types (enums, domains, …) into the functions found, looking
    /// up (one exchange) those this connection has not met.
    async fn resolve_function_types(
        &mut self,
        found: &mut [(Function, FunctionInfo)],
    ) -> Result<(), Error> {
        let types = found
            .iter()
            .flat_map(|(_, i)| i.args.iter().chain([&i.result]));
        let missing = catalog::unresolved(types);
        if missing.is_empty() {
            return Ok(());
        }
        catalog::look_up(self, &missing).await?;
        for (_, info) in found {
            let args = std::mem::take(&mut info.args);
            info.args = catalog::retyped_params(&self.shared, args);
            let result = vec![info.result.clone()];
            info.result = catalog::retyped_params(&self.shared, result).remove(0);
        }
        Ok(())
    }

    /// Calls a resolved function with arguments encoded as its argument types; returns
    /// its result (`None` for NULL).
    ///
    /// # Errors
    /// [`ErrorKind::Encode`] naming the argument (nothing is sent); a server error.
    pub(crate) async fn call_function(
        &mut self,
        info: &FunctionInfo,
        args: Params<'_>,
    ) -> Result<Option<Bytes>, Error> {
        check_args(info, args)?;
        let encode = |buf: &mut BytesMut| write_call(info, args, buf);
        let result = self.fast_path(encode).await;
        if let Err(e) = &result
            && e.code() == Some(sqlstate::UNDEFINED_FUNCTION)
        {
            self.functions.forget(info.oid);
        }
        result
    }

    /// Runs one FunctionCall that `write` appends; returns its result (`None` for NULL).
    ///
    /// # Errors
    /// What `write` returns (nothing is sent); a server error; a socket or protocol
    /// failure (the connection is then broken).
    ///
    /// # Cancel safety
    /// Not cancel safe once written: dropped mid-exchange, the in-flight guard abandons
    /// or breaks the connection, as for every exchange.
    pub(crate) async fn fast_path(
        &mut self,
        write: impl FnOnce(&mut BytesMut) -> Result<(), Error>,
    ) -> Result<Option<Bytes>, Error> {
        // Queued Closes go first with their own Sync: an error in them must not make the
        // server skip the call while it looks for a Sync.
        let mut f = self.begin("calling a function (fast path)", Closes::Synced)?;
        if let Err(e) = write(f.buf()) {
            f.abandon_unsent();
            return Err(e);
        }
        // The call ends with its own ReadyForQuery, as a simple Query does.
        f.wire().ledger.owe();
        f.flush().await?;
        let mut reader = CallReader::default();
        f.read(&mut reader).await?;
        if let Some(e) = f.take_error() {
            return Err(e);
        }
        match reader.result {
            Some(result) => Ok(result),
            None => {
                let status = f.wire().transaction_status();
                Err(f.unexpected(&BackendMessage::ReadyForQuery(status)))
            }
        }
    }
}

impl Function {
    fn name(&self) -> Option<&str> {
        match self {
            Function::Named(name) => Some(name),
            Function::Oid(_) => None,
        }
    }

    fn oid(&self) -> Option<Oid> {
        match self {
            Function::Named(_) => None,
            Function::Oid(oid) => Some(*oid),
        }
    }
}

/// One row of [`RESOLVE_SQL`]: the index of the name it answers, and the function.
fn function_row(row: &Row) -> Result<(usize, FunctionInfo), Error> {
    let i: i64 = row.try_get(0)?;
    let args: String = row.try_get(3)?;
    let args = args
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<Oid>().map(Type::for_oid))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::with_source(ErrorKind::Decode, "pg_proc.proargtypes", e))?;
    let info = FunctionInfo {
        oid: row.try_get(1)?,
        result: Type::for_oid(row.try_get(2)?),
        args,
        name: row.try_get(4)?,
    };
    let i = usize::try_from(i - 1).map_err(|_| Error::new(ErrorKind::Decode, "ordinality"))?;
    Ok((i, info))
}

/// The error for a function that does not exist: SQLSTATE 42883, as the server gives
/// for an unknown `regprocedure`, but made here (nothing ran; no transaction failed).
fn undefined_function(f: &Function) -> Error {
    let fields = vec![
        (b'S', "ERROR".to_owned()),
        (b'V', "ERROR".to_owned()),
        (b'C', sqlstate::UNDEFINED_FUNCTION.to_owned()),
        (b'M', format!("function {f} does not exist")),
        (
            b'H',
            "a bare name must not be overloaded; give the signature, e.g. \"lo_open(oid, int4)\""
                .to_owned(),
        ),
        (
            b'W',
            "resolving a fast-path function (checked by pgkeel; nothing was called)".to_owned(),
        ),
    ];
    Error::db(DbError::from_fields(fields))
}

/// Fails unless there is one argument per parameter, each of a Rust type that can be
/// sent as the parameter's type.
fn check_args(info: &FunctionInfo, args: Params<'_>) -> Result<(), Error> {
    if info.args.len() != args.len() {
        let msg = format!(
            "function {} takes {} arguments but {} were given",
            info.name,
            info.args.len(),
            args.len()
        );
        return Err(Error::new(ErrorKind::Encode, msg));
    }
    let refused = (0..args.len()).find(|&i| !args[i].dyn_accepts(&info.args[i]));
    match refused {
        None => Ok(()),
        Some(i) => Err(Error::new(
            ErrorKind::Encode,
            format!(
                "argument {} of {} has type {}, which Rust type {} cannot be sent as",
                i + 1,
                info.name,
                info.args[i],
                args[i].rust_type_name()
            ),
        )),
    }
}

fn write_call(info: &FunctionInfo, args: Params<'_>, buf: &mut BytesMut) -> Result<(), Error> {
    let value = |i: usize, buf: &mut BytesMut| {
        let ty = &info.args[i];
        match args[i].to_sql_checked(ty, buf) {
            Ok(IsNull::Yes) => Ok(true),
            Ok(IsNull::No) => Ok(false),
            Err(e) => {
                let rust = args[i].rust_type_name();
                let msg = format!(
                    "argument {} of {} ({ty}) from Rust type {rust}",
                    i + 1,
                    info.name
                );
                Err(Error::with_source(ErrorKind::Encode, msg, e))
            }
        }
    };
    frontend::function_call_with(info.oid, args.len(), value, Format::Binary, buf)
}

/// Decodes a fast-path result as the function's result type.
///
/// # Errors
/// [`ErrorKind::Decode`] naming the function, its result type and the Rust type.
pub(crate) fn decode_result<T: FromSqlOwned>(
    info: &FunctionInfo,
    raw: Option<Bytes>,
) -> Result<T, Error> {
    let ty = info.result.base();
    let fail = |e| {
        let rust = std::any::type_name::<T>();
        let msg = format!("the result of {} ({ty}) into Rust type {rust}", info.name);
        Error::with_source(ErrorKind::Decode, msg, e)
    };
    if !T::accepts(ty) {
        return Err(fail(crate::types::type_error::<T>(ty, T::mismatch(ty))));
    }
    T::from_sql_nullable(ty, raw.as_deref()).map_err(fail)
}

/// Reads the answer to a FunctionCall: exactly one FunctionCallResponse.
#[derive(Default)]
struct CallReader {
    result: Option<Option<Bytes>>,
}

impl Handler for CallReader {
    fn message(&mut self, msg: BackendMessage) -> Result<Flow, BackendMessage> {
        match msg {
            BackendMessage::FunctionCallResponse(v) if self.result.is_none() => {
                self.result = Some(v);
                Ok(Flow::Continue)
            }
            msg => Err(msg),
        }
    }
}

impl Wire {
    /// Resolves `function` (cached) and calls it; returns what the catalogue says of it
    /// and its result.
    pub(crate) async fn fast_path_call(
        &mut self,
        function: &Function,
        args: Params<'_>,
    ) -> Result<(Arc<FunctionInfo>, Option<Bytes>), Error> {
        let info = self
            .functions(std::slice::from_ref(function))
            .await?
            .remove(0);
        let raw = self.call_function(&info, args).await?;
        Ok((info, raw))
    }
}

impl super::Connection {
    /// Calls a server function over the fast path (the protocol's FunctionCall message)
    /// and returns its raw binary result, `None` for SQL NULL.
    ///
    /// The function is named by signature, by unambiguous name, or by OID (see
    /// [`Function`]); what the catalogue says of it is looked up once per connection
    /// (one round trip, the first time) and cached. Each argument is sent in binary as
    /// the function's own argument type, so the Rust values must be of matching types.
    ///
    /// ```no_run
    /// # async fn demo(conn: pgkeel::Connection) -> Result<(), pgkeel::Error> {
    /// let raw = conn.fast_path_call("pg_catalog.int4pl(int4, int4)", &[&2i32, &3i32]).await?;
    /// assert_eq!(raw.as_deref(), Some(&5i32.to_be_bytes()[..]));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// SQLSTATE 42883 (undefined function, made by pgkeel: nothing ran) for a function
    /// that does not exist; [`ErrorKind::Encode`] naming the argument for a wrong count
    /// or a Rust value that cannot be sent as the argument's type (nothing is sent); any
    /// server error of the call; [`ErrorKind::Broken`] or [`ErrorKind::Closed`] when the
    /// connection can no longer be used.
    ///
    /// # Cancel safety
    /// As [`Connection::query`](super::Connection::query): dropped after the call went
    /// out, the connection turns broken (or is left for a pool to recover).
    pub async fn fast_path_call(
        &self,
        function: impl Into<Function>,
        args: Params<'_>,
    ) -> Result<Option<Bytes>, Error> {
        let function = function.into();
        super::bounded_call!(self.inner.shared.limits.query, {
            let mut wire = self.lock("fast_path_call").await?;
            wire.fast_path_call(&function, args)
                .await
                .map(|(_, raw)| raw)
        })
    }

    /// As [`Connection::fast_path_call`](super::Connection::fast_path_call), with the
    /// result decoded as `T` (an `Option<T>` for a function that may return NULL).
    ///
    /// ```no_run
    /// # async fn demo(conn: pgkeel::Connection) -> Result<(), pgkeel::Error> {
    /// let pid: i32 = conn.fast_path_call_typed("pg_catalog.pg_backend_pid", &[]).await?;
    /// assert_eq!(pid, conn.backend_pid());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As `fast_path_call`, and [`ErrorKind::Decode`] naming the function, its result type
    /// and `T` when the result does not decode as `T` (NULL into a non-`Option`).
    ///
    /// # Cancel safety
    /// As `fast_path_call`.
    pub async fn fast_path_call_typed<T: FromSqlOwned>(
        &self,
        function: impl Into<Function>,
        args: Params<'_>,
    ) -> Result<T, Error> {
        let function = function.into();
        super::bounded_call!(self.inner.shared.limits.query, {
            let mut wire = self.lock("fast_path_call").await?;
            let (info, raw) = wire.fast_path_call(&function, args).await?;
            decode_result(&info, raw)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ToSql;

    fn int4pl() -> FunctionInfo {
        FunctionInfo {
            oid: 177,
            name: "int4pl(integer,integer)".to_owned(),
            args: vec![Type::INT4, Type::INT4],
            result: Type::INT4,
        }
    }

    #[test]
    fn arguments_are_encoded_as_the_functions_own_types() {
        let (a, b) = (2i32, None::<i32>);
        let args: [&(dyn ToSql + Sync); 2] = [&a, &b];
        let mut buf = BytesMut::new();
        write_call(&int4pl(), &args, &mut buf).unwrap();
        let want: &[u8] =
            b"F\0\0\0\x1c\0\0\0\xb1\0\x01\0\x01\0\x02\0\0\0\x04\0\0\0\x02\xff\xff\xff\xff\0\x01";
        assert_eq!(&buf[..], want);
    }

    #[test]
    fn a_wrong_count_or_type_is_an_encode_error_naming_the_argument() {
        let (a, s) = (2i32, "x");
        let e = check_args(&int4pl(), &[&a]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Encode);
        assert!(e.to_string().contains("takes 2 arguments but 1"), "{e}");
        let e = check_args(&int4pl(), &[&a, &s]).unwrap_err();
        assert!(e.to_string().contains("argument 2"), "{e}");
        check_args(&int4pl(), &[&a, &a]).unwrap();
    }

    #[test]
    fn an_unknown_function_is_sqlstate_42883_naming_it() {
        let e = undefined_function(&Function::from("nope(int4)"));
        assert_eq!((e.kind(), e.code()), (ErrorKind::Db, Some("42883")));
        assert!(e.to_string().contains("nope(int4)"), "{e}");
        let e = undefined_function(&Function::from(42u32));
        assert!(e.to_string().contains("OID 42"), "{e}");
    }

    #[test]
    fn results_decode_as_the_result_type_and_null_only_into_option() {
        let raw = Some(Bytes::from_static(&[0, 0, 0, 5]));
        assert_eq!(decode_result::<i32>(&int4pl(), raw.clone()).unwrap(), 5);
        assert_eq!(decode_result::<Option<i32>>(&int4pl(), None).unwrap(), None);
        let e = decode_result::<i32>(&int4pl(), None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode);
        let e = decode_result::<String>(&int4pl(), raw).unwrap_err();
        assert!(e.to_string().contains("int4pl"), "{e}");
    }
}
