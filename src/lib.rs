//! pg_tenancy: tenant isolation as a guarantee of the database.
//!
//! The crate is the PostgreSQL-facing half; pure logic (token parsing, the context carrier,
//! identifier rules) lives in `crates/tenancy-core` so it can be unit-tested and fuzzed
//! without a server.

use pgrx::prelude::*;

mod apikeys;
mod audit;
mod benchmark;
mod cache;
mod catalog;
mod check;
mod context;
mod ddl_guard;
mod errors;
mod features;
mod generalize;
mod guard;
mod gucs;
mod kanon;
mod keys;
mod lifecycle;
mod limits;
mod owner;
mod policy;
mod protect;
mod pseudonym;
mod quota;
mod registry;
mod scoping;
mod session_objects;
mod spi_util;
mod stats;
mod support;
mod tenants;

#[cfg(any(test, feature = "pg_test"))]
mod test_support;
#[cfg(any(test, feature = "pg_test"))]
mod tests;
#[cfg(any(test, feature = "pg_test"))]
mod tests_attack_checker;
#[cfg(any(test, feature = "pg_test"))]
mod tests_attack_guard;
#[cfg(any(test, feature = "pg_test"))]
mod tests_attack_owner_code;
#[cfg(any(test, feature = "pg_test"))]
mod tests_attack_protection;
#[cfg(any(test, feature = "pg_test"))]
mod tests_attack_resources;
#[cfg(any(test, feature = "pg_test"))]
mod tests_attack_sql_strings;
#[cfg(any(test, feature = "pg_test"))]
mod tests_attack_support_audit;
#[cfg(any(test, feature = "pg_test"))]
mod tests_attack_tiers;
#[cfg(any(test, feature = "pg_test"))]
mod tests_audit;
#[cfg(any(test, feature = "pg_test"))]
mod tests_check;
#[cfg(any(test, feature = "pg_test"))]
mod tests_deid;
#[cfg(any(test, feature = "pg_test"))]
mod tests_guard;
#[cfg(any(test, feature = "pg_test"))]
mod tests_hostile;
#[cfg(any(test, feature = "pg_test"))]
mod tests_lifecycle;
#[cfg(any(test, feature = "pg_test"))]
mod tests_protection;

::pgrx::pg_module_magic!(name, version);

extension_sql_file!(
    "../sql/bootstrap.sql",
    name = "tenancy_bootstrap",
    bootstrap
);
extension_sql_file!(
    "../sql/check.sql",
    name = "tenancy_check",
    requires = ["tenancy_bootstrap", "tenancy_guard"]
);
extension_sql_file!(
    "../sql/lifecycle.sql",
    name = "tenancy_lifecycle",
    requires = ["tenancy_bootstrap"]
);
extension_sql_file!(
    "../sql/audit.sql",
    name = "tenancy_audit",
    requires = ["tenancy_bootstrap"]
);
extension_sql_file!("../sql/roles.sql", name = "tenancy_roles", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::init();
    cache::init();
    stats::init();
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
