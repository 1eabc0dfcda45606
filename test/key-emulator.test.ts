/**
 * The key's runners (firmware-bridge/emulator.ts, gadget.ts, setup-gadget.sh): the emulator in-process
 * and as a CLI process, driven by the host's real client (SocketHidConnector + HidClient) over a Unix
 * socket and loopback TCP; its state surviving SIGKILL; one host at a time; confirmation modes. The Pi
 * runner cannot run here (no /dev/hidg0): its argument parsing, --print-serial and the button logic (with
 * a scripted gpioget) are tested, and the setup script is syntax-checked. Nothing asserts a duration.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnection } from 'node:net';
import { createInterface } from 'node:readline';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { SocketHidConnector, type SocketHidConnectorOptions } from '../src/signer/hid/transport.js';
import { HidClient } from '../src/signer/hid/client.js';
import { KeepaliveStatus } from '../src/signer/hid/framing.js';
import { decodeBody, emptyType, encodeBody, failureType, infoResponseType, KeyCommand, KeyStatus, policyType, setPolicyResponseType, type InfoResponse } from '../src/signer/hid/commands.js';
import { DEFAULT_KEY_POLICY, FIRMWARE_VERSION } from '../firmware-bridge/core/key.js';
import { startEmulator, parseEmulatorArgs, promptConfirm, type RunningEmulator } from '../firmware-bridge/emulator.js';
import {
  ButtonConfirm,
  DEFAULT_CONFIRM_TIMEOUT_MS,
  DEFAULT_DEVICE,
  DEFAULT_GPIO_CHIP,
  DEFAULT_STATE_DIR,
  GpiodTools,
  HidGadgetDevice,
  gpiogetArgs,
  keySerial,
  parseGadgetArgs,
  parseGpiodMajor,
  parseGpioValue,
  type CommandRunner,
} from '../firmware-bridge/gadget.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const run = promisify(execFile);

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'trickle-key-emu-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

interface Host {
  client: HidClient;
  closed: Promise<void>;
  close(): Promise<void>;
}

/** A host as the signer would be: the socket connector, the link client, a channel allocated. */
async function connect(options: SocketHidConnectorOptions): Promise<Host> {
  const { transport } = await new SocketHidConnector(options).connect();
  const closed = new Promise<void>((resolve) => transport.onClose(() => resolve()));
  const client = new HidClient(transport);
  const info = await client.init();
  assert.deepEqual([info.major, info.minor, info.build], [FIRMWARE_VERSION.major, FIRMWARE_VERSION.minor, FIRMWARE_VERSION.build]);
  return { client, closed, close: () => client.close() };
}

async function getInfo(client: HidClient): Promise<InfoResponse> {
  const response = await client.exchange(KeyCommand.GET_INFO, encodeBody(emptyType, {}));
  assert.equal(response[0], KeyStatus.OK);
  return decodeBody(infoResponseType, response.subarray(1));
}

async function withEmulator(dir: string, options: Partial<Parameters<typeof startEmulator>[0]>, fn: (emulator: RunningEmulator, connectOptions: SocketHidConnectorOptions) => Promise<void>): Promise<void> {
  const socketPath = join(dir, 'key.sock');
  const emulator = await startEmulator({ socketPath, stateDir: join(dir, 'state'), ...options });
  try {
    await fn(emulator, { path: socketPath });
  } finally {
    await emulator.close();
  }
}

test('emulator in-process: INIT and GET_INFO over the Unix socket, state file 0600', () =>
  withTempDir((dir) =>
    withEmulator(dir, {}, async (emulator, connectOptions) => {
      assert.match(emulator.serial, /^[0-9A-F]{16}$/);
      assert.equal(emulator.socketPath, join(dir, 'key.sock'));
      const host = await connect(connectOptions);
      try {
        const info = await getInfo(host.client);
        assert.equal(info.serial, emulator.serial);
        assert.equal(info.locked, false);
        assert.equal(info.firmware, `${FIRMWARE_VERSION.major}.${FIRMWARE_VERSION.minor}.${FIRMWARE_VERSION.build}`);
      } finally {
        await host.close();
      }
      if (process.platform !== 'win32') {
        assert.equal((await stat(join(dir, 'state', 'key-state.bin'))).mode & 0o777, 0o600);
        assert.equal((await stat(join(dir, 'key.sock'))).mode & 0o777, 0o600);
      }
    }),
  ));

