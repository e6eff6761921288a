//! Hand-written version-1 C functions, for SQL functions with more arguments than a Rust
//! function should take (`define_category`, `manage`). pgrx's `#[pg_extern]` makes one Rust
//! argument of each SQL argument; such an entry point instead reads the call's arguments
//! ([`Args`]) into one typed struct, calls a Rust function taking it, and ends the call as
//! `#[pg_extern]`'s wrapper does ([`void`]). Its SQL is declared with `extension_sql!` next to
//! it. Shape of one:
//!
//! ```text
//! #[pg_guard]
//! #[no_mangle]
//! pub unsafe extern "C-unwind" fn manage_wrapper(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
//!     void(manage(ManageRequest::read(&Args::new(fcinfo))))
//! }
//! #[no_mangle]
//! pub extern "C" fn pg_finfo_manage_wrapper() -> &'static pg_sys::Pg_finfo_record {
//!     &V1
//! }
//! ```

use crate::error::SqlResult;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::marker::PhantomData;

/// What `pg_finfo_<symbol>` returns: the symbol follows the version-1 calling convention
/// (`PG_FUNCTION_INFO_V1`).
pub static V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };

/// The arguments of one call, read by position (from 0). Values borrowed from them (`&str`)
/// live as long as the call.
pub struct Args<'fcx> {
    fcinfo: pg_sys::FunctionCallInfo,
    call: PhantomData<&'fcx pg_sys::FunctionCallInfoBaseData>,
}

impl<'fcx> Args<'fcx> {
    /// # Safety
    /// `fcinfo` is the current call's, as PostgreSQL passed it to the entry point.
    pub unsafe fn new(fcinfo: pg_sys::FunctionCallInfo) -> Self {
        Args {
            fcinfo,
            call: PhantomData,
        }
    }

    /// Argument `n` as a `T`; None when it is NULL, or when the SQL definition that called
    /// has fewer arguments (a database whose schema predates argument `n`).
    ///
    /// # Safety
    /// `T` is the Rust type of argument `n`'s SQL type in every SQL definition of the symbol.
    pub unsafe fn get<T: FromDatum + 'fcx>(&self, n: usize) -> Option<T> {
        // SAFETY: fcinfo is the call's (new); nargs bounds the arguments it carries.
        unsafe {
            if n >= usize::try_from((*self.fcinfo).nargs).unwrap_or(0) {
                return None;
            }
            pgrx::fcinfo::pg_getarg::<T>(self.fcinfo, n)
        }
    }
}

/// Ends the call of a function returning `void`: an `Err` is raised as an ERROR with its
/// SQLSTATE, detail and hint, as `#[pg_extern]` raises the `Err` of a `SqlResult`.
pub fn void(result: SqlResult<()>) -> pg_sys::Datum {
    if let Err(report) = result {
        report.report(PgLogLevel::ERROR);
    }
    pgrx::fcinfo::pg_return_void()
}
