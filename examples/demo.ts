/**
 * `npm start`: Trickle's headline use on one machine. This process starts an embedded MQTT broker and a
 * simnet chain server on loopback; a provider and a device then run as two separate `trickle` processes
 * that talk only over MQTT (BOLT 8 sessions, CBOR messages) and reach the chain over HTTP. The device
 * opens a one-way channel, streams simulated bandwidth paid per megabyte, and closes; the provider
 * settles. Two transactions reach the chain: the funding and the settlement.
 *
 *   npm start                      # the default scenario (oneway), with a live progress bar
 *   npm start -- --scenario refund # the provider vanishes; the device takes its refund after expiry
 *   npm start -- --json            # a summary object as the last line
 *   npm start -- --chain bitcoind --rpc-url http://127.0.0.1:18443 --rpc-cookie ~/.bitcoin/regtest/.cookie
 *                                  # the same against a real regtest node (docs/chain.md)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { address as btcAddress, networks, payments } from 'bitcoinjs-lib';
import { Simnet } from '../src/chain/simnet/index.js';
import { serveSimnet } from '../src/chain/simnet/server.js';
import { BitcoindChain, type BitcoindAuth } from '../src/chain/bitcoind/index.js';
import type { ChainSource } from '../src/chain/port.js';
import { hexToBytes } from '../src/bytes.js';
import { hashToTxid } from '../src/onchain/tx.js';
import { startEmbeddedBroker } from '../src/transport/mqtt/broker.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = join(root, 'src', 'cli', 'main.ts');

const HELP = `npm start -- [options]

  --scenario oneway|refund  oneway (default): stream, close, the provider settles.
                            refund: the provider vanishes mid-stream; the device takes its refund after expiry.
  --gb N                    gigabytes to stream (default 100), priced 1 sat per MB: 1000 sat per 1 GB unit
  --rate N                  simulated consumption in GB/s (default 8, so 100 GB take about 13 s)
  --json                    print the summary as one JSON object on the last line
  -h, --help                this help

Chain (default: an embedded simnet):
  --chain simnet            an in-process simnet served on loopback (default)
  --chain bitcoind --rpc-url URL [--rpc-user U --rpc-pass P | --rpc-cookie FILE]
                            a bitcoind REGTEST node: the demo funds the device with generatetoaddress
                            (plus 100 blocks for coinbase maturity) and mines a block every --block-ms
  --chain esplora --esplora-url URL --rpc-url URL [auth]
                            the provider and device use an Esplora server on regtest; the demo still
                            needs the regtest node's RPC behind it to fund and mine
  --block-ms N              on bitcoind/esplora, mine a block every N ms (default 500)
  See docs/chain.md for running a regtest node step by step.
`;

/** The chain the demo drives: funds the device, mines blocks, and reads the outcome. */
export type DemoChainOptions =
  | { kind: 'simnet' }
  | { kind: 'bitcoind'; rpcUrl: string; auth?: BitcoindAuth; blockMs?: number }
  | { kind: 'esplora'; esploraUrl: string; rpcUrl: string; auth?: BitcoindAuth; blockMs?: number };

interface DemoChain {
  label: string;
  /** Chain flags for the trickle processes. */
  flags: string[];
  reader: ChainSource;
  fund(script: Uint8Array, valueSat: bigint): Promise<void>;
  mine(count: number): Promise<void>;
  /** Flags for the device's first run (bitcoind: scan for its coins from the current tip). */
  deviceFlags(): Promise<string[]>;
  close(): Promise<void>;
}

async function startDemoChain(options: DemoChainOptions, say: (text: string) => void): Promise<DemoChain> {
  if (options.kind === 'simnet') {
    const simnet = new Simnet();
    const server = await serveSimnet(simnet, { autoMine: { intervalMs: 100 } });
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
  const rpc = await BitcoindChain.connect({ url: options.rpcUrl, ...(options.auth && { auth: options.auth }), network: 'regtest', pollIntervalMs: 60_000 });
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

interface Summary {
  scenario: string;
  chain: string;
  outcome: 'settled' | 'refunded' | 'none';
  onchainTxs: number;
  txids: string[];
  payments: number;
  paidMsat: string;
  payeeReceivedSat: string;
  feesSat: string;
  wireBytesPerPayment: number;
  durationMs: number;
  units: string;
  unit: string;
  /** What the provider's gate let through and what it had been paid for (never more served than paid). */
  providerServedUnits: string | undefined;
  providerPaidUnits: string | undefined;
  providerId: string;
  deviceId: string;
}

function child(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', cli, ...args], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

/** JSON lines from a child's stdout, as they come. */
function lines(proc: ChildProcess, onLine: (value: Record<string, unknown>) => void): void {
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    try {
      onLine(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // not JSON: ignore
    }
  });
}

function exited(proc: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) resolve(proc.exitCode);
    else proc.once('exit', (code) => resolve(code));
  });
}

