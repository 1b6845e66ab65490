-- Min-N guarded aggregates, read by an application role: small cells stay blank, pooled
-- benchmarks need five balanced tenants, the thresholds cannot be lowered from the app, and a
-- benchmark view over a protected table shows every tenant's cells but never its rows.

CREATE ROLE regress_guard_admin NOLOGIN;
SELECT tenancy.grant_admin('regress_guard_admin');
CREATE SCHEMA guard_demo;
GRANT USAGE ON SCHEMA guard_demo TO regress_app, regress_guard_admin;
GRANT CREATE ON SCHEMA guard_demo TO regress_guard_admin;

-- 1. One company's engagement survey: teams of 3, 4, 5 and 6 people; in the team of 3 one
--    person answered five times.
CREATE TABLE guard_demo.survey (team text, employee_id bigint, score numeric);
INSERT INTO guard_demo.survey
SELECT team, e, 3 + (e % 3)
  FROM (VALUES ('ops', 4), ('sales', 5), ('eng', 6)) t(team, n), generate_series(1, n) e;
INSERT INTO guard_demo.survey SELECT 'legal', 1, 5 FROM generate_series(1, 5);
INSERT INTO guard_demo.survey VALUES ('legal', 2, 1), ('legal', 3, 2);
-- An answer without a person, and a person without an answer.
INSERT INTO guard_demo.survey VALUES ('ops', NULL, 5), ('ops', 99, NULL);
GRANT SELECT ON guard_demo.survey TO regress_app;

-- guard_status has no value argument: to explain a blank average, give it the rows the
-- average counts (those with a score). guarded_count counts rows with a person, like count().
SET ROLE regress_app;
SELECT team,
       tenancy.guarded_avg(score, employee_id) AS avg_score,
       tenancy.guarded_percentile(score, 0.5, employee_id) AS median,
       tenancy.guard_status(employee_id) FILTER (WHERE score IS NOT NULL) AS why,
       tenancy.guarded_count(employee_id) AS rows_with_a_person
  FROM guard_demo.survey GROUP BY team ORDER BY team;

-- 2. The thresholds are the superuser's: the app can neither SET them nor ask for less.
SET tenancy.min_n = 1;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT set_config('tenancy.min_n', '1', true);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SHOW tenancy.min_n;
SELECT tenancy.guarded_avg(score, employee_id) FROM guard_demo.survey WHERE team = 'ops';

-- 3. Sliding windows would let neighbouring frames be subtracted: refused.
SELECT tenancy.guarded_avg(score, employee_id) OVER (ORDER BY employee_id ROWS 4 PRECEDING)
  FROM guard_demo.survey;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;

-- 4. A tenant's settings raise the threshold under its context (never lower it).
SELECT tenancy.create_tenant('guard_strict', settings => '{"min_n": 6}');
SET ROLE regress_job;
BEGIN;
SELECT tenancy.set_tenant('guard_strict') IS NOT NULL AS context_set;
SET LOCAL ROLE regress_app;
SELECT team, tenancy.guarded_avg(score, employee_id) AS avg_score, tenancy.guard_status(employee_id) AS why
  FROM guard_demo.survey GROUP BY team ORDER BY team;
COMMIT;
RESET ROLE;

-- 5. A salary benchmark pooled across client companies: a protected table, six companies.
SELECT tenancy.create_tenant(t) FROM unnest(ARRAY['c1', 'c2', 'c3', 'c4', 'c5', 'c6']) t;
CREATE TABLE guard_demo.pay (tenant_id text NOT NULL, employee_id int, job text, level text, salary numeric);
SELECT tenancy.protect('guard_demo.pay');
GRANT SELECT ON guard_demo.pay TO regress_app, regress_guard_admin;
INSERT INTO guard_demo.pay
-- Engineers: six companies, three each.
SELECT 'c' || c, e, 'engineer', 'senior', 90000 + 1000 * c + e FROM generate_series(1, 6) c, generate_series(1, 3) e
UNION ALL
-- Designers: five companies, but c1 alone has eight of the twelve.
SELECT 'c' || c, e, 'designer', 'senior', 70000 + 500 * e FROM generate_series(1, 5) c,
       generate_series(1, CASE WHEN c = 1 THEN 8 ELSE 1 END) e
