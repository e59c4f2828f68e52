//! [`Type`]: a PostgreSQL type with its OID, name, schema and [`Kind`].

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::Oid;
use super::builtin::{BUILTINS, array_index_of, builtin_index, range_index_of};

/// A PostgreSQL type: OID, name, schema and [`Kind`].
///
/// Built-in types are constants (`Type::INT8`, `Type::TEXT_ARRAY`, ...) that cost nothing
/// to clone; types of the database (enums, composites, domains, extension types) are
/// shared behind an `Arc`. Two `Type`s are equal when their OIDs are: within one
/// database an OID names one type, whether or not its name has been looked up yet.
#[derive(Clone)]
pub struct Type(Inner);

#[derive(Clone)]
enum Inner {
    /// An index into the generated table of built-in types.
    Builtin(u16),
    /// An OID whose type has not been looked up (0: let the server infer it).
    Unresolved(Oid),
    /// A type looked up in the database's catalogue.
    Other(Arc<Other>),
}

#[derive(Debug)]
struct Other {
    oid: Oid,
    name: String,
    schema: String,
    kind: Kind,
    text_like: bool,
}

/// What sort of type a [`Type`] is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// A base type such as `int4` or `citext`.
    Simple,
    /// An enum, with its labels in sort order.
    Enum(Vec<String>),
    /// A pseudo-type such as `anyelement` or `record`.
    Pseudo,
    /// An array of the element type.
    Array(Type),
    /// A range of the subtype.
    Range(Type),
    /// A multirange of the range type.
    Multirange(Type),
    /// A domain over the base type.
    Domain(Type),
    /// A composite type with its fields in order.
    Composite(Vec<Field>),
}

/// One field of a composite type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Field {
    name: String,
    type_: Type,
}

impl Field {
    /// A field named `name` of type `type_`.
    pub fn new(name: String, type_: Type) -> Field {
        Field { name, type_ }
    }

    /// The field's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The field's type.
    pub fn type_(&self) -> &Type {
        &self.type_
    }
}

/// Names of extension types whose values are text: `&str` and `String` bind to them.
const TEXT_LIKE_EXTENSIONS: [&str; 4] = ["citext", "ltree", "lquery", "ltxtquery"];

impl Type {
    /// The "no type" placeholder (OID 0): a parameter of this type lets the server infer it.
    pub const UNSPECIFIED: Type = Type(Inner::Unresolved(0));

    pub(super) const fn builtin(index: u16) -> Type {
        Type(Inner::Builtin(index))
    }

    /// A type of the database (from its catalogue): `name` in `schema`, of `kind`.
    pub fn new(name: String, oid: Oid, kind: Kind, schema: String) -> Type {
        let text_like = TEXT_LIKE_EXTENSIONS.contains(&name.as_str());
        Type(Inner::Other(Arc::new(Other {
            oid,
            name,
            schema,
            kind,
            text_like,
        })))
    }

    /// The built-in type with this OID, if there is one; no round trip.
    pub fn from_oid(oid: Oid) -> Option<Type> {
        builtin_index(oid).map(Type::builtin)
    }

    /// The built-in type with this OID, else a placeholder that carries only the OID
    /// until the connection's catalogue lookup resolves it.
    pub fn for_oid(oid: Oid) -> Type {
        Type::from_oid(oid).unwrap_or(Type(Inner::Unresolved(oid)))
    }

    /// The type's OID.
    pub fn oid(&self) -> Oid {
        match &self.0 {
            Inner::Builtin(i) => BUILTINS[usize::from(*i)].oid,
            Inner::Unresolved(oid) => *oid,
            Inner::Other(o) => o.oid,
        }
    }

    /// The type's `pg_type.typname` (`"int4"`, `"_text"`, `"citext"`); empty while unresolved.
    pub fn name(&self) -> &str {
        match &self.0 {
            Inner::Builtin(i) => BUILTINS[usize::from(*i)].name,
            Inner::Unresolved(_) => "",
            Inner::Other(o) => &o.name,
        }
    }

