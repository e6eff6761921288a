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

    pub fn args(&self) -> &[DatumWithOid<'a>] {
        &self.args
    }
}
