//! The context carrier stored in the `tenancy.context` setting.
//!
//! Anyone may `SET tenancy.context` (poolers, PostgREST and Citus forward it), so the value
//! proves itself: `v1.<base64url(JSON)>.<base64url(HMAC-SHA256(key, "v1." + payload))>` under a
//! per-database key only the extension can read. The MAC is checked before the payload is
//! parsed. Expiry is the caller's to check, against its own statement clock. A key shorter
//! than 32 bytes never verifies.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{b64, ident, Alg, Refusal, MAX_TOKEN_BYTES};

const PREFIX: &str = "v1.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Token,
    ApiKey,
    Trusted,
    Support,
    /// Set by `tenancy.claim_job()` from a job's row: only as valid as the transaction that
    /// claimed it ([`JobClaim`]).
    Job,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Token => "token",
            Source::ApiKey => "api_key",
            Source::Trusted => "trusted",
            Source::Support => "support",
            Source::Job => "job",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    #[serde(rename = "t")]
    pub tenant: String,
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(rename = "r", default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(rename = "s")]
    pub source: Source,
    /// Seconds since the Unix epoch.
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
    #[serde(rename = "kid", default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(rename = "sr", default, skip_serializing_if = "Option::is_none")]
    pub support_reason: Option<String>,
    /// The support session this context belongs to (a row of `tenancy.support_sessions`):
    /// a support carrier is only as alive as its session, so that ending the session ends
    /// every copy of the carrier.
    #[serde(rename = "sid", default, skip_serializing_if = "Option::is_none")]
    pub support_session: Option<String>,
    /// The job a `job` context was claimed for, and the transaction that claimed it: the
    /// carrier is refused in any other transaction, so a worker cannot keep or copy the
    /// job's tenant beyond the job.
    #[serde(rename = "j", default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobClaim>,
}

/// The claim behind a `job` context: the job's id and the claiming transaction's full
/// (epoch-qualified, never reused) transaction id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobClaim {
    #[serde(rename = "id")]
    pub id: i64,
    #[serde(rename = "x")]
    pub xid: u64,
}

impl Context {
    /// True when `now` (unix seconds) is at or past `expires_at`; never without an expiry.
    pub fn expired_at(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|e| now >= e)
    }

    /// The public view returned by `tenancy.context()`: `tenant`, `actor` (or null), `roles`,
    /// `source`, `expires_at` (unix seconds or null), and for a support context only
    /// `support` = [`Context::support_mark`]. No key material and no key ids, ever.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "tenant": self.tenant,
            "actor": self.actor,
            "roles": self.roles,
            "source": self.source.as_str(),
            "expires_at": self.expires_at,
        });
        if let (Some(mark), Value::Object(m)) = (self.support_mark(), &mut v) {
            m.insert("support".into(), mark);
        }
        if let (Some(job), Source::Job, Value::Object(m)) = (self.job, self.source, &mut v) {
            m.insert("job".into(), json!(job.id));
        }
        v
    }

    /// `{by, reason, until}` for a support context (who opened it, why, and until when in
    /// unix seconds), None for every other source. It is part of the MAC'd carrier, so
    /// nobody can add it to, or remove it from, a context.
    pub fn support_mark(&self) -> Option<Value> {
        (self.source == Source::Support).then(|| {
            json!({
                "by": self.actor,
                "reason": self.support_reason,
                "until": self.expires_at,
            })
        })
    }
}

/// `key` must be at least 32 bytes for [`decode`] to accept the result.
pub fn encode(ctx: &Context, key: &[u8]) -> String {
    // Serializing a struct of strings and integers cannot fail.
    let payload = b64::encode(serde_json::to_string(ctx).unwrap_or_default().as_bytes());
    let signed = format!("{PREFIX}{payload}");
    let mac = b64::encode(&Alg::HS256.mac(key, signed.as_bytes()));
    format!("{signed}.{mac}")
}

