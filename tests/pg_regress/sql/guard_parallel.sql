-- Serial and forced-parallel plans of every guarded aggregate return exactly the same rows,
-- on 1M rows in 10k groups and in one group of 1M. Every value is exact in its type (the
-- float8 values are multiples of 0.25, so their sums do not depend on the order of addition);
-- groups have 1 to 8 people and 1 to 7 companies, so every outcome occurs.
CREATE UNLOGGED TABLE guard_par AS
SELECT i % 10000 AS g,
       'p' || k % (i % 10000 % 8 + 1) AS person,
       (k % (i % 10000 % 8 + 1))::bigint AS person_id,
       md5((k % (i % 10000 % 8 + 1))::text)::uuid AS person_uuid,
       'c' || CASE WHEN k % 3 = 0 THEN 0 ELSE k % (i % 10000 % 7 + 1) END AS company,
       (i % 1000) - 300 AS v_int,
       ((i % 1000) - 300)::bigint * 1000000 AS v_big,
       ((i % 1000) - 300) * 0.01 AS v_num,
       ((i % 1000) - 300) * 0.25::float8 AS v_f8
  FROM generate_series(1, 1000000) i, LATERAL (SELECT i / 10000 AS k) x;
ANALYZE guard_par;

-- Whether the planner runs `q` with workers and partial aggregation.
CREATE FUNCTION pg_temp.parallel_plan(q text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    plan text;
BEGIN
    EXECUTE 'EXPLAIN (COSTS OFF, FORMAT JSON) ' || q INTO plan;
    RETURN plan LIKE '%"Gather%' AND plan LIKE '%"Partial Mode": "Partial"%';
END
$$;

-- Runs `q` under EXPLAIN ANALYZE and says whether at least one parallel worker ran it: a plan
-- that asks for workers and gets none runs in the leader alone, and the comparison below
-- would compare the serial code with itself.
CREATE FUNCTION pg_temp.workers_ran(q text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    plan jsonb;
BEGIN
    EXECUTE 'EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) ' || q INTO plan;
    RETURN jsonb_path_exists(plan, '$.** ? (@."Workers Launched" >= 1)');
END
$$;

\set q10k 'SELECT g, tenancy.guarded_sum(v_int, person) s_int, tenancy.guarded_sum(v_big, person_id) s_big, tenancy.guarded_sum(v_num, person_uuid) s_num, tenancy.guarded_sum(v_f8, person) s_f8, tenancy.guarded_avg(v_int, person_id) a_int, tenancy.guarded_avg(v_big, person) a_big, tenancy.guarded_avg(v_num, person) a_num, tenancy.guarded_avg(v_f8, person_uuid) a_f8, tenancy.guarded_percentile(v_int, 0.1, person) p_int, tenancy.guarded_percentile(v_num, 0.5, person_id) p_num, tenancy.guarded_percentile(v_f8, 0.9, person_uuid) p_f8, tenancy.guarded_count(person) n_text, tenancy.guarded_count(person_id) n_big, tenancy.guarded_count(person_uuid) n_uuid, tenancy.guard_status(person) st, tenancy.guarded_sum(v_num, person, company) ps, tenancy.guarded_avg(v_f8, person_id, company) pa, tenancy.guarded_percentile(v_big, 0.5, person_uuid, company) pp, tenancy.guarded_count(person, company) pn, tenancy.guard_status(person, company) pst FROM guard_par GROUP BY g'
\set q1 'SELECT tenancy.guarded_sum(v_num, person) s, tenancy.guarded_avg(v_f8, person_id) a, tenancy.guarded_avg(v_num, person_uuid) an, tenancy.guarded_percentile(v_int, 0.75, person) p, tenancy.guarded_count(person_uuid) n, tenancy.guarded_avg(v_int, person, company) pa, tenancy.guard_status(person, company) pst FROM guard_par'

SET max_parallel_workers_per_gather = 0;
SELECT pg_temp.parallel_plan(:'q10k') AS parallel_when_disabled;
CREATE TEMP TABLE serial_10k AS :q10k;
CREATE TEMP TABLE serial_1 AS :q1;

SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET parallel_leader_participation = off;
SELECT pg_temp.parallel_plan(:'q10k') AS parallel_10k, pg_temp.parallel_plan(:'q1') AS parallel_1;
SELECT pg_temp.workers_ran('CREATE TEMP TABLE parallel_10k AS ' || :'q10k') AS workers_ran_10k;
SELECT pg_temp.workers_ran('CREATE TEMP TABLE parallel_1 AS ' || :'q1') AS workers_ran_1;
RESET ALL;

-- Not a row differs, in either direction.
SELECT (SELECT count(*) FROM serial_10k) AS groups,
       (SELECT count(*) FROM (TABLE serial_10k EXCEPT ALL TABLE parallel_10k) d) AS only_serial,
       (SELECT count(*) FROM (TABLE parallel_10k EXCEPT ALL TABLE serial_10k) d) AS only_parallel,
       (SELECT count(*) FROM (TABLE serial_1 EXCEPT ALL TABLE parallel_1) d) AS one_group_differs;
-- Shown and suppressed cells both occur, for every reason. (The pooled count follows
-- guard_status exactly; the pooled average is also suppressed when one company holds more
-- than a quarter of the sum of magnitudes, as company c0, a third of every group, does.)
SELECT pst, count(*) AS groups, count(pn) AS shown, count(pa) AS avg_shown
  FROM serial_10k GROUP BY pst ORDER BY pst;
SELECT st, count(*) AS groups, count(a_num) AS shown FROM serial_10k GROUP BY st ORDER BY st;
SELECT * FROM serial_1;

DROP TABLE guard_par;
