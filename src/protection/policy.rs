//! The one place that writes isolation expressions.
//!
//! Single node: `col = (SELECT tenancy.current_tenant_uuid())`: the sub-select becomes an
//! InitPlan evaluated once per statement and compared inside the index condition. Citus
//! rejects sub-selects in policies of distributed tables, so there the bare call is used,
//! which is why the getters cost next to nothing per call.
//!
//! The getter matches the column's type so no cast runs per row and the comparison uses the
//! column's own btree operator: uuid columns get the uuid getter, integer columns the bigint
//! getter (int2/int4 = int8 is in the same btree operator family), text and varchar the text
//! getter; anything else casts the text tenant to the column's type.

use pgrx::pg_sys;
use pgrx::spi::quote_identifier;

use crate::infra::errors::SpiOrBug;
use crate::infra::spi;
use crate::registry::cache;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Getter {
    Text,
    Uuid,
    Int8,
    /// `current_tenant()` cast to the column's type.
    Cast,
}

/// Why a tenant column's type cannot be protected: two distinct tenant ids would match the same
/// stored value (or one id would match two values), so one tenant would read another's rows.
pub struct Aliasing {
    pub reason: &'static str,
}

impl Getter {
    /// The getter for a tenant column whose type is `base_type_oid` (below any domain), or why
    /// it is refused. Only types where a valid tenant id maps to exactly one column value and
    /// back are accepted: text and varchar compare the id as text (no cast, so no truncation)
    /// under a deterministic collation; uuid and the integer types are compared with getters
    /// that accept only the canonical spelling ('077', '+7', 'ABC…' uppercase give NULL).
    /// Everything else has several spellings of one value (numeric '77' = '077' = '7.7e1',
    /// float, money), truncates (character(n), name) or folds case (citext), and is refused.
    pub fn for_tenant_column(
        base_type_oid: pg_sys::Oid,
        deterministic: bool,
    ) -> Result<Getter, Aliasing> {
        match base_type_oid {
            pg_sys::TEXTOID | pg_sys::VARCHAROID if !deterministic => Err(Aliasing {
                reason: "its collation is nondeterministic, so distinct tenant ids such as 'ACME' and 'acme' can compare equal",
            }),
            pg_sys::TEXTOID | pg_sys::VARCHAROID => Ok(Getter::Text),
            pg_sys::UUIDOID => Ok(Getter::Uuid),
            pg_sys::INT8OID | pg_sys::INT4OID | pg_sys::INT2OID => Ok(Getter::Int8),
            pg_sys::BPCHAROID | pg_sys::NAMEOID | pg_sys::CHAROID => Err(Aliasing {
                reason: "a longer tenant id is cut to the column's length, so distinct tenant ids can become one value",
            }),
            pg_sys::NUMERICOID | pg_sys::FLOAT4OID | pg_sys::FLOAT8OID | pg_sys::MONEYOID => Err(Aliasing {
                reason: "one value has many spellings ('77', '077', '77.0', '7.7e1'), so distinct tenant ids can read each other's rows",
            }),
            _ => Err(Aliasing {
                reason: "pg_tenancy cannot prove that distinct tenant ids stay distinct in this type",
            }),
        }
    }

    pub fn for_type(type_oid: pg_sys::Oid) -> Getter {
        match type_oid {
            pg_sys::TEXTOID | pg_sys::VARCHAROID => Getter::Text,
            pg_sys::UUIDOID => Getter::Uuid,
            pg_sys::INT8OID | pg_sys::INT4OID | pg_sys::INT2OID => Getter::Int8,
            _ => Getter::Cast,
        }
    }

