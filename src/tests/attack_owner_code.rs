//! Attack class 2 (docs/security.md): someone else's code run with the extension's rights.
//!
//! An ordinary role owns a protected table and plants code in every form PostgreSQL will run
//! while the extension works on that table: a trigger's WHEN clause, a trigger function that is
//! not SECURITY DEFINER, a rule, a foreign-key cascade into a table with a trigger, a domain
//! CHECK on the tenant column, a cast to json of its own type (what `to_jsonb()` uses). The
//! planted function records `current_user` and tries `ALTER ROLE <itself> SUPERUSER`. Then an
//! administrator (the tests' superuser) runs export_tenant, purge_tenant and set_quota, or the
//! owner itself fires a quota trigger: the code must run as the table's owner (or be refused
//! with the documented error), and nobody may become superuser. Names are prefixed `oc`.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::tests::fixture::*;

    /// Role `{p}_owner` owning schema `{p}`, with `{p}.log` and `{p}.spy(tag)`, which records
    /// who ran it and whether `ALTER ROLE {p}_owner SUPERUSER` worked, and returns true.
    /// Tenants `{p}_a` and `{p}_b`. Leaves the session as the superuser.
    fn plant(p: &str) {
        install_try_sql();
        run(&format!(
            "CREATE ROLE {p}_owner NOLOGIN;
             CREATE SCHEMA {p} AUTHORIZATION {p}_owner;
             SELECT tenancy.create_tenant('{p}_a'); SELECT tenancy.create_tenant('{p}_b');
             SET LOCAL ROLE {p}_owner;
             CREATE TABLE {p}.log (tag text, cur name, escalated boolean);
             CREATE FUNCTION {p}.spy(tag text) RETURNS boolean LANGUAGE plpgsql AS $f$
             DECLARE esc boolean := false;
             BEGIN
                 BEGIN
                     EXECUTE pg_catalog.format('ALTER ROLE %I SUPERUSER', '{p}_owner');
                     esc := true;
                 EXCEPTION WHEN OTHERS THEN esc := false;
                 END;
                 INSERT INTO {p}.log VALUES (tag, current_user, esc);
                 RETURN true;
             END $f$;
             RESET ROLE;"
        ));
    }

    /// Runs `sql` as the owner (it creates the planted objects), then returns to the superuser.
    fn as_owner(p: &str, sql: &str) {
        run(&format!("SET LOCAL ROLE {p}_owner; {sql}; RESET ROLE;"));
    }

    /// The planted code ran (under `tag`) and only ever as the owner; nobody escalated.
    fn assert_ran_as_owner(p: &str, tag: &str) {
        let ran = count(&format!("SELECT count(*) FROM {p}.log WHERE tag = '{tag}'"));
        assert!(ran > 0, "the planted code ({tag}) did not run");
        let foreign = one::<String>(&format!(
            "SELECT string_agg(DISTINCT tag || ' as ' || cur || CASE WHEN escalated THEN ' (escalated)' ELSE '' END, ', ')
               FROM {p}.log WHERE cur <> '{p}_owner' OR escalated"
        ));
        assert_eq!(foreign, None, "planted code ran with other rights");
        assert_not_superuser(p);
    }

    fn assert_not_superuser(p: &str) {
        assert_eq!(
            one::<bool>(&format!(
                "SELECT rolsuper FROM pg_roles WHERE rolname = '{p}_owner'"
            )),
            Some(false),
            "the table owner became superuser"
        );
    }

    /// A protected table `{p}.t` owned by the owner with rows of both tenants, and whatever
    /// `extra` adds as the owner before it is protected. The log starts empty.
    fn owned_table(p: &str, extra: &str) {
        as_owner(
            p,
            &format!(
                "CREATE TABLE {p}.t (id int PRIMARY KEY, tenant_id text NOT NULL, note text);
                 INSERT INTO {p}.t VALUES (1, '{p}_a', 'x'), (2, '{p}_a', 'y'), (3, '{p}_b', 'z');
                 {extra}"
            ),
        );
        run(&format!(
            "SELECT tenancy.protect('{p}.t');
             SELECT tenancy.deactivate_tenant('{p}_a');
             TRUNCATE {p}.log;"
        ));
    }

    /// Protects `tbl`, whose tenant column is of the owner's domain or enum. Should protect()
    /// refuse such a column (class 3 may restrict tenant column types), the table is
    /// registered the way a registry row restored from an older installation would be: export,
    /// purge and quotas read the registry, so they must stay safe for such tables too.
    fn protect_typed(tbl: &str, column_type: &str) {
        if failure(&format!("SELECT tenancy.protect('{tbl}')")).is_some() {
            run(&format!(
                "INSERT INTO tenancy.protected_tables
                        (tbl, tenant_column, column_type, policy_name, isolation_qual)
                 VALUES ('{tbl}', 'tenant_id', '{column_type}', 'tenancy_isolation', '')"
            ));
        }
    }

    /// A protected table `{p}.t` (a row of each tenant) whose tenant column is of the owner's
    /// domain `{p}.tid`, whose CHECK calls the spy (tag `domain`).
    fn domain_tenant_column(p: &str) {
        as_owner(
            p,
            &format!(
                "CREATE DOMAIN {p}.tid AS text CHECK ({p}.spy('domain'));
                 CREATE TABLE {p}.t (id int PRIMARY KEY, tenant_id {p}.tid NOT NULL);
                 INSERT INTO {p}.t VALUES (1, '{p}_a'), (2, '{p}_b')"
            ),
        );
        protect_typed(&format!("{p}.t"), &format!("{p}.tid"));
    }

    /// Plants the spy, builds `owned_table(p, extra)`, purges tenant a (two rows deleted) and
    /// checks that the code `extra` planted ran, as the owner, under `tag`.
    fn purge_runs_it_as_owner(p: &str, extra: &str, tag: &str) {
        plant(p);
        owned_table(p, extra);
        assert_eq!(purge(p), 2);
        assert_ran_as_owner(p, tag);
    }

    fn purge(p: &str) -> i64 {
        count(&format!(
            "SELECT sum(deleted)::bigint FROM tenancy.purge_tenant('{p}_a', 'purge {p}_a')"
        ))
    }

    // ---- purge_tenant ----

    #[pg_test]
    fn oc_purge_runs_a_trigger_when_clause_as_the_table_owner() {
        // The trigger function is SECURITY DEFINER (the old check let it through), but its
        // WHEN clause runs with whoever deletes.
        purge_runs_it_as_owner(
            "oc1",
            "CREATE FUNCTION oc1.keep() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
                 AS $f$ BEGIN RETURN OLD; END $f$;
             CREATE TRIGGER w BEFORE DELETE ON oc1.t FOR EACH ROW
                 WHEN (oc1.spy('when')) EXECUTE FUNCTION oc1.keep()",
            "when",
        );
        assert_eq!(count("SELECT count(*) FROM oc1.t"), 1);
    }

    #[pg_test]
    fn oc_purge_runs_a_plain_trigger_function_as_the_table_owner() {
        purge_runs_it_as_owner(
            "oc2",
            "CREATE FUNCTION oc2.trg() RETURNS trigger LANGUAGE plpgsql
                 AS $f$ BEGIN PERFORM oc2.spy('trigger'); RETURN NULL; END $f$;
             CREATE TRIGGER a AFTER DELETE ON oc2.t FOR EACH ROW EXECUTE FUNCTION oc2.trg();
             CREATE TRIGGER s AFTER DELETE ON oc2.t FOR EACH STATEMENT EXECUTE FUNCTION oc2.trg()",
            "trigger",
        );
    }

    #[pg_test]
    fn oc_purge_runs_triggers_reached_by_a_cascade_as_the_table_owner() {
        // The cascade reaches a table that is not protected (the old check never looked there).
        // Regression guard: this one already ran as the child's owner before the change
        // (PostgreSQL runs the cascade as the referencing table's owner).
        purge_runs_it_as_owner(
            "oc3",
            "CREATE TABLE oc3.child (id int PRIMARY KEY, t_id int REFERENCES oc3.t ON DELETE CASCADE);
             INSERT INTO oc3.child VALUES (1, 1), (2, 3);
             CREATE FUNCTION oc3.trg() RETURNS trigger LANGUAGE plpgsql
                 AS $f$ BEGIN PERFORM oc3.spy('cascade'); RETURN NULL; END $f$;
             CREATE TRIGGER a AFTER DELETE ON oc3.child FOR EACH ROW EXECUTE FUNCTION oc3.trg()",
            "cascade",
        );
        assert_eq!(count("SELECT count(*) FROM oc3.child"), 1);
    }

    #[pg_test]
    fn oc_purge_runs_a_rule_as_the_table_owner_and_refuses_a_rule_that_keeps_rows() {
        plant("oc4");
        owned_table(
            "oc4",
            "CREATE TABLE oc4.other (id int); INSERT INTO oc4.other VALUES (1);
             CREATE RULE r AS ON DELETE TO oc4.t DO ALSO DELETE FROM oc4.other WHERE oc4.spy('rule')",
        );
        purge("oc4");
        assert_ran_as_owner("oc4", "rule");
        assert_eq!(
            count("SELECT count(*) FROM oc4.t WHERE tenant_id = 'oc4_a'"),
            0
        );

        // An INSTEAD rule keeps the rows: the purge must not report success. (The DDL guard
        // refuses rules on protected tables; a superuser lets this one through.)
        run("SET LOCAL tenancy.ddl_guard = warn; INSERT INTO oc4.t VALUES (5, 'oc4_a', 'again')");
        as_owner(
            "oc4",
            "CREATE RULE k AS ON DELETE TO oc4.t DO INSTEAD NOTHING",
        );
        run("TRUNCATE oc4.log");
        assert_fails(
            "SELECT * FROM tenancy.purge_tenant('oc4_a', 'purge oc4_a')",
            "55000",
            "remain in oc4.t",
        );
        assert_eq!(
            count("SELECT count(*) FROM oc4.t WHERE tenant_id = 'oc4_a'"),
            1
        );
        assert_not_superuser("oc4");
    }

    #[pg_test]
    fn oc_purge_runs_a_domain_check_of_the_tenant_column_as_the_table_owner() {
        plant("oc5");
        domain_tenant_column("oc5");
        run("SELECT tenancy.deactivate_tenant('oc5_a'); TRUNCATE oc5.log;");
        assert_eq!(purge("oc5"), 1);
        assert_ran_as_owner("oc5", "domain");
    }

    #[pg_test]
    fn oc_purge_refuses_deferrable_triggers_that_would_fire_at_commit() {
        // A deferred trigger fires at COMMIT with the rights of whoever commits: refused,
        // on the purged table and on a table a cascade reaches.
        plant("oc6");
        owned_table(
            "oc6",
            "CREATE TABLE oc6.child (id int PRIMARY KEY, t_id int REFERENCES oc6.t ON DELETE CASCADE);
             CREATE FUNCTION oc6.trg() RETURNS trigger LANGUAGE plpgsql
                 AS $f$ BEGIN PERFORM oc6.spy('deferred'); RETURN NULL; END $f$;
             CREATE CONSTRAINT TRIGGER d AFTER DELETE ON oc6.child DEFERRABLE INITIALLY DEFERRED
                 FOR EACH ROW EXECUTE FUNCTION oc6.trg()",
        );
        let purge_refused = |needle: &str| {
            assert_fails(
                "SELECT * FROM tenancy.purge_tenant('oc6_a', 'purge oc6_a')",
                "0A000",
                needle,
            )
        };
        purge_refused("trigger d on oc6.child is deferrable");
        as_owner(
            "oc6",
            "DROP TRIGGER d ON oc6.child;
             CREATE CONSTRAINT TRIGGER e AFTER DELETE ON oc6.t DEFERRABLE INITIALLY IMMEDIATE
                 FOR EACH ROW EXECUTE FUNCTION oc6.trg()",
        );
        purge_refused("trigger e on oc6.t is deferrable");
        assert_eq!(count("SELECT count(*) FROM oc6.t"), 3);
        assert_eq!(count("SELECT count(*) FROM oc6.log"), 0);
        // Not deferrable: it runs during the purge, as the owner.
        as_owner(
            "oc6",
            "DROP TRIGGER e ON oc6.t;
             CREATE CONSTRAINT TRIGGER f AFTER DELETE ON oc6.t FOR EACH ROW EXECUTE FUNCTION oc6.trg()",
        );
        assert_eq!(purge("oc6"), 2);
        assert_ran_as_owner("oc6", "deferred");
    }

    #[pg_test]
    fn oc_purge_undoes_settings_the_owners_code_changed_before_the_next_table() {
        plant("oc15");
        // The owner's trigger on oc15.z (purged first) points search_path at its schema, which
        // has an `=` for its domain. oc15.b, a table of the superuser's with that domain as its
        // tenant column, is purged next: had the setting outlived the owner step, its DELETE
        // would resolve `=` to the owner's operator and run it as the superuser.
        as_owner(
            "oc15",
            "CREATE DOMAIN oc15.tid AS text;
             CREATE FUNCTION oc15.eq(a oc15.tid, b oc15.tid) RETURNS boolean LANGUAGE plpgsql
                 AS $f$ BEGIN PERFORM oc15.spy('operator'); RETURN a::text = b::text; END $f$;
             CREATE OPERATOR oc15.= (LEFTARG = oc15.tid, RIGHTARG = oc15.tid, FUNCTION = oc15.eq);
             CREATE FUNCTION oc15.setter() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $f$
             BEGIN
                 PERFORM pg_catalog.set_config('search_path', 'oc15, pg_catalog, pg_temp', true);
                 PERFORM oc15.spy('setter');
                 RETURN NULL;
             END $f$;
             CREATE TABLE oc15.z (id int PRIMARY KEY, tenant_id text NOT NULL);
             INSERT INTO oc15.z VALUES (1, 'oc15_a');
             CREATE TRIGGER s AFTER DELETE ON oc15.z FOR EACH STATEMENT EXECUTE FUNCTION oc15.setter()",
        );
        run(
            "CREATE TABLE oc15.b (id int PRIMARY KEY, tenant_id oc15.tid NOT NULL);
             INSERT INTO oc15.b VALUES (1, 'oc15_a'), (2, 'oc15_b');
             SELECT tenancy.protect('oc15.z')",
        );
        protect_typed("oc15.b", "oc15.tid");
        run("SELECT tenancy.deactivate_tenant('oc15_a'); TRUNCATE oc15.log;");
        assert_eq!(purge("oc15"), 2);
        assert_ran_as_owner("oc15", "setter");
        assert_eq!(
            count("SELECT count(*) FROM oc15.log WHERE tag = 'operator'"),
            0,
            "the owner's operator ran for another table"
        );
    }

    // ---- export_tenant ----

    #[pg_test]
    fn oc_export_runs_a_json_cast_of_the_owners_type_as_the_table_owner() {
        plant("oc7");
        owned_table(
            "oc7",
            "CREATE TYPE oc7.mood AS ENUM ('calm', 'busy');
             CREATE FUNCTION oc7.mood_json(m oc7.mood) RETURNS json LANGUAGE plpgsql
                 AS $f$ BEGIN PERFORM oc7.spy('cast'); RETURN pg_catalog.to_json('mood:' || m::text); END $f$;
             CREATE CAST (oc7.mood AS json) WITH FUNCTION oc7.mood_json(oc7.mood);
             ALTER TABLE oc7.t ADD COLUMN m oc7.mood DEFAULT 'calm'",
        );
        run("SELECT tenancy.reactivate_tenant('oc7_a')");
        assert_eq!(
            count("SELECT count(*) FROM tenancy.export_tenant('oc7_a') WHERE \"row\"->>'m' = 'mood:calm'"),
            2
        );
        assert_ran_as_owner("oc7", "cast");
    }

    #[pg_test]
    fn oc_export_runs_casts_inside_arrays_and_composites_as_the_table_owner() {
        plant("oc8");
        owned_table(
            "oc8",
            "CREATE TYPE oc8.mood AS ENUM ('calm', 'busy');
             CREATE TYPE oc8.pair AS (a int, m oc8.mood);
             CREATE FUNCTION oc8.mood_json(m oc8.mood) RETURNS json LANGUAGE plpgsql
                 AS $f$ BEGIN PERFORM oc8.spy('cast'); RETURN pg_catalog.to_json(m::text); END $f$;
             CREATE CAST (oc8.mood AS json) WITH FUNCTION oc8.mood_json(oc8.mood);
             ALTER TABLE oc8.t ADD COLUMN ms oc8.mood[] DEFAULT '{calm,busy}',
                               ADD COLUMN p oc8.pair DEFAULT ROW(1, 'busy')",
        );
        assert_eq!(
            count("SELECT count(*) FROM tenancy.export_tenant('oc8_a')"),
            2
        );
        assert_ran_as_owner("oc8", "cast");
        // Two rows, each with two array elements and one composite: six conversions.
        assert_eq!(count("SELECT count(*) FROM oc8.log"), 6);
    }

    #[pg_test]
    fn oc_export_runs_a_domain_check_of_the_tenant_column_as_the_table_owner() {
        plant("oc9");
        domain_tenant_column("oc9");
        run("TRUNCATE oc9.log");
        assert_eq!(
            count("SELECT count(*) FROM tenancy.export_tenant('oc9_a')"),
            1
        );
        assert_ran_as_owner("oc9", "domain");
    }

    #[pg_test]
    fn oc_an_owner_step_cannot_be_left_without_its_token() {
        plant("oc10");
        // The step's closing function is executable by everyone (the step runs as the table's
        // owner), so it must refuse without the token; the owner's code, running inside an
        // export's step, tries to leave it and carry on as the extension's owner.
        owned_table(
            "oc10",
            "CREATE TYPE oc10.mood AS ENUM ('calm');
             CREATE FUNCTION oc10.mood_json(m oc10.mood) RETURNS json LANGUAGE plpgsql AS $f$
             BEGIN
                 BEGIN PERFORM tenancy._owner_step_leave('');
                 EXCEPTION WHEN OTHERS THEN NULL; END;
                 BEGIN PERFORM tenancy._owner_step_leave(repeat('0', 32));
                 EXCEPTION WHEN OTHERS THEN NULL; END;
                 PERFORM oc10.spy('leave');
                 RETURN pg_catalog.to_json(m::text);
             END $f$;
             CREATE CAST (oc10.mood AS json) WITH FUNCTION oc10.mood_json(oc10.mood);
             ALTER TABLE oc10.t ADD COLUMN m oc10.mood DEFAULT 'calm'",
        );
        assert_eq!(
            count("SELECT count(*) FROM tenancy.export_tenant('oc10_a')"),
            2
        );
        assert_ran_as_owner("oc10", "leave");
        assert_fails(
            "SELECT tenancy._owner_step_leave('00')",
            "42501",
            "no owner step is open",
        );
        // Opening a step is not for anyone but the extension's owner.
        assert_denied(
            "SET LOCAL ROLE oc10_owner; SELECT tenancy._owner_step_enter('oc10.t'::regclass)",
        );
    }

    #[pg_test]
    fn oc_deferred_events_the_owners_code_queues_are_refused() {
        plant("oc16");
        // The owner's code writes to a table of its own whose trigger is deferred: at COMMIT
        // (or at the administrator's next SET CONSTRAINTS) it would fire as the administrator.
        // Neither the purged tables nor a foreign key lead there: PostgreSQL itself refuses to
        // queue a deferred trigger event inside a security-restricted operation, which the
        // owner step is.
        owned_table(
            "oc16",
            "CREATE TYPE oc16.mood AS ENUM ('calm');
             CREATE TABLE oc16.q (n int);
             CREATE FUNCTION oc16.fire() RETURNS trigger LANGUAGE plpgsql
                 AS $f$ BEGIN PERFORM oc16.spy('deferred'); RETURN NULL; END $f$;
             CREATE CONSTRAINT TRIGGER d AFTER INSERT ON oc16.q DEFERRABLE INITIALLY DEFERRED
                 FOR EACH ROW EXECUTE FUNCTION oc16.fire();
             CREATE FUNCTION oc16.mood_json(m oc16.mood) RETURNS json LANGUAGE plpgsql
                 AS $f$ BEGIN INSERT INTO oc16.q VALUES (1); RETURN pg_catalog.to_json(m::text); END $f$;
             CREATE CAST (oc16.mood AS json) WITH FUNCTION oc16.mood_json(oc16.mood);
             ALTER TABLE oc16.t ADD COLUMN m oc16.mood DEFAULT 'calm';
             CREATE FUNCTION oc16.trg() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
                 AS $f$ BEGIN INSERT INTO oc16.q VALUES (2); RETURN OLD; END $f$;
             CREATE TRIGGER b BEFORE DELETE ON oc16.t FOR EACH ROW EXECUTE FUNCTION oc16.trg()",
        );
        assert_fails(
            "SELECT count(*) FROM tenancy.export_tenant('oc16_a')",
            "42501",
            "cannot fire deferred trigger within security-restricted operation",
        );
        assert_fails(
            "SELECT * FROM tenancy.purge_tenant('oc16_a', 'purge oc16_a')",
            "42501",
            "cannot fire deferred trigger within security-restricted operation",
        );
        assert_eq!(count("SELECT count(*) FROM oc16.t"), 3);
        // Nothing is left queued for the administrator to fire.
        run("SET CONSTRAINTS ALL IMMEDIATE");
        assert_eq!(count("SELECT count(*) FROM oc16.log"), 0);
        assert_not_superuser("oc16");
    }

    // ---- set_quota and the quota triggers ----

    #[pg_test]
    fn oc_set_quota_counts_as_the_table_owner() {
        plant("oc11");
        domain_tenant_column("oc11");
        run("TRUNCATE oc11.log");
        run("SELECT tenancy.set_quota('oc11_a', 'oc11.t', 10)");
        assert_ran_as_owner("oc11", "domain");
        assert_eq!(
            count("SELECT sum(budget)::bigint FROM tenancy.quota_slots WHERE tenant = 'oc11_a'"),
            9
        );
    }

    #[pg_test]
    fn oc_a_truncate_recounts_quotas_as_the_table_owner() {
        plant("oc12");
        // The owner itself truncates its table: the quota trigger (the extension's) counts
        // again, which casts to the owner's domain.
        domain_tenant_column("oc12");
        run("SELECT tenancy.set_quota('oc12_a', 'oc12.t', 10); TRUNCATE oc12.log;");
        as_owner("oc12", "TRUNCATE oc12.t");
        assert_ran_as_owner("oc12", "domain");
        assert_eq!(
            count("SELECT sum(budget)::bigint FROM tenancy.quota_slots WHERE tenant = 'oc12_a'"),
            10
        );
    }

    #[pg_test]
    fn oc_set_quota_refuses_a_tenant_column_of_a_user_defined_type() {
        plant("oc13");
        // The quota triggers turn the tenant column into text with the extension's rights: for
        // the owner's enum that is the owner's cast.
        as_owner(
            "oc13",
            "CREATE TYPE oc13.tenum AS ENUM ('oc13_a', 'oc13_b');
             CREATE FUNCTION oc13.totext(v oc13.tenum) RETURNS text LANGUAGE plpgsql
                 AS $f$ BEGIN PERFORM oc13.spy('cast'); RETURN 'oc13_a'; END $f$;
             CREATE CAST (oc13.tenum AS text) WITH FUNCTION oc13.totext(oc13.tenum);
             CREATE TABLE oc13.t (id int PRIMARY KEY, tenant_id oc13.tenum NOT NULL)",
        );
        protect_typed("oc13.t", "oc13.tenum");
        assert_fails(
            "SELECT tenancy.set_quota('oc13_a', 'oc13.t', 10)",
            "0A000",
            "quotas need a tenant column of a built-in type",
        );
        assert_eq!(
            count("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'oc13.t'::regclass AND tgname LIKE 'tenancy_quota%'"),
            0
        );
        // Removing a quota stays possible.
        run("SELECT tenancy.set_quota('oc13_a', 'oc13.t', NULL)");
        assert_eq!(count("SELECT count(*) FROM oc13.log"), 0);
        assert_not_superuser("oc13");
    }

    // ---- protection on arrival (the DDL event trigger runs as the extension's owner) ----

    #[pg_test]
    fn oc_protection_on_arrival_runs_none_of_the_owners_code_with_the_extensions_rights() {
        plant("oc14");
        // The DDL event trigger (the extension's rights) protects a partition the owner
        // attaches, with rows, a default and a trigger calling the owner's function; nothing
        // of the owner's runs with the extension's rights. A partition carrying the owner's
        // code in a CHECK or an index expression is refused by the DDL guard (class 4) before
        // it could run over every tenant's rows.
        run("CREATE SCHEMA oc14_x AUTHORIZATION oc14_owner; SELECT tenancy.protect_schema('oc14')");
        as_owner(
            "oc14",
            "CREATE TABLE oc14.p (id int, tenant_id text NOT NULL, v text DEFAULT 'd')
                 PARTITION BY RANGE (id);
             CREATE FUNCTION oc14.ix(v text) RETURNS text LANGUAGE plpgsql IMMUTABLE
                 AS $f$ BEGIN PERFORM oc14.spy('index'); RETURN v; END $f$;
             CREATE TABLE oc14_x.part (id int, tenant_id text NOT NULL, v text DEFAULT 'd');
             INSERT INTO oc14_x.part VALUES (1, 'oc14_a'), (2, 'oc14_b');
             CREATE FUNCTION oc14.trg() RETURNS trigger LANGUAGE plpgsql
                 AS $f$ BEGIN PERFORM oc14.spy('trigger'); RETURN NULL; END $f$;
             CREATE TRIGGER a AFTER UPDATE ON oc14_x.part FOR EACH ROW EXECUTE FUNCTION oc14.trg();
             CREATE TABLE oc14_x.part2 (id int, tenant_id text NOT NULL,
                 v text DEFAULT 'd' CHECK (oc14.spy('check')));
             INSERT INTO oc14_x.part2 VALUES (101, 'oc14_a'), (102, 'oc14_b');
             CREATE INDEX ON oc14_x.part2 (oc14.ix(v));
             TRUNCATE oc14.log;
             ALTER TABLE oc14.p ATTACH PARTITION oc14_x.part FOR VALUES FROM (0) TO (100)",
        );
        run("SET LOCAL ROLE oc14_owner");
        assert_fails(
            "ALTER TABLE oc14.p ATTACH PARTITION oc14_x.part2 FOR VALUES FROM (100) TO (200)",
            "42501",
            "oc14.spy",
        );
        run("RESET ROLE");
        assert_eq!(
            count("SELECT count(*) FROM tenancy.protected_tables WHERE tbl IN ('oc14.p'::regclass, 'oc14_x.part'::regclass)"),
            2
        );
        assert_eq!(
            count("SELECT count(*) FROM oc14.log WHERE cur <> 'oc14_owner' OR escalated"),
            0
        );
        assert_not_superuser("oc14");
    }
}
