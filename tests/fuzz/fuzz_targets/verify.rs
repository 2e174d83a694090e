//! Arbitrary bytes as a recorder segment (through the whole verifier, both format versions'
//! frame decoders, the record decoder and the blob loader) must never panic, hang or allocate
//! without bound.
#![no_main]

use std::path::Path;

use agentos_recorder::format::{decode_record, parse_frame, VERSION, VERSION_1};
use agentos_recorder::verify::scan_segment_bytes;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // As a whole segment file (header, frames, chain, checkpoints, blobs under a dir that
    // does not exist).
    let v = scan_segment_bytes(Path::new("/nonexistent/agentos-fuzz"), data, |_, _| {});
    assert!(v.records <= data.len() as u64);
    // As a stream of frames of either version, resynchronising byte by byte after garbage.
    for version in [VERSION_1, VERSION] {
        let mut off = 0;
        while off < data.len() {
            match parse_frame(&data[off..], version) {
                Ok(f) => {
                    assert!(f.len > 0 && f.len <= data.len() - off);
                    let _ = decode_record(version, &f);
                    off += f.len;
                }
                Err(_) => off += 1,
            }
        }
    }
});
