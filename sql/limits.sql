-- pg_tenancy: plan and tenant limits (src/registry/plans.rs, docs/operations.md "Limits and
-- quotas"), validated by CHECK constraints on tenancy.plans and tenancy.tenants.
--
-- Comes after the registry tables and tenancy._limits_valid() (Rust): a CHECK constraint's
-- function must exist when the constraint is added. See src/install.rs.

-- Limits are checked when they are written (22023 naming the bad key), not when a tenant next
-- sets its context.
ALTER TABLE tenancy.plans ADD CONSTRAINT plans_limits_valid CHECK (tenancy._limits_valid(limits, true));
ALTER TABLE tenancy.tenants ADD CONSTRAINT tenants_limits_valid CHECK (tenancy._limits_valid(settings, false));
