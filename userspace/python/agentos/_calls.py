"""One method per syscall, shared by the blocking and the asyncio client: each builds the
request and names the reply it expects, so the two flavours cannot drift apart. On the
blocking :class:`agentos.Client` a method returns the value; on :class:`agentos.AsyncClient`
it returns an awaitable of it."""

from __future__ import annotations

import json

from typing import Any, Callable, List, Optional, Sequence, TypeVar, Union

from . import abi
from .errors import ProtocolViolation

T = TypeVar("T")


def _expect(call: str, variant: type, get: Callable[[Any], T]) -> Callable[[abi.Reply], T]:
    def read(reply: abi.Reply) -> T:
        if not isinstance(reply, variant):
            raise ProtocolViolation(f"{call} answered with {reply!r}")
        return get(reply)

    return read


_done = _expect("call", abi.Reply.Done, lambda r: None)
_data = _expect("read", abi.Reply.Data, lambda r: r.data)
_written = _expect("write", abi.Reply.Written, lambda r: r.bytes)
_opened = _expect("open", abi.Reply.Opened, lambda r: r.fd)
_entries = _expect("list", abi.Reply.Entries, lambda r: r.entries)
_stat = _expect("stat", abi.Reply.Stat, lambda r: r.stat)
_exec = _expect("exec", abi.Reply.Exec, lambda r: r.output)
_call = _expect("call", abi.Reply.CallResult, lambda r: r.result_json)
_message = _expect("recv", abi.Reply.Message, lambda r: r.message)
_decision = _expect("check_policy", abi.Reply.Decision, lambda r: r.decision)
_checkpoint = _expect("checkpoint", abi.Reply.Checkpoint, lambda r: r.number)
_tools = _expect("list_tools", abi.Reply.Tools, lambda r: r.tools)
_tool_result = _expect("call_tool", abi.Reply.CallResult, lambda r: json.loads(r.result_json))


def _to_bytes(what: str, data: Union[bytes, bytearray, memoryview, str]) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"{what}: expected bytes or str, got {type(data).__name__}")


