-- pg_tenancy: benchmark views over the pooled guarded aggregates (src/guard/benchmark.rs). The
-- contract spells the arguments with regclass and name; thin wrappers give the exact
-- signature. Not SECURITY DEFINER: the Rust function checks the caller's own rights first.
--
-- Comes after guard.sql (tenancy.benchmark_views) and the Rust functions the wrappers call
-- (_create_benchmark_view, _drop_benchmark_view): see src/install.rs.

CREATE FUNCTION tenancy.create_benchmark_view(
    name text,
    source regclass,
    group_by name[],
    measures text[],
    contributor name,
    include_suppressed boolean DEFAULT false
) RETURNS regclass
LANGUAGE sql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT tenancy._create_benchmark_view(name, source::oid, group_by::text[], measures,
                                          contributor::text, include_suppressed)::regclass
$$;

CREATE FUNCTION tenancy.drop_benchmark_view(view regclass) RETURNS void
LANGUAGE sql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT tenancy._drop_benchmark_view(view::oid) $$;
