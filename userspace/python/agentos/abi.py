"""Every type of the agentos ABI (``syscalls/src/{abi,errno,signal,control}.rs``), as Python
dataclasses with the exact postcard encoding of the Rust types.

Enums with data are a base class (``Syscall``) whose variants are reachable as attributes
(``Syscall.Read``) and, for type checkers, as module names (``SyscallRead``). Variant order
is the Rust order: it is the wire tag. Enums without data (``Signal``, ``WriteMode``, …) are
:class:`enum.Enum` members whose value is their tag.
"""

from __future__ import annotations

from dataclasses import field
from typing import List, Optional, Tuple, Union

from ._postcard import BOOL, BYTES, DIGEST, I32, SPAN_ID, STR, TRACE_ID, U8, U16, U32, U64, Opt, Res, Seq, Tup
from ._wire import UnitEnum, Wire, WireEnum, decode, encode, struct, variant

ABI_VERSION = 4
"""The ABI version this SDK speaks (``syscalls::ABI_VERSION``)."""
DEFAULT_MAX_FRAME = 16 << 20
AGENT_FD_ENV = "AGENTOS_FD"
AGENT_ID_ENV = "AGENTOS_AGENT_ID"


class AgentId(int):
    """An agent's id (a ``u64`` on the wire)."""

    def __repr__(self) -> str:
        return f"AgentId({int(self)})"

    def __str__(self) -> str:
        return int.__repr__(self)


class _AgentIdCodec(type(U64)):  # type: ignore[misc]
    def decode(self, r):  # type: ignore[no-untyped-def]
        return AgentId(super().decode(r))


AGENT_ID = _AgentIdCodec(64)


# ---- signal.rs -------------------------------------------------------------------------------


class Signal(UnitEnum):
    """An agentos signal. ``.number`` is its number, ``.signame`` its name (``SIGTERM``)."""

    INT = 0
    KILL = 1
    USR1 = 2
    TERM = 3
    CONT = 4
    STOP = 5
    POLICY = 6
    TRUST = 7

    @property
    def number(self) -> int:
        return _SIGNAL_NUMBERS[self.value]

    @property
    def signame(self) -> str:
        return "SIG" + self.name

    @property
    def maskable(self) -> bool:
        return self not in (Signal.KILL, Signal.POLICY, Signal.TRUST)

    @classmethod
    def parse(cls, s: Union[str, int]) -> "Signal":
        """Accepts ``SIGTERM``, ``TERM``, ``term``, ``15`` and ``15`` as an int."""
        text = str(s).strip()
        if text.isdigit():
            for sig in cls:
                if sig.number == int(text):
                    return sig
        else:
            bare = text.upper()
            bare = bare[3:] if bare.startswith("SIG") else bare
            if bare in cls.__members__:
                return cls[bare]
        raise ValueError(f"unknown signal `{s}` (known: SIGINT 2, SIGKILL 9, SIGUSR1 10, SIGTERM 15, SIGCONT 18, SIGSTOP 19, SIGPOLICY 64, SIGTRUST 65)")


_SIGNAL_NUMBERS = (2, 9, 10, 15, 18, 19, 64, 65)


# ---- errno.rs --------------------------------------------------------------------------------


class Errno(WireEnum):
    """Why the kernel refused or failed a syscall (the wire value; the SDK raises the matching
    exception from :mod:`agentos.errors`)."""

    @property
    def kind(self) -> str:
        return type(self).__qualname__.split(".")[-1]

    @property
    def posix(self) -> int:
        return POSIX_ERRNO[self.kind]


@variant(Errno, "PermissionDenied", STR, STR)
class ErrnoPermissionDenied(Errno):
    rule: str
    reason: str


@variant(Errno, "NotFound", STR)
class ErrnoNotFound(Errno):
    what: str


@variant(Errno, "InvalidArgument", STR)
class ErrnoInvalidArgument(Errno):
    reason: str


