//! A statement's result rows read with one call into PostgreSQL per row: each row deformed
//! once (`heap_deform_tuple`), its text values read in place unless stored compressed or out of
//! line. pgrx's `SpiHeapTupleData` makes two calls per column when it reads a row and two or
//! three more per value (each with its `sigsetjmp`), which a purge batch of a thousand rows
//! pays tens of thousands of times.

use crate::error::RetentionError;
use pgrx::pg_sys;
use pgrx::spi::SpiTupleTable;
use pgrx::varlena;

/// The rows of the statement that just ran through SPI, read one at a time.
pub struct ResultRows<'conn> {
    /// The result as pgrx holds it: borrowed for as long as its rows are read.
    _table: SpiTupleTable<'conn>,
    tupdesc: pg_sys::TupleDesc,
    tuples: &'conn [pg_sys::HeapTuple],
    next: usize,
    values: Vec<pg_sys::Datum>,
    nulls: Vec<bool>,
}

impl<'conn> ResultRows<'conn> {
    /// The rows of `table`, which must be the result of the last statement run through SPI.
    pub fn of(table: SpiTupleTable<'conn>) -> Result<ResultRows<'conn>, RetentionError> {
        // SAFETY: SPI_tuptable is the result of the last statement run through SPI; it stays
        // allocated while `table`, which wraps it, is held.
        let raw = unsafe { pg_sys::SPI_tuptable };
        if raw.is_null() || unsafe { (*raw).numvals } as usize != table.len() {
            return Err(RetentionError::Unsupported(
                "the rows read are not the last statement's result".to_string(),
            ));
        }
        // SAFETY: `vals` holds `numvals` tuples, described by `tupdesc`.
        let (tupdesc, tuples, natts) = unsafe {
            let tuples = match (*raw).numvals {
                0 => &[][..],
                n => std::slice::from_raw_parts((*raw).vals, n as usize),
            };
            ((*raw).tupdesc, tuples, (*(*raw).tupdesc).natts as usize)
        };
        Ok(ResultRows {
            _table: table,
            tupdesc,
            tuples,
            next: 0,
            values: vec![pg_sys::Datum::from(0); natts],
            nulls: vec![true; natts],
        })
    }

    /// The next row, or None after the last.
    pub fn next_row(&mut self) -> Option<ResultRow<'_, 'conn>> {
        let tuple = *self.tuples.get(self.next)?;
        self.next += 1;
        // SAFETY: a tuple of the result, deformed into arrays of its descriptor's width.
        unsafe {
            pg_sys::heap_deform_tuple(
                tuple,
                self.tupdesc,
                self.values.as_mut_ptr(),
                self.nulls.as_mut_ptr(),
            )
        };
        Some(ResultRow { rows: self })
    }
}

/// One row of [`ResultRows`]; columns are numbered from 1, as in SPI.
pub struct ResultRow<'a, 'conn> {
    rows: &'a ResultRows<'conn>,
}

impl ResultRow<'_, '_> {
    /// Column `n`'s datum, None when NULL, after checking that its type is `type_oid`.
    fn datum(
        &self,
        n: usize,
        type_oid: pg_sys::Oid,
    ) -> Result<Option<pg_sys::Datum>, RetentionError> {
        let index = n.wrapping_sub(1);
        let Some(&null) = self.rows.nulls.get(index) else {
            return Err(RetentionError::Unsupported(format!(
                "the result has no column {n}"
            )));
        };
        // SAFETY: `index` is within the descriptor's attributes.
        let actual =
            unsafe { (*self.rows.tupdesc).attrs.as_slice(self.rows.nulls.len())[index].atttypid };
        if actual != type_oid {
            return Err(RetentionError::Unsupported(format!(
                "column {n} of the result is of type {actual:?}, not {type_oid:?}"
            )));
        }
        Ok((!null).then(|| self.rows.values[index]))
    }

