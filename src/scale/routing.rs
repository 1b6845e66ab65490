//! Routing a tenant's query to one shard on Citus.
//!
//! Citus prunes shards only on a constant compared with the distribution column; the isolation
//! policy of a distributed table compares the tenant column with a STABLE getter call
//! (`tenant_id = tenancy.current_tenant()`, the bare form of `protection::policy`), so an
//! RLS-only query goes to every shard. The extension knows both halves: the verified tenant and
//! that the distribution column is the tenant column. This planner hook runs before Citus's
//! (pg_tenancy comes after citus in `shared_preload_libraries`) and, for each relation whose
//! row security contains exactly that conjunct, adds the same conjunct with the getter replaced
//! by its present value, a Const of the getter's type. It restricts nothing the policy does not
//! already restrict, so it cannot widen or narrow what a query sees while the context is the
//! one it was planned for.
//!
//! Where the conjunct goes: into the WHERE clause of the relation's own query level when the
//! relation is reached only through inner joins (Citus's fast-path planner looks there), else
//! into the relation's security quals (a filter on the relation itself, so a LEFT or FULL
//! join's null-extended rows stay as they were).
//!
//! The rule that keeps a plan of one tenant from serving another: a routed plan is valid only
//! while the carrier names the tenant it was made for, or names none (then the policy shows no
//! rows, and so does the plan). Routed plans carry a private plan-invalidation item; the assign
//! hook of `tenancy.context` (every `SET`, `SET LOCAL`, `RESET`, transaction end) looks the new
//! carrier up among those this backend verified (the setters remember theirs before setting
//! it) and, when it names another tenant or one not known here (a carrier forwarded by a
//! pooler), fires the plan cache's own invalidation for that item before anything can run
//! under it. Cached generic plans (prepared statements, PL/pgSQL, extended protocol) are then
//! re-planned on their next use; custom plans are made per execution anyway. Behind the rule,
//! an executor-start hook refuses (55000) a routed plan starting under another tenant's
//! context, for what the plan cache's invalidation cannot reach. A plan that is already
//! running (an open cursor) keeps its constant: fetched under another tenant it returns no
//! rows, as the policy still applies.

use core::ffi::{c_char, c_int, c_void, CStr};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::prelude::*;

use crate::context::tenant_context;
use crate::infra::errors;
use crate::infra::spi;
use crate::registry::cache::{self, Resolved};
use crate::scale::organizations::{self, Kind};

pub static CITUS_ROUTING: GucSetting<bool> = GucSetting::<bool>::new(true);

/// The planner hook this one wraps (Citus's).
static mut PREV_PLANNER: pg_sys::planner_hook_type = None;
/// The executor-start hook this one wraps (Citus's).
static mut PREV_EXECUTOR_START: pg_sys::ExecutorStart_hook_type = None;

/// The plan-invalidation items plans carry. The foreign-data-wrapper cache is the quietest
/// syscache: only the plan cache listens to it, and a collision with a real wrapper's hash
/// costs a re-plan, nothing more. Not 0, which means "every entry".
const INVAL_CACHE: u32 = pg_sys::SysCacheIdentifier::FOREIGNDATAWRAPPEROID;
/// Carried by plans with a tenant constant.
const ROUTED_HASH: u32 = 0x7e4a_17c3;
/// Carried by plans made without a context that would route with one.
const UNROUTED_HASH: u32 = 0x7e4a_17c4;
/// Carried by plans of protected tables made under a leaf's context (or none): stale under
/// an organization's, which would read only its own rows through them.
const LEAF_HASH: u32 = 0x7e4a_17c5;
/// Carried by plans widened for an organization's context: correct under any context (the
/// subtree is read when they run) but re-planned under a leaf's, so that a leaf always runs
/// its own single-equality plan.
const ORG_HASH: u32 = 0x7e4a_17c6;

/// Citus was loaded before pg_tenancy: routing and its executor-start check are on.
static mut CITUS_FIRST: bool = false;

