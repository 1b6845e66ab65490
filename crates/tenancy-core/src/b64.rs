//! base64url without padding, strictly: no `=`, no `+` or `/`, no non-canonical trailing bits.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        assert_eq!(encode(b"hi?"), "aGk_");
        assert_eq!(decode("aGk_").unwrap(), b"hi?");
        assert!(decode("aGk/").is_none());
        assert!(decode("aGk=").is_none());
        assert_eq!(decode("aGk").unwrap(), b"hi");
        // "aGl" is "aGk" with non-zero trailing bits: a second spelling of the same bytes.
        assert!(decode("aGl").is_none());
        assert!(decode("a").is_none());
        assert!(decode("aGk+").is_none());
        assert!(decode("aG k").is_none());
        assert!(decode("aGk\0").is_none());
        assert!(decode("aGk_\n").is_none());
        assert_eq!(decode("").unwrap(), b"");
    }

    #[test]
    fn round_trips_all_lengths() {
        let bytes: Vec<u8> = (0..=255).collect();
        for n in 0..bytes.len() {
            let text = encode(&bytes[..n]);
            assert!(!text.contains(['=', '+', '/']));
            assert_eq!(decode(&text).unwrap(), &bytes[..n]);
        }
    }
}
