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

/// 1–64 characters, no whitespace, control or invisible characters (see [`is_invisible`]):
/// `has_role('admin')` and a reader of the audit trail must not meet an `admin` that is not
/// `admin`.
pub fn valid_role(s: &str) -> bool {
    chars_in(s, 1, 64, |c| {
        !c.is_whitespace() && !c.is_control() && !is_invisible(c)
    })
}

/// Characters that change a name without showing: Unicode format characters (general category
/// Cf: zero-width space and joiners, bidirectional controls, the BOM, soft hyphen, tags),
/// variation selectors, the combining grapheme joiner and the Hangul fillers. A name carrying
/// one looks like, but is not, the name without it.
pub fn is_invisible(c: char) -> bool {
    matches!(u32::from(c),
        0xAD | 0x34F | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x890..=0x891 | 0x8E2
        | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F | 0x200B..=0x200F
        | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F | 0xFEFF | 0xFFA0
        | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A | 0xE0000..=0xE0FFF)
}

/// Free text that names something a reader or a check relies on (API key labels, support
/// reasons, actors, plan names): 1 to `max` characters, no control or invisible characters,
/// and no whitespace but the ASCII space, never at either end (so `gold`, `gold `, `gold` +
/// NBSP and `gold` + zero-width space cannot stand side by side).
pub fn valid_text(s: &str, max: usize) -> bool {
    chars_in(s, 1, max, |c| {
        !c.is_control() && !is_invisible(c) && (c == ' ' || !c.is_whitespace())
    }) && !s.starts_with(' ')
        && !s.ends_with(' ')
}

/// Application event names (`tenancy.audit()`): 1–64 of `[a-z0-9_.:-]`. Lowercase ASCII only,
/// so that no event can differ from another, or from a reserved one, only in case, in an
/// invisible character or in a look-alike letter from another script.
pub fn valid_event(s: &str) -> bool {
    chars_in(s, 1, 64, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | ':' | '-')
    })
}

/// The form in which event names are compared with the reserved ones: the separators `.`,
/// `:` and `-` read as `_`, runs of `_` as one, none at either end (`support.ended`,
/// `support--ended` and `_support_ended` all read `support_ended`), and the characters a
/// reader confuses read as one (`0`/`o`, `1`/`l`/`i`, `5`/`s`, `rn`/`m`, ...: `supp0rt_ended`
/// and `api_key_rev0ked` read as the reserved names they imitate).
pub fn event_key(s: &str) -> String {
    let s = s.replace("rn", "m").replace("vv", "w");
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = match c {
            '.' | ':' | '-' => '_',
            '0' => 'o',
            '1' | 'i' => 'l',
            '2' => 'z',
            '3' => 'e',
            '4' => 'a',
            '5' => 's',
            '6' | '8' => 'b',
            '7' => 't',
            '9' => 'g',
            c => c,
        };
        if c == '_' && (out.is_empty() || out.ends_with('_')) {
            continue;
        }
        out.push(c);
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

/// The canonical spelling (lowercase `8-4-4-4-12`) of `s` when PostgreSQL's `uuid` input
/// would read it as a uuid, whatever its case and hyphens (PostgreSQL allows a hyphen after
/// any group of four digits, or none; braces are not tenant-id characters); `None` when it
/// reads no uuid. `current_tenant_uuid()` knows only the canonical spelling, so any other
/// spelling of a registered uuid would be a second tenant that no uuid column can hold.
pub fn canonical_uuid(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut hex = String::with_capacity(32);
    for group in 0..16 {
        let pair = b.get(i..i + 2)?;
        if !pair.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        hex.extend(pair.iter().map(|c| char::from(c.to_ascii_lowercase())));
        i += 2;
        if group % 2 == 1 && group < 15 && b.get(i) == Some(&b'-') {
            i += 1;
        }
    }
    if i != b.len() {
        return None;
    }
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_spellings() {
        let c = "123e4567-e89b-12d3-a456-426614174000";
        assert_eq!(canonical_uuid(c).as_deref(), Some(c));
        assert_eq!(
            canonical_uuid("123E4567-E89B-12D3-A456-426614174000").as_deref(),
            Some(c)
        );
        assert_eq!(
            canonical_uuid("123e4567e89b12d3a456426614174000").as_deref(),
            Some(c)
        );
        assert_eq!(
            canonical_uuid("123e-4567-e89b-12d3-a456-4266-1417-4000").as_deref(),
            Some(c)
        );
        assert_eq!(canonical_uuid("acme"), None);
        assert_eq!(canonical_uuid("42"), None);
        assert_eq!(canonical_uuid("123e4567-e89b-12d3-a456-42661417400"), None);
        assert_eq!(
            canonical_uuid("123e4567-e89b-12d3-a456-4266141740000"),
            None
        );
        assert_eq!(
            canonical_uuid("123e4567--e89b-12d3-a456-426614174000"),
            None
        );
        assert_eq!(
            canonical_uuid("-123e4567-e89b-12d3-a456-426614174000"),
            None
        );
        assert_eq!(
            canonical_uuid("123e4567-e89b-12d3-a456-426614174000-"),
            None
        );
        assert_eq!(canonical_uuid("123e456-7e89b-12d3-a456-426614174000"), None);
        assert_eq!(canonical_uuid("g23e4567-e89b-12d3-a456-426614174000"), None);
    }

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
    fn look_alikes() {
        for bad in [
            "support_ended ",
            "support_ended\u{a0}",
            "support_ended\u{200b}",
            "Support_Ended",
            "support_end\u{435}d", // Cyrillic e
            "support_ended\n",
            "",
        ] {
            assert!(!valid_event(bad), "{bad:?}");
        }
        assert!(valid_event("invoice.approved"));
        assert!(valid_event("a:b-c_d.9"));
        assert!(valid_event(&"e".repeat(64)));
        assert!(!valid_event(&"e".repeat(65)));
        for (name, key) in [
            ("support_ended", "support_ended"),
            ("support.ended", "support_ended"),
            ("support-ended", "support_ended"),
            ("support:ended", "support_ended"),
            ("_support__ended_", "support_ended"),
            ("support_ended.", "support_ended"),
            ("supportended", "supportended"),
            ("supp0rt_ended", "support_ended"),
            ("api_key_rev0ked", "apl_key_revoked"),
            ("api_key_revoked", "apl_key_revoked"),
            ("tenant_deactivated", "tenant_deactlvated"),
            ("tenant_deact1vated", "tenant_deactlvated"),
            ("tenant_purged", "tenant_purged"),
            ("tenant_pumged", "tenant_pumged"),
            ("tenant_purnged", "tenant_pumged"),
        ] {
            assert_eq!(event_key(name), key, "{name}");
        }
        for bad in [
            "gold ",
            " gold",
            "gold\u{a0}",
            "gold\u{200b}",
            "go\u{200d}ld",
            "gold\u{feff}",
            "\u{202e}dlog",
            "gold\t",
            "go\nld",
            "go\u{3000}ld",
            "",
        ] {
            assert!(!valid_text(bad, 64), "{bad:?}");
        }
        assert!(valid_text("ticket 4711: payroll export fails", 500));
        assert!(valid_text("Ärztin – Zürich", 64));
        assert!(!valid_text(&"a".repeat(65), 64));
        assert!(!valid_role("admin\u{200b}"));
        assert!(!valid_role("ad\u{2060}min"));
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