thread_local! {
    /// The tenant whose constant the valid routed plans carry; None when there is none.
    static PLANNED_FOR: RefCell<Option<String>> = const { RefCell::new(None) };
    /// A plan made without a context that would route with one may still be valid.
    static UNROUTED: Cell<bool> = const { Cell::new(false) };
    /// Plans carrying LEAF_HASH / ORG_HASH may still be valid.
    static LEAF_PLANS: Cell<bool> = const { Cell::new(false) };
    static ORG_PLANS: Cell<bool> = const { Cell::new(false) };
    /// Relation → the attribute number of its hash distribution column (None: not a hash
    /// distributed table). Dropped by a relcache invalidation of the relation.
    static DISTRIBUTION: RefCell<HashMap<pg_sys::Oid, Option<i16>>> = RefCell::new(HashMap::new());
}

/// From `_PG_init`. The setting always exists. The planner hook is installed unless Citus
/// is to be loaded after pg_tenancy (it refuses to load after another planner hook); routing
/// and the executor-start check only when Citus was loaded first.
pub fn init() {
    GucRegistry::define_bool_guc(
        c"tenancy.citus_routing",
        c"Route a tenant's queries on Citus distributed tables to the tenant's shard.",
        c"Adds the verified context's tenant as a constant on the distribution column of protected distributed tables (equal to what the isolation policy enforces), so Citus runs the query on one shard. Off: such queries run on every shard, with the same results.",
        &CITUS_ROUTING,
        GucContext::Suset,
        GucFlags::default(),
    );
    let order = citus_order();
    if order == CitusOrder::After {
        return;
    }
    // SAFETY: _PG_init runs once, in the postmaster (or at first use in a backend), before
    // this backend plans a query.
    unsafe {
        PREV_PLANNER = pg_sys::planner_hook;
        pg_sys::planner_hook = Some(plan);
        if order == CitusOrder::Before {
            CITUS_FIRST = true;
            PREV_EXECUTOR_START = pg_sys::ExecutorStart_hook;
            pg_sys::ExecutorStart_hook = Some(executor_start);
            pg_sys::CacheRegisterRelcacheCallback(
                Some(distribution_changed),
                pg_sys::Datum::from(0usize),
            );
        }
    }
    cache::on_carrier_change(carrier_changed);
    cache::on_registry_change(registry_changed);
}

fn citus_first() -> bool {
    // SAFETY: written once in _PG_init, before any query.
    unsafe { CITUS_FIRST }
}

#[derive(PartialEq, Eq)]
enum CitusOrder {
    /// Citus was loaded first: its planner hook is the one this one wraps.
    Before,
    /// Citus comes later in shared_preload_libraries: no hook may be installed before it.
    After,
    /// No Citus in shared_preload_libraries.
    Absent,
}

fn citus_order() -> CitusOrder {
    if citus_loaded_first() {
        return CitusOrder::Before;
    }
    // SAFETY: plain reads of postmaster globals during shared_preload_libraries processing.
    let list = unsafe {
        if !pg_sys::process_shared_preload_libraries_in_progress
            || pg_sys::shared_preload_libraries_string.is_null()
        {
            return CitusOrder::Absent;
        }
        CStr::from_ptr(pg_sys::shared_preload_libraries_string)
            .to_string_lossy()
            .into_owned()
    };
    let citus = list.split(',').any(|n| {
        let n = n.trim().trim_matches('"');
        let n = n.rsplit('/').next().unwrap_or(n);
        n.strip_suffix(".so").unwrap_or(n) == "citus"
    });
    if citus {
        CitusOrder::After
    } else {
        CitusOrder::Absent
    }
}

/// Citus installs its planner hook at load and refuses to load after another one: the hook is
/// installed only when Citus was loaded before pg_tenancy, so it wraps Citus's and runs first.
/// Without Citus (or loaded the other way round) nothing is installed and nothing changes.
fn citus_loaded_first() -> bool {
    // SAFETY: plain reads of postmaster globals during shared_preload_libraries processing.
    let list = unsafe {
        let hook = pg_sys::planner_hook;
        if !pg_sys::process_shared_preload_libraries_in_progress
            || hook.is_none()
            || pg_sys::shared_preload_libraries_string.is_null()
        {
            return false;
        }
        CStr::from_ptr(pg_sys::shared_preload_libraries_string)
            .to_string_lossy()
            .into_owned()
    };
    let names: Vec<&str> = list
        .split(',')
        .map(|n| {
            let n = n.trim().trim_matches('"');
            let n = n.rsplit('/').next().unwrap_or(n);
            n.strip_suffix(".so").unwrap_or(n)
        })
        .collect();
    let citus = names.iter().position(|n| *n == "citus");
    let us = names.iter().position(|n| *n == "pg_tenancy");
    matches!((citus, us), (Some(c), Some(u)) if c < u)
}

