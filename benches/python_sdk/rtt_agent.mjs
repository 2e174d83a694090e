// The Node side of the SDK round-trip bench: a real agent under a real kernel.
//
// `node rtt_agent.mjs rtt N [WARMUP]`: connects through the agentos TypeScript SDK (the
// kernel's own read-only copy, preloaded in the jail), writes a 64-byte /mem/working/x once,
// makes WARMUP untimed reads (default 0: V8 compiles the SDK and Node's stream code during
// the first few thousand), then times N sequential `read('/mem/working/x')` round trips and
// prints `elapsed_ns <total>` — the same protocol as `bench-agent rtt N [WARMUP]` and
// rtt_agent.py, so the three SDKs are timed alike.
import { connect } from 'agentos';

const PATH = '/mem/working/x';
const [mode, count, warm = '0'] = process.argv.slice(2);
if (mode !== 'rtt' || !/^[0-9]+$/.test(count ?? '') || !/^[0-9]+$/.test(warm)) {
  process.stderr.write('usage: rtt_agent.mjs rtt N [WARMUP]\n');
  process.exit(2);
}
const n = Number(count);
const c = await connect();
await c.write(PATH, new Uint8Array(64).fill(0x5a));
let data;
for (let i = 0; i < Number(warm); i++) data = await c.read(PATH);
const start = process.hrtime.bigint();
for (let i = 0; i < n; i++) data = await c.read(PATH);
const elapsed = process.hrtime.bigint() - start;
if (data.length !== 64) throw new Error(`read ${data.length} bytes`);
process.stdout.write(`elapsed_ns ${elapsed}\n`);
