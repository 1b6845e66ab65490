//! De-identification: keyed pseudonyms, generalisation helpers, k-anonymity checks.

pub mod generalize;
pub mod kanon;
pub mod pseudonym;
