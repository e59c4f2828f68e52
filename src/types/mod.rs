//! Binary-format conversions between Rust values and PostgreSQL types.
#![forbid(unsafe_code)]

use std::error::Error;
use std::fmt;

use bytes::BytesMut;

mod option;
mod primitives;
mod text;

/// A PostgreSQL type OID.
pub type Oid = u32;

/// Boxed error returned by conversions; the connection wraps it with column/param context.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// A PostgreSQL type, identified by its OID.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Type(Oid);

/// Declares the built-in type constants (and their array types) and the OID -> name table.
macro_rules! builtin_types {
    ($($konst:ident = $oid:literal, $name:literal $(, $arr:ident = $arr_oid:literal)?;)*) => {
        impl Type {
            $(
                #[doc = concat!("The built-in `", $name, "` type (OID ", stringify!($oid), ").")]
                pub const $konst: Type = Type($oid);
                $(
                    #[doc = concat!("The built-in `", $name, "[]` type (OID ", stringify!($arr_oid), ").")]
                    pub const $arr: Type = Type($arr_oid);
                )?
            )*
        }

        /// The `pg_type.typname` of a built-in type this crate knows.
        const fn builtin_name(oid: Oid) -> Option<&'static str> {
            match oid {
                $(
                    $oid => Some($name),
                    $($arr_oid => Some(concat!("_", $name)),)?
                )*
                _ => None,
            }
        }
    };
}

builtin_types! {
    BOOL = 16, "bool", BOOL_ARRAY = 1000;
    BYTEA = 17, "bytea", BYTEA_ARRAY = 1001;
    CHAR = 18, "char", CHAR_ARRAY = 1002;
    NAME = 19, "name", NAME_ARRAY = 1003;
    INT8 = 20, "int8", INT8_ARRAY = 1016;
    INT2 = 21, "int2", INT2_ARRAY = 1005;
    INT2_VECTOR = 22, "int2vector", INT2_VECTOR_ARRAY = 1006;
    INT4 = 23, "int4", INT4_ARRAY = 1007;
    REGPROC = 24, "regproc", REGPROC_ARRAY = 1008;
    TEXT = 25, "text", TEXT_ARRAY = 1009;
    OID = 26, "oid", OID_ARRAY = 1028;
    TID = 27, "tid", TID_ARRAY = 1010;
    XID = 28, "xid", XID_ARRAY = 1011;
    CID = 29, "cid", CID_ARRAY = 1012;
    OID_VECTOR = 30, "oidvector", OID_VECTOR_ARRAY = 1013;
    JSON = 114, "json", JSON_ARRAY = 199;
    XML = 142, "xml", XML_ARRAY = 143;
    POINT = 600, "point", POINT_ARRAY = 1017;
    LSEG = 601, "lseg", LSEG_ARRAY = 1018;
    PATH = 602, "path", PATH_ARRAY = 1019;
    BOX = 603, "box", BOX_ARRAY = 1020;
    POLYGON = 604, "polygon", POLYGON_ARRAY = 1027;
    LINE = 628, "line", LINE_ARRAY = 629;
    CIDR = 650, "cidr", CIDR_ARRAY = 651;
    FLOAT4 = 700, "float4", FLOAT4_ARRAY = 1021;
    FLOAT8 = 701, "float8", FLOAT8_ARRAY = 1022;
    UNKNOWN = 705, "unknown";
    CIRCLE = 718, "circle", CIRCLE_ARRAY = 719;
    MACADDR8 = 774, "macaddr8", MACADDR8_ARRAY = 775;
    MONEY = 790, "money", MONEY_ARRAY = 791;
    MACADDR = 829, "macaddr", MACADDR_ARRAY = 1040;
    INET = 869, "inet", INET_ARRAY = 1041;
    ACLITEM = 1033, "aclitem", ACLITEM_ARRAY = 1034;
    BPCHAR = 1042, "bpchar", BPCHAR_ARRAY = 1014;
    VARCHAR = 1043, "varchar", VARCHAR_ARRAY = 1015;
    DATE = 1082, "date", DATE_ARRAY = 1182;
    TIME = 1083, "time", TIME_ARRAY = 1183;
    TIMESTAMP = 1114, "timestamp", TIMESTAMP_ARRAY = 1115;
    TIMESTAMPTZ = 1184, "timestamptz", TIMESTAMPTZ_ARRAY = 1185;
    INTERVAL = 1186, "interval", INTERVAL_ARRAY = 1187;
    TIMETZ = 1266, "timetz", TIMETZ_ARRAY = 1270;
    BIT = 1560, "bit", BIT_ARRAY = 1561;
    VARBIT = 1562, "varbit", VARBIT_ARRAY = 1563;
    NUMERIC = 1700, "numeric", NUMERIC_ARRAY = 1231;
    REFCURSOR = 1790, "refcursor", REFCURSOR_ARRAY = 2201;
    REGCLASS = 2205, "regclass", REGCLASS_ARRAY = 2210;
    REGTYPE = 2206, "regtype", REGTYPE_ARRAY = 2211;
    RECORD = 2249, "record", RECORD_ARRAY = 2287;
    CSTRING = 2275, "cstring", CSTRING_ARRAY = 1263;
    ANY = 2276, "any";
    ANYARRAY = 2277, "anyarray";
    VOID = 2278, "void";
    ANYELEMENT = 2283, "anyelement";
    UUID = 2950, "uuid", UUID_ARRAY = 2951;
    TXID_SNAPSHOT = 2970, "txid_snapshot", TXID_SNAPSHOT_ARRAY = 2949;
    PG_LSN = 3220, "pg_lsn", PG_LSN_ARRAY = 3221;
    ANYENUM = 3500, "anyenum";
    TS_VECTOR = 3614, "tsvector", TS_VECTOR_ARRAY = 3643;
    TSQUERY = 3615, "tsquery", TSQUERY_ARRAY = 3645;
    JSONB = 3802, "jsonb", JSONB_ARRAY = 3807;
    ANYRANGE = 3831, "anyrange";
    INT4_RANGE = 3904, "int4range", INT4_RANGE_ARRAY = 3905;
    NUM_RANGE = 3906, "numrange", NUM_RANGE_ARRAY = 3907;
    TS_RANGE = 3908, "tsrange", TS_RANGE_ARRAY = 3909;
    TSTZ_RANGE = 3910, "tstzrange", TSTZ_RANGE_ARRAY = 3911;
    DATE_RANGE = 3912, "daterange", DATE_RANGE_ARRAY = 3913;
    INT8_RANGE = 3926, "int8range", INT8_RANGE_ARRAY = 3927;
    JSONPATH = 4072, "jsonpath", JSONPATH_ARRAY = 4073;
    XID8 = 5069, "xid8", XID8_ARRAY = 271;
}

