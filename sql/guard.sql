-- pg_tenancy: min-N guarded aggregates (docs/guarded-aggregates.md), and the registry of the
-- benchmark views made over them (tenancy.benchmark_views).
--
-- Needs no other file and no function pgrx declares: the support functions are C symbols of
-- the library, declared here. Comes before check.sql, which reads tenancy.benchmark_views, and
-- before guard_views.sql. See src/install.rs. Privileges: privileges.sql.
--
-- Written by hand rather than with #[pg_aggregate]: an `internal` state with parallel
-- aggregation hits pgrx issue #2351 (wrong deserialize signature), PostgreSQL rejects a STRICT
-- combine function for an `internal` state, and only CREATE AGGREGATE can set SSPACE (without
-- it the planner assumes 8 KB per group and avoids hash aggregation). The support functions are
-- Rust (src/guard/aggregates.rs) and read their arguments from fcinfo, so one C symbol serves
-- every argument type; the types of a call are learnt from its expression once per group.

-- Support functions shared by every aggregate.
CREATE FUNCTION tenancy._guard_combine(internal, internal) RETURNS internal
LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_guard_combine_wrapper';
CREATE FUNCTION tenancy._guard_serialize(internal) RETURNS bytea
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', '_guard_serialize_wrapper';
CREATE FUNCTION tenancy._guard_deserialize(bytea, internal) RETURNS internal
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', '_guard_deserialize_wrapper';

