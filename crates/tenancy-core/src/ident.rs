//! Identifier rules. Tenant ids and key ids end up in SQL literals, log lines and error
//! messages, so they are kept to characters that need no escaping anywhere.

fn chars_in(s: &str, min: usize, max: usize, ok: impl Fn(char) -> bool) -> bool {
    // A char is at most 4 bytes: refuse a huge string without walking it.
    if s.len() > max.saturating_mul(4) {
        return false;
    }
    let n = s.chars().count();
    (min..=max).contains(&n) && s.chars().all(ok)
}

/// 1–128 of `[A-Za-z0-9._:@-]`: uuids and decimal integers fit, spaces and quotes do not.
pub fn valid_tenant_id(s: &str) -> bool {
    chars_in(s, 1, 128, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '-')
    })
}

/// 1–64 of `[A-Za-z0-9._:-]`.
pub fn valid_kid(s: &str) -> bool {
    chars_in(s, 1, 64, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')
    })
}

/// Same rules as [`valid_kid`].
pub fn valid_feature(s: &str) -> bool {
    valid_kid(s)
}

/// 1–64 characters, no whitespace or control characters.
pub fn valid_role(s: &str) -> bool {
    chars_in(s, 1, 64, |c| !c.is_whitespace() && !c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids() {
        assert!(valid_tenant_id("acme"));
        assert!(valid_tenant_id("123e4567-e89b-12d3-a456-426614174000"));
        assert!(valid_tenant_id("42"));
        assert!(valid_tenant_id("org:eu@x.y_z"));
        assert!(!valid_tenant_id(""));
        assert!(!valid_tenant_id("a b"));
        assert!(!valid_tenant_id("a'b"));
        assert!(!valid_tenant_id("a\0b"));
        assert!(!valid_tenant_id("ä"));
        assert!(!valid_tenant_id("a\"b"));
        assert!(!valid_tenant_id("a\\b"));
        assert!(!valid_tenant_id("a/b"));
        assert!(!valid_tenant_id("a\nb"));
        assert!(!valid_tenant_id("a%b"));
        assert!(!valid_tenant_id(&"a".repeat(129)));
        assert!(valid_tenant_id(&"a".repeat(128)));
    }

    #[test]
    fn kids_and_roles() {
        assert!(valid_kid("idp-2026.11:a_b"));
        assert!(!valid_kid("a/b"));
        assert!(valid_role("hr.viewer"));
        assert!(valid_role("ärztin"));
        assert!(!valid_role("a b"));
        assert!(!valid_role("a\nb"));
        assert!(!valid_role(""));
        assert!(!valid_role("a\u{3000}b"));
        assert!(!valid_role("a\u{7f}"));
        assert!(valid_role(&"é".repeat(64)));
        assert!(!valid_role(&"é".repeat(65)));
        assert!(!valid_role(&"a".repeat(1 << 20)));
        assert!(valid_kid(&"k".repeat(64)));
        assert!(!valid_kid(&"k".repeat(65)));
        assert!(!valid_kid(""));
        assert!(!valid_kid("a@b"));
        assert!(!valid_kid("ä"));
        assert!(valid_feature("min_n.v2"));
        assert!(!valid_feature("min n"));
    }
}
