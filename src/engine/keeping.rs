//! Whether a hold keeps a row from a path that acts outside a purge batch (customer deletion,
//! restore, erasure, reapply, tagging, cascades): a hold on the row itself, or on one of its
//! parent-bound descendants (which go with it).

use crate::engine::children::{children, MAX_DEPTH};
use crate::engine::holds::Hold;
use crate::engine::holds::{self, active_for, any_covers_sql};
use crate::engine::managed::Child;
use crate::engine::managed::Managed;
use crate::engine::rowset::RowSet;
use crate::error::RetentionError;
use crate::pg::locks::{take_lock, LockKey};
use crate::pg::params::Params;
use pgrx::spi::{quote_identifier, SpiClient};

/// Takes the shared hold lock and returns SQL over row alias `t` that is true when no active
/// hold covers the row (nor a parent-bound descendant): every path that alters rows outside a
/// purge batch adds it.
pub fn unheld_sql(
    client: &mut SpiClient,
    table: &Managed,
    params: &mut Params,
) -> Result<String, RetentionError> {
    Ok(match covered_sql(client, table, params)? {
        Some(covered) => format!("NOT {covered}"),
        None => "true".into(),
    })
}

/// Takes the shared hold lock and returns SQL over row alias `t` that is true when an active
/// hold covers the row or one of its parent-bound descendants (None: nothing can be held).
pub fn covered_sql(
    client: &mut SpiClient,
    table: &Managed,
    params: &mut Params,
) -> Result<Option<String>, RetentionError> {
    take_lock(LockKey::Holds, false)?;
    let held = active_for(client, table)?;
    let category = table.category_sql(params);
    let mut terms: Vec<String> = any_covers_sql(&held, table, None, &category, params)
        .into_iter()
        .collect();
    terms.extend(held_descendant_sql(client, table, params, None)?);
    Ok(if terms.is_empty() {
        None
    } else {
        Some(format!("({})", terms.join(" OR ")))
    })
}

/// SQL over row alias `t` of `table`: true when a held row descends from it. None when the
/// table has no parent-bound children. Holds are read with a fresh snapshot (purge batches).
///
/// `shard`, for a Citus distributed table, is the placeholder of the distribution-key value
/// the statement is limited to: each child's rows are limited to it too (children are
/// co-located), so that Citus routes the whole statement, locks included, to one shard.
pub fn held_descendant_sql(
    client: &mut SpiClient,
    table: &Managed,
    params: &mut Params,
    shard: Option<&str>,
) -> Result<Option<String>, RetentionError> {
    let terms = Terms {
        reading: Reading::Fresh,
        answer: Answer::Exists,
        shard,
    };
    Ok(descendant_terms(client, table, params, 0, terms)?
        .map(|terms| format!("({})", terms.join(" OR "))))
}

/// SQL over row alias `t` of `table`: the id of a hold on one of its descendants, or NULL
/// (previews and dry runs: holds read in the statement's snapshot, standby included). None
/// when the table has no parent-bound children.
pub fn descendant_hold_sql(
    client: &mut SpiClient,
    table: &Managed,
    params: &mut Params,
) -> Result<Option<String>, RetentionError> {
    let terms = Terms {
        reading: Reading::Snapshot,
        answer: Answer::HoldId,
        shard: None,
    };
    Ok(descendant_terms(client, table, params, 0, terms)?
        .map(|terms| format!("coalesce({})", terms.join(", "))))
}

#[derive(Clone, Copy)]
enum Reading {
    Fresh,
    Snapshot,
}

#[derive(Clone, Copy)]
enum Answer {
    /// Boolean terms: a held descendant exists.
    Exists,
    /// Bigint terms: the id of a hold on a descendant, or NULL.
    HoldId,
}

/// What descendant terms are built for: how holds are read, what a term answers, and the
/// distribution-key placeholder (see [`held_descendant_sql`]).
#[derive(Clone, Copy)]
struct Terms<'s> {
    reading: Reading,
    answer: Answer,
    shard: Option<&'s str>,
}

