//! The per-connection catalogue of types that are not built in: enums, composites,
//! domains, ranges and extension types (citext, hstore, ...), whose OIDs differ from one
//! database to the next.
//!
//! One query ([`LOOKUP_SQL`]) returns, for a set of OIDs, every `pg_type` row needed to
//! describe them completely (array elements, domain bases, range subtypes, composite
//! field types, recursively), with enum labels and composite fields; [`build_types`]
//! turns those rows into [`Type`]s without further I/O. [`TypeCatalog`] caches the result
//! for the life of the connection.

use std::collections::{HashMap, HashSet};
use std::sync::MutexGuard;

use super::{Field, Kind, Oid, Type};
use crate::Connection;
use crate::connection::bounded_call;
use crate::connection::wire::{Shared, Wire};
use crate::error::{Error, ErrorKind};
use crate::row::{SimpleQueryMessage, SimpleQueryRow};
use crate::statement::Column;

/// The closure of type rows needed to describe the OIDs in `$1` (an `oid[]` literal).
///
/// It runs as a simple query, so it needs no types of its own (and cannot recurse into
/// the lookup); names and labels come back hex-encoded, lists comma-separated. Works on
/// PostgreSQL 10 and later: the multirange column of `pg_range` (14+) is read through
/// `to_jsonb` so older servers simply have none.
pub const LOOKUP_SQL: &str = "\
WITH RECURSIVE wanted(oid) AS (
    SELECT unnest($1::oid[])
  UNION
    SELECT dep.oid
    FROM wanted w
    JOIN pg_catalog.pg_type t ON t.oid = w.oid
    CROSS JOIN LATERAL (
        SELECT t.typelem WHERE t.typelem <> 0 AND t.typlen = -1
        UNION ALL SELECT t.typbasetype WHERE t.typtype = 'd'
        UNION ALL SELECT r.rngsubtype FROM pg_catalog.pg_range r WHERE r.rngtypid = t.oid
        UNION ALL SELECT r.rngtypid FROM pg_catalog.pg_range r
            WHERE (to_jsonb(r) ->> 'rngmultitypid')::oid = t.oid
        UNION ALL SELECT a.atttypid FROM pg_catalog.pg_attribute a
            WHERE t.typtype = 'c' AND a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
    ) dep(oid)
)
SELECT t.oid, encode(convert_to(t.typname::text, 'UTF8'), 'hex'),
    encode(convert_to(n.nspname::text, 'UTF8'), 'hex'), t.typtype,
    CASE WHEN t.typelem <> 0 AND t.typlen = -1 THEN t.typelem ELSE 0::oid END,
    t.typbasetype,
    coalesce((SELECT r.rngsubtype FROM pg_catalog.pg_range r WHERE r.rngtypid = t.oid), 0::oid),
    coalesce((SELECT r.rngtypid FROM pg_catalog.pg_range r
        WHERE (to_jsonb(r) ->> 'rngmultitypid')::oid = t.oid), 0::oid),
    coalesce((SELECT string_agg(encode(convert_to(e.enumlabel::text, 'UTF8'), 'hex'), ','
        ORDER BY e.enumsortorder) FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid), ''),
    coalesce((SELECT string_agg(encode(convert_to(a.attname::text, 'UTF8'), 'hex'), ','
        ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
        WHERE t.typtype = 'c' AND a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped), ''),
    coalesce((SELECT string_agg(a.atttypid::text, ',' ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
        WHERE t.typtype = 'c' AND a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped), '')
FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
WHERE t.oid IN (SELECT oid FROM wanted)";

/// [`LOOKUP_SQL`] for these OIDs (numbers only, so the literal needs no escaping).
pub fn lookup_sql(oids: &[Oid]) -> String {
    let list: Vec<String> = oids.iter().map(Oid::to_string).collect();
    LOOKUP_SQL.replace("$1", &format!("'{{{}}}'", list.join(",")))
}

/// One row of [`LOOKUP_SQL`]: a `pg_type` entry and what its kind needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeRow {
    /// `pg_type.oid`.
    pub oid: Oid,
    /// `pg_type.typname`.
    pub name: String,
    /// The schema's name.
    pub schema: String,
    /// `pg_type.typtype`: b(ase), c(omposite), d(omain), e(num), p(seudo), r(ange), m(ultirange).
    pub typtype: u8,
    /// The element type of an array type, else 0.
    pub element: Oid,
    /// The base type of a domain, else 0.
    pub base: Oid,
    /// The subtype of a range type, else 0.
    pub range_subtype: Oid,
    /// The range type of a multirange type, else 0.
    pub multirange_of: Oid,
    /// An enum's labels in sort order.
    pub enum_labels: Vec<String>,
    /// A composite's field names in order.
    pub field_names: Vec<String>,
    /// A composite's field types in order.
    pub field_types: Vec<Oid>,
}

impl TypeRow {
    /// Reads one row of [`LOOKUP_SQL`] (as text, from a simple query).
    ///
    /// # Errors
    /// A decode error if the row does not have the lookup's shape.
    pub fn from_text(row: &SimpleQueryRow) -> Result<TypeRow, Error> {
        let col = |i: usize| row.try_get(i).map(Option::unwrap_or_default);
        let oid = |i: usize| -> Result<Oid, Error> { col(i)?.parse().map_err(|_| shape(i)) };
        let hex_list = |i: usize| -> Result<Vec<String>, Error> {
            split(col(i)?)
                .map(|h| unhex(h).ok_or_else(|| shape(i)))
                .collect()
        };
        let one = |i: usize| -> Result<String, Error> { unhex(col(i)?).ok_or_else(|| shape(i)) };
        Ok(TypeRow {
            oid: oid(0)?,
            name: one(1)?,
            schema: one(2)?,
            typtype: col(3)?.bytes().next().unwrap_or(b'b'),
            element: oid(4)?,
            base: oid(5)?,
            range_subtype: oid(6)?,
            multirange_of: oid(7)?,
            enum_labels: hex_list(8)?,
            field_names: hex_list(9)?,
            field_types: split(col(10)?)
                .map(|o| o.parse().map_err(|_| shape(10)))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// The comma-separated items of a lookup column (none for an empty string).
fn split(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').filter(|p| !p.is_empty())
}

/// Decodes the hex of a UTF-8 string.
fn unhex(hex: &str) -> Option<String> {
    let bytes: Option<Vec<u8>> = hex
        .as_bytes()
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// The error of a lookup row that does not have the expected shape.
fn shape(column: usize) -> Error {
    Error::new(
        ErrorKind::Decode,
        format!("unexpected value in column {column} of the type lookup"),
    )
}

/// Turns lookup rows into types, resolving each dependency from `known`, the built-ins
/// or the other rows (an OID found nowhere stays a placeholder). Returns every type built.
pub fn build_types(rows: &[TypeRow], known: &HashMap<Oid, Type>) -> HashMap<Oid, Type> {
    let by_oid: HashMap<Oid, &TypeRow> = rows.iter().map(|r| (r.oid, r)).collect();
    let mut b = Builder {
        by_oid,
        known,
        built: HashMap::new(),
        visiting: HashSet::new(),
    };
    for row in rows {
        b.resolve(row.oid);
    }
    b.built
}

struct Builder<'a> {
    by_oid: HashMap<Oid, &'a TypeRow>,
    known: &'a HashMap<Oid, Type>,
    built: HashMap<Oid, Type>,
    /// Guards against a (malformed) cycle: a type met again while building is a placeholder.
    visiting: HashSet<Oid>,
}

impl Builder<'_> {
    fn resolve(&mut self, oid: Oid) -> Type {
        if let Some(t) = Type::from_oid(oid)
            .or_else(|| self.known.get(&oid).cloned())
            .or_else(|| self.built.get(&oid).cloned())
        {
            return t;
        }
        let Some(row) = self.by_oid.get(&oid).copied() else {
            return Type::for_oid(oid);
        };
        if !self.visiting.insert(oid) {
            return Type::for_oid(oid);
        }
        let kind = self.kind(row);
        self.visiting.remove(&oid);
        let ty = Type::new(row.name.clone(), oid, kind, row.schema.clone());
        self.built.insert(oid, ty.clone());
        ty
    }

    fn kind(&mut self, row: &TypeRow) -> Kind {
        match row.typtype {
            b'e' => Kind::Enum(row.enum_labels.clone()),
            b'p' => Kind::Pseudo,
            b'd' => Kind::Domain(self.resolve(row.base)),
            b'r' => Kind::Range(self.resolve(row.range_subtype)),
            b'm' => Kind::Multirange(self.resolve(row.multirange_of)),
            b'c' => Kind::Composite(
                row.field_names
                    .iter()
                    .zip(&row.field_types)
                    .map(|(name, oid)| Field::new(name.clone(), self.resolve(*oid)))
                    .collect(),
            ),
            _ if row.element != 0 => Kind::Array(self.resolve(row.element)),
            _ => Kind::Simple,
        }
    }
}

/// A connection's cache of looked-up types, by OID.
#[derive(Debug, Default)]
pub struct TypeCatalog {
    types: HashMap<Oid, Type>,
}

impl TypeCatalog {
    /// The type for `oid`: built in, cached, or `None` if it must be looked up.
    pub fn get(&self, oid: Oid) -> Option<Type> {
        Type::from_oid(oid).or_else(|| self.types.get(&oid).cloned())
    }

    /// `ty` itself if it is resolved, else the cached type with its OID, if any.
    pub fn resolved(&self, ty: &Type) -> Option<Type> {
        match ty.is_resolved() {
            true => Some(ty.clone()),
            false => self.types.get(&ty.oid()).cloned(),
        }
    }

    /// Adds the types built from lookup rows.
    pub fn insert_rows(&mut self, rows: &[TypeRow]) {
        let built = build_types(rows, &self.types);
        self.types.extend(built);
    }
}

impl Connection {
    /// The type with this OID: a built-in, or looked up once in this connection's
    /// database (`pg_type`, `pg_enum`, `pg_attribute`, `pg_range`) and cached.
    ///
    /// # Errors
    /// As [`Connection::simple_query`].
    ///
    /// # Cancel safety
    /// As [`Connection::query`]: the lookup is one ordinary exchange.
    pub async fn resolve_type(&self, oid: Oid) -> Result<Type, Error> {
        let types = self.resolve_types(&[oid]).await?;
        Ok(types
            .into_iter()
            .next()
            .unwrap_or_else(|| Type::for_oid(oid)))
    }

    /// The types with these OIDs, looking up in one query those not yet known.
    ///
    /// # Errors
    /// As [`Connection::simple_query`].
    ///
    /// # Cancel safety
    /// As [`Connection::query`].
    pub async fn resolve_types(&self, oids: &[Oid]) -> Result<Vec<Type>, Error> {
        let shared = self.inner.shared.clone();
        if oids.iter().any(|o| catalog(&shared).get(*o).is_none()) {
            bounded_call!(shared.limits.query, {
                let mut wire = self.lock("resolve_types").await?;
                look_up(&mut wire, oids).await
            })?;
        }
        let catalog = catalog(&shared);
        Ok(oids
            .iter()
            .map(|o| catalog.get(*o).unwrap_or_else(|| Type::for_oid(*o)))
            .collect())
    }
}

/// The catalogue of a connection.
fn catalog(shared: &Shared) -> MutexGuard<'_, TypeCatalog> {
    // A panic while holding this lock leaves a cache that is still consistent.
    shared.types.lock().unwrap_or_else(|e| e.into_inner())
}

/// Looks up, on a wire the caller has locked, the OIDs the catalogue does not know yet.
///
/// The lookup is a simple query on the same wire, run after the caller's exchange has
/// reached ReadyForQuery; in an aborted transaction block it fails like any query.
pub(crate) async fn look_up(wire: &mut Wire, oids: &[Oid]) -> Result<(), Error> {
    let missing: Vec<Oid> = {
        let catalog = catalog(&wire.shared);
        let mut m: Vec<Oid> = oids
            .iter()
            .copied()
            .filter(|o| catalog.get(*o).is_none())
            .collect();
        m.sort_unstable();
        m.dedup();
        m
    };
    if missing.is_empty() {
        return Ok(());
    }
    let messages = wire.simple_query(&lookup_sql(&missing)).await?;
    let rows = messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(TypeRow::from_text(r)),
            _ => None,
        })
        .collect::<Result<Vec<_>, _>>()?;
    catalog(&wire.shared).insert_rows(&rows);
    Ok(())
}

/// The type of `oid` as far as this connection knows it without I/O: a built-in, a type
/// already looked up, or a placeholder.
pub(crate) fn known(shared: &Shared, oid: Oid) -> Type {
    if let Some(t) = Type::from_oid(oid) {
        return t;
    }
    catalog(shared)
        .get(oid)
        .unwrap_or_else(|| Type::for_oid(oid))
}

/// The OIDs among `types` that are not resolved.
pub(crate) fn unresolved<'a>(types: impl Iterator<Item = &'a Type>) -> Vec<Oid> {
    types.filter(|t| !t.is_resolved()).map(Type::oid).collect()
}

