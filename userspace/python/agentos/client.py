"""The blocking client: one reader thread routes answers to the waiting callers by request
id, and signal events to the handlers' own thread."""

from __future__ import annotations

import _thread
import itertools
import os
import queue
import signal as _posix
import socket
import sys
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from . import abi
from ._calls import Calls
from ._wire import decode
from .errors import AgentOSError, ConnectionClosed, NoKernel, ProtocolViolation, Refused, from_errno
from .frame import DEFAULT_MAX_FRAME, HEADER_LEN, FrameDecoder, encode_frame, read_frame

SDK_NAME = "agentos-python/0.1.0"

SignalHandler = Callable[[abi.Signal, str], Any]

_taken = threading.Lock()
_socket_taken = False


def agent_socket() -> socket.socket:
    """Takes the kernel socket named by ``AGENTOS_FD``. Once per process."""
    global _socket_taken
    raw = os.environ.get(abi.AGENT_FD_ENV)
    if raw is None:
        raise NoKernel(f"{abi.AGENT_FD_ENV} is not set: run the agent under agentos (agentctl run -- python3 agent.py)")
    try:
        fd = int(raw)
    except ValueError:
        raise NoKernel(f"{abi.AGENT_FD_ENV}={raw} is not a descriptor number") from None
    with _taken:
        if _socket_taken:
            raise NoKernel("this process already connected; share the existing client")
        try:
            sock = socket.socket(fileno=fd)
        except OSError as e:
            raise NoKernel(f"descriptor {fd}: {e}") from None
        _socket_taken = True
    sock.setblocking(True)
    return sock


def _recv_exact(sock: socket.socket) -> Callable[[int], Optional[bytes]]:
    def read_exact(n: int) -> Optional[bytes]:
        buf = bytearray()
        while len(buf) < n:
            chunk = sock.recv(min(n - len(buf), 1 << 20))
            if not chunk:
                if not buf and n == HEADER_LEN:
                    return None
                raise ConnectionClosed(f"stream ended inside a frame ({len(buf)} of {n} bytes)")
            buf += chunk
        return bytes(buf)

    return read_exact


def handshake(read_exact: Callable[[int], Optional[bytes]], send: Callable[[bytes], Any]) -> abi.Welcome:
    send(encode_frame(abi.AgentFrame.Hello(abi.Hello(abi.ABI_VERSION, SDK_NAME))))
    body = read_frame(read_exact, DEFAULT_MAX_FRAME)
    if body is None:
        raise ConnectionClosed("the kernel closed the socket during the handshake")
    frame = decode(abi.KernelFrame, body)
    if isinstance(frame, abi.KernelFrame.Welcome):
        return frame.welcome
    if isinstance(frame, abi.KernelFrame.Refused):
        raise Refused(from_errno(frame.errno))
    raise ProtocolViolation(f"expected Welcome, got {frame!r}")


class _Handlers:
    """Signal handlers, run on a dispatcher thread so a handler may itself make syscalls."""

    def __init__(self) -> None:
        self.map: Dict[abi.Signal, SignalHandler] = {}
        self.lock = threading.Lock()
        self.queue: "Optional[queue.Queue[Tuple[abi.Signal, str]]]" = None

    def register(self, sig: abi.Signal, fn: SignalHandler) -> None:
        if not isinstance(sig, abi.Signal):
            raise TypeError(f"signal: expected agentos.Signal, got {type(sig).__name__}")
        if not callable(fn):
            raise TypeError("handler: expected a callable taking (signal, reason)")
        posix = {abi.Signal.TERM: _posix.SIGTERM, abi.Signal.INT: _posix.SIGINT}.get(sig)
        if posix is not None:
            # The POSIX signal follows the kernel's event; the event carries it instead.
            _posix.signal(posix, lambda *_: None)
        with self.lock:
            self.map[sig] = fn
            if self.queue is None:
                self.queue = queue.Queue()
                threading.Thread(target=self._run, name="agentos-signals", daemon=True).start()

    def deliver(self, sig: abi.Signal, reason: str) -> None:
        with self.lock:
            q = self.queue
        if q is not None:
            q.put((sig, reason))

    def _run(self) -> None:
        assert self.queue is not None
        while True:
            sig, reason = self.queue.get()
            with self.lock:
                fn = self.map.get(sig)
            if fn is not None:
                try:
                    fn(sig, reason)
                except BaseException as e:  # a handler's failure must not end the dispatcher
                    if isinstance(e, SystemExit):
                        _flush_and_exit(e.code if isinstance(e.code, int) else 1)
                    print(f"agentos: signal handler for {sig.signame} raised {e!r}", file=sys.stderr, flush=True)


def _flush_and_exit(code: int) -> None:
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except Exception:
            pass
    os._exit(code)