    /// The schema the type lives in (`"pg_catalog"` for built-ins); empty while unresolved.
    pub fn schema(&self) -> &str {
        match &self.0 {
            Inner::Builtin(_) => "pg_catalog",
            Inner::Unresolved(_) => "",
            Inner::Other(o) => &o.schema,
        }
    }

    /// The type's kind ([`Kind::Simple`] while unresolved).
    pub fn kind(&self) -> &Kind {
        match &self.0 {
            Inner::Builtin(i) => &BUILTINS[usize::from(*i)].kind,
            Inner::Unresolved(_) => &Kind::Simple,
            Inner::Other(o) => &o.kind,
        }
    }

    /// Whether the type's name and kind are known (built-in or looked up).
    pub fn is_resolved(&self) -> bool {
        !matches!(self.0, Inner::Unresolved(_))
    }

    /// Whether this is a built-in type of `pg_catalog` known without a lookup.
    pub fn is_builtin(&self) -> bool {
        matches!(self.0, Inner::Builtin(_))
    }

    /// The type under any domains: `self` unless it is a domain.
    #[inline]
    pub fn base(&self) -> &Type {
        match &self.0 {
            // No built-in type is a domain: every column read asks, so answer at once.
            Inner::Builtin(_) | Inner::Unresolved(_) => self,
            Inner::Other(o) => match &o.kind {
                Kind::Domain(base) => base.base(),
                _ => self,
            },
        }
    }

    /// The built-in array type whose elements are this type (`int4` -> `_int4`).
    pub fn array_type(&self) -> Option<Type> {
        array_index_of(self.oid()).map(Type::builtin)
    }

    /// The built-in range type over this type (`int4` -> `int4range`).
    pub fn range_type(&self) -> Option<Type> {
        range_index_of(self.oid()).map(Type::builtin)
    }

    /// The built-in multirange type over this range type (`int4range` -> `int4multirange`).
    pub fn multirange_type(&self) -> Option<Type> {
        let oid = self.oid();
        let index = BUILTINS.iter().position(|b| match &b.kind {
            Kind::Multirange(r) => r.oid() == oid,
            _ => false,
        })?;
        Some(Type::builtin(index as u16))
    }

    /// Whether values of the type are text that `&str` and `String` bind to and read:
    /// the string category (text, varchar, bpchar, name), unknown, citext, ltree, and enums.
    pub fn is_text_like(&self) -> bool {
        match &self.0 {
            Inner::Builtin(i) => {
                let b = &BUILTINS[usize::from(*i)];
                b.category == b'S' && b.oid != Type::CHAR.oid() || b.oid == Type::UNKNOWN.oid()
            }
            Inner::Unresolved(_) => false,
            Inner::Other(o) => o.text_like || matches!(o.kind, Kind::Enum(_)),
        }
    }
}

impl PartialEq for Type {
    #[inline]
    fn eq(&self, other: &Type) -> bool {
        match (&self.0, &other.0) {
            // The table of built-ins has one row per OID: equal rows, equal OIDs.
            (Inner::Builtin(a), Inner::Builtin(b)) => a == b,
            _ => self.oid() == other.oid(),
        }
    }
}

impl Eq for Type {}

impl PartialEq<Type> for &Type {
    fn eq(&self, other: &Type) -> bool {
        self.oid() == other.oid()
    }
}

impl PartialEq<&Type> for Type {
    fn eq(&self, other: &&Type) -> bool {
        self.oid() == other.oid()
    }
}

impl Hash for Type {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.oid().hash(state);
    }
}

impl fmt::Display for Type {
    /// The name as SQL would write it: `int4`, `_text`, `myschema.mood`, or `oid 12345`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Inner::Unresolved(oid) => write!(f, "oid {oid}"),
            Inner::Other(o) if !matches!(o.schema.as_str(), "public" | "pg_catalog" | "") => {
                write!(f, "{}.{}", o.schema, o.name)
            }
            _ => f.write_str(self.name()),
        }
    }
}

