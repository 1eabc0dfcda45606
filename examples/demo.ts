/**
 * `npm start`: Trickle's headline use on one machine. This process starts an embedded MQTT broker and a
 * simnet chain server on loopback; the parties then run as separate `trickle` processes that talk only
 * over MQTT (BOLT 8 sessions, CBOR messages) and reach the chain over HTTP.
 *
 * One-way scenarios: a provider and a device; the device opens a one-way channel, streams simulated
 * bandwidth paid per megabyte, and closes; the provider settles. Two transactions reach the chain: the
 * funding and the settlement. Revocable scenarios (./demo-rsmc.ts): two `trickle peer` processes, A and
 * B, fund one channel together, pay each other and close — or B cheats and A's watcher punishes it.
 *
 *   npm start                        # the default scenario (oneway), with a live progress bar
 *   npm start -- --scenario refund   # the provider vanishes; the device takes its refund after expiry
 *   npm start -- --scenario rsmc     # a dual-funded revocable channel, payments both ways, cooperative close
 *   npm start -- --scenario breach   # B broadcasts a revoked state; A's penalty takes the whole channel
 *   npm start -- --json              # a summary object as the last line
 *   npm start -- --chain bitcoind --rpc-url http://127.0.0.1:18443 --rpc-cookie ~/.bitcoin/regtest/.cookie
 *                                    # the same against a real regtest node (docs/chain.md)
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { BitcoindAuth } from '../src/chain/bitcoind/index.js';
import { hexToBytes } from '../src/bytes.js';
import { startEmbeddedBroker } from '../src/transport/mqtt/broker.js';
import { child, exited, feeOf, lines, startDemoChain, startDemoKey, type DemoChainOptions, type DemoSigner, type Summary } from './demo-support.js';
import { printRsmcSummary, runRsmcDemo } from './demo-rsmc.js';

export type { DemoChainOptions, DemoSigner, Summary } from './demo-support.js';

const HELP = `npm start -- [options]

  --scenario oneway|refund|rsmc|breach
                            oneway (default): a device streams over a one-way channel, closes, the provider settles.
                            refund: the provider vanishes mid-stream; the device takes its refund after expiry.
                            rsmc: two peers fund a revocable channel together (dual funding), pay each
                            other both ways and close cooperatively.
                            breach: B pays A, then broadcasts its revoked commitment from before; A's
                            watcher sees it and a penalty takes B's share: A ends with the whole channel less fees.
  --gb N                    oneway/refund: gigabytes to stream (default 100), 1000 sat per 1 GB unit
  --rate N                  oneway/refund: simulated consumption in GB/s (default 8: 100 GB take about 13 s)
  --signer software|emulator
                            where the paying side's channel keys live: software (default, from its seed) or
                            the Trickle key's emulator, started by the demo on a Unix socket (the device,
                            or peer A, signs through it over the HID framing; firmware-bridge/PROTOCOL.md)
  --json                    print the summary as one JSON object on the last line
  -h, --help                this help

Chain (default: an embedded simnet):
  --chain simnet            an in-process simnet served on loopback (default)
  --chain bitcoind --rpc-url URL [--rpc-user U --rpc-pass P | --rpc-cookie FILE]
                            a bitcoind REGTEST node: the demo funds the device (or both peers) with generatetoaddress
                            (plus 100 blocks for coinbase maturity) and mines a block every --block-ms
  --chain esplora --esplora-url URL --rpc-url URL [auth]
                            the provider and device use an Esplora server on regtest; the demo still
                            needs the regtest node's RPC behind it to fund and mine
  --block-ms N              mine a block every N ms (default 500 on bitcoind/esplora; on the simnet 100,
                            and only while transactions wait in its mempool)
  See docs/chain.md for running a regtest node step by step.
`;

export interface DemoOptions {
  scenario: Summary['scenario'];
  /** oneway/refund: gigabytes to stream (default 100) and the simulated rate (default 8 GB/s). */
  gb?: bigint;
  rateGbPerSec?: bigint;
  /** No narration on stderr. */
  quiet: boolean;
  chain?: DemoChainOptions;
  /** Where the paying side's channel keys live (default software). */
  signer?: DemoSigner;
}

/** Run one scenario end to end and return its summary (what `--json` prints). */
export async function runDemo(options: DemoOptions): Promise<Summary> {
  if (options.scenario === 'rsmc' || options.scenario === 'breach') {
    return runRsmcDemo({ scenario: options.scenario, quiet: options.quiet, signer: options.signer ?? 'software', ...(options.chain && { chain: options.chain }) });
  }
  return runOnewayDemo({ scenario: options.scenario, gb: options.gb ?? 100n, rateGbPerSec: options.rateGbPerSec ?? 8n, quiet: options.quiet, signer: options.signer ?? 'software', ...(options.chain && { chain: options.chain }) });
}