/// Verifies and parses a carrier. Refusals: `TooLong`, `Malformed` (no `v1.` prefix or no
/// MAC), `BadBase64`, `BadSignature` (MAC does not verify under `key`), `BadJson` (payload not
/// exactly a `Context`), `BadTenant`. Does not check expiry: see [`Context::expired_at`].
pub fn decode(carrier: &str, key: &[u8]) -> Result<Context, Refusal> {
    if carrier.len() > MAX_TOKEN_BYTES {
        return Err(Refusal::TooLong);
    }
    let rest = carrier.strip_prefix(PREFIX).ok_or(Refusal::Malformed)?;
    let (payload, mac) = rest.split_once('.').ok_or(Refusal::Malformed)?;
    let mac = b64::decode(mac).ok_or(Refusal::BadBase64)?;
    let signed = &carrier[..PREFIX.len() + payload.len()];
    if !Alg::HS256.verify(key, signed.as_bytes(), &mac) {
        return Err(Refusal::BadSignature);
    }
    let bytes = b64::decode(payload).ok_or(Refusal::BadBase64)?;
    let ctx: Context = serde_json::from_slice(&bytes).map_err(|_| Refusal::BadJson)?;
    if !ident::valid_tenant_id(&ctx.tenant) {
        return Err(Refusal::BadTenant);
    }
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = &[9; 32];

    fn ctx() -> Context {
        Context {
            tenant: "acme".into(),
            actor: Some("alice".into()),
            roles: vec!["hr".into()],
            source: Source::Token,
            expires_at: Some(1_800_000_000),
            api_key_id: None,
            kid: Some("k1".into()),
            support_reason: None,
            support_session: None,
            job: None,
        }
    }

    /// A carrier with a valid MAC over an arbitrary payload, as only the key holder can make.
    fn signed(payload_json: &[u8], key: &[u8]) -> String {
        let signed = format!("v1.{}", b64::encode(payload_json));
        let mac = b64::encode(&Alg::HS256.mac(key, signed.as_bytes()));
        format!("{signed}.{mac}")
    }

    fn payload_of(carrier: &str) -> String {
        let payload = carrier.split('.').nth(1).unwrap();
        String::from_utf8(b64::decode(payload).unwrap()).unwrap()
    }

    #[test]
    fn round_trip() {
        let c = encode(&ctx(), KEY);
        assert!(c.starts_with("v1."));
        assert_eq!(c.split('.').count(), 3);
        assert_eq!(decode(&c, KEY).unwrap(), ctx());
        let full = Context {
            tenant: "123e4567-e89b-12d3-a456-426614174000".into(),
            actor: None,
            roles: vec![],
            source: Source::Support,
            expires_at: None,
            api_key_id: Some("abcdefghijklmnop".into()),
            kid: None,
            support_reason: Some("ticket 42".into()),
            support_session: Some("s1".into()),
            job: Some(JobClaim {
                id: 7,
                xid: 1 << 40,
            }),
        };
        assert_eq!(decode(&encode(&full, KEY), KEY).unwrap(), full);
    }

    #[test]
    fn short_field_names_and_skipped_nones() {
        let json: Value = serde_json::from_str(&payload_of(&encode(&ctx(), KEY))).unwrap();
        assert_eq!(
            json,
            json!({"t": "acme", "a": "alice", "r": ["hr"], "s": "token", "e": 1_800_000_000, "kid": "k1"})
        );
        for (source, name) in [
            (Source::Token, "token"),
            (Source::ApiKey, "api_key"),
            (Source::Trusted, "trusted"),
            (Source::Support, "support"),
            (Source::Job, "job"),
        ] {
            assert_eq!(serde_json::to_value(source).unwrap(), name);
            assert_eq!(source.as_str(), name);
        }
    }

    #[test]
    fn tampered_payload_refused() {
        let c = encode(&ctx(), KEY);
        let (_, mac) = c.rsplit_once('.').unwrap();
        let json = payload_of(&c).replace("acme", "evil");
        let forged = format!("v1.{}.{mac}", b64::encode(json.as_bytes()));
        assert_eq!(decode(&forged, KEY).unwrap_err(), Refusal::BadSignature);
    }

    #[test]
    fn tampered_mac_refused() {
        let c = encode(&ctx(), KEY);
        let (head, mac) = c.rsplit_once('.').unwrap();
        let mut m = b64::decode(mac).unwrap();
        m[0] ^= 1;
        assert_eq!(
            decode(&format!("{head}.{}", b64::encode(&m)), KEY).unwrap_err(),
            Refusal::BadSignature
        );
        assert_eq!(
            decode(&format!("{head}.{}", b64::encode(&m[..31])), KEY).unwrap_err(),
            Refusal::BadSignature
        );
        assert_eq!(
            decode(&format!("{head}."), KEY).unwrap_err(),
            Refusal::BadSignature
        );
        assert_eq!(
            decode(&format!("{head}.a"), KEY).unwrap_err(),
            Refusal::BadBase64
        );
        assert_eq!(
            decode(&format!("{head}.{mac}="), KEY).unwrap_err(),
            Refusal::BadBase64
        );
        assert_eq!(
            decode(&format!("{c}.x"), KEY).unwrap_err(),
            Refusal::BadBase64
        );
        assert_eq!(decode(head, KEY).unwrap_err(), Refusal::Malformed);
    }

    #[test]
    fn wrong_key_refused() {
        let c = encode(&ctx(), KEY);
        assert_eq!(decode(&c, &[8; 32]).unwrap_err(), Refusal::BadSignature);
        assert_eq!(decode(&c, &[9; 33]).unwrap_err(), Refusal::BadSignature);
    }

    #[test]
    fn short_key_never_verifies() {
        for key in [&[][..], &[9; 31][..]] {
            let c = encode(&ctx(), key);
            assert_eq!(decode(&c, key).unwrap_err(), Refusal::BadSignature);
        }
    }

    #[test]
    fn wrong_prefix_refused() {
        let c = encode(&ctx(), KEY);
        for bad in [
            c.replacen("v1.", "v2.", 1),
            c.replacen("v1.", "V1.", 1),
            c.replacen("v1.", "v1", 1),
            c.replacen("v1.", "", 1),
            format!(" {c}"),
        ] {
            assert_eq!(decode(&bad, KEY).unwrap_err(), Refusal::Malformed);
        }
        assert_eq!(decode("", KEY).unwrap_err(), Refusal::Malformed);
        assert_eq!(decode("v1.", KEY).unwrap_err(), Refusal::Malformed);
    }

    #[test]
    fn too_long_refused() {
        assert_eq!(
            decode(&"v1.".repeat(5000), KEY).unwrap_err(),
            Refusal::TooLong
        );
    }

    #[test]
    fn unknown_field_refused_even_when_signed() {
        let c = signed(br#"{"t":"acme","s":"token","admin":true}"#, KEY);
        assert_eq!(decode(&c, KEY).unwrap_err(), Refusal::BadJson);
    }

    #[test]
    fn duplicate_field_refused_even_when_signed() {
        let c = signed(br#"{"t":"acme","t":"evil","s":"token"}"#, KEY);
        assert_eq!(decode(&c, KEY).unwrap_err(), Refusal::BadJson);
    }

    #[test]
    fn bad_payloads_refused_even_when_signed() {
        for payload in [
            &br#"{"s":"token"}"#[..],
            br#"{"t":"acme"}"#,
            br#"{"t":"acme","s":"root"}"#,
            br#"{"t":"acme","s":"token","e":"soon"}"#,
            br#"{"t":"acme","s":"token","e":1.5}"#,
            br#"{"t":"acme","s":"token","r":"hr"}"#,
            br#"["acme"]"#,
            b"",
            b"{",
        ] {
            assert_eq!(
                decode(&signed(payload, KEY), KEY).unwrap_err(),
                Refusal::BadJson
            );
        }
        // Not even a base64url payload: the MAC is still checked first.
        let c = format!("v1.!!.{}", b64::encode(&Alg::HS256.mac(KEY, b"v1.!!")));
        assert_eq!(decode(&c, KEY).unwrap_err(), Refusal::BadBase64);
        let c = format!("v1.!!.{}", b64::encode(&[0; 32]));
        assert_eq!(decode(&c, KEY).unwrap_err(), Refusal::BadSignature);
    }

    #[test]
    fn bad_tenant_refused_even_when_signed() {
        for t in ["", "a b", "a'b", "ten\\u0000ant", "\\u00e9"] {
            let payload = format!(r#"{{"t":"{t}","s":"token"}}"#);
            assert_eq!(
                decode(&signed(payload.as_bytes(), KEY), KEY).unwrap_err(),
                Refusal::BadTenant
            );
        }
    }

    #[test]
    fn expiry_helper() {
        let c = ctx();
        assert!(!c.expired_at(1_799_999_999));
        assert!(c.expired_at(1_800_000_000));
        assert!(c.expired_at(i64::MAX));
        let forever = Context {
            expires_at: None,
            ..ctx()
        };
        assert!(!forever.expired_at(i64::MAX));
        // decode leaves expiry to the caller.
        let old = Context {
            expires_at: Some(0),
            ..ctx()
        };
        assert_eq!(decode(&encode(&old, KEY), KEY).unwrap(), old);
    }

    #[test]
    fn public_view() {
        let v = ctx().to_json();
        assert_eq!(
            v,
            json!({"tenant": "acme", "actor": "alice", "roles": ["hr"], "source": "token", "expires_at": 1_800_000_000})
        );
        let support = Context {
            source: Source::Support,
            actor: None,
            expires_at: None,
            api_key_id: Some("abcdefghijklmnop".into()),
            support_reason: Some("ticket 42".into()),
            support_session: Some("s1".into()),
            ..ctx()
        };
        assert_eq!(
            support.to_json(),
            json!({"tenant": "acme", "actor": null, "roles": ["hr"], "source": "support", "expires_at": null,
                   "support": {"by": null, "reason": "ticket 42", "until": null}})
        );
        // A support reason on another source is not shown.
        let odd = Context {
            support_reason: Some("x".into()),
            ..ctx()
        };
        assert!(odd.to_json().get("support").is_none());
        assert!(odd.support_mark().is_none());
    }

    /// Deterministic mutation loop over a carrier: nothing panics, nothing forged verifies.
    #[test]
    fn mutations_never_verify() {
        let c = encode(&ctx(), KEY);
        let mut state: u64 = 0xD1B5_4A32_D192_ED03;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..2000 {
            let mut bytes = c.clone().into_bytes();
            for _ in 0..1 + next() % 3 {
                let i = (next() as usize) % bytes.len();
                let b = (next() & 0x7f) as u8;
                match round % 3 {
                    0 => bytes[i] = b,
                    1 => bytes.insert(i, b),
                    _ => {
                        bytes.remove(i);
                    }
                }
            }
            let s = String::from_utf8(bytes).unwrap();
            if s != c {
                assert!(decode(&s, KEY).is_err(), "mutated carrier verified: {s}");
            }
        }
    }
}
