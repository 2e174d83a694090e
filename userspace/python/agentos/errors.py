"""Exceptions: one per ``Errno`` variant, plus the SDK's own.

Every exception carries ``.errno``, the stable POSIX number of ``Errno::posix``, and
``.wire``, the :class:`agentos.abi.Errno` value the kernel sent (``None`` when the SDK raised
it itself, e.g. :class:`TooLarge` for a payload it refused to send).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Type

from . import abi


class AgentOSError(Exception):
    """Base of every agentos error."""

    errno: int = 5  # EIO
    wire: Optional[abi.Errno] = None


class PermissionDenied(AgentOSError):
    """The policy refused the call. ``rule`` is ``id (file:line)``, empty for a default deny.

    Also the base of :class:`ApprovalDenied` and :class:`ApprovalTimeout` (a call whose rule
    requires approval that nobody gave), so one ``except agentos.PermissionDenied`` catches
    every refusal by policy.
    """

    errno = 13

    def __init__(self, rule: str, reason: str) -> None:
        self.rule, self.reason = rule, reason
        super().__init__(f"denied by policy: {rule or 'default deny'}: {reason}")


class NotFound(AgentOSError):
    errno = 2

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"not found: {what}")


class InvalidArgument(AgentOSError, ValueError):
    errno = 22

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid argument: {reason}")


class RateLimited(AgentOSError):
    """A ``rate_limit`` refused the call; retry after ``retry_after_ms``. Not a violation."""

    errno = 11

    def __init__(self, retry_after_ms: int) -> None:
        self.retry_after_ms = retry_after_ms
        super().__init__(f"rate limited: retry after {retry_after_ms} ms")


class ApprovalDenied(PermissionDenied):
    """An operator denied the approval the call's rule requires (``requires_approval``)."""

    errno = 125

    def __init__(self) -> None:
        AgentOSError.__init__(
            self, "denied by policy: the operator denied the approval this call needs (requires_approval)")
        self.rule, self.reason = "", "the operator denied the approval"


class ApprovalTimeout(PermissionDenied):
    """Nobody approved the call before the kernel's approval timeout (``requires_approval``)."""

    errno = 110

    def __init__(self) -> None:
        AgentOSError.__init__(
            self, "denied by policy: nobody approved this call before the approval timeout (requires_approval)")
        self.rule, self.reason = "", "nobody approved the call in time"


class QuotaExceeded(AgentOSError):
    errno = 122

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"quota exceeded: {what}")


class TooLarge(AgentOSError, ValueError):
    """A payload is over its limit (raised by the kernel, or by the SDK before sending)."""

    errno = 27

    def __init__(self, size: int, limit: int) -> None:
        self.size, self.limit = size, limit
        super().__init__(f"too large: {size} bytes over the limit of {limit}")


class ProtocolViolation(AgentOSError):
    errno = 71

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"protocol violation: {reason}")


class Unsupported(AgentOSError):
    """The kernel does not serve this syscall (yet, or on this host)."""

    errno = 38

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"unsupported: {what}")


class Internal(AgentOSError):
    errno = 5

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"internal kernel error: {reason}")


class Busy(AgentOSError):
    errno = 16

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"busy: {what}")


class BadDescriptor(AgentOSError):
    errno = 9

    def __init__(self, fd: int) -> None:
        self.fd = fd
        super().__init__(f"bad descriptor {fd}")


class IsDirectory(AgentOSError):
    errno = 21

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"is a directory: {path}")


class NotDirectory(AgentOSError):
    errno = 20

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"not a directory: {path}")


class AlreadyExists(AgentOSError):
    errno = 17

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"already exists: {path}")


class TimedOut(AgentOSError):
    errno = 110

    def __init__(self, after_ms: int) -> None:
        self.after_ms = after_ms
        super().__init__(f"timed out after {after_ms} ms")


class Interrupted(AgentOSError):
    errno = 4

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"interrupted: {reason}")


# ---- the SDK's own errors (no Errno variant) ----


class NoKernel(AgentOSError):
    """``AGENTOS_FD`` is missing or unusable: the program is not running under agentos."""


class ConnectionClosed(AgentOSError):
    """The kernel closed the connection (the agent is ending, or the kernel stopped)."""


class Refused(AgentOSError):
    """The kernel refused the handshake; ``.cause`` is the exception for its ``Errno``."""

    def __init__(self, cause: AgentOSError) -> None:
        self.cause = cause
        self.errno = cause.errno
        super().__init__(f"handshake refused: {cause}")


_BY_KIND: Dict[str, Type[AgentOSError]] = {
    "PermissionDenied": PermissionDenied,
    "NotFound": NotFound,
    "InvalidArgument": InvalidArgument,
    "RateLimited": RateLimited,
    "ApprovalDenied": ApprovalDenied,
    "ApprovalTimeout": ApprovalTimeout,
    "QuotaExceeded": QuotaExceeded,
    "TooLarge": TooLarge,
    "ProtocolViolation": ProtocolViolation,
    "Unsupported": Unsupported,
    "Internal": Internal,
    "Busy": Busy,
    "BadDescriptor": BadDescriptor,
    "IsDirectory": IsDirectory,
    "NotDirectory": NotDirectory,
    "AlreadyExists": AlreadyExists,
    "TimedOut": TimedOut,
    "Interrupted": Interrupted,
}
assert set(_BY_KIND) == {v.__qualname__.split(".")[1] for v in abi.Errno._variants}


def from_errno(e: abi.Errno) -> AgentOSError:
    """The exception for a wire ``Errno``."""
    cls = _BY_KIND[e.kind]
    args: Any = [getattr(e, n) for n in e._names]
    exc = cls(*args)
    exc.wire = e
    assert exc.errno == e.posix
    return exc


__all__ = ["AgentOSError", "from_errno", "NoKernel", "ConnectionClosed", "Refused"] + sorted(_BY_KIND)
