/**
 * Device adapters against fixtures, never the machine's own interfaces or firewall: NetInterfaceMeter
 * on a temp copy of test/fixtures/sysfs-net whose counters the tests rewrite, SimulatedMeter on a
 * ManualClock, and the gates with real child processes (node -e) writing marker files in a temp dir.
 * Every Meter and every ServiceGate adapter passes the same small contract suite.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile, access } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ManualClock } from '../src/clock.js';
import { MeteringError, type Meter, type MeteringErrorCode, type ServiceGate } from '../src/metering/index.js';
import { CallbackGate, CommandGate, NetInterfaceMeter, SimulatedMeter } from '../devices/index.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/sysfs-net', import.meta.url));
const temps: string[] = [];
after(async () => {
  await Promise.all(temps.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'trickle-devices-'));
  temps.push(dir);
  return dir;
}

/** A private copy of the sysfs fixtures, and a writer for one counter file. */
async function sysfs() {
  const root = join(await tempDir(), 'net');
  await cp(FIXTURES, root, { recursive: true });
  const write = (iface: string, file: string, content: string) => writeFile(join(root, iface, 'statistics', file), content);
  return { root, write };
}

function isMeteringError(code: MeteringErrorCode) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof MeteringError, `expected MeteringError, got ${String(e)}`);
    assert.equal(e.code, code);
    return true;
  };
}

// ---------------------------------------------------------------- contract suites

/** Every Meter: a unit, bigint readings ≥ 0 that never decrease and grow as the device is used. */
async function meterContract(name: string, make: () => Promise<{ meter: Meter; use: (step: number) => Promise<void> }>) {
  await test(`Meter contract: ${name}`, async () => {
    const { meter, use } = await make();
    assert.equal(typeof meter.unit, 'string');
    assert.ok(meter.unit.length > 0);
    let previous = await meter.read();
    assert.equal(typeof previous, 'bigint');
    assert.ok(previous >= 0n);
    const first = previous;
    for (let step = 1; step <= 5; step++) {
      await use(step);
      const reading = await meter.read();
      assert.ok(reading >= previous, `reading ${reading} after ${previous}`);
      previous = reading;
    }
    assert.ok(previous > first, 'use is counted');
  });
}

/** Every ServiceGate: starts paused, switches, is idempotent, runs switches in call order. */
async function gateContract(name: string, make: () => Promise<{ gate: ServiceGate; actions: () => Promise<string[]> }>) {
  await test(`ServiceGate contract: ${name}`, async () => {
    const { gate, actions } = await make();
    assert.equal(gate.state, 'paused');
    await gate.pause();
    assert.deepEqual(await actions(), [], 'pausing a paused gate does nothing');
    await gate.open();
    assert.equal(gate.state, 'open');
    await gate.open();
    assert.deepEqual(await actions(), ['open']);
    await Promise.all([gate.pause(), gate.open(), gate.pause()]);
    assert.equal(gate.state, 'paused');
    assert.deepEqual(await actions(), ['open', 'pause', 'open', 'pause']);
  });
}

await meterContract('NetInterfaceMeter', async () => {
  const { root, write } = await sysfs();
  return {
    meter: new NetInterfaceMeter({ iface: 'eth0', direction: 'both', sysfsRoot: root }),
    use: (step) => write('eth0', 'rx_bytes', `${1000 + step * 1500}\n`),
  };
});

await meterContract('SimulatedMeter', async () => {
  const clock = new ManualClock();
  return { meter: new SimulatedMeter({ unit: 'Wh', unitsPerSecond: 7n, clock }), use: async () => clock.advance(333) };
});

await gateContract('CallbackGate', async () => {
  const log: string[] = [];
  const gate = new CallbackGate({ onOpen: () => void log.push('open'), onPause: async () => void log.push('pause') });
  return { gate, actions: async () => [...log] };
});

/** A command that appends `word` to `file`, run by node itself; argv passed as a list. */
function appendCommand(file: string, word: string): [string, ...string[]] {
  return [process.execPath, '-e', 'require("fs").appendFileSync(process.argv[1], process.argv[2] + "\\n")', file, word];
}

async function markerLines(file: string): Promise<string[]> {
  try {
    return (await readFile(file, 'utf8')).split('\n').filter((line) => line !== '');
  } catch {
    return [];
  }
}

await gateContract('CommandGate', async () => {
  const marker = join(await tempDir(), 'marker');
  const gate = new CommandGate({ openCommand: appendCommand(marker, 'open'), pauseCommand: appendCommand(marker, 'pause') });
  return { gate, actions: () => markerLines(marker) };
});

