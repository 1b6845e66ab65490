//! The transition state shared by every guarded aggregate, its merge (the combine function)
//! and its byte form (serialize / deserialize between parallel workers).

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use super::decide::{decide, Status, TenantTally, Thresholds, Weighting};
use super::numeric::{DecimalSum, NumericView};
use super::set::{CappedSet, KeyHasher};
use super::wire::Reader;
use super::Key;

const FORMAT: u8 = 2;

/// What the aggregate accumulates besides contributors.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ValueKind {
    /// guarded_count and guard_status: rows only.
    Rows,
    Int,
    Float,
    Numeric,
    /// guarded_percentile: every value is kept, with its contributor's key.
    Values,
}

impl ValueKind {
    fn code(self) -> u8 {
        match self {
            ValueKind::Rows => 0,
            ValueKind::Int => 1,
            ValueKind::Float => 2,
            ValueKind::Numeric => 3,
            ValueKind::Values => 4,
        }
    }
    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            0 => ValueKind::Rows,
            1 => ValueKind::Int,
            2 => ValueKind::Float,
            3 => ValueKind::Numeric,
            4 => ValueKind::Values,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug)]
pub enum ValueAcc {
    Rows,
    Int(i128),
    Float(f64),
    Numeric(DecimalSum),
    /// Each value with its contributor's key: the percentile rule counts people on either
    /// side of the result.
    Values(Vec<(f64, Key)>),
}

impl ValueAcc {
    fn new(kind: ValueKind) -> Self {
        match kind {
            ValueKind::Rows => ValueAcc::Rows,
            ValueKind::Int => ValueAcc::Int(0),
            ValueKind::Float => ValueAcc::Float(0.0),
            ValueKind::Numeric => ValueAcc::Numeric(DecimalSum::default()),
            ValueKind::Values => ValueAcc::Values(Vec::new()),
        }
    }
    fn kind(&self) -> ValueKind {
        match self {
            ValueAcc::Rows => ValueKind::Rows,
            ValueAcc::Int(_) => ValueKind::Int,
            ValueAcc::Float(_) => ValueKind::Float,
            ValueAcc::Numeric(_) => ValueKind::Numeric,
            ValueAcc::Values(_) => ValueKind::Values,
        }
    }
}

/// Tenant keys are hashes already; the map only folds them.
type TenantMap = HashMap<Key, TenantAcc, BuildHasherDefault<KeyHasher>>;

struct TenantAcc {
    set: CappedSet,
    rows: u64,
    weight: f64,
}

/// One group's state. `rows` counts rows that passed (non-NULL contributor and value).
pub struct State {
    contributors: CappedSet,
    tenant_cap: u32,
    tenants: Option<TenantMap>,
    /// Contributor keys held across all tenants of a pooled form.
    tenant_keys: u64,
    pub rows: u64,
    pub acc: ValueAcc,
    pub fraction: Option<f64>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    Malformed,
}

impl State {
    /// `min_n_cap`: the plain forms stop collecting contributors here (the effective
    /// `tenancy.min_n` when the group starts). `tenant_cap`: pooled forms track each tenant's
    /// contributors exactly up to this many.
    pub fn new(kind: ValueKind, pooled: bool, min_n_cap: u32, tenant_cap: u32) -> Self {
        State {
            contributors: CappedSet::new(if pooled { 1 } else { min_n_cap }),
            tenant_cap: tenant_cap.max(1),
            tenants: pooled.then(TenantMap::default),
            tenant_keys: 0,
            rows: 0,
            acc: ValueAcc::new(kind),
            fraction: None,
        }
    }

    pub fn kind(&self) -> ValueKind {
        self.acc.kind()
    }

    pub fn pooled(&self) -> bool {
        self.tenants.is_some()
    }

    /// Whether a plain form still needs to hear about contributors: once `min_n` distinct are
    /// seen, a row costs nothing more than its value.
    #[inline]
    pub fn wants_contributor(&self) -> bool {
        self.tenants.is_some() || !self.contributors.is_full()
    }

    /// Records a row's contributor (and tenant, for pooled forms). `magnitude` is |value| for
    /// the sum's tenant weights (0 otherwise). Call only when the row has a non-NULL value.
    #[inline]
    pub fn admit(&mut self, contributor: Key, tenant: Option<Key>, magnitude: f64) {
        self.rows += 1;
        match (&mut self.tenants, tenant) {
            (Some(tenants), Some(t)) => {
                let cap = self.tenant_cap;
                let acc = tenants.entry(t).or_insert_with(|| TenantAcc {
                    set: CappedSet::new(cap),
                    rows: 0,
                    weight: 0.0,
                });
                acc.rows += 1;
                acc.weight += magnitude;
                let before = acc.set.len();
                acc.set.insert(contributor);
                self.tenant_keys += u64::from(acc.set.len() - before);
            }
            _ => self.contributors.insert(contributor),
        }
    }

