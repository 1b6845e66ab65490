use super::*;

const TH: Thresholds = Thresholds {
    min_n: 5,
    min_tenants: 5,
    max_share: 0.25,
};

fn tally(n: u64) -> TenantTally {
    TenantTally {
        lo: n,
        hi: n,
        weight: n as f64,
    }
}

fn pooled(ns: &[u64]) -> Status {
    let t: Vec<_> = ns.iter().map(|n| tally(*n)).collect();
    decide(0, Some(&t), &TH, Weighting::Contributors)
}

#[test]
fn plain_threshold() {
    assert_eq!(
        decide(4, None, &TH, Weighting::Contributors),
        Status::TooFewContributors
    );
    assert_eq!(decide(5, None, &TH, Weighting::Contributors), Status::Ok);
}

#[test]
fn pooled_rules_in_order() {
    assert_eq!(pooled(&[1, 1, 1]), Status::TooFewContributors);
    assert_eq!(pooled(&[3, 3, 3, 3]), Status::TooFewTenants);
    // 5 tenants, one over 25%.
    assert_eq!(pooled(&[10, 2, 2, 2, 2]), Status::Dominated);
    // Exactly 25% is allowed: 2 of 8? 2/8 = 0.25.
    assert_eq!(pooled(&[2, 2, 2, 1, 1]), Status::Ok);
    assert_eq!(pooled(&[3, 3, 3, 3, 3]), Status::Ok);
    // Balanced but one person each: removing any tenant leaves 4 < 5.
    assert_eq!(pooled(&[1, 1, 1, 1, 1]), Status::TooFewContributors);
    assert_eq!(pooled(&[1, 1, 1, 1, 1, 1]), Status::Ok);
}

#[test]
fn the_lead_example_is_dominated() {
    // One tenant with 10 people against four tenants of one person each (however many rows).
    let mut s = State::new(ValueKind::Float, true, 5, 1024);
    for p in 0..10 {
        s.admit(hash_i64(p), Some(hash_bytes(b"big")), 1.0);
        s.add_float(1.0);
    }
    for t in 0..4 {
        for _ in 0..100 {
            s.admit(
                hash_i64(1000 + t),
                Some(hash_bytes(format!("small{t}").as_bytes())),
                1.0,
            );
            s.add_float(1.0);
        }
    }
    assert_eq!(s.status(&TH, Weighting::Contributors), Status::Dominated);
}

#[test]
fn sum_weights_are_absolute_values() {
    let t = |w: f64| TenantTally {
        lo: 3,
        hi: 3,
        weight: w,
    };
    let ts = [t(100.0), t(1.0), t(1.0), t(1.0), t(1.0)];
    assert_eq!(
        decide(0, Some(&ts), &TH, Weighting::AbsoluteSum),
        Status::Dominated
    );
    assert_eq!(
        decide(0, Some(&ts), &TH, Weighting::Contributors),
        Status::Ok
    );
    let ts = [t(1.0); 5];
    assert_eq!(
        decide(0, Some(&ts), &TH, Weighting::AbsoluteSum),
        Status::Ok
    );
    let ts = [t(f64::NAN), t(1.0), t(1.0), t(1.0), t(1.0)];
    assert_eq!(
        decide(0, Some(&ts), &TH, Weighting::AbsoluteSum),
        Status::Dominated
    );
}

#[test]
fn saturated_tenants_err_toward_suppression() {
    // Cap 4: a tenant with 100 rows of 50 people counts as 4 toward totals, 100 toward itself.
    let mut s = State::new(ValueKind::Rows, true, 5, 4);
    for r in 0..100 {
        s.admit(hash_i64(r % 50), Some(hash_bytes(b"a")), 0.0);
    }
    let t = s.tallies().unwrap();
    assert_eq!(
        t,
        vec![TenantTally {
            lo: 4,
            hi: 100,
            weight: 0.0
        }]
    );
    // Under the cap the count is exact.
    let mut s = State::new(ValueKind::Rows, true, 5, 64);
    for r in 0..100 {
        s.admit(hash_i64(r % 50), Some(hash_bytes(b"a")), 0.0);
    }
    assert_eq!(s.tallies().unwrap()[0].hi, 50);
}

