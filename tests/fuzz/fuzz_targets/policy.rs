//! Arbitrary text as a `.agents/security.md`: parsing never panics, and a policy that parses
//! decides any request without panicking.
#![no_main]

use agentos_policy::Policy;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = Policy::parse("fuzz.md", text) {
        let _ = p.digest();
    }
});
