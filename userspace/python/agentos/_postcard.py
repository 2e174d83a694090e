"""Postcard wire-format primitives (https://postcard.jamesmunns.com/wire-format).

- unsigned integers wider than a byte (u16, u32, u64, usize) and lengths: varint (LEB128);
- signed integers: zigzag, then varint;
- ``bool``: one byte, 0 or 1; ``Option``: a 0/1 tag then the value;
- strings and byte vectors: varint length, then the bytes; ``Vec<T>``: varint count, then items;
- fixed arrays (``[u8; 32]``): the raw bytes, no length;
- structs and tuples: their fields in order, nothing else;
- enums: the variant index as a varint, then the variant's fields.

Every encoder checks the Python type and range of its value and raises ``TypeError`` or
``ValueError`` before a byte is produced for a bad one; every decoder refuses what postcard
would refuse (overlong varints, a bool other than 0/1, invalid UTF-8, short input).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type, TypeVar

__all__ = ["DecodeError", "Reader", "Codec"]


class DecodeError(ValueError):
    """Bytes that are not a valid postcard encoding of the expected type."""


class Reader:
    """A cursor over a body being decoded."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = memoryview(buf)
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.buf):
            raise DecodeError(f"input ended: wanted {n} bytes at offset {self.pos}, have {len(self.buf) - self.pos}")
        out = bytes(self.buf[self.pos:end])
        self.pos = end
        return out

    def byte(self) -> int:
        if self.pos >= len(self.buf):
            raise DecodeError(f"input ended at offset {self.pos}")
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def varint(self, bits: int) -> int:
        max_bytes = (bits + 6) // 7
        value = 0
        for i in range(max_bytes):
            b = self.byte()
            value |= (b & 0x7F) << (7 * i)
            if not b & 0x80:
                if value >> bits:
                    raise DecodeError(f"varint overflows u{bits}")
                return value
        raise DecodeError(f"varint longer than {max_bytes} bytes for u{bits}")

    def at_end(self) -> bool:
        return self.pos == len(self.buf)


def write_varint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


class Codec:
    """Encodes one Rust type to postcard and back. ``what`` names it in error messages."""

    what = "value"

    def encode(self, out: bytearray, value: Any, field: str) -> None:  # pragma: no cover
        raise NotImplementedError

    def decode(self, r: Reader) -> Any:  # pragma: no cover
        raise NotImplementedError


def _type_error(field: str, want: str, value: Any) -> TypeError:
    return TypeError(f"{field}: expected {want}, got {type(value).__name__} {value!r:.60}")


class _Unsigned(Codec):
    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.what = f"u{bits}"

    def encode(self, out: bytearray, value: Any, field: str) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _type_error(field, f"int ({self.what})", value)
        if value < 0 or value >> self.bits:
            raise ValueError(f"{field}: {value} does not fit in {self.what} (0..={(1 << self.bits) - 1})")
        if self.bits == 8:
            out.append(value)
        else:
            write_varint(out, value)

    def decode(self, r: Reader) -> int:
        return r.byte() if self.bits == 8 else r.varint(self.bits)


class _Signed(Codec):
    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.what = f"i{bits}"

    def encode(self, out: bytearray, value: Any, field: str) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _type_error(field, f"int ({self.what})", value)
        lo, hi = -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        if not lo <= value <= hi:
            raise ValueError(f"{field}: {value} does not fit in {self.what} ({lo}..={hi})")
        write_varint(out, -2 * value - 1 if value < 0 else 2 * value)

    def decode(self, r: Reader) -> int:
        z = r.varint(self.bits)
        return (z >> 1) ^ -(z & 1)


class _Bool(Codec):
    what = "bool"

    def encode(self, out: bytearray, value: Any, field: str) -> None:
        if not isinstance(value, bool):
            raise _type_error(field, "bool", value)
        out.append(1 if value else 0)

    def decode(self, r: Reader) -> bool:
        b = r.byte()
        if b > 1:
            raise DecodeError(f"bool byte is {b}, not 0 or 1")
        return b == 1


class _Str(Codec):
    what = "str"

    def encode(self, out: bytearray, value: Any, field: str) -> None:
        if not isinstance(value, str):
            raise _type_error(field, "str", value)
        try:
            raw = value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(f"{field}: not encodable as UTF-8 ({e.reason})") from None
        write_varint(out, len(raw))
        out += raw

    def decode(self, r: Reader) -> str:
        raw = r.take(r.varint(64))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DecodeError(f"string is not UTF-8: {e.reason}") from None


