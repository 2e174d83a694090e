"""The asyncio client: any number of calls in flight on one connection."""

from __future__ import annotations

import asyncio
import itertools
import socket
from typing import Any, Callable, Dict, Optional

from . import abi
from ._calls import Calls
from ._wire import decode
from .client import SDK_NAME, SignalHandler, _Handlers, agent_socket
from .errors import AgentOSError, ConnectionClosed, ProtocolViolation, Refused, from_errno
from .frame import DEFAULT_MAX_FRAME, HEADER_LEN, body_len, encode_frame


class AsyncClient(Calls):
    """Like :class:`agentos.Client`, but every syscall method returns an awaitable."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, welcome: abi.Welcome) -> None:
        self._reader, self._writer, self.welcome = reader, writer, welcome
        self._ids = itertools.count(1)
        self._pending: Dict[int, "asyncio.Future[Any]"] = {}
        self._closed: Optional[AgentOSError] = None
        self._handlers = _Handlers()
        self._task = asyncio.get_running_loop().create_task(self._read_loop())

    @classmethod
    async def connect(cls, sock: Optional[socket.socket] = None) -> "AsyncClient":
        """Connects over ``AGENTOS_FD`` (or ``sock``) and does the handshake."""
        sock = sock if sock is not None else agent_socket()
        sock.setblocking(False)
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        writer.write(encode_frame(abi.AgentFrame.Hello(abi.Hello(abi.ABI_VERSION, SDK_NAME))))
        await writer.drain()
        body = await _read_body(reader, DEFAULT_MAX_FRAME)
        if body is None:
            raise ConnectionClosed("the kernel closed the socket during the handshake")
        frame = decode(abi.KernelFrame, body)
        if isinstance(frame, abi.KernelFrame.Refused):
            raise Refused(from_errno(frame.errno))
        if not isinstance(frame, abi.KernelFrame.Welcome):
            raise ProtocolViolation(f"expected Welcome, got {frame!r}")
        return cls(reader, writer, frame.welcome)

    @property
    def agent_id(self) -> abi.AgentId:
        return self.welcome.agent_id

    def on_signal(self, sig: abi.Signal, handler: SignalHandler) -> None:
        """As :meth:`agentos.Client.on_signal`; the handler runs on the SDK's signal thread."""
        self._handlers.register(sig, handler)

    def _invoke(self, call: abi.Syscall, decode_reply: Callable[[abi.Reply], Any]) -> Any:
        if not isinstance(call, abi.Syscall):
            raise TypeError(f"expected an agentos.Syscall, got {type(call).__name__}")
        rid = next(self._ids)
        # Raised here, synchronously, before anything is sent.
        data = encode_frame(self._request_frame(rid, call), self.welcome.limits.max_frame)
        if self._closed is not None:
            raise self._closed
        fut: "asyncio.Future[Any]" = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        self._writer.write(data)
        return self._wait(fut, decode_reply)

    async def _wait(self, fut: "asyncio.Future[Any]", decode_reply: Callable[[abi.Reply], Any]) -> Any:
        await self._writer.drain()
        result = await fut
        if isinstance(result, abi.Errno):
            raise from_errno(result)
        return decode_reply(result)

    async def close(self) -> None:
        self._task.cancel()
        self._writer.close()

    async def _read_loop(self) -> None:
        err: AgentOSError = ConnectionClosed("the kernel closed the connection")
        try:
            while True:
                body = await _read_body(self._reader, self.welcome.limits.max_frame)
                if body is None:
                    break
                frame = decode(abi.KernelFrame, body)
                if isinstance(frame, abi.KernelFrame.Response):
                    fut = self._pending.pop(frame.response.id, None)
                    if fut is not None and not fut.done():
                        fut.set_result(frame.response.result)
                elif isinstance(frame, abi.KernelFrame.Event) and isinstance(frame.event, abi.Event.Signal):
                    self._handlers.deliver(frame.event.signal, frame.event.reason)
        except AgentOSError as e:
            err = e
        except (OSError, ValueError, asyncio.IncompleteReadError) as e:
            err = ConnectionClosed(f"connection to the kernel failed: {e}")
        self._closed = err
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(err)


async def _read_body(reader: asyncio.StreamReader, max_frame: int) -> Optional[bytes]:
    try:
        header = await reader.readexactly(HEADER_LEN)
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise ConnectionClosed("stream ended inside a frame header") from None
    n = body_len(header, max_frame)  # checked before the body is read
    return await reader.readexactly(n) if n else b""