@variant(Errno, "RateLimited", U64)
class ErrnoRateLimited(Errno):
    retry_after_ms: int


@variant(Errno, "ApprovalDenied")
class ErrnoApprovalDenied(Errno):
    pass


@variant(Errno, "ApprovalTimeout")
class ErrnoApprovalTimeout(Errno):
    pass


@variant(Errno, "QuotaExceeded", STR)
class ErrnoQuotaExceeded(Errno):
    what: str


@variant(Errno, "TooLarge", U64, U64)
class ErrnoTooLarge(Errno):
    size: int
    limit: int


@variant(Errno, "ProtocolViolation", STR)
class ErrnoProtocolViolation(Errno):
    reason: str


@variant(Errno, "Unsupported", STR)
class ErrnoUnsupported(Errno):
    what: str


@variant(Errno, "Internal", STR)
class ErrnoInternal(Errno):
    reason: str


@variant(Errno, "Busy", STR)
class ErrnoBusy(Errno):
    what: str


@variant(Errno, "BadDescriptor", U32)
class ErrnoBadDescriptor(Errno):
    fd: int


@variant(Errno, "IsDirectory", STR)
class ErrnoIsDirectory(Errno):
    path: str


@variant(Errno, "NotDirectory", STR)
class ErrnoNotDirectory(Errno):
    path: str


@variant(Errno, "AlreadyExists", STR)
class ErrnoAlreadyExists(Errno):
    path: str


@variant(Errno, "TimedOut", U64)
class ErrnoTimedOut(Errno):
    after_ms: int


@variant(Errno, "Interrupted", STR)
class ErrnoInterrupted(Errno):
    reason: str


POSIX_ERRNO = {
    "PermissionDenied": 13,  # EACCES
    "NotFound": 2,  # ENOENT
    "InvalidArgument": 22,  # EINVAL
    "RateLimited": 11,  # EAGAIN
    "ApprovalDenied": 125,  # ECANCELED
    "ApprovalTimeout": 110,  # ETIMEDOUT
    "QuotaExceeded": 122,  # EDQUOT
    "TooLarge": 27,  # EFBIG
    "ProtocolViolation": 71,  # EPROTO
    "Unsupported": 38,  # ENOSYS
    "Internal": 5,  # EIO
    "Busy": 16,  # EBUSY
    "BadDescriptor": 9,  # EBADF
    "IsDirectory": 21,  # EISDIR
    "NotDirectory": 20,  # ENOTDIR
    "AlreadyExists": 17,  # EEXIST
    "TimedOut": 110,  # ETIMEDOUT
    "Interrupted": 4,  # EINTR
}
"""``Errno::posix``: the stable POSIX errno of each variant."""


# ---- abi.rs ----------------------------------------------------------------------------------


@struct(U16, STR)
class Hello(Wire):
    abi: int
    sdk: str


@struct(U32, U32)
class Limits(Wire):
    max_frame: int
    max_in_flight: int


@struct(U16, AGENT_ID, Limits, DIGEST)
class Welcome(Wire):
    abi: int
    agent_id: AgentId
    limits: Limits
    policy_digest: bytes


class WriteMode(UnitEnum):
    TRUNCATE = 0
    APPEND = 1
    CREATE_NEW = 2


class OpenMode(WireEnum):
    pass


@variant(OpenMode, "Read")
class OpenModeRead(OpenMode):
    pass


@variant(OpenMode, "Write", WriteMode)
class OpenModeWrite(OpenMode):
    mode: WriteMode


class Syscall(WireEnum):
    """Every syscall an agent can make, in wire order."""

    @property
    def name(self) -> str:
        return SYSCALL_NAMES[self._tag]


@variant(Syscall, "Read", STR, U64, Opt(U64))
class SyscallRead(Syscall):
    path: str
    offset: int = 0
    len: Optional[int] = None