#[test]
fn plain_set_stops_at_the_cap() {
    let mut s = State::new(ValueKind::Rows, false, 5, 1024);
    for p in 0..4 {
        assert!(s.wants_contributor());
        s.admit(hash_i64(p), None, 0.0);
        s.admit(hash_i64(p), None, 0.0);
    }
    assert_eq!(
        s.status(&TH, Weighting::Contributors),
        Status::TooFewContributors
    );
    s.admit(hash_i64(4), None, 0.0);
    assert!(!s.wants_contributor());
    assert_eq!(s.status(&TH, Weighting::Contributors), Status::Ok);
    // A higher threshold in the final step than at the start can only suppress.
    let th = Thresholds { min_n: 6, ..TH };
    assert_eq!(
        s.status(&th, Weighting::Contributors),
        Status::TooFewContributors
    );
}

#[test]
fn keys_do_not_collide_for_integers_and_uuids() {
    assert_ne!(hash_i64(-1), hash_i64(1));
    assert_ne!(hash_uuid(&[0; 16]), hash_uuid(&[1; 16]));
    assert_ne!(hash_bytes(b"a"), hash_bytes(b"b"));
    assert_eq!(hash_bytes(b"abc"), hash_bytes(b"abc"));
}

#[test]
fn percentile_matches_percentile_cont() {
    let v = [1.0, 2.0, 3.0, 4.0];
    assert_eq!(percentile_cont(&v, 0.5), 2.5);
    assert_eq!(percentile_cont(&v, 0.0), 1.0);
    assert_eq!(percentile_cont(&v, 1.0), 4.0);
    assert_eq!(percentile_cont(&v, 1.0 / 3.0), 2.0);
    assert_eq!(percentile_cont(&[7.0], 0.9), 7.0);
}

/// Builds the numeric wire form (long header) of a decimal string, the way numeric.c does.
fn numeric_bytes(s: &str) -> Vec<u8> {
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let dscale = frac.len() as u16;
    let int = int.trim_start_matches('0');
    let pad_int = (4 - int.len() % 4) % 4;
    let int = format!("{}{}", "0".repeat(pad_int), int);
    let pad_frac = (4 - frac.len() % 4) % 4;
    let frac = format!("{}{}", frac, "0".repeat(pad_frac));
    let mut digits: Vec<i16> = int
        .as_bytes()
        .chunks(4)
        .chain(frac.as_bytes().chunks(4))
        .map(|c| std::str::from_utf8(c).unwrap().parse().unwrap())
        .collect();
    let mut weight = (int.len() / 4) as i16 - 1;
    while digits.first() == Some(&0) {
        digits.remove(0);
        weight -= 1;
    }
    while digits.last() == Some(&0) {
        digits.pop();
    }
    if digits.is_empty() {
        weight = 0;
    }
    let mut out = Vec::new();
    let sign: u16 = if neg && !digits.is_empty() { 0x4000 } else { 0 };
    out.extend_from_slice(&(sign | dscale).to_ne_bytes());
    out.extend_from_slice(&weight.to_ne_bytes());
    for d in digits {
        out.extend_from_slice(&d.to_ne_bytes());
    }
    out
}

fn sum_of(values: &[&str]) -> String {
    let mut s = DecimalSum::default();
    for v in values {
        let b = numeric_bytes(v);
        s.add(&NumericView::parse(&b).unwrap());
    }
    s.to_decimal_string()
}

#[test]
fn decimal_sums_are_exact() {
    assert_eq!(sum_of(&["1.5", "2.25"]), "3.75");
    assert_eq!(sum_of(&["0.1", "0.2"]), "0.3");
    assert_eq!(sum_of(&["-0.1", "0.1"]), "0.0");
    assert_eq!(sum_of(&["-5", "3"]), "-2");
    assert_eq!(sum_of(&["99999999", "1"]), "100000000");
    assert_eq!(
        sum_of(&["123456789012345678901234567890.000001", "-0.000002"]),
        "123456789012345678901234567889.999999"
    );
    assert_eq!(sum_of(&["0.00001", "0.00002"]), "0.00003");
    assert_eq!(sum_of(&["10000", "0.5"]), "10000.5");
    assert_eq!(sum_of(&["-1.0001", "0.0002"]), "-0.9999");
    assert_eq!(sum_of(&[]), "0");
    let b = numeric_bytes("-12.50");
    let v = NumericView::parse(&b).unwrap();
    assert_eq!(v.to_f64(), -12.5);
    assert_eq!(v.abs_f64_approx(), 12.5);
}

