/**
 * The USB HID link (firmware-bridge/PROTOCOL.md §1–§2, after CTAP 2.1 §11.2 CTAPHID): the key's KeyLink
 * fed raw reports, KeyLink and HidClient against each other over in-memory transports (several hosts see
 * every report, as with hidraw), HidClient against a scripted key for the answers a KeyLink never gives,
 * SocketHidConnector over a real Unix socket and loopback TCP, and NodeHidConnector with no key attached.
 * Timers are fake wherever time matters; nothing asserts a duration.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bytesToHex, hexToBytes } from '../src/bytes.js';
import {
  BROADCAST_CID,
  FRAMING_PROTOCOL_VERSION,
  HidCommand,
  HidErrorCode,
  KeepaliveStatus,
  MAX_MESSAGE_SIZE,
  MessageAssembler,
  encodeMessage,
  readCid,
  type Message,
} from '../src/signer/hid/framing.js';
import { HidError } from '../src/signer/hid/errors.js';
import { AbstractHidTransport, SocketHidConnector } from '../src/signer/hid/transport.js';
import { HidClient, type HidClientOptions } from '../src/signer/hid/client.js';
import { NodeHidConnector } from '../src/signer/hid/node-hid.js';
import { KeyLink, MAX_CHANNELS, type CommandContext, type LinkOptions } from '../firmware-bridge/core/link.js';

// ---------------------------------------------------------------------------------------------------
// Helpers

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
/** Lets every in-memory delivery (one setImmediate per hop) and the promises behind it run. */
async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await tick();
}

/** Time that moves only when the test says; fires due timers one at a time with I/O settling in between. */
class FakeTimers {
  now = 0;
  #next = 1;
  readonly #timers = new Map<number, { at: number; callback: () => void }>();

  setTimeout = (callback: () => void, ms: number): unknown => {
    const id = this.#next++;
    this.#timers.set(id, { at: this.now + ms, callback });
    return id;
  };

  clearTimeout = (handle: unknown): void => {
    this.#timers.delete(handle as number);
  };

  async advance(ms: number): Promise<void> {
    const target = this.now + ms;
    for (;;) {
      await settle();
      let due: [number, { at: number; callback: () => void }] | undefined;
      for (const entry of this.#timers) if (entry[1].at <= target && (!due || entry[1].at < due[1].at)) due = entry;
      if (!due) break;
      this.#timers.delete(due[0]);
      this.now = due[1].at;
      due[1].callback();
    }
    this.now = target;
    await settle();
  }

  get pending(): number {
    return this.#timers.size;
  }
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}
function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((a, b) => {
    resolve = a;
    reject = b;
  });
  return { promise, resolve, reject };
}

/** Channel ids from a list, 4 bytes big-endian each, then 0x10000000 upwards. */
function cidRandom(cids: number[]): (n: number) => Uint8Array {
  const queue = [...cids];
  let fallback = 0x1000_0000;
  return (n) => {
    assert.equal(n, 4);
    const cid = queue.length > 0 ? queue.shift()! : fallback++;
    return Uint8Array.of(cid >>> 24, (cid >>> 16) & 0xff, (cid >>> 8) & 0xff, cid & 0xff);
  };
}

interface Call {
  command: number;
  payload: Uint8Array;
  context: CommandContext;
  reply: Deferred<Uint8Array>;
}
/** A handler whose every call waits for the test to answer it. */
function controlledHandler(): { calls: Call[]; handle: LinkOptions['handle'] } {
  const calls: Call[] = [];
  return {
    calls,
    handle: (command, payload, context) => {
      const reply = deferred<Uint8Array>();
      calls.push({ command, payload, context, reply });
      return reply.promise;
    },
  };
}

const VERSION = { major: 1, minor: 2, build: 3 };
const NONCE = hexToBytes('0102030405060708');

/** Decodes whatever a key sent into messages (its output is well-formed). */
function messagesOf(reports: Uint8Array[]): Message[] {
  const assembler = new MessageAssembler();
  const out: Message[] = [];
  for (const report of reports) {
    const result = assembler.feed(report);
    if (result.kind === 'message') out.push(result.message);
    else assert.equal(result.kind, 'partial', 'the key only sends well-framed messages');
  }
  assert.equal(assembler.busy, false, 'the key sends whole messages');
  return out;
}

const errorMessage = (cid: number, code: number): Message => ({ cid, command: HidCommand.ERROR, payload: Uint8Array.of(code) });

/** A KeyLink fed raw reports directly, its output collected synchronously. */
function rawKey(options: Partial<LinkOptions> = {}) {
  const out: Uint8Array[] = [];
  const timers = new FakeTimers();
  const handler = controlledHandler();
  const link = new KeyLink({ send: (report) => void out.push(report.slice()), handle: handler.handle, version: VERSION, timers, random: cidRandom([]), ...options });
  return {
    link,
    timers,
    calls: handler.calls,
    send(cid: number, command: number, payload: Uint8Array = new Uint8Array(0)): void {
      for (const report of encodeMessage({ cid, command, payload })) link.receive(report);
    },
    /** Messages the key sent since the last take(). */
    take(): Message[] {
      return messagesOf(out.splice(0));
    },
    /** Allocates a channel with INIT on the broadcast channel; returns its id. */
    allocate(): number {
      this.send(BROADCAST_CID, HidCommand.INIT, NONCE);
      const [answer] = this.take();
      assert.equal(answer?.command, HidCommand.INIT);
      return readCid(answer!.payload.subarray(8, 12));
    },
  };
}

/** One bus between a key and any number of hosts; every host sees every report of the key, like hidraw. */
class Hub {
  readonly hosts = new Set<MemoryHost>();
  /** Every report written by a host, in order. */
  readonly toKey: Uint8Array[] = [];
  /** Every report the key sent. */
  readonly toHosts: Uint8Array[] = [];
  key: (report: Uint8Array) => void = () => {};

