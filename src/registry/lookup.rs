//! Reads of the registry tables (tenants, signing keys, API keys, the carrier key), cached per
//! backend until the registry changes (see `registry::cache`).
//!
//! The tables are readable by the extension's owner only. A cache miss therefore goes through
//! `tenancy._registry_load()`, a SECURITY DEFINER function that fills this backend's cache and
//! returns nothing: callers of the context setters need no elevated rights of their own (a SET
//! clause per call is what makes SECURITY DEFINER costly), and nobody can read a secret
//! through the loader.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use pgrx::prelude::*;
use tenancy_core::Alg;

use crate::infra::errors::{self, SpiOrBug};
use crate::infra::spi;
use crate::registry::cache;
use crate::registry::plans::{self, Limits};

pub struct SigningKey {
    pub kid: String,
    pub alg: Alg,
    pub secret: Vec<u8>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TenantStatus {
    Active,
    Inactive,
    Unregistered,
}

/// A tenant as this backend caches it: its status and, when its plan or settings set any,
/// its effective limits (`registry::plans`).
#[derive(Clone)]
pub struct TenantEntry {
    /// Inactive also when an ancestor is: deactivating an organization stops its subtree.
    pub status: TenantStatus,
    pub limits: Option<Rc<Limits>>,
    /// The tenant and every descendant (sorted, the tenant itself included); one id for a
    /// leaf. Descendants are listed whatever their status: an organization's rows of a
    /// deactivated location stay its own to read.
    pub subtree: Rc<Vec<String>>,
    /// The top of the tenant's tree (the tenant itself when it has no parent).
    pub root: Rc<str>,
}

impl TenantEntry {
    pub fn is_organization(&self) -> bool {
        self.subtree.len() > 1
    }
}

/// How deep the tenant tree may be: an organization, its divisions, their locations and one
/// level below. Bounded so that every walk of the tree is a fixed number of steps, and so
/// that a cycle made behind the extension's back (a direct UPDATE) cannot loop.
pub const MAX_DEPTH: usize = 4;

#[derive(Clone)]
pub struct ApiKeyRow {
    pub tenant: String,
    pub label: String,
    pub roles: Vec<String>,
    pub secret_hash: Vec<u8>,
    pub expires_at: Option<i64>,
    pub revoked: bool,
}

#[derive(Default)]
struct Loaded {
    generation: u64,
    carrier_key: Option<Rc<Vec<u8>>>,
    signing_keys: Option<Rc<Vec<SigningKey>>>,
    tenants: HashMap<String, TenantEntry>,
    api_keys: HashMap<String, Option<ApiKeyRow>>,
    /// `Some(None)`: read, and there is no pseudonym secret.
    pseudonym_secret: Option<Option<Rc<Vec<u8>>>>,
    /// A tenant's `settings->'min_n'` (None: not set, or not a positive number).
    tenant_min_n: HashMap<String, Option<u32>>,
}

const MAX_CACHED_ROWS: usize = 10_000;

thread_local! {
    static LOADED: RefCell<Loaded> = RefCell::new(Loaded::default());
}

/// The registry tables whose changes every backend must see from its next transaction.
const REGISTRY_TABLES: [&str; 7] = [
    "tenants",
    "signing_keys",
    "api_keys",
    "carrier_key",
    "pseudonym_secrets",
    "plans",
    "support_sessions",
];

/// Drops what an older generation loaded, and learns the registry OIDs first so that no change
/// made after this point can go unnoticed.
fn fresh<R>(f: impl FnOnce(&mut Loaded) -> R) -> R {
    if !cache::registry_oids_known() {
        let oids = crate::infra::spi::pinned(|| {
            Spi::connect(|c| {
                c.select(
                    "SELECT c.oid::pg_catalog.int8 FROM pg_catalog.pg_class c
                  WHERE c.relnamespace OPERATOR(pg_catalog.=) 'tenancy'::pg_catalog.regnamespace
                    AND c.relname::pg_catalog.text OPERATOR(pg_catalog.=) ANY ($1)",
                    None,
                    &[REGISTRY_TABLES.to_vec().into()],
                )?
                .map(|row| row.get::<i64>(1))
                .collect::<Result<Vec<_>, _>>()
            })
        })
        .or_bug("reading the registry's tables");
        let oids: Vec<pg_sys::Oid> = oids
            .into_iter()
            .flatten()
            .map(|o| pg_sys::Oid::from(o as u32))
            .collect();
        // Learn the OIDs under the generation they were read in; a change racing with this
        // bumps the generation and forgets them again. Fewer than expected is never trusted:
        // an unknown list makes every relation's invalidation count as a registry change.
        if oids.len() == REGISTRY_TABLES.len() {
            cache::set_registry_oids(&oids);
        }
    }
    let generation = cache::generation();
    LOADED.with(|l| {
        let mut l = l.borrow_mut();
        if l.generation != generation {
            *l = Loaded {
                generation,
                ..Loaded::default()
            };
        }
        f(&mut l)
    })
}

fn load_carrier_key() {
    let key = spi::select_one::<Vec<u8>>("SELECT secret FROM tenancy.carrier_key", &[])
        .or_bug("reading the carrier key")
        .unwrap_or_else(|| {
            errors::internal(
                "the carrier key is missing",
                "reinstall the extension (DROP EXTENSION pg_tenancy; CREATE EXTENSION pg_tenancy)",
            )
        });
    let key = Rc::new(key);
    fresh(|l| l.carrier_key = Some(key));
}

fn load_signing_keys() {
    let rows = crate::infra::spi::pinned(|| Spi::connect(|c| {
        c.select(
            "SELECT kid, alg, secret FROM tenancy.signing_keys WHERE retired_at IS NULL ORDER BY kid",
            None,
            &[],
        )?
        .map(|row| Ok((row.get::<String>(1)?, row.get::<String>(2)?, row.get::<Vec<u8>>(3)?)))
        .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    }))
    .or_bug("reading signing keys");
    let keys: Vec<SigningKey> = rows
        .into_iter()
        .filter_map(|(kid, alg, secret)| {
            Some(SigningKey {
                kid: kid?,
                alg: Alg::parse(&alg?)?,
                secret: secret?,
            })
        })
        .collect();
    let keys = Rc::new(keys);
    fresh(|l| l.signing_keys = Some(keys));
}

fn load_tenant(id: &str) {
    let row = crate::infra::spi::select_row(
        // Whether it has a parent or children comes with the row: a tenant outside any tree
        // (the common case) costs one read, as before organizations.
        "SELECT t.status, p.limits, t.settings, t.parent IS NOT NULL,
                EXISTS (SELECT 1 FROM tenancy.tenants c WHERE c.parent = t.id)
               FROM tenancy.tenants t LEFT JOIN tenancy.plans p ON p.plan = t.plan
              WHERE t.id = $1",
        &[id.into()],
        |r| {
            Ok((
                r.get::<String>(1)?,
                r.get::<pgrx::JsonB>(2)?,
                r.get::<pgrx::JsonB>(3)?,
                r.get::<bool>(4)?.unwrap_or(false),
                r.get::<bool>(5)?.unwrap_or(false),
            ))
        },
    )
    .or_bug("reading the tenant registry");
    let entry = match row {
        None => unregistered(id),
        Some((status, plan, settings, has_parent, has_children)) => {
            let (ancestors_active, root) = if has_parent {
                ancestors(id)
            } else {
                (true, id.to_string())
            };
            TenantEntry {
                status: if status.as_deref() == Some("active") && ancestors_active {
                    TenantStatus::Active
                } else {
                    TenantStatus::Inactive
                },
                limits: plans::effective(
                    plan.as_ref().map(|j| &j.0),
                    settings.as_ref().map(|j| &j.0),
                )
                .map(Rc::new),
                subtree: Rc::new(if has_children {
                    descendants(id)
                } else {
                    vec![id.to_string()]
                }),
                root: Rc::from(root.as_str()),
            }
        }
    };
    fresh(|l| {
        if l.tenants.len() >= MAX_CACHED_ROWS {
            l.tenants.clear();
        }
        l.tenants.insert(id.to_string(), entry);
    });
}

fn unregistered(id: &str) -> TenantEntry {
    TenantEntry {
        status: TenantStatus::Unregistered,
        limits: None,
        subtree: Rc::new(vec![id.to_string()]),
        root: Rc::from(id),
    }
}

/// Whether every ancestor of `id` is active, and the top of its tree. One row at a time, at
/// most [`MAX_DEPTH`] steps (no recursive query: the registry is a set of reference tables
/// under Citus, scale/citus.rs); a cycle ends the walk where it began.
fn ancestors(id: &str) -> (bool, String) {
    let mut active = true;
    let mut current = id.to_string();
    let mut seen = vec![id.to_string()];
    for _ in 0..MAX_DEPTH {
        let parent = spi::select_row(
            "SELECT p.id, p.status OPERATOR(pg_catalog.=) 'active'
               FROM tenancy.tenants t JOIN tenancy.tenants p ON p.id OPERATOR(pg_catalog.=) t.parent
              WHERE t.id OPERATOR(pg_catalog.=) $1",
            &[current.as_str().into()],
            |r| Ok((r.get::<String>(1)?, r.get::<bool>(2)?)),
        )
        .or_bug("reading the tenant tree");
        let Some((Some(p), parent_active)) = parent else {
            break;
        };
        active &= parent_active == Some(true);
        if seen.contains(&p) {
            break;
        }
        seen.push(p.clone());
        current = p;
    }
    (active, current)
}

/// `id` and every tenant below it, at most [`MAX_DEPTH`] levels, sorted.
fn descendants(id: &str) -> Vec<String> {
    tree_below(id, MAX_DEPTH).0
}

/// `id` and every tenant below it down to `levels` levels (`id` is level 1), sorted, and how
/// many levels the tree below `id` has within that bound.
pub fn tree_below(id: &str, levels: usize) -> (Vec<String>, usize) {
    let mut all = vec![id.to_string()];
    let mut level = vec![id.to_string()];
    let mut height = 1;
    for _ in 1..levels {
        if level.is_empty() {
            break;
        }
        let next = spi::select_one::<Vec<String>>(
            "SELECT pg_catalog.array_agg(t.id) FROM tenancy.tenants t
              WHERE t.parent OPERATOR(pg_catalog.=) ANY ($1)",
            &[level.clone().into()],
        )
        .or_bug("reading the tenant tree")
        .unwrap_or_default();
        level = next.into_iter().filter(|c| !all.contains(c)).collect();
        if !level.is_empty() {
            height += 1;
        }
        all.extend(level.iter().cloned());
    }
    all.sort();
    (all, height)
}

fn load_tenant_min_n(id: &str) {
    let raw = spi::select_one::<String>(
"SELECT (settings OPERATOR(pg_catalog.->) 'min_n')::pg_catalog.text FROM tenancy.tenants WHERE id = $1",
&[id.into()],
)
    .or_bug("reading tenant settings");
    // Only a positive number counts; a fraction rounds up (raising, never lowering).
    let min_n = raw
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 1.0)
        .map(|v| v.ceil().min(f64::from(crate::infra::gucs::MAX_MIN_N)) as u32);
    fresh(|l| {
        if l.tenant_min_n.len() >= MAX_CACHED_ROWS {
            l.tenant_min_n.clear();
        }
        l.tenant_min_n.insert(id.to_string(), min_n);
    });
}