    /// The getter an organization context's predicate compares with (`col = ANY (...)`,
    /// scale::organizations): the tenant and its descendants, as an array of the same type.
    pub fn subtree_call(self) -> &'static str {
        match self {
            Getter::Text | Getter::Cast => "tenancy.current_subtree",
            Getter::Uuid => "tenancy.current_subtree_uuid",
            Getter::Int8 => "tenancy.current_subtree_int8",
        }
    }

    /// The array type [`Getter::subtree_call`] returns.
    pub fn array_type(self) -> pg_sys::Oid {
        match self {
            Getter::Text | Getter::Cast => pg_sys::TEXTARRAYOID,
            Getter::Uuid => pg_sys::UUIDARRAYOID,
            Getter::Int8 => pg_sys::INT8ARRAYOID,
        }
    }

    fn call(self) -> &'static str {
        match self {
            Getter::Text | Getter::Cast => "tenancy.current_tenant()",
            Getter::Uuid => "tenancy.current_tenant_uuid()",
            Getter::Int8 => "tenancy.current_tenant_int8()",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// A single PostgreSQL node: wrap the getter in a sub-select (one InitPlan per statement).
    SingleNode,
    /// A Citus distributed table: no sub-selects allowed in policies.
    Distributed,
}

/// The tenant of the context, as a value of the column's type. `col_type` is the
/// `format_type()` spelling of the column's type (already safe to splice).
pub fn tenant_value(getter: Getter, col_type: &str, placement: Placement) -> String {
    let call = getter.call();
    let value = match placement {
        Placement::SingleNode => format!("(SELECT {call})"),
        Placement::Distributed => call.to_string(),
    };
    match getter {
        Getter::Cast => format!("{value}::{col_type}"),
        _ => value,
    }
}

/// `USING` / `WITH CHECK` expression of the isolation policy. `col` is a quoted identifier.
pub fn isolation_predicate(
    col: &str,
    getter: Getter,
    col_type: &str,
    placement: Placement,
) -> String {
    format!("{col} = {}", tenant_value(getter, col_type, placement))
}

/// The entitlement gate of a feature-gated table: evaluated once per statement on a single
/// node (an InitPlan), so the isolation predicate stays a plain, index-friendly equality.
/// `feature` has passed `ident::valid_feature` (no quotes or backslashes); doubling quotes
/// keeps this safe even if that rule ever widens.
pub fn feature_gate(feature: &str, placement: Placement) -> String {
    let call = format!("tenancy.entitled('{}')", feature.replace('\'', "''"));
    match placement {
        Placement::SingleNode => format!("(SELECT {call})"),
        Placement::Distributed => call,
    }
}

/// The `WITH CHECK` side of the entitlement gate: the same test, but a write outside the
/// window fails with an error that names the feature (`tenancy._entitled_to_write`) instead of
/// PostgreSQL's, which names only the policy. Once per statement on a single node, as above.
pub fn feature_write_gate(feature: &str, placement: Placement) -> String {
    let call = format!(
        "tenancy._entitled_to_write('{}')",
        feature.replace('\'', "''")
    );
    match placement {
        Placement::SingleNode => format!("(SELECT {call})"),
        Placement::Distributed => call,
    }
}

/// Column default that stamps the context's tenant on rows inserted without one.
pub fn column_default(getter: Getter, col_type: &str, type_oid: pg_sys::Oid) -> String {
    let call = getter.call();
    match getter {
        Getter::Int8 if type_oid != pg_sys::INT8OID => format!("{call}::{col_type}"),
        Getter::Cast => format!("{call}::{col_type}"),
        _ => call.to_string(),
    }
}

/// Whether `value` is valid input for the type (a cast that would fail matches nothing).
/// Run as the table's owner: the cast runs the type's input function and, for a domain, its
/// CHECK constraints, which the owner (or the type's owner) wrote.
fn castable(rel: pg_sys::Oid, value: &str, type_oid: pg_sys::Oid) -> bool {
    let _owner = crate::infra::owner::AsTableOwner::enter(rel);
    spi::select_one::<bool>(
        "SELECT tenancy._castable($1, $2::pg_catalog.oid::pg_catalog.regtype)",
        &[value.into(), type_oid.into()],
    )
    .or_bug("checking the tenant column's type")
        == Some(true)
}

