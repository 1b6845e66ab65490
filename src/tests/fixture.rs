//! Helpers shared by the `#[pg_test]` modules. Each test runs in its own rolled-back
//! transaction; SQLSTATEs are asserted through `pg_temp.try_sql()`, which runs a statement in
//! a subtransaction and returns `SQLSTATE: message` when it fails.

use pgrx::prelude::*;

pub const SECRET_HEX: &str = "7365637265742d7365637265742d7365637265742d7365637265742d31323334";

/// Two tenants `{p}_a` and `{p}_b`, a signing key `{p}_k`, an app role and a trusted role,
/// and a protected table `{p}_docs` with two rows for a and one for b.
pub fn docs_fixture(p: &str, tenant_type: &str, a: &str, b: &str) {
    install_try_sql();
    run(&format!(
        "CREATE ROLE {p}_app NOLOGIN; SELECT tenancy.grant_app('{p}_app');
         CREATE ROLE {p}_trusted NOLOGIN; SELECT tenancy.grant_trusted('{p}_trusted');
         GRANT USAGE ON SCHEMA tests TO {p}_app, {p}_trusted;
         SELECT tenancy.create_tenant('{a}', 'Tenant A');
         SELECT tenancy.create_tenant('{b}', 'Tenant B');
         SELECT tenancy.add_signing_key('{p}_k', '\\x{SECRET_HEX}');
         CREATE TABLE tests.{p}_docs (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                                      tenant_id {tenant_type}, body text);
         INSERT INTO tests.{p}_docs (tenant_id, body) VALUES ('{a}', 'a1'), ('{a}', 'a2'), ('{b}', 'b1');
         SELECT tenancy.protect('tests.{p}_docs');
         GRANT SELECT, INSERT, UPDATE, DELETE ON tests.{p}_docs TO {p}_app, {p}_trusted;"
    ));
}

pub fn token(p: &str, claims: serde_json::Value) -> String {
    one::<String>(&format!(
        "SELECT tenancy.sign_token({}::jsonb, '{p}_k')",
        pgrx::spi::quote_literal(claims.to_string())
    ))
    .expect("token")
}

pub fn epoch_now() -> i64 {
    one::<i64>("SELECT extract(epoch FROM now())::bigint").unwrap()
}

pub fn set_context_sql(tok: &str) -> String {
    format!(
        "SELECT tenancy.set_context({})",
        pgrx::spi::quote_literal(tok)
    )
}

pub fn b64(bytes: &[u8]) -> String {
    tenancy_core::b64::encode(bytes)
}

pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
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

/// Asserts that `sql` fails with `sqlstate` and a message containing `needle`; returns the
/// `SQLSTATE: message` text for further checks.
pub fn assert_fails(sql: &str, sqlstate: &str, needle: &str) -> String {
    let f = failure(sql).unwrap_or_else(|| panic!("expected {sqlstate} from {sql}, it succeeded"));
    assert!(
        f.starts_with(&format!("{sqlstate}: ")),
        "expected {sqlstate} from {sql}, got {f}"
    );
    assert!(
        f.contains(needle),
        "expected {needle:?} in error of {sql}, got {f}"
    );
    f
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