fn load_api_key(key_id: &str) {
    let row = crate::infra::spi::pinned(|| {
        Spi::connect(|c| {
            let table = c.select(
                "SELECT tenant, label, roles, secret_hash,
                    pg_catalog.floor(pg_catalog.date_part('epoch', expires_at))::pg_catalog.int8,
                    revoked_at IS NOT NULL
               FROM tenancy.api_keys WHERE key_id = $1",
                Some(1),
                &[key_id.into()],
            )?;
            if table.is_empty() {
                return Ok(None);
            }
            let row = table.first();
            Ok::<_, pgrx::spi::Error>(Some(ApiKeyRow {
                tenant: row.get::<String>(1)?.unwrap_or_default(),
                label: row.get::<String>(2)?.unwrap_or_default(),
                roles: row.get::<Vec<String>>(3)?.unwrap_or_default(),
                secret_hash: row.get::<Vec<u8>>(4)?.unwrap_or_default(),
                expires_at: row.get::<i64>(5)?,
                revoked: row.get::<bool>(6)?.unwrap_or(true),
            }))
        })
    })
    .or_bug("reading API keys");
    fresh(|l| {
        if l.api_keys.len() >= MAX_CACHED_ROWS {
            l.api_keys.clear();
        }
        l.api_keys.insert(key_id.to_string(), row);
    });
}