/// The predicate selecting `tenant`'s rows of table `rel`, typed like the isolation policy's.
/// Evaluate it only as the table's owner (`owner::AsTableOwner`): for a type other than text,
/// uuid and the integers, it casts to the column's type.
pub fn tenant_rows_predicate(
    rel: pg_sys::Oid,
    column: &str,
    type_oid: pg_sys::Oid,
    type_sql: &str,
    tenant: &str,
) -> Option<String> {
    let col = quote_identifier(column);
    match Getter::for_type(type_oid) {
        Getter::Text => Some(format!("{col} OPERATOR(pg_catalog.=) $1")),
        Getter::Uuid => cache::parse_uuid(tenant)
            .map(|_| format!("{col} OPERATOR(pg_catalog.=) $1::pg_catalog.uuid")),
        Getter::Int8 => cache::parse_int8(tenant)
            .map(|_| format!("{col} OPERATOR(pg_catalog.=) $1::pg_catalog.int8")),
        // format_type() spelling, schema-qualified where needed: safe to splice.
        Getter::Cast => castable(rel, tenant, type_oid).then(|| format!("{col} = $1::{type_sql}")),
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn single_node_wraps_the_getter_once() {
        assert_eq!(
            isolation_predicate("tenant_id", Getter::Uuid, "uuid", Placement::SingleNode),
            "tenant_id = (SELECT tenancy.current_tenant_uuid())"
        );
        assert_eq!(
            isolation_predicate("\"Org\"", Getter::Text, "text", Placement::SingleNode),
            "\"Org\" = (SELECT tenancy.current_tenant())"
        );
    }

    #[test]
    fn distributed_has_no_subselect() {
        let p = isolation_predicate("tenant_id", Getter::Int8, "bigint", Placement::Distributed);
        assert_eq!(p, "tenant_id = tenancy.current_tenant_int8()");
        assert!(!p.contains("SELECT"));
        let c = isolation_predicate("t", Getter::Cast, "numeric", Placement::Distributed);
        assert_eq!(c, "t = tenancy.current_tenant()::numeric");
    }

    #[test]
    fn cast_goes_outside_the_subselect() {
        assert_eq!(
            tenant_value(Getter::Cast, "character(8)", Placement::SingleNode),
            "(SELECT tenancy.current_tenant())::character(8)"
        );
    }

    #[test]
    fn feature_gate_forms() {
        assert_eq!(
            feature_gate("payroll", Placement::SingleNode),
            "(SELECT tenancy.entitled('payroll'))"
        );
        assert_eq!(
            feature_gate("o'x", Placement::Distributed),
            "tenancy.entitled('o''x')"
        );
        assert_eq!(
            feature_write_gate("payroll", Placement::SingleNode),
            "(SELECT tenancy._entitled_to_write('payroll'))"
        );
        assert_eq!(
            feature_write_gate("o'x", Placement::Distributed),
            "tenancy._entitled_to_write('o''x')"
        );
    }

    #[test]
    fn getters_by_type() {
        assert_eq!(Getter::for_type(pg_sys::INT4OID), Getter::Int8);
        assert_eq!(Getter::for_type(pg_sys::VARCHAROID), Getter::Text);
        assert_eq!(Getter::for_type(pg_sys::NUMERICOID), Getter::Cast);
        assert!(Getter::for_tenant_column(pg_sys::TEXTOID, true).is_ok());
        assert!(Getter::for_tenant_column(pg_sys::TEXTOID, false).is_err());
        assert!(Getter::for_tenant_column(pg_sys::VARCHAROID, false).is_err());
        for refused in [
            pg_sys::NUMERICOID,
            pg_sys::BPCHAROID,
            pg_sys::NAMEOID,
            pg_sys::FLOAT4OID,
            pg_sys::FLOAT8OID,
            pg_sys::MONEYOID,
            pg_sys::JSONBOID,
        ] {
            assert!(Getter::for_tenant_column(refused, true).is_err());
        }
        assert_eq!(
            Getter::for_tenant_column(pg_sys::INT2OID, true).ok(),
            Some(Getter::Int8)
        );
        assert_eq!(
            column_default(Getter::Int8, "integer", pg_sys::INT4OID),
            "tenancy.current_tenant_int8()::integer"
        );
        assert_eq!(
            column_default(Getter::Int8, "bigint", pg_sys::INT8OID),
            "tenancy.current_tenant_int8()"
        );
    }
}