/// `columns` with the catalogue's types put in, or `None` when all were resolved already
/// (rows of built-in types cost no lock and no copy).
pub(crate) fn retyped(shared: &Shared, columns: &[Column]) -> Option<std::sync::Arc<[Column]>> {
    if columns.iter().all(|c| c.type_().is_resolved()) {
        return None;
    }
    let catalog = catalog(shared);
    let retype = |c: &Column| match catalog.resolved(c.type_()) {
        Some(t) => c.with_type(t),
        None => c.clone(),
    };
    Some(columns.iter().map(retype).collect())
}

/// `types` with the catalogue's types put in.
pub(crate) fn retyped_params(shared: &Shared, types: Vec<Type>) -> Vec<Type> {
    if types.iter().all(Type::is_resolved) {
        return types;
    }
    let catalog = catalog(shared);
    types
        .into_iter()
        .map(|t| catalog.resolved(&t).unwrap_or(t))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_text_helpers() {
        assert_eq!(unhex("c3a92075").as_deref(), Some("é u"));
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("ff"), None, "not UTF-8");
        assert_eq!(split("").count(), 0);
        assert_eq!(split("1,2").collect::<Vec<_>>(), ["1", "2"]);
        let sql = lookup_sql(&[1, 22]);
        assert!(sql.contains("unnest('{1,22}'::oid[])") && !sql.contains("$1"));
    }

    fn row(oid: Oid, name: &str, typtype: u8) -> TypeRow {
        TypeRow {
            oid,
            name: name.into(),
            schema: "public".into(),
            typtype,
            element: 0,
            base: 0,
            range_subtype: 0,
            multirange_of: 0,
            enum_labels: vec![],
            field_names: vec![],
            field_types: vec![],
        }
    }

    #[test]
    fn rows_become_types_with_their_dependencies() {
        let mood = TypeRow {
            enum_labels: vec!["sad".into(), "happy".into()],
            ..row(100, "mood", b'e')
        };
        let moods = TypeRow {
            element: 100,
            ..row(101, "_mood", b'b')
        };
        let dom = TypeRow {
            base: 103,
            ..row(102, "email", b'd')
        };
        let citext = row(103, "citext", b'b');
        let pair = TypeRow {
            field_names: vec!["m".into(), "n".into(), "lost".into()],
            field_types: vec![100, 23, 999],
            ..row(104, "pair", b'c')
        };
        let rng = TypeRow {
            range_subtype: 102,
            ..row(105, "emailrange", b'r')
        };
        // Given out of order: dependencies are built on demand.
        let rows = [rng, pair, moods, dom, mood, citext];
        let built = build_types(&rows, &HashMap::new());
        assert_eq!(built.len(), 6);
        let mood = &built[&100];
        assert_eq!(mood.kind(), &Kind::Enum(vec!["sad".into(), "happy".into()]));
        assert!(mood.is_text_like());
        assert_eq!(built[&101].kind(), &Kind::Array(mood.clone()));
        assert_eq!(built[&102].base().name(), "citext");
        assert!(built[&102].base().is_text_like());
        let Kind::Composite(fields) = built[&104].kind() else {
            panic!("not a composite")
        };
        assert_eq!(fields[0].type_().name(), "mood");
        assert_eq!(fields[1].type_(), &Type::INT4);
        assert!(
            !fields[2].type_().is_resolved(),
            "an OID found nowhere stays a placeholder"
        );
        assert_eq!(built[&105].kind(), &Kind::Range(built[&102].clone()));
    }

    #[test]
    fn the_catalog_caches_and_uses_what_it_knows() {
        let mut catalog = TypeCatalog::default();
        assert_eq!(catalog.get(23), Some(Type::INT4));
        assert_eq!(catalog.get(100), None);
        catalog.insert_rows(&[row(100, "thing", b'b')]);
        assert_eq!(catalog.get(100).unwrap().name(), "thing");
        let arr = TypeRow {
            element: 100,
            ..row(101, "_thing", b'b')
        };
        catalog.insert_rows(&[arr]);
        let Kind::Array(e) = catalog.get(101).unwrap().kind().clone() else {
            panic!("not an array")
        };
        assert_eq!(e.name(), "thing", "the element came from the cache");
        assert_eq!(
            catalog.resolved(&Type::for_oid(100)).unwrap().name(),
            "thing"
        );
        assert!(catalog.resolved(&Type::for_oid(5)).is_none());
    }

    #[test]
    fn a_cycle_ends_in_a_placeholder() {
        let a = TypeRow {
            base: 201,
            ..row(200, "a", b'd')
        };
        let b = TypeRow {
            base: 200,
            ..row(201, "b", b'd')
        };
        let built = build_types(&[a, b], &HashMap::new());
        assert_eq!(built.len(), 2);
    }
}