  host(): MemoryHost {
    const host = new MemoryHost(this);
    this.hosts.add(host);
    return host;
  }

  fromKey(report: Uint8Array): void {
    const copy = report.slice();
    this.toHosts.push(copy);
    for (const host of this.hosts) setImmediate(() => host.deliver(copy));
  }

  /** A key that answers what the test's script says. */
  script(onMessage: (message: Message) => void): void {
    const assembler = new MessageAssembler();
    this.key = (report) => {
      const result = assembler.feed(report);
      if (result.kind === 'message') onMessage(result.message);
    };
  }

  reply(cid: number, command: number, payload: Uint8Array): void {
    for (const report of encodeMessage({ cid, command, payload })) this.fromKey(report);
  }
}

class MemoryHost extends AbstractHidTransport {
  constructor(readonly hub: Hub) {
    super();
  }

  write(report: Uint8Array): Promise<void> {
    const closed = this.checkWrite(report);
    if (closed) return Promise.reject(closed);
    const copy = report.slice();
    this.hub.toKey.push(copy);
    setImmediate(() => {
      if (!this.closed) this.hub.key(copy);
    });
    return Promise.resolve();
  }

  deliver(report: Uint8Array): void {
    this.emitReport(report);
  }

  close(): Promise<void> {
    this.finish();
    this.hub.hosts.delete(this);
    return Promise.resolve();
  }

  unplug(): void {
    this.finish(new Error('unplugged'));
    this.hub.hosts.delete(this);
  }
}

/** A KeyLink on a hub, sharing the fake timers with the clients made by `client()`. */
function memoryKey(options: Partial<LinkOptions> = {}) {
  const hub = new Hub();
  const timers = new FakeTimers();
  const handler = controlledHandler();
  const link = new KeyLink({ send: (report) => hub.fromKey(report), handle: handler.handle, version: VERSION, capabilities: 0x05, timers, ...options });
  hub.key = (report) => link.receive(report);
  return {
    hub,
    link,
    timers,
    calls: handler.calls,
    client(options: HidClientOptions = {}): { client: HidClient; host: MemoryHost } {
      const host = hub.host();
      return { client: new HidClient(host, { timers, ...options }), host };
    },
  };
}

/** The commands of the messages hosts wrote, e.g. to see the CANCEL and the resynchronising INIT. */
function commandsWritten(hub: Hub): Array<[number, number]> {
  return messagesOf(hub.toKey).map((m) => [m.cid, m.command]);
}

function isHidError(code: HidError['code'], deviceErrorCode?: number): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof HidError, `expected a HidError, got ${String(error)}`);
    assert.equal(error.code, code);
    if (deviceErrorCode !== undefined) assert.equal(error.deviceErrorCode, deviceErrorCode);
    return true;
  };
}

function track<T>(promise: Promise<T>): { settled: () => boolean } {
  let settled = false;
  promise.then(
    () => void (settled = true),
    () => void (settled = true),
  );
  return { settled: () => settled };
}

const pattern = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + 7) & 0xff);

// ---------------------------------------------------------------------------------------------------
// KeyLink, raw reports

test('[F-9] INIT on the broadcast channel allocates a fresh random channel, never 0, 0xffffffff or one in use', () => {
  const key = rawKey({ random: cidRandom([0, BROADCAST_CID, 0x0000_0001, 0x0000_0001, 0x0000_0002]), capabilities: 0x04 });
  key.send(BROADCAST_CID, HidCommand.INIT, NONCE);
  key.send(BROADCAST_CID, HidCommand.INIT, hexToBytes('1111111111111111'));
  const [first, second] = key.take();
  assert.equal(first!.cid, BROADCAST_CID);
  assert.equal(first!.command, HidCommand.INIT);
  assert.equal(bytesToHex(first!.payload), '0102030405060708' + '00000001' + '02' + '010203' + '04');
  assert.equal(first!.payload[12], FRAMING_PROTOCOL_VERSION);
  assert.equal(second!.cid, BROADCAST_CID);
  assert.equal(bytesToHex(second!.payload.subarray(0, 12)), '1111111111111111' + '00000002');
  // The channels work, the broadcast one does not take PING ([F-3]).
  key.send(1, HidCommand.PING, Uint8Array.of(1));
  key.send(2, HidCommand.PING, Uint8Array.of(2));
  key.send(BROADCAST_CID, HidCommand.PING, Uint8Array.of(3));
  assert.deepEqual(key.take(), [
    { cid: 1, command: HidCommand.PING, payload: Uint8Array.of(1) },
    { cid: 2, command: HidCommand.PING, payload: Uint8Array.of(2) },
    errorMessage(BROADCAST_CID, HidErrorCode.INVALID_CHANNEL),
  ]);
});

test('[F-9] [F-12] init.json invalid vectors: the key answers with the ERROR report given', () => {
  const vectors = JSON.parse(readFileSync(new URL('./vectors/hid-frames/init.json', import.meta.url), 'utf8')) as {
    invalid: Array<{ description: string; allocated: string[]; reportsIn: string[]; reportsOut: string[] }>;
  };
  for (const v of vectors.invalid) {
    const out: Uint8Array[] = [];
    const allocated = v.allocated.map((hex) => parseInt(hex, 16) >>> 0);
    const link = new KeyLink({ send: (r) => void out.push(r.slice()), handle: async () => new Uint8Array(0), version: VERSION, timers: new FakeTimers(), random: cidRandom(allocated) });
    for (const _ of allocated) for (const r of encodeMessage({ cid: BROADCAST_CID, command: HidCommand.INIT, payload: NONCE })) link.receive(r);
    out.length = 0;
    for (const hex of v.reportsIn) link.receive(hexToBytes(hex));
    assert.deepEqual(out.map(bytesToHex), v.reportsOut, v.description);
  }
});

