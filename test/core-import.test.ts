/** Importing the core must not load a native addon (node-hid, lmdb) nor the validation-only bitcore-lib. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

test('the core entry loads no native addon and no bitcore-lib', () => {
  const probe = `
    import { createRequire } from 'node:module';
    const require = createRequire(import.meta.url);
    const Module = require('node:module');
    const loaded = [];
    const originalDlopen = process.dlopen;
    process.dlopen = function (...args) { loaded.push('dlopen:' + args[1]); return originalDlopen.apply(this, args); };
    const originalLoad = Module._load;
    Module._load = function (request, ...rest) { loaded.push(request); return originalLoad.call(this, request, ...rest); };
    const core = await import('./src/index.ts');
    if (typeof core.buildCommitmentTransaction !== 'function') throw new Error('core exports missing');
    const bad = loaded.filter((r) => r.startsWith('dlopen:') || /bitcore|node-hid|lmdb|mqtt/.test(r));
    console.log(JSON.stringify(bad));
  `;
  const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', probe], {
    cwd: root,
    encoding: 'utf8',
  });
  assert.equal(result.status, 0, result.stderr);
  assert.deepEqual(JSON.parse(result.stdout.trim().split('\n').pop()!), []);
});
