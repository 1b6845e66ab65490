//! Compact JWS (RFC 7515) with HMAC algorithms: parsing, verification and signing.

use serde_json::{Map, Value};

use crate::{b64, json, Alg, Refusal, MAX_TOKEN_BYTES};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub alg: String,
    pub kid: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub header: Header,
    pub claims: Map<String, Value>,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

fn b64url_segment(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

pub fn parse(token: &str) -> Result<Token, Refusal> {
    // Before any other work, so a megabyte of garbage costs nothing.
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Refusal::TooLong);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Malformed);
    };
    if ![h, p, s].iter().all(|x| b64url_segment(x)) {
        return Err(Refusal::Malformed);
    }
    let header_bytes = b64::decode(h).ok_or(Refusal::BadBase64)?;
    let payload_bytes = b64::decode(p).ok_or(Refusal::BadBase64)?;
    let signature = b64::decode(s).ok_or(Refusal::BadBase64)?;
    let header = json::strict_object(&header_bytes).ok_or(Refusal::BadJson)?;
    let claims = json::strict_object(&payload_bytes).ok_or(Refusal::BadJson)?;
    if header.contains_key("crit") {
        return Err(Refusal::CritHeader);
    }
    let alg = match header.get("alg") {
        Some(Value::String(a)) => a.clone(),
        _ => return Err(Refusal::UnsupportedAlg),
    };
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(Refusal::BadClaim("kid")),
    };
    let signing_input = token.as_bytes()[..h.len() + 1 + p.len()].to_vec();
    Ok(Token {
        header: Header { alg, kid },
        claims,
        signing_input,
        signature,
    })
}

impl Token {
    /// Constant-time check of the signature with `key` under `alg`. The caller has already
    /// matched `alg` against the header and the key's registration.
    pub fn verify(&self, alg: Alg, key: &[u8]) -> bool {
        alg.verify(key, &self.signing_input, &self.signature)
    }
}

