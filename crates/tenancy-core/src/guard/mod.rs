//! Min-N guarded aggregates: the arithmetic, with no PostgreSQL in it.
//!
//! A guarded aggregate shows its value only when enough distinct contributors (people) stand
//! behind it and, for the pooled forms, enough tenants, none of them dominating. This module
//! holds everything that decides that — the capped contributor sets, the per-tenant tallies,
//! the decision, exact decimal sums and percentile interpolation — together with the byte
//! format the states travel in between parallel workers. `src/guard.rs` only moves datums in
//! and out.
//!
//! Every approximation errs toward suppression: contributor hashes can only merge two people
//! into one (fewer contributors, never more), a tenant past its exact-tracking limit counts as
//! exactly that limit toward totals and residuals and as all of its rows toward its own share.

mod decide;
mod hash;
mod numeric;
mod set;
mod state;
mod wire;

pub use decide::{decide, Status, TenantTally, Thresholds, Weighting};
pub use hash::{hash_bytes, hash_i64, hash_tenant, hash_uuid, Key};
pub use numeric::{DecimalSum, NumericView, Special};
pub use set::CappedSet;
pub use state::{DecodeError, State, ValueAcc, ValueKind};
pub use wire::Reader;

/// Interpolates like PostgreSQL's `percentile_cont`: `sorted` is ascending and non-empty,
/// `fraction` in [0, 1].
pub fn percentile_cont(sorted: &[f64], fraction: f64) -> f64 {
    debug_assert!(!sorted.is_empty());
    let pos = fraction * (sorted.len() - 1) as f64;
    let first = pos.floor();
    let second = pos.ceil();
    let lo = sorted[first as usize];
    if first == second {
        return lo;
    }
    let hi = sorted[second as usize];
    // float8_lerp: lo + (hi - lo) * proportion.
    lo + (hi - lo) * (pos - first)
}

/// `guarded_percentile`'s value, or `None` when it would stand at the edge of the crowd: the
/// interpolated result is shown only when at least `min_n` distinct contributors have a value
/// at or below it and at least `min_n` at or above it. Without this rule the fractions 0 and 1
/// return the minimum and the maximum, one person's exact value (and 0.99 over a hundred
/// people is nearly the top earner's). Sorts `values` ascending in place.
///
/// `residual` is the number of contributors one tenant may hold in the pooled forms (the
/// largest tenant's upper bound; 0 for the plain forms): each side then needs `min_n` people
/// beyond it, so a tenant that adds its own known values on one side (to stand in for the
/// crowd) and subtracts them from the interpolation still faces `min_n` other people there.
pub fn percentile_guarded(
    values: &mut [(f64, Key)],
    fraction: f64,
    min_n: u32,
    residual: u64,
) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let need = u64::from(min_n.max(1)).saturating_add(residual);
    let Ok(need) = u32::try_from(need) else {
        return None;
    };
    values.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let sorted: Vec<f64> = values.iter().map(|v| v.0).collect();
    let r = percentile_cont(&sorted, fraction);
    let enough = |side: &mut dyn Iterator<Item = &(f64, Key)>| {
        let mut seen = CappedSet::new(need);
        for (_, k) in side {
            seen.insert(*k);
            if seen.is_full() {
                return true;
            }
        }
        false
    };
    // NaN compares false both ways: a NaN value stands on neither side, and a NaN result has
    // nobody beside it and is not shown.
    let below = enough(&mut values.iter().filter(|v| v.0 <= r));
    let above = enough(&mut values.iter().rev().filter(|v| v.0 >= r));
    (below && above).then_some(r)
}

#[cfg(test)]
mod tests;
