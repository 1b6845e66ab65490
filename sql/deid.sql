-- pg_tenancy: de-identification objects written in SQL (src/deid/): the k-anonymity wrappers
-- and top_code().
--
-- Comes after the Rust functions the wrappers call (_k_anonymity, _k_anonymity_report): see
-- src/install.rs. Privileges: privileges.sql.

-- The contract spells these with `name[]`; pgrx has no `name` type, so thin wrappers give the
-- exact signature. Never SECURITY DEFINER: they measure what the caller can see (RLS applies).
CREATE FUNCTION tenancy.k_anonymity(tbl regclass, quasi_identifiers name[]) RETURNS bigint
LANGUAGE sql STABLE STRICT PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$ SELECT tenancy._k_anonymity(tbl::oid, quasi_identifiers::text[]) $$;

CREATE FUNCTION tenancy.k_anonymity_report(tbl regclass, quasi_identifiers name[], k bigint)
RETURNS TABLE (class jsonb, class_size bigint)
LANGUAGE sql STABLE STRICT PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$ SELECT r.class, r.class_size FROM tenancy._k_anonymity_report(tbl::oid, quasi_identifiers::text[], k) r $$;

-- Top-coding: values above the cap become the cap (numbers, dates, anything ordered). LEAST
-- compares with the type's default btree order, so no operator is looked up on the caller's
-- search_path; written without SET and without STRICT so that the planner inlines it.
CREATE FUNCTION tenancy.top_code(value anycompatible, cap anycompatible) RETURNS anycompatible
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN value IS NULL OR cap IS NULL THEN NULL ELSE LEAST(value, cap) END $$;
