//! The audit trail: `tenancy.audit()`, `verify_audit()`, `purge_audit()`, and
//! [`record`], the one entry point the extension's own events go through.
//!
//! Every row is written by [`write`], as the extension's owner (the table grants nobody
//! INSERT), under its tenant's head row lock in `tenancy.audit_heads` (see sql/audit.sql for
//! why that lock, and not an advisory lock, keeps the chain whole under REPEATABLE READ).
//! The chain itself (encoding and hash) is `tenancy_core::audit`; docs/audit.md defines it.

use std::cell::Cell;

use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Value};
use tenancy_core::audit::{self as chain, Row, Walker};
use tenancy_core::carrier::Context;
use tenancy_core::ident;

use crate::infra::args;
use crate::infra::errors::{self, SpiOrBug};
use crate::infra::roles;
use crate::infra::spi;

/// The chain of events that belong to no tenant (signing keys, protection, DDL guard
/// overrides, purges). Not a valid tenant id, so no context can ever carry it: only admins,
/// who read every chain, read it.
pub const SYSTEM_CHAIN: &str = "(system)";

thread_local! {
    static PURGING: Cell<bool> = const { Cell::new(false) };
}

/// One event to append to a chain.
pub struct Entry<'a> {
    pub tenant: &'a str,
    pub actor: Option<&'a str>,
    pub roles: &'a [String],
    pub support: Option<Value>,
    pub event: &'a str,
    pub detail: Value,
}

/// The extension's own events (docs/audit.md). `audit()` refuses them, so that an application
/// or a support engineer cannot write a row indistinguishable from one the extension wrote
/// (a `support_ended` while the session is still open, a `tenant_deactivated` that never was).
const RESERVED_EVENTS: &[&str] = &[
    "tenant_created",
    "tenant_deactivated",
    "tenant_reactivated",
    "tenant_plan_set",
    "tenant_settings_set",
    "tenant_exported",
    "tenant_purged",
    "quota_set",
    "api_key_created",
    "api_key_revoked",
    "support_begun",
    "support_ended",
    "support_write",
    "support_read",
    "tenant_renamed",
    "tenant_dropped",
    "signing_key_added",
    "signing_key_retired",
    "table_protected",
    "table_unprotected",
    "ddl_guard_override",
    "audit_purged",
    "job_dead_lettered",
];

fn check_event(event: &str) {
    if !ident::valid_event(event) {
        errors::bad_argument(
            "event must be 1 to 64 characters of a-z, 0-9, '_', '.', ':' or '-'".into(),
            Some("name events like 'invoice.approved' (lowercase ASCII: no event may look like another)"),
        );
    }
}

/// Whether `event` is, or reads as, one of the extension's own events (see
/// [`ident::event_key`]: `support.ended`, `support-ended` and `supp0rt_ended` read as
/// `support_ended`).
fn is_reserved(event: &str) -> bool {
    let key = ident::event_key(event);
    RESERVED_EVENTS.iter().any(|r| ident::event_key(r) == key)
}

