/**
 * Importing the core must not load a native addon (node-hid, lmdb, cbor-extract), the MQTT client or
 * broker, nor the validation-only bitcore-lib (house style, practice 11).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

test('the core entry loads no native addon, no MQTT client and no bitcore-lib', () => {
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
    for (const name of ['buildCommitmentTransaction', 'decodeMessage', 'SessionManager', 'Messenger', 'NoiseInitiator']) {
      if (typeof core[name] !== 'function') throw new Error('core export missing: ' + name);
    }
    const bad = loaded.filter((r) => r.startsWith('dlopen:') || /bitcore|node-hid|lmdb|mqtt|aedes|cbor-extract/.test(r));
    console.log(JSON.stringify(bad));
  `;
  const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', probe], {
    cwd: root,
    encoding: 'utf8',
  });
  assert.equal(result.status, 0, result.stderr);
  assert.deepEqual(JSON.parse(result.stdout.trim().split('\n').pop()!), []);
});

test('trickle/hid loads node-hid only when a USB key is looked for, not on import', () => {
  const probe = `
    const loaded = [];
    const originalDlopen = process.dlopen;
    process.dlopen = function (...args) { loaded.push('dlopen:' + args[1]); return originalDlopen.apply(this, args); };
    const hid = await import('./src/signer/hid/index.ts');
    if (typeof hid.HidSigner !== 'function' || typeof hid.NodeHidConnector !== 'function') throw new Error('hid exports missing');
    console.log(JSON.stringify(loaded.filter((r) => /node-hid|HID/.test(r))));
  `;
  const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', probe], { cwd: root, encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  assert.deepEqual(JSON.parse(result.stdout.trim().split('\n').pop()!), []);
});
