//! No context on a connection that carries temporary relations or types from an earlier
//! transaction.
//!
//! Behind a transaction pooler one server connection serves many clients in turn. PostgreSQL
//! looks up relation and type names in `pg_temp` before any other schema, so a temporary view
//! or table left by one client (an injection under tenant A) shadows the unqualified table
//! names of the next client's queries (tenant B): A's view then runs inside B's transaction,
//! with B's context, and can copy B's rows or B's carrier into a temporary table that A reads
//! later. Row level security cannot see this: every row it returns is B's, to B. So a context
//! is refused (55000) while such objects exist, when the carrier is assigned (the
//! `tenancy.context` check hook in gucs.rs: every setter, `SET`, `SET LOCAL`, `set_config()`),
//! before any statement of the transaction can name such an object. Objects created in the
//! current transaction (`ON COMMIT DROP` work tables, for one) are the transaction's own and
//! stay allowed; so are those a session context made after it was set (its own tenant's).
//! Temporary functions and operators need no check: PostgreSQL never finds them by an
//! unqualified name.

use pgrx::prelude::*;

use crate::infra::errors::{self, SpiOrBug};

/// The name of a temporary relation or type that an earlier transaction created, if this
/// backend's temporary schema holds one. Free for backends that never created a temporary
/// object.
pub fn leftover() -> Option<String> {
    let mut temp = pg_sys::InvalidOid;
    let mut toast = pg_sys::InvalidOid;
    // SAFETY: reads two backend globals into locals.
    unsafe { pg_sys::GetTempNamespaceState(&mut temp, &mut toast) };
    if temp == pg_sys::InvalidOid {
        return None;
    }
    let xmins: Vec<(String, u32)> = crate::infra::spi::pinned(|| {
        Spi::connect(|c| {
            c.select(
                "SELECT c.relname::pg_catalog.text, c.xmin::pg_catalog.text::pg_catalog.int8, 0 AS kind
               FROM pg_catalog.pg_class c
              WHERE c.relnamespace OPERATOR(pg_catalog.=) $1
             UNION ALL
             -- Array types and the row types of relations come with what they belong to.
             SELECT t.typname::pg_catalog.text, t.xmin::pg_catalog.text::pg_catalog.int8, 1
               FROM pg_catalog.pg_type t
              WHERE t.typnamespace OPERATOR(pg_catalog.=) $1
                AND t.typelem OPERATOR(pg_catalog.=) 0 AND t.typrelid OPERATOR(pg_catalog.=) 0
              ORDER BY 3, 1",
                None,
                &[temp.into()],
            )?
            .map(|r| {
                Ok((
                    r.get::<String>(1)?.unwrap_or_default(),
                    r.get::<i64>(2)?.unwrap_or_default() as u32,
                ))
            })
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
        })
    })
    .or_bug("reading this session's temporary objects");
    // SAFETY: TransactionIdIsCurrentTransactionId only reads transaction state; true for the
    // top-level transaction and its live subtransactions.
    xmins
        .into_iter()
        .find(|(_, xid)| unsafe {
            !pg_sys::TransactionIdIsCurrentTransactionId(pg_sys::TransactionId::from_inner(*xid))
        })
        .map(|(name, _)| name)
}

pub const HINT: &str = "create temporary tables ON COMMIT DROP, or run DISCARD TEMP (poolers: server_reset_query = DISCARD ALL) before setting a context";

/// The refusal's text for a leftover named `name`.
pub fn message(name: &str) -> String {
    format!(
        "this connection holds temporary objects from an earlier transaction (pg_temp.{}), which could stand in for the tables a tenant's queries name",
        errors::user_input(name)
    )
}
