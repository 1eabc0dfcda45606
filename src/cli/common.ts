/**
 * What every `trickle` command shares: flag readers, the usage error, the output (human lines or JSON
 * lines), the chain-related node options, progress while the chain catches up, and the wait for a
 * signal that ends a long-running command.
 */
import { bytesToHex } from '../bytes.js';
import type { MqttTransport } from '../transport/mqtt/transport.js';
import { chainChoice } from './chain.js';
import type { LocalNode, LocalNodeOptions } from './setup.js';

export type Flags = Record<string, string | boolean | undefined>;

/** A command line that cannot work: printed with the usage, exit code 2. */
export class UsageError extends Error {}

/** JSON with bigints as decimal strings and bytes as hex. */
export function jsonLine(value: unknown): string {
  return JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? bytesToHex(v) : v));
}

export function required(flags: Flags, name: string): string {
  const v = flags[name];
  if (typeof v !== 'string' || v.length === 0) throw new UsageError(`--${name} is required`);
  return v;
}

export function bigintFlag(flags: Flags, name: string, fallback: bigint): bigint {
  const v = flags[name];
  if (v === undefined) return fallback;
  if (typeof v !== 'string' || !/^\d+$/.test(v)) throw new UsageError(`--${name} expects a non-negative integer`);
  return BigInt(v);
}

export function intFlag(flags: Flags, name: string, fallback: number): number {
  const value = bigintFlag(flags, name, BigInt(fallback));
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new UsageError(`--${name} is too large`);
  return Number(value);
}

export interface Emitter {
  json: boolean;
  /** A JSON line in --json mode, else the human line (if any). */
  event(value: Record<string, unknown>, human?: string): void;
}

/** A flag that must be a positive integer when given. */
export function positiveIntFlag(flags: Flags, name: string, fallback: number): number {
  const value = intFlag(flags, name, fallback);
  if (value === 0) throw new UsageError(`--${name} must be positive`);
  return value;
}

export function emitter(flags: Flags): Emitter {
  const json = flags['json'] === true;
  return {
    json,
    event(value, human) {
      if (json) process.stdout.write(`${jsonLine(value)}\n`);
      else if (human) process.stdout.write(`${human}\n`);
    },
  };
}

export interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  channel?: string;
  code?: string;
}

/** The nodes' log: JSON 'log' events, or warnings and errors on stderr. */
export function logTo(out: Emitter): (entry: LogEntry) => void {
  return (entry) => {
    if (entry.level === 'debug') return;
    if (out.json) out.event({ event: 'log', ...entry });
    else if (entry.level !== 'info') process.stderr.write(`[${entry.level}] ${entry.msg}${entry.code ? ` (${entry.code})` : ''}\n`);
  };
}

/** The chain and the chain-related node options from the flags. */
export function chainOptions(flags: Flags): Pick<LocalNodeOptions, 'chain' | 'walletBirthHeight' | 'closeDepth' | 'minDepth' | 'fallbackFeeratePerKw'> {
  const optionalInt = (name: string) => (flags[name] === undefined ? undefined : intFlag(flags, name, 0));
  const birth = optionalInt('wallet-birth-height');
  const closeDepth = optionalInt('close-depth');
  const minDepth = optionalInt('min-depth');
  if (closeDepth === 0 || minDepth === 0) throw new UsageError('--close-depth and --min-depth must be at least 1');
  const fallback = flags['fallback-feerate-per-kw'] === undefined ? undefined : bigintFlag(flags, 'fallback-feerate-per-kw', 0n);
  if (fallback !== undefined && fallback < 253n) throw new UsageError('--fallback-feerate-per-kw must be at least 253');
  return {
    chain: chainChoice(flags),
    ...(birth !== undefined && { walletBirthHeight: birth }),
    ...(closeDepth !== undefined && { closeDepth }),
    ...(minDepth !== undefined && { minDepth }),
    ...(fallback !== undefined && { fallbackFeeratePerKw: fallback }),
  };
}

/** --signer software|emulator|usb, with --key-socket PATH (emulator) or --key-serial S (usb). */
export function signerOptions(flags: Flags): Pick<LocalNodeOptions, 'signer'> {
  const kind = flags['signer'] ?? 'software';
  if (kind === 'software') return {};
  if (kind === 'emulator') {
    const socket = flags['key-socket'];
    if (typeof socket !== 'string') throw new UsageError('--signer emulator needs --key-socket PATH (the emulator\'s socket)');
    return { signer: { kind: 'emulator', socket } };
  }
  if (kind === 'usb') {
    const serial = flags['key-serial'];
    return { signer: { kind: 'usb', ...(typeof serial === 'string' && { serial }) } };
  }
  throw new UsageError('--signer must be software, emulator or usb');
}

/** Progress while the chain or the wallet's block scan catches up: at most one line a second, and the last. */
export function catchUpProgress(out: Emitter): (p: { height: number; tipHeight: number }) => void {
  let last = 0;
  return ({ height, tipHeight }) => {
    const now = performance.now();
    if (height !== tipHeight && now - last < 1000) return;
    last = now;
    if (out.json) out.event({ event: 'catching-up', height, tipHeight });
    else process.stderr.write(`catching up with the chain: block ${height} of ${tipHeight}\n`);
  };
}

export function waitForSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (signal: string) => resolve(signal);
    process.once('SIGINT', on);
    process.once('SIGTERM', on);
  });
}

/** MQTT frame bytes this node has sent and received so far. */
export function frameBytes(local: LocalNode): number {
  const stats = (local.messenger.transport as MqttTransport).stats();
  return stats.sent.frameBytes + stats.received.frameBytes;
}

/** "12,345" */
export function grouped(value: bigint | number): string {
  return BigInt(value).toLocaleString('en-US');
}