// ---------------------------------------------------------------- NetInterfaceMeter

test('NetInterfaceMeter: counts from the first reading, per direction, and survives a counter reset', async () => {
  const { root, write } = await sysfs();
  const rx = new NetInterfaceMeter({ iface: 'eth0', direction: 'rx', sysfsRoot: root });
  const tx = new NetInterfaceMeter({ iface: 'eth0', direction: 'tx', sysfsRoot: root });
  const both = new NetInterfaceMeter({ iface: 'eth0', direction: 'both', sysfsRoot: root });
  assert.equal(rx.unit, 'B');
  assert.deepEqual([await rx.read(), await tx.read(), await both.read()], [0n, 0n, 0n]);

  await write('eth0', 'rx_bytes', '1500\n');
  await write('eth0', 'tx_bytes', '800\n');
  assert.deepEqual([await rx.read(), await tx.read(), await both.read()], [500n, 300n, 800n]);

  // Interface down/up: rx restarts from zero and counts 200 again; tx carries on.
  await write('eth0', 'rx_bytes', '200\n');
  await write('eth0', 'tx_bytes', '900\n');
  assert.deepEqual([await rx.read(), await tx.read(), await both.read()], [700n, 400n, 1100n]);
  assert.equal(rx.resets, 1);
  assert.equal(both.resets, 1);
  assert.equal(tx.resets, 0);
});

test('NetInterfaceMeter: counters up to 2^64 − 1 are read exactly', async () => {
  const { root, write } = await sysfs();
  const meter = new NetInterfaceMeter({ iface: 'wlan0', direction: 'rx', sysfsRoot: root });
  assert.equal(await meter.read(), 0n);
  await write('wlan0', 'rx_bytes', '18446744073709551615');
  assert.equal(await meter.read(), 615n);
});

test('NetInterfaceMeter: garbage, overflow, oversized or missing counters are METER_FAILED and leave the total alone', async () => {
  const { root, write } = await sysfs();
  const meter = new NetInterfaceMeter({ iface: 'eth0', direction: 'both', sysfsRoot: root });
  await meter.read();
  await write('eth0', 'rx_bytes', '1100\n');
  assert.equal(await meter.read(), 100n);

  for (const bad of ['12a\n', '', '\n', '-5\n', ' 1200\n', '1200\n\n', '0x10\n', '18446744073709551616\n', '9'.repeat(40)]) {
    await write('eth0', 'tx_bytes', bad);
    await assert.rejects(meter.read(), isMeteringError('METER_FAILED'), JSON.stringify(bad));
  }
  await write('eth0', 'tx_bytes', '1'.repeat(20) + '\n'.repeat(20)); // 40 bytes: over the size limit
  await assert.rejects(meter.read(), isMeteringError('METER_FAILED'));

  await write('eth0', 'tx_bytes', '500\n');
  assert.equal(await meter.read(), 100n, 'the failed reads changed nothing');

  await rm(join(root, 'eth0', 'statistics', 'rx_bytes'));
  await assert.rejects(meter.read(), (e: unknown) => isMeteringError('METER_FAILED')(e) && (e as MeteringError).cause !== undefined);
  await assert.rejects(new NetInterfaceMeter({ iface: 'eth9', direction: 'rx', sysfsRoot: root }).read(), isMeteringError('METER_FAILED'));
});

test('NetInterfaceMeter: interface names that could leave the sysfs directory are refused', () => {
  for (const iface of ['../etc', '..', '.', 'a/b', 'eth0/../../x', '', 'x'.repeat(16), 'eth 0', 'eth0\n', 'é']) {
    assert.throws(() => new NetInterfaceMeter({ iface, direction: 'rx' }), RangeError, JSON.stringify(iface));
  }
  assert.throws(() => new NetInterfaceMeter({ iface: 'eth0', direction: 'up' as 'rx' }), RangeError);
  for (const iface of ['eth0', 'wlp2s0', 'br-lan', 'eth0.100', 'veth_a:1', 'x'.repeat(15)]) {
    assert.doesNotThrow(() => new NetInterfaceMeter({ iface, direction: 'rx' }));
  }
});

// ---------------------------------------------------------------- SimulatedMeter