/// Appends one row to `entry.tenant`'s chain and returns its id. Stamped here: the clock's
/// time (not the transaction's start, which an open transaction would keep in the past) and
/// the transaction's id; position and previous hash come from the
/// chain's head, locked for the rest of the transaction.
pub fn write(entry: Entry) -> i64 {
    check_event(entry.event);
    // The log's owner is the extension's owner; nobody else may insert.
    let _owner = crate::infra::owner::AsExtensionOwner::enter();
    // Every name is schema-qualified and every operator spelled OPERATOR(pg_catalog.…): this
    // runs with the caller's search_path, as the extension's owner.
    let head = Spi::connect_mut(|c| {
        let t = c.update(
            "INSERT INTO tenancy.audit_heads AS h (tenant_id) VALUES ($1)
             ON CONFLICT (tenant_id) DO UPDATE SET seq = h.seq
             RETURNING h.seq, h.hash,
                       pg_catalog.nextval('tenancy.audit_log_id_seq'::pg_catalog.regclass),
                       pg_catalog.pg_current_xact_id()::pg_catalog.text,
                       ($2::pg_catalog.jsonb)::pg_catalog.text,
                       ($3::pg_catalog.jsonb)::pg_catalog.text",
            None,
            &[
                entry.tenant.into(),
                JsonB(entry.detail.clone()).into(),
                entry.support.clone().map(JsonB).into(),
            ],
        )?;
        let r = t.first();
        Ok::<_, pgrx::spi::Error>((
            r.get::<i64>(1)?.unwrap_or_default(),
            r.get::<Vec<u8>>(2)?.unwrap_or_default(),
            r.get::<i64>(3)?.unwrap_or_default(),
            r.get::<String>(4)?.unwrap_or_default(),
            r.get::<String>(5)?.unwrap_or_default(),
            r.get::<String>(6)?,
        ))
    })
    .or_bug("locking the audit chain's head");
    let (head_seq, prev_hash, id, txid, detail_text, support_text) = head;
    let txid: u64 = txid
        .parse()
        .unwrap_or_else(|_| errors::internal("audit log", "unparsable transaction id"));
    let seq = head_seq + 1;
    // When it happened, by the clock: a transaction held open must not backdate its events.
    let at_micros = clock_micros();
    let row = Row {
        id,
        tenant_id: entry.tenant,
        seq,
        at_micros,
        txid,
        actor: entry.actor,
        roles: entry.roles,
        support: support_text.as_deref(),
        event: entry.event,
        detail: &detail_text,
    };
    let hash = chain::chain_hash(&prev_hash, &row).to_vec();
    Spi::connect_mut(|c| {
        c.update(
            "WITH ins AS (
                INSERT INTO tenancy.audit_log
                       (id, tenant_id, seq, at, txid, actor, roles, support, event, detail, prev_hash, hash)
                OVERRIDING SYSTEM VALUE
                VALUES ($1, $2, $3,
                        pg_catalog.to_timestamp(($11 OPERATOR(pg_catalog./) 1000000)::pg_catalog.float8)
                          OPERATOR(pg_catalog.+) (($11 OPERATOR(pg_catalog.%) 1000000)::pg_catalog.float8
                          OPERATOR(pg_catalog.*) '1 microsecond'::pg_catalog.interval),
                        pg_catalog.pg_current_xact_id(), $4, $5,
                        $6::pg_catalog.jsonb, $7, $8::pg_catalog.jsonb, $9, $10))
             UPDATE tenancy.audit_heads SET seq = $3, hash = $10
              WHERE tenant_id OPERATOR(pg_catalog.=) $2",
            None,
            &[
                id.into(),
                entry.tenant.into(),
                seq.into(),
                entry.actor.into(),
                entry.roles.to_vec().into(),
                support_text.as_deref().into(),
                entry.event.into(),
                detail_text.as_str().into(),
                prev_hash.into(),
                hash.into(),
                at_micros.into(),
            ],
        )
        .map(|_| ())
    })
    .or_bug("appending to the audit log");
    id
}

/// [`write`] for an operator's action on a tenant (deactivation, plan, settings, keys, quotas,
/// export, purge): it never waits for the tenant's own transactions. A
/// tenant that wrote an audit row holds its chain's head until its transaction ends; if the
/// head is held, the event goes to the system chain instead, with `tenant` and
/// `tenant_chain_busy: true` added to its detail, so the operator is neither blocked nor
/// unrecorded (docs/audit.md, "Operator events").
pub fn write_nowait(entry: Entry) -> i64 {
    if entry.tenant == SYSTEM_CHAIN || head_free(entry.tenant) {
        return write(entry);
    }
    let mut detail = serde_json::Map::new();
    detail.insert("tenant".into(), Value::String(entry.tenant.to_string()));
    detail.insert("tenant_chain_busy".into(), Value::Bool(true));
    if let Value::Object(m) = entry.detail {
        for (k, v) in m {
            detail.entry(k).or_insert(v);
        }
    }
    write(Entry {
        tenant: SYSTEM_CHAIN,
        actor: entry.actor,
        roles: entry.roles,
        support: entry.support,
        event: entry.event,
        detail: Value::Object(detail),
    })
}