/// Whether `key` can name a row of `kind` at all. The loader is executable by PUBLIC and
/// caches what it is asked about (found or not), so a key that cannot exist is refused before
/// it reaches the cache: otherwise any role could park arbitrarily long strings in every
/// backend's memory, outside PostgreSQL's accounting.
fn loadable(kind: &str, key: &str) -> bool {
    match kind {
        "tenant" | "tenant_min_n" => tenancy_core::ident::valid_tenant_id(key),
        "api_key" => tenancy_core::apikey::parse_key_or_id(key) == Some(key),
        _ => true,
    }
}

/// Fills this backend's registry cache with the owner's rights. Returns nothing, so calling it
/// directly reveals nothing.
#[pg_extern(stable, parallel_safe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn _registry_load(kind: &str, key: default!(Option<&str>, "NULL")) {
    if key.is_some_and(|k| !loadable(kind, k)) {
        errors::bad_argument(
            format!("not a valid {} key", errors::user_input(kind)),
            None,
        );
    }
    match (kind, key) {
        ("carrier_key", _) => load_carrier_key(),
        ("signing_keys", _) => load_signing_keys(),
        ("tenant", Some(id)) => load_tenant(id),
        ("api_key", Some(id)) => load_api_key(id),
        ("tenant_min_n", Some(id)) => load_tenant_min_n(id),
        _ => errors::bad_argument("unknown registry kind".into(), None),
    }
}

