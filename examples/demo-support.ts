/**
 * What the demo's scenarios share (examples/demo.ts, examples/demo-rsmc.ts): the chain the demo drives
 * (an embedded simnet served on loopback, or a regtest bitcoind / Esplora it funds and mines over RPC),
 * `trickle` child processes and their JSON lines, the summary every scenario returns, and fee reading.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { address as btcAddress, networks, payments, Transaction } from 'bitcoinjs-lib';
import { Simnet } from '../src/chain/simnet/index.js';
import { serveSimnet } from '../src/chain/simnet/server.js';
import { BitcoindChain, type BitcoindAuth } from '../src/chain/bitcoind/index.js';
import type { ChainSource } from '../src/chain/port.js';
import { hashToTxid } from '../src/onchain/tx.js';
import { startEmulator } from '../firmware-bridge/emulator.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = join(root, 'src', 'cli', 'main.ts');

export type DemoChainOptions =
  /**
   * An in-process simnet served on loopback, mining a block every blockMs (default 100) while its mempool
   * holds transactions. Pass `simnet` to read the chain after the demo (the tests do).
   */
  | { kind: 'simnet'; simnet?: Simnet; blockMs?: number }
  | { kind: 'bitcoind'; rpcUrl: string; auth?: BitcoindAuth; blockMs?: number }
  | { kind: 'esplora'; esploraUrl: string; rpcUrl: string; auth?: BitcoindAuth; blockMs?: number };

export interface DemoChain {
  label: string;
  /** Chain flags for the trickle processes. */
  flags: string[];
  reader: ChainSource;
  fund(script: Uint8Array, valueSat: bigint): Promise<void>;
  mine(count: number): Promise<void>;
  /** Flags for a node's first run (bitcoind: scan for its coins from the current tip). */
  deviceFlags(): Promise<string[]>;
  close(): Promise<void>;
}

export async function startDemoChain(options: DemoChainOptions, say: (text: string) => void): Promise<DemoChain> {
  if (options.kind === 'simnet') {
    const simnet = options.simnet ?? new Simnet();
    const server = await serveSimnet(simnet, { autoMine: { intervalMs: options.blockMs ?? 100 } });
    say(`simnet ${server.url}`);
    return {
      label: 'simnet',
      flags: ['--chain', 'simnet', '--simnet-url', server.url],
      reader: simnet,
      fund: async (script, valueSat) => {
        await simnet.faucet(script, valueSat);
        await simnet.mine(1);
      },
      mine: async (count) => void (await simnet.mine(count)),
      deviceFlags: async () => [],
      close: () => server.close(),
    };
  }
  // The summary looks up the channel's transactions by txid; without -txindex that is a scan back from the
  // tip, and a slow run (blocks every --block-ms) can leave the funding more than the default 144 behind.
  const rpc = await BitcoindChain.connect({ url: options.rpcUrl, ...(options.auth && { auth: options.auth }), network: 'regtest', pollIntervalMs: 60_000, maxTxScanBlocks: 2016 });
  // Block rewards the demo does not need go to an address nobody has a key for.
  const sink = payments.p2wsh({ hash: new Uint8Array(32).fill(0x51), network: networks.regtest }).address!;
  const mine = async (count: number) => void (await rpc.generateToAddress(count, sink));
  let stopped = false;
  const blockMs = options.blockMs ?? 500;
  const miner = (async () => {
    while (!stopped) {
      await new Promise((r) => setTimeout(r, blockMs));
      if (!stopped) await mine(1).catch((e: unknown) => say(`mining failed: ${(e as Error).message}`));
    }
  })();
  const authFlags = !options.auth ? [] : 'cookieFile' in options.auth ? ['--rpc-cookie', options.auth.cookieFile] : ['--rpc-user', options.auth.user, '--rpc-pass', options.auth.password];
  const flags = options.kind === 'bitcoind'
    ? ['--chain', 'bitcoind', '--rpc-url', options.rpcUrl, ...authFlags, '--network', 'regtest']
    : ['--chain', 'esplora', '--esplora-url', options.esploraUrl, '--network', 'regtest'];
  say(`${options.kind} on regtest (${new URL(options.rpcUrl).origin}), a block every ${blockMs} ms`);
  return {
    label: `${options.kind} (regtest)`,
    flags,
    reader: rpc,
    fund: async (script, _valueSat) => {
      // A block reward to the device, then 100 blocks so that it matures (coinbase maturity).
      await rpc.generateToAddress(1, btcAddress.fromOutputScript(script, networks.regtest));
      await mine(100);
    },
    mine,
    deviceFlags: async () => (options.kind === 'bitcoind' ? ['--wallet-birth-height', String(await rpc.tipHeight())] : []),
    close: async () => {
      stopped = true;
      await miner;
      rpc.close();
    },
  };
}