export async function runDemo(options: { scenario: 'oneway' | 'refund'; gb: bigint; rateGbPerSec: bigint; quiet: boolean; chain?: DemoChainOptions }): Promise<Summary> {
  const started = performance.now();
  const say = (text: string) => {
    if (!options.quiet) process.stderr.write(`${text}\n`);
  };
  const work = await mkdtemp(join(tmpdir(), 'trickle-demo-'));
  const broker = await startEmbeddedBroker();
  say(`broker ${broker.url}`);
  const chain = await startDemoChain(options.chain ?? { kind: 'simnet' }, say);
  const procs: ChildProcess[] = [];
  try {
    const common = ['--broker', broker.url, ...chain.flags, '--json'];

    const providerDir = join(work, 'provider');
    // 1 sat per MB, sold by the gigabyte; the device pays at most 2 GB ahead, 1 GB per payment.
    const provider = child(['provider', '--data-dir', providerDir, '--unit', 'GB', '--tariff-msat', '1000000', '--window', '2',
      '--serve-rate', options.rateGbPerSec.toString(), ...common]);
    procs.push(provider);
    const providerEvents: Array<Record<string, unknown>> = [];
    const providerReady = new Promise<string>((resolve, reject) => {
      lines(provider, (e) => {
        providerEvents.push(e);
        if (e['event'] === 'ready') resolve(String(e['nodeId']));
      });
      provider.once('exit', (code) => reject(new Error(`provider exited early (${code})`)));
    });
    const providerId = await providerReady;
    say(`provider ${providerId.slice(0, 16)}… sells "hotspot" at 1000 sat per GB (1 sat/MB)`);

    const deviceDir = join(work, 'device');
    const init = child(['init', '--data-dir', deviceDir, '--json']);
    let walletScript = '';
    let deviceId = '';
    lines(init, (e) => {
      walletScript = String(e['walletScript']);
      deviceId = String(e['nodeId']);
    });
    await exited(init);
    const units = options.gb;
    const deviceFlags = await chain.deviceFlags();
    await chain.fund(hexToBytes(walletScript), units * 1000n * 2n + 1_000_000n);
    say(`device ${deviceId.slice(0, 16)}… funded on ${chain.label}; buying ${options.gb} GB`);

    const device = child([
      ...deviceFlags,
      'pay', '--data-dir', deviceDir, '--provider', providerId, '--units', units.toString(),
      '--rate', options.rateGbPerSec.toString(), '--step', '1', '--expiry-blocks', options.scenario === 'refund' ? '40' : '144',
      ...(options.scenario === 'refund' ? ['--pay-timeout-ms', '1500'] : []),
      ...common,
    ]);
    procs.push(device);
    let deviceSummary: Record<string, unknown> | undefined;
    let killed = false;
    lines(device, (e) => {
      if (e['event'] === 'summary') deviceSummary = e;
      if (options.scenario === 'refund' && !killed && e['event'] === 'payment' && Number(e['number']) >= 20) {
        killed = true;
        say('\nprovider vanishes (SIGKILL) mid-stream');
        provider.kill('SIGKILL');
      }
      if (e['event'] === 'closing' && options.scenario === 'refund') {
        // Nobody settles: let the chain run to the refund's lock height.
        void (async () => {
          say('device waits for its refund: mining to the expiry height');
          while (deviceSummary === undefined && device.exitCode === null) {
            await chain.mine(1);
            await new Promise((r) => setTimeout(r, 20));
          }
        })();
      }
    });
    const deviceCode = await exited(device);
    if (deviceCode !== 0 || !deviceSummary) throw new Error(`device exited with ${deviceCode}`);
    const s = deviceSummary as Record<string, unknown>;
    const outcome = s['outcome'] as Record<string, string> | undefined;
    const fundingTxid = String(s['fundingTxid']);
    const txids = [fundingTxid, ...(outcome ? [outcome['txid']!] : [])];
    // What the chain says: each channel transaction confirmed.
    const confirmed: string[] = [];
    for (const txid of txids) {
      const status = await chain.reader.getTransaction(txid);
      if (status && status.blockHeight !== undefined) confirmed.push(txid);
    }
    // The provider reports what it served when the channel closes; give it a moment to print it.
    for (let i = 0; i < 50 && options.scenario === 'oneway' && !providerEvents.some((e) => e['event'] === 'served'); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const served = providerEvents.filter((e) => e['event'] === 'served').pop();
    const fundingStatus = await chain.reader.getTransaction(fundingTxid);
    const fundingFee = fundingStatus ? await feeOf(chain.reader, fundingStatus.tx) : 0n;
    const closingFee = outcome ? BigInt(outcome['feeSat']!) : 0n;
    return {
      scenario: options.scenario,
      chain: chain.label,
      outcome: outcome ? (outcome['kind'] as 'settled' | 'refunded') : 'none',
      onchainTxs: confirmed.length,
      txids: confirmed,
      payments: Number(s['payments']),
      paidMsat: String(s['paidMsat']),
      payeeReceivedSat: outcome ? String(outcome['payeeValueSat']) : '0',
      feesSat: (fundingFee + closingFee).toString(),
      wireBytesPerPayment: Number(s['wireBytesPerPayment']),
      durationMs: Math.round(performance.now() - started),
      units: String(s['consumedUnits']),
      providerServedUnits: served ? String(served['servedUnits']) : undefined,
      providerPaidUnits: served ? String(served['paidUnits']) : undefined,
      unit: String(s['unit']),
      providerId,
      deviceId,
    };
  } finally {
    for (const p of procs) {
      if (p.exitCode === null && p.signalCode === null) {
        p.kill('SIGTERM');
        await exited(p);
      }
    }
    await chain.close();
    await broker.close();
    await rm(work, { recursive: true, force: true });
  }
}

async function feeOf(reader: ChainSource, raw: Uint8Array): Promise<bigint> {
  const { Transaction } = await import('bitcoinjs-lib');
  const tx = Transaction.fromBuffer(Buffer.from(raw));
  let inSat = 0n;
  for (const input of tx.ins) {
    const prev = await reader.getTransaction(hashToTxid(input.hash));
    if (!prev) return 0n;
    inSat += Transaction.fromBuffer(Buffer.from(prev.tx)).outs[input.index]!.value;
  }
  return inSat - tx.outs.reduce((sum, o) => sum + o.value, 0n);
}

function printHuman(s: Summary): void {
  const sat = (msat: string) => (Number(BigInt(msat)) / 1000).toLocaleString('en-US');
  process.stdout.write(`
Summary (${s.scenario}, ${s.chain})
  outcome               ${s.outcome}
  on-chain transactions ${s.onchainTxs}  (${s.txids.map((t) => t.slice(0, 16) + '…').join(', ')})
  off-chain payments    ${s.payments}
  streamed              ${s.units} ${s.unit}${s.providerServedUnits !== undefined ? `  (provider's gate served ${s.providerServedUnits} ${s.unit}, paid for ${s.providerPaidUnits})` : ''}
  paid                  ${sat(s.paidMsat)} sat
  provider received     ${Number(s.payeeReceivedSat).toLocaleString('en-US')} sat on chain
  fees                  ${s.feesSat} sat (funding + ${s.outcome === 'refunded' ? 'refund' : 'settlement'})
  wire bytes / payment  ${s.wireBytesPerPayment}
  duration              ${(s.durationMs / 1000).toFixed(1)} s
`);
}

function demoChainFromFlags(values: Record<string, string | boolean | undefined>): DemoChainOptions {
  const kind = values['chain'];
  if (kind === 'simnet') return { kind };
  if (kind !== 'bitcoind' && kind !== 'esplora') throw new Error('--chain must be simnet, bitcoind or esplora');
  const rpcUrl = values['rpc-url'];
  if (typeof rpcUrl !== 'string') throw new Error(`--chain ${kind} needs --rpc-url of a regtest bitcoind (the demo funds the device and mines blocks)`);
  const user = values['rpc-user'];
  const pass = values['rpc-pass'];
  const cookie = values['rpc-cookie'];
  if ((typeof user === 'string') !== (typeof pass === 'string')) throw new Error('--rpc-user and --rpc-pass go together');
  const auth: BitcoindAuth | undefined = typeof cookie === 'string' ? { cookieFile: cookie } : typeof user === 'string' ? { user, password: pass as string } : undefined;
  const blockMs = values['block-ms'];
  if (blockMs !== undefined && !/^\d+$/.test(String(blockMs))) throw new Error('--block-ms expects an integer');
  const common = { rpcUrl, ...(auth && { auth }), ...(blockMs !== undefined && { blockMs: Number(blockMs) }) };
  if (kind === 'bitcoind') return { kind, ...common };
  const esploraUrl = values['esplora-url'];
  if (typeof esploraUrl !== 'string') throw new Error('--chain esplora needs --esplora-url');
  return { kind, esploraUrl, ...common };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string', default: 'oneway' },
      gb: { type: 'string', default: '100' },
      rate: { type: 'string', default: '8' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
      chain: { type: 'string', default: 'simnet' },
      'rpc-url': { type: 'string' },
      'rpc-user': { type: 'string' },
      'rpc-pass': { type: 'string' },
      'rpc-cookie': { type: 'string' },
      'esplora-url': { type: 'string' },
      'block-ms': { type: 'string' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  if (values.scenario !== 'oneway' && values.scenario !== 'refund') throw new Error('--scenario must be oneway or refund');
  if (!/^\d+$/.test(values.gb) || !/^\d+$/.test(values.rate)) throw new Error('--gb and --rate expect integers');
  const summary = await runDemo({ scenario: values.scenario, gb: BigInt(values.gb), rateGbPerSec: BigInt(values.rate), quiet: false, chain: demoChainFromFlags(values) });
  if (values.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else printHuman(summary);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((error) => {
    process.stderr.write(`demo failed: ${(error as Error).message}\n`);
    process.exit(1);
  });
}
