-- pg_tenancy: the audit trail (src/audit/): the audit log, its chain heads, the support
-- sessions, the triggers that keep the log append-only, the support-write trigger function,
-- and the policies that let each tenant read only its own chain. docs/audit.md defines every
-- column, the hash chain byte by byte, and the concurrency design.
--
-- Comes after the registry tables (a policy names tenancy.tenants) and after the Rust
-- functions it names (tenancy.current_tenant() in a policy must exist when the policy is
-- created; _audit_purging, _support_active and _audit_support_write are called by its
-- triggers): see src/install.rs. Grants: privileges.sql.

-- One row per audited event, chained per tenant: hash = SHA-256(prev_hash || encoding of the
-- row). Written only by the extension's own code (src/audit/trail.rs), as the extension's owner.
CREATE TABLE tenancy.audit_log (
    id         bigint GENERATED ALWAYS AS IDENTITY (SEQUENCE NAME tenancy.audit_log_id_seq) PRIMARY KEY,
    tenant_id  text NOT NULL,
    seq        bigint NOT NULL CHECK (seq > 0),
    at         timestamptz NOT NULL,
    txid       xid8 NOT NULL,
    actor      text,
    roles      text[] NOT NULL,
    support    jsonb,
    event      text NOT NULL,
    detail     jsonb NOT NULL,
    prev_hash  bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash       bytea NOT NULL CHECK (length(hash) = 32),
    -- Also the index verify_audit() and tenants' reads use; a second writer at the same
    -- position could never commit.
    CONSTRAINT audit_log_tenant_seq UNIQUE (tenant_id, seq)
);

-- The head of each chain. Every writer updates its tenant's row, so writers of one tenant
-- queue on that row lock (READ COMMITTED), or fail with 40001 when their snapshot cannot see
-- the head another transaction committed (REPEATABLE READ, SERIALIZABLE): the chain never
-- forks. A rolled-back write rolls back the head with it, so seq has no gaps.
CREATE TABLE tenancy.audit_heads (
    tenant_id  text PRIMARY KEY,
    seq        bigint NOT NULL DEFAULT 0,
    hash       bytea NOT NULL DEFAULT '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea
);

-- Support sessions: one row per begin_support(), ended by end_support() (or by the next
-- begin_support() of the same session). A support carrier names its row, and verification
-- refuses it once the row is ended, so a carrier copied before end_support() dies with the
-- session on every backend (a change here is a registry change: registry_triggers.sql). Written only by
-- the extension's code; admins read it. Not dumped: carriers do not survive a restore.
CREATE TABLE tenancy.support_sessions (
    id          text PRIMARY KEY,
    tenant      text NOT NULL,
    opened_by   oid NOT NULL,       -- the role that opened it; only it may use the carrier
    opened_by_name name NOT NULL,
    reason      text NOT NULL,
    began_at    timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    -- The backend that opened it: the session ends when that backend exits (its carrier is
    -- refused everywhere from then on; support_session_state in src/context/tenant_context.rs).
    -- (NULL: not tied to a backend).
    opened_pid  integer,
    opened_backend_start timestamptz,
    opened_system bigint,           -- pg_control_system()'s system_identifier of that node
    -- Its support_ended row is in the chain. Endings nobody is present for (expiry, the role
    -- losing the grant) are written later by the next sweep (src/audit/support.rs).
    end_recorded boolean NOT NULL DEFAULT false
);

-- Append-only, even for the table's owner. Only tenancy.purge_audit() (superuser) deletes,
-- and it says so through a backend-local flag that SQL cannot set.
CREATE FUNCTION tenancy._audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' AND tenancy._audit_purging() THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION USING ERRCODE = '42501',
        MESSAGE = format('pg_tenancy: the audit log is append-only: %s is refused', TG_OP),
        HINT = 'a superuser erases one tenant''s trail with tenancy.purge_audit(tenant, confirm)';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON tenancy.audit_log
    FOR EACH ROW EXECUTE FUNCTION tenancy._audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON tenancy.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION tenancy._audit_log_append_only();
CREATE TRIGGER audit_heads_no_truncate BEFORE TRUNCATE ON tenancy.audit_heads
    FOR EACH STATEMENT EXECUTE FUNCTION tenancy._audit_log_append_only();

-- Statement-level trigger that protect() puts on every protected table: one cheap call per
-- statement that returns at once unless the statement runs under a support context, in which
-- case the write is recorded in that tenant's chain, marked as support.
-- SECURITY DEFINER so that the recording function needs no grant to anyone: called by hand it
-- could state writes that never happened (a trigger function cannot be called by hand).
CREATE FUNCTION tenancy._support_write_trigger() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF tenancy._support_active() THEN
        PERFORM tenancy._audit_support_write(TG_RELID, TG_OP);
    END IF;
    RETURN NULL;
END
$$;

-- Each tenant reads its own chain; admins (the role grant_admin gives SELECT on
-- tenancy.tenants) read every chain, the system chain included. Nobody is granted INSERT: rows
-- come from the extension's code, as the extension's owner.
ALTER TABLE tenancy.audit_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenancy_isolation ON tenancy.audit_log FOR SELECT TO PUBLIC
    USING (tenant_id = (SELECT tenancy.current_tenant()));
CREATE POLICY tenancy_audit_admin ON tenancy.audit_log FOR SELECT TO PUBLIC
    USING ((SELECT pg_catalog.has_table_privilege('tenancy.tenants'::pg_catalog.regclass, 'SELECT')));
