"""The SDK against a fake kernel on a socketpair: handshake, calls in flight from several
threads, errors as exceptions, signal events, and malformed input refused before sending."""

from __future__ import annotations

import asyncio
import socket
import threading
import unittest
from typing import List, Tuple

import agentos
from agentos import abi
from agentos._wire import decode, encode
from agentos.frame import HEADER_LEN, FrameDecoder, encode_frame, read_frame


class FakeKernel(threading.Thread):
    """Answers Read with the path's bytes, Rename with Done, Write with RateLimited(250), the
    rest with NotFound."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.seen: List[abi.Syscall] = []
        self.traces: List[object] = []

    def run(self) -> None:
        dec = FrameDecoder()
        hello_done = False
        while True:
            data = self.sock.recv(65536)
            if not data:
                return
            dec.push(data)
            while (body := dec.next_frame()) is not None:
                frame = decode(abi.AgentFrame, body)
                if not hello_done:
                    assert isinstance(frame, abi.AgentFrame.Hello)
                    assert frame.hello.sdk.startswith("agentos-python/")
                    self.send(abi.KernelFrame.Welcome(abi.Welcome(1, abi.AgentId(5), abi.Limits(1024, 64), bytes(32))))
                    hello_done = True
                    continue
                req = frame.request
                self.seen.append(req.call)
                self.traces.append(getattr(frame, "trace", None))
                call = req.call
                if isinstance(call, abi.Syscall.Read):
                    result = abi.Reply.Data(call.path.encode())
                elif isinstance(call, abi.Syscall.Write):
                    result = abi.Errno.RateLimited(250)
                elif isinstance(call, abi.Syscall.Rename):
                    result = abi.Reply.Done()
                elif isinstance(call, abi.Syscall.ListTools):
                    result = abi.Reply.Tools([abi.ToolInfo("everything", "echo", "Echoes", '{"type":"object"}')])
                elif isinstance(call, abi.Syscall.Call) and "/" in call.action:
                    result = abi.Reply.CallResult('{"content":[{"type":"text","text":"%s"}]}' % call.action)
                elif isinstance(call, abi.Syscall.Signal):
                    self.send(abi.KernelFrame.Event(abi.Event.Signal(abi.Signal.USR1, "operator")))
                    result = abi.Reply.Done()
                else:
                    result = abi.Errno.NotFound(call.name)
                self.send(abi.KernelFrame.Response(abi.Response(req.id, result)))

    def send(self, frame: abi.KernelFrame) -> None:
        self.sock.sendall(encode_frame(frame))


class SdkTests(unittest.TestCase):
    def pair(self) -> Tuple[socket.socket, FakeKernel]:
        """The agent's end of a socketpair whose other end a started FakeKernel serves; both
        ends are closed when the test ends."""
        a, b = socket.socketpair()
        kernel = FakeKernel(b)
        kernel.start()
        self.addCleanup(b.close)
        self.addCleanup(a.close)
        return a, kernel

    def test_calls_errors_and_threads(self) -> None:
        sock, kernel = self.pair()
        c = agentos.Client(sock)
        assert c.agent_id == 5 and c.max_frame == 1024
        assert c.read("/x") == b"/x"
        with self.assertRaises(agentos.RateLimited) as e:
            c.write("/x", b"y")
        assert e.exception.retry_after_ms == 250 and e.exception.errno == 11
        with self.assertRaises(agentos.NotFound) as nf:
            c.stat("/nope")
        assert nf.exception.errno == 2 and nf.exception.wire == abi.Errno.NotFound("stat")
        results: List[bytes] = []

        def worker(n: int) -> None:
            for i in range(50):
                results.append(c.read(f"/{n}/{i}"))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == sorted(f"/{n}/{i}".encode() for n in range(8) for i in range(50))


    def test_a_traceparent_rides_on_later_calls_until_cleared(self) -> None:
        sock, kernel = self.pair()
        c = agentos.Client(sock)
        c.read("/a")
        tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        c.set_traceparent(tp)
        c.read("/b")
        c.set_traceparent(None)
        c.read("/c")
        assert kernel.traces[0] is None and kernel.traces[2] is None
        assert kernel.traces[1] == abi.TraceContext.parse(tp)
        assert kernel.traces[1].traceparent() == tp
        for bad, says in [
            ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "trace id"),
            ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", "all-zero"),
            ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "version"),
            ("garbage", "not a traceparent"),
        ]:
            with self.assertRaises(ValueError) as e:
                c.set_traceparent(bad)
            assert says in str(e.exception), (bad, e.exception)

    def test_rename_sends_both_names(self) -> None:
        sock, kernel = self.pair()
        c = agentos.Client(sock)
        assert c.rename("/mem/working/a", "/mem/working/b") is None
        assert kernel.seen[-1] == abi.Syscall.Rename("/mem/working/a", "/mem/working/b")
        assert kernel.seen[-1].name == "rename"
        assert encode(kernel.seen[-1])[0] == 17, "tag 17, after WriteFd"


    def test_mcp_tools_are_listed_and_called_as_server_slash_tool(self) -> None:
        sock, kernel = self.pair()
        c = agentos.Client(sock)
        tools = c.list_tools()
        assert [(t.server, t.name) for t in tools] == [("everything", "echo")]
        assert kernel.seen[-1] == abi.Syscall.ListTools()
        assert encode(kernel.seen[-1])[0] == 18, "tag 18, after Rename"
        out = c.call_tool("everything", "echo", {"message": "hi"})
        assert out["content"][0]["text"] == "everything/echo"
        assert kernel.seen[-1] == abi.Syscall.Call("everything/echo", '{"message": "hi"}')
        c.call_tool("everything", "echo")
        assert kernel.seen[-1] == abi.Syscall.Call("everything/echo", "{}")
        with self.assertRaises(ValueError):
            c.call_tool("a/b", "echo")
        with self.assertRaises(TypeError):
            c.call_tool("everything", "echo", [1])

        async def main() -> None:
            a = await agentos.AsyncClient.connect(sock=sock2)
            tools = await a.list_tools()
            assert tools[0].name == "echo"
            r = await a.call_tool("everything", "echo", {"m": 1})
            assert r["content"][0]["text"] == "everything/echo"
            await a.close()

        sock2, _ = self.pair()
        asyncio.run(main())

    def test_malformed_input_is_refused_before_sending(self) -> None:
        sock, kernel = self.pair()
        c = agentos.Client(sock)
        before = len(kernel.seen)
        with self.assertRaises(agentos.TooLarge) as tl:
            c.write("/x", b"z" * 2000)
        assert tl.exception.limit == 1024 and isinstance(tl.exception, ValueError)
        with self.assertRaisesRegex(TypeError, "path"):
            c.read(3)  # type: ignore[arg-type]
        with self.assertRaises(TypeError):
            c.write("/x", 1.5)  # type: ignore[arg-type]
        with self.assertRaisesRegex(ValueError, "u32"):
            c.close(1 << 32)
        with self.assertRaisesRegex(TypeError, "Signal"):
            c.signal(1, 15)  # type: ignore[arg-type]
        with self.assertRaises(TypeError):
            c.exec("echo hi")  # type: ignore[arg-type]
        assert c.read("/ok") == b"/ok"
        assert len(kernel.seen) == before + 1


    def test_signal_handler_runs_on_its_thread(self) -> None:
        sock, _ = self.pair()
        c = agentos.Client(sock)
        got = threading.Event()
        seen = []
        c.on_signal(agentos.Signal.USR1, lambda sig, reason: (seen.append((sig, reason, threading.current_thread().name)), got.set()))
        c.signal(2, agentos.Signal.STOP)
        assert got.wait(5)
        assert seen == [(agentos.Signal.USR1, "operator", "agentos-signals")]


    def test_async_client_many_in_flight(self) -> None:
        sock, _ = self.pair()

        async def go() -> List[bytes]:
            c = await agentos.AsyncClient.connect(sock)
            out = await asyncio.gather(*[c.read(f"/{i}") for i in range(200)])
            with self.assertRaises(agentos.RateLimited):
                await c.write("/x", b"1")
            with self.assertRaises(agentos.TooLarge):
                c.write("/x", b"z" * 4096)  # raised synchronously, before anything is sent
            await c.close()
            return out

        assert asyncio.run(go()) == [f"/{i}".encode() for i in range(200)]


    def test_closed_connection_fails_pending_calls(self) -> None:
        a, b = socket.socketpair()

        def kernel() -> None:
            dec = FrameDecoder()
            while (body := dec.next_frame()) is None:
                dec.push(b.recv(4096))
            b.sendall(encode_frame(abi.KernelFrame.Welcome(abi.Welcome(1, abi.AgentId(1), abi.Limits(1 << 20, 8), bytes(32)))))
            b.recv(4096)  # the request
            b.close()

        threading.Thread(target=kernel, daemon=True).start()
        c = agentos.Client(a)
        with self.assertRaises(agentos.ConnectionClosed):
            c.read("/x")


    def test_refused_handshake(self) -> None:
        a, b = socket.socketpair()
        b.sendall(encode_frame(abi.KernelFrame.Refused(abi.Errno.ProtocolViolation("abi 9 is not 1"))))
        with self.assertRaises(agentos.Refused) as e:
            agentos.Client(a)
        assert isinstance(e.exception.cause, agentos.ProtocolViolation) and e.exception.errno == 71


    def test_frame_limit_is_checked_before_allocation(self) -> None:
        chunks = [(16 << 20 | 1).to_bytes(4, "little")]
        with self.assertRaisesRegex(agentos.ProtocolViolation, "over the limit"):
            read_frame(lambda n: chunks.pop(0) if chunks else self.fail("body was read"), 16 << 20)
        dec = FrameDecoder(16)
        dec.push((17).to_bytes(4, "little"))
        with self.assertRaises(agentos.ProtocolViolation):
            dec.next_frame()


    def test_decoder_refuses_bad_bodies(self) -> None:
        body = abi.AgentFrame.Hello(abi.Hello(1, "t")).to_bytes()
        with self.assertRaisesRegex(ValueError, "trailing"):
            decode(abi.AgentFrame, body + b"\0")
        with self.assertRaises(ValueError):
            decode(abi.AgentFrame, body[:-1])
        with self.assertRaisesRegex(ValueError, "no variant"):
            decode(abi.AgentFrame, b"\x09")
        with self.assertRaisesRegex(ValueError, "bool"):
            decode(abi.Decision, b"\x02\x00\x00")
        with self.assertRaisesRegex(ValueError, "varint"):
            decode(abi.Hello, b"\xff\xff\xff\x00")


    def test_errno_table_matches_posix_and_exceptions(self) -> None:
        for var in abi.Errno._variants:
            fields = [0 if c.__class__.__name__ in ("_Unsigned",) else "x" for c in var._codecs]
            exc = agentos.from_errno(var(*fields))
            assert exc.errno == abi.POSIX_ERRNO[var.__qualname__.split(".")[1]]
            assert isinstance(exc, agentos.AgentOSError)


    def test_every_refusal_by_policy_is_a_permission_denied_that_says_so(self) -> None:
        """The README's ``except agentos.PermissionDenied`` catches a call whose approval was
        denied or timed out, and every message says "denied by policy" with the rule."""
        for wire in (abi.Errno.ApprovalDenied(), abi.Errno.ApprovalTimeout(),
                     abi.Errno.PermissionDenied("no-etc (security.md:12)", "path under /etc")):
            try:
                raise agentos.from_errno(wire)
            except agentos.PermissionDenied as e:
                assert str(e).startswith("denied by policy: "), str(e)
                assert e.errno == abi.POSIX_ERRNO[wire.kind]
        assert str(agentos.from_errno(abi.Errno.PermissionDenied("no-etc (security.md:12)", "x"))) == \
            "denied by policy: no-etc (security.md:12): x"
        assert str(agentos.PermissionDenied("", "no rule allows file_write")) == \
            "denied by policy: default deny: no rule allows file_write"
        assert "requires_approval" in str(agentos.ApprovalTimeout())
        assert not isinstance(agentos.RateLimited(5), agentos.PermissionDenied)

    def test_signal_table(self) -> None:
        assert [s.number for s in abi.Signal] == [2, 9, 10, 15, 18, 19, 64, 65]
        assert abi.Signal.parse("term") is abi.Signal.TERM and abi.Signal.parse(64) is abi.Signal.POLICY
        with self.assertRaises(ValueError):
            abi.Signal.parse("SIGHUP")


    def test_reader_takes_answers_batched_split_and_refuses_oversized_ones(self) -> None:
        """The blocking client's reader buffers: two answers in one write, an answer trickling in
        byte by byte, and a header over the limit (refused before its body is awaited)."""
        a, b = socket.socketpair()
        requests: List[abi.Request] = []
        ready = threading.Event()

        def kernel() -> None:
            dec = FrameDecoder()

            def next_body() -> bytes:
                while (body := dec.next_frame()) is None:
                    dec.push(b.recv(4096))
                return body

            next_body()  # Hello
            b.sendall(encode_frame(abi.KernelFrame.Welcome(abi.Welcome(1, abi.AgentId(1), abi.Limits(1024, 8), bytes(32)))))
            for _ in range(3):
                requests.append(decode(abi.AgentFrame, next_body()).request)
                if len(requests) == 2:
                    ready.set()
            answer = lambda r: encode_frame(abi.KernelFrame.Response(abi.Response(r.id, abi.Reply.Data(r.call.path.encode()))))
            b.sendall(answer(requests[0]) + answer(requests[1]))  # two answers, one write
            for byte in answer(requests[2]):
                b.sendall(bytes([byte]))
            b.sendall((1025).to_bytes(4, "little"))  # over the 1024-byte limit

        threading.Thread(target=kernel, daemon=True).start()
        c = agentos.Client(a)
        got: List[bytes] = []
        threads = [threading.Thread(target=lambda p=p: got.append(c.read(p))) for p in ("/one", "/two")]
        for t in threads:
            t.start()
        assert ready.wait(5)
        assert c.read("/three") == b"/three"
        for t in threads:
            t.join(5)
        assert sorted(got) == [b"/one", b"/two"]
        with self.assertRaisesRegex(agentos.ProtocolViolation, "over the limit"):
            c.read("/after")
        a.close()
        b.close()


    def test_read_to_end_reads_in_frame_sized_chunks(self) -> None:
        blob = bytes(i % 251 for i in range(10_000))
        a, b = socket.socketpair()
        seen: List[abi.Syscall] = []

        def serve() -> None:
            dec = FrameDecoder()
            first = True
            while data := b.recv(65536):
                dec.push(data)
                while (body := dec.next_frame()) is not None:
                    frame = decode(abi.AgentFrame, body)
                    if first:
                        limits = abi.Limits(agentos.client.CHUNK_OVERHEAD + 1000, 64)
                        b.sendall(encode_frame(abi.KernelFrame.Welcome(abi.Welcome(1, abi.AgentId(5), limits, bytes(32)))))
                        first = False
                        continue
                    call = frame.request.call
                    seen.append(call)
                    assert isinstance(call, abi.Syscall.Read) and call.len == 1000
                    part = blob[call.offset:call.offset + call.len]
                    b.sendall(encode_frame(abi.KernelFrame.Response(abi.Response(frame.request.id, abi.Reply.Data(part)))))

        threading.Thread(target=serve, daemon=True).start()
        try:
            c = agentos.Client(a)
            assert c.read_to_end("/workspace/big") == blob
            assert [r.offset for r in seen] == list(range(0, 11_000, 1000))
        finally:
            a.close()
            b.close()


if __name__ == "__main__":
    unittest.main()