impl fmt::Debug for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Type({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_need_no_round_trip() {
        let cases = [
            (Type::BOOL, 16, "bool"),
            (Type::INT4, 23, "int4"),
            (Type::TEXT, 25, "text"),
            (Type::UNKNOWN, 705, "unknown"),
            (Type::INT4_ARRAY, 1007, "_int4"),
            (Type::NUMERIC, 1700, "numeric"),
            (Type::JSONB, 3802, "jsonb"),
            (Type::INT4MULTI_RANGE, 4451, "int4multirange"),
        ];
        for (ty, oid, name) in cases {
            assert_eq!(ty.oid(), oid);
            assert_eq!(Type::from_oid(oid), Some(ty.clone()));
            assert_eq!(ty.name(), name);
            assert_eq!(ty.to_string(), name);
            assert_eq!(ty.schema(), "pg_catalog");
        }
        assert_eq!(Type::INT4_ARRAY.kind(), &Kind::Array(Type::INT4));
        assert_eq!(Type::TSTZ_RANGE.kind(), &Kind::Range(Type::TIMESTAMPTZ));
        assert_eq!(
            Type::DATEMULTI_RANGE.kind(),
            &Kind::Multirange(Type::DATE_RANGE)
        );
        assert_eq!(Type::ANYELEMENT.kind(), &Kind::Pseudo);
        assert_eq!(Type::UUID.kind(), &Kind::Simple);
        assert_eq!(Type::from_oid(0), None);
        assert_eq!(Type::INT4.array_type(), Some(Type::INT4_ARRAY));
        assert_eq!(Type::TEXT.array_type(), Some(Type::TEXT_ARRAY));
        assert_eq!(Type::INT4_ARRAY.array_type(), None);
        assert_eq!(Type::NUMERIC.range_type(), Some(Type::NUM_RANGE));
        assert_eq!(Type::TEXT.range_type(), None);
        assert_eq!(Type::from_oid(12345), None);
    }

    #[test]
    fn placeholders_and_catalogue_types() {
        let unknown = Type::for_oid(12345);
        assert!(!unknown.is_resolved());
        assert_eq!((unknown.oid(), unknown.name()), (12345, ""));
        assert_eq!(unknown.to_string(), "oid 12345");
        assert_eq!(format!("{unknown:?}"), "Type(oid 12345)");
        let mood = Type::new(
            "mood".into(),
            12345,
            Kind::Enum(vec!["sad".into(), "ok".into()]),
            "public".into(),
        );
        assert_eq!(mood, unknown, "equality is by OID");
        assert_eq!(mood.to_string(), "mood");
        assert!(mood.is_text_like() && mood.is_resolved());
        let other = Type::new("t".into(), 7, Kind::Simple, "app".into());
        assert_eq!(other.to_string(), "app.t");
        let citext = Type::new("citext".into(), 9, Kind::Simple, "public".into());
        assert!(citext.is_text_like());
        let dom = Type::new("d".into(), 8, Kind::Domain(citext.clone()), "public".into());
        assert_eq!(dom.base(), &citext);
        assert_eq!(Type::UNSPECIFIED.oid(), 0);
    }

    #[test]
    fn text_like_builtins() {
        for ty in [
            Type::TEXT,
            Type::VARCHAR,
            Type::BPCHAR,
            Type::NAME,
            Type::UNKNOWN,
        ] {
            assert!(ty.is_text_like(), "{ty}");
        }
        for ty in [Type::CHAR, Type::JSON, Type::BYTEA, Type::TEXT_ARRAY] {
            assert!(!ty.is_text_like(), "{ty}");
        }
    }

    #[test]
    fn no_builtin_is_a_domain_and_equality_is_by_oid() {
        for (i, b) in BUILTINS.iter().enumerate() {
            assert!(!matches!(b.kind, Kind::Domain(_)), "{}", b.name);
            let ty = Type::builtin(i as u16);
            assert_eq!(ty.base(), &ty);
            assert_eq!(ty, Type::for_oid(b.oid));
            assert_eq!(
                ty,
                Type::new(b.name.into(), b.oid, Kind::Simple, "x".into())
            );
        }
        assert_ne!(Type::INT4, Type::INT8);
    }

    #[test]
    fn reference_comparisons() {
        let ty = Type::INT4;
        let by_ref: &Type = &ty;
        assert!(by_ref == Type::INT4);
        assert!(Type::INT4 == by_ref);
    }
}
