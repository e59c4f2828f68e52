//! [`Infer`]: a parameter whose PostgreSQL type the server infers from the SQL.

use bytes::BytesMut;

use super::{BoxError, IsNull, ToSql, Type};

/// Sends the wrapped value as a parameter of the type the server infers from the SQL
/// (Parse names OID 0), rather than the type its Rust type names.
///
/// The statement is described first (one extra round trip the first time a connection
/// meets it; a cached statement needs none), and the value is then encoded for the
/// inferred type: `SELECT $1 + 1` with `Infer(&2i32)` binds `int4`; with `Infer(&2i64)`
/// it is an [`crate::ErrorKind::Encode`] error naming `$1`, `i64` and `int4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Infer<T>(pub T);

impl<T: ToSql> ToSql for Infer<T> {
    fn sql_type() -> Type {
        Type::UNSPECIFIED
    }

    fn accepts(ty: &Type) -> bool {
        T::accepts(ty)
    }

    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        self.0.to_sql(ty, out)
    }

    crate::to_sql_checked!();

    fn rust_type_name(&self) -> &'static str {
        self.0.rust_type_name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infer_names_no_type_and_encodes_as_the_inner_value() {
        let v = Infer(7i32);
        let p: &dyn ToSql = &v;
        assert_eq!(p.dyn_sql_type(), Type::UNSPECIFIED);
        assert!(p.dyn_accepts(&Type::INT4) && !p.dyn_accepts(&Type::INT8));
        assert_eq!(p.rust_type_name(), "i32");
        assert_eq!(super::super::test_enc(&v, &Type::INT4), [0, 0, 0, 7]);
    }
}
