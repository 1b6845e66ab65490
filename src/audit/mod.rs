//! Who did what for whom: the hash-chained audit trail and its verification, and support
//! access (a support engineer entering one tenant, for a while, with every step recorded).

pub mod support;
pub mod trail;