impl Type {
    /// Wraps a raw OID, known to this crate or not.
    pub const fn from_oid(oid: Oid) -> Type {
        Type(oid)
    }

    /// The raw OID of this type.
    pub const fn oid(self) -> Oid {
        self.0
    }

    /// The SQL name for built-in types this crate knows ("int4", "text", ...), None otherwise.
    pub fn name(self) -> Option<&'static str> {
        builtin_name(self.0)
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "oid {}", self.0),
        }
    }
}

impl fmt::Debug for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Type({self})")
    }
}

/// Whether an encoded value is SQL NULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsNull {
    /// The value is NULL; nothing was written.
    Yes,
    /// The value is not NULL; its encoding was written.
    No,
}

/// A Rust value that can be sent as a parameter in binary format.
pub trait ToSql: fmt::Debug + Sync {
    /// The PostgreSQL type this Rust type is sent as when the client names the parameter types (e.g. i32 -> INT4, &str -> TEXT).
    fn sql_type() -> Type
    where
        Self: Sized;

    /// Whether values of this Rust type can be encoded for a parameter of type `ty`.
    fn accepts(ty: Type) -> bool
    where
        Self: Sized;

    /// Appends the binary encoding of the value (without the 4-byte length prefix) to `out`, or returns IsNull::Yes and writes nothing.
    fn to_sql(&self, ty: Type, out: &mut BytesMut) -> Result<IsNull, BoxError>;

    /// Object-safe form of `sql_type` (implemented by the `to_sql_checked!()` macro).
    fn dyn_sql_type(&self) -> Type;

    /// Object-safe form of `accepts`.
    fn dyn_accepts(&self, ty: Type) -> bool;

    /// The Rust type's name for error messages (std::any::type_name).
    fn rust_type_name(&self) -> &'static str;
}

/// Implements the object-safe methods of ToSql inside an `impl ToSql for X` block.
#[macro_export]
macro_rules! to_sql_checked {
    () => {
        fn dyn_sql_type(&self) -> $crate::types::Type {
            <Self as $crate::types::ToSql>::sql_type()
        }

        fn dyn_accepts(&self, ty: $crate::types::Type) -> bool {
            <Self as $crate::types::ToSql>::accepts(ty)
        }

        fn rust_type_name(&self) -> &'static str {
            ::std::any::type_name::<Self>()
        }
    };
}

