//! The one fixture of the `#[pg_test]` modules: roles of each tier (granted in one order),
//! tenants, the signing key and tokens, the protected `docs` table, running SQL, asserting
//! errors, reading `tenancy.check()` findings and running their fixes, and reading plans.
//! Each test runs in its own rolled-back transaction; SQLSTATEs are asserted through
//! `pg_temp.try_sql()`, which runs a statement in a subtransaction and returns
//! `SQLSTATE: message` when it fails, and every error check names its cause, not only its
//! SQLSTATE (`assert_failure`).

use pgrx::prelude::*;

/// The secret of every fixture signing key `{p}_k`.
pub const SECRET_HEX: &str = "7365637265742d7365637265742d7365637265742d7365637265742d31323334";

/// The tier a fixture role is granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    App,
    Trusted,
    Admin,
    Support,
    Worker,
    /// No tier: a plain role.
    None,
}

/// Installs `pg_temp.try_sql()` and creates a role `{p}_{suffix}` for each `(suffix, tier)`,
/// granted its tier and USAGE on schema `tests`. The grants update pg_proc rows that parallel
/// tests update too, so every fixture grants in one order (the `Tier` order, `grant_app`
/// first) whatever order it lists them in; two orders deadlock (40P01).
pub fn roles(p: &str, roles: &[(&str, Tier)]) {
    install_try_sql();
    let mut sorted = roles.to_vec();
    sorted.sort_by_key(|(_, tier)| *tier);
    let mut sql = String::new();
    for (suffix, tier) in &sorted {
        let role = format!("{p}_{suffix}");
        sql.push_str(&format!("CREATE ROLE {role} NOLOGIN;"));
        let grant = match tier {
            Tier::App => "grant_app",
            Tier::Trusted => "grant_trusted",
            Tier::Admin => "grant_admin",
            Tier::Support => "grant_support",
            Tier::Worker => "grant_worker",
            Tier::None => continue,
        };
        sql.push_str(&format!(" SELECT tenancy.{grant}('{role}');"));
    }
    let all: Vec<String> = roles.iter().map(|(s, _)| format!("{p}_{s}")).collect();
    sql.push_str(&format!(
        " GRANT USAGE ON SCHEMA tests TO {};",
        all.join(", ")
    ));
    run(&sql);
}

/// An app role `{p}_app` and a table owner `{p}_owner` with the admin tier, both with USAGE
/// and CREATE on schema `tests`.
pub fn app_and_owner(p: &str) {
    roles(p, &[("app", Tier::App), ("owner", Tier::Admin)]);
    run(&format!(
        "GRANT CREATE ON SCHEMA tests TO {p}_app, {p}_owner"
    ));
}

/// Registers tenants `{p}_a` and `{p}_b`.
pub fn tenants(p: &str) {
    run(&format!(
        "SELECT tenancy.create_tenant('{p}_a'), tenancy.create_tenant('{p}_b')"
    ));
}

/// Adds the signing key `{p}_k` (secret `SECRET_HEX`), which `token()` signs with.
pub fn signing_key(p: &str) {
    run(&format!(
        "SELECT tenancy.add_signing_key('{p}_k', '\\x{SECRET_HEX}')"
    ));
}

/// A protected table `tests.{p}_docs (id, tenant_id {tenant_type}, body)` holding `rows`
/// (tenant, body), readable and writable by `grantees`.
pub fn docs_table(p: &str, tenant_type: &str, rows: &[(&str, &str)], grantees: &str) {
    let mut sql = format!(
        "CREATE TABLE tests.{p}_docs (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                                      tenant_id {tenant_type}, body text);"
    );
    if !rows.is_empty() {
        let values: Vec<String> = rows
            .iter()
            .map(|(t, b)| format!("('{t}', '{b}')"))
            .collect();
        sql.push_str(&format!(
            " INSERT INTO tests.{p}_docs (tenant_id, body) VALUES {};",
            values.join(", ")
        ));
    }
    sql.push_str(&format!(
        " SELECT tenancy.protect('tests.{p}_docs');
         GRANT SELECT, INSERT, UPDATE, DELETE ON tests.{p}_docs TO {grantees};"
    ));
    run(&sql);
}

/// `tests.{p}_t (person {person_type}, pay numeric)` filled by `rows` (a VALUES list or a
/// SELECT), readable by `{p}_app`: the table the guarded aggregates are tried on.
pub fn pay_table(p: &str, person_type: &str, rows: &str) {
    run(&format!(
        "CREATE TABLE tests.{p}_t (person {person_type}, pay numeric);
         INSERT INTO tests.{p}_t {rows};
         GRANT SELECT ON tests.{p}_t TO {p}_app;"
    ));
}