class _Slot:
    """Where one call's answer lands: a plain lock, taken at birth and released by the reader
    once ``result`` is set (cheaper than a ``threading.Event``, whose every wait builds a
    ``Condition`` waiter)."""

    __slots__ = ("done", "result")

    def __init__(self) -> None:
        self.done = _thread.allocate_lock()
        self.done.acquire()
        self.result: Union[abi.Reply, abi.Errno, AgentOSError, None] = None

    def set(self, result: Union[abi.Reply, abi.Errno, AgentOSError]) -> None:
        self.result = result
        self.done.release()


#: What one answer frame needs beyond its payload: the kernel serves at most
#: ``max_frame - CHUNK_OVERHEAD`` bytes of file data per ``Read``/``ReadFd`` answer.
CHUNK_OVERHEAD = 4096


class Client(Calls):
    """A blocking connection to the kernel. Thread-safe: many threads may call at once, each
    call waits for its own answer (answers are matched by request id)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.welcome = handshake(_recv_exact(sock), sock.sendall)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._pending: Dict[int, _Slot] = {}
        self._closed: Optional[AgentOSError] = None
        self._handlers = _Handlers()
        threading.Thread(target=self._reader, name="agentos-reader", daemon=True).start()

    @classmethod
    def connect(cls) -> "Client":
        """Connects over the socket named by ``AGENTOS_FD`` and does the handshake."""
        return cls(agent_socket())

    @property
    def agent_id(self) -> abi.AgentId:
        return self.welcome.agent_id

    @property
    def max_frame(self) -> int:
        return self.welcome.limits.max_frame

    def read_to_end(self, path: str) -> bytes:
        """Reads a whole file of any size, one frame-sized chunk at a time (``Read`` by offset
        and length: a one-shot :meth:`read` of a file larger than one frame is refused with
        ``TooLarge``). Not atomic: a file changed meanwhile may be read torn."""
        chunk = max(self.max_frame - CHUNK_OVERHEAD, 1)
        out = bytearray()
        while True:
            part = self.read_at(path, len(out), chunk)
            out += part
            if len(part) < chunk:
                return bytes(out)

    def on_signal(self, sig: abi.Signal, handler: SignalHandler) -> None:
        """Runs ``handler(signal, reason)`` on the SDK's signal thread whenever the kernel
        sends ``sig``. For ``TERM``/``INT`` it also installs a Python ``signal.signal``
        handler (call it from the main thread) so the POSIX signal that follows the kernel's
        event does not end the process."""
        self._handlers.register(sig, handler)

    def exit(self, code: int = 0) -> None:
        """Announces the exit to the kernel, flushes stdout/stderr and ends the process
        (from any thread)."""
        try:
            self.announce_exit(code)
        except AgentOSError:
            pass
        _flush_and_exit(code)

    def _invoke(self, call: abi.Syscall, decode_reply: Callable[[abi.Reply], Any]) -> Any:
        if not isinstance(call, abi.Syscall):
            raise TypeError(f"expected an agentos.Syscall, got {type(call).__name__}")
        rid = next(self._ids)
        # Encoding checks types, ranges and the frame limit before anything is sent.
        data = encode_frame(self._request_frame(rid, call), self.max_frame)
        slot = _Slot()
        with self._lock:
            if self._closed is not None:
                raise self._closed
            self._pending[rid] = slot
        try:
            with self._write_lock:
                self._sock.sendall(data)
        except OSError as e:
            with self._lock:
                self._pending.pop(rid, None)
            raise ConnectionClosed(f"cannot send to the kernel: {e}") from None
        slot.done.acquire()
        result = slot.result
        if isinstance(result, AgentOSError):
            raise result
        if isinstance(result, abi.Errno):
            raise from_errno(result)
        assert isinstance(result, abi.Reply)
        return decode_reply(result)

    def _reader(self) -> None:
        # Buffered: one recv usually brings a whole answer (header and body), often several.
        sock, frames = self._sock, FrameDecoder(self.max_frame)
        err: AgentOSError = ConnectionClosed("the kernel closed the connection")
        try:
            while True:
                chunk = sock.recv(1 << 16)
                if not chunk:
                    if frames.buf:
                        err = ConnectionClosed(f"stream ended inside a frame ({len(frames.buf)} bytes buffered)")
                    break
                frames.push(chunk)
                body = frames.next_frame()
                while body is not None:
                    frame = decode(abi.KernelFrame, body)
                    if isinstance(frame, abi.KernelFrame.Response):
                        with self._lock:
                            slot = self._pending.pop(frame.response.id, None)
                        if slot is not None:
                            slot.set(frame.response.result)
                    elif isinstance(frame, abi.KernelFrame.Event):
                        ev = frame.event
                        if isinstance(ev, abi.Event.Signal):
                            self._handlers.deliver(ev.signal, ev.reason)
                    else:
                        raise ProtocolViolation(f"unexpected frame {frame!r}")
                    body = frames.next_frame()
        except AgentOSError as e:
            err = e
        except (OSError, ValueError) as e:
            err = ConnectionClosed(f"connection to the kernel failed: {e}")
        with self._lock:
            self._closed = err
            pending, self._pending = self._pending, {}
        for slot in pending.values():
            slot.set(err)
