//! `#[pg_test]`s of de-identification: pseudonyms, generalisation helpers, k-anonymity.
//! Same rules as `tests/mod.rs`: every test runs in its own rolled-back transaction, in parallel with
//! the others, as a superuser; object names (roles, tenants, secret ids, tables) are unique per
//! test, and privileges and RLS are asserted after `SET LOCAL ROLE` to a plain role.
//! Pseudonym secrets are never committed, so each test sees only the secrets it adds.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;
    use tenancy_core::deid::base32_128_decode;
    use tenancy_core::oracle::{pseudonym as expected, unhex};

    use crate::tests::fixture::{
        assert_denied, assert_fails, assert_workers_ran, install_try_sql, one, roles, run, tenants,
        text, Tier,
    };

    /// ASCII "0123456789abcdef0123456789abcdef": the master secret of the known-answer tests.
    const KAT_SECRET_HEX: &str = "3031323334353637383961626364656630313233343536373839616263646566";

    /// An app role `{p}_app`, a trusted role `{p}_job`, an admin `{p}_admin`, tenants
    /// `{p}_a` and `{p}_b`.
    fn app_job_admin(p: &str) {
        roles(
            p,
            &[
                ("app", Tier::App),
                ("job", Tier::Trusted),
                ("admin", Tier::Admin),
            ],
        );
        tenants(p);
    }

    fn add_secret(id: &str, hex: &str) {
        run(&format!(
            "SELECT tenancy.add_pseudonym_secret('{id}', '\\x{hex}')"
        ));
    }

    fn bits(p: &str) -> u128 {
        u128::from_be_bytes(
            base32_128_decode(p.as_bytes()).unwrap_or_else(|| panic!("not a pseudonym: {p}")),
        )
    }

    /// Mean number of differing bits between paired pseudonyms; every pair must differ in
    /// 30 to 98 of 128 bits (a binomial(128, 1/2) lands outside that about once in 10^9).
    fn mean_distance(pairs: &[(String, String)]) -> f64 {
        assert!(pairs.len() >= 1000, "too few samples: {}", pairs.len());
        let mut total = 0u64;
        for (a, b) in pairs {
            let d = (bits(a) ^ bits(b)).count_ones();
            assert!((30..=98).contains(&d), "{a} vs {b}: {d} bits differ");
            total += u64::from(d);
        }
        total as f64 / pairs.len() as f64
    }

    fn pairs(sql: &str) -> Vec<(String, String)> {
        Spi::connect(|c| {
            c.select(sql, None, &[])?
                .map(|r| Ok((r.get::<String>(1)?.unwrap(), r.get::<String>(2)?.unwrap())))
                .collect::<Result<Vec<_>, pgrx::spi::Error>>()
        })
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    // ---- pseudonyms ----

    #[pg_test]
    fn pseudonymize_refuses_without_a_secret() {
        app_job_admin("pzno");
        run("SET LOCAL ROLE pzno_app");
        for sql in [
            "SELECT tenancy.pseudonymize('42', 'employee')",
            "SELECT tenancy.pseudonymize(42, 'employee')",
            "SELECT tenancy.pseudonymize('123e4567-e89b-12d3-a456-426614174000'::uuid, 'employee')",
        ] {
            assert_fails(sql, "55000", "no pseudonym secret is configured");
        }
        run("RESET ROLE");
        run("SELECT tenancy.set_tenant('pzno_a')");
        run("SET LOCAL ROLE pzno_app");
        assert_fails(
            "SELECT tenancy.pseudonymize_for_pool('42', 'employee')",
            "55000",
            "no pseudonym secret is configured",
        );
        // NULL in, NULL out (STRICT), without needing a secret.
        assert_eq!(
            one::<String>("SELECT tenancy.pseudonymize(NULL::text, 'employee')"),
            None
        );
    }

    #[pg_test]
    fn pseudonym_known_answer() {
        app_job_admin("pzkat");
        add_secret("pzkat-1", KAT_SECRET_HEX);
        run("SET LOCAL ROLE pzkat_app");
        let master = unhex(KAT_SECRET_HEX);
        let got = text("SELECT tenancy.pseudonymize('42', 'employee')");
        assert_eq!(got, expected(&master, "employee", None, "42"));
        // The same value computed with Python's hmac module (docs/anonymization.md):
        // hmac.new(hmac.new(master, b"pg_tenancy pseudonym v1\0employee", sha256).digest(),
        //          b"42", sha256).digest()[:16], base32, lowercase, no padding.
        assert_eq!(got, "gdib2k2irmp4b5rfqvxrqtmbke");
        for value in ["", "Ada Lovelace", "ü ñ 🙂", &"x".repeat(500)] {
            assert_eq!(
                text(&format!(
                    "SELECT tenancy.pseudonymize({}, 'customer')",
                    pgrx::spi::quote_literal(value)
                )),
                expected(&master, "customer", None, value),
                "value {value:?}"
            );
        }
        // The pool form mixes in the tenant of the verified context.
        run("RESET ROLE");
        run("SELECT tenancy.set_tenant('pzkat_a')");
        run("SET LOCAL ROLE pzkat_app");
        assert_eq!(
            text("SELECT tenancy.pseudonymize_for_pool('42', 'employee')"),
            expected(&master, "employee", Some("pzkat_a"), "42")
        );
    }

    #[pg_test]
    fn pseudonym_shape_and_overloads() {
        app_job_admin("pzov");
        add_secret("pzov-1", KAT_SECRET_HEX);
        run("SET LOCAL ROLE pzov_app");
        let p = text("SELECT tenancy.pseudonymize('someone@example.com', 'email')");
        assert_eq!(p.len(), 26);
        assert!(p
            .bytes()
            .all(|c| c.is_ascii_lowercase() || (b'2'..=b'7').contains(&c)));
        assert_eq!(
            one::<bool>(
                "SELECT count(*) = 1000 AND bool_and(p ~ '^[a-z2-7]{26}$')
                   FROM (SELECT tenancy.pseudonymize(g::text, 'd') AS p FROM generate_series(1, 1000) g) s"
            ),
            Some(true)
        );
        // uuid and bigint overloads pseudonymise the canonical text form.
        assert_eq!(
            one::<bool>(
                "SELECT tenancy.pseudonymize('123E4567-E89B-12D3-A456-426614174000'::uuid, 'd')
                      = tenancy.pseudonymize('123e4567-e89b-12d3-a456-426614174000', 'd')"
            ),
            Some(true)
        );
        assert_eq!(
            one::<bool>(
                "SELECT tenancy.pseudonymize(-9000000000::bigint, 'd') = tenancy.pseudonymize('-9000000000', 'd')
                    AND tenancy.pseudonymize(42, 'd') = tenancy.pseudonymize('42', 'd')"
            ),
            Some(true)
        );
        assert_fails(
            "SELECT tenancy.pseudonymize('x', '')",
            "22023",
            "domain must be 1 to 256 bytes",
        );
        assert_fails(
            &format!("SELECT tenancy.pseudonymize('x', '{}')", "d".repeat(257)),
            "22023",
            "domain",
        );
    }

    #[pg_test]
    fn pseudonyms_are_deterministic_and_separated() {
        app_job_admin("pzsep");
        add_secret("pzsep-1", KAT_SECRET_HEX);
        run("SELECT tenancy.set_tenant('pzsep_a')");
        run("SET LOCAL ROLE pzsep_app");
        let a1 = text("SELECT tenancy.pseudonymize('E-1001', 'employee')");
        let a2 = text("SELECT tenancy.pseudonymize('E-1001', 'employee')");
        assert_eq!(a1, a2);
        assert_ne!(
            a1,
            text("SELECT tenancy.pseudonymize('E-1001', 'customer')")
        );
        assert_ne!(
            a1,
            text("SELECT tenancy.pseudonymize('E-1002', 'employee')")
        );
        let pool_a = text("SELECT tenancy.pseudonymize_for_pool('E-1001', 'employee')");
        assert_ne!(pool_a, a1);
        assert_eq!(
            pool_a,
            text("SELECT tenancy.pseudonymize_for_pool('E-1001', 'employee')")
        );
        run("RESET ROLE");
        run("SELECT tenancy.set_tenant('pzsep_b')");
        run("SET LOCAL ROLE pzsep_app");
        let pool_b = text("SELECT tenancy.pseudonymize_for_pool('E-1001', 'employee')");
        assert_ne!(pool_a, pool_b);
        // Back in a: the same pool pseudonym as before (the key cache is per tenant).
        run("RESET ROLE");
        run("SELECT tenancy.set_tenant('pzsep_a')");
        run("SET LOCAL ROLE pzsep_app");
        assert_eq!(
            text("SELECT tenancy.pseudonymize_for_pool('E-1001', 'employee')"),
            pool_a
        );
        // A domain cannot be chosen to reproduce a tenant's pool key: the separator is a NUL,
        // which text cannot hold.
        assert_fails(
            "SELECT tenancy.pseudonymize('E-1001', E'employee\\x00pzsep_a')",
            "22021",
            "invalid byte sequence for encoding \"UTF8\": 0x00",
        );
        // No context: the pool form refuses.
        run("SELECT tenancy.clear_context()");
        assert_fails(
            "SELECT tenancy.pseudonymize_for_pool('E-1001', 'employee')",
            "55000",
            "no tenant context is set",
        );
    }

    #[pg_test]
    fn one_changed_byte_changes_about_half_the_bits() {
        app_job_admin("pzav");
        add_secret("pzav-1", KAT_SECRET_HEX);
        run("SELECT tenancy.set_tenant('pzav_a')");
        run("SET LOCAL ROLE pzav_app");
        // One byte of the value changed (the last digit, or a letter in the middle).
        let value_pairs = pairs(
            "SELECT tenancy.pseudonymize(v, 'employee'),
                    tenancy.pseudonymize(overlay(v placing chr(ascii(substr(v, pos, 1)) # 1) from pos for 1), 'employee')
               FROM (SELECT 'employee-' || lpad(g::text, 6, '0') AS v, 1 + g % 15 AS pos
                       FROM generate_series(1, 2000) g) s",
        );
        let mean = mean_distance(&value_pairs);
        assert!((62.0..66.0).contains(&mean), "value: mean {mean}");
        // One byte of the domain changed.
        let domain_pairs = pairs(
            "SELECT tenancy.pseudonymize(g::text, 'employee'), tenancy.pseudonymize(g::text, 'employef')
               FROM generate_series(1, 2000) g",
        );
        let mean = mean_distance(&domain_pairs);
        assert!((62.0..66.0).contains(&mean), "domain: mean {mean}");
        // Another tenant (pool form).
        let in_a = pairs(
            "SELECT g::text, tenancy.pseudonymize_for_pool(g::text, 'employee') FROM generate_series(1, 2000) g ORDER BY g",
        );
        run("RESET ROLE");
        run("SELECT tenancy.set_tenant('pzav_b')");
        run("SET LOCAL ROLE pzav_app");
        let in_b = pairs(
            "SELECT g::text, tenancy.pseudonymize_for_pool(g::text, 'employee') FROM generate_series(1, 2000) g ORDER BY g",
        );
        let tenant_pairs: Vec<(String, String)> = in_a
            .into_iter()
            .zip(in_b)
            .map(|((_, a), (_, b))| (a, b))
            .collect();
        let mean = mean_distance(&tenant_pairs);
        assert!((62.0..66.0).contains(&mean), "tenant: mean {mean}");
        // No two of the 2000 values share a pseudonym.
        assert_eq!(
            one::<i64>(
                "SELECT count(DISTINCT tenancy.pseudonymize(g::text, 'employee')) FROM generate_series(1, 2000) g"
            ),
            Some(2000)
        );
    }

    #[pg_test]
    fn rotation_changes_pseudonyms_and_dropping_reverts() {
        app_job_admin("pzrot");
        add_secret("pzrot-1", KAT_SECRET_HEX);
        run("SET LOCAL ROLE pzrot_app");
        let old = text("SELECT tenancy.pseudonymize('42', 'employee')");
        assert_eq!(old, "gdib2k2irmp4b5rfqvxrqtmbke");
        run("RESET ROLE");
        let second = "42".repeat(32);
        run(&format!(
            "SET LOCAL ROLE pzrot_admin; SELECT tenancy.add_pseudonym_secret('pzrot-2', '\\x{second}'); RESET ROLE"
        ));
        run("SET LOCAL ROLE pzrot_app");
        let new = text("SELECT tenancy.pseudonymize('42', 'employee')");
        assert_eq!(new, expected(&unhex(&second), "employee", None, "42"));
        assert_ne!(new, old);
        run("RESET ROLE");
        run("SET LOCAL ROLE pzrot_admin; SELECT tenancy.drop_pseudonym_secret('pzrot-2'); RESET ROLE");
        run("SET LOCAL ROLE pzrot_app");
        assert_eq!(text("SELECT tenancy.pseudonymize('42', 'employee')"), old);
        run("RESET ROLE");
        run("SELECT tenancy.drop_pseudonym_secret('pzrot-1')");
        run("SET LOCAL ROLE pzrot_app");
        assert_fails(
            "SELECT tenancy.pseudonymize('42', 'employee')",
            "55000",
            "no pseudonym secret",
        );
    }

    #[pg_test]
    fn add_pseudonym_secret_checks_its_input() {
        app_job_admin("pzadd");
        // Generated in the server when omitted: 32 bytes, nothing in the query text.
        run("SELECT tenancy.add_pseudonym_secret('pzadd-gen')");
        assert_eq!(
            one::<i32>(
                "SELECT length(secret) FROM tenancy.pseudonym_secrets WHERE id = 'pzadd-gen'"
            ),
            Some(32)
        );
        assert_fails(
            "SELECT tenancy.add_pseudonym_secret('pzadd-gen')",
            "42710",
            "already exists",
        );
        assert_fails(
            "SELECT tenancy.add_pseudonym_secret('bad id')",
            "22023",
            "invalid pseudonym secret id",
        );
        let f = assert_fails(
            "SELECT tenancy.add_pseudonym_secret('pzadd-short', '\\xdeadbeefcafe')",
            "22023",
            "32 to 1024 bytes",
        );
        assert!(!f.contains("deadbeef") && !f.contains("cafe"), "{f}");
        assert_fails(
            "SELECT tenancy.drop_pseudonym_secret('pzadd-nothing')",
            "42704",
            "does not exist",
        );
    }

    #[pg_test]
    fn app_role_cannot_read_the_pseudonym_secret() {
        app_job_admin("pzsec");
        add_secret("pzsec-1", KAT_SECRET_HEX);
        run("SELECT tenancy.set_tenant('pzsec_a')");
        run("SET LOCAL ROLE pzsec_app");
        // It can use the secret ...
        let p = text("SELECT tenancy.pseudonymize('42', 'employee')");
        assert_eq!(p.len(), 26);
        // ... but not read or change it.
        for sql in [
            "SELECT secret FROM tenancy.pseudonym_secrets",
            "SELECT id FROM tenancy.pseudonym_secrets",
            "SELECT count(*) FROM tenancy.pseudonym_secrets",
            "UPDATE tenancy.pseudonym_secrets SET id = id",
            "DELETE FROM tenancy.pseudonym_secrets",
            "TRUNCATE tenancy.pseudonym_secrets",
            "SELECT tenancy.add_pseudonym_secret('pzsec-evil', '\\x00000000000000000000000000000000000000000000000000000000000000ff')",
            "SELECT tenancy.drop_pseudonym_secret('pzsec-1')",
        ] {
            assert_denied(sql);
        }
        // The loader it may call hands back nothing derived from the secret.
        assert_eq!(
            one::<bool>("SELECT tenancy._load_pseudonym_key('employee', false)"),
            Some(true)
        );
        let loader_result = text(
            "SELECT tenancy._load_pseudonym_key('employee', true)::text || coalesce(tenancy.context()::text, '')",
        );
        let secret_text = String::from_utf8(unhex(KAT_SECRET_HEX)).unwrap();
        for needle in [KAT_SECRET_HEX, &secret_text[..16], "0123456789abcdef"] {
            assert!(!loader_result.contains(needle), "{loader_result}");
            // Nothing in any setting it can list or SHOW.
            assert_eq!(
                one::<i64>(&format!(
                    "SELECT count(*) FROM pg_settings WHERE setting LIKE '%{needle}%' OR name LIKE 'tenancy.%secret%'"
                )),
                Some(0)
            );
        }
        // Errors about pseudonyms never carry the secret.
        let f = assert_fails("SELECT tenancy.pseudonymize('x', '')", "22023", "domain");
        assert!(!f.contains("0123456789abcdef"), "{f}");
        run("RESET ROLE");
        // An admin manages secrets and sees their ids, never the secret column.
        run("SET LOCAL ROLE pzsec_admin");
        assert_eq!(
            one::<i64>(
                "SELECT count(*) FROM (SELECT id, created_at FROM tenancy.pseudonym_secrets) s"
            ),
            Some(1)
        );
        assert_denied("SELECT secret FROM tenancy.pseudonym_secrets");
        run("RESET ROLE");
        // The trusted tier includes the app tier; a role with no tier cannot pseudonymise.
        run("CREATE ROLE pzsec_nobody NOLOGIN; SET LOCAL ROLE pzsec_nobody");
        assert_denied("SELECT tenancy.pseudonymize('42', 'employee')");
        run("RESET ROLE; SET LOCAL ROLE pzsec_job");
        assert_eq!(text("SELECT tenancy.pseudonymize('42', 'employee')"), p);
    }

    #[pg_test]
    fn declared_volatility_and_security() {
        // (function name, volatility, parallel, security definer)
        let rows: Vec<(String, String, String, bool, bool)> = Spi::connect(|c| {
            c.select(
                "SELECT p.proname::text, p.provolatile::text, p.proparallel::text, p.prosecdef,
                        p.proconfig IS NOT NULL
                   FROM pg_proc p
                  WHERE p.pronamespace = 'tenancy'::regnamespace
                    AND p.proname IN ('pseudonymize', 'pseudonymize_for_pool', '_load_pseudonym_key',
                                      'band', 'band_label', 'generalize_date', 'age_band', 'top_code',
                                      'k_anonymity', 'k_anonymity_report', '_k_anonymity', '_k_anonymity_report',
                                      'add_pseudonym_secret', 'drop_pseudonym_secret')",
                None,
                &[],
            )?
            .map(|r| {
                Ok((
                    r.get::<String>(1)?.unwrap(),
                    r.get::<String>(2)?.unwrap(),
                    r.get::<String>(3)?.unwrap(),
                    r.get::<bool>(4)?.unwrap(),
                    r.get::<bool>(5)?.unwrap(),
                ))
            })
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
        })
        .unwrap();
        assert!(rows.len() >= 18, "{rows:?}");
        for (name, vol, par, secdef, has_set) in rows {
            match name.as_str() {
                // Per-row: caller's rights, no SET clause.
                "pseudonymize" | "pseudonymize_for_pool" => {
                    assert_eq!(
                        (vol.as_str(), par.as_str(), secdef, has_set),
                        ("s", "s", false, false),
                        "{name}"
                    )
                }
                "_load_pseudonym_key" => assert!(secdef && has_set, "{name}"),
                "band" | "band_label" | "generalize_date" | "age_band" | "top_code" => {
                    assert_eq!(
                        (vol.as_str(), par.as_str(), secdef),
                        ("i", "s", false),
                        "{name}"
                    )
                }
                "k_anonymity" | "k_anonymity_report" | "_k_anonymity" | "_k_anonymity_report" => {
                    assert_eq!((vol.as_str(), secdef), ("s", false), "{name}")
                }
                "add_pseudonym_secret" | "drop_pseudonym_secret" => {
                    assert!(secdef && has_set, "{name}")
                }
                other => panic!("unexpected {other}"),
            }
        }
        // top_code is inlined (no SET, not STRICT): the plan shows LEAST, not a function call.
        let plan = one::<pgrx::Json>(
            "EXPLAIN (VERBOSE, FORMAT JSON) SELECT tenancy.top_code(g, 10) FROM generate_series(1, 3) g",
        )
        .unwrap()
        .0
        .to_string();
        assert!(plan.contains("LEAST"), "{plan}");
    }

    #[pg_test]
    fn pseudonyms_in_parallel_workers_match() {
        app_job_admin("pzpar");
        add_secret("pzpar-1", KAT_SECRET_HEX);
        run("CREATE TABLE tests.pzpar_src (tenant_id text, emp text);
             INSERT INTO tests.pzpar_src SELECT 'pzpar_' || (CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END), 'E' || g
               FROM generate_series(1, 100000) g;
             SELECT tenancy.protect('tests.pzpar_src');
             ANALYZE tests.pzpar_src;
             GRANT SELECT ON tests.pzpar_src TO pzpar_job;
             SET LOCAL ROLE pzpar_job;
             SELECT tenancy.set_tenant('pzpar_a');");
        let digest = "SELECT md5(string_agg(p, ',' ORDER BY p)) FROM (
                        SELECT tenancy.pseudonymize(emp, 'employee') || tenancy.pseudonymize_for_pool(emp, 'employee') AS p
                          FROM tests.pzpar_src) s";
        run("SET LOCAL max_parallel_workers_per_gather = 0");
        let serial = text(digest);
        run("SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0;
             SET LOCAL min_parallel_table_scan_size = 0; SET LOCAL max_parallel_workers_per_gather = 2;
             SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_indexonlyscan = off");
        assert_workers_ran(digest);
        assert_eq!(text(digest), serial);
    }

    // ---- generalisation ----

    #[pg_test]
    fn generalisation_helpers() {
        install_try_sql();
        // Everyone may call them: a role with no tier at all.
        run("CREATE ROLE gen_nobody NOLOGIN; SET LOCAL ROLE gen_nobody");
        let cases = [
            ("tenancy.band(55000, 10000)::text", "[50000,60000)"),
            ("tenancy.band(60000, 10000)::text", "[60000,70000)"),
            ("tenancy.band(-1, 10)::text", "[-10,0)"),
            ("tenancy.band(-10, 10)::text", "[-10,0)"),
            ("tenancy.band(1.25, 0.5)::text", "[1.00,1.50)"),
            (
                "tenancy.band(250000, 10000, top => 200000)::text",
                "[200000,)",
            ),
            (
                "tenancy.band(195000, 10000, 197500)::text",
                "[190000,197500)",
            ),
            ("tenancy.band_label(55000, 10000)", "50k–60k"),
            ("tenancy.band_label(12600, 2500)", "12.5k–15k"),
            ("tenancy.band_label(1300000, 250000)", "1.25M–1.5M"),
            ("tenancy.band_label(-5, 10)", "-10–0"),
            ("tenancy.band_label(0.7, 0.25)", "0.5–0.75"),
            ("tenancy.band_label(12345, 1)", "12345–12346"),
            ("tenancy.band_label(250000, 10000, 200000)", "200k+"),
            ("tenancy.generalize_date('2024-05-17')::text", "2024-05-01"),
            (
                "tenancy.generalize_date('2024-05-17', 'quarter')::text",
                "2024-04-01",
            ),
            (
                "tenancy.generalize_date('2024-12-31', 'QUARTER')::text",
                "2024-10-01",
            ),
            (
                "tenancy.generalize_date('2024-05-17', 'year')::text",
                "2024-01-01",
            ),
            (
                "tenancy.generalize_date('infinity', 'year')::text",
                "infinity",
            ),
            (
                "tenancy.age_band('1990-06-15', '2024-06-14')::text",
                "[30,40)",
            ),
            (
                "tenancy.age_band('1990-06-15', '2024-06-15', 5)::text",
                "[30,35)",
            ),
            (
                "tenancy.age_band('2000-02-29', '2023-02-28', 1)::text",
                "[22,23)",
            ),
            (
                "tenancy.age_band('2000-02-29', '2023-03-01', 1)::text",
                "[23,24)",
            ),
            (
                "tenancy.age_band('1930-01-01', '2024-01-01', 10, 90)::text",
                "[90,)",
            ),
            (
                "tenancy.age_band('1939-01-01', '2024-01-01', 10, 85)::text",
                "[85,)",
            ),
            (
                "tenancy.age_band('1942-01-01', '2024-01-01', 10, 85)::text",
                "[80,85)",
            ),
            ("tenancy.top_code(250000, 200000)::text", "200000"),
            ("tenancy.top_code(150000, 200000)::text", "150000"),
            ("tenancy.top_code(97.5, 90)::text", "90"),
            (
                "tenancy.top_code(date '2030-01-01', date '2025-12-31')::text",
                "2025-12-31",
            ),
        ];
        for (expr, want) in cases {
            assert_eq!(text(&format!("SELECT {expr}")), want, "{expr}");
        }
        for expr in [
            "tenancy.band(NULL, 10)",
            "tenancy.band(5, NULL)",
            "tenancy.band_label(NULL, 10)",
            "tenancy.age_band(NULL, '2024-01-01')",
            "tenancy.generalize_date(NULL)",
            "tenancy.top_code(NULL::int, 5)",
            "tenancy.top_code(5, NULL::int)",
        ] {
            assert_eq!(
                one::<String>(&format!("SELECT ({expr})::text")),
                None,
                "{expr}"
            );
        }
        for (sql, needle) in [
            (
                "SELECT tenancy.band(5, 0)",
                "width must be greater than zero",
            ),
            (
                "SELECT tenancy.band(5, -1)",
                "width must be greater than zero",
            ),
            (
                "SELECT tenancy.band('NaN', 10)",
                "value must be a finite number",
            ),
            (
                "SELECT tenancy.band('Infinity', 10)",
                "value must be a finite number",
            ),
            (
                "SELECT tenancy.band_label(5, 'Infinity')",
                "width must be a finite number",
            ),
            (
                "SELECT tenancy.generalize_date('2024-01-01', 'week')",
                "unknown date unit",
            ),
            (
                "SELECT tenancy.age_band('2025-01-01', '2024-01-01')",
                "birth date is after",
            ),
            (
                "SELECT tenancy.age_band('2000-01-01', '2024-01-01', 0)",
                "at least 1 year",
            ),
            (
                "SELECT tenancy.age_band('2000-01-01', 'infinity')",
                "finite",
            ),
        ] {
            assert_fails(sql, "22023", needle);
        }
    }

    // ---- k-anonymity ----

    /// A table and columns named with quotes and spaces; classes over ("home town", "Age
    /// ""band"""): tenant a has (Oslo, 30s) x3, (Oslo, 40s) x2; tenant b has (Bergen, 30s) x4,
    /// (Bergen, NULL) x1.
    fn kanon_fixture(p: &str) -> String {
        app_job_admin(p);
        run(&format!(
            r#"CREATE TABLE tests."{p} ""odd"" table" (
                   id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                   tenant_id text, "home town" text, "Age ""band""" text, salary int);
               INSERT INTO tests."{p} ""odd"" table" (tenant_id, "home town", "Age ""band""", salary) VALUES
                   ('{p}_a', 'Oslo', '30s', 1), ('{p}_a', 'Oslo', '30s', 2), ('{p}_a', 'Oslo', '30s', 3),
                   ('{p}_a', 'Oslo', '40s', 4), ('{p}_a', 'Oslo', '40s', 5),
                   ('{p}_b', 'Bergen', '30s', 6), ('{p}_b', 'Bergen', '30s', 7), ('{p}_b', 'Bergen', '30s', 8),
                   ('{p}_b', 'Bergen', '30s', 9), ('{p}_b', 'Bergen', NULL, 10);"#
        ));
        format!(r#"'tests."{p} ""odd"" table"'"#)
    }

    /// `tenancy.k_anonymity(tbl, columns)` as the current role sees it.
    fn k_of(tbl: &str, columns: &str) -> Option<i64> {
        one::<i64>(&format!("SELECT tenancy.k_anonymity({tbl}, {columns})"))
    }

    #[pg_test]
    fn k_anonymity_on_quoted_names() {
        let tbl = kanon_fixture("kq");
        let qi = r#"ARRAY['home town', 'Age "band"']"#;
        assert_eq!(k_of(&tbl, qi), Some(1));
        assert_eq!(k_of(&tbl, "ARRAY['home town']"), Some(5));
        // name[] literal and the text order of columns do not matter.
        assert_eq!(k_of(&tbl, r#"'{"Age \"band\"","home town"}'"#), Some(1));
        assert_eq!(k_of(&tbl, "ARRAY['tenant_id']"), Some(5));
        let report = text(&format!(
            "SELECT string_agg(class::text || '=' || class_size, '; ' ORDER BY class_size, class)
               FROM tenancy.k_anonymity_report({tbl}, {qi}, 3)"
        ));
        assert_eq!(
            report,
            r#"{"home town": "Bergen", "Age \"band\"": null}=1; {"home town": "Oslo", "Age \"band\"": "40s"}=2"#
        );
        assert_eq!(
            one::<i64>(&format!(
                "SELECT count(*) FROM tenancy.k_anonymity_report({tbl}, {qi}, 1)"
            )),
            Some(0)
        );
        // An empty table has no classes.
        run("CREATE TABLE tests.kq_empty (a int)");
        assert_eq!(
            one::<i64>("SELECT tenancy.k_anonymity('tests.kq_empty', ARRAY['a'])"),
            None
        );
        // Bad input: identifiers are checked, never spliced.
        for (args, state, needle) in [
            (
                "ARRAY['nope']",
                "42703",
                r#"column nope of "kq ""odd"" table" does not exist"#,
            ),
            (
                "ARRAY['home town; DROP TABLE tests.kq_empty; --']",
                "42703",
                "does not exist",
            ),
            (r#"ARRAY['"home town"']"#, "42703", "does not exist"),
            ("ARRAY['ctid']", "42703", "does not exist"),
            ("ARRAY[]::name[]", "22023", "at least one column"),
            ("ARRAY['home town', NULL]", "22023", "must not contain NULL"),
            ("ARRAY['home town', 'home town']", "22023", "listed twice"),
        ] {
            assert_fails(
                &format!("SELECT tenancy.k_anonymity({tbl}, {args})"),
                state,
                needle,
            );
        }
        assert_fails(
            &format!("SELECT * FROM tenancy.k_anonymity_report({tbl}, {qi}, 0)"),
            "22023",
            "k must be at least 1",
        );
        run("CREATE SEQUENCE tests.kq_seq");
        assert_fails(
            "SELECT tenancy.k_anonymity('tests.kq_seq', ARRAY['last_value'])",
            "22023",
            "not a table",
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM tests.kq_empty"),
            Some(0),
            "the table survived"
        );
    }

    #[pg_test]
    fn k_anonymity_sees_what_the_caller_sees() {
        let tbl = kanon_fixture("kr");
        let qi = r#"ARRAY['home town', 'Age "band"']"#;
        run(&format!(
            "SELECT tenancy.protect({tbl});
             GRANT SELECT ON {t} TO kr_app;",
            t = r#"tests."kr ""odd"" table""#
        ));
        // Tenant a: classes of 3 and 2.
        run("SELECT tenancy.set_tenant('kr_a'); SET LOCAL ROLE kr_app");
        assert_eq!(k_of(&tbl, qi), Some(2));
        assert_eq!(
            text(&format!(
                "SELECT string_agg(class::text || '=' || class_size, '; ' ORDER BY class_size) FROM tenancy.k_anonymity_report({tbl}, {qi}, 5)"
            )),
            r#"{"home town": "Oslo", "Age \"band\"": "40s"}=2; {"home town": "Oslo", "Age \"band\"": "30s"}=3"#
        );
        // Tenant b: classes of 4 and 1.
        run("RESET ROLE; SELECT tenancy.set_tenant('kr_b'); SET LOCAL ROLE kr_app");
        assert_eq!(k_of(&tbl, qi), Some(1));
        assert_eq!(k_of(&tbl, "ARRAY['home town']"), Some(5));
        // No context: no rows, no classes.
        run("SELECT tenancy.clear_context()");
        assert_eq!(k_of(&tbl, qi), None);
        // Column privileges apply too: a role without SELECT is refused.
        run("RESET ROLE; CREATE ROLE kr_nobody NOLOGIN; GRANT USAGE ON SCHEMA tests TO kr_nobody; SET LOCAL ROLE kr_nobody");
        assert_fails(
            &format!("SELECT tenancy.k_anonymity({tbl}, {qi})"),
            "42501",
            "permission denied for table kr \"odd\" table",
        );
    }
}
