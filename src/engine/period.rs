//! Retention periods and windows as intervals: the zero period, and the bounds every period
//! a caller gives must keep (invariant 4: never negative, never absurd).

use crate::error::RetentionError;
use pgrx::datum::Interval;

/// The longest period a category or tenant policy may keep data: anything longer is a typo.
const MAX_YEARS: i32 = 1000;

/// How long a data subject's export or erasure request may take: one month (GDPR Art. 12(3)),
/// counted as 30 days from receipt. Extensions are request_extension.rs.
pub const REQUEST_DEADLINE: &str = "30 days";

/// The zero interval.
pub fn zero() -> Interval {
    Interval::from_micros(0)
}

/// Rejects negative and absurd periods (invariant 4).
pub fn check_interval(what: &str, value: &Interval) -> Result<(), RetentionError> {
    if value.months() < 0 || value.days() < 0 || value.micros() < 0 {
        return Err(RetentionError::InvalidValue(format!(
            "{what} must not be negative"
        )));
    }
    let years = value.months() as f64 / 12.0
        + (value.days() as f64 + value.micros() as f64 / 86_400_000_000.0) / 365.25;
    if years > MAX_YEARS as f64 {
        return Err(RetentionError::InvalidValue(format!(
            "{what} must not exceed {MAX_YEARS} years"
        )));
    }
    Ok(())
}
