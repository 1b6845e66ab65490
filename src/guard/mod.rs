//! Min-N guarded aggregates over pooled people data, and the benchmark views built on them:
//! PostgreSQL's side of `tenancy_core::guard` (the decisions live there, tested without a
//! server).

pub mod aggregates;
pub mod benchmark;