    /// A row of a plain form after its contributors are complete.
    #[inline]
    pub fn admit_known(&mut self) {
        self.rows += 1;
    }

    #[inline]
    pub fn add_int(&mut self, v: i64) {
        if let ValueAcc::Int(s) = &mut self.acc {
            *s += i128::from(v);
        }
    }

    #[inline]
    pub fn add_float(&mut self, v: f64) {
        if let ValueAcc::Float(s) = &mut self.acc {
            *s += v;
        }
    }

    #[inline]
    pub fn add_numeric(&mut self, v: &NumericView) {
        if let ValueAcc::Numeric(s) = &mut self.acc {
            s.add(v);
        }
    }

    #[inline]
    pub fn push_value(&mut self, v: f64, contributor: Key) {
        if let ValueAcc::Values(vs) = &mut self.acc {
            vs.push((v, contributor));
        }
    }

    /// Values kept by guarded_percentile (0 for the other forms).
    pub fn values_len(&self) -> usize {
        match &self.acc {
            ValueAcc::Values(vs) => vs.len(),
            _ => 0,
        }
    }

    /// Tenants tracked by a pooled form (0 for the plain forms).
    pub fn tenants_len(&self) -> usize {
        self.tenants.as_ref().map_or(0, |t| t.len())
    }

    /// Contributor keys held across a pooled form's tenants (0 for the plain forms).
    pub fn tenant_keys(&self) -> u64 {
        self.tenant_keys
    }

    /// Percentile fraction: one per group; Err when a row brings another.
    pub fn set_fraction(&mut self, f: f64) -> Result<(), (f64, f64)> {
        match self.fraction {
            None => {
                self.fraction = Some(f);
                Ok(())
            }
            Some(g) if g == f => Ok(()),
            Some(g) => Err((g, f)),
        }
    }

    /// Folds `other` in; the outcome does not depend on how the rows were split.
    pub fn merge(&mut self, other: &State) -> Result<(), (f64, f64)> {
        if let Some(f) = other.fraction {
            self.set_fraction(f)?;
        }
        self.rows += other.rows;
        self.contributors.merge(&other.contributors);
        self.tenant_cap = self.tenant_cap.max(other.tenant_cap);
        if let (Some(mine), Some(theirs)) = (&mut self.tenants, &other.tenants) {
            let cap = self.tenant_cap;
            for (k, t) in theirs {
                let acc = mine.entry(*k).or_insert_with(|| TenantAcc {
                    set: CappedSet::new(cap),
                    rows: 0,
                    weight: 0.0,
                });
                acc.rows += t.rows;
                acc.weight += t.weight;
                acc.set.merge(&t.set);
            }
            self.tenant_keys = mine.values().map(|t| u64::from(t.set.len())).sum();
        }
        match (&mut self.acc, &other.acc) {
            (ValueAcc::Int(a), ValueAcc::Int(b)) => *a += *b,
            (ValueAcc::Float(a), ValueAcc::Float(b)) => *a += *b,
            (ValueAcc::Numeric(a), ValueAcc::Numeric(b)) => a.merge(b),
            (ValueAcc::Values(a), ValueAcc::Values(b)) => a.extend_from_slice(b),
            _ => {}
        }
        Ok(())
    }

    /// Per-tenant bounds: exact while a tenant is under its cap; past it, at least the cap
    /// (toward totals and residuals) and at most its row count (toward its own share).
    pub fn tallies(&self) -> Option<Vec<TenantTally>> {
        self.tenants.as_ref().map(|ts| {
            let mut v: Vec<TenantTally> = ts
                .values()
                .map(|t| {
                    let n = u64::from(t.set.len());
                    TenantTally {
                        lo: n,
                        hi: if t.set.saturated() { t.rows.max(n) } else { n },
                        weight: t.weight,
                    }
                })
                .collect();
            // A fixed order makes the float sum of weights independent of hash order.
            v.sort_by(|a, b| {
                (a.lo, a.hi)
                    .cmp(&(b.lo, b.hi))
                    .then(a.weight.total_cmp(&b.weight))
            });
            v
        })
    }

