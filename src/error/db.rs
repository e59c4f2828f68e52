//! `DbError`: every field of a PostgreSQL ErrorResponse or NoticeResponse.
//!
//! Field codes: PostgreSQL manual, "Error and Notice Message Fields".

use std::fmt;

/// An error or notice reported by the server, with every field it sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbError {
    severity: String,
    code: String,
    message: String,
    detail: Option<String>,
    hint: Option<String>,
    position: Option<u32>,
    internal_position: Option<u32>,
    internal_query: Option<String>,
    where_: Option<String>,
    schema: Option<String>,
    table: Option<String>,
    column: Option<String>,
    datatype: Option<String>,
    constraint: Option<String>,
    file: Option<String>,
    line: Option<u32>,
    routine: Option<String>,
}

impl DbError {
    /// Builds a `DbError` from `(field code, value)` pairs as they came off the wire.
    ///
    /// Unknown field codes are ignored, as the protocol asks; a missing severity, code or
    /// message is left empty rather than invented.
    pub fn from_fields(fields: Vec<(u8, String)>) -> DbError {
        let mut e = DbError::default();
        for (code, value) in fields {
            e.set_field(code, value);
        }
        e
    }

    fn set_field(&mut self, code: u8, value: String) {
        match code {
            // 'V' is the non-localized severity; prefer it over the localized 'S'.
            b'V' => self.severity = value,
            b'S' if self.severity.is_empty() => self.severity = value,
            b'C' => self.code = value,
            b'M' => self.message = value,
            b'D' => self.detail = Some(value),
            b'H' => self.hint = Some(value),
            b'P' => self.position = value.parse().ok(),
            b'p' => self.internal_position = value.parse().ok(),
            b'q' => self.internal_query = Some(value),
            b'W' => self.where_ = Some(value),
            b's' => self.schema = Some(value),
            b't' => self.table = Some(value),
            b'c' => self.column = Some(value),
            b'd' => self.datatype = Some(value),
            b'n' => self.constraint = Some(value),
            b'F' => self.file = Some(value),
            b'L' => self.line = value.parse().ok(),
            b'R' => self.routine = Some(value),
            _ => {}
        }
    }

    /// Severity: ERROR, FATAL or PANIC (errors), WARNING, NOTICE, DEBUG, INFO or LOG (notices).
    pub fn severity(&self) -> &str {
        &self.severity
    }
    /// The SQLSTATE code, e.g. `23505`; see [`crate::sqlstate`].
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The SQLSTATE as a [`super::SqlState`] (named constants, class helpers).
    pub fn sql_state(&self) -> super::SqlState {
        super::SqlState::from_code(&self.code)
    }
    /// The primary human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// An optional secondary message with more detail.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
    /// An optional suggestion of what to do about the problem.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }
    /// The 1-based character position of the error in the query string.
    pub fn position(&self) -> Option<u32> {
        self.position
    }
    /// The position of the error in an internally generated query.
    pub fn internal_position(&self) -> Option<u32> {
        self.internal_position
    }
    /// The text of the internally generated query that failed.
    pub fn internal_query(&self) -> Option<&str> {
        self.internal_query.as_deref()
    }
    /// The context (call stack) in which the error occurred.
    pub fn where_(&self) -> Option<&str> {
        self.where_.as_deref()
    }
    /// The schema of the object the error concerns.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }
    /// The table the error concerns.
    pub fn table(&self) -> Option<&str> {
        self.table.as_deref()
    }
    /// The column the error concerns.
    pub fn column(&self) -> Option<&str> {
        self.column.as_deref()
    }
    /// The data type the error concerns.
    pub fn datatype(&self) -> Option<&str> {
        self.datatype.as_deref()
    }
    /// The constraint the error concerns, e.g. the unique index of a duplicate key.
    pub fn constraint(&self) -> Option<&str> {
        self.constraint.as_deref()
    }
    /// The server source file that reported the error.
    pub fn file(&self) -> Option<&str> {
        self.file.as_deref()
    }
    /// The line in the server source file.
    pub fn line(&self) -> Option<u32> {
        self.line
    }
    /// The server source routine that reported the error.
    pub fn routine(&self) -> Option<&str> {
        self.routine.as_deref()
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.severity, self.code, self.message)?;
        if let Some(detail) = &self.detail {
            write!(f, "\nDETAIL: {detail}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\nHINT: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DbError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_kept_and_unknown_fields_are_ignored() {
        let fields = vec![
            (b'S', "ERREUR".to_string()),
            (b'V', "ERROR".to_string()),
            (b'C', "23505".to_string()),
            (b'M', "duplicate key".to_string()),
            (b'D', "Key (id)=(1) already exists.".to_string()),
            (b'n', "t_pkey".to_string()),
            (b't', "t".to_string()),
            (b's', "public".to_string()),
            (b'P', "12".to_string()),
            (b'L', "not a number".to_string()),
            (b'Z', "future field".to_string()),
        ];
        let e = DbError::from_fields(fields);
        assert_eq!(e.severity(), "ERROR");
        assert_eq!(e.code(), "23505");
        assert_eq!(e.constraint(), Some("t_pkey"));
        assert_eq!(e.table(), Some("t"));
        assert_eq!(e.schema(), Some("public"));
        assert_eq!(e.position(), Some(12));
        assert_eq!(e.line(), None);
        assert_eq!(
            e.to_string(),
            "ERROR 23505: duplicate key\nDETAIL: Key (id)=(1) already exists."
        );
    }
}
