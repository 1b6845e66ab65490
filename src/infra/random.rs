//! Random bytes from PostgreSQL's strong source, for keys, secrets and step tokens.

use pgrx::prelude::*;

use crate::infra::errors;

/// Fills a buffer from PostgreSQL's strong random source (OpenSSL where built with it).
pub fn strong_random<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // SAFETY: the buffer is valid for N bytes.
    let ok = unsafe { pg_sys::pg_strong_random(buf.as_mut_ptr().cast(), N) };
    if !ok {
        errors::internal("generating random bytes", "pg_strong_random failed");
    }
    buf
}
