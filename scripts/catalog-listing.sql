-- Canonical listing of what CREATE EXTENSION pg_tenancy put in the catalog, one line per fact,
-- sorted, with no OIDs: two installs hold the same objects iff their listings are equal.
--
--   psql -X -At -v ON_ERROR_STOP=1 -d DB -f scripts/catalog-listing.sql > listing.txt
--
-- Used to show that a reorganised install script creates exactly what the old one did, and to
-- compare an install upgraded with ALTER EXTENSION UPDATE with a fresh one. Covers every
-- extension member (generic line), the tenancy schema, functions and aggregates (signature,
-- result, attributes, search_path, body digest, canonical ACL), relations (columns, defaults,
-- constraints, indexes, ACLs, RLS flags, options), policies, triggers, event triggers,
-- sequences, comments, pg_init_privs, the extension's config tables, and the row count of each
-- of its tables (the install script writes one row, the carrier key; on a database in use the
-- counts are data, so compare listings of databases that hold none).
--
-- ACLs are listed expanded and sorted (a NULL ACL as the default it stands for), so the order
-- in which grants were made does not show, only what is granted.

\set ON_ERROR_STOP 1
\set QUIET on
SET search_path = pg_catalog, pg_temp;

-- Temporary, so the listing leaves nothing behind in the database it lists.
CREATE FUNCTION pg_temp.listing_row_count(tbl regclass) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s', tbl) INTO n;
    RETURN n;
END
$$;

