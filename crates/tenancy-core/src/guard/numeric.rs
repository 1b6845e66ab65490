//! Exact sums of PostgreSQL `numeric` values without calling back into the server.
//!
//! A numeric datum (after its varlena header) is a 2- or 4-byte header and base-10000 digits
//! (src/backend/utils/adt/numeric.c, stable since PostgreSQL 9.1; the special values since 14).
//! [`DecimalSum`] keeps one `i64` per base-10000 position and carries lazily, so adding a value
//! costs a few integer additions and no allocation once the positions exist.

const NBASE: i64 = 10_000;
const SIGN_MASK: u16 = 0xC000;
const NEG: u16 = 0x4000;
const SHORT: u16 = 0x8000;
const SPECIAL: u16 = 0xC000;
const EXT_SIGN_MASK: u16 = 0xF000;
const NAN: u16 = 0xC000;
const PINF: u16 = 0xD000;
const NINF: u16 = 0xF000;
const SHORT_SIGN_MASK: u16 = 0x2000;
const SHORT_DSCALE_MASK: u16 = 0x1F80;
const SHORT_DSCALE_SHIFT: u16 = 7;
const SHORT_WEIGHT_SIGN_MASK: u16 = 0x0040;
const SHORT_WEIGHT_MASK: u16 = 0x003F;
const DSCALE_MASK: u16 = 0x3FFF;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Special {
    NaN,
    PosInf,
    NegInf,
}

/// A borrowed numeric: sign, weight of the first digit, display scale and digits.
#[derive(Debug)]
pub struct NumericView<'a> {
    pub negative: bool,
    pub weight: i32,
    pub dscale: u16,
    digits: &'a [u8],
    pub special: Option<Special>,
}

impl<'a> NumericView<'a> {
    /// Reads the bytes after the varlena header; `None` if they are not a numeric.
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        let h = u16::from_ne_bytes([*bytes.first()?, *bytes.get(1)?]);
        if h & SIGN_MASK == SPECIAL {
            let special = match h & EXT_SIGN_MASK {
                NAN => Special::NaN,
                PINF => Special::PosInf,
                NINF => Special::NegInf,
                _ => return None,
            };
            return Some(NumericView {
                negative: false,
                weight: 0,
                dscale: 0,
                digits: &[],
                special: Some(special),
            });
        }
        let (negative, weight, dscale, rest) = if h & SHORT != 0 {
            let w = (h & SHORT_WEIGHT_MASK) as i32;
            let weight = if h & SHORT_WEIGHT_SIGN_MASK != 0 {
                w - 64
            } else {
                w
            };
            (
                h & SHORT_SIGN_MASK != 0,
                weight,
                (h & SHORT_DSCALE_MASK) >> SHORT_DSCALE_SHIFT,
                &bytes[2..],
            )
        } else {
            let w = i16::from_ne_bytes([*bytes.get(2)?, *bytes.get(3)?]);
            (
                h & SIGN_MASK == NEG,
                i32::from(w),
                h & DSCALE_MASK,
                &bytes[4..],
            )
        };
        if rest.len() % 2 != 0 {
            return None;
        }
        Some(NumericView {
            negative,
            weight,
            dscale,
            digits: rest,
            special: None,
        })
    }

    pub fn digits(&self) -> impl Iterator<Item = i64> + '_ {
        self.digits
            .chunks_exact(2)
            .map(|c| i64::from(i16::from_ne_bytes([c[0], c[1]])))
    }

    /// The value as a decimal string (what `numeric_out` prints, up to trailing zeros).
    pub fn to_decimal_string(&self) -> String {
        match self.special {
            Some(Special::NaN) => return "NaN".into(),
            Some(Special::PosInf) => return "Infinity".into(),
            Some(Special::NegInf) => return "-Infinity".into(),
            None => {}
        }
        let mut s = DecimalSum::default();
        s.add(self);
        s.to_decimal_string()
    }

    /// Correctly rounded conversion (through the decimal string, like `numeric::float8`).
    pub fn to_f64(&self) -> f64 {
        match self.special {
            Some(Special::NaN) => f64::NAN,
            Some(Special::PosInf) => f64::INFINITY,
            Some(Special::NegInf) => f64::NEG_INFINITY,
            None => self.to_decimal_string().parse().unwrap_or(f64::NAN),
        }
    }

    /// |value| as an approximate f64, cheap enough for every row (tenant weights).
    pub fn abs_f64_approx(&self) -> f64 {
        match self.special {
            Some(Special::NaN) => f64::NAN,
            Some(_) => f64::INFINITY,
            None => {
                let mut v = 0.0f64;
                let mut scale = 10_000f64.powi(self.weight);
                for d in self.digits() {
                    v += d as f64 * scale;
                    scale /= 10_000.0;
                }
                v
            }
        }
    }
}

/// Adding at most this many values keeps every position below 2^63 without carrying
/// (each digit is below 10^4 and carries stay below 2^50).
const CARRY_EVERY: u64 = 1 << 40;

/// An exact running sum of numerics.
#[derive(Clone, Default, Debug)]
pub struct DecimalSum {
    /// Base-10000 position of `limbs[0]` (0 = units, -1 = first four fraction digits).
    lo: i32,
    limbs: Vec<i64>,
    pub dscale: u16,
    pub nan: u64,
    pub pinf: u64,
    pub ninf: u64,
    since_carry: u64,
}

