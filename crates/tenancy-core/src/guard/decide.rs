//! The decision: show the value, or say why not.

/// The thresholds in force for one group.
#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    pub min_n: u32,
    pub min_tenants: u32,
    pub max_share: f64,
}

/// Why a cell is blank (or that it is not). The order of the checks is the order here.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Status {
    Ok,
    TooFewContributors,
    TooFewTenants,
    Dominated,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::TooFewContributors => "too_few_contributors",
            Status::TooFewTenants => "too_few_tenants",
            Status::Dominated => "dominated",
        }
    }
}

/// One tenant's part of a pooled group: distinct contributors between `lo` and `hi` (equal
/// while the tenant is tracked exactly), and the sum of |value| for sums.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TenantTally {
    pub lo: u64,
    pub hi: u64,
    pub weight: f64,
}

/// What a tenant's weight is measured in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Weighting {
    /// Share of distinct contributors (count, avg, percentile, guard_status).
    Contributors,
    /// Share of the sum of absolute values (sum).
    AbsoluteSum,
    /// Both shares (avg): an average is its sum divided by its count, so a sum dominated by
    /// one tenant's magnitudes dominates the average just as much, and an average shown beside
    /// the count would give back the suppressed sum.
    Both,
}

/// Plain forms: `tenants` is `None` and `count` the distinct contributors seen (capped).
/// Pooled forms: `tenants` holds every tenant with at least one contributor.
///
/// Pooled checks, in order: at least `min_n` contributors in all (lower bounds); at least
/// `min_tenants` tenants; no tenant over `max_share` (its upper bound against everyone
/// else's lower bound); and after removing the largest tenant at least `min_n` contributors
/// remain (the residual rule: a tenant that subtracts its own part must still face a crowd).
pub fn decide(
    count: u64,
    tenants: Option<&[TenantTally]>,
    th: &Thresholds,
    w: Weighting,
) -> Status {
    let min_n = u64::from(th.min_n);
    let Some(tenants) = tenants else {
        return if count < min_n {
            Status::TooFewContributors
        } else {
            Status::Ok
        };
    };
    let total_lo: u64 = tenants.iter().map(|t| t.lo).sum();
    if total_lo < min_n {
        return Status::TooFewContributors;
    }
    if (tenants.len() as u64) < u64::from(th.min_tenants) {
        return Status::TooFewTenants;
    }
    let weight_total: f64 = tenants.iter().map(|t| t.weight).sum();
    let by_weight = w != Weighting::Contributors && weight_total != 0.0;
    let by_people = w != Weighting::AbsoluteSum || !by_weight;
    if by_weight && !weight_total.is_finite() {
        // NaN or infinite magnitudes: no share can be established, so none is shown.
        return Status::Dominated;
    }
    for t in tenants {
        let by_magnitude = by_weight && t.weight > th.max_share * weight_total;
        let rest = total_lo - t.lo;
        let by_count = by_people && t.hi as f64 > th.max_share * (t.hi + rest) as f64;
        let dominated = by_magnitude || by_count;
        if dominated {
            return Status::Dominated;
        }
    }
    let largest = tenants.iter().map(|t| t.lo).max().unwrap_or(0);
    if total_lo - largest < min_n {
        return Status::TooFewContributors;
    }
    Status::Ok
}
