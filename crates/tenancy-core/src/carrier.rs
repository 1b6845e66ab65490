//! The context carrier stored in the `tenancy.context` setting.
//!
//! Anyone may `SET tenancy.context` (poolers, PostgREST and Citus forward it), so the value
//! proves itself: `v1.<base64url(JSON)>.<base64url(HMAC-SHA256(key, "v1." + payload))>` under a
//! per-database key only the extension can read. The MAC is checked before the payload is
//! parsed. Expiry is the caller's to check, against its own statement clock.

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
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Token => "token",
            Source::ApiKey => "api_key",
            Source::Trusted => "trusted",
            Source::Support => "support",
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
}

impl Context {
    pub fn expired_at(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|e| now >= e)
    }

    /// The public view returned by `tenancy.context()`: no key material, ever.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "tenant": self.tenant,
            "actor": self.actor,
            "roles": self.roles,
            "source": self.source.as_str(),
            "expires_at": self.expires_at,
        });
        if let (Some(reason), Value::Object(m)) = (&self.support_reason, &mut v) {
            m.insert("support_reason".into(), Value::String(reason.clone()));
        }
        v
    }
}

pub fn encode(ctx: &Context, key: &[u8]) -> String {
    // Serializing a struct of strings and integers cannot fail.
    let payload = b64::encode(serde_json::to_string(ctx).unwrap_or_default().as_bytes());
    let signed = format!("{PREFIX}{payload}");
    let mac = b64::encode(&Alg::HS256.mac(key, signed.as_bytes()));
    format!("{signed}.{mac}")
}

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
        }
    }

    #[test]
    fn round_trip() {
        let c = encode(&ctx(), KEY);
        assert!(c.starts_with("v1."));
        assert_eq!(decode(&c, KEY).unwrap(), ctx());
    }

    #[test]
    fn tampering_fails() {
        let c = encode(&ctx(), KEY);
        let (head, mac) = c.rsplit_once('.').unwrap();
        let payload = head.strip_prefix("v1.").unwrap();
        let json = String::from_utf8(b64::decode(payload).unwrap())
            .unwrap()
            .replace("acme", "evil");
        let forged = format!("v1.{}.{mac}", b64::encode(json.as_bytes()));
        assert_eq!(decode(&forged, KEY).unwrap_err(), Refusal::BadSignature);
        let mut m = b64::decode(mac).unwrap();
        m[0] ^= 1;
        assert_eq!(
            decode(&format!("{head}.{}", b64::encode(&m)), KEY).unwrap_err(),
            Refusal::BadSignature
        );
        assert_eq!(decode(&c, &[8; 32]).unwrap_err(), Refusal::BadSignature);
        assert_eq!(
            decode(&c.replacen("v1.", "v2.", 1), KEY).unwrap_err(),
            Refusal::Malformed
        );
        assert_eq!(decode("", KEY).unwrap_err(), Refusal::Malformed);
        assert_eq!(
            decode(&"v1.".repeat(5000), KEY).unwrap_err(),
            Refusal::TooLong
        );
    }

    #[test]
    fn unknown_fields_rejected_even_when_signed() {
        let payload = b64::encode(br#"{"t":"acme","s":"token","admin":true}"#);
        let signed = format!("v1.{payload}");
        let c = format!(
            "{signed}.{}",
            b64::encode(&Alg::HS256.mac(KEY, signed.as_bytes()))
        );
        assert_eq!(decode(&c, KEY).unwrap_err(), Refusal::BadJson);
        let payload = b64::encode(br#"{"t":"acme","t":"evil","s":"token"}"#);
        let signed = format!("v1.{payload}");
        let c = format!(
            "{signed}.{}",
            b64::encode(&Alg::HS256.mac(KEY, signed.as_bytes()))
        );
        assert_eq!(decode(&c, KEY).unwrap_err(), Refusal::BadJson);
    }

    #[test]
    fn expiry_helper_and_public_view() {
        let c = ctx();
        assert!(!c.expired_at(1_799_999_999));
        assert!(c.expired_at(1_800_000_000));
        let v = c.to_json();
        assert_eq!(v["tenant"], "acme");
        assert_eq!(v["source"], "token");
        assert!(v.get("kid").is_none());
    }
}