/// Locks `tenant`'s chain head if nobody holds it (then [`write`] goes ahead at once); false
/// when another transaction holds it. A chain with no head yet counts as free.
pub fn head_free(tenant: &str) -> bool {
    let _owner = crate::infra::owner::AsExtensionOwner::enter();
    Spi::connect_mut(|c| {
        let locked = c.update(
            "SELECT 1 FROM tenancy.audit_heads
              WHERE tenant_id OPERATOR(pg_catalog.=) $1 FOR UPDATE SKIP LOCKED",
            None,
            &[tenant.into()],
        )?;
        if !locked.is_empty() {
            return Ok(true);
        }
        let exists = c.update(
            "SELECT EXISTS (SELECT 1 FROM tenancy.audit_heads
                             WHERE tenant_id OPERATOR(pg_catalog.=) $1)",
            None,
            &[tenant.into()],
        )?;
        Ok::<_, pgrx::spi::Error>(!exists.first().get_one::<bool>()?.unwrap_or(false))
    })
    .or_bug("probing the audit chain's head")
}

/// The clock's time as microseconds since the Unix epoch: the value the row's `at` column
/// stores.
fn clock_micros() -> i64 {
    // SAFETY: reads the system clock (PostgreSQL epoch, 2000-01-01).
    let ts = unsafe { pg_sys::GetCurrentTimestamp() };
    ts + 946_684_800_000_000
}

/// Records one of the extension's own events (tenant created, key retired, table protected,
/// support begun, ...) in `tenant`'s chain, or in [`SYSTEM_CHAIN`]. The actor is the acting
/// database role; a support context for the same tenant adds its support mark.
pub fn record(tenant: &str, event: &str, detail: Value) -> i64 {
    // Only a live session's mark: a replayed carrier of an ended session marks nothing.
    let support = crate::context::tenant_context::peek()
        .filter(|c| c.tenant == tenant)
        .filter(|c| {
            crate::infra::owner::as_extension_owner(|| {
                crate::context::tenant_context::support_session_state(c).is_ok()
            })
        })
        .and_then(|c| c.support_mark());
    let actor = roles::acting_role();
    write_nowait(Entry {
        tenant,
        actor: Some(&actor),
        roles: &[],
        support,
        event,
        detail,
    })
}

/// Writes an application event to the current tenant's audit trail; returns the row's id.
/// Tenant, actor, roles, support mark, time and transaction come from the verified context
/// and the server, never from the caller.
#[pg_extern(volatile, parallel_unsafe)]
fn audit(event: Option<&str>, detail: default!(Option<JsonB>, "'{}'")) -> i64 {
    // Not STRICT: a NULL event is refused, never silently not recorded.
    let Some(event) = event else {
        errors::bad_argument("event must not be NULL".into(), None)
    };
    let Some(resolved) = crate::context::tenant_context::current() else {
        errors::no_context()
    };
    refuse_on_citus_worker();
    check_event(event);
    if is_reserved(event) {
        errors::bad_argument(
            format!("event {event:?} is reserved for pg_tenancy's own records, or reads as one"),
            Some("name application events like 'invoice.approved'"),
        );
    }
    let detail = detail.map_or(json!({}), |d| d.0);
    if !detail.is_object() {
        errors::bad_argument("detail must be a jsonb object".into(), None);
    }
    let ctx: &Context = &resolved.ctx;
    write(Entry {
        tenant: &ctx.tenant,
        actor: ctx.actor.as_deref(),
        roles: &ctx.roles,
        support: ctx.support_mark(),
        event,
        detail,
    })
}

/// On Citus the trail is the coordinator's: its audit_log and chain heads are local tables
/// there, and every event pg_tenancy raises through the coordinator lands in them. A worker
/// has its own copies from its `CREATE EXTENSION`; an event written there would start a second
/// chain of the tenant that `audit()` and `verify_audit()` on the coordinator never see.
pub fn refuse_on_citus_worker() {
    if !crate::infra::catalog::citus_present() {
        return;
    }
    let worker = spi::select_one::<bool>(
        "SELECT groupid OPERATOR(pg_catalog.<>) 0 FROM pg_catalog.pg_dist_local_group",
        &[],
    )
    .or_bug("reading Citus's local group");
    if worker == Some(true) {
        errors::not_supported(
            "the audit trail lives on the Citus coordinator, and this is a worker".into(),
            Some("connect to the coordinator to record events: a worker's copy of the audit log is not the tenant's chain"),
        );
    }
}