@variant(Syscall, "Write", STR, BYTES, WriteMode)
class SyscallWrite(Syscall):
    path: str
    data: bytes
    mode: WriteMode = WriteMode.TRUNCATE


@variant(Syscall, "Open", STR, OpenMode)
class SyscallOpen(Syscall):
    path: str
    mode: OpenMode


@variant(Syscall, "Close", U32)
class SyscallClose(Syscall):
    fd: int


@variant(Syscall, "List", STR)
class SyscallList(Syscall):
    path: str


@variant(Syscall, "Stat", STR)
class SyscallStat(Syscall):
    path: str


@variant(Syscall, "Unlink", STR)
class SyscallUnlink(Syscall):
    path: str


@variant(Syscall, "Exec", Seq(STR), BYTES, Opt(STR), Opt(U64))
class SyscallExec(Syscall):
    argv: List[str]
    stdin: bytes = b""
    cwd: Optional[str] = None
    timeout_ms: Optional[int] = None


@variant(Syscall, "Call", STR, STR)
class SyscallCall(Syscall):
    action: str
    params_json: str


@variant(Syscall, "Send", AGENT_ID, BYTES)
class SyscallSend(Syscall):
    to: int
    payload: bytes


@variant(Syscall, "Recv", Opt(U64))
class SyscallRecv(Syscall):
    timeout_ms: Optional[int] = None


@variant(Syscall, "Signal", AGENT_ID, Signal)
class SyscallSignal(Syscall):
    target: int
    signal: Signal


@variant(Syscall, "CheckPolicy", STR, STR)
class SyscallCheckPolicy(Syscall):
    action: str
    resource: str


@variant(Syscall, "Checkpoint")
class SyscallCheckpoint(Syscall):
    pass


@variant(Syscall, "Exit", I32)
class SyscallExit(Syscall):
    code: int


@variant(Syscall, "ReadFd", U32, U32)
class SyscallReadFd(Syscall):
    fd: int
    len: int


@variant(Syscall, "WriteFd", U32, BYTES)
class SyscallWriteFd(Syscall):
    fd: int
    data: bytes


@variant(Syscall, "Rename", STR, STR)
class SyscallRename(Syscall):
    from_: str
    to: str


@variant(Syscall, "ListTools")
class SyscallListTools(Syscall):
    pass


SYSCALL_NAMES = (
    "read", "write", "open", "close", "list", "stat", "unlink", "exec", "call", "send",
    "recv", "signal", "check_policy", "checkpoint", "exit", "read_fd", "write_fd",
    "rename", "list_tools",
)
SYSCALL_COUNT = len(SYSCALL_NAMES)
assert len(Syscall._variants) == SYSCALL_COUNT


class FileKind(UnitEnum):
    FILE = 0
    DIRECTORY = 1


@struct(STR, FileKind, U64)
class DirEntry(Wire):
    name: str
    kind: FileKind
    size: int


@struct(FileKind, U64, U64, BOOL)
class FileStat(Wire):
    kind: FileKind
    size: int
    modified_ms: int
    read_only: bool


@struct(I32, BYTES, BYTES, U64, BOOL, BOOL)
class ExecOutput(Wire):
    status: int
    stdout: bytes
    stderr: bytes
    duration_ms: int
    truncated: bool
    timed_out: bool


@struct(AGENT_ID, U64, BYTES)
class Message(Wire):
    from_: AgentId
    seq: int
    payload: bytes


@struct(BOOL, STR, STR)
class Decision(Wire):
    allowed: bool
    rule: str
    reason: str


class Reply(WireEnum):
    """A successful syscall's value."""


@variant(Reply, "Done")
class ReplyDone(Reply):
    pass


@variant(Reply, "Data", BYTES)
class ReplyData(Reply):
    data: bytes


@variant(Reply, "Written", U64)
class ReplyWritten(Reply):
    bytes: int


