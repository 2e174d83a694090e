// Frames: a u32 little-endian body length, then a postcard body.
//
// The length is checked against the limit before a byte is kept for the body, so a hostile
// peer cannot make the reader buffer more than one frame's limit.

import { DEFAULT_MAX_FRAME } from './abi.js';
import { encode, decode } from './postcard.js';
import { ProtocolViolation, TooLarge } from './errors.js';

export const HEADER_LEN = 4;
export { DEFAULT_MAX_FRAME };

/** One frame holding `value` encoded as `codec`; TooLarge if the body is over `maxFrame`. */
export function encodeFrame(codec, value, maxFrame = DEFAULT_MAX_FRAME) {
  const body = encode(codec, value);
  if (body.length > maxFrame) throw new TooLarge(body.length, maxFrame);
  const out = new Uint8Array(HEADER_LEN + body.length);
  new DataView(out.buffer).setUint32(0, body.length, true);
  out.set(body, HEADER_LEN);
  return out;
}

/** Checks a header against `maxFrame` and returns the body length. */
export function bodyLen(header, maxFrame) {
  const n = (header[0] | (header[1] << 8) | (header[2] << 16)) + header[3] * 0x1000000;
  if (n > maxFrame) throw new ProtocolViolation(`frame of ${n} bytes is over the limit of ${maxFrame}`);
  return n;
}

/** Incremental decoder: push bytes as they arrive, take whole bodies out with `next()`. */
export class FrameDecoder {
  constructor(maxFrame = DEFAULT_MAX_FRAME) {
    this.maxFrame = maxFrame;
    this.chunks = [];
    this.size = 0;
    this.want = -1; // the body length once its header is read
  }

  /** Bytes buffered and not yet taken. */
  get pending() {
    return this.size + (this.want >= 0 ? HEADER_LEN : 0);
  }

  push(chunk) {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.size += chunk.length;
  }

  /** The next whole body, or null. Throws ProtocolViolation for a header over the limit. */
  next() {
    if (this.want < 0) {
      if (this.size < HEADER_LEN) return null;
      this.want = bodyLen(this.#take(HEADER_LEN), this.maxFrame);
    }
    if (this.size < this.want) return null;
    const body = this.#take(this.want);
    this.want = -1;
    return body;
  }

  #take(n) {
    const first = this.chunks[0];
    if (first !== undefined && first.length >= n) {
      const out = first.slice(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.size -= n;
      return new Uint8Array(out.buffer, out.byteOffset, out.length);
    }
    const out = new Uint8Array(n);
    let have = 0;
    while (have < n) {
      const c = this.chunks[0];
      const k = Math.min(c.length, n - have);
      out.set(c.subarray(0, k), have);
      have += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.size -= n;
    return out;
  }
}

export { decode, encode };
