//! Binary-format conversions between Rust values and PostgreSQL types: [`Type`] (OID,
//! name, schema, [`Kind`]), the [`ToSql`]/[`FromSql`] traits with tokio-postgres's
//! signatures, and the value types for what std has no type for ([`Numeric`],
//! [`Interval`], [`Array`], [`Range`], ...). The table of which Rust type goes with which
//! PostgreSQL type is in `docs/TYPES.md`.
#![forbid(unsafe_code)]

use std::error::Error;
use std::fmt;

pub use bytes::BytesMut;

/// Implements ToSql and FromSql for an owned Rust type from an encoder and a decoder:
/// `sql_impl!(Rust, SENT_AS, [ACCEPTED, ...], encode, decode)`. The type check runs first.
macro_rules! sql_impl {
    ($rust:ty, $sql:ident, [$($pg:ident),+], $enc:expr_2021, $dec:expr_2021) => {
        impl $crate::types::ToSql for $rust {
            fn sql_type() -> $crate::types::Type {
                $crate::types::Type::$sql
            }

            fn accepts(ty: &$crate::types::Type) -> bool {
                $(*ty == $crate::types::Type::$pg)||+
            }

            fn to_sql(
                &self,
                ty: &$crate::types::Type,
                out: &mut ::bytes::BytesMut,
            ) -> Result<$crate::types::IsNull, $crate::types::BoxError> {
                $crate::types::ensure_accepts::<Self>(ty)?;
                let encode: fn(
                    &$rust,
                    &$crate::types::Type,
                    &mut ::bytes::BytesMut,
                ) -> Result<(), $crate::types::BoxError> = $enc;
                encode(self, ty, out)?;
                Ok($crate::types::IsNull::No)
            }

            $crate::to_sql_checked!();
        }

        impl<'a> $crate::types::FromSql<'a> for $rust {
            fn from_sql(
                ty: &$crate::types::Type,
                raw: &'a [u8],
            ) -> Result<Self, $crate::types::BoxError> {
                if !<Self as $crate::types::FromSql>::accepts(ty) {
                    return Err($crate::types::wrong_type::<Self>(ty));
                }
                let decode: fn(
                    &$crate::types::Type,
                    &[u8],
                ) -> Result<$rust, $crate::types::BoxError> = $dec;
                decode(ty, raw)
            }

            fn accepts(ty: &$crate::types::Type) -> bool {
                $(*ty == $crate::types::Type::$pg)||+
            }
        }
    };
}

mod array;
#[cfg(feature = "bigdecimal")]
mod bigdecimal;
mod bits;
mod borrow;
mod builtin;
pub(crate) mod catalog;
#[cfg(feature = "chrono")]
mod chrono;
mod datetime;
#[doc(hidden)]
pub mod derive;
mod infer;
#[cfg(feature = "jiff")]
mod jiff;
mod json;
mod lsn;
mod money;
mod net;
mod numeric;
#[cfg(any(feature = "rust_decimal", feature = "bigdecimal"))]
mod numeric_fast;
mod option;
mod primitives;
mod range;
mod record;
mod text;
#[cfg(feature = "time")]
mod time;
mod ty;
mod uuid;

pub use self::array::{Array, Dimension};
pub use self::bits::BitString;
pub use self::borrow::BorrowToSql;
pub(crate) use self::borrow::{as_refs, collect_params};
pub use self::datetime::{
    Date, Interval, PgDate, PgTime, PgTimeTz, PgTimestamp, PgTimestampTz, Timestamp,
};
pub use self::derive::Mismatch;
pub use self::infer::Infer;
#[cfg(feature = "serde_json")]
pub use self::json::Json;
pub use self::json::RawJson;
pub use self::lsn::PgLsn;
pub use self::money::Money;
pub use self::net::{IpNet, MacAddr, MacAddr8};
pub use self::numeric::{Numeric, ParseNumericError};
pub use self::range::{Multirange, Range};
pub use self::record::Record;
pub use self::ty::{Field, Kind, Type};
pub use self::uuid::PgUuid;