#[pg_guard]
unsafe extern "C-unwind" fn plan(
    parse: *mut pg_sys::Query,
    query_string: *const c_char,
    cursor_options: c_int,
    bound_params: pg_sys::ParamListInfo,
) -> *mut pg_sys::PlannedStmt {
    let epoch = cache::carrier_epoch();
    // SAFETY: the planner hands a valid, writable Query (a copy where it is cached). Widened
    // first: a widened conjunct is no longer the equality routing adds a constant for, so an
    // organization's query fans out instead of running on its own tenant's shard alone.
    let kind = if parse.is_null() {
        Kind::None
    } else {
        unsafe { organizations::widen(parse) }
    };
    let routing = if citus_first() && CITUS_ROUTING.get() && !parse.is_null() {
        unsafe { route(parse) }
    } else {
        Routing::None
    };
    // SAFETY: a copy of the hook pointer set once in _PG_init; errors raised below unwind
    // through the guarded boundary.
    let prev = unsafe { PREV_PLANNER };
    let result = unsafe {
        // pgrx's own wrapper of standard_planner guards itself: inside a second boundary an
        // ERROR would become a panic that cannot unwind (an abort), as the hook found on a
        // server without Citus, where it is the first planner hook.
        match prev {
            Some(p) => pg_sys::ffi::pg_guard_ffi_boundary(|| {
                p(parse, query_string, cursor_options, bound_params)
            }),
            None => pg_sys::standard_planner(parse, query_string, cursor_options, bound_params),
        }
    };
    if result.is_null() {
        return result;
    }
    let kind_hash = match kind {
        Kind::None => None,
        Kind::Leaf => {
            LEAF_PLANS.with(|l| l.set(true));
            Some(LEAF_HASH)
        }
        Kind::Organization => {
            ORG_PLANS.with(|o| o.set(true));
            Some(ORG_HASH)
        }
    };
    // SAFETY: see add_items().
    unsafe { add_items(result, kind_hash) };
    if routing == Routing::None {
        return result;
    }
    if cache::carrier_epoch() != epoch {
        // Planning ran something that changed the context: the constant may belong to the old
        // tenant and the change that would invalidate this plan is already past.
        errors::not_in_state(
            "the tenant context changed while a query was being planned".into(),
            Some("set the context before the statement, not inside it"),
        );
    }
    let mut planned_for = None;
    let hash = match routing {
        Routing::For(tenant) => {
            planned_for = Some(tenant_hash(&tenant));
            let other = PLANNED_FOR.with(|p| {
                let mut p = p.borrow_mut();
                let other = p.as_ref().is_some_and(|t| *t != tenant);
                *p = Some(tenant);
                other
            });
            if other {
                // Not reached while every carrier change passes the assign hook; kept so that
                // two tenants' constants can never be valid side by side.
                // SAFETY: see invalidate().
                unsafe { invalidate(ROUTED_HASH) };
            }
            ROUTED_HASH
        }
        _ => {
            UNROUTED.with(|u| u.set(true));
            UNROUTED_HASH
        }
    };
    // SAFETY: see add_items().
    unsafe {
        add_items(result, Some(hash));
        add_items(result, planned_for);
    }
    result
}

/// Appends a private plan-invalidation item to the plan. The items are nodes allocated in the
/// planner's memory context, appended to the plan's own list (copied with the plan when the
/// plan cache keeps it).
unsafe fn add_items(result: *mut pg_sys::PlannedStmt, value: Option<u32>) {
    let Some(value) = value else { return };
    // SAFETY: see above.
    unsafe {
        let item = pg_sys::palloc0(std::mem::size_of::<pg_sys::PlanInvalItem>())
            as *mut pg_sys::PlanInvalItem;
        (*item).type_ = pg_sys::NodeTag::T_PlanInvalItem;
        (*item).cacheId = INVAL_CACHE as c_int;
        (*item).hashValue = value;
        (*result).invalItems = pg_sys::lappend((*result).invalItems, item.cast());
    }
}

