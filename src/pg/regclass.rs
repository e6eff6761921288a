//! `regclass` arguments. pgrx's `PgRelation` opens the relation while converting the argument,
//! so an OID of a dropped table panics (XX000) before the function runs; [`RegClass`] only
//! carries the OID, and [`RegClass::table`] checks it with a proper error.

use crate::error::RetentionError;
use pgrx::callconv::{Arg, ArgAbi};
use pgrx::nullable::Nullable;
use pgrx::pg_sys;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin,
};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

/// A `regclass` argument: a relation OID, not yet checked to exist.
#[derive(Debug, Clone, Copy)]
pub struct RegClass(pub pg_sys::Oid);

impl FromDatum for RegClass {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null {
            None
        } else {
            unsafe { pg_sys::Oid::from_datum(datum, false) }.map(RegClass)
        }
    }
}

impl IntoDatum for RegClass {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(pg_sys::Datum::from(self.0))
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::REGCLASSOID
    }
}

unsafe impl<'fcx> ArgAbi<'fcx> for RegClass {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        unsafe { arg.unbox_arg_using_from_datum() }
            .unwrap_or_else(|| panic!("argument {index} must not be null"))
    }

    unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Self> {
        unsafe { arg.unbox_arg_using_from_datum() }.into()
    }
}

unsafe impl SqlTranslatable for RegClass {
    const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!(RegClass);
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> =
        Ok(SqlMappingRef::literal("regclass"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> =
        Ok(ReturnsRef::One(SqlMappingRef::literal("regclass")));
}

impl RegClass {
    pub fn oid(self) -> pg_sys::Oid {
        self.0
    }

    /// The OID, checked to name an ordinary or partitioned table (42P01 when it names nothing,
    /// 42809 when it is not a table).
    pub fn table(self, client: &SpiClient) -> Result<pg_sys::Oid, RetentionError> {
        let kind = client
            .select(
                "SELECT relkind::text FROM pg_catalog.pg_class WHERE oid = $1",
                Some(1),
                &[self.0.into()],
            )?
            .next()
            .map(|r| r.get::<String>(1))
            .transpose()?
            .flatten();
        match kind.as_deref() {
            None => Err(RetentionError::UnknownTable(u32::from(self.0))),
            Some("r") | Some("p") => Ok(self.0),
            Some(_) => Err(RetentionError::WrongObjectType(relation_name(
                client, self.0,
            )?)),
        }
    }
}

/// The relation's name as users see it (regclass output).
pub fn relation_name(client: &SpiClient, oid: pg_sys::Oid) -> Result<String, RetentionError> {
    Ok(client
        .select("SELECT $1::regclass::text", Some(1), &[oid.into()])?
        .first()
        .get_one::<String>()?
        .unwrap_or_default())
}