#[test]
fn short_header_and_specials_parse() {
    // 1.5 in the short format: dscale 1, weight 0, digits [1, 5000].
    let h: u16 = 0x8000 | (1 << 7);
    let mut b = h.to_ne_bytes().to_vec();
    b.extend_from_slice(&1i16.to_ne_bytes());
    b.extend_from_slice(&5000i16.to_ne_bytes());
    assert_eq!(NumericView::parse(&b).unwrap().to_decimal_string(), "1.5");
    // -0.0025 short: negative, weight -1 (sign-extended), digits [25], dscale 4.
    let h: u16 = 0x8000 | 0x2000 | (4 << 7) | 0x0040 | 0x003F;
    let mut b = h.to_ne_bytes().to_vec();
    b.extend_from_slice(&25i16.to_ne_bytes());
    assert_eq!(
        NumericView::parse(&b).unwrap().to_decimal_string(),
        "-0.0025"
    );
    let nan = 0xC000u16.to_ne_bytes();
    assert_eq!(
        NumericView::parse(&nan).unwrap().special,
        Some(Special::NaN)
    );
    let mut s = DecimalSum::default();
    s.add(&NumericView::parse(&0xD000u16.to_ne_bytes()).unwrap());
    assert_eq!(s.special(), Some(Special::PosInf));
    s.add(&NumericView::parse(&0xF000u16.to_ne_bytes()).unwrap());
    assert_eq!(s.special(), Some(Special::NaN));
    assert!(NumericView::parse(&[1]).is_none());
}

/// A small deterministic generator (no dependency).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Row {
    contributor: i64,
    tenant: u64,
    value: i64,
    decimal: String,
}

fn rows(rng: &mut Lcg, n: usize, people: u64, tenants: u64) -> Vec<Row> {
    (0..n)
        .map(|_| {
            let value = rng.below(200_000) as i64 - 50_000;
            Row {
                contributor: rng.below(people) as i64,
                tenant: rng.below(tenants),
                value,
                decimal: format!("{}.{:02}", value, rng.below(100)),
            }
        })
        .collect()
}

fn feed(s: &mut State, r: &Row) {
    let tenant = s
        .pooled()
        .then(|| hash_bytes(format!("t{}", r.tenant).as_bytes()));
    let mag = r.value.unsigned_abs() as f64;
    if s.wants_contributor() {
        s.admit(hash_i64(r.contributor), tenant, mag);
    } else {
        s.admit_known();
    }
    match s.kind() {
        ValueKind::Int => s.add_int(r.value),
        ValueKind::Float => s.add_float(r.value as f64),
        ValueKind::Numeric => {
            let b = numeric_bytes(&r.decimal);
            s.add_numeric(&NumericView::parse(&b).unwrap());
        }
        ValueKind::Values => {
            s.set_fraction(0.3).unwrap();
            s.push_value(r.value as f64, hash_i64(r.contributor));
        }
        ValueKind::Rows => {}
    }
}

fn summary(s: &State) -> (u64, Status, Status, String) {
    let value = match &s.acc {
        ValueAcc::Rows => String::new(),
        ValueAcc::Int(v) => v.to_string(),
        ValueAcc::Float(v) => v.to_string(),
        ValueAcc::Numeric(d) => d.to_decimal_string(),
        ValueAcc::Values(vs) => {
            let mut vs = vs.clone();
            format!("{:?}", percentile_guarded(&mut vs, 0.3, 3, 0))
        }
    };
    (
        s.rows,
        s.status(&TH, Weighting::Contributors),
        s.status(&TH, Weighting::AbsoluteSum),
        value,
    )
}

