// The client against a fake kernel: the handshake, calls in flight matched by id (and held to
// Welcome's maxInFlight), signal events, typed errors, and what a hostile or broken kernel
// can do to it (oversized or undecodable frames, a hang-up) — it fails cleanly, never hangs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import * as agentos from '../src/index.js';
import { fakeKernel, WELCOME } from '../testing/fake-kernel.mjs';

const text = (s) => new TextEncoder().encode(s);

test('handshake says Hello with this ABI and SDK, and keeps the Welcome', async () => {
  let hello;
  const k = await fakeKernel(async (c) => {
    hello = await c.handshake();
  });
  const client = await agentos.connect({ path: k.path });
  assert.deepEqual(hello, { type: 'Hello', hello: { abi: agentos.ABI_VERSION, sdk: agentos.SDK_NAME } });
  assert.equal(client.agentId, 7);
  assert.equal(client.maxFrame, 1 << 20);
  assert.deepEqual(client.welcome, WELCOME);
  client.disconnect();
  await k.close();
});

test('a write and a read round-trip', async () => {
  const k = await fakeKernel(async (c) => {
    await c.handshake();
    const w = await c.next();
    assert.equal(w.request.call.type, 'Write');
    assert.equal(w.request.call.mode, 'Truncate');
    c.respond(w.request.id, { ok: { type: 'Written', bytes: w.request.call.data.length } });
    const r = await c.next();
    assert.deepEqual(r.request.call, { type: 'Read', path: '/mem/working/a', offset: 0, len: null });
    c.respond(r.request.id, { ok: { type: 'Data', data: text('hello') } });
  });
  const client = await agentos.connect({ path: k.path });
  assert.equal(await client.write('/mem/working/a', 'hello'), 5);
  assert.equal(await client.readText('/mem/working/a'), 'hello');
  client.disconnect();
  await k.close();
});

test('a traceparent rides on later calls until cleared; a malformed one is refused', async () => {
  const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  const frames = [];
  const k = await fakeKernel(async (c) => {
    await c.handshake();
    for (let i = 0; i < 3; i++) {
      const f = await c.next();
      frames.push(f);
      c.respond(f.request.id, { ok: { type: 'Done' } });
    }
  });
  const client = await agentos.connect({ path: k.path });
  await client.syscall({ type: 'Checkpoint' });
  client.setTraceparent(tp);
  await client.syscall({ type: 'Checkpoint' });
  client.setTraceparent(null);
  await client.syscall({ type: 'Checkpoint' });
  assert.deepEqual(frames.map((f) => f.type), ['Request', 'TracedRequest', 'Request']);
  assert.equal(agentos.abi.formatTraceparent(frames[1].trace), tp);
  for (const [bad, says] of [
    ['00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01', 'trace id'],
    ['00-00000000000000000000000000000000-00f067aa0ba902b7-01', 'all-zero'],
    ['01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', 'version'],
    ['garbage', 'not a traceparent'],
  ]) {
    assert.throws(() => client.setTraceparent(bad), (e) => e instanceof RangeError && e.message.includes(says));
  }
  client.disconnect();
  await k.close();
});

test('several calls in flight are matched by id, answered in reverse order', async () => {
  const N = 16;
  const k = await fakeKernel(async (c) => {
    await c.handshake();
    const reqs = [];
    for (let i = 0; i < N; i++) reqs.push((await c.next()).request);
    // Every request is on the wire before any answer: all N were in flight at once.
    for (const r of reqs.reverse()) {
      c.respond(r.id, { ok: { type: 'Data', data: text(r.call.path) } });
    }
  });
  const client = await agentos.connect({ path: k.path });
  const paths = Array.from({ length: N }, (_, i) => `/mem/working/f${i}`);
  const got = await Promise.all(paths.map((p) => client.read(p)));
  assert.deepEqual(got.map((b) => new TextDecoder().decode(b)), paths);
  assert.equal(client.pendingCalls, 0);
  client.disconnect();
  await k.close();
});

