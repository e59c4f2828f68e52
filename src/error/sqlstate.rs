//! SQLSTATE codes: [`SqlState`] with every code PostgreSQL defines (generated from its
//! `errcodes.txt` by `src/error/gen_sqlstate.py`), and `&str` constants for the conditions
//! pgkeel itself acts on.
//!
//! The list is in the PostgreSQL manual, appendix A ("PostgreSQL Error Codes").

/// `00000` successful_completion.
pub const SUCCESSFUL_COMPLETION: &str = "00000";
/// `08000` connection_exception.
pub const CONNECTION_EXCEPTION: &str = "08000";
/// `08006` connection_failure.
pub const CONNECTION_FAILURE: &str = "08006";
/// `08P01` protocol_violation.
pub const PROTOCOL_VIOLATION: &str = "08P01";
/// `0A000` feature_not_supported (also "cached plan must not change result type").
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
/// `22003` numeric_value_out_of_range.
pub const NUMERIC_VALUE_OUT_OF_RANGE: &str = "22003";
/// `22012` division_by_zero.
pub const DIVISION_BY_ZERO: &str = "22012";
/// `22P03` invalid_binary_representation.
pub const INVALID_BINARY_REPRESENTATION: &str = "22P03";
/// `42804` datatype_mismatch.
pub const DATATYPE_MISMATCH: &str = "42804";
/// `42883` undefined_function (also "operator does not exist").
pub const UNDEFINED_FUNCTION: &str = "42883";
/// `42P08` ambiguous_parameter.
pub const AMBIGUOUS_PARAMETER: &str = "42P08";
/// `42P18` indeterminate_datatype.
pub const INDETERMINATE_DATATYPE: &str = "42P18";
/// `22P02` invalid_text_representation.
pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
/// `23502` not_null_violation.
pub const NOT_NULL_VIOLATION: &str = "23502";
/// `23503` foreign_key_violation.
pub const FOREIGN_KEY_VIOLATION: &str = "23503";
/// `23505` unique_violation.
pub const UNIQUE_VIOLATION: &str = "23505";
/// `23514` check_violation.
pub const CHECK_VIOLATION: &str = "23514";
/// `25001` active_sql_transaction.
pub const ACTIVE_SQL_TRANSACTION: &str = "25001";
/// `25006` read_only_sql_transaction (a write on a standby or a read-only server).
pub const READ_ONLY_SQL_TRANSACTION: &str = "25006";
/// `25P02` in_failed_sql_transaction.
pub const IN_FAILED_SQL_TRANSACTION: &str = "25P02";
/// `26000` invalid_sql_statement_name (a prepared statement that no longer exists).
pub const INVALID_SQL_STATEMENT_NAME: &str = "26000";
/// `28000` invalid_authorization_specification.
pub const INVALID_AUTHORIZATION_SPECIFICATION: &str = "28000";
/// `28P01` invalid_password.
pub const INVALID_PASSWORD: &str = "28P01";
/// `3D000` invalid_catalog_name (unknown database).
pub const INVALID_CATALOG_NAME: &str = "3D000";
/// `40001` serialization_failure.
pub const SERIALIZATION_FAILURE: &str = "40001";
/// `40P01` deadlock_detected.
pub const DEADLOCK_DETECTED: &str = "40P01";
/// `42601` syntax_error.
pub const SYNTAX_ERROR: &str = "42601";
/// `42703` undefined_column.
pub const UNDEFINED_COLUMN: &str = "42703";
/// `42P01` undefined_table.
pub const UNDEFINED_TABLE: &str = "42P01";
/// `53300` too_many_connections.
pub const TOO_MANY_CONNECTIONS: &str = "53300";
/// `55P03` lock_not_available.
pub const LOCK_NOT_AVAILABLE: &str = "55P03";
/// `57014` query_canceled.
pub const QUERY_CANCELED: &str = "57014";
/// `57P01` admin_shutdown.
pub const ADMIN_SHUTDOWN: &str = "57P01";
/// `57P02` crash_shutdown.
pub const CRASH_SHUTDOWN: &str = "57P02";
/// `57P03` cannot_connect_now (the server is starting up or shutting down).
pub const CANNOT_CONNECT_NOW: &str = "57P03";

/// Whether a SQLSTATE names a failure that a fresh run of the whole transaction may not hit.
pub fn is_retryable(code: &str) -> bool {
    matches!(code, SERIALIZATION_FAILURE | DEADLOCK_DETECTED)
}

/// Whether a SQLSTATE belongs to class 28 (invalid authorization).
pub fn is_authentication(code: &str) -> bool {
    code.starts_with("28")
}

#[path = "sqlstate_codes.rs"]
mod codes;