/** What `npm start -- --json` prints last. Amounts in sat or msat are decimal strings. */
export interface Summary {
  scenario: 'oneway' | 'refund' | 'rsmc' | 'breach';
  chain: string;
  /** One-way: settled or refunded. Revocable: how the channel closed (a breach ends in 'penalty'). */
  outcome: 'settled' | 'refunded' | 'cooperative-close' | 'unilateral-close' | 'penalty' | 'none';
  /** The channel's transactions the chain confirmed (funding, closing or commitment, sweeps, penalty). */
  onchainTxs: number;
  txids: string[];
  /** Off-chain payments, both directions together for a revocable channel. */
  payments: number;
  paidMsat: string;
  /** One-way: what the provider received on chain. Null for revocable channels: see finalBalancesSat. */
  payeeReceivedSat: string | null;
  /** Every fee the channel's confirmed transactions paid. */
  feesSat: string;
  wireBytesPerPayment: number;
  durationMs: number;
  /** One-way streaming only (null for revocable channels). */
  units: string | null;
  unit: string | null;
  /** What the provider's gate let through and what it had been paid for (never more served than paid); null when it did not report. */
  providerServedUnits: string | null;
  providerPaidUnits: string | null;
  /** One-way: provider and device. Revocable: B, the peer that accepts (and adds funds), and A, the one that opens. */
  providerId: string;
  deviceId: string;
  /** Revocable channels only: A opens, B accepts. */
  capacitySat?: string;
  fundingSat?: { a: string; b: string };
  /** Updates committed in both commitments (payments), in total and by the side that sent them. */
  updates?: number;
  updatesSent?: { a: number; b: number };
  /** What each side holds on chain at the end (its outcome's localReceivedSat). */
  finalBalancesSat?: { a: string; b: string };
  /** Breach: what the side that broadcast a revoked state got back. */
  cheaterReceivedSat?: string;
  /** Where the paying side's channel keys lived: 'software', or 'emulator' (the Trickle key's emulator). */
  signer: DemoSigner;
  /** The emulated key's serial (signer 'emulator'). */
  keySerial?: string;
  /** Requests the emulated key refused by its policy (none in a normal run). */
  keyRefusals?: number;
}

export type DemoSigner = 'software' | 'emulator';

/**
 * `--signer emulator`: the Trickle key's emulator in this process, on a Unix socket in the demo's
 * directory; the paying side's `trickle` process reaches it with --signer emulator --key-socket. Auto-
 * confirms (a demo has nobody to press the button). Counts what it answered for the summary.
 */
export async function startDemoKey(dir: string, say: (text: string) => void): Promise<{ flags: string[]; serial: string; refusals(): number; close(): Promise<void> }> {
  const socketPath = join(dir, 'key.sock');
  let refusals = 0;
  const key = await startEmulator({
    socketPath,
    stateDir: join(dir, 'key'),
    confirm: 'auto',
    log: (line) => {
      if (/ refused: /.test(line)) {
        refusals++;
        say(`key: ${line}`);
      }
    },
  });
  say(`Trickle key (emulator) ${key.serial} on ${socketPath}: the paying side's channel keys live there`);
  return { flags: ['--signer', 'emulator', '--key-socket', socketPath], serial: key.serial, refusals: () => refusals, close: () => key.close() };
}

export function child(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', cli, ...args], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

/** JSON lines from a child's stdout, as they come. */
export function lines(proc: ChildProcess, onLine: (value: Record<string, unknown>) => void): void {
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    try {
      onLine(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // not JSON: ignore
    }
  });
}

export function exited(proc: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) resolve(proc.exitCode);
    else proc.once('exit', (code) => resolve(code));
  });
}

/** A transaction's fee: its inputs (read from the chain) less its outputs; 0 if an input is unknown. */
export async function feeOf(reader: ChainSource, raw: Uint8Array): Promise<bigint> {
  const tx = Transaction.fromBuffer(Buffer.from(raw));
  let inSat = 0n;
  for (const input of tx.ins) {
    const prev = await reader.getTransaction(hashToTxid(input.hash));
    if (!prev) return 0n;
    inSat += Transaction.fromBuffer(Buffer.from(prev.tx)).outs[input.index]!.value;
  }
  return inSat - tx.outs.reduce((sum, o) => sum + o.value, 0n);
}

