//! How parameters are typed and encoded for Parse and Bind.
//!
//! - A Rust value whose type names `text` (`&str`, `String`, `Option<&str>`, ...) is an
//!   **untyped text literal**: Parse names OID 0, so the server infers the parameter's
//!   type from the SQL exactly as it would for `'...'`, and Bind sends the text for that
//!   type's input function. So `&str` binds to text, varchar, citext, ltree, enums,
//!   domains and unknown with the server's own semantics (a `citext` comparison stays
//!   case-insensitive), in one round trip, and no binary value is ever read as a type it
//!   was not written for.
//! - Any other value is sent in binary as the type its Rust type names; a value whose
//!   Rust type names no type ([`crate::types::Infer`], a ported impl with the default
//!   `sql_type`) makes the statement be described first, and is encoded for the type the
//!   server inferred.
//! - `query_typed` names every type itself: all values go in binary as those types.

use bytes::BytesMut;

use super::Params;
use crate::error::{Error, ErrorKind, sqlstate};
use crate::protocol::frontend::{self, Format};
use crate::types::{IsNull, Oid, Type};

/// The parameters of one call and how they are typed.
#[derive(Clone, Copy)]
pub(crate) struct Binding<'p> {
    pub(crate) params: Params<'p>,
    /// The types the caller named (`query_typed`), one per parameter.
    pub(crate) typed: Option<&'p [Type]>,
}

