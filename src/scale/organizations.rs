//! What an organization context reads: its own rows and its descendants' (docs/organizations.md).
//!
//! The isolation policy stays the one `protection::policy` writes, `col = (SELECT
//! tenancy.current_tenant())` (or the bare call on Citus), so a leaf context's plan is exactly
//! today's: one equality inside the index condition. When the context planning a query is an
//! organization's, the planner hook (`scale::routing`) calls [`widen`] first, which replaces
//! that conjunct, in the row security of every relation the query reads, with
//! `col = ANY ((SELECT tenancy.current_subtree()))`: one index condition over the subtree's
//! tenants. The array is evaluated when the plan runs, against the context of that moment,
//! so a widened plan reused under a leaf's context reads that leaf's rows and no more, and
//! one reused under another organization reads that organization's subtree. The other way
//! round (a leaf's plan reused under an organization) would read too little, never too much;
//! the plans carry an invalidation item of their kind, and a change of kind re-plans them
//! (`scale::routing`).
//!
//! Writes are not widened: the relation an UPDATE, DELETE or MERGE changes keeps the leaf
//! predicate, and so does every WITH CHECK, so an organization context writes only rows of
//! its own tenant id (docs/organizations.md says why).

use core::ffi::{c_int, c_void, CStr};

use pgrx::prelude::*;

use crate::context::tenant_context;
use crate::infra::spi;
use crate::protection::policy::Getter;

/// What a query's protected relations depend on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// No isolation conjunct in the query.
    None,
    /// Planned as a leaf's (or without a context): the equality stays.
    Leaf,
    /// Planned under an organization's context: the conjunct reads the subtree.
    Organization,
}

/// A list cell holding an isolation conjunct, and which getter it calls.
struct Slot {
    cell: *mut *mut c_void,
    getter: Getter,
    relid: pg_sys::Oid,
    attno: pg_sys::AttrNumber,
}

/// Widens the isolation conjuncts of `parse` when the current context is an organization's.
///
/// # Safety
/// `parse` is the planner's own, writable query tree.
pub unsafe fn widen(parse: *mut pg_sys::Query) -> Kind {
    // SAFETY: the planner's Query.
    let rls = unsafe { (*parse).hasRowSecurity };
    // The rewriter marks a query whose tree (subqueries, CTEs and sublinks included) got any
    // row security: without it there is no isolation conjunct to find.
    // Not under Citus for now: with it, a routed query planned inside a PL/pgSQL loop sent its
    // workers a second BEGIN and failed ("the backend has already been assigned a transaction
    // id"); open in docs/organizations.md. An organization's context reads its own rows there.
    if !rls || crate::infra::spi::citus_loaded() {
        return Kind::None;
    }
    // The leaf path, every planned statement of a leaf's context: no walk and no allocation
    // when the cached resolution already says the context is no organization's. The plan
    // carries the leaf item, so a later organization context re-plans it.
    if let Some(current) = crate::registry::cache::current_if_fresh() {
        if !current.is_some_and(|r| r.organization) {
            return Kind::Leaf;
        }
    }
    let mut slots = Vec::new();
    // SAFETY: walks the planner's query tree, collecting pointers into it.
    unsafe { visit_query(parse, &mut slots) };
    if slots.is_empty() {
        return Kind::None;
    }
    let organization = tenant_context::current().is_some_and(|r| r.organization);
    if !organization {
        return Kind::Leaf;
    }
    let mut functions: [Option<pg_sys::Oid>; 3] = [None; 3];
    let mut columns: Vec<(pg_sys::Oid, Option<String>)> = Vec::new();
    for slot in slots {
        // Only the conjunct protect() wrote: an equality on the registered tenant column. The
        // same shape on another column (an owner's own policy) keeps its leaf meaning.
        if !registered_column(&mut columns, slot.relid, slot.attno) {
            continue;
        }
        let i = match slot.getter {
            Getter::Text | Getter::Cast => 0,
            Getter::Uuid => 1,
            Getter::Int8 => 2,
        };
        let func = *functions[i].get_or_insert_with(|| subtree_function(slot.getter));
        // SAFETY: the cell points into the live tree; the new node is built in the planner's
        // memory context.
        unsafe {
            let op = *slot.cell as *mut pg_sys::OpExpr;
            *slot.cell = any_of_subtree(op, slot.getter, func).cast();
        }
    }
    Kind::Organization
}

/// Whether `attno` of `relid` is the tenant column the registry holds for it (looked up once
/// per relation and query, on the organization path alone).
fn registered_column(
    seen: &mut Vec<(pg_sys::Oid, Option<String>)>,
    relid: pg_sys::Oid,
    attno: pg_sys::AttrNumber,
) -> bool {
    let i = match seen.iter().position(|(r, _)| *r == relid) {
        Some(i) => i,
        None => {
            let column =
                crate::registry::protected_tables::entry(relid).map(|e| e.protection.tenant_column);
            seen.push((relid, column));
            seen.len() - 1
        }
    };
    let Some(column) = seen[i].1.as_deref() else {
        return false;
    };
    // SAFETY: a syscache lookup; a NULL result (dropped column) is checked.
    unsafe {
        let name = pg_sys::get_attname(relid, attno, true);
        !name.is_null() && CStr::from_ptr(name).to_bytes() == column.as_bytes()
    }
}

