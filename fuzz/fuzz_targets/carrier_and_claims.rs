//! The context carrier decoder, the claim-path parser and walker, and the API key parser on
//! any input: no panic, and no carrier verifies under the fuzz key unless we encoded it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenancy_core::{apikey, carrier, claims};

const KEY: &[u8] = &[0x42; 32];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(ctx) = carrier::decode(text, KEY) {
        // Only possible if the input is exactly what encode() produces for that context.
        assert_eq!(carrier::encode(&ctx, KEY), text);
    }
    let (path, json) = text.split_once('\n').unwrap_or((text, "{}"));
    if claims::valid_claim_path(path) {
        if let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(json) {
            let _ = claims::claim_at(&m, path);
        }
    }
    let _ = apikey::parse(text);
    let _ = apikey::parse_key_or_id(text);
});
