-- pg_tenancy: which of the extension's tables pg_dump keeps the rows of
-- (pg_extension_config_dump), so that a restored database keeps its tenants, keys, trail and
-- pseudonyms (the dump-restore system test shows it).
--
-- Comes after every table and sequence it names: the registry tables, the audit tables
-- (audit.sql) and tenancy.benchmark_views (guard.sql). See src/install.rs.

-- pg_dump keeps the registry (the carrier key is per installation and is made anew).
SELECT pg_catalog.pg_extension_config_dump('tenancy.tenants', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.signing_keys', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.api_keys', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.protected_tables', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.enrolled_schemas', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.entitlements', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.plans', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.quotas', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.quota_slots', '');
-- The audit trail travels with a dump, with its chain heads and its id sequence, so that
-- verify_audit() passes after a restore and new rows continue the chains.
SELECT pg_catalog.pg_extension_config_dump('tenancy.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.audit_heads', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.audit_log_id_seq', '');
-- Pseudonym secrets travel with a dump: a restored database computes the same pseudonyms.
SELECT pg_catalog.pg_extension_config_dump('tenancy.pseudonym_secrets', '');
-- Benchmark views are the owner's objects outside the extension; their registry travels too.
SELECT pg_catalog.pg_extension_config_dump('tenancy.benchmark_views', '');
