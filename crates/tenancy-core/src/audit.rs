//! The audit log's hash chain: the canonical encoding of a row and the chained SHA-256.
//!
//! docs/audit.md defines the same bytes for auditors, and `scripts/verify-audit.py`
//! recomputes them outside the database; the known-answer test below pins all three together.
//!
//! `hash = SHA-256(prev_hash || body)`, where `body` is, in this order:
//!
//! | field | encoding |
//! |---|---|
//! | version | one byte, `0x01` |
//! | id | 8 bytes, big-endian two's complement |
//! | tenant_id | string |
//! | seq | 8 bytes, big-endian |
//! | at | 8 bytes, big-endian: microseconds since 1970-01-01 00:00:00 UTC |
//! | txid | 8 bytes, big-endian unsigned |
//! | actor | optional string |
//! | roles | 4 bytes big-endian count, then each role as a string |
//! | support | optional string: the jsonb's PostgreSQL text form |
//! | event | string |
//! | detail | string: the jsonb's PostgreSQL text form |
//!
//! A string is its UTF-8 length as 4 bytes big-endian, then the UTF-8 bytes. An optional
//! string is `0x00` for NULL, or `0x01` followed by the string. The first row of a chain has
//! `prev_hash` = 32 zero bytes.

use sha2::{Digest, Sha256};

pub const GENESIS: [u8; 32] = [0; 32];
const VERSION: u8 = 1;

/// One audit row, as the chain sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row<'a> {
    pub id: i64,
    pub tenant_id: &'a str,
    pub seq: i64,
    /// Microseconds since the Unix epoch, UTC.
    pub at_micros: i64,
    pub txid: u64,
    pub actor: Option<&'a str>,
    pub roles: &'a [String],
    /// The support mark's jsonb text, as PostgreSQL prints it.
    pub support: Option<&'a str>,
    pub event: &'a str,
    /// The detail's jsonb text, as PostgreSQL prints it.
    pub detail: &'a str,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Fields are bounded far below 4 GiB (PostgreSQL's own limit is 1 GiB per value).
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
    }
}

/// The canonical encoding of a row (without `prev_hash`).
pub fn encode(row: &Row) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + row.detail.len());
    out.push(VERSION);
    out.extend_from_slice(&row.id.to_be_bytes());
    put_str(&mut out, row.tenant_id);
    out.extend_from_slice(&row.seq.to_be_bytes());
    out.extend_from_slice(&row.at_micros.to_be_bytes());
    out.extend_from_slice(&row.txid.to_be_bytes());
    put_opt(&mut out, row.actor);
    out.extend_from_slice(&(row.roles.len() as u32).to_be_bytes());
    for r in row.roles {
        put_str(&mut out, r);
    }
    put_opt(&mut out, row.support);
    put_str(&mut out, row.event);
    put_str(&mut out, row.detail);
    out
}

/// `SHA-256(prev_hash || encode(row))`.
pub fn chain_hash(prev_hash: &[u8], row: &Row) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev_hash);
    h.update(encode(row));
    h.finalize().into()
}

/// Why a chain does not verify, for the first row that breaks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Break {
    /// The row's `seq` is not the next position (a row deleted, inserted or moved).
    Sequence,
    /// The row's `prev_hash` is not the previous row's hash.
    Link,
    /// The row's `hash` does not match its contents.
    Contents,
}

/// Walks one tenant's chain in `seq` order; feed it every row, then read
/// [`Walker::first_bad`].
///
/// Two kinds of break: a row whose stored hash does not match its own contents (it was
/// changed), and a row that is not where the chain says it should be (wrong `seq`, or a
/// `prev_hash` that is not the previous row's hash: a row was deleted, inserted or moved). A
/// changed row is reported before any break of the second kind, because changing a row's
/// `seq` also moves it in `seq` order, and the row it displaces is not the one that changed.
#[derive(Debug)]
pub struct Walker {
    expected_seq: i64,
    prev: [u8; 32],
    pub checked: i64,
    first_changed: Option<(i64, Break)>,
    first_misplaced: Option<(i64, Break)>,
}

impl Default for Walker {
    fn default() -> Self {
        Walker {
            expected_seq: 1,
            prev: GENESIS,
            checked: 0,
            first_changed: None,
            first_misplaced: None,
        }
    }
}

