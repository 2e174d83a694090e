// Postcard wire-format primitives (https://postcard.jamesmunns.com/wire-format), the same
// bytes as the Rust `postcard` crate and the Python SDK's `_postcard.py`:
//
// - unsigned integers wider than a byte (u16, u32, u64) and lengths: varint (LEB128);
// - signed integers: zigzag, then varint;
// - bool: one byte, 0 or 1; Option: a 0/1 tag then the value;
// - strings and byte vectors: varint length, then the bytes; Vec<T>: varint count, then items;
// - fixed arrays ([u8; 32]): the raw bytes, no length;
// - structs and tuples: their fields in order, nothing else;
// - enums: the variant index as a varint, then the variant's fields.
//
// A codec is an object `{ what, encode(w, value, field), decode(r) }`. Every encoder checks the
// JavaScript type and range of its value and throws TypeError or RangeError before a byte is
// produced for a bad one; every decoder refuses what postcard would refuse (overlong varints,
// a bool other than 0/1, invalid UTF-8, short input) with a DecodeError.
//
// u64 values decode as a `number` when they are safe integers (every value the kernel sends
// in practice) and as a `bigint` above Number.MAX_SAFE_INTEGER; encoders take either.

/** Bytes that are not a valid postcard encoding of the expected type. */
export class DecodeError extends Error {
  constructor(message) {
    super(message);
    this.name = 'DecodeError';
  }
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A cursor over a body being decoded. */
export class Reader {
  constructor(buf) {
    if (!(buf instanceof Uint8Array)) throw new TypeError('Reader: expected a Uint8Array');
    // A plain view (a Buffer's `slice` would lend views of the input instead of copies).
    this.buf = Object.getPrototypeOf(buf) === Uint8Array.prototype ? buf : new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
    this.pos = 0;
  }

  left() {
    return this.buf.length - this.pos;
  }

  atEnd() {
    return this.pos === this.buf.length;
  }

  byte() {
    if (this.pos >= this.buf.length) throw new DecodeError(`input ended at offset ${this.pos}`);
    return this.buf[this.pos++];
  }

  /** `n` bytes, copied (never a view of the input, which a client reuses). */
  take(n) {
    if (n > this.left()) {
      throw new DecodeError(`input ended: wanted ${n} bytes at offset ${this.pos}, have ${this.left()}`);
    }
    const start = this.pos;
    this.pos += n;
    return this.buf.slice(start, start + n);
  }

  /** A varint of at most `bits` bits (16, 32 or 64). */
  varint(bits) {
    const maxBytes = Math.floor((bits + 6) / 7);
    let value = 0;
    let scale = 1;
    for (let i = 0; i < maxBytes; i++) {
      const b = this.byte();
      if (i === 7) return this.#bigVarint(bits, maxBytes, value, b);
      value += (b & 0x7f) * scale;
      scale *= 128;
      if ((b & 0x80) === 0) {
        if (bits < 53 && value >= 2 ** bits) throw new DecodeError(`varint overflows u${bits}`);
        return value;
      }
    }
    throw new DecodeError(`varint longer than ${maxBytes} bytes for u${bits}`);
  }

  // Past 49 bits a number may no longer be exact: finish in bigint (only u64 gets here).
  #bigVarint(bits, maxBytes, low, b) {
    let value = BigInt(low);
    let shift = 49n;
    for (let i = 7; ; i++) {
      value |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if ((b & 0x80) === 0) break;
      if (i + 1 >= maxBytes) throw new DecodeError(`varint longer than ${maxBytes} bytes for u${bits}`);
      b = this.byte();
    }
    if (value >> BigInt(bits)) throw new DecodeError(`varint overflows u${bits}`);
    return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  }

  /** A length or count: no more than the bytes left (every element takes at least one). */
  length(what) {
    const n = this.varint(64);
    if (typeof n !== 'number' || n > this.left()) {
      throw new DecodeError(`${what} of ${n} cannot fit in the ${this.left()} bytes left`);
    }
    return n;
  }
}

/** A growable output buffer. */
export class Writer {
  constructor(capacity = 128) {
    this.buf = new Uint8Array(capacity);
    this.len = 0;
  }

  #reserve(n) {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  byte(b) {
    this.#reserve(1);
    this.buf[this.len++] = b;
  }

  bytes(data) {
    this.#reserve(data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
  }

  /** A varint of a non-negative safe integer or bigint (range already checked). */
  varint(value) {
    if (typeof value === 'bigint') {
      while (value >= 0x80n) {
        this.byte(Number(value & 0x7fn) | 0x80);
        value >>= 7n;
      }
      this.byte(Number(value));
      return;
    }
    while (value >= 0x80) {
      this.byte((value % 128) | 0x80);
      value = Math.floor(value / 128);
    }
    this.byte(value);
  }

  /** A string's UTF-8 bytes, length first (ASCII, the common case, without a copy). */
  str(value) {
    const n = value.length;
    let ascii = true;
    for (let i = 0; i < n; i++) {
      if (value.charCodeAt(i) > 0x7f) {
        ascii = false;
        break;
      }
    }
    if (!ascii) {
      const raw = utf8.encode(value);
      this.varint(raw.length);
      this.bytes(raw);
      return;
    }
    this.varint(n);
    this.#reserve(n);
    const buf = this.buf;
    let at = this.len;
    for (let i = 0; i < n; i++) buf[at++] = value.charCodeAt(i);
    this.len = at;
  }

  /** The bytes written so far (a view of this writer's buffer). */
  finish() {
    return this.buf.subarray(0, this.len);
  }
}

