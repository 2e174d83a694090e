// The jail layout the kernel writes (kernel/src/nodesdk.rs): `import 'agentos'` from a script
// anywhere resolves to the SDK through jail/register.mjs, and `agentos/abi` through the
// package's `exports`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const PKG = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

test('a script outside any node_modules tree imports agentos through the preload', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'agentos-jail-'));
  try {
    const sdk = path.join(tmp, 'sdk/node');
    mkdirSync(path.join(sdk, 'node_modules/agentos'), { recursive: true });
    cpSync(path.join(PKG, 'jail'), sdk, { recursive: true });
    cpSync(path.join(PKG, 'src'), path.join(sdk, 'node_modules/agentos/src'), { recursive: true });
    cpSync(path.join(PKG, 'package.json'), path.join(sdk, 'node_modules/agentos/package.json'));
    const agent = path.join(tmp, 'elsewhere/agent.mjs');
    mkdirSync(path.dirname(agent));
    writeFileSync(agent, `import { ABI_VERSION, connect } from 'agentos';
      import { Syscall } from 'agentos/abi';
      console.log(ABI_VERSION, typeof connect, Syscall.names.length);`);
    const plain = spawnSync(process.execPath, [agent], { encoding: 'utf8', env: { PATH: process.env.PATH } });
    assert.notEqual(plain.status, 0, 'without the preload the bare specifier must not resolve (the test would prove nothing)');
    const env = { PATH: process.env.PATH, NODE_OPTIONS: `--import="${path.join(sdk, 'register.mjs')}"` };
    const run = spawnSync(process.execPath, [agent], { encoding: 'utf8', env });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^\d+ function 19\n$/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