/// The tenant a routed plan was made for, as it is recorded in the plan (the item after the
/// routed marker). FNV-1a: a collision only weakens the backstop below, never isolation.
fn tenant_hash(tenant: &str) -> u32 {
    let h = tenant.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    // Never one of the markers, never 0 ("every entry").
    match h {
        0 | ROUTED_HASH | UNROUTED_HASH => 1,
        h => h,
    }
}

/// The recorded tenant of a routed plan; None for any other plan.
unsafe fn planned_tenant(stmt: *mut pg_sys::PlannedStmt) -> Option<u32> {
    // SAFETY: a PlannedStmt handed to the executor; its invalItems are PlanInvalItem nodes.
    unsafe {
        if stmt.is_null() {
            return None;
        }
        let items = (*stmt).invalItems;
        let n = list_len(items);
        let item =
            |i: usize| &*((*(*items).elements.add(i)).ptr_value as *mut pg_sys::PlanInvalItem);
        (0..n.saturating_sub(1))
            .find(|&i| {
                let it = item(i);
                it.cacheId == INVAL_CACHE as c_int && it.hashValue == ROUTED_HASH
            })
            .map(|i| item(i + 1).hashValue)
    }
}

/// The backstop behind the invalidation rule: a routed plan that reaches the executor under a
/// context of another tenant is refused (55000) instead of returning no rows. The rule keeps
/// cached plans from getting here; what it cannot reach does: a protocol-level unnamed
/// statement bound again after a switch (PostgreSQL keeps it outside the plan cache's
/// invalidation), or a SQL function that switches the context between its statements (planned
/// together before the first runs).
#[pg_guard]
unsafe extern "C-unwind" fn executor_start(query_desc: *mut pg_sys::QueryDesc, eflags: c_int) {
    // SAFETY: the executor hands a valid QueryDesc.
    let planned = unsafe {
        if eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as c_int != 0 {
            None
        } else {
            planned_tenant((*query_desc).plannedstmt)
        }
    };
    if let Some(planned) = planned {
        if let Some(now) = tenant_context::current() {
            if tenant_hash(&now.ctx.tenant) != planned {
                errors::not_in_state(
                    "this plan was made for another tenant's context".into(),
                    Some("prepare the statement again, or set the context before the statements that use it"),
                );
            }
        }
    }
    // SAFETY: a copy of the hook pointer set once in _PG_init.
    let prev = unsafe { PREV_EXECUTOR_START };
    unsafe {
        // As in plan(): pgrx's wrapper guards itself.
        match prev {
            Some(p) => pg_sys::ffi::pg_guard_ffi_boundary(|| p(query_desc, eflags)),
            None => pg_sys::standard_ExecutorStart(query_desc, eflags),
        }
    };
}

/// Marks every cached plan carrying the item `hash` invalid: the plan cache's own callback,
/// which only flips validity flags of generic plans (no allocation, no error), so it may run
/// inside the carrier's assign hook.
unsafe fn invalidate(hash: u32) {
    // SAFETY: see above.
    unsafe { pg_sys::CallSyscacheCallbacks(INVAL_CACHE as c_int, hash) };
}

/// Called by the carrier's assign hook with the new carrier (must not raise). Routed plans stay
/// valid only while the carrier names the tenant they were made for, or no tenant at all (then
/// the policy shows no rows, and so does a routed plan). A carrier this backend has not
/// verified yet names an unknown tenant: the routed plans go.
fn carrier_changed(carrier: &[u8]) {
    if carrier.is_empty() {
        // No context: a leaf's plan and a widened one both read nothing.
        return;
    }
    // A carrier not verified here yet may be an organization's or a leaf's: both kinds go.
    let organization = cache::verified(carrier).map(|r| r.organization);
    if organization != Some(false) {
        drop_plans(&LEAF_PLANS, LEAF_HASH);
    }
    if organization != Some(true) {
        drop_plans(&ORG_PLANS, ORG_HASH);
    }
    if !citus_first() {
        return;
    }
    if UNROUTED.with(|u| u.replace(false)) {
        // SAFETY: see invalidate().
        unsafe { invalidate(UNROUTED_HASH) };
    }
    let tenant = cache::verified(carrier).map(|r| r.ctx.tenant.clone());
    let stale = PLANNED_FOR.with(|p| {
        let Ok(mut p) = p.try_borrow_mut() else {
            return true;
        };
        let stale = p.is_some() && *p != tenant;
        if stale {
            *p = None;
        }
        stale
    });
    if stale {
        // SAFETY: see invalidate().
        unsafe { invalidate(ROUTED_HASH) };
    }
}