/// A PostgreSQL type OID.
pub type Oid = u32;

/// Boxed error returned by conversions; the connection wraps it with column/param context.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// Whether an encoded value is SQL NULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsNull {
    /// The value is NULL; nothing was written.
    Yes,
    /// The value is not NULL; its encoding was written.
    No,
}

/// A Rust value that can be sent as a parameter in binary format.
///
/// The signatures follow tokio-postgres's `ToSql`, so an impl written for it compiles
/// here with its `to_sql_checked!()` import changed to [`crate::to_sql_checked!`].
pub trait ToSql: fmt::Debug + Sync {
    /// The type this Rust type names for its parameter in Parse, so a query needs no
    /// extra round trip (i32 -> int4, &str -> text). The default, [`Type::UNSPECIFIED`],
    /// lets the server infer the type from the SQL.
    fn sql_type() -> Type
    where
        Self: Sized,
    {
        Type::UNSPECIFIED
    }

    /// Whether values of this Rust type can be encoded for a parameter of type `ty`.
    fn accepts(ty: &Type) -> bool
    where
        Self: Sized;

    /// Why `ty` is not accepted, when the Rust type can say more than [`WrongType`]
    /// (a derived enum names the label, a derived composite the field); used for errors.
    #[doc(hidden)]
    fn mismatch(_ty: &Type) -> Option<String>
    where
        Self: Sized,
    {
        None
    }

    /// Appends the binary encoding of the value (without the 4-byte length prefix) to
    /// `out`, or returns IsNull::Yes and writes nothing.
    ///
    /// # Errors
    /// When the value cannot be represented in `ty` (out of range, too long, ...).
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError>
    where
        Self: Sized;

    /// Object-safe `to_sql` that first checks `accepts` (domains are encoded as their
    /// base type); implemented by [`crate::to_sql_checked!`].
    ///
    /// # Errors
    /// [`WrongType`] when the type is not accepted, else as `to_sql`.
    fn to_sql_checked(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError>;

    /// Object-safe form of `sql_type` (implemented by [`crate::to_sql_checked!`]).
    fn dyn_sql_type(&self) -> Type {
        Type::UNSPECIFIED
    }

    /// Object-safe form of `accepts` (implemented by [`crate::to_sql_checked!`]).
    fn dyn_accepts(&self, _ty: &Type) -> bool {
        true
    }

    /// The Rust type's name for error messages (std::any::type_name).
    fn rust_type_name(&self) -> &'static str {
        std::any::type_name::<Self>()
    }
}

/// Implements the object-safe methods of ToSql inside an `impl ToSql for X` block.
#[macro_export]
macro_rules! to_sql_checked {
    () => {
        fn to_sql_checked(
            &self,
            ty: &$crate::types::Type,
            out: &mut $crate::types::BytesMut,
        ) -> ::std::result::Result<$crate::types::IsNull, $crate::types::BoxError> {
            $crate::types::__to_sql_checked(self, ty, out)
        }

        fn dyn_sql_type(&self) -> $crate::types::Type {
            <Self as $crate::types::ToSql>::sql_type()
        }

        fn dyn_accepts(&self, ty: &$crate::types::Type) -> bool {
            <Self as $crate::types::ToSql>::accepts(ty.base())
        }
    };
}

/// The body of a macro-generated `to_sql_checked`: unwrap domains, check, encode.
#[doc(hidden)]
pub fn __to_sql_checked<T: ToSql>(
    value: &T,
    ty: &Type,
    out: &mut BytesMut,
) -> Result<IsNull, BoxError> {
    let ty = ty.base();
    ensure_accepts::<T>(ty)?;
    value.to_sql(ty, out)
}