function describe(value) {
  if (value === null) return 'null';
  if (value instanceof Uint8Array) return `Uint8Array(${value.length})`;
  if (Array.isArray(value)) return `array(${value.length})`;
  const t = typeof value;
  if (t === 'string') return `string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)}`;
  if (t === 'object') return 'object';
  return `${t} ${String(value)}`;
}

export function typeError(field, want, value) {
  return new TypeError(`${field}: expected ${want}, got ${describe(value)}`);
}

function unsigned(bits) {
  const max = 2n ** BigInt(bits) - 1n;
  const what = `u${bits}`;
  return {
    what,
    encode(w, value, field) {
      if (typeof value === 'bigint') {
        if (value < 0n || value > max) throw new RangeError(`${field}: ${value} does not fit in ${what} (0..=${max})`);
      } else if (typeof value === 'number') {
        if (!Number.isSafeInteger(value)) {
          throw new RangeError(`${field}: ${value} is not an integer in the safe range (use a bigint)`);
        }
        if (value < 0 || value > Number(max)) throw new RangeError(`${field}: ${value} does not fit in ${what} (0..=${max})`);
      } else {
        throw typeError(field, `a number (${what})`, value);
      }
      if (bits === 8) w.byte(Number(value));
      else w.varint(value);
    },
    decode(r) {
      return bits === 8 ? r.byte() : r.varint(bits);
    },
  };
}

export const U8 = unsigned(8);
export const U16 = unsigned(16);
export const U32 = unsigned(32);
export const U64 = unsigned(64);

export const I32 = {
  what: 'i32',
  encode(w, value, field) {
    if (typeof value !== 'number') throw typeError(field, 'a number (i32)', value);
    if (!Number.isInteger(value) || value < -(2 ** 31) || value > 2 ** 31 - 1) {
      throw new RangeError(`${field}: ${value} does not fit in i32 (-2147483648..=2147483647)`);
    }
    w.varint(value < 0 ? -2 * value - 1 : 2 * value);
  },
  decode(r) {
    const z = r.varint(32);
    return z % 2 === 1 ? -(z + 1) / 2 : z / 2;
  },
};

export const BOOL = {
  what: 'bool',
  encode(w, value, field) {
    if (typeof value !== 'boolean') throw typeError(field, 'a boolean', value);
    w.byte(value ? 1 : 0);
  },
  decode(r) {
    const b = r.byte();
    if (b > 1) throw new DecodeError(`bool byte is ${b}, not 0 or 1`);
    return b === 1;
  },
};

// Lone surrogates have no UTF-8 encoding (TextEncoder would silently replace them).
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export const STR = {
  what: 'string',
  encode(w, value, field) {
    if (typeof value !== 'string') throw typeError(field, 'a string', value);
    // eslint-disable-next-line no-control-regex
    if (/[^\x00-\x7f]/.test(value) && LONE_SURROGATE.test(value)) {
      throw new RangeError(`${field}: not encodable as UTF-8 (a lone surrogate)`);
    }
    w.str(value);
  },
  decode(r) {
    const n = r.length('a string');
    const start = r.pos;
    r.pos += n;
    try {
      return utf8Strict.decode(r.buf.subarray(start, start + n));
    } catch {
      throw new DecodeError('string is not UTF-8');
    }
  },
};

export const BYTES = {
  what: 'bytes',
  encode(w, value, field) {
    if (!(value instanceof Uint8Array)) throw typeError(field, 'a Uint8Array', value);
    w.varint(value.length);
    w.bytes(value);
  },
  decode(r) {
    return r.take(r.length('a byte string'));
  },
};

/** `[u8; n]`: exactly `n` raw bytes. */
export function array(n) {
  return {
    what: `[u8; ${n}]`,
    encode(w, value, field) {
      if (!(value instanceof Uint8Array)) throw typeError(field, `a Uint8Array of ${n} bytes`, value);
      if (value.length !== n) throw new RangeError(`${field}: expected exactly ${n} bytes, got ${value.length}`);
      w.bytes(value);
    },
    decode(r) {
      return r.take(n);
    },
  };
}

/** `Option<T>`: `null` (or `undefined`, encoded as `None`) or a value. */
export function opt(inner) {
  return {
    what: `${inner.what} | null`,
    encode(w, value, field) {
      if (value === null || value === undefined) {
        w.byte(0);
      } else {
        w.byte(1);
        inner.encode(w, value, field);
      }
    },
    decode(r) {
      const tag = r.byte();
      if (tag === 0) return null;
      if (tag !== 1) throw new DecodeError(`option tag is ${tag}, not 0 or 1`);
      return inner.decode(r);
    },
  };
}

