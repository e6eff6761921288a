//! Dropping the extension's own triggers from a table.

use crate::error::RetentionError;
use pgrx::spi::{quote_identifier, SpiClient};

/// Drops those of the triggers `names` that `table` (regclass text) has; returns nothing to
/// do when it has none of them.
pub fn drop_present(
    client: &mut SpiClient,
    table: &str,
    names: &[&str],
) -> Result<(), RetentionError> {
    let present: Vec<String> = client
        .select(
            "SELECT tgname::text FROM pg_catalog.pg_trigger
              WHERE tgrelid = $1::regclass AND tgname = ANY($2)",
            None,
            &[table.into(), names.to_vec().into()],
        )?
        .map(|r| r.get::<String>(1).map(Option::unwrap_or_default))
        .collect::<Result<_, _>>()?;
    for trigger in present {
        let name = quote_identifier(&trigger);
        client.update(&format!("DROP TRIGGER {name} ON {table}"), None, &[])?;
    }
    Ok(())
}
