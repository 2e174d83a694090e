"""The machinery that maps Python dataclasses onto postcard structs and enums."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Callable, ClassVar, Dict, List, Tuple, Type, TypeVar

from ._postcard import DecodeError, Reader, decode_value, encode_value, write_varint

T = TypeVar("T")


class Wire:
    """A value with a postcard encoding: a struct, or one variant of an enum."""

    _codecs: ClassVar[Tuple[Any, ...]] = ()
    _names: ClassVar[Tuple[str, ...]] = ()

    def _wire_fields(self, out: bytearray, field: str) -> None:
        for name, codec in zip(self._names, self._codecs):
            encode_value(codec, out, getattr(self, name), f"{field}.{name}")

    def _wire_encode(self, out: bytearray, field: str) -> None:
        self._wire_fields(out, field)

    @classmethod
    def _wire_decode(cls: Type[T], r: Reader) -> T:
        return cls(*[decode_value(c, r) for c in cls._codecs])  # type: ignore[attr-defined]

    def to_bytes(self) -> bytes:
        """The postcard body of this value (no frame header)."""
        out = bytearray()
        encode_value(type(self)._wire_root(), out, self, type(self).__qualname__)
        return bytes(out)

    @classmethod
    def _wire_root(cls) -> Any:
        return cls

    @classmethod
    def from_bytes(cls: Type[T], body: bytes) -> T:
        """Decodes a whole body; trailing bytes are an error, as in the Rust codec."""
        return decode(cls, body)


class WireEnum(Wire):
    """A Rust enum with data: each variant is a dataclass subclass with its tag."""

    _variants: ClassVar[List[type]]
    _tag: ClassVar[int] = -1

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if WireEnum in cls.__bases__:
            cls._variants = []

    @classmethod
    def _wire_root(cls) -> Any:
        for base in cls.__mro__:
            if WireEnum in base.__bases__:
                return base
        return cls

    def _wire_encode(self, out: bytearray, field: str) -> None:
        write_varint(out, self._tag)
        self._wire_fields(out, field)

    @classmethod
    def _wire_decode(cls, r: Reader) -> Any:
        root = cls._wire_root()
        tag = r.varint(32)
        if tag >= len(root._variants):
            raise DecodeError(f"{root.__name__} has no variant {tag}")
        var = root._variants[tag]
        if not issubclass(var, cls):
            raise DecodeError(f"expected {cls.__qualname__}, got {var.__qualname__}")
        return var(*[decode_value(c, r) for c in var._codecs])


def struct(*codecs: Any) -> Callable[[Type[T]], Type[T]]:
    """Makes a class a frozen dataclass encoded as its fields, in order, with ``codecs``."""

    def wrap(cls: Type[T]) -> Type[T]:
        dc = dataclasses.dataclass(frozen=True)(cls)
        names = tuple(f.name for f in dataclasses.fields(dc))
        assert len(names) == len(codecs), f"{cls.__name__}: {len(names)} fields, {len(codecs)} codecs"
        dc._codecs = codecs  # type: ignore[attr-defined]
        dc._names = names  # type: ignore[attr-defined]
        return dc

    return wrap


def variant(base: type, name: str, *codecs: Any) -> Callable[[Type[T]], Type[T]]:
    """Makes a class the next variant (by tag) of ``base``, reachable as ``base.<name>``."""

    def wrap(cls: Type[T]) -> Type[T]:
        dc = struct(*codecs)(cls)
        dc._tag = len(base._variants)  # type: ignore[attr-defined]
        dc.__qualname__ = f"{base.__name__}.{name}"
        base._variants.append(dc)  # type: ignore[attr-defined]
        setattr(base, name, dc)
        return dc

    return wrap


class UnitEnum(enum.Enum):
    """A Rust enum whose variants carry no data; the member's value is its tag."""

    def _wire_encode(self, out: bytearray, field: str) -> None:
        write_varint(out, self.value)

    @classmethod
    def _wire_decode(cls, r: Reader) -> Any:
        tag = r.varint(32)
        try:
            return cls(tag)
        except ValueError:
            raise DecodeError(f"{cls.__name__} has no variant {tag}") from None


def encode(value: Any) -> bytes:
    """The postcard body of any ABI value."""
    if isinstance(value, Wire):
        return value.to_bytes()
    out = bytearray()
    encode_value(type(value), out, value, type(value).__name__)
    return bytes(out)


def decode(cls: Any, body: bytes) -> Any:
    """Decodes a whole body as ``cls``; trailing bytes are an error."""
    r = Reader(body)
    value = decode_value(cls, r)
    if not r.at_end():
        raise DecodeError(f"{len(r.buf) - r.pos} trailing bytes after {getattr(cls, '__name__', cls)}")
    return value
