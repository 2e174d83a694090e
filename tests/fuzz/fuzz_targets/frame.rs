//! Arbitrary bytes as a frame stream from an agent or a kernel, and as one frame body of each
//! ABI type: decoding must never panic or allocate past the frame limit, and what decodes must
//! encode back to a body that decodes to the same value.
#![no_main]

use agentos_syscalls::control::{ControlRequest, ControlResponse};
use agentos_syscalls::frame::{self, FrameDecoder};
use agentos_syscalls::{AgentFrame, KernelFrame};

fn round_trip<T>(body: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    if let Ok(v) = frame::decode::<T>(body) {
        let again = frame::encode(&v).expect("a decoded value encodes");
        let back: T = frame::decode(&again[frame::HEADER_LEN..]).expect("re-encoded decodes");
        assert_eq!(v, back);
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    round_trip::<AgentFrame>(data);
    round_trip::<KernelFrame>(data);
    round_trip::<ControlRequest>(data);
    round_trip::<ControlResponse>(data);
    // As a stream: the length prefix is checked against the limit before any allocation.
    let mut dec = FrameDecoder::new(1 << 16);
    dec.push(data);
    while let Ok(Some(body)) = dec.next_frame() {
        assert!(body.len() <= 1 << 16);
    }
});