test('emulator in-process: loopback TCP on a random port; the same state gives the same serial', () =>
  withTempDir(async (dir) => {
    const stateDir = join(dir, 'state');
    const first = await startEmulator({ port: 0, stateDir });
    let serial: string;
    try {
      assert.ok(first.port !== undefined && first.port > 0);
      assert.equal(first.socketPath, undefined);
      const host = await connect({ host: '127.0.0.1', port: first.port });
      try {
        serial = (await getInfo(host.client)).serial;
        assert.equal(serial, first.serial);
      } finally {
        await host.close();
      }
    } finally {
      await first.close();
    }
    const second = await startEmulator({ port: 0, stateDir });
    try {
      assert.equal(second.serial, serial);
    } finally {
      await second.close();
    }
  }));

test('emulator: a new host connection replaces the old one', () =>
  withTempDir((dir) =>
    withEmulator(dir, {}, async (emulator, connectOptions) => {
      const old = await connect(connectOptions);
      const fresh = await connect(connectOptions);
      try {
        // The old host's connection is closed by the key, as a re-plugged device drops its old host.
        await old.closed;
        assert.equal((await getInfo(fresh.client)).serial, emulator.serial);
        await assert.rejects(getInfo(old.client));
      } finally {
        await old.close();
        await fresh.close();
      }
      // After the host goes away, the next one is served from a clean link.
      const next = await connect(connectOptions);
      try {
        assert.equal((await getInfo(next.client)).serial, emulator.serial);
      } finally {
        await next.close();
      }
    }),
  ));

test("emulator: confirm 'deny' makes SET_POLICY answer DENIED", () =>
  withTempDir((dir) =>
    withEmulator(dir, { confirm: 'deny' }, async (_emulator, connectOptions) => {
      const host = await connect(connectOptions);
      try {
        const policy = { ...DEFAULT_KEY_POLICY, maxPaymentMsat: 5n };
        const response = await host.client.exchange(KeyCommand.SET_POLICY, encodeBody(policyType, policy));
        assert.equal(response[0], KeyStatus.DENIED);
        assert.equal(decodeBody(failureType, response.subarray(1)).reason, 'denied');
        // Nothing changed.
        assert.deepEqual((await getInfo(host.client)).policy, DEFAULT_KEY_POLICY);
      } finally {
        await host.close();
      }
    }),
  ));

test('emulator: with confirmDelayMs the host sees UP_NEEDED keepalives, then the approval', () =>
  withTempDir((dir) =>
    withEmulator(dir, { confirm: 'auto', confirmDelayMs: 400 }, async (_emulator, connectOptions) => {
      const host = await connect(connectOptions);
      try {
        const statuses: number[] = [];
        const policy = { ...DEFAULT_KEY_POLICY, maxPaymentMsat: 5n };
        const response = await host.client.exchange(KeyCommand.SET_POLICY, encodeBody(policyType, policy), { onKeepalive: (status) => statuses.push(status) });
        assert.ok(statuses.includes(KeepaliveStatus.UP_NEEDED), `keepalives: ${statuses.join(',')}`);
        assert.equal(response[0], KeyStatus.OK);
        decodeBody(setPolicyResponseType, response.subarray(1));
        assert.equal((await getInfo(host.client)).policy.maxPaymentMsat, 5n);
      } finally {
        await host.close();
      }
    }),
  ));

