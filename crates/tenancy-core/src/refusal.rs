//! Why a token, API key or context carrier was refused.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    TooLong,
    /// Not three non-empty dot-separated segments of base64url characters.
    Malformed,
    BadBase64,
    /// Invalid JSON, not an object, a duplicate member name, or nesting too deep.
    BadJson,
    /// `none`, an algorithm we do not implement, or not the key's algorithm.
    UnsupportedAlg,
    UnknownKid,
    NoMatchingKey,
    BadSignature,
    Expired,
    NotYetValid,
    WrongAudience,
    WrongIssuer,
    MissingTenant,
    BadTenant,
    BadClaim(&'static str),
    CritHeader,
}

impl Refusal {
    /// One of each kind, for tests and for whoever keeps a counter per reason.
    pub const EVERY: [Refusal; 16] = [
        Refusal::TooLong,
        Refusal::Malformed,
        Refusal::BadBase64,
        Refusal::BadJson,
        Refusal::UnsupportedAlg,
        Refusal::UnknownKid,
        Refusal::NoMatchingKey,
        Refusal::BadSignature,
        Refusal::Expired,
        Refusal::NotYetValid,
        Refusal::WrongAudience,
        Refusal::WrongIssuer,
        Refusal::MissingTenant,
        Refusal::BadTenant,
        Refusal::BadClaim("exp"),
        Refusal::CritHeader,
    ];

    /// Stable snake_case name, used in log lines and counters.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::TooLong => "too_long",
            Refusal::Malformed => "malformed",
            Refusal::BadBase64 => "bad_base64",
            Refusal::BadJson => "bad_json",
            Refusal::UnsupportedAlg => "unsupported_alg",
            Refusal::UnknownKid => "unknown_kid",
            Refusal::NoMatchingKey => "no_matching_key",
            Refusal::BadSignature => "bad_signature",
            Refusal::Expired => "expired",
            Refusal::NotYetValid => "not_yet_valid",
            Refusal::WrongAudience => "wrong_audience",
            Refusal::WrongIssuer => "wrong_issuer",
            Refusal::MissingTenant => "missing_tenant",
            Refusal::BadTenant => "bad_tenant",
            Refusal::BadClaim(_) => "bad_claim",
            Refusal::CritHeader => "crit_header",
        }
    }

    /// A short sentence with no secret and no token text.
    pub fn message(&self) -> String {
        match self {
            Refusal::TooLong => format!("it is longer than {} bytes", crate::MAX_TOKEN_BYTES),
            Refusal::Malformed => "it is not three base64url segments separated by dots".into(),
            Refusal::BadBase64 => "a segment is not valid unpadded base64url".into(),
            Refusal::BadJson => {
                "its header or payload is not a valid JSON object (or repeats a member)".into()
            }
            Refusal::UnsupportedAlg => {
                "its algorithm is not the one registered for the signing key".into()
            }
            Refusal::UnknownKid => "its kid does not name a live signing key".into(),
            Refusal::NoMatchingKey => "no live signing key uses its algorithm".into(),
            Refusal::BadSignature => "its signature does not verify".into(),
            Refusal::Expired => "it has expired".into(),
            Refusal::NotYetValid => "it is not valid yet (nbf)".into(),
            Refusal::WrongAudience => {
                "its audience (aud) does not include tenancy.jwt_audience".into()
            }
            Refusal::WrongIssuer => "its issuer (iss) is not tenancy.jwt_issuer".into(),
            Refusal::MissingTenant => "it names no tenant (see tenancy.jwt_tenant_claim)".into(),
            Refusal::BadTenant => "its tenant claim is not a valid tenant id".into(),
            Refusal::BadClaim(name) => format!("claim \"{name}\" has the wrong type or shape"),
            Refusal::CritHeader => {
                "its header has critical extensions (crit) this verifier does not implement".into()
            }
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_distinct_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for r in &Refusal::EVERY {
            let name = r.reason();
            assert!(seen.insert(name), "{name} used twice");
            assert!(!name.is_empty());
            assert!(name
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'));
        }
        assert_eq!(Refusal::Expired.reason(), "expired");
        assert_eq!(Refusal::BadClaim("roles").reason(), "bad_claim");
    }

    #[test]
    fn messages_are_short_sentences() {
        for r in &Refusal::EVERY {
            let m = r.message();
            assert!(!m.is_empty() && m.len() < 100, "{m}");
            assert_eq!(r.to_string(), m);
            assert!(!m.contains('\n'));
        }
        assert_eq!(Refusal::Expired.to_string(), "it has expired");
        assert_eq!(
            Refusal::BadSignature.to_string(),
            "its signature does not verify"
        );
        assert!(Refusal::BadClaim("roles").message().contains("\"roles\""));
        assert!(Refusal::TooLong.message().contains("8192"));
    }
}
