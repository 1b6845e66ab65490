//! Validation of a verified token's claims and extraction of the identity it carries.

use serde_json::{Map, Value};

use crate::{ident, Refusal};

/// Dot-separated names, 1–8 of them, each 1–64 of `[A-Za-z0-9_:-]`.
pub fn valid_claim_path(path: &str) -> bool {
    let segs: Vec<&str> = path.split('.').collect();
    (1..=8).contains(&segs.len())
        && segs.iter().all(|s| {
            (1..=64).contains(&s.len())
                && s.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b':' | b'-'))
        })
}

/// The value at a dotted path through nested objects. An invalid path finds nothing, so a
/// path that slipped past the setting's check cannot name an odd member such as `""`.
pub fn claim_at<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if !valid_claim_path(path) {
        return None;
    }
    let mut segs = path.split('.');
    let mut cur = claims.get(segs.next()?)?;
    for s in segs {
        cur = cur.as_object()?.get(s)?;
    }
    Some(cur)
}

pub struct Rules<'a> {
    /// Seconds since the Unix epoch.
    pub now: i64,
    pub leeway: i64,
    pub audience: Option<&'a str>,
    pub issuer: Option<&'a str>,
    pub tenant_claim: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub tenant: String,
    pub actor: Option<String>,
    pub roles: Vec<String>,
    /// The token's `exp`, floored, if it has one.
    pub expires_at: Option<i64>,
}

/// A NumericDate (RFC 7519 §2): integer or finite float, floored and clamped to i64, so
/// `1e300` is "never" and `-1e300` is "long ago" rather than an error.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, Refusal> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else if let Some(u) = n.as_u64() {
                Ok(Some(i64::try_from(u).unwrap_or(i64::MAX)))
            } else {
                let f = n.as_f64().ok_or(Refusal::BadClaim(name))?.floor();
                // `as` saturates at the i64 bounds, which is the clamp we want.
                Ok(Some(f as i64))
            }
        }
        Some(_) => Err(Refusal::BadClaim(name)),
    }
}

