//! Generalisation helpers: numeric bands and their labels, dates truncated to a month, quarter
//! or year, age bands. All IMMUTABLE and PARALLEL SAFE, on plain SQL types, callable by
//! everyone. (`tenancy.top_code` is plain SQL, in sql/deid.sql.)

use pgrx::datum::{Date, Range, RangeBound};
use pgrx::prelude::*;
use pgrx::AnyNumeric;
use tenancy_core::deid::{self, DateUnit};

use crate::infra::errors;

fn finite(n: &AnyNumeric) -> bool {
    !n.is_nan() && !n.normalize().ends_with("Infinity")
}

fn check_finite(what: &str, n: &AnyNumeric) {
    if !finite(n) {
        errors::bad_argument(format!("{what} must be a finite number"), None);
    }
}

/// `(lower, upper)` of the band of `value`; `upper` is `None` for the open top band.
fn numeric_band(
    value: &AnyNumeric,
    width: &AnyNumeric,
    top: Option<&AnyNumeric>,
) -> (AnyNumeric, Option<AnyNumeric>) {
    check_finite("value", value);
    check_finite("width", width);
    if *width <= AnyNumeric::from(0) {
        errors::bad_argument(
            "width must be greater than zero".into(),
            Some("for example tenancy.band(salary, 10000)"),
        );
    }
    if let Some(top) = top {
        check_finite("top", top);
        if value >= top {
            return (top.clone(), None);
        }
    }
    // numeric % is exact and takes the sign of the dividend: step down once more for
    // negative values so that bands are [k*width, (k+1)*width).
    let rem = value.clone() % width.clone();
    let mut lower = value.clone() - rem.clone();
    if rem < AnyNumeric::from(0) {
        lower -= width.clone();
    }
    let mut upper = lower.clone() + width.clone();
    if let Some(top) = top {
        if upper > *top {
            upper = top.clone();
        }
    }
    (lower, Some(upper))
}

/// The band `[k*width, (k+1)*width)` that contains `value`; with `top`, values at or above it
/// fall in the open band `[top,)` and the band below is cut at `top`.
#[pg_extern(immutable, parallel_safe)]
fn band(
    value: Option<AnyNumeric>,
    width: Option<AnyNumeric>,
    top: default!(Option<AnyNumeric>, "NULL"),
) -> Option<Range<AnyNumeric>> {
    let (value, width) = (value?, width?);
    let (lower, upper) = numeric_band(&value, &width, top.as_ref());
    Some(match upper {
        Some(u) => Range::new(lower, RangeBound::Exclusive(u)),
        None => Range::new(lower, RangeBound::Infinite),
    })
}

/// The band of `value` as a short label: `50k–60k` (the upper end is excluded), `200k+` for
/// the open top band.
#[pg_extern(immutable, parallel_safe)]
fn band_label(
    value: Option<AnyNumeric>,
    width: Option<AnyNumeric>,
    top: default!(Option<AnyNumeric>, "NULL"),
) -> Option<String> {
    let (value, width) = (value?, width?);
    let (lower, upper) = numeric_band(&value, &width, top.as_ref());
    let label = match upper {
        Some(u) => deid::band_label(lower.normalize(), u.normalize()),
        None => deid::compact_number(lower.normalize()).map(|l| format!("{l}+")),
    };
    Some(label.unwrap_or_else(|| errors::internal("band label", "bound is not a plain decimal")))
}

/// The first day of the month, quarter or year that contains `value`.
#[pg_extern(immutable, parallel_safe)]
fn generalize_date(value: Date, unit: default!(&str, "'month'")) -> Date {
    let Some(unit) = DateUnit::parse(unit) else {
        errors::bad_argument(
            format!("unknown date unit {}", errors::quoted(unit)),
            Some("use 'month', 'quarter' or 'year'"),
        )
    };
    if !value.is_finite() {
        return value;
    }
    let (y, m) = unit.truncate(value.year(), value.month());
    Date::new(y, m, 1).unwrap_or_else(|e| errors::internal("generalising a date", e))
}

/// The age band `[k*width, (k+1)*width)` of someone born on `birth`, on `reference` (completed
/// years; a 29 February birthday completes on 1 March in common years). With `top`, ages at or
/// above it fall in the open band `[top,)`.
#[pg_extern(immutable, parallel_safe)]
fn age_band(
    birth: Option<Date>,
    reference: Option<Date>,
    width: default!(Option<i32>, 10),
    top: default!(Option<i32>, "NULL"),
) -> Option<Range<i32>> {
    let (birth, reference, width) = (birth?, reference?, width?);
    if !birth.is_finite() || !reference.is_finite() {
        errors::bad_argument("birth and reference dates must be finite".into(), None);
    }
    if width < 1 {
        errors::bad_argument("width must be at least 1 year".into(), None);
    }
    let age = deid::completed_years(
        (birth.year(), birth.month(), birth.day()),
        (reference.year(), reference.month(), reference.day()),
    );
    if age < 0 {
        errors::bad_argument("the birth date is after the reference date".into(), None);
    }
    if let Some(top) = top {
        if top < 0 {
            errors::bad_argument("top must not be negative".into(), None);
        }
        if age >= i64::from(top) {
            return Some(Range::new(top, RangeBound::Infinite));
        }
    }
    let Some((lower, mut upper)) = deid::band_i64(age, i64::from(width)) else {
        errors::bad_argument("age band out of range".into(), None)
    };
    if let Some(top) = top {
        upper = upper.min(i64::from(top));
    }
    let (Ok(lower), Ok(upper)) = (i32::try_from(lower), i32::try_from(upper)) else {
        errors::bad_argument("age band out of range".into(), None)
    };
    Some(Range::new(lower, RangeBound::Exclusive(upper)))
}