/// Two tenants `a` and `b` (of column type `tenant_type`), a signing key `{p}_k`, an app role
/// `{p}_app` and a trusted role `{p}_trusted`, and a protected table `tests.{p}_docs` with two
/// rows for a and one for b.
pub fn docs_fixture(p: &str, tenant_type: &str, a: &str, b: &str) {
    roles(p, &[("app", Tier::App), ("trusted", Tier::Trusted)]);
    run(&format!(
        "SELECT tenancy.create_tenant('{a}', 'Tenant A');
         SELECT tenancy.create_tenant('{b}', 'Tenant B');"
    ));
    signing_key(p);
    docs_table(
        p,
        tenant_type,
        &[(a, "a1"), (a, "a2"), (b, "b1")],
        &format!("{p}_app, {p}_trusted"),
    );
}

/// A token signed with `{p}_k` carrying `claims`.
pub fn token(p: &str, claims: serde_json::Value) -> String {
    one::<String>(&format!(
        "SELECT tenancy.sign_token({}::jsonb, '{p}_k')",
        pgrx::spi::quote_literal(claims.to_string())
    ))
    .expect("token")
}

/// Now, in seconds since the epoch, as the server sees it (what `exp` and `nbf` compare to).
pub fn epoch_now() -> i64 {
    one::<i64>("SELECT extract(epoch FROM now())::bigint").unwrap()
}

/// `SELECT tenancy.set_context(<tok>)`.
pub fn set_context_sql(tok: &str) -> String {
    format!(
        "SELECT tenancy.set_context({})",
        pgrx::spi::quote_literal(tok)
    )
}

/// base64url without padding, as tokens and carriers spell their parts.
pub fn b64(bytes: &[u8]) -> String {
    tenancy_core::b64::encode(bytes)
}

pub fn run(sql: &str) {
    Spi::run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
}