/// The OID of the subtree getter that matches `getter`.
fn subtree_function(getter: Getter) -> pg_sys::Oid {
    let name = getter.subtree_call();
    spi::select_one::<pg_sys::Oid>(
        "SELECT pg_catalog.to_regprocedure($1)::pg_catalog.oid",
        &[format!("{name}()").into()],
    )
    .ok()
    .flatten()
    .unwrap_or_else(|| crate::infra::errors::internal("finding the subtree getter", name))
}

/// `left = ANY (right')`, where right' is the conjunct's right side with the getter call
/// replaced by the subtree getter's.
unsafe fn any_of_subtree(
    op: *mut pg_sys::OpExpr,
    getter: Getter,
    func: pg_sys::Oid,
) -> *mut pg_sys::ScalarArrayOpExpr {
    // SAFETY: `op` matched `isolation_getter`: two arguments, the second a getter call or a
    // sub-select of one.
    unsafe {
        let args = (*op).args;
        let left = (*(*args).elements).ptr_value;
        let right = pg_sys::copyObjectImpl((*(*args).elements.add(1)).ptr_value);
        let call = getter_call(right.cast()).unwrap_or_else(|| {
            crate::infra::errors::internal("widening the isolation predicate", "no getter call")
        });
        (*call).funcid = func;
        (*call).funcresulttype = getter.array_type();
        let saop = pg_sys::palloc0(std::mem::size_of::<pg_sys::ScalarArrayOpExpr>())
            as *mut pg_sys::ScalarArrayOpExpr;
        (*saop).xpr.type_ = pg_sys::NodeTag::T_ScalarArrayOpExpr;
        (*saop).opno = (*op).opno;
        (*saop).opfuncid = (*op).opfuncid;
        (*saop).useOr = true;
        (*saop).inputcollid = (*op).inputcollid;
        (*saop).args = pg_sys::lappend(pg_sys::lappend(std::ptr::null_mut(), left), right);
        (*saop).location = -1;
        saop
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

unsafe fn visit_query(query: *mut pg_sys::Query, out: &mut Vec<Slot>) {
    // SAFETY: reads of the planner's query tree; pointers to its list cells are kept.
    unsafe {
        let q = &*query;
        // The relation a statement writes keeps the leaf predicate: writes are not widened.
        let written = match q.commandType {
            pg_sys::CmdType::CMD_UPDATE
            | pg_sys::CmdType::CMD_DELETE
            | pg_sys::CmdType::CMD_MERGE
            | pg_sys::CmdType::CMD_INSERT => q.resultRelation,
            _ => 0,
        };
        let rtable = q.rtable;
        for i in 0..list_len(rtable) {
            let rtindex = (i + 1) as c_int;
            // A row locked FOR UPDATE/SHARE is one the context could then change: the UPDATE
            // policy's USING sits in its security quals, so it keeps the leaf predicate.
            if rtindex == written || row_marked(q.rowMarks, rtindex) {
                continue;
            }
            let rte = (*(*rtable).elements.add(i)).ptr_value as *mut pg_sys::RangeTblEntry;
            if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION
                || (*rte).securityQuals.is_null()
                || extension_table((*rte).relid)
            {
                continue;
            }
            let quals = (*rte).securityQuals;
            for j in 0..list_len(quals) {
                let cell = &mut (*(*quals).elements.add(j)).ptr_value as *mut *mut c_void;
                find_in(cell, rtindex, (*rte).relid, out);
            }
        }
        pg_sys::query_tree_walker(query, Some(walk), (out as *mut Vec<Slot>).cast(), 0);
    }
}

fn row_marked(marks: *mut pg_sys::List, rtindex: c_int) -> bool {
    // SAFETY: a Query's rowMarks, a List of RowMarkClause.
    (0..list_len(marks)).any(|k| unsafe {
        let rc = (*(*marks).elements.add(k)).ptr_value as *mut pg_sys::RowMarkClause;
        (*rc).rti as c_int == rtindex
    })
}

/// The extension's own tables (the audit trail, entitlements) keep their tenant's rows to the
/// tenant alone: an organization reads neither its locations' audit chains nor their
/// entitlements (which would make `entitled()` answer for the organization).
fn extension_table(relid: pg_sys::Oid) -> bool {
    // SAFETY: syscache lookups; NULL results are checked.
    unsafe {
        let nsp = pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid));
        !nsp.is_null() && CStr::from_ptr(nsp).to_bytes() == b"tenancy"
    }
}