/// Serial vs any split: every part serialised, deserialised and combined in a shuffled order
/// gives the same decision and value. Integer-valued floats keep float sums exact.
#[test]
fn split_and_combine_equal_serial() {
    let mut rng = Lcg(42);
    let kinds = [
        ValueKind::Rows,
        ValueKind::Int,
        ValueKind::Float,
        ValueKind::Numeric,
        ValueKind::Values,
    ];
    let mut statuses = std::collections::HashSet::new();
    for round in 0..300 {
        let n = 1 + rng.below(60) as usize;
        let people = 1 + rng.below(12);
        let tenants = 1 + rng.below(8);
        let data = rows(&mut rng, n, people, tenants);
        let kind = kinds[round % kinds.len()];
        let pooled = round % 2 == 0;
        let tenant_cap = 1 + rng.below(6) as u32;
        let mut serial = State::new(kind, pooled, 5, tenant_cap);
        for r in &data {
            feed(&mut serial, r);
        }
        let parts = 1 + rng.below(5) as usize;
        let mut states: Vec<State> = (0..parts)
            .map(|_| State::new(kind, pooled, 5, tenant_cap))
            .collect();
        for r in &data {
            let i = rng.below(parts as u64) as usize;
            feed(&mut states[i], r);
        }
        let mut combined = State::new(kind, pooled, 5, tenant_cap);
        while !states.is_empty() {
            let i = rng.below(states.len() as u64) as usize;
            let part = states.swap_remove(i);
            let back = State::decode(&part.encode()).expect("decodes");
            combined.merge(&back).unwrap();
        }
        let a = summary(&serial);
        let b = summary(&combined);
        assert_eq!(a, b, "round {round}: kind {kind:?} pooled {pooled}");
        statuses.insert(a.1);
    }
    // The generator reaches every outcome, so the comparison above covers them all.
    assert_eq!(statuses.len(), 4, "{statuses:?}");
}

#[test]
fn decode_refuses_garbage() {
    assert_eq!(State::decode(&[]).err(), Some(DecodeError::Malformed));
    let mut s = State::new(ValueKind::Values, true, 5, 8);
    s.admit(hash_i64(1), Some(hash_bytes(b"t")), 1.0);
    s.push_value(1.0, hash_i64(1));
    let b = s.encode();
    for cut in 0..b.len() {
        assert!(State::decode(&b[..cut]).is_err(), "cut at {cut}");
    }
    let mut longer = b.clone();
    longer.push(0);
    assert!(State::decode(&longer).is_err());
    assert!(State::decode(&b).is_ok());
}

#[test]
fn fraction_must_not_change() {
    let mut s = State::new(ValueKind::Values, false, 5, 8);
    s.set_fraction(0.5).unwrap();
    assert!(s.set_fraction(0.5).is_ok());
    assert_eq!(s.set_fraction(0.9), Err((0.5, 0.9)));
}

#[test]
fn sets_past_the_small_vector_stay_exact() {
    let mut a = CappedSet::new(1000);
    for round in 0..2 {
        for k in 0..100 {
            a.insert(hash_i64(k));
        }
        assert_eq!(a.len(), 100, "round {round}");
    }
    assert!(!a.saturated());
    let mut capped = CappedSet::new(40);
    for k in 0..100 {
        capped.insert(hash_i64(k % 50));
    }
    assert_eq!(capped.len(), 40);
    assert!(capped.saturated());
    // Any split, merged, counts the same.
    let (mut x, mut y) = (CappedSet::new(60), CappedSet::new(60));
    for k in 0..100 {
        if k % 3 == 0 {
            x.insert(hash_i64(k))
        } else {
            y.insert(hash_i64(k))
        }
    }
    x.merge(&y);
    assert_eq!((x.len(), x.saturated()), (60, true));
    let (mut x, mut y) = (CappedSet::new(600), CappedSet::new(600));
    for k in 0..100 {
        x.insert(hash_i64(k));
        y.insert(hash_i64(k + 50));
    }
    x.merge(&y);
    assert_eq!((x.len(), x.saturated()), (150, false));
}

