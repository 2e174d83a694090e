/** A u64 on the wire: a number when it is a safe integer, a bigint above 2^53 - 1. */
export type U64 = number | bigint;

/** Encodes one Rust type to postcard and back. */
export interface Codec<T> {
  readonly what: string;
  encode(w: Writer, value: T, field: string): void;
  decode(r: Reader): T;
}

export class DecodeError extends Error {}

export class Reader {
  constructor(buf: Uint8Array);
  buf: Uint8Array;
  pos: number;
  left(): number;
  atEnd(): boolean;
  byte(): number;
  take(n: number): Uint8Array;
  varint(bits: 16 | 32 | 64): number | bigint;
}

export class Writer {
  constructor(capacity?: number);
  byte(b: number): void;
  bytes(data: Uint8Array): void;
  varint(value: number | bigint): void;
  finish(): Uint8Array;
}

export const U8: Codec<number>;
export const U16: Codec<number>;
export const U32: Codec<number>;
export const U64: Codec<U64>;
export const I32: Codec<number>;
export const BOOL: Codec<boolean>;
export const STR: Codec<string>;
export const BYTES: Codec<Uint8Array>;
export function array(n: number): Codec<Uint8Array>;
export function opt<T>(inner: Codec<T>): Codec<T | null>;
export function seq<T>(inner: Codec<T>): Codec<T[]>;
export function tuple(...items: Codec<any>[]): Codec<any[]>;
export function result<T, E>(ok: Codec<T>, err: Codec<E>): Codec<{ ok: T } | { err: E }>;
export function struct<T>(name: string, fields: [string, Codec<any>][], defaults?: Partial<T>): Codec<T>;
export function enumOf<T>(name: string, variants: ([string] | [string, [string, Codec<any>][]])[]): Codec<T> & { readonly names: string[] };
export function unitEnum<T extends string>(name: string, names: T[]): Codec<T> & { readonly names: T[] };
/** The postcard body of `value` (no frame header). */
export function encode<T>(codec: Codec<T>, value: T): Uint8Array;
/** Decodes a whole body; trailing bytes are a DecodeError. */
export function decode<T>(codec: Codec<T>, body: Uint8Array): T;