test('no more than Welcome.maxInFlight calls are on the wire at once', async () => {
  const welcome = { ...WELCOME, limits: { maxFrame: 1 << 20, maxInFlight: 3 } };
  const N = 10;
  let overLimit = 0;
  const k = await fakeKernel(async (c) => {
    await c.handshake({ type: 'Welcome', welcome });
    const open = [];
    let received = 0;
    for (let answered = 0; answered < N; answered++) {
      // The client fills every free slot at once...
      while (open.length < Math.min(3, N - answered) && received < N) {
        open.push((await c.next()).request.id);
        received++;
      }
      // ...and sends nothing more until an answer frees one.
      await new Promise((r) => setTimeout(r, 20));
      overLimit += c.inbox.length;
      c.respond(open.shift(), { ok: { type: 'Done' } });
    }
  });
  const client = await agentos.connect({ path: k.path });
  await Promise.all(Array.from({ length: N }, (_, i) => client.unlink(`/mem/working/x${i}`)));
  assert.equal(overLimit, 0, 'a call went out beyond the kernel\'s in-flight limit');
  client.disconnect();
  await k.close();
});

test('a signal event reaches listeners, handlers and iterators', async () => {
  let conn;
  const k = await fakeKernel(async (c) => {
    conn = c;
    await c.handshake();
    const r = await c.next(); // the client is ready once its first call arrives
    c.send({ type: 'Event', event: { type: 'Signal', signal: 'SIGTERM', reason: 'operator' } });
    c.send({ type: 'Event', event: { type: 'Signal', signal: 'SIGUSR1', reason: 'checkpoint' } });
    c.respond(r.request.id, { ok: { type: 'Done' } });
  });
  const client = await agentos.connect({ path: k.path });
  const heard = [];
  client.on('signal', (sig, reason) => heard.push(`${sig}:${reason}`));
  const handled = new Promise((resolve) => client.onSignal('SIGTERM', (sig, reason) => resolve(`${sig} ${reason}`)));
  const events = client.signals();
  await client.unlink('/mem/working/ready');
  assert.deepEqual(await events.next(), { value: { signal: 'SIGTERM', reason: 'operator' }, done: false });
  assert.deepEqual(await events.next(), { value: { signal: 'SIGUSR1', reason: 'checkpoint' }, done: false });
  assert.equal(await handled, 'SIGTERM operator');
  assert.deepEqual(heard, ['SIGTERM:operator', 'SIGUSR1:checkpoint']);
  assert.throws(() => client.onSignal('SIGHUP', () => {}), TypeError);
  client.disconnect();
  assert.deepEqual(await events.next(), { value: undefined, done: true }, 'the iterator ends with the connection');
  assert.ok(conn);
  await k.close();
});

test('errors are typed, with their fields and POSIX numbers', async () => {
  const errs = [
    { type: 'PermissionDenied', rule: 'no-etc (security.md:12)', reason: 'path under /etc' },
    { type: 'RateLimited', retryAfterMs: 250 },
    { type: 'ApprovalDenied' },
    { type: 'ApprovalTimeout' },
    { type: 'NotFound', what: '/mem/working/x' },
    { type: 'TimedOut', afterMs: 5 },
    { type: 'TooLarge', size: 20, limit: 10 },
  ];
  const k = await fakeKernel(async (c) => {
    await c.handshake();
    for (const e of errs) c.respond((await c.next()).request.id, { err: e });
  });
  const client = await agentos.connect({ path: k.path });
  const caught = [];
  for (let i = 0; i < errs.length; i++) {
    caught.push(await client.read(`/x${i}`).then(() => assert.fail('resolved'), (e) => e));
  }
  const [denied, limited, apDenied, apTimeout, notFound, timedOut, tooLarge] = caught;
  assert.ok(denied instanceof agentos.PermissionDenied && denied instanceof agentos.AgentOSError);
  assert.equal(denied.rule, 'no-etc (security.md:12)');
  assert.equal(denied.reason, 'path under /etc');
  assert.equal(denied.errno, 13);
  assert.equal(denied.message, 'denied by policy: no-etc (security.md:12): path under /etc');
  assert.deepEqual(denied.wire, errs[0]);
  assert.ok(limited instanceof agentos.RateLimited);
  assert.equal(limited.retryAfterMs, 250);
  assert.equal(limited.errno, 11);
  assert.ok(apDenied instanceof agentos.ApprovalDenied && apDenied instanceof agentos.PermissionDenied);
  assert.equal(apDenied.errno, 125);
  assert.ok(apTimeout instanceof agentos.ApprovalTimeout && apTimeout instanceof agentos.PermissionDenied);
  assert.equal(apTimeout.errno, 110);
  assert.ok(notFound instanceof agentos.NotFound && !(notFound instanceof agentos.PermissionDenied));
  assert.equal(notFound.what, '/mem/working/x');
  assert.equal(timedOut.afterMs, 5);
  assert.equal(tooLarge.name, 'TooLarge');
  assert.equal(tooLarge.limit, 10);
  client.disconnect();
  await k.close();
});