/// A SQLSTATE code, with a named constant for every code PostgreSQL defines
/// (`SqlState::UNIQUE_VIOLATION`, …, named as in tokio-postgres) and helpers for the
/// classes code is most often tested against. Codes PostgreSQL does not define (from an
/// extension or a newer server) are kept as they came.
///
/// ```
/// use pgkeel::SqlState;
/// let state = SqlState::from_code("23505");
/// assert_eq!(state, SqlState::UNIQUE_VIOLATION);
/// assert!(state.is_integrity_constraint_violation());
/// assert_eq!(state.code(), "23505");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SqlState(Code);

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Code {
    Known(&'static str),
    Other(Box<str>),
}

impl SqlState {
    const fn known(code: &'static str) -> SqlState {
        SqlState(Code::Known(code))
    }

    /// The state for a five-character code (known or not).
    pub fn from_code(code: &str) -> SqlState {
        match codes::CODES.binary_search(&code) {
            Ok(i) => SqlState::known(codes::CODES[i]),
            Err(_) => SqlState(Code::Other(code.into())),
        }
    }

    /// The five-character code.
    pub fn code(&self) -> &str {
        match &self.0 {
            Code::Known(c) => c,
            Code::Other(c) => c,
        }
    }

    /// The class: the code's first two characters (`"23"` for every integrity violation).
    pub fn class(&self) -> &str {
        self.code().get(..2).unwrap_or("")
    }

    /// Whether PostgreSQL defines this code.
    pub fn is_known(&self) -> bool {
        matches!(self.0, Code::Known(_))
    }

    /// Class 01, warning.
    pub fn is_warning(&self) -> bool {
        self.class() == "01"
    }

    /// Class 08, connection exception.
    pub fn is_connection_exception(&self) -> bool {
        self.class() == "08"
    }

    /// Class 22, data exception (bad input, out-of-range values, division by zero, …).
    pub fn is_data_exception(&self) -> bool {
        self.class() == "22"
    }

    /// Class 23, integrity constraint violation (unique, foreign key, not null, check, …).
    pub fn is_integrity_constraint_violation(&self) -> bool {
        self.class() == "23"
    }

    /// Class 25, invalid transaction state.
    pub fn is_invalid_transaction_state(&self) -> bool {
        self.class() == "25"
    }

    /// Class 28, invalid authorization specification.
    pub fn is_invalid_authorization(&self) -> bool {
        self.class() == "28"
    }

    /// Class 40, transaction rollback (serialization failure, deadlock, …).
    pub fn is_transaction_rollback(&self) -> bool {
        self.class() == "40"
    }

    /// Class 42, syntax error or access rule violation (undefined table, permission, …).
    pub fn is_syntax_error_or_access_rule_violation(&self) -> bool {
        self.class() == "42"
    }

    /// Class 53, insufficient resources (disk full, out of memory, too many connections).
    pub fn is_insufficient_resources(&self) -> bool {
        self.class() == "53"
    }

    /// Class 55, object not in prerequisite state (lock not available, …).
    pub fn is_object_not_in_prerequisite_state(&self) -> bool {
        self.class() == "55"
    }

    /// Class 57, operator intervention (query cancelled, admin or crash shutdown, …).
    pub fn is_operator_intervention(&self) -> bool {
        self.class() == "57"
    }

    /// Class XX, internal error (data corrupted, index corrupted, …).
    pub fn is_internal_error(&self) -> bool {
        self.class() == "XX"
    }
}

impl std::fmt::Display for SqlState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl std::fmt::Debug for SqlState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqlState({:?})", self.code())
    }
}

impl PartialEq<str> for SqlState {
    fn eq(&self, other: &str) -> bool {
        self.code() == other
    }
}

impl PartialEq<&str> for SqlState {
    fn eq(&self, other: &&str) -> bool {
        self.code() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_five_characters_sorted_and_found_by_itself() {
        assert_eq!(codes::CODES.len(), 260, "266 names, some sharing a code");
        assert!(codes::CODES.windows(2).all(|w| w[0] < w[1]));
        for code in codes::CODES {
            assert_eq!(code.len(), 5);
            let state = SqlState::from_code(code);
            assert!(state.is_known());
            assert_eq!(state.code(), code);
        }
    }

    #[test]
    fn names_match_tokio_postgres_and_the_curated_str_constants() {
        assert_eq!(SqlState::UNIQUE_VIOLATION, UNIQUE_VIOLATION);
        assert_eq!(SqlState::T_R_SERIALIZATION_FAILURE, SERIALIZATION_FAILURE);
        assert_eq!(SqlState::T_R_DEADLOCK_DETECTED, DEADLOCK_DETECTED);
        assert_eq!(SqlState::WARNING_DYNAMIC_RESULT_SETS_RETURNED, "0100C");
        assert_eq!(SqlState::ADMIN_SHUTDOWN, ADMIN_SHUTDOWN);
        assert_eq!(SqlState::PLPGSQL_ERROR, "P0000");
    }

    #[test]
    fn unknown_codes_are_kept_and_classified() {
        let state = SqlState::from_code("23ZZZ");
        assert!(!state.is_known());
        assert!(state.is_integrity_constraint_violation());
        assert_eq!(state.to_string(), "23ZZZ");
        assert_eq!(SqlState::from_code("").class(), "");
    }
}