@variant(Reply, "Opened", U32)
class ReplyOpened(Reply):
    fd: int


@variant(Reply, "Entries", Seq(DirEntry))
class ReplyEntries(Reply):
    entries: List[DirEntry]


@variant(Reply, "Stat", FileStat)
class ReplyStat(Reply):
    stat: FileStat


@variant(Reply, "Exec", ExecOutput)
class ReplyExec(Reply):
    output: ExecOutput


@variant(Reply, "CallResult", STR)
class ReplyCallResult(Reply):
    result_json: str


@variant(Reply, "Message", Message)
class ReplyMessage(Reply):
    message: Message


@variant(Reply, "Decision", Decision)
class ReplyDecision(Reply):
    decision: Decision


@variant(Reply, "Checkpoint", U64)
class ReplyCheckpoint(Reply):
    number: int


@struct(STR, STR, STR, STR)
class ToolInfo(Wire):
    """One tool of an MCP server, as ``ListTools`` shows it."""

    server: str
    name: str
    description: str
    input_schema_json: str


@variant(Reply, "Tools", Seq(ToolInfo))
class ReplyTools(Reply):
    tools: List[ToolInfo]


@struct(U64, Syscall)
class Request(Wire):
    id: int
    call: Syscall


@struct(U64, Res(Reply, Errno))
class Response(Wire):
    """``result`` is a :class:`Reply` (``Ok``) or an :class:`Errno` (``Err``)."""

    id: int
    result: Union[Reply, Errno]


class Event(WireEnum):
    """Something the kernel tells an agent without being asked."""


@variant(Event, "Signal", Signal, STR)
class EventSignal(Event):
    signal: Signal
    reason: str


class LayerStatus(WireEnum):
    pass


@variant(LayerStatus, "Active", STR)
class LayerStatusActive(LayerStatus):
    detail: str


@variant(LayerStatus, "Partial", STR)
class LayerStatusPartial(LayerStatus):
    detail: str


@variant(LayerStatus, "Missing", STR)
class LayerStatusMissing(LayerStatus):
    detail: str


@struct(STR, LayerStatus)
class Layer(Wire):
    name: str
    status: LayerStatus


@struct(Seq(Layer))
class JailReport(Wire):
    layers: List[Layer]


class AgentFrame(WireEnum):
    """A frame from the agent's side of the socket."""


@variant(AgentFrame, "Hello", Hello)
class AgentFrameHello(AgentFrame):
    hello: Hello


@variant(AgentFrame, "Request", Request)
class AgentFrameRequest(AgentFrame):
    request: Request


@variant(AgentFrame, "JailReport", JailReport)
class AgentFrameJailReport(AgentFrame):
    report: JailReport


@variant(AgentFrame, "SandboxListener")
class AgentFrameSandboxListener(AgentFrame):
    """Sent only by the launcher; the SDK never sends it."""


@struct(TRACE_ID, SPAN_ID, U8)
class TraceContext(Wire):
    """A W3C trace context (``traceparent`` version 00) as bytes: the trace and the span a
    request was made in."""

    trace_id: bytes
    span_id: bytes
    flags: int

    @classmethod
    def parse(cls, traceparent: str) -> "TraceContext":
        """Parses ``00-<32 hex>-<16 hex>-<2 hex>`` (lower-case; all-zero ids are invalid).
        Raises ``ValueError`` naming what is wrong."""
        parts = traceparent.strip().split("-")
        if len(parts) != 4:
            raise ValueError(f"{traceparent!r} is not a traceparent: expected 00-<32 hex>-<16 hex>-<2 hex>")
        version, trace, span, flags = parts
        if version != "00":
            raise ValueError(f"traceparent version {version!r} is not supported (only 00)")

        def hexbytes(s: str, n: int, what: str) -> bytes:
            if len(s) != 2 * n or any(c not in "0123456789abcdef" for c in s):
                raise ValueError(f"traceparent {what} {s!r} is not {2 * n} lower-case hex digits")
            return bytes.fromhex(s)

        t = cls(hexbytes(trace, 16, "trace id"), hexbytes(span, 8, "span id"), hexbytes(flags, 1, "flags")[0])
        if t.trace_id == bytes(16) or t.span_id == bytes(8):
            raise ValueError("traceparent has an all-zero trace id or span id")
        return t

    def traceparent(self) -> str:
        """The ``traceparent`` header value."""
        return f"00-{self.trace_id.hex()}-{self.span_id.hex()}-{self.flags:02x}"


