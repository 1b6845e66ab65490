-- pg_tenancy: the registry tables: tenants, signing keys, API keys, the carrier key, pseudonym
-- secrets, protected tables, enrolled schemas, entitlements, plans and quotas.
--
-- The `bootstrap` file of src/install.rs, so first: tables name no function, and every later
-- file (functions, policies, triggers, constraints) may refer to them. Privileges are set in
-- privileges.sql, after every object exists.

-- Tenants. Deactivation stops every token, API key and context of the tenant from the next
-- transaction on every backend (see src/registry/cache.rs for how).
CREATE TABLE tenancy.tenants (
    id          text PRIMARY KEY,
    name        text,
    plan        text,
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    settings    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    deactivated_at timestamptz,
    -- The organization this tenant belongs to (docs/organizations.md): its context reads this
    -- tenant's rows. Written by create_tenant() and move_tenant(), which refuse cycles and
    -- trees deeper than 4 levels; a rename carries the children along.
    parent      text REFERENCES tenancy.tenants (id) ON UPDATE CASCADE,
    CHECK (parent IS DISTINCT FROM id)
);
CREATE INDEX tenants_parent_idx ON tenancy.tenants (parent);

-- The tenant tree, one row per tenant: its depth (1 at the top), its root (the organization
-- pooled rules count) and its path from the root. Bounded like every walk of the tree, so a
-- cycle made behind the extension's back ends the recursion (tenancy.check() reports it).
CREATE VIEW tenancy.tenant_tree WITH (security_invoker = true) AS
WITH RECURSIVE tree (id, parent, depth, root, path) AS (
    SELECT t.id, t.parent, 1, t.id, ARRAY[t.id]
      FROM tenancy.tenants t WHERE t.parent IS NULL
    UNION ALL
    SELECT t.id, t.parent, tree.depth + 1, tree.root, tree.path || t.id
      FROM tenancy.tenants t JOIN tree ON t.parent = tree.id
     WHERE tree.depth < 8
)
SELECT tree.id, tree.parent, tree.depth, tree.root, tree.path,
       t.name, t.status,
       NOT EXISTS (SELECT 1 FROM tenancy.tenants c WHERE c.parent = tree.id) AS is_leaf
  FROM tree JOIN tenancy.tenants t ON t.id = tree.id;

-- HMAC keys that sign tokens. The secret column is readable by the extension owner only.
CREATE TABLE tenancy.signing_keys (
    kid         text PRIMARY KEY,
    alg         text NOT NULL CHECK (alg IN ('HS256', 'HS384', 'HS512')),
    secret      bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz
);

-- API keys: only the SHA-256 of the secret part is kept; the plaintext is shown once.
CREATE TABLE tenancy.api_keys (
    key_id      text PRIMARY KEY,
    tenant      text NOT NULL REFERENCES tenancy.tenants (id),
    label       text NOT NULL,
    roles       text[] NOT NULL DEFAULT '{}',
    secret_hash bytea NOT NULL CHECK (length(secret_hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX api_keys_tenant_idx ON tenancy.api_keys (tenant);

-- The key that signs the context carrier stored in tenancy.context. One row, made at
-- CREATE EXTENSION time, never shown to anyone.
CREATE TABLE tenancy.carrier_key (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    secret      bytea NOT NULL CHECK (length(secret) >= 32)
);

-- Master secrets of tenancy.pseudonymize(). The newest row is the one in use. Readable by the
-- extension owner only; admins see id and created_at.
CREATE TABLE tenancy.pseudonym_secrets (
    id          text PRIMARY KEY,
    secret      bytea NOT NULL CHECK (length(secret) BETWEEN 32 AND 1024),
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- What tenancy.protect() has done, so that it can be checked and undone.
CREATE TABLE tenancy.protected_tables (
    tbl           regclass PRIMARY KEY,
    tenant_column name NOT NULL,
    column_type   text NOT NULL,
    policy_name   name NOT NULL,
    index_name    name,           -- the tenant index protect() created, if it created one
    set_not_null  boolean NOT NULL DEFAULT false,  -- whether protect() added NOT NULL
    shared_column name,
    shared_index_name name,       -- the partial index on shared rows protect() created
    feature       text,
    isolation_qual text NOT NULL, -- the isolation policy as PostgreSQL deparses it (DDL guard)
    feature_qual  text,           -- likewise for the entitlement policy's USING
    guard_state   text[],         -- DDL guard: violations after the last command; NULL = unknown
    protected_at  timestamptz NOT NULL DEFAULT now(),
    protected_by  name NOT NULL DEFAULT current_user,
    -- Columns added after 0.1.0 come last, where ALTER EXTENSION UPDATE's ADD COLUMN puts them,
    -- so that an upgraded database and a fresh install have the same table.
    feature_check text            -- the entitlement policy's WITH CHECK (0.2.0)
);

-- Schemas whose new tables (with the tenant column) are protected as they are created.
CREATE TABLE tenancy.enrolled_schemas (
    schema_name   name PRIMARY KEY,
    tenant_column name NOT NULL,
    enrolled_at   timestamptz NOT NULL DEFAULT now()
);

-- Entitlements: feature X is on for tenant T from enabled_from until enabled_until.
-- Readable by everyone, filtered to the current tenant by a policy (features.sql).
CREATE TABLE tenancy.entitlements (
    tenant        text NOT NULL REFERENCES tenancy.tenants (id),
    feature       text NOT NULL,
    enabled_from  timestamptz NOT NULL DEFAULT now(),
    enabled_until timestamptz,
    config        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
    granted_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, feature),
    CHECK (enabled_until IS NULL OR enabled_until > enabled_from)
);

-- Plans: named sets of per-tenant limits (statement_timeout, lock_timeout, work_mem). A
-- tenant's plan names a row here; its settings may carry the same keys, which can only lower
-- the plan's (src/registry/plans.rs). Validated by CHECK constraints added in limits.sql.
CREATE TABLE tenancy.plans (
    plan        text PRIMARY KEY,
    limits      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(limits) = 'object'),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Row quotas per (tenant, protected table), enforced by statement triggers on that table
-- (quotas.sql). What a tenant may still insert is spread over `slots` rows of
-- tenancy.quota_slots, so concurrent inserters of one tenant spend from different rows; the
-- rows in use are always max_rows - sum(budget). See docs/operations.md, "Limits and quotas".
CREATE TABLE tenancy.quotas (
    tenant      text NOT NULL REFERENCES tenancy.tenants (id),
    tbl         regclass NOT NULL,
    max_rows    bigint NOT NULL CHECK (max_rows >= 0),
    slots       integer NOT NULL DEFAULT 8 CHECK (slots BETWEEN 1 AND 64),
    set_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, tbl)
);
CREATE INDEX quotas_tbl_idx ON tenancy.quotas (tbl);

CREATE TABLE tenancy.quota_slots (
    tenant      text NOT NULL,
    tbl         regclass NOT NULL,
    slot        integer NOT NULL,
    budget      bigint NOT NULL,   -- negative only when usage already exceeded max_rows at set_quota
    PRIMARY KEY (tenant, tbl, slot),
    FOREIGN KEY (tenant, tbl) REFERENCES tenancy.quotas (tenant, tbl) ON DELETE CASCADE
);