class Calls:
    """The typed syscalls. Subclasses provide ``_invoke(call, decode)`` and send each call as
    ``_request_frame(id, call)``."""

    _trace: Optional[abi.TraceContext] = None

    def set_traceparent(self, traceparent: Optional[str]) -> None:
        """Sends later calls in the W3C trace context ``traceparent``
        (``00-<trace id>-<span id>-<flags>``, e.g. the current span of the agent's own
        OpenTelemetry tracer): with a kernel that exports traces, its span of each call is a
        child of that span, so the agent's trace and the kernel's are one. ``None`` stops it.
        Raises ``ValueError`` for a malformed value."""
        self._trace = None if traceparent is None else abi.TraceContext.parse(traceparent)

    def _request_frame(self, rid: int, call: abi.Syscall) -> abi.AgentFrame:
        request = abi.Request(rid, call)
        if self._trace is None:
            return abi.AgentFrame.Request(request)
        return abi.AgentFrame.TracedRequest(request, self._trace)

    def _invoke(self, call: abi.Syscall, decode: Callable[[abi.Reply], Any]) -> Any:  # pragma: no cover
        raise NotImplementedError

    def syscall(self, call: abi.Syscall) -> Any:
        """Sends any syscall; returns its :class:`abi.Reply`."""
        return self._invoke(call, lambda r: r)

    def read(self, path: str) -> bytes:
        """Reads a whole file."""
        return self._invoke(abi.Syscall.Read(path, 0, None), _data)

    def read_text(self, path: str) -> Any:
        """Reads a whole file as UTF-8 text (blocking client only)."""
        return self.read(path).decode("utf-8")

    def read_at(self, path: str, offset: int, length: int) -> bytes:
        """Reads up to ``length`` bytes at ``offset``."""
        return self._invoke(abi.Syscall.Read(path, offset, length), _data)

    def write(self, path: str, data: Union[bytes, str]) -> int:
        """Replaces a file's contents, creating it if needed. Returns the bytes written."""
        return self._invoke(abi.Syscall.Write(path, _to_bytes("data", data), abi.WriteMode.TRUNCATE), _written)

    def append(self, path: str, data: Union[bytes, str]) -> int:
        """Appends to a file, creating it if needed."""
        return self._invoke(abi.Syscall.Write(path, _to_bytes("data", data), abi.WriteMode.APPEND), _written)

    def create_new(self, path: str, data: Union[bytes, str]) -> int:
        """Creates a new file; :class:`AlreadyExists` if it exists."""
        return self._invoke(abi.Syscall.Write(path, _to_bytes("data", data), abi.WriteMode.CREATE_NEW), _written)

    def open(self, path: str, mode: abi.OpenMode) -> int:
        """Opens a file for streaming; returns its descriptor."""
        return self._invoke(abi.Syscall.Open(path, mode), _opened)

    def close(self, fd: int) -> None:
        return self._invoke(abi.Syscall.Close(fd), _done)

    def read_fd(self, fd: int, length: int) -> bytes:
        return self._invoke(abi.Syscall.ReadFd(fd, length), _data)

    def write_fd(self, fd: int, data: Union[bytes, str]) -> int:
        return self._invoke(abi.Syscall.WriteFd(fd, _to_bytes("data", data)), _written)

    def list(self, path: str) -> List[abi.DirEntry]:
        """Lists a directory."""
        return self._invoke(abi.Syscall.List(path), _entries)

    def stat(self, path: str) -> abi.FileStat:
        return self._invoke(abi.Syscall.Stat(path), _stat)

    def unlink(self, path: str) -> None:
        return self._invoke(abi.Syscall.Unlink(path), _done)

    def rename(self, src: str, dst: str) -> None:
        """Moves the file at ``src`` to ``dst`` within one mount (replacing a file at ``dst``).
        Action ``file_write``, judged on both paths: refused when the policy denies either."""
        return self._invoke(abi.Syscall.Rename(src, dst), _done)

    def exec(self, argv: Sequence[str], stdin: Union[bytes, str] = b"", cwd: Optional[str] = None,
             timeout_ms: Optional[int] = None) -> abi.ExecOutput:
        """Runs a tool in its own sandbox (action ``code_execution``)."""
        if isinstance(argv, (str, bytes)):
            raise TypeError("argv: expected a list of str, got a single string")
        return self._invoke(abi.Syscall.Exec(list(argv), _to_bytes("stdin", stdin), cwd, timeout_ms), _exec)

    def call(self, action: str, params_json: str = "{}") -> str:
        """Performs a named policy action (``api_call``, …) with JSON params; returns JSON."""
        return self._invoke(abi.Syscall.Call(action, params_json), _call)

    def list_tools(self) -> List[abi.ToolInfo]:
        """The tools of the kernel's MCP servers this agent's policy could let it call."""
        return self._invoke(abi.Syscall.ListTools(), _tools)

    def call_tool(self, server: str, tool: str, args: Union[dict, str, None] = None) -> Any:
        """Calls MCP tool ``tool`` of ``server`` with ``args`` (a dict, or its JSON text):
        action ``mcp_tool`` on ``SERVER/TOOL ARGS``. Returns the tool's result (an MCP
        ``CallToolResult``: ``content``, ``isError``, …) as a dict."""
        if "/" in server or "/" in tool:
            raise ValueError("server and tool names have no `/`")
        if args is None:
            params = "{}"
        elif isinstance(args, str):
            params = args
        elif isinstance(args, dict):
            params = json.dumps(args)
        else:
            raise TypeError(f"args: expected a dict or JSON text, got {type(args).__name__}")
        return self._invoke(abi.Syscall.Call(f"{server}/{tool}", params), _tool_result)

    def send(self, to: int, payload: Union[bytes, str]) -> None:
        """Sends a message to another agent's inbox; ``Busy`` when it is full, ``NotFound``
        when the agent is unknown or has ended."""
        return self._invoke(abi.Syscall.Send(to, _to_bytes("payload", payload)), _done)

    def recv(self, timeout_ms: Optional[int] = None) -> abi.Message:
        """Takes the oldest message from this agent's inbox, waiting up to ``timeout_ms``
        (0 polls, ``None`` waits until one arrives); ``TimedOut`` when none came."""
        return self._invoke(abi.Syscall.Recv(timeout_ms), _message)

    def signal(self, target: int, signal: abi.Signal) -> None:
        """Sends an agentos signal to another agent."""
        return self._invoke(abi.Syscall.Signal(target, signal), _done)

    def check_policy(self, action: str, resource: str) -> abi.Decision:
        """Asks how the policy would decide an action. Never a violation."""
        return self._invoke(abi.Syscall.CheckPolicy(action, resource), _decision)

    def checkpoint(self) -> int:
        return self._invoke(abi.Syscall.Checkpoint(), _checkpoint)

    def announce_exit(self, code: int) -> None:
        """Tells the kernel the agent is exiting with ``code`` (the process still has to exit)."""
        return self._invoke(abi.Syscall.Exit(code), _done)
