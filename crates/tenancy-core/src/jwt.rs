//! Compact JWS (RFC 7515) with HMAC algorithms: parsing, verification and signing.

use std::fmt;

use serde_json::{Map, Value};

use crate::{b64, json, Alg, Refusal, MAX_TOKEN_BYTES};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub alg: String,
    pub kid: Option<String>,
}

/// A parsed but not yet verified token: nothing in it is to be trusted before
/// [`Token::verify`] returns true.
#[derive(Clone)]
pub struct Token {
    pub header: Header,
    pub claims: Map<String, Value>,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

// Signing input and signature together are the bearer token; keep them out of debug output.
impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("header", &self.header)
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

fn b64url_segment(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// Splits, decodes and checks the shape of a compact JWS. Refuses `crit` headers and any
/// `alg` other than HS256/HS384/HS512 (so `none` never yields a `Token`); does NOT verify the
/// signature nor look at the claims' meaning.
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
        Some(Value::String(a)) if Alg::parse(a).is_some() => a.clone(),
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
    /// Constant-time check of the signature with `key` under `alg` (the key's registered
    /// algorithm). False when `alg` is not the header's `alg`, so a caller cannot check a
    /// token under an algorithm it did not claim; false for a key shorter than
    /// `alg.min_key_len()`.
    pub fn verify(&self, alg: Alg, key: &[u8]) -> bool {
        Alg::parse(&self.header.alg) == Some(alg)
            && alg.verify(key, &self.signing_input, &self.signature)
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

    fn token() -> String {
        sign(Alg::HS256, None, KEY, &claims())
    }

    fn parts(tok: &str) -> Vec<String> {
        tok.split('.').map(String::from).collect()
    }

    /// A token with the given header and payload JSON and a 32-byte all-zero signature.
    fn raw(header: &[u8], payload: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            b64::encode(header),
            b64::encode(payload),
            b64::encode(&[0u8; 32])
        )
    }

    fn payload_refusal(payload: &[u8]) -> Refusal {
        parse(&raw(br#"{"alg":"HS256"}"#, payload)).unwrap_err()
    }

    /// RFC 7515 appendix A.1: the HS256 example.
    #[test]
    fn rfc7515_a1_known_answer() {
        let jwk_k = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
        let key = b64::decode(jwk_k).unwrap();
        let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let t = parse(token).unwrap();
        assert_eq!(t.header.alg, "HS256");
        assert_eq!(t.header.kid, None);
        assert_eq!(t.claims["iss"], "joe");
        assert_eq!(t.claims["exp"], 1_300_819_380);
        assert_eq!(t.claims["http://example.com/is_root"], true);
        assert!(t.verify(Alg::HS256, &key));
        assert!(!t.verify(Alg::HS384, &key));
        assert!(!t.verify(Alg::HS256, KEY));
        // The MAC we compute over the RFC's signing input is the RFC's signature.
        let (input, sig) = token.rsplit_once('.').unwrap();
        assert_eq!(b64::encode(&Alg::HS256.mac(&key, input.as_bytes())), sig);
    }

    #[test]
    fn round_trip_each_alg() {
        for (alg, key) in [
            (Alg::HS256, &[7u8; 32][..]),
            (Alg::HS384, &[7u8; 48][..]),
            (Alg::HS512, &[7u8; 64][..]),
        ] {
            for kid in [Some("k1"), None] {
                let tok = sign(alg, kid, key, &claims());
                let t = parse(&tok).unwrap();
                assert_eq!(t.header.alg, alg.as_str());
                assert_eq!(t.header.kid.as_deref(), kid);
                assert_eq!(t.claims, claims());
                assert!(t.verify(alg, key));
                assert!(!t.verify(alg, &[8u8; 64][..key.len()]));
            }
        }
    }

    #[test]
    fn signed_header_shape() {
        let tok = sign(Alg::HS512, Some("k1"), &[1; 64], &claims());
        let header = b64::decode(&parts(&tok)[0]).unwrap();
        let header: Value = serde_json::from_slice(&header).unwrap();
        assert_eq!(header, json!({"alg": "HS512", "typ": "JWT", "kid": "k1"}));
        let tok = sign(Alg::HS256, None, KEY, &claims());
        let header = b64::decode(&parts(&tok)[0]).unwrap();
        let header: Value = serde_json::from_slice(&header).unwrap();
        assert_eq!(header, json!({"alg": "HS256", "typ": "JWT"}));
    }

    /// Re-encodes segment `i` after changing its decoded bytes.
    fn mutate_segment(tok: &str, i: usize, f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut p = parts(tok);
        let mut bytes = b64::decode(&p[i]).unwrap();
        f(&mut bytes);
        p[i] = b64::encode(&bytes);
        p.join(".")
    }

    #[test]
    fn flipped_payload_byte_fails() {
        // "acme" -> "acmf": still valid JSON, so this reaches the signature check.
        let bad = mutate_segment(&token(), 1, |b| {
            let at = b.windows(4).position(|w| w == b"acme").unwrap();
            b[at + 3] ^= 0x03;
        });
        let t = parse(&bad).unwrap();
        assert_eq!(t.claims["tenant_id"], "acmf");
        assert!(!t.verify(Alg::HS256, KEY));
    }

    #[test]
    fn flipped_signature_byte_fails() {
        let bad = mutate_segment(&token(), 2, |b| b[0] ^= 0x80);
        assert!(!parse(&bad).unwrap().verify(Alg::HS256, KEY));
        let bad = mutate_segment(&token(), 2, |b| b[31] ^= 0x01);
        assert!(!parse(&bad).unwrap().verify(Alg::HS256, KEY));
    }

    #[test]
    fn truncated_or_extended_signature_fails() {
        let bad = mutate_segment(&token(), 2, |b| {
            b.pop();
        });
        assert!(!parse(&bad).unwrap().verify(Alg::HS256, KEY));
        let bad = mutate_segment(&token(), 2, |b| b.push(0));
        assert!(!parse(&bad).unwrap().verify(Alg::HS256, KEY));
    }

    #[test]
    fn wrong_key_fails() {
        assert!(!parse(&token())
            .unwrap()
            .verify(Alg::HS256, b"another key of thirty-two bytes!"));
    }

    #[test]
    fn short_key_never_verifies() {
        let key = b"short";
        let tok = sign(Alg::HS256, None, key, &claims());
        assert!(!parse(&tok).unwrap().verify(Alg::HS256, key));
        let tok = sign(Alg::HS256, None, b"", &claims());
        assert!(!parse(&tok).unwrap().verify(Alg::HS256, b""));
    }

    #[test]
    fn alg_none_refused() {
        let h = br#"{"alg":"none"}"#;
        let p = br#"{"tenant_id":"acme"}"#;
        assert_eq!(parse(&raw(h, p)).unwrap_err(), Refusal::UnsupportedAlg);
        let no_sig = format!("{}.{}.", b64::encode(h), b64::encode(p));
        assert_eq!(parse(&no_sig).unwrap_err(), Refusal::Malformed);
        // A "signature" made by HS256 over the input does not help either.
        let input = format!("{}.{}", b64::encode(h), b64::encode(p));
        let sig = b64::encode(&Alg::HS256.mac(KEY, input.as_bytes()));
        assert_eq!(
            parse(&format!("{input}.{sig}")).unwrap_err(),
            Refusal::UnsupportedAlg
        );
    }

    #[test]
    fn other_algs_refused() {
        for h in [
            &br#"{"alg":"None"}"#[..],
            br#"{"alg":"RS256"}"#,
            br#"{"alg":"hs256"}"#,
            br#"{"alg":"HS256 "}"#,
            br#"{"alg":""}"#,
            br#"{"alg":256}"#,
            br#"{"alg":null}"#,
            br#"{"typ":"JWT"}"#,
        ] {
            assert_eq!(
                parse(&raw(h, br#"{"tenant_id":"a"}"#)).unwrap_err(),
                Refusal::UnsupportedAlg
            );
        }
    }

    #[test]
    fn alg_mismatch_fails() {
        let tok = sign(Alg::HS384, None, &[7u8; 48], &claims());
        let t = parse(&tok).unwrap();
        assert_eq!(Alg::parse(&t.header.alg), Some(Alg::HS384));
        assert!(!t.verify(Alg::HS256, &[7u8; 48]));
        assert!(!t.verify(Alg::HS512, &[7u8; 64]));
        // Even a signature that is a valid HS256 MAC does not pass under an HS384 header.
        let input = format!(
            "{}.{}",
            b64::encode(br#"{"alg":"HS384"}"#),
            b64::encode(br#"{"tenant_id":"acme"}"#)
        );
        let sig = b64::encode(&Alg::HS256.mac(KEY, input.as_bytes()));
        let t = parse(&format!("{input}.{sig}")).unwrap();
        assert!(!t.verify(Alg::HS256, KEY));
    }

    #[test]
    fn crit_header_refused() {
        let h = br#"{"alg":"HS256","crit":["exp"],"exp":1}"#;
        assert_eq!(
            parse(&raw(h, br#"{"tenant_id":"acme"}"#)).unwrap_err(),
            Refusal::CritHeader
        );
        let h = br#"{"alg":"HS256","crit":[]}"#;
        assert_eq!(
            parse(&raw(h, br#"{"tenant_id":"acme"}"#)).unwrap_err(),
            Refusal::CritHeader
        );
    }

    #[test]
    fn non_string_kid_refused() {
        let h = br#"{"alg":"HS256","kid":7}"#;
        assert_eq!(
            parse(&raw(h, br#"{"tenant_id":"acme"}"#)).unwrap_err(),
            Refusal::BadClaim("kid")
        );
    }

    #[test]
    fn typ_is_ignored() {
        let h = br#"{"alg":"HS256","typ":"anything","kid":"k"}"#;
        let t = parse(&raw(h, br#"{"tenant_id":"acme"}"#)).unwrap();
        assert_eq!(t.header.kid.as_deref(), Some("k"));
    }

    #[test]
    fn two_segments_refused() {
        let p = parts(&token());
        assert_eq!(
            parse(&format!("{}.{}", p[0], p[1])).unwrap_err(),
            Refusal::Malformed
        );
    }

    #[test]
    fn four_segments_refused() {
        let tok = token();
        let p = parts(&tok);
        assert_eq!(
            parse(&format!("{tok}.{}", p[2])).unwrap_err(),
            Refusal::Malformed
        );
        assert_eq!(parse(&format!("{tok}.")).unwrap_err(), Refusal::Malformed);
    }

    #[test]
    fn empty_signature_refused() {
        let p = parts(&token());
        assert_eq!(
            parse(&format!("{}.{}.", p[0], p[1])).unwrap_err(),
            Refusal::Malformed
        );
    }

    #[test]
    fn empty_header_or_payload_refused() {
        let p = parts(&token());
        assert_eq!(
            parse(&format!(".{}.{}", p[1], p[2])).unwrap_err(),
            Refusal::Malformed
        );
        assert_eq!(
            parse(&format!("{}..{}", p[0], p[2])).unwrap_err(),
            Refusal::Malformed
        );
        assert_eq!(parse("..").unwrap_err(), Refusal::Malformed);
        assert_eq!(parse("").unwrap_err(), Refusal::Malformed);
    }

    #[test]
    fn padding_refused() {
        let p = parts(&token());
        for bad in [
            format!("{}=.{}.{}", p[0], p[1], p[2]),
            format!("{}.{}==.{}", p[0], p[1], p[2]),
            format!("{}.{}.{}=", p[0], p[1], p[2]),
        ] {
            assert_eq!(parse(&bad).unwrap_err(), Refusal::Malformed);
        }
    }

    #[test]
    fn standard_alphabet_refused() {
        let p = parts(&token());
        for c in ['+', '/'] {
            for i in 0..3 {
                let mut q = p.clone();
                q[i].push(c);
                assert_eq!(parse(&q.join(".")).unwrap_err(), Refusal::Malformed);
            }
        }
    }

    #[test]
    fn broken_base64_refused() {
        let p = parts(&token());
        // One base64url character alone encodes no whole byte.
        assert_eq!(
            parse(&format!("{}.a.{}", p[0], p[2])).unwrap_err(),
            Refusal::BadBase64
        );
        assert_eq!(
            parse(&format!("{}.{}.{}aa", p[0], p[1], p[2])).unwrap_err(),
            Refusal::BadBase64
        );
        // Non-zero trailing bits: a second spelling of the same signature.
        let sig = b64::decode(&p[2]).unwrap();
        assert_eq!(sig.len(), 32);
        let last = p[2].as_bytes()[p[2].len() - 1];
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let idx = alphabet.iter().position(|&c| c == last).unwrap();
        let other = alphabet[idx ^ 1] as char;
        let respelled = format!("{}{other}", &p[2][..p[2].len() - 1]);
        assert_eq!(
            parse(&format!("{}.{}.{respelled}", p[0], p[1])).unwrap_err(),
            Refusal::BadBase64
        );
    }

    #[test]
    fn broken_json_refused() {
        assert_eq!(payload_refusal(br#"{"tenant_id":"a""#), Refusal::BadJson);
        assert_eq!(payload_refusal(br#"{"tenant_id":'a'}"#), Refusal::BadJson);
        assert_eq!(
            payload_refusal(br#"{"tenant_id":"a"} {}"#),
            Refusal::BadJson
        );
        assert_eq!(payload_refusal(b"\xff\xfe"), Refusal::BadJson);
        assert_eq!(payload_refusal(br#"{"x":1e999}"#), Refusal::BadJson);
        assert_eq!(
            parse(&raw(br#"{"alg":"HS256""#, br#"{"tenant_id":"a"}"#)).unwrap_err(),
            Refusal::BadJson
        );
    }

    #[test]
    fn non_object_payload_refused() {
        assert_eq!(payload_refusal(br#"["tenant_id"]"#), Refusal::BadJson);
        assert_eq!(payload_refusal(br#""acme""#), Refusal::BadJson);
        assert_eq!(payload_refusal(b"null"), Refusal::BadJson);
        assert_eq!(
            parse(&raw(br#"["HS256"]"#, br#"{"tenant_id":"a"}"#)).unwrap_err(),
            Refusal::BadJson
        );
    }

    #[test]
    fn duplicate_claim_refused() {
        assert_eq!(
            payload_refusal(br#"{"tenant_id":"a","tenant_id":"b"}"#),
            Refusal::BadJson
        );
        // The same name spelled with an escape is still the same name.
        assert_eq!(
            payload_refusal(br#"{"tenant_id":"a","tenant\u005fid":"b"}"#),
            Refusal::BadJson
        );
        assert_eq!(
            payload_refusal(br#"{"app_metadata":{"tenant_id":"a","tenant_id":"b"}}"#),
            Refusal::BadJson
        );
        assert_eq!(
            parse(&raw(
                br#"{"alg":"HS256","alg":"none"}"#,
                br#"{"tenant_id":"a"}"#
            ))
            .unwrap_err(),
            Refusal::BadJson
        );
    }

    #[test]
    fn deep_nesting_refused() {
        // 10,000 levels do not fit in MAX_TOKEN_BYTES, so the length check refuses them
        // first (json.rs shows the parser alone also refuses them cleanly).
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(
            parse(&raw(br#"{"alg":"HS256"}"#, deep.as_bytes())).unwrap_err(),
            Refusal::TooLong
        );
        // The deepest nesting that fits is well past serde_json's limit of 128.
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(2_900), "]".repeat(2_900));
        let tok = raw(br#"{"alg":"HS256"}"#, deep.as_bytes());
        assert!(tok.len() <= MAX_TOKEN_BYTES);
        assert_eq!(parse(&tok).unwrap_err(), Refusal::BadJson);
        let deep = format!("{{\"x\":{}{}}}", "{\"a\":".repeat(1_000), "}".repeat(1_000));
        assert_eq!(payload_refusal(deep.as_bytes()), Refusal::BadJson);
        // Moderate nesting is fine.
        let ok = format!("{{\"x\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert!(parse(&raw(br#"{"alg":"HS256"}"#, ok.as_bytes())).is_ok());
    }

    #[test]
    fn huge_token_is_refused_fast() {
        let big = "a".repeat(1 << 20);
        let started = std::time::Instant::now();
        for _ in 0..1000 {
            assert_eq!(parse(&big).unwrap_err(), Refusal::TooLong);
        }
        // A length check, not a scan: a thousand refusals of a megabyte take no time.
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        let big = format!("{}.{}.{}", "a".repeat(4096), "a".repeat(4096), "a");
        assert_eq!(parse(&big).unwrap_err(), Refusal::TooLong);
    }

    #[test]
    fn limit_is_inclusive() {
        let with_fill = |n: usize| {
            let fill = "x".repeat(n);
            let c = json!({"tenant_id": "acme", "p": fill});
            sign(Alg::HS256, None, KEY, c.as_object().unwrap())
        };
        // Every 3 bytes of payload JSON add 4 characters; find a fill that lands exactly.
        let base = with_fill(0).len();
        let exact = (0..4)
            .map(|k| with_fill((MAX_TOKEN_BYTES - base) * 3 / 4 + k))
            .find(|t| t.len() == MAX_TOKEN_BYTES)
            .unwrap();
        assert!(parse(&exact).unwrap().verify(Alg::HS256, KEY));
        assert_eq!(parse(&format!("{exact}A")).unwrap_err(), Refusal::TooLong);
    }

    #[test]
    fn nul_and_invalid_characters_refused() {
        let p = parts(&token());
        for c in ["\0", " ", "\n", "é", "\u{202e}", "%", "*", "\"", "\\"] {
            for i in 0..3 {
                let mut q = p.clone();
                q[i].insert_str(1, c);
                assert_eq!(
                    parse(&q.join(".")).unwrap_err(),
                    Refusal::Malformed,
                    "{c:?}"
                );
            }
        }
        assert_eq!(parse("a\0b.c.d").unwrap_err(), Refusal::Malformed);
        assert_eq!(
            parse(&format!(" {}", token())).unwrap_err(),
            Refusal::Malformed
        );
        assert_eq!(
            parse(&format!("{}\n", token())).unwrap_err(),
            Refusal::Malformed
        );
        // A NUL inside the decoded JSON is not valid JSON.
        assert_eq!(
            payload_refusal(b"{\"tenant_id\":\"a\0\"}"),
            Refusal::BadJson
        );
    }

    #[test]
    fn debug_output_hides_the_signature() {
        let tok = token();
        let shown = format!("{:?}", parse(&tok).unwrap());
        assert!(shown.contains("acme"));
        assert!(!shown.contains(&parts(&tok)[2]));
        assert!(!shown.contains(&parts(&tok)[1]));
    }

    /// xorshift64: deterministic, so a failure reproduces.
    fn prng(seed: u64) -> impl FnMut() -> u64 {
        let mut state = seed;
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    /// Deterministic mutation loop: no mutation of a valid token panics or verifies.
    #[test]
    fn mutations_never_verify() {
        let tok = sign(Alg::HS256, Some("k"), KEY, &claims());
        let charset = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \0";
        let mut next = prng(0x9E37_79B9_7F4A_7C15);
        let mut parsed = 0;
        for round in 0..4000 {
            let mut bytes = tok.clone().into_bytes();
            for _ in 0..1 + next() % 3 {
                let i = (next() as usize) % bytes.len();
                let c = if next() & 1 == 0 {
                    charset[(next() as usize) % charset.len()]
                } else {
                    (next() & 0x7f) as u8
                };
                match round % 4 {
                    0 | 1 => bytes[i] = c,
                    2 => bytes.insert(i, c),
                    _ => {
                        bytes.remove(i);
                    }
                }
            }
            let s = String::from_utf8(bytes).unwrap();
            if s == tok {
                continue;
            }
            if let Ok(t) = parse(&s) {
                parsed += 1;
                assert!(!t.verify(Alg::HS256, KEY), "mutated token verified: {s}");
            }
        }
        // The loop must reach the signature check, not only the parser's refusals.
        assert!(parsed > 200, "only {parsed} mutations parsed");
    }

    /// Mutations of the decoded bytes, re-encoded, so most of them parse and reach the MAC.
    #[test]
    fn decoded_mutations_never_verify() {
        let tok = sign(Alg::HS384, Some("k"), &[3; 48], &claims());
        let mut next = prng(0x2545_F491_4F6C_DD1D);
        let mut parsed = 0;
        for _ in 0..2000 {
            let seg = (next() % 3) as usize;
            let (a, b) = (next(), next());
            let bad = mutate_segment(&tok, seg, |bytes| {
                let i = (a as usize) % bytes.len();
                bytes[i] ^= (b as u8) | 1;
            });
            if let Ok(t) = parse(&bad) {
                parsed += 1;
                assert!(
                    !t.verify(Alg::HS384, &[3; 48]),
                    "mutated token verified: {bad}"
                );
            }
        }
        assert!(parsed > 500, "only {parsed} mutations parsed");
    }
}