/** `Vec<T>`: an array. */
export function seq(inner) {
  return {
    what: `${inner.what}[]`,
    encode(w, value, field) {
      if (!Array.isArray(value)) throw typeError(field, 'an array', value);
      w.varint(value.length);
      for (let i = 0; i < value.length; i++) inner.encode(w, value[i], `${field}[${i}]`);
    },
    decode(r) {
      const n = r.length('a sequence');
      const out = new Array(n);
      for (let i = 0; i < n; i++) out[i] = inner.decode(r);
      return out;
    },
  };
}

/** A tuple: an array of its items in order. */
export function tuple(...items) {
  return {
    what: `[${items.map((c) => c.what).join(', ')}]`,
    encode(w, value, field) {
      if (!Array.isArray(value) || value.length !== items.length) {
        throw typeError(field, `a tuple of ${items.length}`, value);
      }
      items.forEach((c, i) => c.encode(w, value[i], `${field}[${i}]`));
    },
    decode(r) {
      return items.map((c) => c.decode(r));
    },
  };
}

/** `Result<T, E>`: `{ ok: T }` (variant 0) or `{ err: E }` (variant 1). */
export function result(ok, err) {
  return {
    what: `Result<${ok.what}, ${err.what}>`,
    encode(w, value, field) {
      if (value === null || typeof value !== 'object') throw typeError(field, '{ ok } or { err }', value);
      if ('err' in value) {
        w.byte(1);
        err.encode(w, value.err, `${field}.err`);
      } else if ('ok' in value) {
        w.byte(0);
        ok.encode(w, value.ok, `${field}.ok`);
      } else {
        throw typeError(field, '{ ok } or { err }', value);
      }
    },
    decode(r) {
      const tag = r.varint(32);
      if (tag === 0) return { ok: ok.decode(r) };
      if (tag === 1) return { err: err.decode(r) };
      throw new DecodeError(`result tag is ${tag}, not 0 or 1`);
    },
  };
}

/**
 * A struct: a plain object with `fields` (`[name, codec]` pairs, in wire order). A field left
 * `undefined` takes its `defaults` value, if one is given.
 */
export function struct(name, fields, defaults = {}) {
  return {
    what: name,
    fields,
    encode(w, value, field) {
      if (value === null || typeof value !== 'object') throw typeError(field, `a ${name} object`, value);
      for (const [key, codec] of fields) {
        let v = value[key];
        if (v === undefined && key in defaults) v = defaults[key];
        codec.encode(w, v, `${field}.${key}`);
      }
    },
    decode(r) {
      const out = {};
      for (const [key, codec] of fields) out[key] = codec.decode(r);
      return out;
    },
  };
}

/**
 * An enum with data: a plain object `{ type: 'Variant', ...fields }`. `variants` are
 * `[name, fields]` pairs in wire order (the tag is the position), `fields` as for `struct`
 * (empty for a unit variant). Appending a variant is appending one pair.
 */
export function enumOf(name, variants) {
  const byName = new Map();
  const table = variants.map(([vname, fields], tag) => {
    const v = { tag, name: vname, fields: fields ?? [] };
    byName.set(vname, v);
    return v;
  });
  return {
    what: name,
    variants: table,
    names: table.map((v) => v.name),
    encode(w, value, field) {
      if (value === null || typeof value !== 'object') throw typeError(field, `a ${name} object ({ type: … })`, value);
      const v = byName.get(value.type);
      if (v === undefined) {
        throw new TypeError(`${field}: ${name} has no variant ${JSON.stringify(value.type)} (known: ${[...byName.keys()].join(', ')})`);
      }
      w.varint(v.tag);
      for (const [key, codec] of v.fields) codec.encode(w, value[key], `${field}.${key}`);
    },
    decode(r) {
      const tag = r.varint(32);
      const v = table[tag];
      if (v === undefined) throw new DecodeError(`${name} has no variant ${tag}`);
      const out = { type: v.name };
      for (const [key, codec] of v.fields) out[key] = codec.decode(r);
      return out;
    },
  };
}

/** An enum without data: its variants' names (strings), in wire order. */
export function unitEnum(name, names) {
  const tags = new Map(names.map((n, i) => [n, i]));
  return {
    what: name,
    names,
    encode(w, value, field) {
      const tag = tags.get(value);
      if (tag === undefined) {
        throw new TypeError(`${field}: expected a ${name} (${names.map((n) => JSON.stringify(n)).join(', ')}), got ${describe(value)}`);
      }
      w.varint(tag);
    },
    decode(r) {
      const tag = r.varint(32);
      if (tag >= names.length) throw new DecodeError(`${name} has no variant ${tag}`);
      return names[tag];
    },
  };
}

/** The postcard body of `value` as `codec` (a fresh copy). */
export function encode(codec, value) {
  const w = new Writer();
  codec.encode(w, value, codec.what);
  return w.finish().slice();
}

/** Decodes a whole body as `codec`; trailing bytes are an error, as in the Rust codec. */
export function decode(codec, body) {
  const r = new Reader(body);
  const value = codec.decode(r);
  if (!r.atEnd()) throw new DecodeError(`${r.left()} trailing bytes after ${codec.what}`);
  return value;
}
