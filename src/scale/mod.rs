//! Scale-out on Citus: the registry made reachable from every node of a cluster
//! (docs/scale-out.md). Protection of distributed tables lives with protection itself.

pub mod citus;