/// A Rust value that can be decoded from a binary-format column value.
pub trait FromSql<'a>: Sized {
    /// Decodes a non-NULL value of type `ty` from its binary encoding.
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError>;

    /// Decodes SQL NULL; the default is an error of type WasNull.
    fn from_sql_null(_ty: &Type) -> Result<Self, BoxError> {
        Err(Box::new(WasNull))
    }

    /// Decodes an optional value; calls from_sql or from_sql_null.
    fn from_sql_nullable(ty: &Type, raw: Option<&'a [u8]>) -> Result<Self, BoxError> {
        match raw {
            Some(raw) => Self::from_sql(ty, raw),
            None => Self::from_sql_null(ty),
        }
    }

    /// Whether this Rust type can be decoded from a column of type `ty`.
    fn accepts(ty: &Type) -> bool;

    /// Why `ty` is not accepted, when the Rust type can say more than [`WrongType`]
    /// (a derived enum names the label, a derived composite the field); used for errors.
    #[doc(hidden)]
    fn mismatch(_ty: &Type) -> Option<String> {
        None
    }
}

/// A FromSql that borrows nothing from the row.
pub trait FromSqlOwned: for<'a> FromSql<'a> {}

impl<T> FromSqlOwned for T where T: for<'a> FromSql<'a> {}

/// The error of decoding SQL NULL into a non-Option type.
#[derive(Debug, Clone, Copy)]
pub struct WasNull;

impl fmt::Display for WasNull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unexpected NULL value")
    }
}

impl Error for WasNull {}

/// A binary value whose length or content does not fit the type (e.g. 3 bytes for an int4).
#[derive(Debug)]
pub struct InvalidValue {
    /// The PostgreSQL type being decoded or encoded.
    pub ty: Type,
    /// What is wrong with the value.
    pub reason: String,
}

impl fmt::Display for InvalidValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid binary value for {}: {}", self.ty, self.reason)
    }
}

impl Error for InvalidValue {}

/// A conversion between a Rust type and a PostgreSQL type it does not accept.
#[derive(Debug, Clone)]
pub struct WrongType {
    /// The PostgreSQL type of the column or parameter.
    pub ty: Type,
    /// The Rust type's name (std::any::type_name).
    pub rust_type: &'static str,
}

impl fmt::Display for WrongType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot convert between Rust type `{}` and PostgreSQL type {}",
            self.rust_type, self.ty
        )
    }
}

impl Error for WrongType {}

/// Boxes an [`InvalidValue`] error.
fn invalid(ty: &Type, reason: String) -> BoxError {
    Box::new(InvalidValue {
        ty: ty.clone(),
        reason,
    })
}

/// Boxes a [`WrongType`] error for the Rust type `T`.
fn wrong_type<T>(ty: &Type) -> BoxError {
    Box::new(WrongType {
        ty: ty.clone(),
        rust_type: std::any::type_name::<T>(),
    })
}

/// Fails with [`WrongType`] (or [`Mismatch`] when `T` says why) unless `T` accepts `ty`
/// as a parameter type.
fn ensure_accepts<T: ToSql>(ty: &Type) -> Result<(), BoxError> {
    if T::accepts(ty) {
        Ok(())
    } else {
        Err(type_error::<T>(ty, T::mismatch(ty)))
    }
}

/// A [`Mismatch`] for `T` and `ty` when there is a `reason`, else a [`WrongType`].
#[doc(hidden)]
pub fn type_error<T>(ty: &Type, reason: Option<String>) -> BoxError {
    match reason {
        Some(reason) => Box::new(Mismatch {
            ty: ty.clone(),
            rust_type: std::any::type_name::<T>(),
            reason,
        }),
        None => wrong_type::<T>(ty),
    }
}

