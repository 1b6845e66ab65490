-- De-identification: keyed pseudonyms pinned by a known answer, stable across sessions and
-- rotated for every backend; a pooled table built by a trusted job from protected tenant rows
-- with pseudonyms, bands and generalised dates; its k-anonymity, and what an app role sees.

-- 1. No secret yet: pseudonymize refuses rather than hash with an empty or default key.
SET ROLE regress_app;
SELECT tenancy.pseudonymize('42', 'employee');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;

-- 2. An administrator adds the master secret. Normally it is omitted and generated in the
--    server; here it is fixed so that the pseudonyms below are pinned.
SELECT tenancy.add_pseudonym_secret('regress-2026',
         convert_to('0123456789abcdef0123456789abcdef', 'UTF8'));

-- 3. Known answer, computed independently with Python's hmac module:
--    m = b"0123456789abcdef0123456789abcdef"
--    k = hmac.new(m, b"pg_tenancy pseudonym v1\0employee", hashlib.sha256).digest()
--    base64.b32encode(hmac.new(k, b"42", hashlib.sha256).digest()[:16]).decode().rstrip("=").lower()
--    == 'gdib2k2irmp4b5rfqvxrqtmbke'
SET ROLE regress_app;
SELECT tenancy.pseudonymize('42', 'employee') AS pseudonym,
       tenancy.pseudonymize(42, 'employee') = tenancy.pseudonymize('42', 'employee') AS bigint_form_same,
       tenancy.pseudonymize('42', 'customer') <> tenancy.pseudonymize('42', 'employee') AS other_domain_differs;
-- The app role cannot read the secret.
SELECT secret FROM tenancy.pseudonym_secrets;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;

-- 4. A new session (a new backend) computes the same pseudonym.
\c
SET ROLE regress_app;
SELECT tenancy.pseudonymize('42', 'employee') AS pseudonym;
RESET ROLE;

-- 5. Rotation: another backend, which has the derived key cached, uses the new secret from
--    its next transaction; dropping the new secret puts the old one back.
CREATE EXTENSION dblink;
SELECT dblink_connect('other', format('host=localhost port=%s dbname=%s user=postgres',
                                      current_setting('port'), current_database()));
SELECT p AS other_backend FROM dblink('other', $$SELECT tenancy.pseudonymize('42', 'employee')$$) AS t(p text);
SELECT tenancy.add_pseudonym_secret('regress-2027', decode(repeat('42', 32), 'hex'));
SELECT p AS other_backend FROM dblink('other', $$SELECT tenancy.pseudonymize('42', 'employee')$$) AS t(p text);
SELECT tenancy.drop_pseudonym_secret('regress-2027');
SELECT p AS other_backend FROM dblink('other', $$SELECT tenancy.pseudonymize('42', 'employee')$$) AS t(p text);
SELECT dblink_disconnect('other');
DROP EXTENSION dblink;

-- 6. Tenant rows, protected as usual.
CREATE TABLE salaries (
    tenant_id   text NOT NULL,
    employee_id text NOT NULL,
    region      text NOT NULL,
    born        date NOT NULL,
    hired       date NOT NULL,
    salary      numeric NOT NULL
);
INSERT INTO salaries VALUES
    ('acme',   'E1', 'north', '1985-03-02', '2021-02-10',  52000),
    ('acme',   'E2', 'north', '1988-11-20', '2021-03-01',  58000),
    ('acme',   'E3', 'north', '1981-07-14', '2021-01-20',  51000),
    ('acme',   'E4', 'south', '1990-05-05', '2022-06-30',  74000),
    ('acme',   'E5', 'south', '1960-01-01', '2022-04-01', 310000),
    ('globex', 'E1', 'north', '1986-09-09', '2021-03-15',  55000),
    ('globex', 'E2', 'north', '1983-12-24', '2021-02-28',  57000),
    ('globex', 'E3', 'south', '1992-02-29', '2022-05-17',  71000);
SELECT tenancy.protect('salaries');
GRANT SELECT ON salaries TO regress_app, regress_job;

-- 7. The pooled table: no tenant column, nothing directly identifying. A trusted job fills it
--    one tenant at a time; the pool form of the pseudonym mixes in the tenant, so acme's E1 and
--    globex's E1 stay apart and no tenant can recompute another's pseudonyms.
CREATE TABLE pooled_salaries (
    person        text PRIMARY KEY,
    region        text,
    age_band      int4range,
    hired_quarter date,
    salary_band   text
);
GRANT INSERT ON pooled_salaries TO regress_job;

SET ROLE regress_job;
BEGIN;
SELECT tenancy.set_tenant('acme') IS NOT NULL AS acme;
INSERT INTO pooled_salaries
SELECT tenancy.pseudonymize_for_pool(employee_id, 'employee'),
       region,
       tenancy.age_band(born, date '2026-01-01', 10, 60),
       tenancy.generalize_date(hired, 'quarter'),
       tenancy.band_label(salary, 10000, 150000)
  FROM salaries;
SELECT tenancy.set_tenant('globex') IS NOT NULL AS globex;
INSERT INTO pooled_salaries
SELECT tenancy.pseudonymize_for_pool(employee_id, 'employee'),
       region,
       tenancy.age_band(born, date '2026-01-01', 10, 60),
       tenancy.generalize_date(hired, 'quarter'),
       tenancy.band_label(salary, 10000, 150000)
  FROM salaries;
COMMIT;
RESET ROLE;

SET datestyle = 'ISO, YMD';
SELECT * FROM pooled_salaries ORDER BY region, age_band, salary_band, person;

-- 8. How identifiable is it? The smallest class over (region, age band) is 1; the classes
--    below 3 are the ones to generalise further or suppress before publishing.
SELECT tenancy.k_anonymity('pooled_salaries', ARRAY['region', 'age_band']) AS k;
SELECT * FROM tenancy.k_anonymity_report('pooled_salaries', ARRAY['region', 'age_band'], 3);
SELECT tenancy.k_anonymity('pooled_salaries', ARRAY['region', 'hired_quarter']) AS k_region_quarter;

-- 9. k_anonymity runs with the caller's rights: the app role, in acme's context, measures
--    acme's rows only (north x3, south x2), and cannot read the pooled table at all.
BEGIN;
SELECT tenancy.set_tenant('acme') IS NOT NULL AS acme;
SET LOCAL ROLE regress_app;
SELECT tenancy.k_anonymity('salaries', ARRAY['region']) AS k_acme;
SELECT * FROM tenancy.k_anonymity_report('salaries', ARRAY['region'], 3);
SELECT tenancy.k_anonymity('pooled_salaries', ARRAY['region']);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;

-- 10. Bad input is refused with the contract's SQLSTATEs, identifiers are never spliced.
SELECT tenancy.k_anonymity('pooled_salaries', ARRAY['region; DROP TABLE salaries']);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT tenancy.k_anonymity('pooled_salaries', ARRAY[]::name[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT tenancy.band(5, 0);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT tenancy.generalize_date('2026-01-01', 'week');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- The pool form needs a verified context.
SELECT tenancy.pseudonymize_for_pool('E1', 'employee');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

DROP TABLE pooled_salaries, salaries;
SELECT tenancy.drop_pseudonym_secret('regress-2026');
