//! Reading the guard states' bytes: little-endian fields, shared by the state and the exact
//! decimal sums it carries (each writes its own fields; both read through one `Reader`).

/// Little-endian reads that fail (None) instead of panicking on short input.
pub struct Reader<'a> {
    pub(crate) b: &'a [u8],
}

macro_rules! read_le {
    ($name:ident, $t:ty) => {
        pub fn $name(&mut self) -> Option<$t> {
            const N: usize = std::mem::size_of::<$t>();
            if self.b.len() < N {
                return None;
            }
            let (head, rest) = self.b.split_at(N);
            self.b = rest;
            Some(<$t>::from_le_bytes(head.try_into().ok()?))
        }
    };
}

impl Reader<'_> {
    read_le!(u8, u8);
    read_le!(u16, u16);
    read_le!(u32, u32);
    read_le!(i32, i32);
    read_le!(u64, u64);
    read_le!(i64, i64);
    read_le!(u128, u128);
    read_le!(i128, i128);
    read_le!(f64, f64);
}