/// The binary form `v` takes as `ty`, for byte-exact unit tests of the encoders.
#[cfg(test)]
pub(crate) fn test_enc<T: ToSql>(v: &T, ty: &Type) -> Vec<u8> {
    let mut out = BytesMut::new();
    v.to_sql_checked(ty, &mut out).unwrap();
    out.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages() {
        assert_eq!(WasNull.to_string(), "unexpected NULL value");
        let e = invalid(&Type::INT4, "expected 4 bytes, got 3".into());
        let msg = "invalid binary value for int4: expected 4 bytes, got 3";
        assert_eq!(e.to_string(), msg);
        let e = wrong_type::<i32>(&Type::INT8);
        let msg = "cannot convert between Rust type `i32` and PostgreSQL type int8";
        assert_eq!(e.to_string(), msg);
    }

    /// A user-defined type, to check the trait defaults and the macro.
    #[derive(Debug, PartialEq)]
    struct Custom(u8);
    const CUSTOM: Type = Type::UNSPECIFIED;

    impl ToSql for Custom {
        fn accepts(ty: &Type) -> bool {
            ty == CUSTOM
        }
        fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
            out.extend_from_slice(&[self.0]);
            Ok(IsNull::No)
        }
        crate::to_sql_checked!();
    }

    impl FromSql<'_> for Custom {
        fn from_sql(_: &Type, raw: &[u8]) -> Result<Self, BoxError> {
            Ok(Custom(raw.len() as u8))
        }
        fn accepts(_: &Type) -> bool {
            true
        }
    }

    #[test]
    fn to_sql_checked_and_object_safety() {
        let value = Custom(7);
        let dynamic: &dyn ToSql = &value;
        assert_eq!(dynamic.dyn_sql_type(), CUSTOM);
        assert!(dynamic.dyn_accepts(&CUSTOM));
        assert!(!dynamic.dyn_accepts(&Type::INT4));
        assert!(dynamic.rust_type_name().ends_with("Custom"));
        let mut out = BytesMut::new();
        assert_eq!(
            dynamic.to_sql_checked(&CUSTOM, &mut out).unwrap(),
            IsNull::No
        );
        assert_eq!(&out[..], &[7]);
        assert!(dynamic.to_sql_checked(&Type::INT4, &mut out).is_err());
        assert!(ensure_accepts::<Custom>(&CUSTOM).is_ok());
        let err = ensure_accepts::<Custom>(&Type::INT4).unwrap_err();
        assert!(err.downcast_ref::<WrongType>().is_some());
    }

    #[test]
    fn from_sql_nullable_defaults() {
        assert_eq!(
            Custom::from_sql_nullable(&Type::TEXT, Some(b"ab")).unwrap(),
            Custom(2)
        );
        let err = Custom::from_sql_nullable(&Type::TEXT, None).unwrap_err();
        assert!(err.downcast_ref::<WasNull>().is_some());
        fn owned<T: FromSqlOwned>() {}
        owned::<Custom>();
    }

    /// An impl written against tokio-postgres's `ToSql`, unchanged but for the macro path.
    #[derive(Debug)]
    struct Ported(i32);

    impl ToSql for Ported {
        fn to_sql(
            &self,
            ty: &Type,
            out: &mut BytesMut,
        ) -> Result<IsNull, Box<dyn Error + Sync + Send>>
        where
            Self: Sized,
        {
            self.0.to_sql(ty, out)
        }

        fn accepts(ty: &Type) -> bool
        where
            Self: Sized,
        {
            <i32 as ToSql>::accepts(ty)
        }

        crate::to_sql_checked!();
    }

    #[test]
    fn a_ported_impl_lets_the_server_infer_its_type() {
        let v = Ported(3);
        let params: Vec<&(dyn ToSql + Sync)> = vec![&v, &1i64];
        let params: &[&(dyn ToSql + Sync)] = &params;
        assert_eq!(params[0].dyn_sql_type(), Type::UNSPECIFIED);
        assert_eq!(params[1].dyn_sql_type(), Type::INT8);
        let mut out = BytesMut::new();
        params[0].to_sql_checked(&Type::INT4, &mut out).unwrap();
        assert_eq!(&out[..], &[0, 0, 0, 3]);
        let domain = Type::new("d".into(), 50000, Kind::Domain(Type::INT4), "public".into());
        assert!(params[0].dyn_accepts(&domain));
        params[0].to_sql_checked(&domain, &mut out).unwrap();
        assert!(params[0].to_sql_checked(&Type::INT8, &mut out).is_err());
    }
}