@variant(AgentFrame, "TracedRequest", Request, TraceContext)
class AgentFrameTracedRequest(AgentFrame):
    """A request made inside a span of the agent's own trace (ABI 4)."""

    request: Request
    trace: TraceContext


@variant(AgentFrame, "EgressListener")
class AgentFrameEgressListener(AgentFrame):
    """Sent only by the launcher, with the agent's egress proxy listener; the SDK never sends it."""


@variant(AgentFrame, "ToolExit", I32)
class AgentFrameToolExit(AgentFrame):
    """Sent only by a tool jail's init: the tool's exit status; the SDK never sends it."""

    status: int


class KernelFrame(WireEnum):
    """A frame from the kernel."""


@variant(KernelFrame, "Welcome", Welcome)
class KernelFrameWelcome(KernelFrame):
    welcome: Welcome


@variant(KernelFrame, "Refused", Errno)
class KernelFrameRefused(KernelFrame):
    errno: Errno


@variant(KernelFrame, "Response", Response)
class KernelFrameResponse(KernelFrame):
    response: Response


@variant(KernelFrame, "Event", Event)
class KernelFrameEvent(KernelFrame):
    event: Event


# ---- control.rs ------------------------------------------------------------------------------


class AgentRef(WireEnum):
    pass


@variant(AgentRef, "Id", AGENT_ID)
class AgentRefId(AgentRef):
    id: AgentId


@variant(AgentRef, "Name", STR)
class AgentRefName(AgentRef):
    name: str


@struct(STR, STR)
class PolicySource(Wire):
    path: str
    text: str


@struct(Opt(STR), PolicySource, Opt(STR), STR, Seq(STR), Seq(Tup(STR, STR)), Seq(STR))
class SpawnRequest(Wire):
    name: Optional[str]
    policy: PolicySource
    workspace: Optional[str]
    program: str
    args: List[str]
    env: List[Tuple[str, str]]
    extra_read_only: List[str]


class ControlRequest(WireEnum):
    pass


@variant(ControlRequest, "Status")
class ControlRequestStatus(ControlRequest):
    pass


@variant(ControlRequest, "Spawn", SpawnRequest)
class ControlRequestSpawn(ControlRequest):
    spawn: SpawnRequest


@variant(ControlRequest, "Ps")
class ControlRequestPs(ControlRequest):
    pass


@variant(ControlRequest, "Wait", AgentRef)
class ControlRequestWait(ControlRequest):
    agent: AgentRef


@variant(ControlRequest, "Signal", AgentRef, Signal)
class ControlRequestSignal(ControlRequest):
    agent: AgentRef
    signal: Signal


@variant(ControlRequest, "Logs", AgentRef, BOOL)
class ControlRequestLogs(ControlRequest):
    agent: AgentRef
    follow: bool


@variant(ControlRequest, "Shutdown")
class ControlRequestShutdown(ControlRequest):
    pass


@variant(ControlRequest, "Inspect", AgentRef)
class ControlRequestInspect(ControlRequest):
    agent: AgentRef


@variant(ControlRequest, "Approvals")
class ControlRequestApprovals(ControlRequest):
    pass


@variant(ControlRequest, "Approve", U64)
class ControlRequestApprove(ControlRequest):
    id: int