impl<'p> Binding<'p> {
    /// Parameters typed by their Rust types.
    pub(crate) fn new(params: Params<'p>) -> Binding<'p> {
        Binding {
            params,
            typed: None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether parameter `i` goes as an untyped text literal.
    pub(crate) fn literal(&self, i: usize) -> bool {
        self.typed.is_none() && self.params[i].dyn_sql_type() == Type::TEXT
    }

    /// The OID Parse names for parameter `i` (0: the server infers it).
    pub(crate) fn oid(&self, i: usize) -> Oid {
        match (self.typed, self.literal(i)) {
            (Some(types), _) => types[i].oid(),
            (None, true) => 0,
            (None, false) => self.params[i].dyn_sql_type().oid(),
        }
    }

    /// The OIDs Parse names, as an iterator (a cache hit allocates nothing).
    pub(crate) fn oids(self) -> impl Iterator<Item = Oid> + Clone + 'p {
        (0..self.len()).map(move |i| self.oid(i))
    }

    /// Whether some binary parameter needs the server's inferred type before it can be
    /// encoded: the statement must be described first.
    pub(crate) fn needs_describe(&self) -> bool {
        (0..self.len()).any(|i| self.oid(i) == 0 && !self.literal(i))
    }

    /// Whether the types the statement has must be checked against the Rust values:
    /// they came from the server (inferred) or from the caller.
    pub(crate) fn needs_check(&self) -> bool {
        self.typed.is_some() || self.needs_describe()
    }

    fn has_literals(&self) -> bool {
        (0..self.len()).any(|i| self.literal(i))
    }

    /// The OIDs with every literal named `text`: for SQL that leaves a parameter's type
    /// open (`$1 IS NULL`, `concat($1)`), where the server cannot infer one.
    pub(crate) fn text_oids(&self) -> Option<Vec<Oid>> {
        let text = |i| match self.literal(i) {
            true => Type::TEXT.oid(),
            false => self.oid(i),
        };
        self.has_literals()
            .then(|| (0..self.len()).map(text).collect())
    }
}

/// Fails unless there is one parameter per type.
pub(super) fn check_count(types: &[Type], params: Params<'_>) -> Result<(), Error> {
    match types.len() == params.len() {
        true => Ok(()),
        false => Err(Error::new(
            ErrorKind::Encode,
            format!(
                "the statement takes {} parameters but {} were given",
                types.len(),
                params.len()
            ),
        )),
    }
}

/// Fails when a parameter's Rust type cannot be sent as the statement's type. Literals
/// are not checked: the server parses them.
pub(super) fn check_types(types: &[Type], b: Binding<'_>) -> Result<(), Error> {
    let refused = (0..b.len().min(types.len()))
        .find(|&i| !b.literal(i) && !b.params[i].dyn_accepts(&types[i]));
    match refused {
        None => Ok(()),
        Some(i) => Err(Error::new(
            ErrorKind::Encode,
            format!(
                "parameter ${} has type {}, which Rust type {} cannot be sent as",
                i + 1,
                types[i],
                b.params[i].rust_type_name()
            ),
        )),
    }
}

/// Fails unless the parameters name the types a statement was parsed with (`oids`):
/// the later parameter sets of `execute_many` bind to the first set's statement.
pub(super) fn check_oids(oids: &[Oid], b: Binding<'_>) -> Result<(), Error> {
    if oids.len() != b.len() {
        let msg = format!(
            "the statement takes {} parameters but {} were given",
            oids.len(),
            b.len()
        );
        return Err(Error::new(ErrorKind::Encode, msg));
    }
    let Some(i) = (0..b.len()).find(|&i| b.oid(i) != oids[i]) else {
        return Ok(());
    };
    let sent = |oid: Oid| match oid {
        0 => "sent untyped (as text, or for the server to infer)".to_owned(),
        oid => format!("sent as {}", Type::for_oid(oid)),
    };
    Err(Error::new(
        ErrorKind::Encode,
        format!(
            "parameter ${} is Rust type {}, {}, but the statement was parsed for the first \
             parameter set's value, {}",
            i + 1,
            b.params[i].rust_type_name(),
            sent(b.oid(i)),
            sent(oids[i]),
        ),
    ))
}

/// Appends Bind of `statement` to the unnamed portal. `known` are the statement's
/// parameter types when they are known (else each value is encoded as its own type).
pub(super) fn write_bind(
    statement: &str,
    b: Binding<'_>,
    known: Option<&[Type]>,
    buf: &mut BytesMut,
) -> Result<(), Error> {
    write_bind_to("", statement, b, known, buf)
}

/// As [`write_bind`], to the portal named `portal` ("" for the unnamed one).
pub(super) fn write_bind_to(
    portal: &str,
    statement: &str,
    b: Binding<'_>,
    known: Option<&[Type]>,
    buf: &mut BytesMut,
) -> Result<(), Error> {
    let encode = |i: usize, buf: &mut BytesMut| encode_param(i, b, known, buf);
    match b.has_literals() {
        false => frontend::bind(
            portal,
            statement,
            b.len(),
            Format::Binary,
            encode,
            Format::Binary,
            buf,
        ),
        true => {
            let format = |i| match b.literal(i) {
                true => Format::Text,
                false => Format::Binary,
            };
            frontend::bind_formats(
                portal,
                statement,
                b.len(),
                format,
                encode,
                Format::Binary,
                buf,
            )
        }
    }
}

fn encode_param(
    i: usize,
    b: Binding<'_>,
    known: Option<&[Type]>,
    buf: &mut BytesMut,
) -> Result<bool, Error> {
    let p = b.params[i];
    // A literal's text is its own encoding as `text`; otherwise the statement's type
    // when there is one (borrowed: no clone per parameter).
    let own;
    let ty = match known.and_then(|t| t.get(i)) {
        Some(ty) if !b.literal(i) => ty,
        _ => {
            own = b.typed.map_or_else(|| p.dyn_sql_type(), |t| t[i].clone());
            &own
        }
    };
    match p.to_sql_checked(ty, buf) {
        Ok(IsNull::Yes) => Ok(true),
        Ok(IsNull::No) => Ok(false),
        Err(e) => {
            let msg = format!(
                "parameter ${} of type {ty} from Rust type {}",
                i + 1,
                p.rust_type_name()
            );
            Err(Error::with_source(ErrorKind::Encode, msg, e))
        }
    }
}

/// Whether the server could not settle a parameter's type (nothing ran).
pub(super) fn is_indeterminate(e: &Error) -> bool {
    matches!(
        e.code(),
        Some(sqlstate::INDETERMINATE_DATATYPE | sqlstate::AMBIGUOUS_PARAMETER)
    )
}

/// A server error about a parameter's type or value, with the parameter named: its
/// index, its Rust type and its PostgreSQL type (`types`, as the statement has them).
/// The server names the parameter of a Bind error in its context line; for a Parse
/// error, the parameter at the error's position in `sql`.
pub(super) fn name_parameter(e: Error, sql: Option<&str>, b: Binding<'_>, types: &[Type]) -> Error {
    let Some(db) = e.as_db_error() else { return e };
    let about_params = matches!(
        db.code(),
        sqlstate::INVALID_BINARY_REPRESENTATION
            | sqlstate::PROTOCOL_VIOLATION
            | sqlstate::INVALID_TEXT_REPRESENTATION
            | sqlstate::NUMERIC_VALUE_OUT_OF_RANGE
            | sqlstate::DATATYPE_MISMATCH
            | sqlstate::UNDEFINED_FUNCTION
            | sqlstate::INDETERMINATE_DATATYPE
            | sqlstate::AMBIGUOUS_PARAMETER
    );
    if !about_params {
        return e;
    }
    let index = db
        .where_()
        .and_then(bind_parameter)
        .or_else(|| sql.zip(db.position()).and_then(|(s, p)| parameter_at(s, p)));
    let Some(i) = index.filter(|&i| i >= 1 && i <= b.len()) else {
        return e;
    };
    let p = b.params[i - 1];
    let sent = match (b.literal(i - 1), types.get(i - 1)) {
        (true, Some(t)) if t.oid() != 0 => format!("sent as text for {t}"),
        (true, _) => "sent as text".to_owned(),
        (false, Some(t)) if t.oid() != 0 => format!("PostgreSQL type {t}"),
        (false, _) => format!("PostgreSQL type {}", p.dyn_sql_type()),
    };
    let rust = p.rust_type_name();
    e.context(format!("parameter ${i} (Rust type {rust}, {sent})"))
}

/// The parameter a Bind error's context names: "unnamed portal parameter $2 = '...'".
fn bind_parameter(context: &str) -> Option<usize> {
    let at = context.find("parameter $")? + "parameter $".len();
    leading_number(&context[at..])
}

/// The parameter `$n` at (or right after an operator at) the 1-based character
/// `position` of `sql`.
fn parameter_at(sql: &str, position: u32) -> Option<usize> {
    let at = sql.char_indices().nth(position.checked_sub(1)? as usize)?.0;
    let rest = sql[at..]
        .trim_start_matches(|c: char| !c.is_alphanumeric() && c != '$' && c != '(' && c != '\'');
    let rest = rest.trim_start();
    leading_number(rest.strip_prefix('$')?)
}

fn leading_number(s: &str) -> Option<usize> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ToSql;

    #[test]
    fn literals_are_untyped_text_and_the_rest_names_its_type() {
        let (s, n, i) = ("x", Some("y"), 3i64);
        let params: [&(dyn ToSql + Sync); 3] = [&s, &n, &i];
        let b = Binding::new(&params);
        assert_eq!(b.oids().collect::<Vec<_>>(), [0, 0, 20]);
        assert!(!b.needs_describe() && !b.needs_check());
        assert_eq!(b.text_oids(), Some(vec![25, 25, 20]));
        let typed = [Type::TEXT, Type::VARCHAR, Type::INT8];
        let b = Binding {
            typed: Some(&typed),
            ..b
        };
        assert_eq!(b.oids().collect::<Vec<_>>(), [25, 1043, 20]);
        assert!(b.needs_check() && !b.literal(0));
    }

    #[test]
    fn an_inferred_parameter_needs_a_description() {
        let v = crate::types::Infer(1i32);
        let params: [&(dyn ToSql + Sync); 1] = [&v];
        let b = Binding::new(&params);
        assert!(b.needs_describe() && b.needs_check());
        assert_eq!(b.text_oids(), None);
        let err = check_types(&[Type::INT8], b).unwrap_err().to_string();
        assert!(
            err.contains("$1 has type int8") && err.contains("i32"),
            "{err}"
        );
    }

    #[test]
    fn the_parameter_an_error_is_about() {
        assert_eq!(
            bind_parameter("unnamed portal parameter $2 = '...'"),
            Some(2)
        );
        assert_eq!(bind_parameter("portal \"x\" parameter $13"), Some(13));
        assert_eq!(bind_parameter("SQL function"), None);
        let sql = "SELECT 1 FROM t WHERE mood = $12";
        assert_eq!(parameter_at(sql, 30), Some(12), "at the parameter");
        assert_eq!(parameter_at(sql, 28), Some(12), "at the operator");
        assert_eq!(parameter_at(sql, 23), None, "at a column");
        assert_eq!(
            parameter_at("é = $1", 3),
            Some(1),
            "positions count characters"
        );
        assert_eq!(parameter_at(sql, 0), None);
    }
}