test('emulator: a custom ConfirmPort sees the request and the abort when the host goes away', () =>
  withTempDir(async (dir) => {
    let seen: { kind: string; signal: AbortSignal } | undefined;
    let asked!: () => void;
    const askedPromise = new Promise<void>((resolve) => (asked = resolve));
    const confirm = {
      confirm: (request: { kind: string }, signal: AbortSignal) =>
        new Promise<boolean>((resolve) => {
          seen = { kind: request.kind, signal };
          asked();
          signal.addEventListener('abort', () => resolve(false), { once: true });
        }),
    };
    await withEmulator(dir, { confirm }, async (_emulator, connectOptions) => {
      const host = await connect(connectOptions);
      const pending = host.client.exchange(KeyCommand.SET_POLICY, encodeBody(policyType, DEFAULT_KEY_POLICY));
      pending.catch(() => undefined);
      await askedPromise;
      assert.equal(seen?.kind, 'set-policy');
      await host.close();
      await assert.rejects(pending);
      // The disconnect reset the link, which aborted the confirmation.
      await new Promise<void>((resolve) => (seen!.signal.aborted ? resolve() : seen!.signal.addEventListener('abort', () => resolve(), { once: true })));
    });
  }));

test('emulator: garbage from a host is answered or dropped, and the next host is served', () =>
  withTempDir((dir) =>
    withEmulator(dir, {}, async (emulator, connectOptions) => {
      const socket = createConnection({ path: (connectOptions as { path: string }).path });
      await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
      const answered = new Promise<void>((resolve) => socket.once('data', () => resolve()));
      socket.on('data', () => undefined);
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      const junk = crypto.getRandomValues(new Uint8Array(64 * 40 + 17));
      junk.fill(0xff, 0, 4); // the first report: PING on the broadcast channel, which is answered ERROR
      junk[4] = 0x81;
      socket.write(junk);
      await answered;
      const host = await connect(connectOptions);
      try {
        await closed; // replaced by the new host
        assert.equal((await getInfo(host.client)).serial, emulator.serial);
      } finally {
        await host.close();
      }
    }),
  ));

test("emulator: 'prompt' asks on the terminal; only y/yes approves; a cancel denies", async () => {
  const ask = async (answer: string | undefined, abort = false): Promise<{ approved: boolean; shown: string }> => {
    const input = new PassThrough();
    const output = new PassThrough();
    let shown = '';
    output.on('data', (chunk: Buffer) => (shown += chunk.toString()));
    const controller = new AbortController();
    const pending = promptConfirm(input, output).confirm({ kind: 'setup-channel', summary: 'one-way channel 3' }, controller.signal);
    if (answer !== undefined) input.write(`${answer}\n`);
    if (abort) controller.abort();
    return { approved: await pending, shown };
  };
  const yes = await ask('y');
  assert.equal(yes.approved, true);
  assert.match(yes.shown, /one-way channel 3/);
  assert.match(yes.shown, /approve\? \[y\/N\]/);
  assert.equal((await ask('YES')).approved, true);
  assert.equal((await ask('n')).approved, false);
  assert.equal((await ask('')).approved, false);
  assert.equal((await ask(undefined, true)).approved, false);
});

test('emulator: bad options are TypeError/RangeError naming the field', async () => {
  await assert.rejects(startEmulator({ stateDir: '' } as never), /stateDir/);
  await assert.rejects(startEmulator({ stateDir: 'x' }), TypeError);
  await assert.rejects(startEmulator({ stateDir: 'x', socketPath: 'a', port: 1 }), TypeError);
  await assert.rejects(startEmulator({ stateDir: 'x', port: 1, host: '0.0.0.0' as never }), /loopback/);
  await assert.rejects(startEmulator({ stateDir: 'x', port: 70000 }), RangeError);
  await assert.rejects(startEmulator({ stateDir: 'x', port: 0, confirm: 'maybe' as never }), /confirm/);
  await assert.rejects(startEmulator({ stateDir: 'x', port: 0, confirmDelayMs: -1 }), /confirmDelayMs/);
  assert.deepEqual(parseEmulatorArgs(['--port', '0', '--host', '::1', '--state', 's', '--confirm', 'deny', '--confirm-delay-ms', '5']), {
    stateDir: 's',
    port: 0,
    host: '::1',
    confirm: 'deny',
    confirmDelayMs: 5,
  });
  assert.throws(() => parseEmulatorArgs(['--port', '1']), /--state/);
  assert.throws(() => parseEmulatorArgs(['--state', 's', '--port', '1', '--host', '10.0.0.1']), /loopback/);
  assert.throws(() => parseEmulatorArgs(['--state', 's', '--socket', 'a', '--port', '1']), /exactly one/);
});

