//! The large-object server functions, resolved once per connection and called with raw
//! binary arguments over the fast path.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::connection::fastpath::Function;
use crate::connection::wire::Wire;
use crate::connection::with_timeout;
use crate::error::{Error, ErrorKind};
use crate::protocol::frontend::{self, Format};
use crate::types::Oid;

/// The server functions large objects use, by signature (schema-qualified, so the
/// session's `search_path` cannot put another function in their place).
pub(super) const FUNCTIONS: [&str; 11] = [
    "pg_catalog.lo_open(oid, int4)",
    "pg_catalog.lo_close(int4)",
    "pg_catalog.loread(int4, int4)",
    "pg_catalog.lowrite(int4, bytea)",
    "pg_catalog.lo_lseek64(int4, int8, int4)",
    "pg_catalog.lo_tell64(int4)",
    "pg_catalog.lo_truncate64(int4, int8)",
    "pg_catalog.lo_create(oid)",
    "pg_catalog.lo_unlink(oid)",
    "pg_catalog.lo_from_bytea(oid, bytea)",
    "pg_catalog.lo_get(oid)",
];

/// Indexes into [`FUNCTIONS`] and [`Lo::oids`].
#[derive(Debug, Clone, Copy)]
pub(super) enum F {
    Open,
    Close,
    Read,
    Write,
    Lseek,
    Tell,
    Truncate,
    Create,
    Unlink,
    FromBytea,
    Get,
}

/// The OIDs of [`FUNCTIONS`] on one connection (resolved once, with the connection's
/// other fast-path functions).
#[derive(Debug, Clone, Copy)]
pub(super) struct Lo {
    oids: [Oid; FUNCTIONS.len()],
}

impl Lo {
    pub(super) async fn resolve(wire: &mut Wire) -> Result<Lo, Error> {
        let wanted: Vec<Function> = FUNCTIONS.iter().map(|&f| Function::from(f)).collect();
        let infos = wire.functions(&wanted).await?;
        let mut oids = [0; FUNCTIONS.len()];
        for (slot, info) in oids.iter_mut().zip(infos) {
            *slot = info.oid;
        }
        Ok(Lo { oids })
    }

    /// Calls `f` with raw binary arguments.
    pub(super) async fn call(
        &self,
        wire: &mut Wire,
        f: F,
        args: &[Option<&[u8]>],
    ) -> Result<Option<Bytes>, Error> {
        let oid = self.oids[f as usize];
        let write = |buf: &mut bytes::BytesMut| {
            frontend::function_call(oid, args, Format::Binary, buf).map_err(Error::from)
        };
        wire.fast_path(write).await
    }

    pub(super) async fn int4(
        &self,
        wire: &mut Wire,
        f: F,
        args: &[Option<&[u8]>],
    ) -> Result<i32, Error> {
        let raw = self.call(wire, f, args).await?;
        fixed::<4>(f, raw).map(i32::from_be_bytes)
    }

    pub(super) async fn int8(
        &self,
        wire: &mut Wire,
        f: F,
        args: &[Option<&[u8]>],
    ) -> Result<i64, Error> {
        let raw = self.call(wire, f, args).await?;
        fixed::<8>(f, raw).map(i64::from_be_bytes)
    }

    pub(super) async fn read(&self, wire: &mut Wire, fd: i32, len: usize) -> Result<Bytes, Error> {
        let len = i32::try_from(len).unwrap_or(i32::MAX);
        let args = [Some(&fd.to_be_bytes()[..]), Some(&len.to_be_bytes()[..])];
        match self.call(wire, F::Read, &args).await? {
            Some(data) if data.len() <= len as usize => Ok(data),
            other => Err(bad_result(F::Read, other.as_deref())),
        }
    }

    pub(super) async fn write(
        &self,
        wire: &mut Wire,
        fd: i32,
        data: &[u8],
    ) -> Result<usize, Error> {
        let args = [Some(&fd.to_be_bytes()[..]), Some(data)];
        let n = self.int4(wire, F::Write, &args).await?;
        match usize::try_from(n) {
            Ok(n) if n == data.len() => Ok(n),
            _ => Err(bad_result(F::Write, Some(&n.to_be_bytes()))),
        }
    }

    pub(super) async fn lseek(
        &self,
        wire: &mut Wire,
        fd: i32,
        to: i64,
        whence: i32,
    ) -> Result<u64, Error> {
        let args = [
            Some(&fd.to_be_bytes()[..]),
            Some(&to.to_be_bytes()[..]),
            Some(&whence.to_be_bytes()[..]),
        ];
        let pos = self.int8(wire, F::Lseek, &args).await?;
        u64::try_from(pos).map_err(|_| bad_result(F::Lseek, Some(&pos.to_be_bytes())))
    }
}

pub(super) fn fixed<const N: usize>(f: F, raw: Option<Bytes>) -> Result<[u8; N], Error> {
    raw.as_deref()
        .and_then(|r| <[u8; N]>::try_from(r).ok())
        .ok_or_else(|| bad_result(f, raw.as_deref()))
}

pub(super) fn bad_result(f: F, raw: Option<&[u8]>) -> Error {
    let got = match raw {
        None => "NULL".to_owned(),
        Some(r) => format!("{} bytes", r.len()),
    };
    let msg = format!(
        "{} returned {got}, which it never does",
        FUNCTIONS[f as usize]
    );
    Error::new(ErrorKind::Protocol, msg)
}

/// Runs `call` within the connection's query timeout, if it has one.
pub(super) async fn bounded<T>(
    limit: Option<Duration>,
    call: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match limit {
        None => call.await,
        Some(limit) => with_timeout(limit, call).await,
    }
}