@variant(ControlRequest, "Deny", U64)
class ControlRequestDeny(ControlRequest):
    id: int


@variant(ControlRequest, "ReloadPolicy", AgentRef, PolicySource)
class ControlRequestReloadPolicy(ControlRequest):
    agent: AgentRef
    policy: PolicySource


@variant(ControlRequest, "SpawnRestored", SpawnRequest, AGENT_ID, Opt(U64))
class ControlRequestSpawnRestored(ControlRequest):
    spawn: SpawnRequest
    from_: AgentId
    checkpoint: Optional[int]


@struct(U64, BYTES, DIGEST)
class PayloadPreview(Wire):
    """A parked call's payload: full size, first bytes (raw), blake3 of the whole (ABI 3)."""

    bytes: int
    head: bytes
    blake3: bytes


@struct(U64, AGENT_ID, STR, STR, U64, STR, Opt(STR), Opt(PayloadPreview))
class ApprovalInfo(Wire):
    id: int
    agent: AgentId
    action: str
    resource: str
    age_ms: int
    rule: str
    agent_name: Optional[str] = None
    payload: Optional[PayloadPreview] = None


@struct(U32, Opt(U64), Opt(AGENT_ID))
class ApprovalQuery(Wire):
    limit: int
    after: Optional[int]
    agent: Optional[AgentId]


@variant(ControlRequest, "ApprovalsPage", ApprovalQuery)
class ControlRequestApprovalsPage(ControlRequest):
    query: ApprovalQuery


@variant(ControlRequest, "Forget", Seq(AgentRef))
class ControlRequestForget(ControlRequest):
    agents: List[AgentRef]


@variant(ControlRequest, "Prune", Opt(U64))
class ControlRequestPrune(ControlRequest):
    older_than_ms: Optional[int]


@struct(AGENT_ID, U32, U32, Opt(U64))
class ApprovalCount(Wire):
    agent: AgentId
    shown: int
    matching: int
    last_shown: Optional[int]


@struct(Seq(ApprovalInfo), Seq(ApprovalCount), U32)
class ApprovalPage(Wire):
    approvals: List[ApprovalInfo]
    agents: List[ApprovalCount]
    more: int


class AgentState(UnitEnum):
    STARTING = 0
    RUNNING = 1
    STOPPED = 2
    EXITED = 3
    AWAITING_APPROVAL = 4


class ExitStatus(WireEnum):
    pass


@variant(ExitStatus, "Code", I32)
class ExitStatusCode(ExitStatus):
    code: int


@variant(ExitStatus, "PosixSignal", I32)
class ExitStatusPosixSignal(ExitStatus):
    signal: int


@variant(ExitStatus, "Killed", Signal, STR)
class ExitStatusKilled(ExitStatus):
    signal: Signal
    reason: str


@variant(ExitStatus, "SandboxFailed", STR)
class ExitStatusSandboxFailed(ExitStatus):
    reason: str


@struct(U64, U64, U64, U64, U64, U64, U64, U64)
class AgentCounters(Wire):
    syscalls: int = 0
    allowed: int = 0
    denied: int = 0
    signals: int = 0
    parked: int = 0
    violations: int = 0
    sandbox_denied: int = 0
    awaiting_approval: int = 0


class DenialKind(UnitEnum):
    REFUSED = 0
    ALLOWED = 1
    SANDBOX = 2


@struct(DenialKind, STR, STR, STR, STR, U64)
class Denial(Wire):
    """One kind of refusal of an agent and how often it happened (ABI 3)."""

    kind: DenialKind
    action: str
    resource: str
    rule: str
    reason: str
    count: int


@struct(Seq(Denial), U64)
class DenialSummary(Wire):
    top: List[Denial]
    total: int = 0


@struct(U64, U64)
class AgentUsage(Wire):
    """What an agent's cgroup measures (ABI 2)."""

    memory_bytes: int = 0
    pids: int = 0