-- Final functions: read the thresholds (and the current tenant's min_n) and return NULL when
-- the group may not be shown. STABLE: they depend on settings, never on the row data alone.
CREATE FUNCTION tenancy._guard_count_final(internal) RETURNS bigint
LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_guard_count_final_wrapper';
CREATE FUNCTION tenancy._guard_status_final(internal) RETURNS text
LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_guard_status_final_wrapper';
CREATE FUNCTION tenancy._guard_sum_final_int8(internal) RETURNS bigint
LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_guard_sum_final_int8_wrapper';
CREATE FUNCTION tenancy._guard_sum_final_numeric(internal) RETURNS numeric
LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_guard_sum_final_numeric_wrapper';
CREATE FUNCTION tenancy._guard_sum_final_float8(internal) RETURNS double precision
LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_guard_sum_final_float8_wrapper';
CREATE FUNCTION tenancy._guard_avg_final_numeric(internal) RETURNS numeric
LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_guard_avg_final_numeric_wrapper';
CREATE FUNCTION tenancy._guard_avg_final_float8(internal) RETURNS double precision
LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_guard_avg_final_float8_wrapper';
CREATE FUNCTION tenancy._guard_percentile_final(internal) RETURNS double precision
LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', '_guard_percentile_final_wrapper';

-- Transition functions and aggregates, one per argument signature:
--   contributor text | bigint | uuid (integer contributors resolve to bigint),
--   value integer | bigint | numeric | double precision,
--   plain, or pooled with a trailing `tenant text`.
-- Result types follow sum()/avg(): sum(integer) bigint, sum(bigint) numeric, avg of integers
-- numeric; percentiles are double precision like percentile_cont.
DO $guard$
DECLARE
    c text;
    v text;
    pooled boolean;
    tenant_arg text;
    tenant_sig text;
    sum_final text;
    sum_type text;
    avg_final text;
    avg_type text;
    sspace integer;
BEGIN
    FOREACH c IN ARRAY ARRAY['text', 'bigint', 'uuid'] LOOP
        FOREACH pooled IN ARRAY ARRAY[false, true] LOOP
            tenant_arg := CASE WHEN pooled THEN ', tenant text' ELSE '' END;
            tenant_sig := CASE WHEN pooled THEN ', text' ELSE '' END;
            -- Plain states hold at most min_n keys; pooled ones a key set per tenant.
            sspace := CASE WHEN pooled THEN 4096 ELSE 256 END;

            EXECUTE format('CREATE FUNCTION tenancy._guard_trans_rows(internal, %s%s) RETURNS internal
                LANGUAGE c STABLE PARALLEL SAFE AS %L, %L',
                c, tenant_sig, 'MODULE_PATHNAME', '_guard_trans_rows_wrapper');
            EXECUTE format('CREATE AGGREGATE tenancy.guarded_count(contributor %s%s) (
                SFUNC = tenancy._guard_trans_rows, STYPE = internal, SSPACE = %s,
                FINALFUNC = tenancy._guard_count_final,
                COMBINEFUNC = tenancy._guard_combine,
                SERIALFUNC = tenancy._guard_serialize, DESERIALFUNC = tenancy._guard_deserialize,
                PARALLEL = SAFE)', c, tenant_arg, sspace);
            EXECUTE format('CREATE AGGREGATE tenancy.guard_status(contributor %s%s) (
                SFUNC = tenancy._guard_trans_rows, STYPE = internal, SSPACE = %s,
                FINALFUNC = tenancy._guard_status_final,
                COMBINEFUNC = tenancy._guard_combine,
                SERIALFUNC = tenancy._guard_serialize, DESERIALFUNC = tenancy._guard_deserialize,
                PARALLEL = SAFE)', c, tenant_arg, sspace);

            FOREACH v IN ARRAY ARRAY['integer', 'bigint', 'numeric', 'double precision'] LOOP
                sum_final := CASE v WHEN 'integer' THEN '_guard_sum_final_int8'
                                    WHEN 'double precision' THEN '_guard_sum_final_float8'
                                    ELSE '_guard_sum_final_numeric' END;
                avg_final := CASE v WHEN 'double precision' THEN '_guard_avg_final_float8'
                                    ELSE '_guard_avg_final_numeric' END;

                EXECUTE format('CREATE FUNCTION tenancy._guard_trans_value(internal, %s, %s%s) RETURNS internal
                    LANGUAGE c STABLE PARALLEL SAFE AS %L, %L',
                    v, c, tenant_sig, 'MODULE_PATHNAME', '_guard_trans_value_wrapper');
                EXECUTE format('CREATE FUNCTION tenancy._guard_trans_percentile(internal, %s, double precision, %s%s) RETURNS internal
                    LANGUAGE c STABLE PARALLEL SAFE AS %L, %L',
                    v, c, tenant_sig, 'MODULE_PATHNAME', '_guard_trans_percentile_wrapper');
                EXECUTE format('CREATE AGGREGATE tenancy.guarded_sum(value %s, contributor %s%s) (
                    SFUNC = tenancy._guard_trans_value, STYPE = internal, SSPACE = %s,
                    FINALFUNC = tenancy.%I,
                    COMBINEFUNC = tenancy._guard_combine,
                    SERIALFUNC = tenancy._guard_serialize, DESERIALFUNC = tenancy._guard_deserialize,
                    PARALLEL = SAFE)', v, c, tenant_arg, sspace, sum_final);
                EXECUTE format('CREATE AGGREGATE tenancy.guarded_avg(value %s, contributor %s%s) (
                    SFUNC = tenancy._guard_trans_value, STYPE = internal, SSPACE = %s,
                    FINALFUNC = tenancy.%I,
                    COMBINEFUNC = tenancy._guard_combine,
                    SERIALFUNC = tenancy._guard_serialize, DESERIALFUNC = tenancy._guard_deserialize,
                    PARALLEL = SAFE)', v, c, tenant_arg, sspace, avg_final);
                -- Keeps every value; sorts them in place when it finishes.
                EXECUTE format('CREATE AGGREGATE tenancy.guarded_percentile(value %s, fraction double precision, contributor %s%s) (
                    SFUNC = tenancy._guard_trans_percentile, STYPE = internal, SSPACE = 8192,
                    FINALFUNC = tenancy._guard_percentile_final, FINALFUNC_MODIFY = READ_WRITE,
                    COMBINEFUNC = tenancy._guard_combine,
                    SERIALFUNC = tenancy._guard_serialize, DESERIALFUNC = tenancy._guard_deserialize,
                    PARALLEL = SAFE)', v, c, tenant_arg);
            END LOOP;
        END LOOP;
    END LOOP;
END
$guard$;

-- Benchmark views made by tenancy.create_benchmark_view(): what each looked like when it was
-- made, so that tenancy.check() notices when one has been altered since.
CREATE TABLE tenancy.benchmark_views (
    view_name   text PRIMARY KEY,
    source      text NOT NULL,
    definition  text NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- The grouping columns, sorted: every view over one table (or partition tree) must group
    -- by the same set, or a hidden cell could be computed from the other view's totals.
    group_by    text[]
);
