//! `#[pg_test]`s against a real server, one module per thing they prove, sharing `fixture`.
//! Each test runs in its own rolled-back transaction, in parallel with the others, as a
//! superuser: every test uses its own object names and switches to a plain role
//! (`SET LOCAL ROLE`) before asserting anything about isolation. `attack_*` modules try the
//! attack classes of docs/security.md; the others prove one domain each (context, identity,
//! protection, check, guard, audit, lifecycle, deid) and `hostile` the credential parsers.

mod attack_checker;
mod attack_guard;
mod attack_owner_code;
mod attack_protection;
mod attack_resources;
mod attack_review;
mod attack_sql_strings;
mod attack_support_audit;
mod attack_tiers;
mod audit;
mod check;
mod context;
mod dba_first_week;
mod dba_operations;
mod deid;
pub mod fixture;
mod guard;
mod hostile;
mod identity;
mod jobs;
mod lifecycle;
mod organizations;
mod protection;
mod scale;
