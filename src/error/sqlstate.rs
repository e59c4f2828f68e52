//! Named SQLSTATE codes for the conditions pgkeel acts on.
//!
//! The full list is in the PostgreSQL manual, appendix A ("PostgreSQL Error Codes").

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