UNION ALL
-- Lawyers: four companies of three.
SELECT 'c' || c, e, 'lawyer', 'senior', 120000 FROM generate_series(1, 4) c, generate_series(1, 3) e
UNION ALL
-- Analysts: five companies of one: balanced, yet any company that removes itself sees four.
SELECT 'c' || c, 1, 'analyst', 'junior', 50000 + c FROM generate_series(1, 5) c;

SET ROLE regress_guard_admin;
SELECT tenancy.create_benchmark_view('guard_demo.salary_benchmark', 'guard_demo.pay',
         ARRAY['job', 'level'], ARRAY['count', 'avg(salary)', 'percentile(salary, 0.5)'],
         'employee_id', include_suppressed => true);
GRANT SELECT ON guard_demo.salary_benchmark TO regress_app;
-- The admin may only pool columns it may read itself.
RESET ROLE;
REVOKE SELECT (salary) ON guard_demo.pay FROM regress_guard_admin;
REVOKE SELECT ON guard_demo.pay FROM regress_guard_admin;
GRANT SELECT (tenant_id, employee_id, job, level) ON guard_demo.pay TO regress_guard_admin;
SET ROLE regress_guard_admin;
SELECT tenancy.create_benchmark_view('guard_demo.again', 'guard_demo.pay', ARRAY['job', 'level'], ARRAY['avg(salary)'], 'employee_id');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT tenancy.create_benchmark_view('guard_demo.again', 'guard_demo.pay', ARRAY['job', 'level'], ARRAY['count'], 'employee_id');
-- Another grouping of the same rows would let a hidden cell be computed from this view's
-- totals minus the other's shown cells: refused.
SELECT tenancy.create_benchmark_view('guard_demo.by_job', 'guard_demo.pay', ARRAY['job'], ARRAY['count'], 'employee_id');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;

-- Company c1's analyst app: its own rows only, every company's guarded cells.
SET ROLE regress_job;
BEGIN;
SELECT tenancy.set_tenant('c1') IS NOT NULL AS context_set;
SET LOCAL ROLE regress_app;
SELECT count(*) AS own_rows FROM guard_demo.pay;
SELECT * FROM guard_demo.salary_benchmark ORDER BY job;
-- A WHERE on the view filters whole cells, after aggregation; the rows behind them cannot be
-- named.
SELECT job, count FROM guard_demo.salary_benchmark WHERE job = 'engineer';
SAVEPOINT s;
SELECT * FROM guard_demo.salary_benchmark WHERE tenant_id = 'c2';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO SAVEPOINT s;
SELECT * FROM guard_demo.salary_benchmark WHERE salary > 100000;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO SAVEPOINT s;
-- Subtracting its own engineers from the pooled total leaves five companies, fifteen people.
SELECT b.count - o.n AS others_people, b.avg_salary * b.count - o.total AS others_total
  FROM guard_demo.salary_benchmark b,
       (SELECT count(*) AS n, sum(salary) AS total FROM guard_demo.pay WHERE job = 'engineer') o
 WHERE b.job = 'engineer';
-- Nor can it drop the view, or make its own over the same table.
DROP VIEW guard_demo.salary_benchmark;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO SAVEPOINT s;
SELECT tenancy.drop_benchmark_view('guard_demo.salary_benchmark');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO SAVEPOINT s;
SELECT tenancy.create_benchmark_view('guard_demo.mine', 'guard_demo.pay', ARRAY['job'], ARRAY['count'], 'employee_id');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;

-- 6. The checker accepts the intact view and reports one altered behind its back.
SELECT rule, object FROM tenancy.check('guard_demo');
CREATE OR REPLACE VIEW guard_demo.salary_benchmark WITH (security_barrier) AS
SELECT job, level, count(*)::bigint AS count, avg(salary) AS avg_salary,
       0::float8 AS p50_salary, 'ok'::text AS status
  FROM guard_demo.pay GROUP BY job, level;
SELECT severity, rule, object, fix FROM tenancy.check('guard_demo') WHERE rule = 'benchmark_view_changed';
SELECT tenancy.drop_benchmark_view('guard_demo.salary_benchmark');
SELECT rule, object FROM tenancy.check('guard_demo');

SELECT tenancy.drop_benchmark_view('guard_demo.again');
SELECT count(*) AS registered FROM tenancy.benchmark_views;
DROP SCHEMA guard_demo CASCADE;
DROP OWNED BY regress_guard_admin;
DROP ROLE regress_guard_admin;
