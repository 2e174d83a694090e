// The codec refuses what postcard refuses, and frames are bounded before they are buffered.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import * as abi from '../src/abi.js';
import { DecodeError, decode, encode, U16, U32, U64, I32, STR, BOOL } from '../src/postcard.js';
import { FrameDecoder, encodeFrame, HEADER_LEN } from '../src/frame.js';
import { ProtocolViolation, TooLarge } from '../src/errors.js';

const b = (...x) => new Uint8Array(x);

test('varints: boundaries round-trip, overlong and overflowing ones are refused', () => {
  for (const [codec, v] of [[U16, 0], [U16, 65535], [U32, 2 ** 32 - 1], [U64, Number.MAX_SAFE_INTEGER], [U64, 2n ** 64n - 1n], [I32, -(2 ** 31)], [I32, 2 ** 31 - 1], [I32, -1]]) {
    assert.deepEqual(decode(codec, encode(codec, v)), v);
  }
  assert.deepEqual(encode(U64, 300), b(0xac, 0x02));
  assert.deepEqual(encode(I32, -1), b(1));
  assert.throws(() => decode(U16, b(0xff, 0xff, 0x04)), /overflows u16/);
  assert.throws(() => decode(U32, b(0xff, 0xff, 0xff, 0xff, 0xff, 0x01)), /longer than 5 bytes/);
  assert.throws(() => decode(U64, b(...Array(10).fill(0xff), 1)), DecodeError);
  assert.throws(() => decode(U64, b(...Array(9).fill(0xff), 0x02)), /overflows u64/);
  assert.throws(() => encode(U64, -1), RangeError);
  assert.throws(() => encode(U64, 2 ** 60), /safe range/);
  assert.throws(() => encode(U16, '1'), TypeError);
});

test('bools, strings, options and trailing bytes', () => {
  assert.throws(() => decode(BOOL, b(2)), /bool byte is 2/);
  assert.throws(() => decode(STR, b(2, 0xc3, 0x28)), /not UTF-8/);
  assert.throws(() => decode(STR, b(5, 0x61)), DecodeError);
  assert.throws(() => decode(STR, b(0xff, 0xff, 0xff, 0xff, 0x0f)), /cannot fit/);
  assert.equal(decode(STR, encode(STR, 'héllo ✓ 🦀')), 'héllo ✓ 🦀');
  assert.throws(() => decode(abi.Syscall, b(14, 0, 0)), /1 trailing bytes after Syscall/);
  assert.throws(() => decode(abi.Syscall, b(19)), /Syscall has no variant 19/);
  assert.throws(() => decode(abi.Syscall, b(0, 0, 0, 2)), /option tag is 2/);
});

test('a sequence announcing more items than bytes is refused before allocating', () => {
  // Entries: count 2^40, then nothing.
  const body = b(2, 7, 0, 4, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20);
  assert.throws(() => decode(abi.KernelFrame, body), /cannot fit/);
});

test('frames: the header is checked before the body is buffered', () => {
  const dec = new FrameDecoder(16);
  dec.push(b(17, 0, 0));
  assert.equal(dec.next(), null);
  dec.push(b(0));
  assert.throws(() => dec.next(), (e) => e instanceof ProtocolViolation && /17 bytes is over the limit of 16/.test(e.message));
  assert.throws(() => encodeFrame(STR, 'x'.repeat(20), 16), TooLarge);
});

test('frames: split and joined frames reassemble', () => {
  const hello = { type: 'Hello', hello: { abi: abi.ABI_VERSION, sdk: 't' } };
  const one = encodeFrame(abi.AgentFrame, hello);
  const stream = new Uint8Array([...one, ...one]);
  const dec = new FrameDecoder();
  const out = [];
  for (const byte of stream) {
    dec.push(b(byte));
    for (let f = dec.next(); f !== null; f = dec.next()) out.push(decode(abi.AgentFrame, f));
  }
  assert.deepEqual(out, [hello, hello]);
  assert.equal(dec.pending, 0);
  assert.equal(one.length - HEADER_LEN, one[0]);
});

test('signals parse by name, bare name and number', () => {
  for (const name of abi.Signal.names) {
    assert.equal(abi.parseSignal(name), name);
    assert.equal(abi.parseSignal(name.slice(3).toLowerCase()), name);
    assert.equal(abi.parseSignal(String(abi.SIGNAL_NUMBERS[name])), name);
  }
  assert.throws(() => abi.parseSignal('SIGHUP'), /unknown signal/);
  assert.deepEqual(abi.Signal.names.filter((s) => !abi.signalMaskable(s)), ['SIGKILL', 'SIGPOLICY', 'SIGTRUST']);
  assert.equal(abi.SYSCALL_NAMES.CheckPolicy, 'check_policy');
  assert.equal(abi.SYSCALL_NAMES.ReadFd, 'read_fd');
});