    pub fn status(&self, th: &Thresholds, w: Weighting) -> Status {
        let tallies = self.tallies();
        decide(
            u64::from(self.contributors.len()),
            tallies.as_deref(),
            th,
            w,
        )
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + 16 * self.contributors.len() as usize);
        out.push(FORMAT);
        out.push(self.acc.kind().code());
        out.push(u8::from(self.tenants.is_some()));
        out.extend_from_slice(&self.tenant_cap.to_le_bytes());
        out.extend_from_slice(&self.rows.to_le_bytes());
        match self.fraction {
            Some(f) => {
                out.push(1);
                out.extend_from_slice(&f.to_le_bytes());
            }
            None => out.push(0),
        }
        encode_set(&self.contributors, &mut out);
        if let Some(ts) = &self.tenants {
            out.extend_from_slice(&(ts.len() as u32).to_le_bytes());
            for (k, t) in ts {
                out.extend_from_slice(&k.to_le_bytes());
                out.extend_from_slice(&t.rows.to_le_bytes());
                out.extend_from_slice(&t.weight.to_le_bytes());
                encode_set(&t.set, &mut out);
            }
        }
        match &self.acc {
            ValueAcc::Rows => {}
            ValueAcc::Int(s) => out.extend_from_slice(&s.to_le_bytes()),
            ValueAcc::Float(s) => out.extend_from_slice(&s.to_le_bytes()),
            ValueAcc::Numeric(s) => s.encode(&mut out),
            ValueAcc::Values(vs) => {
                out.extend_from_slice(&(vs.len() as u64).to_le_bytes());
                for (v, k) in vs {
                    out.extend_from_slice(&v.to_le_bytes());
                    out.extend_from_slice(&k.to_le_bytes());
                }
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<State, DecodeError> {
        let mut r = Reader { b: bytes };
        Self::decode_from(&mut r)
            .filter(|_| r.b.is_empty())
            .ok_or(DecodeError::Malformed)
    }

    fn decode_from(r: &mut Reader) -> Option<State> {
        if r.u8()? != FORMAT {
            return None;
        }
        let kind = ValueKind::from_code(r.u8()?)?;
        let pooled = match r.u8()? {
            0 => false,
            1 => true,
            _ => return None,
        };
        let tenant_cap = r.u32()?;
        let rows = r.u64()?;
        let fraction = match r.u8()? {
            0 => None,
            1 => Some(r.f64()?),
            _ => return None,
        };
        let contributors = decode_set(r)?;
        let tenants = if pooled {
            let n = r.u32()? as usize;
            let mut m = TenantMap::default();
            m.reserve(n.min(1 << 16));
            for _ in 0..n {
                let k = r.u128()?;
                let rows = r.u64()?;
                let weight = r.f64()?;
                let set = decode_set(r)?;
                m.insert(k, TenantAcc { set, rows, weight });
            }
            Some(m)
        } else {
            None
        };
        let acc = match kind {
            ValueKind::Rows => ValueAcc::Rows,
            ValueKind::Int => ValueAcc::Int(r.i128()?),
            ValueKind::Float => ValueAcc::Float(r.f64()?),
            ValueKind::Numeric => ValueAcc::Numeric(DecimalSum::decode(r)?),
            ValueKind::Values => {
                let n = r.u64()? as usize;
                if n > r.b.len() / 24 {
                    return None;
                }
                let mut vs = Vec::with_capacity(n);
                for _ in 0..n {
                    vs.push((r.f64()?, r.u128()?));
                }
                ValueAcc::Values(vs)
            }
        };
        let tenant_keys = tenants
            .as_ref()
            .map_or(0, |m| m.values().map(|t| u64::from(t.set.len())).sum());
        Some(State {
            contributors,
            tenant_cap,
            tenants,
            tenant_keys,
            rows,
            acc,
            fraction,
        })
    }
}

fn encode_set(s: &CappedSet, out: &mut Vec<u8>) {
    out.extend_from_slice(&s.cap().to_le_bytes());
    out.push(u8::from(s.saturated()));
    out.extend_from_slice(&s.len().to_le_bytes());
    for k in s.keys() {
        out.extend_from_slice(&k.to_le_bytes());
    }
}

fn decode_set(r: &mut Reader) -> Option<CappedSet> {
    let cap = r.u32()?;
    let saturated = r.u8()? != 0;
    let n = r.u32()? as usize;
    if n > r.b.len() / 16 {
        return None;
    }
    let mut keys = Vec::with_capacity(n);
    for _ in 0..n {
        keys.push(r.u128()?);
    }
    Some(CappedSet::from_parts(cap, keys, saturated))
}