/// Percentiles at the edge of the crowd are not shown: the minimum, the maximum and fractions
/// close to them with few people, in every form (exact ends, near ends, one person's many
/// rows at an end, ties).
#[test]
fn percentiles_need_a_crowd_on_both_sides() {
    let people = |n: i64| -> Vec<(f64, Key)> { (0..n).map(|p| (p as f64, hash_i64(p))).collect() };
    // Ten people, min_n 5: the ends and near-ends are refused, the median is shown.
    for f in [0.0, 1.0, 0.1, 0.9, 0.3] {
        assert_eq!(
            percentile_guarded(&mut people(10), f, 5, 0),
            None,
            "fraction {f}"
        );
    }
    assert_eq!(percentile_guarded(&mut people(10), 0.5, 5, 0), Some(4.5));
    // Five people: even the median is one person's exact value with two on either side.
    assert_eq!(percentile_guarded(&mut people(5), 0.5, 5, 0), None);
    // Nine: the median has five at or below and five at or above.
    assert_eq!(percentile_guarded(&mut people(9), 0.5, 5, 0), Some(4.0));
    // A hundred people: 0.99 lies between the two top earners.
    assert_eq!(percentile_guarded(&mut people(100), 0.99, 5, 0), None);
    assert_eq!(
        percentile_guarded(&mut people(100), 0.95, 5, 0),
        Some(94.05)
    );
    // One person with many rows at the top is still one person there.
    let mut v = people(20);
    v.extend((0..50).map(|_| (1000.0, hash_i64(7))));
    assert_eq!(percentile_guarded(&mut v, 1.0, 5, 0), None);
    assert_eq!(percentile_guarded(&mut v, 0.9, 5, 0), None);
    // Ties: five people sharing the maximum may be shown at it.
    let mut v = people(20);
    v.extend((100..105).map(|p| (500.0, hash_i64(p))));
    assert_eq!(percentile_guarded(&mut v, 1.0, 5, 0), Some(500.0));
    // NaN stands on neither side.
    let mut v = people(9);
    v.push((f64::NAN, hash_i64(99)));
    assert_eq!(percentile_guarded(&mut v, 1.0, 5, 0), None);
}

/// An average carries its sum's dominance: suppressed whenever the sum would be.
#[test]
fn averages_follow_the_sum_dominance() {
    let t = |w: f64| TenantTally {
        lo: 3,
        hi: 3,
        weight: w,
    };
    let ts = [t(100.0), t(1.0), t(1.0), t(1.0), t(1.0), t(1.0)];
    assert_eq!(
        decide(0, Some(&ts), &TH, Weighting::AbsoluteSum),
        Status::Dominated
    );
    assert_eq!(
        decide(0, Some(&ts), &TH, Weighting::Both),
        Status::Dominated
    );
    assert_eq!(
        decide(0, Some(&ts), &TH, Weighting::Contributors),
        Status::Ok
    );
    // And its count's: one tenant with most of the people.
    let ts = [
        TenantTally {
            lo: 30,
            hi: 30,
            weight: 1.0,
        },
        t(1.0),
        t(1.0),
        t(1.0),
        t(1.0),
    ];
    assert_eq!(
        decide(0, Some(&ts), &TH, Weighting::Both),
        Status::Dominated
    );
    assert_eq!(
        decide(0, Some(&ts), &TH, Weighting::AbsoluteSum),
        Status::Ok
    );
    let ts = [t(1.0); 6];
    assert_eq!(decide(0, Some(&ts), &TH, Weighting::Both), Status::Ok);
}

/// Pooled percentiles: a tenant's own people cannot be the crowd on one side. With the largest
/// tenant holding 5 people, each side needs min_n = 5 beyond them.
#[test]
fn pooled_percentiles_need_a_crowd_beyond_the_largest_tenant() {
    let people = |n: i64| -> Vec<(f64, Key)> { (0..n).map(|p| (p as f64, hash_i64(p))).collect() };
    // Ten victims and five planted values above them: shown without the residual, so the
    // planted side could be the attacker's own.
    let mut v = people(10);
    v.extend((100..105).map(|p| (1_000_000.0, hash_i64(p))));
    assert!(percentile_guarded(&mut v.clone(), 0.9, 5, 0).is_some());
    assert_eq!(percentile_guarded(&mut v, 0.9, 5, 5), None);
    // Twenty people: the median has ten on each side, five beyond a tenant of five.
    assert_eq!(percentile_guarded(&mut people(20), 0.5, 5, 5), Some(9.5));
    assert_eq!(percentile_guarded(&mut people(20), 0.5, 5, 6), None);
}
