//! Isolation of tenant tables: `protect()` and the policies it generates (`policy`, the one
//! place that writes isolation expressions), keys
//! scoped to the tenant, feature gates, row quotas, and the DDL guard that keeps a protected
//! table protected.

pub mod ddl_guard;
pub mod features;
pub mod own_ddl;
pub mod policy;
pub mod protect;
pub mod quota;
pub mod scoping;
