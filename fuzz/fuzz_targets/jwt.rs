//! Any input to the token parser and verifier: no panic, and nothing verifies under the fuzz
//! key (the seed corpus is signed with other keys, so a verifying input would be a forgery).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenancy_core::{jwt, Alg};

const KEY: &[u8] = b"fuzz-key-fuzz-key-fuzz-key-fuzz-key!";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(token) = jwt::parse(text) {
        for alg in [Alg::HS256, Alg::HS384, Alg::HS512] {
            assert!(!token.verify(alg, KEY), "an input nobody signed verified");
        }
        let _ = tenancy_core::claims::validate(
            &token.claims,
            &tenancy_core::claims::Rules { now: 1_800_000_000, leeway: 30, audience: Some("a"), issuer: Some("i"), tenant_claim: "app.tenant_id" },
        );
    }
});
