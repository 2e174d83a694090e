// Frames: a u32 little-endian body length, then a postcard body.
//
// The length is checked against the limit before a byte is kept for the body, so a hostile
// peer cannot make the reader buffer more than one frame's limit.

import { DEFAULT_MAX_FRAME } from './abi.js';
import { Writer, encode, decode } from './postcard.js';
import { ProtocolViolation, TooLarge } from './errors.js';

export const HEADER_LEN = 4;
export { DEFAULT_MAX_FRAME };

/** One frame holding `value` encoded as `codec`; TooLarge if the body is over `maxFrame`. */
export function encodeFrame(codec, value, maxFrame = DEFAULT_MAX_FRAME) {
  const w = new Writer();
  w.len = HEADER_LEN; // the header is written once the body's length is known
  codec.encode(w, value, codec.what);
  const n = w.len - HEADER_LEN;
  if (n > maxFrame) throw new TooLarge(n, maxFrame);
  const out = w.buf;
  out[0] = n & 0xff;
  out[1] = (n >>> 8) & 0xff;
  out[2] = (n >>> 16) & 0xff;
  out[3] = (n >>> 24) & 0xff;
  return out.subarray(0, w.len);
}

/** Checks a header against `maxFrame` and returns the body length. */
export function bodyLen(header, maxFrame) {
  const n = (header[0] | (header[1] << 8) | (header[2] << 16)) + header[3] * 0x1000000;
  if (n > maxFrame) throw new ProtocolViolation(`frame of ${n} bytes is over the limit of ${maxFrame}`);
  return n;
}

/**
 * Incremental decoder: push bytes as they arrive, take whole bodies out with `next()`. A body
 * that lies within one pushed chunk is returned as a view of it (the chunks a socket hands
 * over are never reused); the codec copies what it keeps.
 */
export class FrameDecoder {
  constructor(maxFrame = DEFAULT_MAX_FRAME) {
    this.maxFrame = maxFrame;
    this.chunks = [];
    this.off = 0; // bytes of chunks[0] already taken
    this.size = 0; // bytes buffered and not yet taken
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
      let n = 0;
      for (let i = 0; i < HEADER_LEN; i++) n += this.#byte() * 2 ** (8 * i);
      if (n > this.maxFrame) throw new ProtocolViolation(`frame of ${n} bytes is over the limit of ${this.maxFrame}`);
      this.want = n;
    }
    if (this.size < this.want) return null;
    const body = this.#take(this.want);
    this.want = -1;
    return body;
  }

  #byte() {
    const c = this.chunks[0];
    const b = c[this.off++];
    this.size--;
    if (this.off === c.length) {
      this.chunks.shift();
      this.off = 0;
    }
    return b;
  }

  #take(n) {
    const first = this.chunks[0];
    if (n === 0) return new Uint8Array(0);
    if (first.length - this.off >= n) {
      const out = new Uint8Array(first.buffer, first.byteOffset + this.off, n);
      this.off += n;
      this.size -= n;
      if (this.off === first.length) {
        this.chunks.shift();
        this.off = 0;
      }
      return out;
    }
    const out = new Uint8Array(n);
    let have = 0;
    while (have < n) {
      const c = this.chunks[0];
      const k = Math.min(c.length - this.off, n - have);
      out.set(c.subarray(this.off, this.off + k), have);
      have += k;
      this.off += k;
      if (this.off === c.length) {
        this.chunks.shift();
        this.off = 0;
      }
    }
    this.size -= n;
    return out;
  }
}

export { decode, encode };