@struct(AGENT_ID, Opt(STR), AgentState, Opt(U32), STR, Seq(STR), U64, Opt(U64), AgentCounters,
        Opt(ExitStatus), STR, DIGEST, STR, Opt(JailReport), Opt(AgentUsage), DenialSummary)
class AgentInfo(Wire):
    id: AgentId
    name: Optional[str]
    state: AgentState
    pid: Optional[int]
    program: str
    args: List[str]
    started_ms: int
    first_syscall_us: Optional[int]
    counters: AgentCounters
    exit: Optional[ExitStatus]
    policy_path: str
    policy_digest: bytes
    log_path: str
    jail: Optional[JailReport]
    usage: Optional[AgentUsage] = None
    denials: DenialSummary = field(default_factory=lambda: DenialSummary([], 0))


@struct(U32, U32, STR, U16, STR, STR, U64, U32, U32, Seq(Layer), Opt(STR), Seq(STR), Opt(STR), Opt(STR))
class KernelStatus(Wire):
    pid: int
    uid: int
    version: str
    abi: int
    state_dir: str
    recorder_dir: str
    started_ms: int
    agents_running: int
    agents_total: int
    sandbox: List[Layer]
    log_path: Optional[str] = None
    health: List[str] = field(default_factory=list)
    metrics_url: Optional[str] = None
    otlp_endpoint: Optional[str] = None


class ControlErrorKind(UnitEnum):
    FAILED = 0
    USAGE = 1
    DENIED = 2
    NOT_FOUND = 3


@struct(ControlErrorKind, STR, STR)
class ControlError(Wire):
    kind: ControlErrorKind
    message: str
    hint: str


class ControlResponse(WireEnum):
    pass


@variant(ControlResponse, "Status", KernelStatus)
class ControlResponseStatus(ControlResponse):
    status: KernelStatus


@variant(ControlResponse, "Spawned", AgentInfo)
class ControlResponseSpawned(ControlResponse):
    info: AgentInfo


@variant(ControlResponse, "Agents", Seq(AgentInfo))
class ControlResponseAgents(ControlResponse):
    agents: List[AgentInfo]


@variant(ControlResponse, "Agent", AgentInfo)
class ControlResponseAgent(ControlResponse):
    info: AgentInfo


@variant(ControlResponse, "Signaled", AGENT_ID, Signal)
class ControlResponseSignaled(ControlResponse):
    agent: AgentId
    signal: Signal


@variant(ControlResponse, "LogChunk", BYTES)
class ControlResponseLogChunk(ControlResponse):
    data: bytes


@variant(ControlResponse, "LogEnd")
class ControlResponseLogEnd(ControlResponse):
    pass


@variant(ControlResponse, "ShuttingDown")
class ControlResponseShuttingDown(ControlResponse):
    pass


@variant(ControlResponse, "Error", ControlError)
class ControlResponseError(ControlResponse):
    error: ControlError


@variant(ControlResponse, "Approvals", Seq(ApprovalInfo))
class ControlResponseApprovals(ControlResponse):
    approvals: List[ApprovalInfo]


@variant(ControlResponse, "Decided", U64, BOOL)
class ControlResponseDecided(ControlResponse):
    id: int
    approved: bool


@variant(ControlResponse, "Reloaded", AGENT_ID, DIGEST, DIGEST)
class ControlResponseReloaded(ControlResponse):
    agent: AgentId
    old_digest: bytes
    new_digest: bytes


@variant(ControlResponse, "ApprovalsPage", ApprovalPage)
class ControlResponseApprovalsPage(ControlResponse):
    page: ApprovalPage


@variant(ControlResponse, "Forgotten", Seq(AGENT_ID))
class ControlResponseForgotten(ControlResponse):
    agents: List[AgentId]


__all__ = [n for n in dir() if not n.startswith("_") and n not in ("annotations", "List", "Optional", "Tuple", "Union")]