// ---------------------------------------------------------------------------------------------------
// The emulator CLI as a child process

interface Ready {
  ready: true;
  serial: string;
  socket: string | null;
  port: number | null;
}

interface CliChild {
  proc: ChildProcess;
  ready: Promise<Ready>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startCli(args: string[]): CliChild {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'firmware-bridge/emulator.ts', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  createInterface({ input: proc.stderr! }).on('line', (line) => stderr.push(line));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const ready = new Promise<Ready>((resolve, reject) => {
    const lines = createInterface({ input: proc.stdout! });
    lines.once('line', (line) => {
      try {
        resolve(JSON.parse(line) as Ready);
      } catch {
        reject(new Error(`not a ready line: ${line}`));
      }
    });
    void exited.then(({ code, signal }) => reject(new Error(`emulator exited (${code ?? signal}) before ready:\n${stderr.join('\n')}`)));
  });
  return { proc, ready, exited };
}

async function stopCli(child: CliChild, signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill(signal);
  return child.exited;
}

test('emulator CLI: ready line, the same answers as in-process, the serial survives SIGKILL and restart', { timeout: 60_000 }, () =>
  withTempDir(async (dir) => {
    const socketPath = join(dir, 'key.sock');
    const stateDir = join(dir, 'state');
    const first = startCli(['--socket', socketPath, '--state', stateDir, '--confirm', 'auto']);
    let serial: string;
    try {
      const ready = await first.ready;
      assert.deepEqual(Object.keys(ready).sort(), ['port', 'ready', 'serial', 'socket']);
      assert.equal(ready.ready, true);
      assert.equal(ready.socket, socketPath);
      assert.equal(ready.port, null);
      serial = ready.serial;
      const host = await connect({ path: socketPath });
      try {
        assert.equal((await getInfo(host.client)).serial, serial);
      } finally {
        await host.close();
      }
    } finally {
      assert.equal((await stopCli(first, 'SIGKILL')).signal, 'SIGKILL');
    }

    // The killed process left its socket file: the restart replaces it, and the key is the same key.
    const second = startCli(['--socket', socketPath, '--state', stateDir]);
    try {
      const ready = await second.ready;
      assert.equal(ready.serial, serial);
      const host = await connect({ path: socketPath });
      try {
        assert.equal((await getInfo(host.client)).serial, serial);
      } finally {
        await host.close();
      }
    } finally {
      assert.deepEqual(await stopCli(second, 'SIGTERM'), { code: 0, signal: null });
    }

    // Over loopback TCP on a random port, the same state again; SIGINT stops it cleanly too.
    const third = startCli(['--port', '0', '--host', '127.0.0.1', '--state', stateDir]);
    try {
      const ready = await third.ready;
      assert.equal(ready.socket, null);
      assert.ok(typeof ready.port === 'number' && ready.port > 0);
      const host = await connect({ host: '127.0.0.1', port: ready.port });
      try {
        assert.equal((await getInfo(host.client)).serial, serial);
      } finally {
        await host.close();
      }
    } finally {
      assert.deepEqual(await stopCli(third, 'SIGINT'), { code: 0, signal: null });
    }
  }));

test('emulator CLI: bad arguments exit 2 with the usage', async () => {
  const child = startCli(['--port', '1', '--host', '192.168.1.2', '--state', 'x']);
  child.ready.catch(() => undefined);
  assert.deepEqual(await child.exited, { code: 2, signal: null });
});

// ---------------------------------------------------------------------------------------------------
// The Raspberry Pi runner and its setup script

test('gadget: arguments, defaults and misuse', () => {
  assert.deepEqual(parseGadgetArgs([]), {
    device: DEFAULT_DEVICE,
    stateDir: DEFAULT_STATE_DIR,
    gpioChip: DEFAULT_GPIO_CHIP,
    confirmTimeoutMs: DEFAULT_CONFIRM_TIMEOUT_MS,
    printSerial: false,
  });
  assert.deepEqual(parseGadgetArgs(['--device', '/dev/hidg1', '--state', '/s', '--button-gpio', '17', '--led-gpio', '27', '--gpio-chip', 'gpiochip4', '--confirm-timeout-ms', '30000', '--print-serial']), {
    device: '/dev/hidg1',
    stateDir: '/s',
    gpioChip: 'gpiochip4',
    buttonGpio: 17,
    ledGpio: 27,
    confirmTimeoutMs: 30000,
    printSerial: true,
  });
  assert.throws(() => parseGadgetArgs(['--button-gpio', 'x']), /--button-gpio/);
  assert.throws(() => parseGadgetArgs(['--led-gpio', '27']), /--led-gpio/);
  assert.throws(() => parseGadgetArgs(['--button-gpio', '17', '--led-gpio', '17']), /--led-gpio/);
  assert.throws(() => parseGadgetArgs(['--gpio-chip', '--help']), /--gpio-chip/);
  assert.throws(() => parseGadgetArgs(['--confirm-timeout-ms', '0']), /--confirm-timeout-ms/);
  assert.throws(() => parseGadgetArgs(['--bogus']));
});

test('gadget: --print-serial creates the state once and prints the serial the emulator serves', { timeout: 60_000 }, () =>
  withTempDir(async (dir) => {
    const stateDir = join(dir, 'state');
    const printSerial = async (): Promise<string> => {
      const { stdout } = await run(process.execPath, ['--import', 'tsx', 'firmware-bridge/gadget.ts', '--print-serial', '--state', stateDir], { cwd: root });
      return stdout;
    };
    const printed = await printSerial();
    assert.match(printed, /^[0-9A-F]{16}\n$/);
    assert.equal(await printSerial(), printed);
    assert.equal(await keySerial(stateDir), printed.trim());
    const emulator = await startEmulator({ port: 0, stateDir });
    try {
      assert.equal(emulator.serial, printed.trim());
    } finally {
      await emulator.close();
    }
  }));

test('gadget: libgpiod v1 and v2 syntax and output', () => {
  assert.equal(parseGpiodMajor('gpioget (libgpiod) v1.6.3\nCopyright (C) 2017-2018 Bartosz Golaszewski'), 1);
  assert.equal(parseGpiodMajor('gpioget (libgpiod) v2.1.2'), 2);
  assert.equal(parseGpiodMajor('nonsense'), undefined);
  assert.deepEqual(gpiogetArgs(1, 'gpiochip0', 17), ['--bias=pull-up', 'gpiochip0', '17']);
  assert.deepEqual(gpiogetArgs(2, 'gpiochip0', 17), ['-c', 'gpiochip0', '--bias=pull-up', '17']);
  assert.equal(parseGpioValue('0\n'), 0);
  assert.equal(parseGpioValue('1\n'), 1);
  assert.equal(parseGpioValue('"17"=inactive\n'), 0);
  assert.equal(parseGpioValue('"17"=active\n'), 1);
  assert.equal(parseGpioValue(''), undefined);
});

/** A gpioget that answers from a script of values (the last one repeats), as libgpiod v1 or v2 would. */
function scriptedGpio(major: 1 | 2, values: Array<0 | 1>): { runner: CommandRunner; calls: string[][] } {
  const calls: string[][] = [];
  let i = 0;
  const runner: CommandRunner = async (file, args) => {
    calls.push([file, ...args]);
    if (args[0] === '--version') return `gpioget (libgpiod) v${major}.0.0\n`;
    const value = values[Math.min(i++, values.length - 1)]!;
    return major === 1 ? `${value}\n` : `"${args[args.length - 1]}"=${value ? 'active' : 'inactive'}\n`;
  };
  return { runner, calls };
}

const request = { kind: 'set-policy' as const, summary: 'a policy' };

test('gadget: the button approves on a press after a release, never on one held from the start', async () => {
  for (const major of [1, 2] as const) {
    const { runner, calls } = scriptedGpio(major, [1, 1, 0]);
    const leds: boolean[] = [];
    const button = new ButtonConfirm({ chip: 'gpiochip0', line: 17, timeoutMs: 60_000, pollMs: 0, run: runner, led: { set: async (on) => void leds.push(on) } });
    assert.equal(await button.confirm(request, new AbortController().signal), true);
    assert.deepEqual(calls[0], ['gpioget', '--version']);
    assert.deepEqual(calls[1], ['gpioget', ...gpiogetArgs(major, 'gpiochip0', 17)]);
    assert.deepEqual(leds, [true, false]);
  }
  // Held down throughout: it times out and denies.
  const held = scriptedGpio(1, [0]);
  assert.equal(await new ButtonConfirm({ chip: 'gpiochip0', line: 17, timeoutMs: 50, pollMs: 1, run: held.runner }).confirm(request, new AbortController().signal), false);
  // Never pressed, and the host cancels: denied.
  const idle = scriptedGpio(2, [1]);
  const controller = new AbortController();
  const pending = new ButtonConfirm({ chip: 'gpiochip0', line: 17, timeoutMs: 60_000, pollMs: 1, run: idle.runner }).confirm(request, controller.signal);
  controller.abort();
  assert.equal(await pending, false);
  // No gpioget at all: denied at once (and the version is asked again next time).
  const missing: CommandRunner = async () => {
    throw Object.assign(new Error('spawn gpioget ENOENT'), { code: 'ENOENT' });
  };
  const tools = new GpiodTools(missing);
  const button = new ButtonConfirm({ chip: 'gpiochip0', line: 17, timeoutMs: 60_000, run: missing, tools });
  assert.equal(await button.confirm(request, new AbortController().signal), false);
  await assert.rejects(tools.major(), /gpiod/);
});

test('gadget: the device loop reads report by report (a short one as it is) and resets at the end', () =>
  withTempDir(async (dir) => {
    // A regular file stands in for /dev/hidg0: two reports and a short tail, then end of file.
    const path = join(dir, 'hidg0');
    const data = new Uint8Array(64 * 2 + 10).map((_, i) => (i % 251) + 1);
    await writeFile(path, data);
    const reports: Uint8Array[] = [];
    const lines: string[] = [];
    const controller = new AbortController();
    const device = new HidGadgetDevice(path, (line) => lines.push(line));
    await device.run(
      (report) => reports.push(report),
      () => controller.abort(),
      controller.signal,
    );
    assert.equal(reports.length, 3);
    assert.deepEqual(reports[0], data.subarray(0, 64));
    assert.deepEqual(reports[1], data.subarray(64, 128));
    assert.deepEqual(reports[2], data.subarray(128)); // the link ignores it: not 64 bytes
    assert.ok(lines.some((line) => line.includes('end of file')));

    // No device: it says so and keeps trying until stopped.
    const missing = new HidGadgetDevice(join(dir, 'nope'), (line) => {
      lines.push(line);
      stop.abort();
    });
    const stop = new AbortController();
    await missing.run(() => assert.fail('no reports'), () => undefined, stop.signal);
    assert.ok(lines.some((line) => line.includes('does not exist')));
  }));

test('setup-gadget.sh: bash -n passes, and it is executable', { skip: process.platform === 'win32' }, async () => {
  await run('bash', ['-n', join(root, 'firmware-bridge', 'setup-gadget.sh')]);
  assert.ok(((await stat(join(root, 'firmware-bridge', 'setup-gadget.sh'))).mode & 0o111) !== 0);
});