class _Bytes(Codec):
    what = "bytes"

    def encode(self, out: bytearray, value: Any, field: str) -> None:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise _type_error(field, "bytes", value)
        write_varint(out, len(value))
        out += value

    def decode(self, r: Reader) -> bytes:
        return r.take(r.varint(64))


class _Array(Codec):
    def __init__(self, n: int) -> None:
        self.n = n
        self.what = f"[u8; {n}]"

    def encode(self, out: bytearray, value: Any, field: str) -> None:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise _type_error(field, f"bytes of length {self.n}", value)
        if len(value) != self.n:
            raise ValueError(f"{field}: expected exactly {self.n} bytes, got {len(value)}")
        out += value

    def decode(self, r: Reader) -> bytes:
        return r.take(self.n)


class Opt(Codec):
    """``Option<T>``: ``None`` or a value."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def encode(self, out: bytearray, value: Any, field: str) -> None:
        if value is None:
            out.append(0)
        else:
            out.append(1)
            encode_value(self.inner, out, value, field)

    def decode(self, r: Reader) -> Any:
        tag = r.byte()
        if tag == 0:
            return None
        if tag != 1:
            raise DecodeError(f"option tag is {tag}, not 0 or 1")
        return decode_value(self.inner, r)


class Seq(Codec):
    """``Vec<T>``: a list."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def encode(self, out: bytearray, value: Any, field: str) -> None:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise _type_error(field, "list", value)
        write_varint(out, len(value))
        for i, item in enumerate(value):
            encode_value(self.inner, out, item, f"{field}[{i}]")

    def decode(self, r: Reader) -> List[Any]:
        n = r.varint(64)
        if n > len(r.buf) - r.pos:  # every element takes at least one byte
            raise DecodeError(f"sequence of {n} items cannot fit in the {len(r.buf) - r.pos} bytes left")
        return [decode_value(self.inner, r) for _ in range(n)]


class Tup(Codec):
    """A tuple: its items in order."""

    def __init__(self, *items: Any) -> None:
        self.items = items

    def encode(self, out: bytearray, value: Any, field: str) -> None:
        if not isinstance(value, (tuple, list)) or len(value) != len(self.items):
            raise _type_error(field, f"tuple of {len(self.items)}", value)
        for i, (c, v) in enumerate(zip(self.items, value)):
            encode_value(c, out, v, f"{field}[{i}]")

    def decode(self, r: Reader) -> Tuple[Any, ...]:
        return tuple(decode_value(c, r) for c in self.items)


class Res(Codec):
    """``Result<T, E>``: variant 0 ``Ok(T)``, 1 ``Err(E)``; ``E`` values are told apart by type."""

    def __init__(self, ok: Any, err: Any) -> None:
        self.ok, self.err = ok, err

    def encode(self, out: bytearray, value: Any, field: str) -> None:
        if isinstance(value, self.err):
            out.append(1)
            encode_value(self.err, out, value, field)
        else:
            out.append(0)
            encode_value(self.ok, out, value, field)

    def decode(self, r: Reader) -> Any:
        tag = r.varint(32)
        if tag == 0:
            return decode_value(self.ok, r)
        if tag == 1:
            return decode_value(self.err, r)
        raise DecodeError(f"result tag is {tag}, not 0 or 1")


U8 = _Unsigned(8)
U16 = _Unsigned(16)
U32 = _Unsigned(32)
U64 = _Unsigned(64)
I32 = _Signed(32)
BOOL = _Bool()
STR = _Str()
BYTES = _Bytes()
DIGEST = _Array(32)
TRACE_ID = _Array(16)
SPAN_ID = _Array(8)


def encode_value(codec: Any, out: bytearray, value: Any, field: str) -> None:
    """Encodes ``value`` with a codec or a wire type (a class with ``_wire_encode``)."""
    if isinstance(codec, Codec):
        codec.encode(out, value, field)
    else:
        if not isinstance(value, codec):
            raise _type_error(field, codec.__qualname__, value)
        value._wire_encode(out, field)


def decode_value(codec: Any, r: Reader) -> Any:
    if isinstance(codec, Codec):
        return codec.decode(r)
    return codec._wire_decode(r)