test('a refused handshake is Refused with the kernel\'s reason', async () => {
  const k = await fakeKernel(async (c) => {
    await c.handshake({ type: 'Refused', errno: { type: 'ProtocolViolation', reason: 'abi 9 is not 3' } });
  });
  const err = await agentos.connect({ path: k.path }).then(() => assert.fail('connected'), (e) => e);
  assert.ok(err instanceof agentos.Refused, err);
  assert.ok(err.cause instanceof agentos.ProtocolViolation);
  assert.match(err.message, /handshake refused: protocol violation: abi 9 is not 3/);
  await k.close();
});

test('a Welcome for another ABI version is refused by the SDK', async () => {
  const k = await fakeKernel(async (c) => {
    await c.handshake({ type: 'Welcome', welcome: { ...WELCOME, abi: agentos.ABI_VERSION + 1 } });
  });
  const err = await agentos.connect({ path: k.path }).then(() => assert.fail('connected'), (e) => e);
  assert.ok(err instanceof agentos.ProtocolViolation, err);
  assert.match(err.message, /speaks ABI/);
  await k.close();
});

test('an oversized frame header fails the connection before anything is buffered', async () => {
  const k = await fakeKernel(async (c) => {
    await c.handshake();
    await c.next();
    // 4 GiB - 1 announced, over the 1 MiB the Welcome said; then a trickle of bytes.
    c.raw(new Uint8Array([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
  });
  const client = await agentos.connect({ path: k.path });
  const closed = new Promise((r) => client.once('close', r));
  const err = await client.stat('/x').then(() => assert.fail('resolved'), (e) => e);
  assert.ok(err instanceof agentos.ProtocolViolation, err);
  assert.match(err.message, /frame of 4294967295 bytes is over the limit of 1048576/);
  assert.equal(await closed, err);
  const later = await client.stat('/y').then(() => assert.fail('resolved'), (e) => e);
  assert.equal(later, err, 'later calls fail at once with the same error');
  await k.close();
});

test('an undecodable frame fails the connection with a clear error', async () => {
  const k = await fakeKernel(async (c) => {
    await c.handshake();
    await c.next();
    c.raw(new Uint8Array([2, 0, 0, 0, 9, 0])); // KernelFrame variant 9 does not exist
  });
  const client = await agentos.connect({ path: k.path });
  const err = await client.list('/x').then(() => assert.fail('resolved'), (e) => e);
  assert.ok(err instanceof agentos.ProtocolViolation, err);
  assert.match(err.message, /does not decode: KernelFrame has no variant 9/);
  await k.close();
});

test('the kernel hanging up fails every waiting call with ConnectionClosed', async () => {
  const k = await fakeKernel(async (c) => {
    await c.handshake();
    await c.next();
    await c.next();
    c.sock.end();
  });
  const client = await agentos.connect({ path: k.path });
  const results = await Promise.allSettled([client.recv(), client.recv(1000)]);
  for (const r of results) {
    assert.equal(r.status, 'rejected');
    assert.ok(r.reason instanceof agentos.ConnectionClosed, r.reason);
  }
  await k.close();
});

test('malformed arguments are refused before a byte is sent', async () => {
  let frames = 0;
  const k = await fakeKernel(async (c) => {
    await c.handshake();
    for (let f = await c.next(); f !== null; f = await c.next()) {
      frames++;
      c.respond(f.request.id, { ok: { type: 'Written', bytes: 4 } });
    }
  });
  const client = await agentos.connect({ path: k.path });
  const reject = (p) => p.then(() => assert.fail('resolved'), (e) => e);
  assert.ok((await reject(client.write('/mem/working/big', new Uint8Array(2 << 20)))) instanceof agentos.TooLarge);
  assert.ok((await reject(client.write(42, 'x'))) instanceof TypeError);
  assert.ok((await reject(client.write('/x', 42))) instanceof TypeError);
  assert.ok((await reject(client.readFd(-1, 10))) instanceof RangeError);
  assert.ok((await reject(client.readFd(2 ** 32, 10))) instanceof RangeError);
  assert.ok((await reject(client.readAt('/x', 1.5, 10))) instanceof RangeError);
  assert.ok((await reject(client.exec('/bin/echo'))) instanceof TypeError);
  assert.ok((await reject(client.exec([1]))) instanceof TypeError);
  assert.ok((await reject(client.signal(2, 'SIGHUP'))) instanceof TypeError);
  assert.ok((await reject(client.write('/x\uD800', 'x'))) instanceof RangeError);
  assert.equal(await client.write('/mem/working/ok', 'good'), 4);
  assert.equal(frames, 1, 'only the one good write reached the kernel');
  client.disconnect();
  await k.close();
});

test('an agent process ends when its work is done (the socket does not hold it)', async () => {
  const k = await fakeKernel(async (c) => {
    await c.handshake();
    const f = await c.next();
    c.respond(f.request.id, { ok: { type: 'Checkpoint', number: 3 } });
  });
  const index = fileURLToPath(new URL('../src/index.js', import.meta.url));
  const script = `import { connect } from ${JSON.stringify(index)};
    const c = await connect({ path: ${JSON.stringify(k.path)} });
    c.on('signal', () => {});
    console.log('checkpoint', await c.checkpoint());`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  const [code, signal] = await new Promise((r) => child.on('exit', (c, s) => r([c, s])));
  clearTimeout(timer);
  assert.equal(signal, null, 'the agent hung and was killed');
  assert.equal(code, 0);
  assert.equal(out.trim(), 'checkpoint 3');
  await k.close();
});

test('without AGENTOS_FD, connect() says the program is not under agentos', async () => {
  const saved = process.env.AGENTOS_FD;
  delete process.env.AGENTOS_FD;
  try {
    await assert.rejects(agentos.connect(), (e) => e instanceof agentos.NoKernel && /AGENTOS_FD is not set/.test(e.message));
  } finally {
    if (saved !== undefined) process.env.AGENTOS_FD = saved;
  }
});

test('next() calls waiting together on one iterator each get their own event', async () => {
  const k = await fakeKernel(async (c) => {
    await c.handshake();
    const r = await c.next();
    c.respond(r.request.id, { ok: { type: 'Done' } });
    await c.next(); // the second call: both next() are waiting by now
    c.send({ type: 'Event', event: { type: 'Signal', signal: 'SIGINT', reason: 'one' } });
    c.send({ type: 'Event', event: { type: 'Signal', signal: 'SIGUSR1', reason: 'two' } });
    c.sock.end();
  });
  const client = await agentos.connect({ path: k.path });
  const events = client.signals();
  await client.unlink('/mem/working/a');
  const both = Promise.all([events.next(), events.next()]);
  client.unlink('/mem/working/b').catch(() => {}); // answered only by the hang-up
  assert.deepEqual((await both).map((r) => r.value.reason), ['one', 'two']);
  assert.deepEqual(await events.next(), { value: undefined, done: true });
  await k.close();
});

test('MCP tools are listed and called as SERVER/TOOL with JSON arguments', async () => {
  const tool = { server: 'everything', name: 'echo', description: 'Echoes', inputSchemaJson: '{"type":"object"}' };
  const k = await fakeKernel(async (c) => {
    await c.handshake();
    const l = await c.next();
    assert.deepEqual(l.request.call, { type: 'ListTools' });
    c.respond(l.request.id, { ok: { type: 'Tools', tools: [tool] } });
    const t = await c.next();
    assert.deepEqual(t.request.call, { type: 'Call', action: 'everything/echo', paramsJson: '{"message":"hi"}' });
    c.respond(t.request.id, { ok: { type: 'CallResult', resultJson: '{"content":[{"type":"text","text":"Echo: hi"}]}' } });
    const denied = await c.next();
    c.respond(denied.request.id, { err: { type: 'PermissionDenied', rule: 'no-env (p.md:9)', reason: 'denied' } });
  });
  const client = await agentos.connect({ path: k.path });
  assert.deepEqual(await client.listTools(), [tool]);
  const out = await client.callTool('everything', 'echo', { message: 'hi' });
  assert.equal(out.content[0].text, 'Echo: hi');
  await assert.rejects(client.callTool('everything', 'get-env'), (e) => e instanceof agentos.PermissionDenied && e.rule === 'no-env (p.md:9)');
  await assert.rejects(client.callTool('a/b', 'echo'), TypeError);
  await assert.rejects(client.callTool('everything', 'echo', [1]), TypeError);
  client.disconnect();
  await k.close();
});