test(`[F-10] at most ${MAX_CHANNELS} channels: the least recently used idle one is evicted, never the running one`, async () => {
  const key = rawKey({ random: cidRandom([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) });
  for (let i = 1; i <= 8; i++) assert.equal(key.allocate(), i);
  key.send(1, 0x41); // runs on channel 1: the oldest, but busy
  assert.equal(key.allocate(), 9); // evicts 2
  key.send(2, HidCommand.PING);
  key.send(3, HidCommand.PING); // allocated (so: busy, not invalid), and now the most recently used
  assert.deepEqual(key.take(), [errorMessage(2, HidErrorCode.INVALID_CHANNEL), errorMessage(3, HidErrorCode.CHANNEL_BUSY)]);
  key.calls[0]!.reply.resolve(Uint8Array.of(0xaa));
  await settle(2);
  assert.deepEqual(key.take(), [{ cid: 1, command: 0x41, payload: Uint8Array.of(0xaa) }]);
  assert.equal(key.allocate(), 10); // evicts 4: 3 was used after it
  key.send(4, HidCommand.PING);
  key.send(3, HidCommand.PING);
  key.send(1, HidCommand.PING);
  assert.deepEqual(key.take(), [
    errorMessage(4, HidErrorCode.INVALID_CHANNEL),
    { cid: 3, command: HidCommand.PING, payload: new Uint8Array(0) },
    { cid: 1, command: HidCommand.PING, payload: new Uint8Array(0) },
  ]);
});

test('[F-12] [F-13] [F-18] PING echoes; unknown commands are INVALID_CMD; unallocated channels are INVALID_CHANNEL', () => {
  const key = rawKey({ random: cidRandom([0x0a0b0c0d]) });
  const cid = key.allocate();
  key.send(cid, HidCommand.PING, pattern(200));
  for (const command of [0x00, 0x02, HidCommand.KEEPALIVE, HidCommand.ERROR, 0x30, 0x3e]) key.send(cid, command, Uint8Array.of(1));
  key.send(0x0a0b0c0e, HidCommand.PING);
  key.send(0, 0x41);
  assert.deepEqual(key.take(), [
    { cid, command: HidCommand.PING, payload: pattern(200) },
    ...[0x00, 0x02, HidCommand.KEEPALIVE, HidCommand.ERROR, 0x30, 0x3e].map(() => errorMessage(cid, HidErrorCode.INVALID_CMD)),
    errorMessage(0x0a0b0c0e, HidErrorCode.INVALID_CHANNEL),
    errorMessage(0, HidErrorCode.INVALID_CHANNEL),
  ]);
  assert.equal(key.calls.length, 0);
});

test('[F-8] a message whose continuation does not come in time is answered MSG_TIMEOUT and dropped', async () => {
  const key = rawKey();
  const cid = key.allocate();
  const reports = encodeMessage({ cid, command: HidCommand.PING, payload: pattern(117) });
  key.link.receive(reports[0]!);
  await key.timers.advance(400);
  key.link.receive(reports[1]!); // each continuation restarts the clock
  await key.timers.advance(400);
  assert.deepEqual(key.take(), []);
  await key.timers.advance(100);
  assert.deepEqual(key.take(), [errorMessage(cid, HidErrorCode.MSG_TIMEOUT)]);
  key.link.receive(reports[2]!); // the rest of the dropped message is a stray continuation
  await key.timers.advance(1000);
  assert.deepEqual(key.take(), []);
  for (const report of reports) key.link.receive(report);
  assert.deepEqual(key.take(), [{ cid, command: HidCommand.PING, payload: pattern(117) }]);
  assert.equal(key.timers.pending, 0, 'a complete message leaves no timer behind');
});

test('[F-11] INIT on an allocated channel resynchronises: the running command is aborted and its answer never sent', async () => {
  const key = rawKey();
  const cid = key.allocate();
  key.send(cid, 0x41, Uint8Array.of(1));
  const call = key.calls[0]!;
  assert.equal(key.link.busy, true);
  key.send(cid, HidCommand.INIT, hexToBytes('a0a1a2a3a4a5a6a7'));
  const [answer] = key.take();
  assert.equal(answer!.cid, cid, 'answered on the same channel');
  assert.equal(bytesToHex(answer!.payload.subarray(0, 12)), 'a0a1a2a3a4a5a6a7' + cid.toString(16).padStart(8, '0'));
  assert.equal(call.context.signal.aborted, true);
  // [F-17] Handlers never overlap: until the aborted one settles, the key stays busy.
  key.send(cid, HidCommand.PING);
  assert.deepEqual(key.take(), [errorMessage(cid, HidErrorCode.CHANNEL_BUSY)]);
  call.reply.resolve(Uint8Array.of(0xee));
  await settle(2);
  await key.timers.advance(1000);
  assert.deepEqual(key.take(), [], 'neither the stale answer nor a keepalive');
  assert.equal(key.link.busy, false);
  key.send(cid, HidCommand.PING, Uint8Array.of(5));
  assert.deepEqual(key.take(), [{ cid, command: HidCommand.PING, payload: Uint8Array.of(5) }]);
});

test('[F-14] CANCEL aborts only its own channel’s command, is never answered, and the handler decides the answer', async () => {
  const key = rawKey();
  const a = key.allocate();
  const b = key.allocate();
  key.send(a, 0x42, Uint8Array.of(9));
  const call = key.calls[0]!;
  key.send(b, HidCommand.CANCEL);
  assert.equal(call.context.signal.aborted, false);
  key.send(a, HidCommand.CANCEL);
  assert.equal(call.context.signal.aborted, true);
  assert.deepEqual(key.take(), []);
  call.reply.resolve(Uint8Array.of(0x2d));
  await settle(2);
  assert.deepEqual(key.take(), [{ cid: a, command: 0x42, payload: Uint8Array.of(0x2d) }]);
  // CANCEL with nothing running, and CANCEL in the middle of the channel's own message, stay silent.
  key.send(a, HidCommand.CANCEL);
  key.link.receive(encodeMessage({ cid: a, command: HidCommand.PING, payload: pattern(100) })[0]!);
  key.send(a, HidCommand.CANCEL);
  await key.timers.advance(1000);
  assert.deepEqual(key.take(), [], 'no answer and no MSG_TIMEOUT for the abandoned message');
});

test('[F-16] KEEPALIVE every interval with the handler’s status, at once when the status changes, none after the answer', async () => {
  const key = rawKey();
  const cid = key.allocate();
  key.send(cid, 0x43);
  const call = key.calls[0]!;
  await key.timers.advance(350);
  const keepalive = (status: number): Message => ({ cid, command: HidCommand.KEEPALIVE, payload: Uint8Array.of(status) });
  assert.deepEqual(key.take(), [keepalive(1), keepalive(1), keepalive(1)]);
  call.context.setStatus(KeepaliveStatus.UP_NEEDED);
  call.context.setStatus(KeepaliveStatus.UP_NEEDED); // no change, nothing sent
  assert.deepEqual(key.take(), [keepalive(2)]);
  await key.timers.advance(100);
  assert.deepEqual(key.take(), [keepalive(2)]);
  assert.throws(() => call.context.setStatus(3 as 1), RangeError);
  call.reply.resolve(Uint8Array.of(7));
  await settle(2);
  await key.timers.advance(1000);
  assert.deepEqual(key.take(), [{ cid, command: 0x43, payload: Uint8Array.of(7) }]);
  assert.equal(key.timers.pending, 0);
});

test('[F-17] while a command runs, every other request on any channel is CHANNEL_BUSY; INIT still works', async () => {
  const key = rawKey();
  const a = key.allocate();
  const b = key.allocate();
  key.send(a, 0x41);
  key.send(b, HidCommand.PING);
  key.send(b, 0x41);
  key.send(a, HidCommand.PING);
  key.send(a, 0x41);
  assert.deepEqual(key.take(), [
    errorMessage(b, HidErrorCode.CHANNEL_BUSY),
    errorMessage(b, HidErrorCode.CHANNEL_BUSY),
    errorMessage(a, HidErrorCode.CHANNEL_BUSY),
    errorMessage(a, HidErrorCode.CHANNEL_BUSY),
  ]);
  const c = key.allocate();
  key.send(b, HidCommand.INIT, NONCE);
  assert.equal(key.take()[0]!.cid, b);
  assert.equal(key.calls.length, 1);
  assert.equal(key.calls[0]!.context.signal.aborted, false, 'other channels’ INITs leave the command alone');
  key.calls[0]!.reply.resolve(new Uint8Array(0));
  await settle(2);
  key.send(c, HidCommand.PING);
  assert.deepEqual(key.take(), [
    { cid: a, command: 0x41, payload: new Uint8Array(0) },
    { cid: c, command: HidCommand.PING, payload: new Uint8Array(0) },
  ]);
});

test('[F-15] a failing handler or an oversized answer is ERROR OTHER; the answer keeps the command byte', async () => {
  const answers: Array<() => Promise<Uint8Array>> = [
    async () => pattern(MAX_MESSAGE_SIZE),
    async () => {
      throw new Error('boom');
    },
    () => {
      throw new Error('sync boom');
    },
    async () => new Uint8Array(MAX_MESSAGE_SIZE + 1),
    async () => 'not bytes' as unknown as Uint8Array,
  ];
  const key = rawKey({ handle: () => answers.shift()!() });
  const cid = key.allocate();
  for (let i = 0; i < 5; i++) {
    key.send(cid, 0x7f);
    await settle(2);
  }
  assert.deepEqual(key.take(), [
    { cid, command: 0x7f, payload: pattern(MAX_MESSAGE_SIZE) },
    ...[1, 2, 3, 4].map(() => errorMessage(cid, HidErrorCode.OTHER)),
  ]);
});

test('[F-20] reset(): channels forgotten, the running command aborted, no stale answer, keepalive or timeout afterwards', async () => {
  const key = rawKey();
  const a = key.allocate();
  const b = key.allocate();
  key.send(a, 0x41);
  const call = key.calls[0]!;
  await key.timers.advance(100);
  key.link.receive(encodeMessage({ cid: b, command: HidCommand.PING, payload: pattern(100) })[0]!);
  key.take();
  key.link.reset();
  assert.equal(call.context.signal.aborted, true);
  await key.timers.advance(1000);
  call.reply.resolve(Uint8Array.of(1));
  await settle(2);
  await key.timers.advance(1000);
  assert.deepEqual(key.take(), []);
  assert.equal(key.link.busy, false);
  key.send(a, HidCommand.PING);
  key.send(b, HidCommand.PING);
  assert.deepEqual(key.take(), [errorMessage(a, HidErrorCode.INVALID_CHANNEL), errorMessage(b, HidErrorCode.INVALID_CHANNEL)]);
});

test('KeyLink.receive never throws: garbage reports, non-bytes, a throwing send', () => {
  let seed = 0x12345678;
  const next = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 24;
  const key = rawKey();
  const cid = key.allocate();
  for (let i = 0; i < 5000; i++) {
    const report = Uint8Array.from({ length: i % 50 === 0 ? 63 : 64 }, next);
    if (i % 3 === 0) report.set([cid >>> 24, (cid >>> 16) & 0xff, (cid >>> 8) & 0xff, cid & 0xff]);
    key.link.receive(report);
  }
  for (const junk of [undefined, null, 'x', 42, {}, new Uint16Array(64)]) key.link.receive(junk as unknown as Uint8Array);
  const throwing = new KeyLink({ send: () => {
    throw new Error('usb stalled');
  }, handle: async () => new Uint8Array(0), version: VERSION, timers: new FakeTimers() });
  for (const r of encodeMessage({ cid: BROADCAST_CID, command: HidCommand.INIT, payload: NONCE })) throwing.receive(r);
});

test('KeyLink constructor: misuse throws TypeError/RangeError naming the field', () => {
  const base: LinkOptions = { send: () => {}, handle: async () => new Uint8Array(0), version: VERSION };
  assert.throws(() => new KeyLink({ ...base, send: undefined as unknown as LinkOptions['send'] }), { name: 'TypeError', message: /"send"/ });
  assert.throws(() => new KeyLink({ ...base, handle: 1 as unknown as LinkOptions['handle'] }), { name: 'TypeError', message: /"handle"/ });
  assert.throws(() => new KeyLink({ ...base, version: { major: 256, minor: 0, build: 0 } }), { name: 'RangeError', message: /"version.major"/ });
  assert.throws(() => new KeyLink({ ...base, capabilities: -1 }), { name: 'RangeError', message: /"capabilities"/ });
  assert.throws(() => new KeyLink({ ...base, keepaliveIntervalMs: 0 }), { name: 'RangeError', message: /"keepaliveIntervalMs"/ });
  assert.throws(() => new KeyLink({ ...base, messageTimeoutMs: Number.NaN }), { name: 'RangeError', message: /"messageTimeoutMs"/ });
});

// ---------------------------------------------------------------------------------------------------
// HidClient against KeyLink, in memory

test('[F-21] init() allocates a channel and reports the key’s version; exchange() before init() is a TypeError', async () => {
  const key = memoryKey({ random: cidRandom([0x7e57_0001]) });
  const { client } = key.client();
  await assert.rejects(client.exchange(HidCommand.PING, new Uint8Array(0)), TypeError);
  const info = await client.init();
  assert.deepEqual(info, { cid: 0x7e57_0001, protocolVersion: FRAMING_PROTOCOL_VERSION, major: 1, minor: 2, build: 3, capabilities: 0x05 });
  await assert.rejects(client.exchange(HidCommand.INIT, new Uint8Array(8)), RangeError);
  await assert.rejects(client.exchange(0x41, new Uint8Array(MAX_MESSAGE_SIZE + 1)), RangeError);
  await assert.rejects(client.exchange(0x41, [1, 2] as unknown as Uint8Array), TypeError);
});

test('[F-13] PING echoes 0, 57, 58 and 7609 bytes through HidClient and KeyLink', async () => {
  const key = memoryKey();
  const { client } = key.client();
  await client.init();
  for (const size of [0, 57, 58, 7609]) {
    const echoed = await client.exchange(HidCommand.PING, pattern(size));
    assert.equal(echoed.length, size);
    assert.ok(echoed.every((byte, i) => byte === pattern(size)[i]), `${size} bytes`);
  }
});

test('[F-16] KEEPALIVEs arrive while a slow handler runs; the answer carries the vendor command', async () => {
  const key = memoryKey();
  const { client } = key.client();
  await client.init();
  const statuses: number[] = [];
  const result = client.exchange(0x44, Uint8Array.of(1, 2, 3), { onKeepalive: (status) => statuses.push(status) });
  await key.timers.advance(350); // keepalives at 100, 200, 300
  assert.deepEqual(statuses, [1, 1, 1]);
  const call = key.calls[0]!;
  assert.equal(call.command, 0x44);
  assert.deepEqual(call.payload, Uint8Array.of(1, 2, 3));
  call.reply.resolve(pattern(300));
  assert.deepEqual(await result, pattern(300));
});

test('[F-23] UP_NEEDED switches the client to the confirmation timeout; PROCESSING alone times out', async () => {
  const key = memoryKey({ keepaliveIntervalMs: 10_000 });
  const { client } = key.client({ timeoutMs: 150, confirmTimeoutMs: 5_000 });
  await client.init();
  const statuses: number[] = [];
  const confirmed = client.exchange(0x45, new Uint8Array(0), { onKeepalive: (s) => statuses.push(s) });
  const progress = track(confirmed);
  await settle();
  key.calls[0]!.context.setStatus(KeepaliveStatus.UP_NEEDED);
  await key.timers.advance(1000);
  assert.deepEqual(statuses, [KeepaliveStatus.UP_NEEDED]);
  assert.equal(progress.settled(), false, 'still waiting for the user');
  key.calls[0]!.reply.resolve(Uint8Array.of(0x01));
  assert.deepEqual(await confirmed, Uint8Array.of(0x01));

  const unconfirmed = client.exchange(0x45, new Uint8Array(0));
  const rejected = assert.rejects(unconfirmed, isHidError('TIMEOUT'));
  await key.timers.advance(200);
  await rejected;
  assert.equal(key.calls[1]!.context.signal.aborted, true, 'the timeout sent CANCEL');
});

test('[F-14] [F-23] an AbortSignal cancels: CANCEL reaches the handler’s signal, the exchange rejects CANCELLED, the next one works', async () => {
  const key = memoryKey();
  const { client } = key.client();
  const { cid } = await client.init();
  const controller = new AbortController();
  const result = client.exchange(0x46, new Uint8Array(0), { signal: controller.signal });
  const rejected = assert.rejects(result, isHidError('CANCELLED'));
  await settle();
  const call = key.calls[0]!;
  call.context.signal.addEventListener('abort', () => call.reply.resolve(Uint8Array.of(0x2d)));
  controller.abort();
  await rejected;
  await settle();
  assert.equal(call.context.signal.aborted, true);
  assert.deepEqual(await client.exchange(HidCommand.PING, Uint8Array.of(9)), Uint8Array.of(9));
  assert.deepEqual(commandsWritten(key.hub), [
    [BROADCAST_CID, HidCommand.INIT],
    [cid, 0x46],
    [cid, HidCommand.CANCEL],
    [cid, HidCommand.INIT], // resynchronised before the next exchange
    [cid, HidCommand.PING],
  ]);
  // An already aborted signal sends nothing.
  await assert.rejects(client.exchange(0x46, new Uint8Array(0), { signal: AbortSignal.abort() }), isHidError('CANCELLED'));
  assert.equal(key.calls.length, 1);
});

test('[F-17] a second host’s channel gets BUSY (CHANNEL_BUSY) while the first one’s command runs', async () => {
  const key = memoryKey();
  const first = key.client().client;
  const second = key.client().client;
  const a = await first.init();
  const b = await second.init();
  assert.notEqual(a.cid, b.cid);
  const running = first.exchange(0x41, Uint8Array.of(1));
  await settle();
  await assert.rejects(second.exchange(HidCommand.PING, Uint8Array.of(2)), isHidError('BUSY', HidErrorCode.CHANNEL_BUSY));
  key.calls[0]!.reply.resolve(Uint8Array.of(0xa1));
  assert.deepEqual(await running, Uint8Array.of(0xa1));
  assert.deepEqual(await second.exchange(HidCommand.PING, Uint8Array.of(2)), Uint8Array.of(2));
});

test('[F-24] an ERROR answer rejects with DEVICE_ERROR and the key’s code', async () => {
  const key = memoryKey({ handle: async () => Promise.reject(new Error('refused')) });
  const { client } = key.client();
  await client.init();
  await assert.rejects(client.exchange(0x50, new Uint8Array(0)), isHidError('DEVICE_ERROR', HidErrorCode.OTHER));
});

test('[F-11] [F-17] [F-23] after a timeout the resync drops the late answer; the key stays busy until the aborted handler ends', async () => {
  const key = memoryKey({ keepaliveIntervalMs: 10_000 });
  const { client } = key.client({ timeoutMs: 100 });
  await client.init();
  const timedOut = assert.rejects(client.exchange(0x41, Uint8Array.of(1)), isHidError('TIMEOUT'));
  await key.timers.advance(100);
  await timedOut;
  const stale = key.calls[0]!; // ignores CANCEL and the resync: still working
  await assert.rejects(client.exchange(0x41, Uint8Array.of(2)), isHidError('BUSY', HidErrorCode.CHANNEL_BUSY));
  stale.reply.resolve(Uint8Array.of(0x5a));
  await settle();
  assert.ok(!messagesOf(key.hub.toHosts).some((m) => m.command === 0x41), 'the stale answer was never sent');
  const fresh = client.exchange(0x41, Uint8Array.of(3));
  await settle();
  key.calls[1]!.reply.resolve(Uint8Array.of(0xf5));
  assert.deepEqual(await fresh, Uint8Array.of(0xf5));
});

test('[F-23] a late answer after a client timeout is not taken for the next exchange (KeyLink)', async () => {
  const key = memoryKey({ keepaliveIntervalMs: 10_000 });
  const { client } = key.client({ timeoutMs: 100 });
  await client.init();
  const timedOut = assert.rejects(client.exchange(0x41, Uint8Array.of(1)), isHidError('TIMEOUT'));
  await settle();
  const first = key.calls[0]!;
  first.context.signal.addEventListener('abort', () => first.reply.resolve(Uint8Array.of(0x1a, 0x7e)));
  await key.timers.advance(100);
  await timedOut;
  await settle();
  assert.ok(messagesOf(key.hub.toHosts).some((m) => m.command === 0x41), 'the late answer did come');
  const next = client.exchange(0x41, Uint8Array.of(2));
  await settle();
  key.calls[1]!.reply.resolve(Uint8Array.of(0xf5));
  assert.deepEqual(await next, Uint8Array.of(0xf5));
});

test('[F-22] [F-23] a late answer after a timeout, arriving during the resync, is ignored (scripted key)', async () => {
  const hub = new Hub();
  const timers = new FakeTimers();
  const CID = 0x0bad_cafe;
  hub.script((m) => {
    if (m.command === HidCommand.INIT && m.cid === BROADCAST_CID) {
      hub.reply(BROADCAST_CID, HidCommand.INIT, Uint8Array.of(...m.payload, 0x0b, 0xad, 0xca, 0xfe, 2, 1, 0, 0, 0));
    } else if (m.command === HidCommand.INIT && m.cid === CID) {
      hub.reply(CID, 0x41, new TextEncoder().encode('late')); // the abandoned exchange's answer
      hub.reply(CID, HidCommand.KEEPALIVE, Uint8Array.of(1));
      hub.reply(CID, HidCommand.ERROR, Uint8Array.of(HidErrorCode.MSG_TIMEOUT)); // a leftover, not INIT's answer
      hub.reply(CID, HidCommand.INIT, Uint8Array.of(9, 9, 9, 9, 9, 9, 9, 9, 0x0b, 0xad, 0xca, 0xfe, 2, 1, 0, 0, 0)); // someone else's nonce
      hub.reply(0x1234_5678, 0x41, new TextEncoder().encode('other channel'));
      hub.reply(CID, HidCommand.INIT, Uint8Array.of(...m.payload, 0x0b, 0xad, 0xca, 0xfe, 2, 1, 0, 0, 0));
    } else if (m.command === 0x41 && m.payload[0] === 2) {
      hub.reply(0x1234_5678, 0x41, new TextEncoder().encode('other channel'));
      hub.reply(CID, 0x42, new TextEncoder().encode('wrong command'));
      hub.reply(CID, 0x41, new TextEncoder().encode('fresh'));
    }
    // the first 0x41 and the CANCEL go unanswered
  });
  const client = new HidClient(hub.host(), { timers, timeoutMs: 100 });
  await client.init();
  const timedOut = assert.rejects(client.exchange(0x41, Uint8Array.of(1)), isHidError('TIMEOUT'));
  await timers.advance(100);
  await timedOut;
  assert.equal(new TextDecoder().decode(await client.exchange(0x41, Uint8Array.of(2))), 'fresh');
  assert.deepEqual(commandsWritten(hub), [
    [BROADCAST_CID, HidCommand.INIT],
    [CID, 0x41],
    [CID, HidCommand.CANCEL],
    [CID, HidCommand.INIT],
    [CID, 0x41],
  ]);
});

test('[F-23] a resync the key no longer knows (INVALID_CHANNEL) allocates a new channel', async () => {
  const key = memoryKey({ keepaliveIntervalMs: 10_000, random: cidRandom([0x0101_0101, 0x0202_0202]) });
  const { client } = key.client({ timeoutMs: 100 });
  await client.init();
  const timedOut = assert.rejects(client.exchange(0x41, new Uint8Array(0)), isHidError('TIMEOUT'));
  await key.timers.advance(100);
  await timedOut;
  key.link.reset(); // the key restarted
  key.calls[0]!.reply.resolve(new Uint8Array(0));
  assert.deepEqual(await client.exchange(HidCommand.PING, Uint8Array.of(4)), Uint8Array.of(4));
  assert.deepEqual(commandsWritten(key.hub).slice(-3), [
    [0x0101_0101, HidCommand.INIT],
    [BROADCAST_CID, HidCommand.INIT],
    [0x0202_0202, HidCommand.PING],
  ]);
  // Forgotten with nothing under way: the exchange fails INVALID_CHANNEL, the next one re-allocates.
  key.link.reset();
  await assert.rejects(client.exchange(HidCommand.PING, Uint8Array.of(5)), isHidError('DEVICE_ERROR', HidErrorCode.INVALID_CHANNEL));
  assert.deepEqual(await client.exchange(HidCommand.PING, Uint8Array.of(6)), Uint8Array.of(6));
});

test('[F-21] init() ignores INIT answers with another nonce and errors on the broadcast channel; BAD_RESPONSE on a malformed one', async () => {
  const hub = new Hub();
  const timers = new FakeTimers();
  let malformed = false;
  hub.script((m) => {
    if (m.command !== HidCommand.INIT) return;
    hub.reply(BROADCAST_CID, HidCommand.INIT, Uint8Array.of(8, 7, 6, 5, 4, 3, 2, 1, 0, 0, 0, 9, 2, 1, 0, 0, 0));
    hub.reply(BROADCAST_CID, HidCommand.ERROR, Uint8Array.of(HidErrorCode.INVALID_LEN));
    hub.reply(BROADCAST_CID, HidCommand.INIT, Uint8Array.of(1, 2, 3));
    if (malformed) hub.reply(BROADCAST_CID, HidCommand.INIT, Uint8Array.of(...m.payload, 0, 0, 0, 9, 2, 1, 0, 0)); // 16 bytes
    else hub.reply(BROADCAST_CID, HidCommand.INIT, Uint8Array.of(...m.payload, 0, 0, 0, 7, 2, 4, 5, 6, 1));
  });
  const client = new HidClient(hub.host(), { timers });
  assert.deepEqual(await client.init(), { cid: 7, protocolVersion: 2, major: 4, minor: 5, build: 6, capabilities: 1 });
  malformed = true;
  await assert.rejects(client.init(), isHidError('BAD_RESPONSE'));
  // A key that never answers.
  hub.script(() => {});
  const timedOut = assert.rejects(client.init(), isHidError('TIMEOUT'));
  await timers.advance(3000);
  await timedOut;
});

test('[F-22] exchanges run one at a time in call order; an aborted queued one never reaches the key', async () => {
  const key = memoryKey();
  const { client } = key.client();
  const { cid } = await client.init();
  const controller = new AbortController();
  const one = client.exchange(0x41, Uint8Array.of(1));
  const two = client.exchange(0x42, Uint8Array.of(2), { signal: controller.signal });
  const three = client.exchange(0x43, Uint8Array.of(3));
  const twoRejected = assert.rejects(two, isHidError('CANCELLED'));
  await settle();
  assert.equal(key.calls.length, 1);
  controller.abort();
  await twoRejected;
  key.calls[0]!.reply.resolve(Uint8Array.of(0xa1));
  assert.deepEqual(await one, Uint8Array.of(0xa1));
  await settle();
  key.calls[1]!.reply.resolve(Uint8Array.of(0xa3));
  assert.deepEqual(await three, Uint8Array.of(0xa3));
  assert.deepEqual(key.calls.map((c) => c.command), [0x41, 0x43]);
  assert.deepEqual(commandsWritten(key.hub).slice(1), [[cid, 0x41], [cid, 0x43]]);
});

test('transport close rejects the pending and queued exchanges with DISCONNECTED, and later calls at once', async () => {
  const key = memoryKey();
  const { client, host } = key.client();
  await client.init();
  const pending = client.exchange(0x41, new Uint8Array(0));
  const queued = [client.exchange(0x42, new Uint8Array(0)), client.exchange(HidCommand.PING, new Uint8Array(0))];
  const all = [pending, ...queued].map((p) => assert.rejects(p, isHidError('DISCONNECTED')));
  await settle();
  host.unplug();
  await Promise.all(all);
  assert.equal(client.closed, true);
  await assert.rejects(client.exchange(HidCommand.PING, new Uint8Array(0)), isHidError('DISCONNECTED'));
  await assert.rejects(client.init(), isHidError('DISCONNECTED'));
  assert.equal(key.calls.length, 1);
});

test('client.close() rejects what is pending with CLOSED and closes the transport', async () => {
  const key = memoryKey();
  const { client, host } = key.client();
  await client.init();
  const pending = assert.rejects(client.exchange(0x41, new Uint8Array(0)), isHidError('CLOSED'));
  await settle();
  await client.close();
  await pending;
  assert.equal(host.closed, true);
  assert.equal(client.closed, true);
  await assert.rejects(client.exchange(HidCommand.PING, new Uint8Array(0)), isHidError('CLOSED'));
  await assert.rejects(host.write(new Uint8Array(64)), isHidError('CLOSED'));
});

// ---------------------------------------------------------------------------------------------------
// SocketHidConnector over real sockets

/** The emulator's shape: a KeyLink per connection, raw 64-byte reports, its own reports cut in odd chunks. */
async function startKeyServer(listen: (server: Server) => void, options: Partial<LinkOptions> = {}) {
  const sockets = new Set<Socket>();
  const keepalivesSent: number[] = [];
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => {
      sockets.delete(socket);
      link.reset();
    });
    const link = new KeyLink({
      version: VERSION,
      handle: async (command, payload) => (command === 0x41 ? payload.slice().reverse() : new Uint8Array(0)),
      ...options,
      send: (report) => {
        if (socket.destroyed) return;
        // Split every report so the client has to join chunks across 'data' events.
        socket.write(report.subarray(0, 10));
        socket.write(report.subarray(10, 63));
        socket.write(report.subarray(63));
        if (report[4] === (0x80 | HidCommand.KEEPALIVE)) keepalivesSent.push(report[7]!);
        options.send?.(report);
      },
    });
    let buffered = new Uint8Array(0);
    socket.on('data', (chunk: Buffer) => {
      const joined = new Uint8Array(buffered.length + chunk.length);
      joined.set(buffered);
      joined.set(chunk, buffered.length);
      let offset = 0;
      for (; joined.length - offset >= 64; offset += 64) link.receive(joined.slice(offset, offset + 64));
      buffered = joined.slice(offset);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.once('listening', () => resolve());
    listen(server);
  });
  return {
    server,
    sockets,
    keepalivesSent,
    async close(): Promise<void> {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

test('SocketHidConnector over a Unix socket: init, PING up to 7609 bytes, keepalives, a vendor command, disconnect', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'trickle-hid-'));
  const path = join(dir, 'key.sock');
  const slow = deferred<void>();
  const neverAnswered = deferred<void>();
  let keepalives = 0;
  const keyServer = await startKeyServer((server) => server.listen(path), {
    keepaliveIntervalMs: 5,
    handle: async (command, payload) => {
      if (command === 0x42) await slow.promise;
      if (command === 0x43) {
        neverAnswered.resolve();
        await new Promise(() => {}); // never answers
      }
      return payload.slice().reverse();
    },
    send: (report) => {
      if (report[4] === (0x80 | HidCommand.KEEPALIVE) && ++keepalives === 3) slow.resolve();
    },
  });
  try {
    const connector = new SocketHidConnector({ path });
    assert.match(connector.describe(), /key\.sock/);
    const { transport, path: reported } = await connector.connect();
    assert.equal(reported, path);
    const client = new HidClient(transport);
    const info = await client.init();
    assert.deepEqual([info.major, info.minor, info.build], [1, 2, 3]);
    for (const size of [0, 57, 58, 7609]) assert.deepEqual(await client.exchange(HidCommand.PING, pattern(size)), pattern(size));
    const statuses: number[] = [];
    assert.deepEqual(await client.exchange(0x42, Uint8Array.of(1, 2, 3), { onKeepalive: (s) => statuses.push(s) }), Uint8Array.of(3, 2, 1));
    assert.deepEqual(statuses, [1, 1, 1]);
    const lost = assert.rejects(client.exchange(0x43, new Uint8Array(0)), isHidError('DISCONNECTED'));
    await neverAnswered.promise; // the key is working on it: now pull the plug
    for (const socket of keyServer.sockets) socket.destroy();
    await lost;
    assert.equal(transport.closed, true);
    await assert.rejects(transport.write(new Uint8Array(64)), isHidError('DISCONNECTED'));
  } finally {
    await keyServer.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('SocketHidConnector: loopback TCP works; a missing socket is NOT_FOUND; only loopback hosts are accepted', async () => {
  const keyServer = await startKeyServer((server) => server.listen(0, '127.0.0.1'));
  try {
    const { port } = keyServer.server.address() as AddressInfo;
    const connector = new SocketHidConnector({ host: '127.0.0.1', port });
    const { transport } = await connector.connect();
    const client = new HidClient(transport);
    await client.init();
    assert.deepEqual(await client.exchange(0x41, Uint8Array.of(1, 2)), Uint8Array.of(2, 1));
    await client.close();
    assert.equal(transport.closed, true);
  } finally {
    await keyServer.close();
  }
  const dir = mkdtempSync(join(tmpdir(), 'trickle-hid-'));
  try {
    await assert.rejects(new SocketHidConnector({ path: join(dir, 'absent.sock') }).connect(), isHidError('NOT_FOUND'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.throws(() => new SocketHidConnector({ host: '10.0.0.1' as '127.0.0.1', port: 1 }), RangeError);
  assert.throws(() => new SocketHidConnector({ host: '127.0.0.1', port: 70000 }), RangeError);
  assert.throws(() => new SocketHidConnector({ path: '' }), TypeError);
});

// ---------------------------------------------------------------------------------------------------
// NodeHidConnector

test('NodeHidConnector: with no key attached, connect() rejects with HidError NOT_FOUND (node-hid must load)', async () => {
  const connector = new NodeHidConnector({ vendorId: 0x1209, productId: 0x7a11 });
  assert.match(connector.describe(), /1209:7a11/);
  // A failure to load the native addon is not a HidError, so it fails this test rather than passing it.
  await assert.rejects(connector.connect(), isHidError('NOT_FOUND'));
  const loaded = await import('node-hid');
  const hid = (loaded as unknown as { default?: typeof loaded }).default ?? loaded;
  assert.match(hid.getHidapiVersion(), /^\d+\.\d+/);
  assert.throws(() => new NodeHidConnector({ vendorId: 0x10000, productId: 1 }), RangeError);
});