impl Walker {
    pub fn push(&mut self, row: &Row, prev_hash: &[u8], hash: &[u8]) {
        self.checked += 1;
        if self.first_changed.is_none() && chain_hash(prev_hash, row).as_slice() != hash {
            self.first_changed = Some((row.id, Break::Contents));
        }
        if self.first_misplaced.is_none() {
            if row.seq != self.expected_seq {
                self.first_misplaced = Some((row.id, Break::Sequence));
            } else if prev_hash != self.prev {
                self.first_misplaced = Some((row.id, Break::Link));
            }
        }
        // Continue from what the row claims, so one bad row is reported once, not as a
        // cascade.
        self.expected_seq = row.seq.saturating_add(1);
        if let Ok(h) = <[u8; 32]>::try_from(hash) {
            self.prev = h;
        }
    }

    /// The row to report (its id) and why: the first changed row, else the first misplaced.
    pub fn first_bad(&self) -> Option<(i64, Break)> {
        self.first_changed.or(self.first_misplaced)
    }

    /// The position and hash the chain ends at.
    pub fn head(&self) -> (i64, [u8; 32]) {
        (self.expected_seq - 1, self.prev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn roles() -> Vec<String> {
        vec!["hr".into(), "admin".into()]
    }

    fn row(roles: &[String]) -> Row<'_> {
        Row {
            id: 7,
            tenant_id: "acme",
            seq: 1,
            at_micros: 1_790_000_000_123_456,
            txid: 1234,
            actor: Some("alice"),
            roles,
            support: None,
            event: "payroll.approved",
            detail: r#"{"run": 42}"#,
        }
    }

    #[test]
    fn encoding_is_exactly_as_documented() {
        let r = roles();
        let e = encode(&row(&r));
        let mut want = vec![1u8];
        want.extend_from_slice(&7i64.to_be_bytes());
        want.extend_from_slice(&[0, 0, 0, 4]);
        want.extend_from_slice(b"acme");
        want.extend_from_slice(&1i64.to_be_bytes());
        want.extend_from_slice(&1_790_000_000_123_456i64.to_be_bytes());
        want.extend_from_slice(&1234u64.to_be_bytes());
        want.extend_from_slice(&[1, 0, 0, 0, 5]);
        want.extend_from_slice(b"alice");
        want.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 2]);
        want.extend_from_slice(b"hr");
        want.extend_from_slice(&[0, 0, 0, 5]);
        want.extend_from_slice(b"admin");
        want.push(0);
        want.extend_from_slice(&[0, 0, 0, 16]);
        want.extend_from_slice(b"payroll.approved");
        want.extend_from_slice(&[0, 0, 0, 11]);
        want.extend_from_slice(br#"{"run": 42}"#);
        assert_eq!(e, want);
    }

    /// The same vector is checked by `scripts/verify-audit.py --self-test`.
    #[test]
    fn known_answer() {
        let r = roles();
        let h1 = chain_hash(&GENESIS, &row(&r));
        assert_eq!(
            hex(&h1),
            "b037ef80dc953acc8419b1f228f0a5a2bc1a7717f2ed670e7b6e0343066e26c9"
        );
        let support = r#"{"by": "bob", "until": 1790000600, "reason": "ticket 7"}"#;
        let second = Row {
            id: 9,
            seq: 2,
            actor: None,
            roles: &[],
            support: Some(support),
            ..row(&r)
        };
        assert_eq!(
            hex(&chain_hash(&h1, &second)),
            "0a18a6f95ea134398cd93a336ddd13d9dbd0b79454d5c212f4c423b40295ce54"
        );
    }

    #[test]
    fn every_field_changes_the_hash() {
        let r = roles();
        let base = row(&r);
        let h = chain_hash(&GENESIS, &base);
        let other_roles = vec!["hr".to_string()];
        let variants = [
            Row {
                id: 8,
                ..base.clone()
            },
            Row {
                tenant_id: "acmf",
                ..base.clone()
            },
            Row {
                seq: 2,
                ..base.clone()
            },
            Row {
                at_micros: base.at_micros + 1,
                ..base.clone()
            },
            Row {
                txid: 1235,
                ..base.clone()
            },
            Row {
                actor: None,
                ..base.clone()
            },
            Row {
                actor: Some(""),
                ..base.clone()
            },
            Row {
                roles: &other_roles,
                ..base.clone()
            },
            Row {
                support: Some("{}"),
                ..base.clone()
            },
            Row {
                event: "payroll.approvee",
                ..base.clone()
            },
            Row {
                detail: r#"{"run": 43}"#,
                ..base.clone()
            },
        ];
        for v in &variants {
            assert_ne!(chain_hash(&GENESIS, v), h, "{v:?}");
        }
        assert_ne!(chain_hash(&[1; 32], &base), h);
    }