test('SimulatedMeter: grows only while running, in whole units from elapsed ms', async () => {
  const clock = new ManualClock();
  const meter = new SimulatedMeter({ unit: 'kB', unitsPerSecond: 3n, clock });
  assert.equal(meter.running, true);
  clock.advance(500);
  assert.equal(await meter.read(), 1n); // 1.5 floored
  clock.advance(500);
  assert.equal(await meter.read(), 3n);
  meter.pause();
  meter.pause();
  assert.equal(meter.running, false);
  clock.advance(10_000);
  assert.equal(await meter.read(), 3n);
  meter.resume();
  clock.advance(1_167); // 2167 ms in all: 6.5 units
  assert.equal(await meter.read(), 6n);
  meter.pause();
  meter.resume();
  clock.advance(1);
  assert.equal(await meter.read(), 6n, 'no fraction lost or gained across pause/resume'); // 2168 ms: 6.504

  const idle = new SimulatedMeter({ unit: 'reading', unitsPerSecond: 1n, clock, paused: true });
  clock.advance(5000);
  assert.equal(await idle.read(), 0n);
  assert.throws(() => new SimulatedMeter({ unit: 'B', unitsPerSecond: -1n }), RangeError);
  assert.throws(() => new SimulatedMeter({ unit: 'B', unitsPerSecond: 1 as unknown as bigint }), TypeError);
});

// ---------------------------------------------------------------- gates

test('CallbackGate: a throwing callback is GATE_FAILED and keeps the state', async () => {
  let fail = true;
  const gate = new CallbackGate({
    onOpen: () => {
      if (fail) throw new Error('relay stuck');
    },
    onPause: () => {},
  });
  await assert.rejects(gate.open(), isMeteringError('GATE_FAILED'));
  assert.equal(gate.state, 'paused');
  fail = false;
  await gate.open();
  assert.equal(gate.state, 'open');
  assert.equal(new CallbackGate({ onOpen: () => {}, onPause: () => {}, initialState: 'open' }).state, 'open');
});

test('CommandGate: a non-zero exit is GATE_FAILED with the exit code and stderr, and keeps the state', async () => {
  const marker = join(await tempDir(), 'marker');
  const gate = new CommandGate({
    openCommand: [process.execPath, '-e', 'process.stderr.write("no such chain"); process.exit(3)'],
    pauseCommand: appendCommand(marker, 'pause'),
    initialState: 'open',
  });
  await gate.pause();
  assert.equal(gate.state, 'paused');
  await assert.rejects(gate.open(), (e: unknown) => {
    assert.ok(isMeteringError('GATE_FAILED')(e));
    assert.match((e as Error).message, /openCommand exited with code 3: no such chain/);
    return true;
  });
  assert.equal(gate.state, 'paused');
  assert.deepEqual(await markerLines(marker), ['pause']);
});

test('CommandGate: a missing program and a command over its timeout are GATE_FAILED', async () => {
  const dir = await tempDir();
  const missing = new CommandGate({ openCommand: [join(dir, 'no-such-program')], pauseCommand: ['true'] });
  await assert.rejects(missing.open(), (e: unknown) => isMeteringError('GATE_FAILED')(e) && /could not run \(ENOENT\)/.test((e as Error).message));
  assert.equal(missing.state, 'paused');

  const hung = new CommandGate({ openCommand: [process.execPath, '-e', 'setInterval(() => {}, 1000)'], pauseCommand: ['true'], timeoutMs: 300 });
  await assert.rejects(hung.open(), (e: unknown) => isMeteringError('GATE_FAILED')(e) && /was killed/.test((e as Error).message));
  assert.equal(hung.state, 'paused');
});

test('CommandGate: arguments go to the program as they are, never through a shell', async () => {
  const dir = await tempDir();
  const marker = join(dir, 'marker');
  const injected = join(dir, 'injected');
  const word = `$(touch ${injected}); touch ${injected} && echo \`id\``;
  const gate = new CommandGate({ openCommand: appendCommand(marker, word), pauseCommand: appendCommand(marker, 'pause') });
  await gate.open();
  assert.deepEqual(await markerLines(marker), [word]);
  await assert.rejects(access(injected));
  assert.throws(() => new CommandGate({ openCommand: [] as unknown as [string], pauseCommand: ['true'] }), TypeError);
  assert.throws(() => new CommandGate({ openCommand: 'rm -rf /' as unknown as [string], pauseCommand: ['true'] }), TypeError);
  assert.throws(() => new CommandGate({ openCommand: ['true'], pauseCommand: ['true'], timeoutMs: 0 }), RangeError);
});
