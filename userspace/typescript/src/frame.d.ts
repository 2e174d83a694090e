import type { Codec } from './postcard.js';
export { encode, decode } from './postcard.js';
export const HEADER_LEN: 4;
export const DEFAULT_MAX_FRAME: number;
/** One frame (u32 LE length + postcard body); TooLarge when the body is over `maxFrame`. */
export function encodeFrame<T>(codec: Codec<T>, value: T, maxFrame?: number): Uint8Array;
/** The body length a header announces; ProtocolViolation when it is over `maxFrame`. */
export function bodyLen(header: Uint8Array, maxFrame: number): number;
export class FrameDecoder {
  constructor(maxFrame?: number);
  maxFrame: number;
  readonly pending: number;
  push(chunk: Uint8Array): void;
  /** The next whole body, or null; throws ProtocolViolation for a header over the limit. */
  next(): Uint8Array | null;
}
