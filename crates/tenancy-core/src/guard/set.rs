//! A set of contributor keys that stops growing at its cap.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use super::Key;

/// Keys are already hashes (or bijective images of integers, mixed below), so the table's own
/// hash only folds them to 64 bits.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u128(&mut self, k: u128) {
        // splitmix64's finaliser over both halves: consecutive integers spread out.
        let mut z = (k as u64) ^ ((k >> 64) as u64).rotate_left(29);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        self.0 = z ^ (z >> 31);
    }
}

type Build = BuildHasherDefault<KeyHasher>;

/// Keys held in a plain vector (linear search) before the set switches to a hash table: most
/// cells have a handful of people per tenant, and a vector needs no hashing and one allocation.
const SMALL: usize = 16;

/// Distinct keys, exact up to `cap`. Once full it takes no more keys; `saturated` records that
/// a key not in the set was refused, so the true count is above `cap`.
pub struct CappedSet {
    cap: u32,
    small: Vec<Key>,
    large: Option<HashSet<Key, Build>>,
    saturated: bool,
}

impl CappedSet {
    pub fn new(cap: u32) -> Self {
        CappedSet {
            cap: cap.max(1),
            small: Vec::new(),
            large: None,
            saturated: false,
        }
    }

    pub fn cap(&self) -> u32 {
        self.cap
    }

    /// Distinct keys held (at most `cap`).
    pub fn len(&self) -> u32 {
        match &self.large {
            Some(l) => l.len() as u32,
            None => self.small.len() as u32,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    pub fn is_full(&self) -> bool {
        self.len() >= self.cap
    }

    pub fn saturated(&self) -> bool {
        self.saturated
    }

    fn contains(&self, k: &Key) -> bool {
        match &self.large {
            Some(l) => l.contains(k),
            None => self.small.contains(k),
        }
    }

    #[inline]
    pub fn insert(&mut self, k: Key) {
        if self.contains(&k) {
            return;
        }
        if self.is_full() {
            self.saturated = true;
            return;
        }
        match &mut self.large {
            Some(l) => {
                l.insert(k);
            }
            None if self.small.len() < SMALL => self.small.push(k),
            None => {
                let mut l: HashSet<Key, Build> = HashSet::default();
                l.reserve(SMALL * 2);
                l.extend(self.small.drain(..));
                l.insert(k);
                self.large = Some(l);
            }
        }
    }

    /// Union; the result is what one set fed both inputs would hold in count (`min(cap, n)`),
    /// whatever the split.
    pub fn merge(&mut self, other: &CappedSet) {
        self.cap = self.cap.max(other.cap);
        self.saturated |= other.saturated;
        for k in other.keys() {
            self.insert(*k);
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.small.iter().chain(self.large.iter().flatten())
    }

    pub(crate) fn from_parts(cap: u32, keys: Vec<Key>, saturated: bool) -> Self {
        let over = keys.len() as u32 > cap.max(1);
        let mut s = CappedSet::new(cap.max(keys.len() as u32));
        for k in keys {
            s.insert(k);
        }
        s.cap = cap.max(1);
        s.saturated = saturated || over;
        s
    }
}