/// One term per parent-bound child through which a held row can descend from `t`.
fn descendant_terms(
    client: &mut SpiClient,
    table: &Managed,
    params: &mut Params,
    depth: usize,
    terms_of: Terms,
) -> Result<Option<Vec<String>>, RetentionError> {
    let Terms {
        reading,
        answer,
        shard,
    } = terms_of;
    if depth >= MAX_DEPTH {
        return Ok(None);
    }
    let mut terms = Vec::new();
    for child in children(client, table)? {
        let held = match reading {
            Reading::Fresh => holds::active_for(client, &child.table)?,
            Reading::Snapshot => holds::active_for_reading(client, &child.table)?,
        };
        let below = Below {
            child,
            held,
            category: child.table.category_sql(params),
            deeper: descendant_terms(client, &child.table, params, depth + 1, terms_of)?,
            shard,
        };
        terms.extend(match answer {
            Answer::Exists => below.exists_term(params),
            Answer::HoldId => below.hold_id_term(params),
        });
    }
    Ok((!terms.is_empty()).then_some(terms))
}

/// One parent-bound child of `t`, its holds, and the terms of its own descendants.
struct Below<'a> {
    child: &'a Child,
    held: Vec<Hold>,
    /// The child row's category expression.
    category: String,
    deeper: Option<Vec<String>>,
    /// The distribution-key placeholder the child's rows are limited to.
    shard: Option<&'a str>,
}

impl Below<'_> {
    /// The child's rows referencing `t`, for a lateral join: the parent's referenced values
    /// go through `p` so that the child can be `t` inside.
    fn referencing(&self) -> (String, RowSet) {
        let parent_values: Vec<String> = (self.child.parent_columns.iter().enumerate())
            .map(|(i, c)| format!("t.{} AS v{i}", quote_identifier(c)))
            .collect();
        let join: Vec<String> = (self.child.fk_columns.iter().enumerate())
            .map(|(i, c)| format!("t.{} = p.v{i}", quote_identifier(c)))
            .collect();
        let mut rows = RowSet::of(&self.child.table).filter(join.join(" AND "));
        if let (Some(dist), Some(value)) = (&self.child.table.distribution, self.shard) {
            rows = rows.filter(format!(
                "t.{} = {value}::{}",
                quote_identifier(&dist.column),
                dist.type_name
            ));
        }
        (parent_values.join(", "), rows)
    }

    /// Boolean: a held row descends from `t` through this child.
    fn exists_term(self, params: &mut Params) -> Option<String> {
        let table = &self.child.table;
        let mut covered: Vec<String> =
            holds::any_covers_sql(&self.held, table, None, &self.category, params)
                .into_iter()
                .collect();
        covered.extend(self.deeper.as_ref().map(|d| d.join(" OR ")));
        if covered.is_empty() {
            return None;
        }
        let (parent_values, rows) = self.referencing();
        let held_below = rows
            .filter(format!("({})", covered.join(" OR ")))
            .limit("1".into());
        Some(format!(
            "EXISTS (SELECT 1 FROM (SELECT {parent_values}) AS p CROSS JOIN LATERAL ({}) AS held)",
            held_below.select("1")
        ))
    }

    /// Bigint: the id of a hold on a row descending from `t` through this child, or NULL.
    fn hold_id_term(self, params: &mut Params) -> Option<String> {
        let table = &self.child.table;
        let whens: Vec<String> = (self.held.iter())
            .filter_map(|h| {
                holds::covers_sql(h, table, None, &self.category, params)
                    .map(|covers| format!("WHEN {covers} THEN {}::bigint", h.id))
            })
            .collect();
        let deeper = self
            .deeper
            .as_ref()
            .map(|d| format!("coalesce({})", d.join(", ")));
        let id = match (whens.is_empty(), deeper) {
            (true, None) => return None,
            (true, Some(deeper)) => deeper,
            (false, deeper) => format!(
                "CASE {} {} END",
                whens.join(" "),
                deeper.map(|d| format!("ELSE {d}")).unwrap_or_default()
            ),
        };
        let (parent_values, rows) = self.referencing();
        Some(format!(
            "(SELECT held.id FROM (SELECT {parent_values}) AS p CROSS JOIN LATERAL ({}) AS held
              WHERE held.id IS NOT NULL LIMIT 1)",
            rows.select(&format!("{id} AS id"))
        ))
    }
}