fn via_loader(kind: &str, key: Option<&str>) {
    spi::registry_reads(|| {
        spi::pinned(|| {
            Spi::connect(|c| {
                c.select(
                    "SELECT tenancy._registry_load($1, $2)",
                    Some(1),
                    &[kind.into(), key.into()],
                )
                .map(|_| ())
            })
        })
    })
    .or_bug("loading the registry");
}

fn cached<T>(kind: &str, key: Option<&str>, get: impl Fn(&mut Loaded) -> Option<T>) -> T {
    if let Some(v) = fresh(&get) {
        return v;
    }
    via_loader(kind, key);
    fresh(&get).unwrap_or_else(|| errors::internal("loading the registry", kind))
}

pub fn carrier_key() -> Rc<Vec<u8>> {
    cached("carrier_key", None, |l| l.carrier_key.clone())
}

/// Live (not retired) signing keys.
pub fn signing_keys() -> Rc<Vec<SigningKey>> {
    cached("signing_keys", None, |l| l.signing_keys.clone())
}

pub fn tenant(id: &str) -> TenantEntry {
    if !loadable("tenant", id) {
        return unregistered(id);
    }
    cached("tenant", Some(id), |l| l.tenants.get(id).cloned())
}

/// The `min_n` a tenant's settings ask for, if any (tenancy.tenants.settings).
pub fn tenant_min_n(id: &str) -> Option<u32> {
    if !loadable("tenant_min_n", id) {
        return None;
    }
    cached("tenant_min_n", Some(id), |l| {
        l.tenant_min_n.get(id).copied()
    })
}

pub fn api_key(key_id: &str) -> Option<ApiKeyRow> {
    if !loadable("api_key", key_id) {
        return None;
    }
    cached("api_key", Some(key_id), |l| l.api_keys.get(key_id).cloned())
}

/// The master secret of `tenancy.pseudonymize()`: the newest row of
/// `tenancy.pseudonym_secrets`, or `None` when there is none.
pub fn pseudonym_secret() -> Option<Rc<Vec<u8>>> {
    if let Some(s) = fresh(|l| l.pseudonym_secret.clone()) {
        return s;
    }
    let secret = spi::registry_reads(|| {
        spi::select_one::<Vec<u8>>(
            "SELECT secret FROM tenancy.pseudonym_secrets ORDER BY created_at DESC, id DESC",
            &[],
        )
    })
    .or_bug("reading the pseudonym secret")
    .map(Rc::new);
    fresh(|l| l.pseudonym_secret = Some(secret.clone()));
    secret
}
