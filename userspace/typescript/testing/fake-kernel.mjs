// A fake kernel for the client tests: a Unix-socket server speaking the agent protocol's
// frames, driven by each test's `serve(conn)` script.

import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import * as abi from '../src/abi.js';
import { FrameDecoder, decode, encodeFrame } from '../src/frame.js';

export const WELCOME = {
  abi: abi.ABI_VERSION, agentId: 7, limits: { maxFrame: 1 << 20, maxInFlight: 64 }, policyDigest: new Uint8Array(32).fill(0xab),
};

/** One accepted connection: frames in (decoded AgentFrames), frames out. */
export class Conn {
  constructor(sock) {
    this.sock = sock;
    this.frames = new FrameDecoder(abi.DEFAULT_MAX_FRAME);
    this.inbox = [];
    this.waiters = [];
    this.ended = false;
    sock.on('data', (c) => {
      this.frames.push(c);
      for (let b = this.frames.next(); b !== null; b = this.frames.next()) {
        const f = decode(abi.AgentFrame, b);
        const w = this.waiters.shift();
        if (w) w(f);
        else this.inbox.push(f);
      }
    });
    sock.on('end', () => {
      this.ended = true;
      for (const w of this.waiters.splice(0)) w(null);
    });
    sock.on('error', () => {});
  }

  /** The next frame from the client (null once it hung up). */
  next() {
    if (this.inbox.length) return Promise.resolve(this.inbox.shift());
    if (this.ended) return Promise.resolve(null);
    return new Promise((r) => this.waiters.push(r));
  }

  send(frame) {
    this.sock.write(encodeFrame(abi.KernelFrame, frame));
  }

  raw(bytes) {
    this.sock.write(bytes);
  }

  respond(id, result) {
    this.send({ type: 'Response', response: { id, result } });
  }

  /** Reads Hello and answers Welcome (or `answer`). Returns the Hello. */
  async handshake(answer = { type: 'Welcome', welcome: WELCOME }) {
    const hello = await this.next();
    this.send(answer);
    return hello;
  }
}

/** Starts a fake kernel; `serve(conn)` runs for each connection. */
export async function fakeKernel(serve) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'agentos-ts-'));
  const sockPath = path.join(dir, 'kernel.sock');
  const conns = [];
  const done = [];
  const server = net.createServer((s) => {
    const c = new Conn(s);
    conns.push(c);
    // A failing script hangs up, so the client under test fails instead of waiting forever.
    done.push(Promise.resolve().then(() => serve(c)).catch((e) => {
      s.destroy();
      throw e;
    }));
  });
  await new Promise((r) => server.listen(sockPath, r));
  return {
    path: sockPath,
    conns,
    /** Waits for every serve() script, then stops. */
    async close() {
      const results = await Promise.allSettled(done);
      for (const c of conns) c.sock.destroy();
      await new Promise((r) => server.close(r));
      rmSync(dir, { recursive: true, force: true });
      for (const r of results) if (r.status === 'rejected') throw r.reason;
    },
  };
}
