//! The isolation checker. The rules are catalog queries in `sql/check.sql` (`tenancy.check()`,
//! one set-based statement, so thousands of tables cost a few scans, not a loop); this module
//! turns their critical and high findings into an error for CI (`tenancy.assert_isolated()`).

use pgrx::prelude::*;
use pgrx::spi::quote_identifier;

use crate::infra::errors::{self, SpiOrBug};

/// One finding of `tenancy.check()` that `assert_isolated()` refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub severity: String,
    pub rule: String,
    pub object: String,
}

/// The error message listing every finding: `[severity] rule: object`, in check()'s order.
/// `scope` is what was checked (`schema "x"` or `the database`).
pub fn message(scope: &str, findings: &[Finding]) -> String {
    let n = findings.len();
    let list = findings
        .iter()
        .map(|f| format!("[{}] {}: {}", f.severity, f.rule, f.object))
        .collect::<Vec<_>>()
        .join("; ");
    format!(
        "{scope} is not isolated: {n} critical or high finding{}: {list}",
        if n == 1 { "" } else { "s" }
    )
}

#[pg_extern(stable, parallel_unsafe)]
fn _assert_isolated(schema: Option<&str>) {
    let findings = Spi::connect(|c| {
        c.select(
            "SELECT severity, rule, object FROM tenancy.check($1::pg_catalog.name)
              WHERE severity IN ('critical', 'high')",
            None,
            &[schema.into()],
        )?
        .map(|r| {
            Ok(Finding {
                severity: r.get::<String>(1)?.unwrap_or_default(),
                rule: r.get::<String>(2)?.unwrap_or_default(),
                object: r.get::<String>(3)?.unwrap_or_default(),
            })
        })
        .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .or_bug("running tenancy.check()");
    if findings.is_empty() {
        return;
    }
    let hint = match schema {
        Some(s) => format!(
            "SELECT * FROM tenancy.check({}) lists each finding with why it leaks and the SQL that fixes it",
            pgrx::spi::quote_literal(s)
        ),
        None => "SELECT * FROM tenancy.check() lists each finding with why it leaks and the SQL that fixes it".to_string(),
    };
    let scope = match schema {
        Some(s) => format!("schema {}", quote_identifier(s)),
        None => "the database".to_string(),
    };
    errors::forbidden(message(&scope, &findings), Some(&hint));
}

#[cfg(test)]
mod unit {
    use super::*;

    fn f(severity: &str, rule: &str, object: &str) -> Finding {
        Finding {
            severity: severity.into(),
            rule: rule.into(),
            object: object.into(),
        }
    }

    #[test]
    fn message_lists_every_finding_in_order() {
        let m = message(
            "schema \"we ird\"",
            &[
                f("critical", "rls_disabled", "app.t"),
                f("high", "global_unique_key", "app.t_email_key"),
            ],
        );
        assert_eq!(
            m,
            "schema \"we ird\" is not isolated: 2 critical or high findings: \
             [critical] rls_disabled: app.t; [high] global_unique_key: app.t_email_key"
        );
    }

    #[test]
    fn message_for_the_whole_database() {
        let m = message(
            "the database",
            &[f("critical", "app_role_superuser", "role app")],
        );
        assert_eq!(
            m,
            "the database is not isolated: 1 critical or high finding: [critical] app_role_superuser: role app"
        );
    }
}