pub fn sign(alg: Alg, kid: Option<&str>, key: &[u8], claims: &Map<String, Value>) -> String {
    let mut header = Map::new();
    header.insert("alg".into(), Value::String(alg.as_str().into()));
    header.insert("typ".into(), Value::String("JWT".into()));
    if let Some(kid) = kid {
        header.insert("kid".into(), Value::String(kid.into()));
    }
    let h = b64::encode(Value::Object(header).to_string().as_bytes());
    let p = b64::encode(Value::Object(claims.clone()).to_string().as_bytes());
    let input = format!("{h}.{p}");
    let sig = b64::encode(&alg.mac(key, input.as_bytes()));
    format!("{input}.{sig}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn claims() -> Map<String, Value> {
        json!({"tenant_id": "acme", "sub": "alice"})
            .as_object()
            .unwrap()
            .clone()
    }

    /// RFC 7515 appendix A.1: the HS256 example.
    #[test]
    fn rfc7515_a1_known_answer() {
        let jwk_k = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
        let key = b64::decode(jwk_k).unwrap();
        let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let t = parse(token).unwrap();
        assert_eq!(t.header.alg, "HS256");
        assert_eq!(t.claims["iss"], "joe");
        assert!(t.verify(Alg::HS256, &key));
        assert!(!t.verify(Alg::HS256, KEY));
    }

    #[test]
    fn round_trip_each_alg() {
        for (alg, key) in [
            (Alg::HS256, &[7u8; 32][..]),
            (Alg::HS384, &[7u8; 48][..]),
            (Alg::HS512, &[7u8; 64][..]),
        ] {
            let tok = sign(alg, Some("k1"), key, &claims());
            let t = parse(&tok).unwrap();
            assert_eq!(t.header.alg, alg.as_str());
            assert_eq!(t.header.kid.as_deref(), Some("k1"));
            assert!(t.verify(alg, key));
            assert!(!t.verify(alg, &[8u8; 64][..key.len()]));
        }
    }

    fn mutate_segment(tok: &str, i: usize, f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut parts: Vec<String> = tok.split('.').map(String::from).collect();
        let mut bytes = b64::decode(&parts[i]).unwrap();
        f(&mut bytes);
        parts[i] = b64::encode(&bytes);
        parts.join(".")
    }

    #[test]
    fn flipped_payload_byte_fails() {
        let tok = sign(Alg::HS256, None, KEY, &claims());
        let bad = mutate_segment(&tok, 1, |b| b[3] ^= 0x01);
        match parse(&bad) {
            Ok(t) => assert!(!t.verify(Alg::HS256, KEY)),
            Err(r) => assert_eq!(r, Refusal::BadJson),
        }
    }

    #[test]
    fn flipped_signature_byte_fails() {
        let tok = sign(Alg::HS256, None, KEY, &claims());
        let bad = mutate_segment(&tok, 2, |b| b[0] ^= 0x80);
        assert!(!parse(&bad).unwrap().verify(Alg::HS256, KEY));
    }

    #[test]
    fn wrong_key_fails() {
        let tok = sign(Alg::HS256, None, KEY, &claims());
        assert!(!parse(&tok)
            .unwrap()
            .verify(Alg::HS256, b"another key of thirty-two bytes!"));
    }

    #[test]
    fn alg_none_never_verifies() {
        let h = b64::encode(br#"{"alg":"none"}"#);
        let p = b64::encode(br#"{"tenant_id":"acme"}"#);
        assert_eq!(parse(&format!("{h}.{p}.")).unwrap_err(), Refusal::Malformed);
        let t = parse(&format!("{h}.{p}.AAAA")).unwrap();
        assert_eq!(Alg::parse(&t.header.alg), None);
    }

    #[test]
    fn alg_mismatch_fails() {
        let tok = sign(Alg::HS384, None, &[7u8; 48], &claims());
        assert!(!parse(&tok).unwrap().verify(Alg::HS256, &[7u8; 48]));
    }

    #[test]
    fn crit_header_refused() {
        let h = b64::encode(br#"{"alg":"HS256","crit":["exp"]}"#);
        let p = b64::encode(br#"{"tenant_id":"acme"}"#);
        assert_eq!(
            parse(&format!("{h}.{p}.AAAA")).unwrap_err(),
            Refusal::CritHeader
        );
    }

    #[test]
    fn structure_refusals() {
        let tok = sign(Alg::HS256, None, KEY, &claims());
        let parts: Vec<&str> = tok.split('.').collect();
        assert_eq!(
            parse(&format!("{}.{}", parts[0], parts[1])).unwrap_err(),
            Refusal::Malformed
        );
        assert_eq!(parse(&format!("{tok}.x")).unwrap_err(), Refusal::Malformed);
        assert_eq!(
            parse(&format!("{}.{}.", parts[0], parts[1])).unwrap_err(),
            Refusal::Malformed
        );
        assert_eq!(
            parse(&format!("{}=.{}.{}", parts[0], parts[1], parts[2])).unwrap_err(),
            Refusal::Malformed
        );
        assert_eq!(
            parse(&format!("{}.{}+.{}", parts[0], parts[1], parts[2])).unwrap_err(),
            Refusal::Malformed
        );
        assert_eq!(
            parse(&format!("{}.{}/.{}", parts[0], parts[1], parts[2])).unwrap_err(),
            Refusal::Malformed
        );
        assert_eq!(parse("a\0b.c.d").unwrap_err(), Refusal::Malformed);
        assert_eq!(parse("é.c.d").unwrap_err(), Refusal::Malformed);
        // One base64url character alone encodes no whole byte.
        assert_eq!(
            parse(&format!("{}.a.{}", parts[0], parts[2])).unwrap_err(),
            Refusal::BadBase64
        );
    }

    #[test]
    fn json_refusals() {
        let h = b64::encode(br#"{"alg":"HS256"}"#);
        let sig = b64::encode(&[0u8; 32]);
        let bad =
            |payload: &[u8]| parse(&format!("{h}.{}.{sig}", b64::encode(payload))).unwrap_err();
        assert_eq!(bad(br#"{"tenant_id":"a""#), Refusal::BadJson);
        assert_eq!(bad(br#"["tenant_id"]"#), Refusal::BadJson);
        assert_eq!(
            bad(br#"{"tenant_id":"a","tenant_id":"b"}"#),
            Refusal::BadJson
        );
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(
            parse(&format!("{h}.{}.{sig}", b64::encode(deep.as_bytes()))).unwrap_err(),
            Refusal::TooLong
        );
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(2_000), "]".repeat(2_000));
        assert_eq!(bad(deep.as_bytes()), Refusal::BadJson);
    }

    #[test]
    fn huge_token_is_refused_fast() {
        let big = "a".repeat(1 << 20);
        assert_eq!(parse(&big).unwrap_err(), Refusal::TooLong);
    }

    /// Deterministic mutation loop: no mutation of a valid token panics or verifies.
    #[test]
    fn mutations_never_verify() {
        let tok = sign(Alg::HS256, Some("k"), KEY, &claims());
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2000 {
            let mut bytes = tok.clone().into_bytes();
            let n = 1 + (next() % 3) as usize;
            for _ in 0..n {
                let i = (next() as usize) % bytes.len();
                bytes[i] = (next() & 0x7f) as u8;
            }
            let Ok(s) = String::from_utf8(bytes) else {
                continue;
            };
            if s == tok {
                continue;
            }
            if let Ok(t) = parse(&s) {
                assert!(!t.verify(Alg::HS256, KEY), "mutated token verified: {s}");
            }
        }
    }
}
