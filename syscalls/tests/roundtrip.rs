//! proptest: every frame round-trips through the codec, and no byte string makes the decoder
//! panic or allocate past the limit.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is a failed test

use agentos_syscalls::*;
use proptest::prelude::*;

fn signal() -> impl Strategy<Value = Signal> {
    proptest::sample::select(signal::ALL_SIGNALS.to_vec())
}

fn write_mode() -> impl Strategy<Value = WriteMode> {
    prop_oneof![
        Just(WriteMode::Truncate),
        Just(WriteMode::Append),
        Just(WriteMode::CreateNew)
    ]
}

fn syscall() -> impl Strategy<Value = Syscall> {
    let s = ".{0,40}";
    let bytes = proptest::collection::vec(any::<u8>(), 0..256);
    prop_oneof![
        (s, any::<u64>(), any::<Option<u64>>()).prop_map(|(path, offset, len)| Syscall::Read {
            path,
            offset,
            len
        }),
        (s, bytes.clone(), write_mode()).prop_map(|(path, data, mode)| Syscall::Write {
            path,
            data,
            mode
        }),
        (
            s,
            prop_oneof![Just(OpenMode::Read), write_mode().prop_map(OpenMode::Write)]
        )
            .prop_map(|(path, mode)| Syscall::Open { path, mode }),
        any::<u32>().prop_map(|fd| Syscall::Close { fd }),
        s.prop_map(|path| Syscall::List { path }),
        s.prop_map(|path| Syscall::Stat { path }),
        s.prop_map(|path| Syscall::Unlink { path }),
        (
            proptest::collection::vec(s, 0..4),
            bytes.clone(),
            proptest::option::of(s),
            any::<Option<u64>>()
        )
            .prop_map(|(argv, stdin, cwd, timeout_ms)| Syscall::Exec {
                argv,
                stdin,
                cwd,
                timeout_ms
            }),
        (s, s).prop_map(|(action, params_json)| Syscall::Call {
            action,
            params_json
        }),
        (any::<u64>(), bytes.clone()).prop_map(|(to, payload)| Syscall::Send {
            to: AgentId(to),
            payload
        }),
        any::<Option<u64>>().prop_map(|timeout_ms| Syscall::Recv { timeout_ms }),
        (any::<u64>(), signal()).prop_map(|(t, signal)| Syscall::Signal {
            target: AgentId(t),
            signal
        }),
        (s, s).prop_map(|(action, resource)| Syscall::CheckPolicy { action, resource }),
        Just(Syscall::Checkpoint),
        any::<i32>().prop_map(|code| Syscall::Exit { code }),
        (any::<u32>(), any::<u32>()).prop_map(|(fd, len)| Syscall::ReadFd { fd, len }),
        (any::<u32>(), bytes).prop_map(|(fd, data)| Syscall::WriteFd { fd, data }),
        (s, s).prop_map(|(from, to)| Syscall::Rename { from, to }),
    ]
}

fn errno() -> impl Strategy<Value = Errno> {
    let s = ".{0,20}";
    prop_oneof![
        (s, s).prop_map(|(rule, reason)| Errno::PermissionDenied { rule, reason }),
        s.prop_map(|what| Errno::NotFound { what }),
        any::<u64>().prop_map(|retry_after_ms| Errno::RateLimited { retry_after_ms }),
        Just(Errno::ApprovalDenied),
        (any::<u64>(), any::<u64>()).prop_map(|(size, limit)| Errno::TooLarge { size, limit }),
        s.prop_map(|reason| Errno::ProtocolViolation { reason }),
        any::<u32>().prop_map(|fd| Errno::BadDescriptor { fd }),
    ]
}

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        Just(Reply::Done),
        proptest::collection::vec(any::<u8>(), 0..512).prop_map(Reply::Data),
        any::<u64>().prop_map(|bytes| Reply::Written { bytes }),
        (any::<bool>(), ".{0,20}", ".{0,20}").prop_map(|(allowed, rule, reason)| Reply::Decision(
            Decision {
                allowed,
                rule,
                reason
            }
        )),
        any::<u64>().prop_map(|number| Reply::Checkpoint { number }),
    ]
}

proptest! {
    #[test]
    fn requests_round_trip(id in any::<u64>(), call in syscall()) {
        let frame = AgentFrame::Request(Request { id, call });
        let bytes = frame::encode(&frame).unwrap();
        prop_assert_eq!(bytes.len() - frame::HEADER_LEN, u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize);
        let back: AgentFrame = frame::decode(&bytes[frame::HEADER_LEN..]).unwrap();
        prop_assert_eq!(back, frame);
    }

    #[test]
    fn traced_requests_round_trip(id in any::<u64>(), call in syscall(), trace_id in any::<[u8; 16]>(), span_id in any::<[u8; 8]>(), flags in any::<u8>()) {
        let trace = TraceContext { trace_id, span_id, flags };
        if trace.is_valid() {
            prop_assert_eq!(TraceContext::parse(&trace.traceparent()).unwrap(), trace);
        }
        let frame = AgentFrame::TracedRequest { request: Request { id, call }, trace };
        let bytes = frame::encode(&frame).unwrap();
        let back: AgentFrame = frame::decode(&bytes[frame::HEADER_LEN..]).unwrap();
        prop_assert_eq!(back, frame);
    }

    #[test]
    fn responses_round_trip(id in any::<u64>(), result in prop_oneof![reply().prop_map(Ok), errno().prop_map(Err)]) {
        let frame = KernelFrame::Response(Response { id, result });
        let bytes = frame::encode(&frame).unwrap();
        let back: KernelFrame = frame::decode(&bytes[frame::HEADER_LEN..]).unwrap();
        prop_assert_eq!(back, frame);
    }

    #[test]
    fn events_round_trip(signal in signal(), reason in ".{0,30}") {
        let frame = KernelFrame::Event(Event::Signal { signal, reason });
        let bytes = frame::encode(&frame).unwrap();
        let back: KernelFrame = frame::decode(&bytes[frame::HEADER_LEN..]).unwrap();
        prop_assert_eq!(back, frame);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut dec = FrameDecoder::new(1024);
        dec.push(&bytes);
        while let Ok(Some(body)) = dec.next_frame() {
            let _ = frame::decode::<AgentFrame>(&body);
        }
        let _ = frame::decode::<AgentFrame>(&bytes);
        let _ = frame::decode::<control::ControlRequest>(&bytes);
    }
}

#[test]
fn traceparent_parsing_refuses_what_the_w3c_recommendation_refuses() {
    let ok = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    assert_eq!(TraceContext::parse(ok).unwrap().traceparent(), ok);
    for (bad, says) in [
        ("", "not a traceparent"),
        (
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
            "version",
        ),
        (
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-00",
            "trace id",
        ),
        (
            "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-00",
            "trace id",
        ),
        (
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333z-00",
            "span id",
        ),
        (
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",
            "flags",
        ),
        (
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "all-zero",
        ),
        (
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "all-zero",
        ),
        (
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",
            "not a traceparent",
        ),
    ] {
        let e = TraceContext::parse(bad).unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
    }
}