    #[test]
    fn length_prefixes_prevent_field_shifting() {
        // "ab" + "c" and "a" + "bc" must not encode alike.
        let no_roles: Vec<String> = vec![];
        let a = Row {
            event: "ab",
            detail: "c",
            roles: &no_roles,
            ..row(&no_roles)
        };
        let b = Row {
            event: "a",
            detail: "bc",
            roles: &no_roles,
            ..row(&no_roles)
        };
        assert_ne!(encode(&a), encode(&b));
        let r1 = vec!["a,b".to_string()];
        let r2 = vec!["a".to_string(), "b".to_string()];
        assert_ne!(encode(&row(&r1)), encode(&row(&r2)));
    }

    fn chain(n: i64) -> Vec<(Row<'static>, [u8; 32], [u8; 32])> {
        let mut out = Vec::new();
        let mut prev = GENESIS;
        for seq in 1..=n {
            let r = Row {
                id: seq * 10,
                tenant_id: "acme",
                seq,
                at_micros: seq,
                txid: seq as u64,
                actor: None,
                roles: &[],
                support: None,
                event: "e",
                detail: "{}",
            };
            let h = chain_hash(&prev, &r);
            out.push((r, prev, h));
            prev = h;
        }
        out
    }

    fn walk(rows: &[(Row, [u8; 32], [u8; 32])]) -> Walker {
        let mut w = Walker::default();
        for (r, p, h) in rows {
            w.push(r, p, h);
        }
        w
    }

    #[test]
    fn walker_accepts_a_good_chain_and_reports_its_head() {
        let c = chain(5);
        let w = walk(&c);
        assert_eq!(w.first_bad(), None);
        assert_eq!(w.checked, 5);
        assert_eq!(w.head(), (5, c[4].2));
        assert_eq!(Walker::default().head(), (0, GENESIS));
    }

    #[test]
    fn walker_finds_a_deleted_row() {
        let mut c = chain(5);
        c.remove(2);
        assert_eq!(walk(&c).first_bad(), Some((40, Break::Sequence)));
        let mut c = chain(5);
        c.remove(0);
        assert_eq!(walk(&c).first_bad(), Some((20, Break::Sequence)));
    }

    #[test]
    fn walker_finds_a_changed_row() {
        let mut c = chain(5);
        c[3].0.event = "f";
        assert_eq!(walk(&c).first_bad(), Some((40, Break::Contents)));
        let mut c = chain(5);
        c[1].2[0] ^= 1;
        // The stored hash is wrong for row 2, and row 3's link no longer matches it; the
        // first break is row 2.
        assert_eq!(walk(&c).first_bad(), Some((20, Break::Contents)));
        // A changed seq moves the row to the end of seq order; it is still the one reported.
        let mut c = chain(5);
        c[1].0.seq = 100;
        let (r, p, h) = c.remove(1);
        c.push((r, p, h));
        assert_eq!(walk(&c).first_bad(), Some((20, Break::Contents)));
    }

    #[test]
    fn walker_finds_swapped_and_inserted_rows() {
        let mut c = chain(5);
        c.swap(1, 2);
        assert_eq!(walk(&c).first_bad(), Some((30, Break::Sequence)));
        // Contents swapped between positions, positions kept.
        let mut c = chain(5);
        let (a, b) = (c[1].0.id, c[2].0.id);
        c[1].0.id = b;
        c[2].0.id = a;
        assert_eq!(walk(&c).first_bad(), Some((30, Break::Contents)));
        // A forged row with a correct hash of its own, spliced in at position 3.
        let mut c = chain(5);
        let mut forged = c[2].0.clone();
        forged.event = "forged";
        let h = chain_hash(&c[1].2, &forged);
        c[2] = (forged, c[1].2, h);
        assert_eq!(walk(&c).first_bad(), Some((40, Break::Link)));
    }
}
