//! Pure logic of pg_tenancy: token parsing and verification, the signed context carrier,
//! API key shapes and identifier rules. No PostgreSQL dependency, so all of it is unit-tested
//! and fuzzable on its own. Nothing here panics on any input.

pub mod alg;
pub mod apikey;
pub mod audit;
pub mod b64;
pub mod carrier;
pub mod claims;
pub mod deid;
pub mod guard;
pub mod ident;
mod json;
pub mod jwt;
#[cfg(any(test, feature = "oracle"))]
pub mod oracle;
pub mod refusal;

pub use alg::Alg;
pub use carrier::{Context, Source};
pub use claims::{Identity, Rules};
pub use jwt::{Header, Token};
pub use refusal::Refusal;

/// Longest token, API key or carrier accepted, checked before any other work.
pub const MAX_TOKEN_BYTES: usize = 8192;
