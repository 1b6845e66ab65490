//! pg_tenancy: tenant isolation as a guarantee of the database.
//!
//! The crate is the PostgreSQL-facing half; pure logic (token parsing, the context carrier,
//! identifier rules) lives in `crates/tenancy-core` so it can be unit-tested and fuzzed
//! without a server.

use pgrx::prelude::*;

// Domains are layers: each imports only from the layers before it on this line (checked by
// scripts/check-layers.py in `make lint`; rustfmt sorts the `mod` lines below, so the order
// lives here).
// layers: infra registry context audit jobs identity protection scale checker guard deid lifecycle install
mod audit;
mod checker;
mod context;
mod deid;
mod guard;
mod identity;
mod infra;
mod jobs;
mod lifecycle;
mod protection;
mod registry;
mod scale;

// The order of the hand-written sql/ files in the install script.
mod install;

#[cfg(any(test, feature = "pg_test"))]
mod tests;

::pgrx::pg_module_magic!(name, version);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    context::setting::init();
    // Before gucs::init reserves the `tenancy` prefix, like the carrier's setting.
    scale::routing::init();
    infra::gucs::init();
    registry::cache::init();
    audit::support::init();
    jobs::init();
    context::stats::init();
}

/// Required by `cargo pgrx test`; the cluster settings live in pgrx-config/test.conf so that
/// the test suites, the regress suite and the demo share one source.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        include_str!("../pgrx-config/test.conf")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    }
}