    /// Column `n`, a `text`, as a Rust string.
    pub fn text(&self, n: usize) -> Result<Option<String>, RetentionError> {
        let Some(datum) = self.datum(n, pg_sys::TEXTOID)? else {
            return Ok(None);
        };
        let stored = datum.cast_mut_ptr::<pg_sys::varlena>();
        // SAFETY: a text datum of the result; one stored compressed or out of line is
        // detoasted into a copy (freed with the SPI connection's memory), any other is read
        // where it is.
        let text = unsafe {
            let plain = if varlena::varatt_is_1b_e(stored) || varlena::varatt_is_4b_c(stored) {
                pg_sys::pg_detoast_datum_packed(stored)
            } else {
                stored
            };
            varlena::text_to_rust_str(plain)
        };
        text.map(|s| Some(s.to_owned())).map_err(|_| {
            RetentionError::InvalidValue(format!("column {n} of the result is not valid UTF-8"))
        })
    }

    /// Column `n`, a `jsonb`, copied whole (detoasted) into the current memory context.
    pub fn jsonb_copy(&self, n: usize) -> Result<Option<pg_sys::Datum>, RetentionError> {
        Ok(self.datum(n, pg_sys::JSONBOID)?.map(|datum| {
            // SAFETY: a jsonb datum of the result, a varlena.
            pg_sys::Datum::from(unsafe { pg_sys::pg_detoast_datum_copy(datum.cast_mut_ptr()) })
        }))
    }

    /// Column `n`, an `integer`.
    pub fn int4(&self, n: usize) -> Result<Option<i32>, RetentionError> {
        // An int4 datum holds its value in the low 32 bits.
        Ok(self
            .datum(n, pg_sys::INT4OID)?
            .map(|datum| datum.value() as i32))
    }

    /// Column `n`, a `timestamptz`.
    pub fn timestamptz(
        &self,
        n: usize,
    ) -> Result<Option<pgrx::datum::TimestampWithTimeZone>, RetentionError> {
        Ok(self.datum(n, pg_sys::TIMESTAMPTZOID)?.and_then(|datum| {
            // SAFETY: a timestamptz datum: the microseconds, by value.
            unsafe {
                <pgrx::datum::TimestampWithTimeZone as pgrx::FromDatum>::from_polymorphic_datum(
                    datum,
                    false,
                    pg_sys::TIMESTAMPTZOID,
                )
            }
        }))
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::ResultRows;
    use pgrx::datum::TimestampWithTimeZone;
    use pgrx::prelude::*;
    use pgrx::{FromDatum, JsonB};

    /// Each column as the statement returned it: text read in place or detoasted (a long
    /// value stored compressed), NULLs as None, jsonb copied whole, timestamps by value; a
    /// column read as another type than its own is refused.
    #[pg_test]
    fn a_row_is_read_whole_and_each_value_as_its_type() {
        Spi::run(
            "CREATE TABLE long_text (t text);
             INSERT INTO long_text VALUES (repeat('ab', 100000));",
        )
        .unwrap();
        let at =
            Spi::get_one::<TimestampWithTimeZone>("SELECT '2020-01-02 03:04:05+00'::timestamptz")
                .unwrap();
        Spi::connect_mut(|client| {
            let table = client
                .update(
                    "SELECT 'héllo'::text, NULL::text, t, '{\"id\": 7}'::jsonb,
                            '2020-01-02 03:04:05+00'::timestamptz, -42
                       FROM long_text",
                    None,
                    &[],
                )
                .unwrap();
            let mut rows = ResultRows::of(table).unwrap();
            let row = rows.next_row().unwrap();
            assert_eq!(row.text(1).unwrap().as_deref(), Some("héllo"));
            assert_eq!(row.text(2).unwrap(), None);
            assert_eq!(row.text(3).unwrap(), Some("ab".repeat(100000)));
            let key = row.jsonb_copy(4).unwrap().unwrap();
            // SAFETY: a jsonb datum the row copied out.
            let key = unsafe { JsonB::from_datum(key, false) }.unwrap();
            assert_eq!(key.0, serde_json::json!({"id": 7}));
            assert_eq!(row.timestamptz(5).unwrap(), at);
            assert!(row.text(4).is_err());
            assert!(row.timestamptz(1).is_err());
            assert_eq!(row.int4(6).unwrap(), Some(-42));
            assert!(row.int4(1).is_err());
            assert!(row.text(7).is_err());
            assert!(rows.next_row().is_none());
        });
    }
}