WITH
ext AS (
    SELECT e.oid, e.extname, e.extversion, e.extrelocatable, e.extnamespace, e.extconfig, e.extcondition
      FROM pg_extension e WHERE e.extname = 'pg_tenancy'
),
members AS (
    SELECT d.classid, d.objid
      FROM pg_depend d, ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
),
nsp AS (
    SELECT n.oid, n.nspname, n.nspowner, n.nspacl FROM pg_namespace n WHERE n.nspname = 'tenancy'
),
-- Functions and relations of the extension: its members, plus anything in its schema (an
-- object there that is not a member would be a difference worth seeing).
procs AS (
    SELECT p.* FROM pg_proc p
     WHERE p.oid IN (SELECT objid FROM members WHERE classid = 'pg_proc'::regclass)
        OR p.pronamespace IN (SELECT oid FROM nsp)
),
rels AS (
    SELECT c.* FROM pg_class c
     WHERE c.oid IN (SELECT objid FROM members WHERE classid = 'pg_class'::regclass)
        OR (c.relnamespace IN (SELECT oid FROM nsp) AND c.relkind <> 'i')
)
SELECT line FROM (
    -- The extension itself.
    SELECT format('extension %s version=%s relocatable=%s schema=%s',
                  x.extname, x.extversion, x.extrelocatable, x.extnamespace::regnamespace) AS line
      FROM ext x

    -- Every member, described the way pg_dump and \dx+ do.
    UNION ALL
    SELECT format('member %s', pg_describe_object(m.classid, m.objid, 0)) FROM members m

    -- The schema.
    UNION ALL
    SELECT format('schema %I owner=%s acl=%s', n.nspname, n.nspowner::regrole,
                  (SELECT string_agg(a.item, ',' ORDER BY a.item COLLATE "C")
                     FROM (SELECT format('%s=%s%s/%s',
                                         CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE x.grantee::regrole::text END,
                                         x.privilege_type, CASE WHEN x.is_grantable THEN '*' ELSE '' END,
                                         x.grantor::regrole) AS item
                             FROM aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) x) a))
      FROM nsp n

    -- Functions, procedures and aggregates.
    UNION ALL
    SELECT format('function %s.%I(%s) returns %s kind=%s lang=%s volatility=%s parallel=%s strict=%s secdef=%s leakproof=%s cost=%s rows=%s config=%s owner=%s bin=%s src_md5=%s sqlbody_md5=%s args=(%s) acl=%s',
                  p.pronamespace::regnamespace, p.proname, pg_get_function_identity_arguments(p.oid),
                  pg_get_function_result(p.oid), p.prokind, l.lanname, p.provolatile, p.proparallel,
                  p.proisstrict, p.prosecdef, p.proleakproof, p.procost, p.prorows,
                  coalesce(array_to_string(p.proconfig, ';'), '-'), p.proowner::regrole,
                  coalesce(p.probin, '-'), md5(coalesce(p.prosrc, '')),
                  coalesce(md5(pg_get_function_sqlbody(p.oid)), '-'),
                  pg_get_function_arguments(p.oid),
                  (SELECT string_agg(a.item, ',' ORDER BY a.item COLLATE "C")
                     FROM (SELECT format('%s=%s%s/%s',
                                         CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE x.grantee::regrole::text END,
                                         x.privilege_type, CASE WHEN x.is_grantable THEN '*' ELSE '' END,
                                         x.grantor::regrole) AS item
                             FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) x) a))
      FROM procs p JOIN pg_language l ON l.oid = p.prolang

    UNION ALL
    SELECT format('aggregate %s(%s) sfunc=%s stype=%s sspace=%s finalfunc=%s finalextra=%s finalmodify=%s combinefunc=%s serialfunc=%s deserialfunc=%s initval=%s sortop=%s',
                  p.oid::regproc, pg_get_function_identity_arguments(p.oid),
                  a.aggtransfn::regprocedure, format_type(a.aggtranstype, NULL), a.aggtransspace,
                  CASE WHEN a.aggfinalfn = 0 THEN '-' ELSE a.aggfinalfn::regprocedure::text END,
                  a.aggfinalextra, a.aggfinalmodify,
                  CASE WHEN a.aggcombinefn = 0 THEN '-' ELSE a.aggcombinefn::regprocedure::text END,
                  CASE WHEN a.aggserialfn = 0 THEN '-' ELSE a.aggserialfn::regprocedure::text END,
                  CASE WHEN a.aggdeserialfn = 0 THEN '-' ELSE a.aggdeserialfn::regprocedure::text END,
                  coalesce(a.agginitval, '-'),
                  CASE WHEN a.aggsortop = 0 THEN '-' ELSE a.aggsortop::regoperator::text END)
      FROM procs p JOIN pg_aggregate a ON a.aggfnoid = p.oid

    -- Relations: tables, views, sequences (their indexes below).
    UNION ALL
    SELECT format('relation %s kind=%s persistence=%s owner=%s rls=%s force_rls=%s replident=%s options=%s acl=%s',
                  c.oid::regclass, c.relkind, c.relpersistence, c.relowner::regrole,
                  c.relrowsecurity, c.relforcerowsecurity, c.relreplident,
                  coalesce(array_to_string(c.reloptions, ','), '-'),
                  (SELECT string_agg(a.item, ',' ORDER BY a.item COLLATE "C")
                     FROM (SELECT format('%s=%s%s/%s',
                                         CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE x.grantee::regrole::text END,
                                         x.privilege_type, CASE WHEN x.is_grantable THEN '*' ELSE '' END,
                                         x.grantor::regrole) AS item
                             FROM aclexplode(coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))) x) a))
      FROM rels c

    UNION ALL
    SELECT format('column %s.%I #%s type=%s notnull=%s default=%s identity=%s generated=%s collation=%s acl=%s',
                  c.oid::regclass, att.attname, att.attnum, format_type(att.atttypid, att.atttypmod),
                  att.attnotnull, coalesce(pg_get_expr(ad.adbin, ad.adrelid), '-'),
                  CASE WHEN att.attidentity = '' THEN '-' ELSE att.attidentity::text END,
                  CASE WHEN att.attgenerated = '' THEN '-' ELSE att.attgenerated::text END,
                  CASE WHEN att.attcollation = 0 THEN '-' ELSE att.attcollation::regcollation::text END,
                  coalesce((SELECT string_agg(a.item, ',' ORDER BY a.item COLLATE "C")
                              FROM (SELECT format('%s=%s%s/%s',
                                                  CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE x.grantee::regrole::text END,
                                                  x.privilege_type, CASE WHEN x.is_grantable THEN '*' ELSE '' END,
                                                  x.grantor::regrole) AS item
                                      FROM aclexplode(att.attacl) x) a), '-'))
      FROM rels c
      JOIN pg_attribute att ON att.attrelid = c.oid AND att.attnum > 0 AND NOT att.attisdropped
      LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = att.attnum

    UNION ALL
    SELECT format('constraint %s %I type=%s deferrable=%s deferred=%s valid=%s def=%s',
                  c.oid::regclass, k.conname, k.contype, k.condeferrable, k.condeferred,
                  k.convalidated, pg_get_constraintdef(k.oid))
      FROM rels c JOIN pg_constraint k ON k.conrelid = c.oid

    UNION ALL
    SELECT format('index %s on %s: %s', i.indexrelid::regclass, c.oid::regclass, pg_get_indexdef(i.indexrelid))
      FROM rels c JOIN pg_index i ON i.indrelid = c.oid

    UNION ALL
    SELECT format('sequence %s type=%s start=%s increment=%s min=%s max=%s cache=%s cycle=%s owned_by=%s',
                  s.seqrelid::regclass, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement,
                  s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
                  coalesce((SELECT format('%s.%I (%s)', d.refobjid::regclass, att.attname, d.deptype)
                              FROM pg_depend d
                              JOIN pg_attribute att ON att.attrelid = d.refobjid AND att.attnum = d.refobjsubid
                             WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid
                               AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')), '-'))
      FROM rels c JOIN pg_sequence s ON s.seqrelid = c.oid

    -- Row level security policies.
    UNION ALL
    SELECT format('policy %s %I permissive=%s cmd=%s roles=%s using=%s with_check=%s',
                  c.oid::regclass, po.polname, po.polpermissive, po.polcmd,
                  (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE r::regrole::text END, ',' ORDER BY 1)
                     FROM unnest(po.polroles) r),
                  coalesce(pg_get_expr(po.polqual, po.polrelid), '-'),
                  coalesce(pg_get_expr(po.polwithcheck, po.polrelid), '-'))
      FROM rels c JOIN pg_policy po ON po.polrelid = c.oid

    -- Triggers (not the internal ones of foreign keys: the constraints above show those).
    UNION ALL
    SELECT format('trigger %s %I enabled=%s: %s', c.oid::regclass, t.tgname, t.tgenabled, pg_get_triggerdef(t.oid))
      FROM rels c JOIN pg_trigger t ON t.tgrelid = c.oid AND NOT t.tgisinternal

    UNION ALL
    SELECT format('event trigger %I on %s function=%s enabled=%s tags=%s owner=%s',
                  et.evtname, et.evtevent, et.evtfoid::regprocedure, et.evtenabled,
                  coalesce(array_to_string(et.evttags, ','), '-'), et.evtowner::regrole)
      FROM pg_event_trigger et
     WHERE et.oid IN (SELECT objid FROM members WHERE classid = 'pg_event_trigger'::regclass)
        OR et.evtfoid IN (SELECT oid FROM procs)

    -- Comments on the extension's objects and their columns.
    UNION ALL
    SELECT format('comment %s: %s', pg_describe_object(ds.classoid, ds.objoid, ds.objsubid), ds.description)
      FROM pg_description ds
     WHERE (ds.classoid, ds.objoid) IN (SELECT classid, objid FROM members)
        OR (ds.classoid = 'pg_proc'::regclass AND ds.objoid IN (SELECT oid FROM procs))
        OR (ds.classoid = 'pg_class'::regclass AND ds.objoid IN (SELECT oid FROM rels))
        OR (ds.classoid = 'pg_extension'::regclass AND ds.objoid IN (SELECT oid FROM ext))
        OR (ds.classoid = 'pg_namespace'::regclass AND ds.objoid IN (SELECT oid FROM nsp))

    -- Initial privileges, which pg_dump compares current ACLs with.
    UNION ALL
    SELECT format('init_privs %s type=%s acl=%s',
                  pg_describe_object(ip.classoid, ip.objoid, ip.objsubid), ip.privtype,
                  (SELECT string_agg(a.item, ',' ORDER BY a.item COLLATE "C")
                     FROM (SELECT format('%s=%s%s/%s',
                                         CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE x.grantee::regrole::text END,
                                         x.privilege_type, CASE WHEN x.is_grantable THEN '*' ELSE '' END,
                                         x.grantor::regrole) AS item
                             FROM aclexplode(ip.initprivs) x) a))
      FROM pg_init_privs ip
     WHERE (ip.classoid, ip.objoid) IN (SELECT classid, objid FROM members)
        OR (ip.classoid = 'pg_proc'::regclass AND ip.objoid IN (SELECT oid FROM procs))
        OR (ip.classoid = 'pg_class'::regclass AND ip.objoid IN (SELECT oid FROM rels))
        OR (ip.classoid = 'pg_namespace'::regclass AND ip.objoid IN (SELECT oid FROM nsp))

    -- Rows the install script wrote itself (the carrier key): a script that forgets one shows.
    UNION ALL
    SELECT format('rows %s count=%s', c.oid::regclass,
                  pg_temp.listing_row_count(c.oid::regclass))
      FROM rels c WHERE c.relkind IN ('r', 'p')

    -- Tables whose rows pg_dump keeps (pg_extension_config_dump), with their filter.
    UNION ALL
    SELECT format('config_dump %s condition=%s', cfg.tbl::regclass, coalesce(nullif(cfg.cond, ''), '-'))
      FROM ext x, unnest(x.extconfig, x.extcondition) AS cfg(tbl, cond)
) listing
ORDER BY line COLLATE "C";