impl DecimalSum {
    pub fn add(&mut self, v: &NumericView) {
        match v.special {
            Some(Special::NaN) => self.nan += 1,
            Some(Special::PosInf) => self.pinf += 1,
            Some(Special::NegInf) => self.ninf += 1,
            None => {
                self.dscale = self.dscale.max(v.dscale);
                let n = v.digits.len() as i32 / 2;
                if n == 0 {
                    return;
                }
                let top = v.weight;
                let bottom = v.weight - n + 1;
                self.reach(bottom, top);
                let sign = if v.negative { -1 } else { 1 };
                let mut idx = (top - self.lo) as usize;
                for d in v.digits() {
                    self.limbs[idx] += sign * d;
                    idx = idx.wrapping_sub(1);
                }
                self.tick(1);
            }
        }
    }

    /// Limbs are stored lowest position first.
    fn reach(&mut self, bottom: i32, top: i32) {
        if self.limbs.is_empty() {
            self.lo = bottom;
            self.limbs = vec![0; (top - bottom + 1) as usize];
            return;
        }
        if bottom < self.lo {
            let grow = (self.lo - bottom) as usize;
            let mut v = vec![0; grow];
            v.extend_from_slice(&self.limbs);
            self.limbs = v;
            self.lo = bottom;
        }
        let hi = self.lo + self.limbs.len() as i32 - 1;
        if top > hi {
            self.limbs.resize(self.limbs.len() + (top - hi) as usize, 0);
        }
    }

    fn tick(&mut self, n: u64) {
        self.since_carry += n;
        if self.since_carry >= CARRY_EVERY {
            self.carry();
        }
    }

    /// Brings every limb into (-NBASE, NBASE) with the sign of the whole on the top limb.
    fn carry(&mut self) {
        let mut c = 0i64;
        for l in self.limbs.iter_mut() {
            let v = *l + c;
            *l = v % NBASE;
            c = v / NBASE;
        }
        while c != 0 {
            self.limbs.push(c % NBASE);
            c /= NBASE;
        }
        self.since_carry = 0;
    }

    pub fn merge(&mut self, other: &DecimalSum) {
        self.dscale = self.dscale.max(other.dscale);
        self.nan += other.nan;
        self.pinf += other.pinf;
        self.ninf += other.ninf;
        if !other.limbs.is_empty() {
            let top = other.lo + other.limbs.len() as i32 - 1;
            self.reach(other.lo, top);
            let off = (other.lo - self.lo) as usize;
            for (i, l) in other.limbs.iter().enumerate() {
                self.limbs[off + i] += *l;
            }
        }
        self.tick(other.since_carry.max(1));
    }

    /// What `sum(numeric)` would return for the special values, if any were added.
    pub fn special(&self) -> Option<Special> {
        if self.nan > 0 || (self.pinf > 0 && self.ninf > 0) {
            Some(Special::NaN)
        } else if self.pinf > 0 {
            Some(Special::PosInf)
        } else if self.ninf > 0 {
            Some(Special::NegInf)
        } else {
            None
        }
    }

    /// Digits normalised to [0, NBASE), most significant last, and the sign.
    fn normalised(&self) -> (bool, Vec<i64>) {
        let mut s = self.clone();
        s.carry();
        let negative = s
            .limbs
            .iter()
            .rev()
            .find(|l| **l != 0)
            .is_some_and(|l| *l < 0);
        let mut limbs = s.limbs;
        if negative {
            for l in limbs.iter_mut() {
                *l = -*l;
            }
        }
        let mut borrow = 0;
        for l in limbs.iter_mut() {
            let mut v = *l - borrow;
            borrow = 0;
            if v < 0 {
                v += NBASE;
                borrow = 1;
            }
            *l = v;
        }
        (negative, limbs)
    }

    /// The finite sum as a decimal string with exactly `dscale` fraction digits.
    pub fn to_decimal_string(&self) -> String {
        let (negative, limbs) = self.normalised();
        let mut int_part = String::new();
        let mut frac = String::new();
        for (i, l) in limbs.iter().enumerate().rev() {
            let pos = self.lo + i as i32;
            if pos >= 0 {
                if int_part.is_empty() {
                    if *l != 0 {
                        int_part = l.to_string();
                    }
                } else {
                    int_part.push_str(&format!("{l:04}"));
                }
            } else {
                frac.push_str(&format!("{l:04}"));
            }
        }
        // Positions between the lowest limb and the units are zeros.
        let top = self.lo + limbs.len() as i32 - 1;
        if !int_part.is_empty() {
            for _ in 0..self.lo.max(0) {
                int_part.push_str("0000");
            }
        }
        if top < -1 {
            frac.insert_str(0, &"0000".repeat((-1 - top) as usize));
        }
        if int_part.is_empty() {
            int_part.push('0');
        }
        let scale = self.dscale as usize;
        while frac.len() < scale {
            frac.push('0');
        }
        frac.truncate(scale);
        let zero = int_part == "0" && frac.bytes().all(|b| b == b'0');
        let mut out = String::new();
        if negative && !zero {
            out.push('-');
        }
        out.push_str(&int_part);
        if scale > 0 {
            out.push('.');
            out.push_str(&frac);
        }
        out
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        let (negative, limbs) = self.normalised();
        out.extend_from_slice(&self.lo.to_le_bytes());
        out.extend_from_slice(&(limbs.len() as u32).to_le_bytes());
        for l in &limbs {
            let v = if negative { -*l } else { *l };
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.dscale.to_le_bytes());
        for c in [self.nan, self.pinf, self.ninf] {
            out.extend_from_slice(&c.to_le_bytes());
        }
    }

    pub fn decode(r: &mut super::wire::Reader) -> Option<Self> {
        let lo = r.i32()?;
        let n = r.u32()? as usize;
        let mut limbs = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            limbs.push(r.i64()?);
        }
        Some(DecimalSum {
            lo,
            limbs,
            dscale: r.u16()?,
            nan: r.u64()?,
            pinf: r.u64()?,
            ninf: r.u64()?,
            since_carry: 0,
        })
    }
}
