//! Bound parameters for dynamic SQL: values never enter the statement text, only `$n`.

use pgrx::datum::DatumWithOid;

#[derive(Default)]
pub struct Params<'a> {
    args: Vec<DatumWithOid<'a>>,
}

impl<'a> Params<'a> {
    /// Binds a value and returns its placeholder (`$n`).
    pub fn bind(&mut self, value: impl Into<DatumWithOid<'a>>) -> String {
        self.args.push(value.into());
        format!("${}", self.args.len())
    }

    /// A copy of these parameters with `value` bound after them, and its placeholder.
    pub fn and(&self, value: impl Into<DatumWithOid<'a>>) -> (Params<'a>, String) {
        let mut args: Vec<DatumWithOid<'a>> = self
            .args
            .iter()
            // SAFETY: each copy carries the same datum and type, valid for the same lifetime.
            .map(|a| unsafe { DatumWithOid::new_from_datum(a.datum(), a.oid()) })
            .collect();
        args.push(value.into());
        let placeholder = format!("${}", args.len());
        (Params { args }, placeholder)
    }

    pub fn args(&self) -> &[DatumWithOid<'a>] {
        &self.args
    }
}
