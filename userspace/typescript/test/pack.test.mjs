// `npm pack` makes an installable package: exactly the sources, declarations, package.json
// and README; once unpacked into a node_modules, `import 'agentos'` and `agentos/abi` resolve
// through its `exports`, and every declared module is there.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const PKG = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const npm = spawnSync('npm', ['--version'], { encoding: 'utf8' });

test('npm pack makes a package that imports', { skip: npm.status !== 0 && 'npm is not installed' }, () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'agentos-pack-'));
  try {
    const packed = spawnSync('npm', ['pack', '--json', '--pack-destination', tmp], {
      cwd: PKG, encoding: 'utf8', env: { ...process.env, npm_config_cache: path.join(tmp, 'cache'), npm_config_offline: 'true' },
    });
    assert.equal(packed.status, 0, packed.stderr);
    const [info] = JSON.parse(packed.stdout);
    const files = info.files.map((f) => f.path).sort();
    const src = ['abi', 'client', 'errors', 'frame', 'index', 'postcard'].flatMap((m) => [`src/${m}.d.ts`, `src/${m}.js`]);
    assert.deepEqual(files, ['README.md', 'package.json', ...src].sort());
    const pkg = JSON.parse(readFileSync(path.join(PKG, 'package.json'), 'utf8'));
    for (const target of Object.values(pkg.exports).flatMap((e) => (typeof e === 'string' ? [e] : Object.values(e)))) {
      assert.ok(existsSync(path.join(PKG, target)), `exports names a missing file: ${target}`);
    }
    const dest = path.join(tmp, 'app/node_modules/agentos');
    mkdirSync(dest, { recursive: true });
    const untar = spawnSync('tar', ['xzf', path.join(tmp, info.filename), '-C', dest, '--strip-components=1']);
    assert.equal(untar.status, 0, String(untar.stderr));
    const app = path.join(tmp, 'app/main.mjs');
    writeFileSync(app, `import { connect, PermissionDenied, ABI_VERSION } from 'agentos';
      import { KernelFrame } from 'agentos/abi';
      console.log(typeof connect, typeof PermissionDenied, ABI_VERSION, KernelFrame.names.join(','));`);
    const run = spawnSync(process.execPath, [app], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^function function \d+ Welcome,Refused,Response,Event\n$/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
