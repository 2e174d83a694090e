"""Frames: a ``u32`` little-endian body length, then a postcard body.

The length is checked against the limit before a byte is allocated for the body, so a
hostile peer cannot make the reader reserve 4 GiB by sending four bytes.
"""

from __future__ import annotations

import struct as _struct
from typing import Any, Callable, List, Optional

from . import abi
from ._wire import decode, encode
from .errors import ProtocolViolation, TooLarge

HEADER_LEN = 4
DEFAULT_MAX_FRAME = abi.DEFAULT_MAX_FRAME


def encode_frame(value: Any, max_frame: int = DEFAULT_MAX_FRAME) -> bytes:
    """One frame holding ``value``. Raises :class:`TooLarge` if the body is over ``max_frame``,
    ``TypeError``/``ValueError`` for a malformed value."""
    body = encode(value)
    if len(body) > max_frame:
        raise TooLarge(len(body), max_frame)
    return _struct.pack("<I", len(body)) + body


def body_len(header: bytes, max_frame: int) -> int:
    """Checks a header against ``max_frame`` and returns the body length."""
    (n,) = _struct.unpack("<I", header)
    if n > max_frame:
        raise ProtocolViolation(f"frame of {n} bytes is over the limit of {max_frame}")
    return n


def read_frame(read_exact: Callable[[int], Optional[bytes]], max_frame: int) -> Optional[bytes]:
    """Reads one body with ``read_exact(n)`` (which returns ``None`` at a clean end of stream
    before any byte, and raises on a truncated one). ``None`` at a clean end."""
    header = read_exact(HEADER_LEN)
    if header is None:
        return None
    n = body_len(header, max_frame)
    body = read_exact(n) if n else b""
    if body is None:
        raise ProtocolViolation(f"stream ended inside a frame (0 of {n} bytes)")
    return body


class FrameDecoder:
    """Incremental decoder: push bytes as they arrive, take whole bodies out."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.buf = bytearray()
        self.max_frame = max_frame

    def push(self, data: bytes) -> None:
        self.buf += data

    def next_frame(self) -> Optional[bytes]:
        if len(self.buf) < HEADER_LEN:
            return None
        n = body_len(bytes(self.buf[:HEADER_LEN]), self.max_frame)
        if len(self.buf) < HEADER_LEN + n:
            return None
        body = bytes(self.buf[HEADER_LEN:HEADER_LEN + n])
        del self.buf[:HEADER_LEN + n]
        return body


__all__ = ["HEADER_LEN", "DEFAULT_MAX_FRAME", "encode_frame", "body_len", "read_frame", "FrameDecoder", "decode", "encode"]
