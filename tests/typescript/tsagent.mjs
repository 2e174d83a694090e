// The Node test agent: one mode per integration test in tests/tests/suite/typescript.rs.
// Imports the SDK the way any agent does, `from 'agentos'`, with nothing installed: the
// kernel's read-only copy is preloaded in the jail. Prints one line per step; the Rust test
// reads them from the agent's log.
import * as agentos from 'agentos';

const say = (line) => process.stdout.write(`${line}\n`);
const td = new TextDecoder();

async function outcome(name, fn) {
  try {
    say(`${name}: ok ${await fn()}`);
  } catch (e) {
    if (!(e instanceof agentos.AgentOSError)) throw e;
    say(`${name}: err ${e.name} errno=${e.errno}`);
  }
}

async function tour(c) {
  say(`hello: agent ${c.agentId} abi ${c.welcome.abi} in-flight ${c.maxInFlight}`);
  await outcome('write', () => c.write('/mem/working/b.txt', 'hello'));
  await outcome('append', () => c.append('/mem/working/b.txt', new Uint8Array([0x21])));
  await outcome('read', () => c.readText('/mem/working/b.txt'));
  await outcome('read_at', async () => td.decode(await c.readAt('/mem/working/b.txt', 1, 3)));
  await outcome('stat', async () => { const s = await c.stat('/mem/working/b.txt'); return `${s.kind} ${s.size}`; });
  await outcome('list', async () => (await c.list('/mem/working')).map((e) => e.name).join(','));
  await outcome('create_new', () => c.createNew('/mem/working/b.txt', 'x'));
  await outcome('check_allowed', async () => { const d = await c.checkPolicy('file_write', '/mem/working/z'); return `${d.allowed} ${d.rule}`; });
  await outcome('check_denied', async () => (await c.checkPolicy('file_write', '/etc/passwd')).allowed);
  await outcome('rename', () => c.rename('/mem/working/b.txt', '/mem/working/c.txt'));
  await outcome('read_renamed', () => c.readText('/mem/working/c.txt'));
  await outcome('unlink', () => c.unlink('/mem/working/c.txt'));
  await outcome('stat_gone', () => c.stat('/mem/working/c.txt'));
  await outcome('exec', async () => { const o = await c.exec(['/bin/echo', 'hi']); return `${o.status} ${td.decode(o.stdout).trim()}`; });
  await outcome('recv', () => c.recv(10));
  await outcome('close', () => c.close(3));
  await outcome('checkpoint', () => c.checkpoint());
  await outcome('exit', () => c.announceExit(0));
  say('tour done');
}

async function deny(c) {
  try {
    await c.write('/mem/working/forbidden/x', 'no');
    say('violation was allowed?!');
  } catch (e) {
    if (!(e instanceof agentos.PermissionDenied)) throw e;
    say(`PermissionDenied errno=${e.errno} rule=${JSON.stringify(e.rule)} reason=${JSON.stringify(e.reason)} wire=${e.wire.type}`);
  }
  // SIGPOLICY ends us before this timer does.
  await new Promise((r) => setTimeout(r, 30_000));
  say('still alive?!');
}

async function term(c) {
  c.onSignal('SIGTERM', async (sig, reason) => {
    say(`handler ran for ${sig} (${reason})`);
    await c.write('/mem/working/goodbye', 'clean');
    say('clean shutdown');
    await c.exit(0);
  });
  await c.write('/mem/working/ready', '1');
  say('ready');
  // The iterator keeps the process alive until the kernel's event arrives.
  for await (const { signal, reason } of c.signals()) {
    say(`event ${signal} (${reason})`);
  }
}

async function many(c, n) {
  let most = 0;
  const track = (p) => { most = Math.max(most, c.pendingCalls); return p; };
  const writes = [];
  for (let i = 0; i < n; i++) writes.push(track(c.write(`/mem/working/a${i}`, String(i))));
  await Promise.all(writes);
  const reads = [];
  for (let i = 0; i < n; i++) reads.push(track(c.readText(`/mem/working/a${i}`)));
  const back = await Promise.all(reads);
  const ok = back.filter((b, i) => b === String(i)).length;
  say(`in flight: ok ${ok}/${n}, at most ${most} pending at once (kernel limit ${c.maxInFlight})`);
}

const [mode, ...rest] = process.argv.slice(2);
const c = await agentos.connect();
if (mode === 'tour') await tour(c);
else if (mode === 'deny') await deny(c);
else if (mode === 'term') await term(c);
else if (mode === 'many') await many(c, Number(rest[0]));
else throw new Error(`unknown mode ${mode}`);