/// Invalidates the cached plans carrying `hash`, if any may be valid.
fn drop_plans(flag: &'static std::thread::LocalKey<Cell<bool>>, hash: u32) {
    if flag.with(|f| f.replace(false)) {
        // SAFETY: see invalidate().
        unsafe { invalidate(hash) };
    }
}

/// Called when this backend learns of a registry change (must not raise): a tenant that
/// gained its first child reads its children's rows from now on, and one that lost its last
/// reads its own alone, with no change of carrier.
fn registry_changed() {
    drop_plans(&LEAF_PLANS, LEAF_HASH);
    drop_plans(&ORG_PLANS, ORG_HASH);
}

#[pg_guard]
unsafe extern "C-unwind" fn distribution_changed(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    DISTRIBUTION.with(|d| {
        if let Ok(mut d) = d.try_borrow_mut() {
            if relid == pg_sys::InvalidOid {
                d.clear();
            } else {
                d.remove(&relid);
            }
        }
    });
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Getter {
    Text,
    Uuid,
    Int8,
}

/// A relation whose row security contains the bare isolation conjunct.
struct Candidate {
    query: *mut pg_sys::Query,
    rtindex: c_int,
    /// Reached only through inner joins: the constant may go into the WHERE clause.
    inner: bool,
    conjunct: *mut pg_sys::OpExpr,
    getter: Getter,
    attno: i16,
}

/// What a plan depends on.
#[derive(PartialEq, Eq)]
enum Routing {
    /// No protected table distributed by its tenant column.
    None,
    /// Such a table, no context (or none of the getter's type): no constant.
    Unrouted,
    /// Constants of this tenant were added.
    For(String),
}

/// Adds the tenant constant where it applies.
unsafe fn route(parse: *mut pg_sys::Query) -> Routing {
    let mut found: Vec<Candidate> = Vec::new();
    // SAFETY: walks the planner's own query tree; nothing is changed during the walk.
    unsafe { visit_query(parse, &mut found) };
    let mut relevant = false;
    let mut routed = false;
    let mut context: Option<Option<Rc<Resolved>>> = None;
    for c in found {
        // SAFETY: the candidate's pointers come from the live query tree.
        let relid = unsafe { (*rt_fetch(c.query, c.rtindex)).relid };
        if distribution_attno(relid) != Some(c.attno) {
            continue;
        }
        relevant = true;
        let resolved = context.get_or_insert_with(tenant_context::current);
        let Some(resolved) = resolved.as_ref() else {
            continue;
        };
        // SAFETY: builds nodes in the planner's memory context and links them into the tree.
        unsafe {
            let Some(value) = constant(c.getter, c.conjunct, resolved) else {
                continue;
            };
            let qual = pg_sys::copyObjectImpl(c.conjunct.cast()) as *mut pg_sys::OpExpr;
            (*(*(*qual).args).elements.add(1)).ptr_value = value.cast();
            if c.inner {
                let jt = (*c.query).jointree;
                (*jt).quals = pg_sys::make_and_qual((*jt).quals, qual.cast());
            } else {
                let rte = rt_fetch(c.query, c.rtindex);
                (*rte).securityQuals = pg_sys::lappend((*rte).securityQuals, qual.cast());
            }
        }
        routed = true;
    }
    match context {
        Some(Some(r)) if routed => Routing::For(r.ctx.tenant.clone()),
        _ if relevant => Routing::Unrouted,
        _ => Routing::None,
    }
}

/// The getter's present value as a Const of the getter's result type; None when the context's
/// tenant has no value of that type (the policy then matches nothing, and nothing is added).
unsafe fn constant(
    getter: Getter,
    conjunct: *mut pg_sys::OpExpr,
    resolved: &Resolved,
) -> Option<*mut pg_sys::Const> {
    let datum = match getter {
        Getter::Text => resolved.ctx.tenant.as_str().into_datum(),
        Getter::Uuid => resolved.tenant_uuid.into_datum(),
        Getter::Int8 => resolved.tenant_int8.into_datum(),
    }?;
    // SAFETY: the conjunct's second argument is the getter call (checked when it was found).
    unsafe {
        let call = (*(*(*conjunct).args).elements.add(1)).ptr_value as *mut pg_sys::FuncExpr;
        let typ = (*call).funcresulttype;
        let mut len: i16 = 0;
        let mut byval = false;
        pg_sys::get_typlenbyval(typ, &mut len, &mut byval);
        Some(pg_sys::makeConst(
            typ,
            -1,
            (*call).funccollid,
            c_int::from(len),
            datum,
            false,
            byval,
        ))
    }
}

unsafe fn rt_fetch(query: *mut pg_sys::Query, rtindex: c_int) -> *mut pg_sys::RangeTblEntry {
    // SAFETY: rtindex comes from a RangeTblRef of this query (1-based).
    unsafe {
        let rtable = (*query).rtable;
        (*(*rtable).elements.add((rtindex - 1) as usize)).ptr_value as *mut pg_sys::RangeTblEntry
    }
}

unsafe fn visit_query(query: *mut pg_sys::Query, found: &mut Vec<Candidate>) {
    // SAFETY: reads of the query tree the planner owns.
    unsafe {
        let q = &*query;
        let reads_rows = matches!(
            q.commandType,
            pg_sys::CmdType::CMD_SELECT
                | pg_sys::CmdType::CMD_UPDATE
                | pg_sys::CmdType::CMD_DELETE
                | pg_sys::CmdType::CMD_INSERT
        );
        if reads_rows && !q.jointree.is_null() {
            let mut rels = Vec::new();
            from_items(q.jointree.cast(), true, &mut rels);
            for (rtindex, inner) in rels {
                let rte = rt_fetch(query, rtindex);
                if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION || (*rte).securityQuals.is_null()
                {
                    continue;
                }
                if let Some((conjunct, getter, attno)) = isolation_conjunct(rte, rtindex) {
                    found.push(Candidate {
                        query,
                        rtindex,
                        inner,
                        conjunct,
                        getter,
                        attno,
                    });
                }
            }
        }
        pg_sys::query_tree_walker(query, Some(walk), (found as *mut Vec<Candidate>).cast(), 0);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn walk(node: *mut pg_sys::Node, context: *mut c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: `context` is the Vec handed to query_tree_walker by visit_query.
    unsafe {
        if pgrx::is_a(node, pg_sys::NodeTag::T_Query) {
            visit_query(node.cast(), &mut *(context as *mut Vec<Candidate>));
            return false;
        }
        pg_sys::expression_tree_walker(node, Some(walk), context)
    }
}

/// The relations of a join tree, each with whether it is reached through inner joins only.
unsafe fn from_items(node: *mut pg_sys::Node, inner: bool, out: &mut Vec<(c_int, bool)>) {
    if node.is_null() {
        return;
    }
    // SAFETY: join-tree nodes of a parsed query.
    unsafe {
        if pgrx::is_a(node, pg_sys::NodeTag::T_RangeTblRef) {
            out.push(((*(node as *mut pg_sys::RangeTblRef)).rtindex, inner));
        } else if pgrx::is_a(node, pg_sys::NodeTag::T_FromExpr) {
            let list = (*(node as *mut pg_sys::FromExpr)).fromlist;
            for i in 0..list_len(list) {
                from_items((*(*list).elements.add(i)).ptr_value.cast(), inner, out);
            }
        } else if pgrx::is_a(node, pg_sys::NodeTag::T_JoinExpr) {
            let j = &*(node as *mut pg_sys::JoinExpr);
            let (left, right) = match j.jointype {
                pg_sys::JoinType::JOIN_INNER => (inner, inner),
                pg_sys::JoinType::JOIN_LEFT => (inner, false),
                pg_sys::JoinType::JOIN_RIGHT => (false, inner),
                _ => (false, false),
            };
            from_items(j.larg, left, out);
            from_items(j.rarg, right, out);
        }
    }
}

fn list_len(list: *mut pg_sys::List) -> usize {
    if list.is_null() {
        0
    } else {
        // SAFETY: a non-NIL List.
        unsafe { (*list).length as usize }
    }
}

/// The conjunct `tenant_col = tenancy.current_tenant*()` among the relation's security quals,
/// standing alone (a conjunct of its own: the only permissive policy that applies, so every
/// visible row satisfies it). A shared-rows policy ORs it with another and is not matched.
unsafe fn isolation_conjunct(
    rte: *mut pg_sys::RangeTblEntry,
    rtindex: c_int,
) -> Option<(*mut pg_sys::OpExpr, Getter, i16)> {
    // SAFETY: security quals of a parsed query: expressions.
    unsafe {
        let quals = (*rte).securityQuals;
        for i in 0..list_len(quals) {
            let node = (*(*quals).elements.add(i)).ptr_value as *mut pg_sys::Node;
            if let Some(hit) = bare_isolation(node, rtindex) {
                return Some(hit);
            }
        }
    }
    None
}

unsafe fn bare_isolation(
    node: *mut pg_sys::Node,
    rtindex: c_int,
) -> Option<(*mut pg_sys::OpExpr, Getter, i16)> {
    // SAFETY: expression nodes, inspected by tag before each cast.
    unsafe {
        if node.is_null() || !pgrx::is_a(node, pg_sys::NodeTag::T_OpExpr) {
            return None;
        }
        let op = node as *mut pg_sys::OpExpr;
        let args = (*op).args;
        if list_len(args) != 2 {
            return None;
        }
        let mut left = (*(*args).elements).ptr_value as *mut pg_sys::Node;
        let right = (*(*args).elements.add(1)).ptr_value as *mut pg_sys::Node;
        // A varchar column is compared as text through a relabeling.
        if pgrx::is_a(left, pg_sys::NodeTag::T_RelabelType) {
            left = (*(left as *mut pg_sys::RelabelType)).arg.cast();
        }
        if !pgrx::is_a(left, pg_sys::NodeTag::T_Var)
            || !pgrx::is_a(right, pg_sys::NodeTag::T_FuncExpr)
        {
            return None;
        }
        let var = &*(left as *mut pg_sys::Var);
        if var.varno != rtindex || var.varlevelsup != 0 || var.varattno <= 0 {
            return None;
        }
        let call = &*(right as *mut pg_sys::FuncExpr);
        if !call.args.is_null() {
            return None;
        }
        let getter = getter_of(call.funcid)?;
        Some((op, getter, var.varattno))
    }
}

/// Which of the extension's getters `funcid` is, if any (by schema and name: the OIDs change
/// when the extension is re-created).
fn getter_of(funcid: pg_sys::Oid) -> Option<Getter> {
    // SAFETY: syscache lookups; NULL results are checked.
    unsafe {
        let nsp = pg_sys::get_namespace_name(pg_sys::get_func_namespace(funcid));
        if nsp.is_null() || CStr::from_ptr(nsp).to_bytes() != b"tenancy" {
            return None;
        }
        let name = pg_sys::get_func_name(funcid);
        if name.is_null() {
            return None;
        }
        match CStr::from_ptr(name).to_bytes() {
            b"current_tenant" => Some(Getter::Text),
            b"current_tenant_uuid" => Some(Getter::Uuid),
            b"current_tenant_int8" => Some(Getter::Int8),
            _ => None,
        }
    }
}

/// The attribute number of `relid`'s hash distribution column, from Citus's metadata (cached
/// until the relation's next relcache invalidation, which Citus sends when it distributes or
/// undistributes a table).
fn distribution_attno(relid: pg_sys::Oid) -> Option<i16> {
    if let Some(hit) = DISTRIBUTION.with(|d| d.borrow().get(&relid).copied()) {
        return hit;
    }
    let citus = spi::select_one::<bool>(
        "SELECT pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL",
        &[],
    )
    .ok()
    .flatten()
        == Some(true);
    let attno = if citus {
        spi::select_one::<i16>(
            "SELECT a.attnum FROM pg_catalog.pg_dist_partition p
               JOIN pg_catalog.pg_attribute a
                 ON a.attrelid = p.logicalrelid
                AND a.attname = pg_catalog.column_to_column_name(p.logicalrelid, p.partkey)
              WHERE p.logicalrelid = $1::pg_catalog.oid::pg_catalog.regclass
                AND p.partmethod = 'h'",
            &[relid.into()],
        )
        .unwrap_or_else(|e| errors::internal("reading Citus's distribution column", e))
    } else {
        None
    };
    DISTRIBUTION.with(|d| d.borrow_mut().insert(relid, attno));
    attno
}