/// Checks a verified token's claims and extracts its identity. Call only after the signature
/// verified.
///
/// Times are whole seconds, floored, with saturating arithmetic: expired when
/// `now >= exp + leeway`; not yet valid when `now + leeway < nbf`. The tenant at
/// `rules.tenant_claim` may be a string or an integer (rendered in decimal) and must pass
/// [`ident::valid_tenant_id`]; `sub` becomes the actor; `roles` is deduplicated in order.
pub fn validate(claims: &Map<String, Value>, rules: &Rules) -> Result<Identity, Refusal> {
    let exp = numeric_date(claims, "exp")?;
    let nbf = numeric_date(claims, "nbf")?;
    if let Some(exp) = exp {
        if rules.now >= exp.saturating_add(rules.leeway) {
            return Err(Refusal::Expired);
        }
    }
    if let Some(nbf) = nbf {
        if rules.now.saturating_add(rules.leeway) < nbf {
            return Err(Refusal::NotYetValid);
        }
    }
    if let Some(iss) = rules.issuer {
        if claims.get("iss").and_then(Value::as_str) != Some(iss) {
            return Err(Refusal::WrongIssuer);
        }
    }
    if let Some(aud) = rules.audience {
        let ok = match claims.get("aud") {
            Some(Value::String(s)) => s == aud,
            Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(aud)),
            _ => false,
        };
        if !ok {
            return Err(Refusal::WrongAudience);
        }
    }
    let tenant = match claim_at(claims, rules.tenant_claim) {
        None | Some(Value::Null) => return Err(Refusal::MissingTenant),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
        Some(_) => return Err(Refusal::BadTenant),
    };
    if !ident::valid_tenant_id(&tenant) {
        return Err(Refusal::BadTenant);
    }
    let actor = match claims.get("sub") {
        None => None,
        Some(Value::String(s)) if ident::valid_text(s, 256) => Some(s.clone()),
        Some(_) => return Err(Refusal::BadClaim("sub")),
    };
    let roles = match claims.get("roles") {
        None => Vec::new(),
        Some(Value::Array(items)) if items.len() <= 64 => {
            let mut out: Vec<String> = Vec::new();
            for item in items {
                match item.as_str() {
                    Some(r) if ident::valid_role(r) => {
                        if !out.iter().any(|x| x == r) {
                            out.push(r.to_string());
                        }
                    }
                    _ => return Err(Refusal::BadClaim("roles")),
                }
            }
            out
        }
        Some(_) => return Err(Refusal::BadClaim("roles")),
    };
    Ok(Identity {
        tenant,
        actor,
        roles,
        expires_at: exp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn rules() -> Rules<'static> {
        Rules {
            now: NOW,
            leeway: 30,
            audience: None,
            issuer: None,
            tenant_claim: "tenant_id",
        }
    }

    fn check(v: Value, r: &Rules) -> Result<Identity, Refusal> {
        validate(v.as_object().unwrap(), r)
    }

    #[test]
    fn identity_extracted() {
        let id = check(json!({"tenant_id": "acme", "sub": "alice", "roles": ["hr", "hr", "x"], "exp": NOW + 60}), &rules()).unwrap();
        assert_eq!(
            id,
            Identity {
                tenant: "acme".into(),
                actor: Some("alice".into()),
                roles: vec!["hr".into(), "x".into()],
                expires_at: Some(NOW + 60)
            }
        );
    }

    #[test]
    fn exp_and_leeway() {
        assert_eq!(
            check(json!({"tenant_id": "a", "exp": NOW - 31}), &rules()).unwrap_err(),
            Refusal::Expired
        );
        assert_eq!(
            check(json!({"tenant_id": "a", "exp": NOW - 30}), &rules()).unwrap_err(),
            Refusal::Expired
        );
        assert!(check(json!({"tenant_id": "a", "exp": NOW - 29}), &rules()).is_ok());
        assert!(check(
            json!({"tenant_id": "a", "exp": (NOW + 10) as f64 + 0.5}),
            &rules()
        )
        .is_ok());
        assert_eq!(
            check(json!({"tenant_id": "a", "exp": "soon"}), &rules()).unwrap_err(),
            Refusal::BadClaim("exp")
        );
        assert!(check(json!({"tenant_id": "a", "exp": 1e300}), &rules()).is_ok());
        assert_eq!(
            check(json!({"tenant_id": "a", "exp": -1e300}), &rules()).unwrap_err(),
            Refusal::Expired
        );
        assert!(check(json!({"tenant_id": "a", "exp": u64::MAX}), &rules()).is_ok());
    }

    #[test]
    fn exp_float_is_floored() {
        let id = check(
            json!({"tenant_id": "a", "exp": NOW as f64 + 100.9}),
            &rules(),
        )
        .unwrap();
        assert_eq!(id.expires_at, Some(NOW + 100));
        // NOW - 30 + 0.9 floors to NOW - 30, which is expired with 30 s of leeway.
        assert_eq!(
            check(
                json!({"tenant_id": "a", "exp": (NOW - 30) as f64 + 0.9}),
                &rules()
            )
            .unwrap_err(),
            Refusal::Expired
        );
    }

    #[test]
    fn exp_extremes() {
        let id = check(json!({"tenant_id": "a", "exp": 1e300}), &rules()).unwrap();
        assert_eq!(id.expires_at, Some(i64::MAX));
        assert_eq!(
            check(json!({"tenant_id": "a", "exp": -1e300}), &rules()).unwrap_err(),
            Refusal::Expired
        );
        assert_eq!(
            check(json!({"tenant_id": "a", "exp": i64::MIN}), &rules()).unwrap_err(),
            Refusal::Expired
        );
        let far = Rules {
            now: i64::MAX,
            leeway: i64::MAX,
            ..rules()
        };
        assert_eq!(
            check(json!({"tenant_id": "a", "exp": i64::MAX}), &far).unwrap_err(),
            Refusal::Expired
        );
        assert!(check(json!({"tenant_id": "a", "nbf": i64::MAX}), &far).is_ok());
        let past = Rules {
            now: i64::MIN,
            leeway: i64::MIN,
            ..rules()
        };
        assert!(check(json!({"tenant_id": "a", "nbf": -1e300}), &past).is_ok());
        assert_eq!(
            check(json!({"tenant_id": "a", "nbf": 0}), &past).unwrap_err(),
            Refusal::NotYetValid
        );
    }

    #[test]
    fn exp_not_a_number() {
        for bad in [
            json!("1800000000"),
            json!(null),
            json!(true),
            json!([1]),
            json!({}),
        ] {
            assert_eq!(
                check(json!({"tenant_id": "a", "exp": bad}), &rules()).unwrap_err(),
                Refusal::BadClaim("exp")
            );
        }
        assert_eq!(
            Refusal::BadClaim("exp").message(),
            "claim \"exp\" has the wrong type or shape"
        );
    }

    #[test]
    fn exp_absent_means_no_expiry() {
        assert_eq!(
            check(json!({"tenant_id": "a"}), &rules())
                .unwrap()
                .expires_at,
            None
        );
    }

    #[test]
    fn nbf() {
        assert_eq!(
            check(json!({"tenant_id": "a", "nbf": NOW + 31}), &rules()).unwrap_err(),
            Refusal::NotYetValid
        );
        assert!(check(json!({"tenant_id": "a", "nbf": NOW + 30}), &rules()).is_ok());
        assert_eq!(
            check(json!({"tenant_id": "a", "nbf": true}), &rules()).unwrap_err(),
            Refusal::BadClaim("nbf")
        );
        assert!(check(json!({"tenant_id": "a", "nbf": NOW - 1000}), &rules()).is_ok());
    }

    #[test]
    fn checks_do_not_depend_on_claim_order() {
        // exp is checked before the tenant, so an expired token says "expired".
        assert_eq!(
            check(json!({"exp": NOW - 100, "tenant_id": "a b"}), &rules()).unwrap_err(),
            Refusal::Expired
        );
    }

    #[test]
    fn audience_and_issuer() {
        let r = Rules {
            audience: Some("payroll"),
            issuer: Some("https://idp"),
            ..rules()
        };
        assert!(check(
            json!({"tenant_id": "a", "aud": "payroll", "iss": "https://idp"}),
            &r
        )
        .is_ok());
        assert!(check(
            json!({"tenant_id": "a", "aud": ["crm", "payroll"], "iss": "https://idp"}),
            &r
        )
        .is_ok());
        assert_eq!(
            check(
                json!({"tenant_id": "a", "aud": "crm", "iss": "https://idp"}),
                &r
            )
            .unwrap_err(),
            Refusal::WrongAudience
        );
        assert_eq!(
            check(json!({"tenant_id": "a", "iss": "https://idp"}), &r).unwrap_err(),
            Refusal::WrongAudience
        );
        assert_eq!(
            check(
                json!({"tenant_id": "a", "aud": "payroll", "iss": "https://evil"}),
                &r
            )
            .unwrap_err(),
            Refusal::WrongIssuer
        );
        assert_eq!(
            check(json!({"tenant_id": "a", "aud": "payroll"}), &r).unwrap_err(),
            Refusal::WrongIssuer
        );
        for aud in [
            json!(["crm"]),
            json!([]),
            json!(null),
            json!(["payroll "]),
            json!("Payroll"),
            json!([["payroll"]]),
            json!({"payroll": true}),
        ] {
            assert_eq!(
                check(
                    json!({"tenant_id": "a", "aud": aud, "iss": "https://idp"}),
                    &r
                )
                .unwrap_err(),
                Refusal::WrongAudience
            );
        }
        assert_eq!(
            check(
                json!({"tenant_id": "a", "aud": "payroll", "iss": ["https://idp"]}),
                &r
            )
            .unwrap_err(),
            Refusal::WrongIssuer
        );
        // Without configured rules, aud and iss are not looked at.
        assert!(check(json!({"tenant_id": "a", "aud": 5, "iss": 5}), &rules()).is_ok());
    }

    #[test]
    fn tenant_claim_forms() {
        let nested = Rules {
            tenant_claim: "app_metadata.tenant_id",
            ..rules()
        };
        assert_eq!(
            check(json!({"app_metadata": {"tenant_id": "acme"}}), &nested)
                .unwrap()
                .tenant,
            "acme"
        );
        assert_eq!(
            check(json!({"tenant_id": "acme"}), &nested).unwrap_err(),
            Refusal::MissingTenant
        );
        assert_eq!(
            check(json!({"tenant_id": 42}), &rules()).unwrap().tenant,
            "42"
        );
        assert_eq!(
            check(json!({"tenant_id": 4.2}), &rules()).unwrap_err(),
            Refusal::BadTenant
        );
        assert_eq!(
            check(json!({"tenant_id": "a b"}), &rules()).unwrap_err(),
            Refusal::BadTenant
        );
        assert_eq!(
            check(json!({"tenant_id": "a'"}), &rules()).unwrap_err(),
            Refusal::BadTenant
        );
        assert_eq!(
            check(json!({"tenant_id": ["a"]}), &rules()).unwrap_err(),
            Refusal::BadTenant
        );
        assert_eq!(
            check(json!({"tenant_id": null}), &rules()).unwrap_err(),
            Refusal::MissingTenant
        );
        assert_eq!(
            check(json!({}), &rules()).unwrap_err(),
            Refusal::MissingTenant
        );
        assert_eq!(
            check(json!({"tenant_id": u64::MAX}), &rules())
                .unwrap()
                .tenant,
            u64::MAX.to_string()
        );
        for bad in [
            json!(""),
            json!("a\"b"),
            json!("a\u{0}"),
            json!("a;b"),
            json!(true),
            json!({"id": "a"}),
            json!("x".repeat(129)),
        ] {
            assert_eq!(
                check(json!({"tenant_id": bad}), &rules()).unwrap_err(),
                Refusal::BadTenant
            );
        }
        assert_eq!(
            check(
                json!({"app_metadata": "acme"}),
                &Rules {
                    tenant_claim: "app_metadata.tenant_id",
                    ..rules()
                }
            )
            .unwrap_err(),
            Refusal::MissingTenant
        );
        assert_eq!(
            check(
                json!({"": "acme"}),
                &Rules {
                    tenant_claim: "",
                    ..rules()
                }
            )
            .unwrap_err(),
            Refusal::MissingTenant
        );
    }

    #[test]
    fn roles_and_sub_shapes() {
        assert_eq!(
            check(json!({"tenant_id": "a", "roles": "hr"}), &rules()).unwrap_err(),
            Refusal::BadClaim("roles")
        );
        assert_eq!(
            check(json!({"tenant_id": "a", "roles": ["hr", 1]}), &rules()).unwrap_err(),
            Refusal::BadClaim("roles")
        );
        assert_eq!(
            check(json!({"tenant_id": "a", "roles": ["a b"]}), &rules()).unwrap_err(),
            Refusal::BadClaim("roles")
        );
        assert_eq!(
            check(json!({"tenant_id": "a", "sub": 7}), &rules()).unwrap_err(),
            Refusal::BadClaim("sub")
        );
        assert_eq!(
            check(json!({"tenant_id": "a", "sub": ""}), &rules()).unwrap_err(),
            Refusal::BadClaim("sub")
        );
        assert_eq!(
            check(json!({"tenant_id": "a", "sub": "a\nb"}), &rules()).unwrap_err(),
            Refusal::BadClaim("sub")
        );
        assert_eq!(
            check(json!({"tenant_id": "a", "sub": "é".repeat(257)}), &rules()).unwrap_err(),
            Refusal::BadClaim("sub")
        );
        assert_eq!(
            check(json!({"tenant_id": "a", "sub": "é".repeat(256)}), &rules())
                .unwrap()
                .actor
                .map(|a| a.chars().count()),
            Some(256)
        );
        assert_eq!(
            check(json!({"tenant_id": "a", "roles": {"hr": true}}), &rules()).unwrap_err(),
            Refusal::BadClaim("roles")
        );
        assert_eq!(
            check(json!({"tenant_id": "a", "roles": null}), &rules()).unwrap_err(),
            Refusal::BadClaim("roles")
        );
        assert_eq!(
            check(json!({"tenant_id": "a", "roles": [""]}), &rules()).unwrap_err(),
            Refusal::BadClaim("roles")
        );
        let many: Vec<String> = (0..65).map(|i| format!("r{i}")).collect();
        assert_eq!(
            check(json!({"tenant_id": "a", "roles": many}), &rules()).unwrap_err(),
            Refusal::BadClaim("roles")
        );
        let ok = check(json!({"tenant_id": "a", "roles": many[..64]}), &rules()).unwrap();
        assert_eq!(ok.roles.len(), 64);
        assert_eq!(
            check(json!({"tenant_id": "a", "roles": []}), &rules())
                .unwrap()
                .roles,
            Vec::<String>::new()
        );
        assert_eq!(
            check(
                json!({"tenant_id": "a", "roles": ["b", "a", "b"]}),
                &rules()
            )
            .unwrap()
            .roles,
            vec!["b".to_string(), "a".to_string()]
        );
    }

    #[test]
    fn claim_paths() {
        assert!(valid_claim_path("tenant_id"));
        assert!(valid_claim_path("app_metadata.tenant_id"));
        assert!(valid_claim_path("https:--x.org-tenant"));
        assert!(!valid_claim_path(""));
        assert!(!valid_claim_path("a..b"));
        assert!(!valid_claim_path("a.b."));
        assert!(!valid_claim_path("a b"));
        assert!(!valid_claim_path("a.b.c.d.e.f.g.h.i"));
        assert!(valid_claim_path("a.b.c.d.e.f.g.h"));
        assert!(valid_claim_path(&"a".repeat(64)));
        assert!(!valid_claim_path(&"a".repeat(65)));
        assert!(!valid_claim_path("tenant/id"));
        assert!(!valid_claim_path(".a"));
    }

    #[test]
    fn claim_at_walks_objects_only() {
        let c = json!({"a": {"b": {"c": 1}}, "l": [{"x": 1}]});
        let c = c.as_object().unwrap();
        assert_eq!(claim_at(c, "a.b.c"), Some(&json!(1)));
        assert_eq!(claim_at(c, "a.b"), Some(&json!({"c": 1})));
        assert_eq!(claim_at(c, "a.x"), None);
        assert_eq!(claim_at(c, "a.b.c.d"), None);
        assert_eq!(claim_at(c, "l.0.x"), None);
        assert_eq!(claim_at(c, "a..b"), None);
    }
}
