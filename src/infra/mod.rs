//! Infrastructure every domain stands on, and that knows no domain: errors and their
//! SQLSTATEs, the `tenancy.*` settings, SPI and catalog reads, random bytes, and acting as the
//! extension's or a table's owner for one step. Nothing here imports from outside `infra`.

pub mod args;
pub mod catalog;
pub mod errors;
pub mod gucs;
pub mod owner;
pub mod random;
pub mod roles;
pub mod spi;
