-- pg_tenancy: row quotas (src/protection/quota.rs, docs/operations.md "Limits and quotas"):
-- the statement triggers that spend and refund a tenant's budget, and tenancy.set_quota().
--
-- plpgsql because the triggers read statement transition tables. set_quota() is a thin
-- wrapper (a regclass argument; the work is Rust's _set_quota). Comes after the registry
-- tables (tenancy.quotas, tenancy.quota_slots) and the Rust functions it calls (_quota_recount,
-- _set_quota): see src/install.rs.

-- Quotas. The tenant's budget is spread over slots; a statement spends from its backend's
-- slot and rebalances under a lock of every slot only when that slot runs short. Rows in use
-- are max_rows - sum(budget) at every commit.
CREATE FUNCTION tenancy._quota_take(p_tenant text, p_tbl regclass, p_n bigint, p_slots integer)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    my_slot integer := pg_catalog.pg_backend_pid() % p_slots;
    cap bigint;
    total bigint;
    rest bigint;
BEGIN
    -- In a subtransaction: an UPDATE that waited for a concurrent spender and then found too
    -- little budget keeps that slot locked (READ COMMITTED re-check), and a rebalancer holding
    -- one slot while it locks all of them in order can deadlock with another. Rolling the
    -- failed attempt back releases the lock.
    BEGIN
        UPDATE tenancy.quota_slots s SET budget = s.budget - p_n
         WHERE s.tenant = p_tenant AND s.tbl = p_tbl AND s.slot = my_slot AND s.budget >= p_n;
        IF FOUND THEN
            RETURN;
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'TQ001';
    EXCEPTION WHEN SQLSTATE 'TQ001' THEN
        NULL;
    END;
    -- Locking every slot waits for the spenders in flight; each statement below then reads
    -- what they committed.
    PERFORM 1 FROM tenancy.quota_slots s WHERE s.tenant = p_tenant AND s.tbl = p_tbl
      ORDER BY s.slot FOR UPDATE;
    SELECT q.max_rows INTO cap FROM tenancy.quotas q WHERE q.tenant = p_tenant AND q.tbl = p_tbl;
    SELECT pg_catalog.sum(s.budget) INTO total FROM tenancy.quota_slots s
     WHERE s.tenant = p_tenant AND s.tbl = p_tbl;
    IF cap IS NULL THEN
        RETURN;  -- the quota was removed meanwhile
    END IF;
    IF total < p_n THEN
        RAISE EXCEPTION USING ERRCODE = '54000',
            MESSAGE = pg_catalog.format(
                'pg_tenancy: row quota exceeded: tenant %s may keep at most %s rows in %s; it has %s and this statement adds %s',
                pg_catalog.quote_literal(p_tenant), cap, p_tbl, cap - total, p_n),
            HINT = 'delete rows of this tenant first, or ask an administrator to raise the quota with tenancy.set_quota()';
    END IF;
    rest := total - p_n;
    UPDATE tenancy.quota_slots s
       SET budget = rest / p_slots + CASE WHEN s.slot < rest % p_slots THEN 1 ELSE 0 END
     WHERE s.tenant = p_tenant AND s.tbl = p_tbl;
END
$$;

-- AFTER INSERT ... FOR EACH STATEMENT on a table with a quota (and its partitions).
-- TG_ARGV[0] is the tenant column. SECURITY DEFINER: inserting roles cannot write the slots.
CREATE FUNCTION tenancy._quota_spend() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    root regclass := coalesce(pg_catalog.pg_partition_root(TG_RELID), TG_RELID)::regclass;
    r record;
BEGIN
    FOR r IN EXECUTE pg_catalog.format(
        'SELECT q.tenant, q.slots, d.n
           FROM (SELECT %I::pg_catalog.text AS tenant, pg_catalog.count(*) AS n
                   FROM tenancy_new_rows GROUP BY 1) d
           JOIN tenancy.quotas q ON q.tenant = d.tenant AND q.tbl = $1
          ORDER BY q.tenant', TG_ARGV[0]) USING root
    LOOP
        PERFORM tenancy._quota_take(r.tenant, root, r.n, r.slots);
    END LOOP;
    RETURN NULL;
END
$$;

-- AFTER DELETE ... FOR EACH STATEMENT: deleted rows go back to the backend's slot.
CREATE FUNCTION tenancy._quota_refund() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    root regclass := coalesce(pg_catalog.pg_partition_root(TG_RELID), TG_RELID)::regclass;
    r record;
BEGIN
    FOR r IN EXECUTE pg_catalog.format(
        'SELECT q.tenant, q.slots, d.n
           FROM (SELECT %I::pg_catalog.text AS tenant, pg_catalog.count(*) AS n
                   FROM tenancy_old_rows GROUP BY 1) d
           JOIN tenancy.quotas q ON q.tenant = d.tenant AND q.tbl = $1
          ORDER BY q.tenant', TG_ARGV[0]) USING root
    LOOP
        UPDATE tenancy.quota_slots s SET budget = s.budget + r.n
         WHERE s.tenant = r.tenant AND s.tbl = root AND s.slot = pg_catalog.pg_backend_pid() % r.slots;
    END LOOP;
    RETURN NULL;
END
$$;

-- AFTER TRUNCATE: count every quota of the table again.
CREATE FUNCTION tenancy._quota_truncated() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    root regclass := coalesce(pg_catalog.pg_partition_root(TG_RELID), TG_RELID)::regclass;
BEGIN
    PERFORM tenancy._quota_recount(q.tenant, root::pg_catalog.oid)
       FROM tenancy.quotas q WHERE q.tbl = root ORDER BY q.tenant;
    RETURN NULL;
END
$$;

CREATE FUNCTION tenancy.set_quota(tenant text, tbl regclass, max_rows bigint) RETURNS void
LANGUAGE sql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT tenancy._set_quota(tenant, tbl::oid, max_rows) $$;