/// A Rust value that can be decoded from a binary-format column value.
pub trait FromSql<'a>: Sized {
    /// Decodes a non-NULL value of type `ty` from its binary encoding.
    fn from_sql(ty: Type, raw: &'a [u8]) -> Result<Self, BoxError>;

    /// Decodes SQL NULL; the default is an error of type WasNull.
    fn from_sql_null(_ty: Type) -> Result<Self, BoxError> {
        Err(Box::new(WasNull))
    }

    /// Decodes an optional value; calls from_sql or from_sql_null.
    fn from_sql_nullable(ty: Type, raw: Option<&'a [u8]>) -> Result<Self, BoxError> {
        match raw {
            Some(raw) => Self::from_sql(ty, raw),
            None => Self::from_sql_null(ty),
        }
    }

    /// Whether this Rust type can be decoded from a column of type `ty`.
    fn accepts(ty: Type) -> bool;
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
#[derive(Debug, Clone, Copy)]
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
fn invalid(ty: Type, reason: String) -> BoxError {
    Box::new(InvalidValue { ty, reason })
}

/// Boxes a [`WrongType`] error for the Rust type `T`.
fn wrong_type<T>(ty: Type) -> BoxError {
    Box::new(WrongType {
        ty,
        rust_type: std::any::type_name::<T>(),
    })
}

/// Fails with [`WrongType`] unless `T` accepts `ty` as a parameter type.
fn ensure_accepts<T: ToSql>(ty: Type) -> Result<(), BoxError> {
    if T::accepts(ty) {
        Ok(())
    } else {
        Err(wrong_type::<T>(ty))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_names_display_debug() {
        let cases = [
            (Type::BOOL, 16, "bool"),
            (Type::INT4, 23, "int4"),
            (Type::TEXT, 25, "text"),
            (Type::UNKNOWN, 705, "unknown"),
            (Type::INT4_ARRAY, 1007, "_int4"),
            (Type::VARCHAR, 1043, "varchar"),
            (Type::NUMERIC, 1700, "numeric"),
            (Type::UUID, 2950, "uuid"),
            (Type::JSONB, 3802, "jsonb"),
        ];
        for (ty, oid, name) in cases {
            assert_eq!(ty.oid(), oid);
            assert_eq!(Type::from_oid(oid), ty);
            assert_eq!(ty.name(), Some(name));
            assert_eq!(ty.to_string(), name);
        }
        assert_eq!(Type::from_oid(0).name(), None);
        assert_eq!(format!("{}", Type::from_oid(12345)), "oid 12345");
        assert_eq!(format!("{:?}", Type::INT4), "Type(int4)");
        assert_eq!(format!("{:?}", Type::from_oid(12345)), "Type(oid 12345)");
    }

    #[test]
    fn error_messages() {
        assert_eq!(WasNull.to_string(), "unexpected NULL value");
        let e = invalid(Type::INT4, "expected 4 bytes, got 3".into());
        let msg = "invalid binary value for int4: expected 4 bytes, got 3";
        assert_eq!(e.to_string(), msg);
        let e = wrong_type::<i32>(Type::INT8);
        let msg = "cannot convert between Rust type `i32` and PostgreSQL type int8";
        assert_eq!(e.to_string(), msg);
    }

    /// A user-defined type, to check the trait defaults and the macro.
    #[derive(Debug, PartialEq)]
    struct Custom(u8);
    const CUSTOM: Type = Type::from_oid(99999);

    impl ToSql for Custom {
        fn sql_type() -> Type {
            CUSTOM
        }
        fn accepts(ty: Type) -> bool {
            ty == CUSTOM
        }
        fn to_sql(&self, _: Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
            out.extend_from_slice(&[self.0]);
            Ok(IsNull::No)
        }
        crate::to_sql_checked!();
    }

    impl FromSql<'_> for Custom {
        fn from_sql(_: Type, raw: &[u8]) -> Result<Self, BoxError> {
            Ok(Custom(raw.len() as u8))
        }
        fn accepts(_: Type) -> bool {
            true
        }
    }

    #[test]
    fn to_sql_checked_and_object_safety() {
        let value = Custom(7);
        let dynamic: &dyn ToSql = &value;
        assert_eq!(dynamic.dyn_sql_type(), CUSTOM);
        assert!(dynamic.dyn_accepts(CUSTOM));
        assert!(!dynamic.dyn_accepts(Type::INT4));
        assert!(dynamic.rust_type_name().ends_with("Custom"));
        let mut out = BytesMut::new();
        assert_eq!(dynamic.to_sql(CUSTOM, &mut out).unwrap(), IsNull::No);
        assert_eq!(&out[..], &[7]);
        assert!(ensure_accepts::<Custom>(CUSTOM).is_ok());
        let err = ensure_accepts::<Custom>(Type::INT4).unwrap_err();
        assert!(err.downcast_ref::<WrongType>().is_some());
    }

    #[test]
    fn from_sql_nullable_defaults() {
        assert_eq!(
            Custom::from_sql_nullable(Type::TEXT, Some(b"ab")).unwrap(),
            Custom(2)
        );
        let err = Custom::from_sql_nullable(Type::TEXT, None).unwrap_err();
        assert!(err.downcast_ref::<WasNull>().is_some());
        fn owned<T: FromSqlOwned>() {}
        owned::<Custom>();
    }
}