/// Whether the acting role may read every chain: the admin tier (`grant_admin` gives
/// `SELECT` on `tenancy.tenants`, and the audit log's policy uses the same test), or a
/// superuser.
fn acting_role_is_admin() -> bool {
    // SAFETY: reads the backend's outer user id.
    let role = unsafe { pg_sys::GetOuterUserId() };
    // A read-only select (verify_audit works on a hot standby too).
    spi::select_one::<bool>(
"SELECT r.rolsuper OR pg_catalog.has_table_privilege($1, 'tenancy.tenants'::pg_catalog.regclass, 'SELECT')
               FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) $1",
&[role.into()],
)
    .or_bug("checking the acting role's privileges")
    .unwrap_or(false)
}

/// Recomputes one tenant's chain: `ok`, how many rows were checked, and the id of the first
/// row that breaks it (changed, or out of sequence because a row was deleted or inserted).
/// `ok` is also false, with no id, when the chain ends short of its recorded head (rows
/// deleted at the end). A tenant verifies its own chain; admins verify any.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn verify_audit(
    tenant: Option<&str>,
) -> TableIterator<
    'static,
    (
        name!(ok, bool),
        name!(checked, i64),
        name!(first_bad_id, Option<i64>),
    ),
> {
    let Some(tenant) = tenant else {
        errors::bad_argument("tenant must not be NULL".into(), None)
    };
    if tenant != SYSTEM_CHAIN {
        args::tenant_id(tenant);
    }
    if !acting_role_is_admin() {
        match crate::context::tenant_context::current() {
            None => errors::no_context(),
            Some(r) if r.ctx.tenant != tenant => errors::forbidden(
                "a tenant may verify only its own audit trail".into(),
                Some("verify the current tenant's chain, or ask an administrator"),
            ),
            Some(_) => {}
        }
    }
    let (walker, head) = walk(tenant);
    let ends_at_head = walker.head() == head;
    let first_bad = walker.first_bad();
    let ok = first_bad.is_none() && ends_at_head;
    TableIterator::once((ok, walker.checked, first_bad.map(|(id, _)| id)))
}

/// Walks a chain in seq order through a cursor (constant memory), and reads its recorded head.
fn walk(tenant: &str) -> (Walker, (i64, [u8; 32])) {
    crate::infra::spi::pinned(|| {
        Spi::connect(|c| {
            let mut walker = Walker::default();
            let mut cursor = c.open_cursor(
                "SELECT id, tenant_id, seq,
                    (EXTRACT(epoch FROM at) OPERATOR(pg_catalog.*) 1000000)::pg_catalog.int8,
                    txid::pg_catalog.text, actor, roles, support::pg_catalog.text, event,
                    detail::pg_catalog.text, prev_hash, hash
               FROM tenancy.audit_log WHERE tenant_id OPERATOR(pg_catalog.=) $1
              ORDER BY seq, id",
                &[tenant.into()],
            );
            loop {
                let batch = cursor.fetch(1000)?;
                if batch.is_empty() {
                    break;
                }
                for r in batch {
                    let txid = r.get::<String>(5)?.unwrap_or_default();
                    let roles: Vec<String> = r
                        .get::<Vec<Option<String>>>(7)?
                        .unwrap_or_default()
                        .into_iter()
                        .map(Option::unwrap_or_default)
                        .collect();
                    let tenant_id = r.get::<String>(2)?.unwrap_or_default();
                    let actor = r.get::<String>(6)?;
                    let support = r.get::<String>(8)?;
                    let event = r.get::<String>(9)?.unwrap_or_default();
                    let detail = r.get::<String>(10)?.unwrap_or_default();
                    let row = Row {
                        id: r.get::<i64>(1)?.unwrap_or_default(),
                        tenant_id: &tenant_id,
                        seq: r.get::<i64>(3)?.unwrap_or_default(),
                        at_micros: r.get::<i64>(4)?.unwrap_or_default(),
                        txid: txid.parse().unwrap_or(u64::MAX),
                        actor: actor.as_deref(),
                        roles: &roles,
                        support: support.as_deref(),
                        event: &event,
                        detail: &detail,
                    };
                    let prev = r.get::<Vec<u8>>(11)?.unwrap_or_default();
                    let hash = r.get::<Vec<u8>>(12)?.unwrap_or_default();
                    walker.push(&row, &prev, &hash);
                }
            }
            let t = c.select(
            "SELECT seq, hash FROM tenancy.audit_heads WHERE tenant_id OPERATOR(pg_catalog.=) $1",
            Some(1),
            &[tenant.into()],
        )?;
            let head = if t.is_empty() {
                (0, chain::GENESIS)
            } else {
                let r = t.first();
                let hash = r.get::<Vec<u8>>(2)?.unwrap_or_default();
                (
                    r.get::<i64>(1)?.unwrap_or_default(),
                    <[u8; 32]>::try_from(hash.as_slice()).unwrap_or([0xff; 32]),
                )
            };
            Ok::<_, pgrx::spi::Error>((walker, head))
        })
    })
    .or_bug("reading the audit log")
}