pub fn one<T: IntoDatum + FromDatum>(sql: &str) -> Option<T> {
    Spi::get_one::<T>(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

pub fn count(sql: &str) -> i64 {
    one::<i64>(sql).expect("count")
}

/// Creates `pg_temp.try_sql(text)` for this test's session.
pub fn install_try_sql() {
    run(
        "CREATE FUNCTION pg_temp.try_sql(q text) RETURNS text LANGUAGE plpgsql AS $$
         BEGIN EXECUTE q; RETURN NULL;
         EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$",
    );
}

/// Runs `sql` in a subtransaction; `SQLSTATE: message` if it failed.
pub fn failure(sql: &str) -> Option<String> {
    one::<String>(&format!(
        "SELECT pg_temp.try_sql({})",
        pgrx::spi::quote_literal(sql)
    ))
}

/// Asserts that `sql` fails with `sqlstate` and a message containing `needle`, the words that
/// name the cause; returns the `SQLSTATE: message` text for further checks.
pub fn assert_fails(sql: &str, sqlstate: &str, needle: &str) -> String {
    let f = failure(sql).unwrap_or_else(|| panic!("expected {sqlstate} from {sql}, it succeeded"));
    assert_failure(&f, sqlstate, needle, sql);
    f
}

/// Asserts that `sql` is refused by a privilege check (42501) on the object the privilege
/// is about, read from the statement: `SET [LOCAL] tenancy.name` needs the setting's
/// privilege; else the first `tenancy.name` the statement names is the object, a function if
/// it is called, a table otherwise. Statements refused on something else (a column, a table
/// passed as an argument) use `assert_fails` with their own message.
pub fn assert_denied(sql: &str) {
    let s = sql.trim();
    let setting = s.strip_prefix("SET ").and_then(|rest| {
        let name = rest.trim_start_matches("LOCAL ").split([' ', '=']).next()?;
        name.starts_with("tenancy.").then_some(name)
    });
    let needle = if let Some(name) = setting {
        format!("permission denied to set parameter \"{name}\"")
    } else {
        let at = s
            .find("tenancy.")
            .unwrap_or_else(|| panic!("no tenancy object in {s}"));
        let rest = &s[at + "tenancy.".len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let kind = if rest[end..].starts_with('(') {
            "function"
        } else {
            "table"
        };
        format!("permission denied for {kind} {}", &rest[..end])
    };
    assert_fails(sql, "42501", &needle);
}

/// Asserts that the `SQLSTATE: message` text `f` (from `failure()`, of `what`) has `sqlstate`
/// and contains `needle`. A SQLSTATE alone is shared by unrelated errors (22023 is any bad
/// argument, 28000 any refused credential), so the needle must name the cause: it may not be
/// empty, a SQLSTATE, the `pg_tenancy:` prefix, or what was refused without why.
pub fn assert_failure(f: &str, sqlstate: &str, needle: &str, what: &str) {
    const GENERIC: [&str; 8] = [
        "",
        "permission denied",
        "ERROR",
        "error",
        "refused",
        "token refused",
        "API key refused",
        "tenant context refused",
    ];
    let n = needle.trim();
    let generic = n.trim_start_matches("pg_tenancy").trim_start_matches(':');
    let generic = generic.trim().trim_end_matches(':');
    let sqlstate_like = n.len() == 5
        && n.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        && n.chars().any(|c| c.is_ascii_digit());
    assert!(
        n.len() >= 3 && !sqlstate_like && !GENERIC.contains(&generic),
        "needle {needle:?} for {what} does not name a cause"
    );
    let what = &what[..what.floor_char_boundary(200)];
    assert!(
        f.starts_with(&format!("{sqlstate}: ")),
        "expected {sqlstate} from {what}, got {f}"
    );
    assert!(
        f.contains(needle),
        "expected {needle:?} in error of {what}, got {f}"
    );
}

/// Every node of a JSON plan, depth first.
pub fn plan_nodes<'a>(plan: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
    out.push(plan);
    if let Some(children) = plan.get("Plans").and_then(|p| p.as_array()) {
        for c in children {
            plan_nodes(c, out);
        }
    }
}

/// Runs `sql` under `EXPLAIN ANALYZE` (so it really runs, CREATE TABLE AS included) and
/// asserts that its plan is parallel and that every Gather launched a worker: a plan that
/// asks for workers and gets none runs in the leader alone, which proves nothing about what
/// workers compute. Returns the plan.
pub fn assert_workers_ran(sql: &str) -> serde_json::Value {
    let plan = one::<pgrx::Json>(&format!("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {sql}"))
        .unwrap_or_else(|| panic!("no plan for {sql}"))
        .0;
    let mut nodes = Vec::new();
    plan_nodes(&plan[0]["Plan"], &mut nodes);
    let launched: Vec<i64> = nodes
        .iter()
        .filter_map(|n| n.get("Workers Launched")?.as_i64())
        .collect();
    assert!(!launched.is_empty(), "no parallel plan: {plan}");
    assert!(
        launched.iter().all(|&n| n >= 1),
        "no parallel worker ran: {plan}"
    );
    plan
}

/// The single text value `sql` returns; panics on NULL.
pub fn text(sql: &str) -> String {
    one::<String>(sql).unwrap_or_else(|| panic!("{sql} returned NULL"))
}

/// One row of `tenancy.check()`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub severity: String,
    pub rule: String,
    pub object: String,
    pub fix: Option<String>,
}

impl Finding {
    /// The fix, or "" when check() has none for this finding.
    pub fn fix_text(&self) -> &str {
        self.fix.as_deref().unwrap_or_default()
    }
}

/// What `tenancy.check(schema)` reports, in its order.
pub fn findings(schema: &str) -> Vec<Finding> {
    Spi::connect(|c| {
        c.select(
            "SELECT severity, rule, object, fix FROM tenancy.check($1::name)",
            None,
            &[schema.into()],
        )?
        .map(|r| {
            Ok(Finding {
                severity: r.get::<String>(1)?.unwrap_or_default(),
                rule: r.get::<String>(2)?.unwrap_or_default(),
                object: r.get::<String>(3)?.unwrap_or_default(),
                fix: r.get::<String>(4)?,
            })
        })
        .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .unwrap_or_else(|e| panic!("tenancy.check({schema}): {e}"))
}

/// Runs the fix of `f` as the documented loop does (EXECUTE, as the calling superuser): it
/// must exist and succeed; then `after` runs, and the finding must be gone from
/// `tenancy.check(schema)`.
pub fn apply_fix(schema: &str, f: &Finding, after: impl Fn()) {
    let fix = f.fix_text();
    assert!(!fix.is_empty(), "no fix for {f:?}");
    if let Some(e) = failure(fix) {
        panic!("fix for {} {} failed: {fix}\n{e}", f.rule, f.object);
    }
    after();
    let left = findings(schema);
    assert!(
        !left
            .iter()
            .any(|g| g.rule == f.rule && g.object == f.object),
        "{} {} still reported after its fix {fix}:\n{left:#?}",
        f.rule,
        f.object
    );
}
