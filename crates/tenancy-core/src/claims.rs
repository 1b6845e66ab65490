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

pub fn claim_at<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
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

/// A NumericDate (RFC 7519 §2): integer or finite float, floored and clamped to i64.
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

/// Expired when `now >= exp + leeway`; not yet valid when `now + leeway < nbf`.
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
        Some(Value::String(s))
            if (1..=256).contains(&s.chars().count()) && !s.chars().any(char::is_control) =>
        {
            Some(s.clone())
        }
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
    }
}