/// Conjuncts inside one security qual: the qual itself, or an argument of an AND/OR (the
/// permissive policies of a relation are ORed into one qual: the shared-rows policy).
unsafe fn find_in(cell: *mut *mut c_void, rtindex: c_int, relid: pg_sys::Oid, out: &mut Vec<Slot>) {
    // SAFETY: expression nodes, inspected by tag before each cast.
    unsafe {
        let node = *cell as *mut pg_sys::Node;
        if node.is_null() {
            return;
        }
        if pgrx::is_a(node, pg_sys::NodeTag::T_BoolExpr) {
            let b = node as *mut pg_sys::BoolExpr;
            if (*b).boolop != pg_sys::BoolExprType::NOT_EXPR {
                let args = (*b).args;
                for k in 0..list_len(args) {
                    find_in(
                        &mut (*(*args).elements.add(k)).ptr_value as *mut *mut c_void,
                        rtindex,
                        relid,
                        out,
                    );
                }
            }
            return;
        }
        if let Some((getter, attno)) = isolation_getter(node, rtindex) {
            out.push(Slot {
                cell,
                getter,
                relid,
                attno,
            });
        }
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
            visit_query(node.cast(), &mut *(context as *mut Vec<Slot>));
            return false;
        }
        pg_sys::expression_tree_walker(node, Some(walk), context)
    }
}

/// Which getter the conjunct `col = getter` (or `col = (SELECT getter)`) of relation `rtindex`
/// calls, if `node` is one: the shape `protection::policy::isolation_predicate` writes for
/// text, uuid and integer columns. A column of a domain type (compared through a cast) is
/// not matched: an organization context reads only its own rows there (docs/organizations.md).
/// The operator must be the column type's btree equality: `col <> getter` in an owner's
/// restrictive policy would turn, widened, into "differs from any tenant of the subtree" and
/// show the rows it hides.
unsafe fn isolation_getter(
    node: *mut pg_sys::Node,
    rtindex: c_int,
) -> Option<(Getter, pg_sys::AttrNumber)> {
    // SAFETY: expression nodes, inspected by tag before each cast.
    unsafe {
        if !pgrx::is_a(node, pg_sys::NodeTag::T_OpExpr) {
            return None;
        }
        let op = node as *mut pg_sys::OpExpr;
        let args = (*op).args;
        if list_len(args) != 2 {
            return None;
        }
        let mut left = (*(*args).elements).ptr_value as *mut pg_sys::Node;
        let right = (*(*args).elements.add(1)).ptr_value as *mut pg_sys::Node;
        let typcache =
            pg_sys::lookup_type_cache(pg_sys::exprType(left), pg_sys::TYPECACHE_EQ_OPR as c_int);
        if typcache.is_null() || (*typcache).eq_opr != (*op).opno {
            return None;
        }
        if pgrx::is_a(left, pg_sys::NodeTag::T_RelabelType) {
            left = (*(left as *mut pg_sys::RelabelType)).arg.cast();
        }
        if !pgrx::is_a(left, pg_sys::NodeTag::T_Var) {
            return None;
        }
        let var = &*(left as *mut pg_sys::Var);
        if var.varno != rtindex || var.varlevelsup != 0 || var.varattno <= 0 {
            return None;
        }
        let call = getter_call(right)?;
        Some((getter_of((*call).funcid)?, var.varattno))
    }
}

/// The getter call `node` is, or the one its sub-select (`(SELECT getter())`, nothing else
/// in it) selects.
unsafe fn getter_call(node: *mut pg_sys::Node) -> Option<*mut pg_sys::FuncExpr> {
    // SAFETY: expression nodes, inspected by tag before each cast.
    unsafe {
        if pgrx::is_a(node, pg_sys::NodeTag::T_FuncExpr) {
            let call = node as *mut pg_sys::FuncExpr;
            return (*call).args.is_null().then_some(call);
        }
        if !pgrx::is_a(node, pg_sys::NodeTag::T_SubLink) {
            return None;
        }
        let link = &*(node as *mut pg_sys::SubLink);
        if link.subLinkType != pg_sys::SubLinkType::EXPR_SUBLINK
            || link.subselect.is_null()
            || !pgrx::is_a(link.subselect, pg_sys::NodeTag::T_Query)
        {
            return None;
        }
        let q = &*(link.subselect as *mut pg_sys::Query);
        if list_len(q.rtable) != 0 || list_len(q.targetList) != 1 {
            return None;
        }
        let te = (*(*q.targetList).elements).ptr_value as *mut pg_sys::TargetEntry;
        let expr = (*te).expr as *mut pg_sys::Node;
        if expr.is_null() || !pgrx::is_a(expr, pg_sys::NodeTag::T_FuncExpr) {
            return None;
        }
        let call = expr as *mut pg_sys::FuncExpr;
        (*call).args.is_null().then_some(call)
    }
}

/// Which of the extension's tenant getters `funcid` is (by schema and name: OIDs change when
/// the extension is re-created).
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
