//! The read side of the registry: what a backend knows about tenants, signing keys, API keys,
//! plans, support sessions and protected tables, read from the `tenancy.*` tables and cached per backend until a
//! registry change says otherwise. Writing the registry is `identity`'s job; this layer sits
//! below the context so that verifying a credential needs nothing above it.

pub mod cache;
pub mod lookup;
pub mod plans;
pub mod protected_tables;