/// Erases one tenant's audit trail (for instance after the tenant itself was purged).
/// Superuser only; `confirm` must be `purge audit <tenant>` (a different phrase from
/// purge_tenant's `purge <tenant>`, so one pasted confirmation cannot do both). The purge is itself recorded, with
/// the erased chain's length and head hash, in the system chain. Returns the rows deleted.
#[pg_extern(volatile, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
pub(crate) fn purge_audit(tenant: &str, confirm: &str) -> i64 {
    // SAFETY: reads the outer user's superuser flag from the syscache.
    let superuser = unsafe { pg_sys::superuser_arg(pg_sys::GetOuterUserId()) };
    if !superuser {
        errors::forbidden("only a superuser may purge an audit trail".into(), None);
    }
    if tenant == SYSTEM_CHAIN {
        errors::bad_argument(
            "the system chain records every purge and cannot be purged".into(),
            None,
        );
    }
    if confirm != format!("purge audit {tenant}") {
        errors::bad_argument(
            "confirm does not match; nothing was purged".into(),
            Some("confirm with 'purge audit <tenant>', e.g. tenancy.purge_audit('acme', 'purge audit acme')"),
        );
    }
    let (walker, head) = walk(tenant);
    let deleted = {
        PURGING.with(|p| p.set(true));
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                PURGING.with(|p| p.set(false));
            }
        }
        let _reset = Reset;
        Spi::connect_mut(|c| {
            let t = c.update(
                "WITH gone AS (DELETE FROM tenancy.audit_log WHERE tenant_id OPERATOR(pg_catalog.=) $1 RETURNING 1),
                      head AS (DELETE FROM tenancy.audit_heads WHERE tenant_id OPERATOR(pg_catalog.=) $1)
                 SELECT pg_catalog.count(*) FROM gone",
                None,
                &[tenant.into()],
            )?;
            t.first().get_one::<i64>()
        })
        .or_bug("purging the audit log")
        .unwrap_or(0)
    };
    record(
        SYSTEM_CHAIN,
        "audit_purged",
        json!({
            "tenant": tenant,
            "rows": deleted,
            "head_seq": head.0,
            "head_hash": hex(&head.1),
            "verified_before_purge": walker.first_bad().is_none() && walker.head() == head,
        }),
    );
    deleted
}

/// A chain's head: (seq, hash as hex) of its last row; (0, "") for a chain without rows.
/// Read as the extension's owner.
pub fn head(tenant: &str) -> (i64, String) {
    let _owner = crate::infra::owner::AsExtensionOwner::enter();
    Spi::connect(|c| {
        let t = c.select(
            "SELECT seq, hash FROM tenancy.audit_heads WHERE tenant_id OPERATOR(pg_catalog.=) $1",
            Some(1),
            &[tenant.into()],
        )?;
        if t.is_empty() {
            return Ok((0, String::new()));
        }
        let r = t.first();
        Ok::<_, pgrx::spi::Error>((
            r.get::<i64>(1)?.unwrap_or(0),
            hex(&r.get::<Vec<u8>>(2)?.unwrap_or_default()),
        ))
    })
    .or_bug("reading an audit chain's head")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// For the audit log's DELETE trigger: true only while purge_audit() deletes.
#[pg_extern(stable, parallel_safe)]
fn _audit_purging() -> bool {
    PURGING.with(Cell::get)
}