async function runOnewayDemo(options: { scenario: 'oneway' | 'refund'; gb: bigint; rateGbPerSec: bigint; quiet: boolean; signer: DemoSigner; chain?: DemoChainOptions }): Promise<Summary> {
  const started = performance.now();
  const say = (text: string) => {
    if (!options.quiet) process.stderr.write(`${text}\n`);
  };
  const work = await mkdtemp(join(tmpdir(), 'trickle-demo-'));
  const broker = await startEmbeddedBroker();
  say(`broker ${broker.url}`);
  const chain = await startDemoChain(options.chain ?? { kind: 'simnet' }, say);
  const procs: ChildProcess[] = [];
  const key = options.signer === 'emulator' ? await startDemoKey(work, say) : undefined;
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
      ...(key?.flags ?? []),
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
      providerServedUnits: served ? String(served['servedUnits']) : null,
      providerPaidUnits: served ? String(served['paidUnits']) : null,
      unit: String(s['unit']),
      providerId,
      deviceId,
      signer: options.signer,
      ...(key && { keySerial: key.serial, keyRefusals: key.refusals() }),
    };
  } finally {
    for (const p of procs) {
      if (p.exitCode === null && p.signalCode === null) {
        p.kill('SIGTERM');
        await exited(p);
      }
    }
    await key?.close();
    await chain.close();
    await broker.close();
    await rm(work, { recursive: true, force: true });
  }
}

function printHuman(s: Summary): void {
  if (s.scenario === 'rsmc' || s.scenario === 'breach') return printRsmcSummary(s);
  const sat = (msat: string) => (Number(BigInt(msat)) / 1000).toLocaleString('en-US');
  process.stdout.write(`
Summary (${s.scenario}, ${s.chain})
  outcome               ${s.outcome}
  on-chain transactions ${s.onchainTxs}  (${s.txids.map((t) => t.slice(0, 16) + '…').join(', ')})
  off-chain payments    ${s.payments}
  streamed              ${s.units} ${s.unit}${s.providerServedUnits !== null ? `  (provider's gate served ${s.providerServedUnits} ${s.unit}, paid for ${s.providerPaidUnits})` : ''}
  paid                  ${sat(s.paidMsat)} sat
  provider received     ${Number(s.payeeReceivedSat ?? 0).toLocaleString('en-US')} sat on chain
  fees                  ${s.feesSat} sat (funding + ${s.outcome === 'refunded' ? 'refund' : 'settlement'})
  wire bytes / payment  ${s.wireBytesPerPayment}
  duration              ${(s.durationMs / 1000).toFixed(1)} s
`);
}

function demoChainFromFlags(values: Record<string, string | boolean | undefined>): DemoChainOptions {
  const kind = values['chain'];
  const blockMs = values['block-ms'];
  if (blockMs !== undefined && !/^[1-9]\d*$/.test(String(blockMs))) throw new Error('--block-ms expects a positive integer');
  if (kind === 'simnet') return { kind, ...(blockMs !== undefined && { blockMs: Number(blockMs) }) };
  if (kind !== 'bitcoind' && kind !== 'esplora') throw new Error('--chain must be simnet, bitcoind or esplora');
  const rpcUrl = values['rpc-url'];
  if (typeof rpcUrl !== 'string') throw new Error(`--chain ${kind} needs --rpc-url of a regtest bitcoind (the demo funds the device and mines blocks)`);
  const user = values['rpc-user'];
  const pass = values['rpc-pass'];
  const cookie = values['rpc-cookie'];
  if ((typeof user === 'string') !== (typeof pass === 'string')) throw new Error('--rpc-user and --rpc-pass go together');
  const auth: BitcoindAuth | undefined = typeof cookie === 'string' ? { cookieFile: cookie } : typeof user === 'string' ? { user, password: pass as string } : undefined;
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
      signer: { type: 'string', default: 'software' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const scenario = values.scenario;
  if (scenario !== 'oneway' && scenario !== 'refund' && scenario !== 'rsmc' && scenario !== 'breach') {
    throw new Error('--scenario must be oneway, refund, rsmc or breach');
  }
  if (!/^\d+$/.test(values.gb) || !/^\d+$/.test(values.rate)) throw new Error('--gb and --rate expect integers');
  if (values.signer !== 'software' && values.signer !== 'emulator') throw new Error('--signer must be software or emulator');
  const summary = await runDemo({ scenario, gb: BigInt(values.gb), rateGbPerSec: BigInt(values.rate), quiet: false, signer: values.signer, chain: demoChainFromFlags(values) });
  if (values.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else printHuman(summary);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((error) => {
    process.stderr.write(`demo failed: ${(error as Error).message}\n`);
    process.exit(1);
  });
}
