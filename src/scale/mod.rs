//! Running on more than one node: what pg_tenancy does so that Citus keeps the contract and
//! keeps it fast (docs/scale-out.md). `citus` makes the registry reachable from every node;
//! `routing` sends a tenant's query to the one shard that holds the tenant's rows, without the
//! application naming the tenant (the planner hook, `tenancy.citus_routing`, and the rule that
//! a plan made for one tenant never serves another). `organizations` widens what an
//! organization's context reads, in the same planner hook and under the same invalidation
//! rule (docs/organizations.md). Protection of distributed tables lives with protection itself.

pub mod citus;
pub mod organizations;
pub mod routing;
