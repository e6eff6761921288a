//! Every error a user can provoke, each with its SQLSTATE, detail and hint.
//!
//! SQL functions return `Result<T, ErrorReport>`; `?` on a [`RetentionError`] turns it into a
//! proper Postgres error, never an internal error (XX000) from a panic.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgSqlErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("argument \"{0}\" must not be NULL")]
    NullArgument(&'static str),
    #[error("{0}")]
    InvalidValue(String),
    /// A JSON document the extension builds could not be built.
    #[error("could not build JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("category \"{0}\" does not exist")]
    UnknownCategory(String),
    #[error("category \"{0}\" is in use")]
    CategoryInUse(String, String),
    #[error("table {0} is not managed by pg_retention")]
    NotManaged(String),
    #[error("table {0} is already managed by pg_retention")]
    AlreadyManaged(String),
    #[error("table {0} has no primary key")]
    NoPrimaryKey(String),
    #[error("column \"{column}\" does not exist in table {table}")]
    UnknownColumn { table: String, column: String },
    #[error("column \"{column}\" of table {table} has type {found}, expected {expected}")]
    WrongColumnType {
        table: String,
        column: String,
        found: String,
        expected: String,
    },
    /// A table lacks a column (or map) a category's policy needs: the message, and the hint.
    #[error("{0}")]
    MissingColumnRole(String, String),
    /// A table the purge would act on as its owner could do something the log would not
    /// record (a rule, a deferrable trigger, a cascading foreign key, lost rights, a broken
    /// key): the message, and the hint.
    #[error("{0}")]
    UnsafeTarget(String, String),
    #[error("no tenant policy for tenant \"{0}\" and category \"{1}\"")]
    UnknownTenantPolicy(String, String),
    #[error("no category uses event \"{0}\"")]
    UnknownEvent(String),
    #[error("tenant \"{0}\" has no recorded event \"{1}\"")]
    EventNotRecorded(String, String),
    #[error("legal hold {0} does not exist")]
    UnknownHold(i64),
    #[error("legal hold {0} is already released")]
    HoldReleased(i64),
    #[error("{0}")]
    WrongIsolation(String),
    #[error("{0}")]
    InRecovery(String),
    #[error("{0}")]
    RestoreWindowPassed(String),
    #[error("erasure request {0} does not exist")]
    UnknownErasureRequest(i64),
    #[error("erasure request {0} is {1}, not pending")]
    ErasureNotPending(i64, String),
    #[error("export request {0} does not exist")]
    UnknownExportRequest(i64),
    #[error("export request {0} is {1}, not {2}")]
    ExportNotInState(i64, String, &'static str),
    #[error("external_id \"{0}\" already names another export request")]
    ExternalIdInUse(String),
    #[error("{0}")]
    RowRemoved(String),
    #[error("relation with OID {0} does not exist")]
    UnknownTable(u32),
    #[error("{0} is not a table")]
    WrongObjectType(String),
    #[error(
        "pg_retention's schema in this database is version {schema}, the library is {library}"
    )]
    SchemaOutdated { schema: String, library: String },
    #[error("{0}")]
    UnderHold(String),
    #[error("permission denied: {0}")]
    InsufficientPrivilege(String),
    #[error("another transaction holds pg_retention's {0} lock")]
    LockBusy(&'static str),
    #[error("unknown detector \"{0}\"")]
    UnknownDetector(String),
    #[error("rows of category \"{0}\" are kept by its lock: they leave only when they expire")]
    CategoryLocked(String),
    #[error("erasure request {0} is completed: its deadline cannot move")]
    RequestCompleted(i64),
    #[error("invalid pattern \"{0}\": {1}")]
    InvalidPattern(String, String),
    #[error("table {0} is not redacted")]
    NotRedacted(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("role \"{0}\" does not exist")]
    UnknownRole(String),
    #[error("schema \"{0}\" does not exist")]
    UnknownSchema(String),
    #[error("disposition batch {0} does not exist")]
    UnknownDisposition(i64),
    #[error("disposition batch {0} is {1}, not pending")]
    DispositionDecided(i64, String),
    #[error("SPI: {0}")]
    Spi(#[from] pgrx::spi::SpiError),
}

impl RetentionError {
    pub fn sqlstate(&self) -> PgSqlErrorCode {
        use PgSqlErrorCode::*;
        match self {
            Self::NullArgument(_) => ERRCODE_NULL_VALUE_NOT_ALLOWED,
            Self::InvalidValue(_) | Self::UnknownDetector(_) => ERRCODE_INVALID_PARAMETER_VALUE,
            Self::UnknownCategory(_)
            | Self::NotManaged(_)
            | Self::UnknownTenantPolicy(..)
            | Self::UnknownEvent(_)
            | Self::EventNotRecorded(..)
            | Self::UnknownHold(_)
            | Self::UnknownErasureRequest(_)
            | Self::UnknownExportRequest(_)
            | Self::NotRedacted(_)
            | Self::UnknownRole(_)
            | Self::UnknownDisposition(_) => ERRCODE_UNDEFINED_OBJECT,
            Self::Unsupported(_) => ERRCODE_FEATURE_NOT_SUPPORTED,
            Self::InvalidPattern(..) => ERRCODE_INVALID_REGULAR_EXPRESSION,
            Self::UnknownSchema(_) => ERRCODE_INVALID_SCHEMA_NAME,
            Self::ExternalIdInUse(_) => ERRCODE_UNIQUE_VIOLATION,
            Self::CategoryInUse(..) => ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
            Self::AlreadyManaged(_) => ERRCODE_DUPLICATE_OBJECT,
            Self::NoPrimaryKey(_) => ERRCODE_INVALID_TABLE_DEFINITION,
            Self::UnknownColumn { .. } => ERRCODE_UNDEFINED_COLUMN,
            Self::WrongColumnType { .. } => ERRCODE_DATATYPE_MISMATCH,
            Self::MissingColumnRole(..)
            | Self::UnsafeTarget(..)
            | Self::HoldReleased(_)
            | Self::RestoreWindowPassed(_)
            | Self::ErasureNotPending(..)
            | Self::RequestCompleted(_)
            | Self::DispositionDecided(..)
            | Self::ExportNotInState(..)
            | Self::RowRemoved(_)
            | Self::SchemaOutdated { .. } => ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            Self::WrongIsolation(_) => ERRCODE_ACTIVE_SQL_TRANSACTION,
            Self::InRecovery(_) => ERRCODE_READ_ONLY_SQL_TRANSACTION,
            Self::WrongObjectType(_) => ERRCODE_WRONG_OBJECT_TYPE,
            Self::UnknownTable(_) => ERRCODE_UNDEFINED_TABLE,
            Self::LockBusy(_) => ERRCODE_LOCK_NOT_AVAILABLE,
            Self::InsufficientPrivilege(_) => ERRCODE_INSUFFICIENT_PRIVILEGE,
            Self::UnderHold(_) | Self::CategoryLocked(_) => ERRCODE_OBJECT_IN_USE,
            Self::Spi(_) | Self::Json(_) => ERRCODE_INTERNAL_ERROR,
        }
    }

    fn detail(&self) -> Option<String> {
        match self {
            Self::CategoryInUse(_, why) => Some(why.clone()),
            _ => None,
        }
    }

    fn hint(&self) -> Option<String> {
        let hint = match self {
            Self::UnknownCategory(_) => "Create it first with retention.define_category().",
            Self::NotManaged(_) => "Put the table under retention with retention.manage().",
            Self::AlreadyManaged(_) => {
                "Call retention.unmanage() first, or tag rows with another category."
            }
            Self::NoPrimaryKey(_) => {
                "Add a primary key: the deletion log identifies rows by their key."
            }
            Self::MissingColumnRole(_, hint) | Self::UnsafeTarget(_, hint) => {
                return Some(hint.clone())
            }
            Self::UnknownEvent(_) => {
                "Define a category with clock => 'event' and that event name first."
            }
            Self::WrongIsolation(_) => "Run it in a READ COMMITTED transaction.",
            Self::UnderHold(_) => "Legal releases the hold with retention.release_hold().",
            Self::UnknownDetector(_) => {
                "Detectors are card, email, phone, iban, ssn and custom (with a pattern)."
            }
            Self::NotRedacted(_) => "Redact its columns first with retention.redact().",
            Self::SchemaOutdated { .. } => {
                "Run ALTER EXTENSION pg_retention UPDATE in this database; purging waits for it."
            }
            _ => return None,
        };
        Some(hint.to_string())
    }
}

impl From<RetentionError> for ErrorReport {
    fn from(e: RetentionError) -> Self {
        let mut report = ErrorReport::new(e.sqlstate(), e.to_string(), "pg_retention");
        if let Some(detail) = e.detail() {
            report = report.set_detail(detail);
        }
        if let Some(hint) = e.hint() {
            report = report.set_hint(hint);
        }
        report
    }
}

/// The result type of every SQL-callable function.
pub type SqlResult<T> = Result<T, ErrorReport>;

/// Unwraps a required (non-NULL) argument.
pub fn required<T>(value: Option<T>, name: &'static str) -> Result<T, RetentionError> {
    value.ok_or(RetentionError::NullArgument(name))
}
