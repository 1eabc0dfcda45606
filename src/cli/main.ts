#!/usr/bin/env node
/**
 * `trickle`: run a provider, pay for a metered service, inspect and close channels from the shell.
 *
 *   trickle init     --data-dir D                      create the node's seed; print node id and wallet script
 *   trickle wallet   --data-dir D <chain>              the wallet's address and balance
 *   trickle provider --data-dir D --broker U <chain>   sell a metered service over one-way channels
 *   trickle pay      --data-dir D --broker U <chain> --provider ID --units N
 *   trickle status   --data-dir D                      list stored channels
 *   trickle close    --data-dir D --broker U <chain> [--channel ID]
 *   trickle peer     --data-dir D --broker U <chain>   run a revocable-channel node (./rsmc.ts)
 *   trickle rsmc     open|pay|close --data-dir D …     ask that node to open, pay or close
 *
 * <chain> is `--chain simnet --simnet-url U`, `--chain bitcoind --rpc-url U …` or
 * `--chain esplora --esplora-url U --network N` (./chain.ts). Every command takes --json: events as
 * JSON lines, and a summary object as the last line.
 */
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { bytesToHex } from '../bytes.js';
import type { OnewayChannel } from '../channel/oneway/channel.js';
import type { ChannelEvent } from '../channel/oneway/core.js';
import { decodeRecord, RECORD_PREFIX, type OnewayRecord } from '../channel/oneway/state.js';
import { isLive } from '../channel/oneway/node.js';
import type { PayeeOffer } from '../channel/oneway/payee.js';
import { startServiceGuard, type ServiceGuard, type StreamProgress } from '../metering/stream.js';
import { LmdbStore } from '../store/lmdb.js';
import { chooseSecp256k1, ecdsaBackend } from '../crypto/native.js';
import { isNodeId } from '../transport/port.js';
import { SimulatedMeter } from '../../devices/simulated-meter.js';
import { CallbackGate } from '../../devices/service-gate.js';
import { ProgressBar } from './progress.js';
import { loadKeys, startLocalNode, walletBirthHeight } from './setup.js';
import { CHAIN_HELP, ChainFlagError, connectChain } from './chain.js';
import {
  bigintFlag,
  catchUpProgress,
  chainOptions,
  signerOptions,
  emitter,
  frameBytes,
  intFlag,
  jsonLine,
  logTo,
  positiveIntFlag,
  required,
  UsageError,
  waitForSignal,
  type Emitter,
  type Flags,
} from './common.js';
import { peer, RSMC_HELP, rsmc, rsmcStatusRows } from './rsmc.js';
import { DeviceWallet, deviceWalletScripts } from '../wallet/device-wallet.js';
import { address as btcAddress, networks } from 'bitcoinjs-lib';

const HELP = `trickle — Bitcoin payment channels for machines

Usage:
  trickle init     --data-dir DIR [--json]
  trickle wallet   --data-dir DIR CHAIN [--json]
  trickle provider --data-dir DIR --broker URL CHAIN [offer options] [--serve-rate N] [--json]
  trickle pay      --data-dir DIR --broker URL CHAIN --provider NODE_ID --units N
                   [--capacity-sat N] [--expiry-blocks N] [--rate N] [--step N] [--no-close] [--json]
  trickle status   --data-dir DIR [--json]
  trickle close    --data-dir DIR --broker URL CHAIN [--channel ID] [--json]
  trickle peer     --data-dir DIR --broker URL CHAIN [peer options] [--json]
  trickle rsmc     open|pay|close --data-dir DIR [rsmc options] [--json]     (below)

SIGNER (pay, provider, close, peer): --signer software (default: keys from the data directory's seed)
  | --signer emulator --key-socket PATH (the key's emulator, firmware-bridge/emulator.ts)
  | --signer usb [--key-serial S] (the Trickle key over USB HID, devices/trickle-key.md).
  With a key, channel keys and per-commitment secrets live on it; the wallet stays in software.

CHAIN is --chain simnet --simnet-url URL | --chain bitcoind --rpc-url URL [auth] |
         --chain esplora --esplora-url URL --network N   (details below)

Offer options (provider): --service ID (hotspot) --unit U (MB) --tariff-msat N (1000 msat per unit)
  --window N (credit window, 1000 units) --min-capacity-sat N (10000) --max-capacity-sat N (100000000)
  --serve-rate N: simulate serving N units/s, gated by payments (the payee never serves unpaid units)
Pay options: --units N to buy in total over the channel; --rate N units/s consumed (simulated meter,
  default 5, flowing only while paid for); --step N units per payment (default: a tenth of the credit
  window, or half of a window below 10 units);
  --capacity-sat (default: enough for --units plus 10%); --expiry-blocks (default 144);
  --pay-timeout-ms (default 60000); --open-timeout-ms: give the open up if the provider leaves it
  unfinished this long, nothing funded yet (default 600000); --no-close keeps the channel open.

${RSMC_HELP}
${CHAIN_HELP}`;

const OPTIONS = {
  'data-dir': { type: 'string' },
  broker: { type: 'string' },
  chain: { type: 'string' },
  provider: { type: 'string' },
  channel: { type: 'string' },
  units: { type: 'string' },
  'capacity-sat': { type: 'string' },
  'expiry-blocks': { type: 'string' },
  rate: { type: 'string' },
  step: { type: 'string' },
  'pay-timeout-ms': { type: 'string' },
  'open-timeout-ms': { type: 'string' },
  'simnet-url': { type: 'string' },
  'rpc-url': { type: 'string' },
  'rpc-user': { type: 'string' },
  'rpc-pass': { type: 'string' },
  'rpc-cookie': { type: 'string' },
  'esplora-url': { type: 'string' },
  network: { type: 'string' },
  'wallet-birth-height': { type: 'string' },
  'close-depth': { type: 'string' },
  'min-depth': { type: 'string' },
  'fallback-feerate-per-kw': { type: 'string' },
  'no-close': { type: 'boolean' },
  service: { type: 'string' },
  unit: { type: 'string' },
  'tariff-msat': { type: 'string' },
  window: { type: 'string' },
  'min-capacity-sat': { type: 'string' },
  'max-capacity-sat': { type: 'string' },
  'serve-rate': { type: 'string' },
  peer: { type: 'string' },
  'local-sat': { type: 'string' },
  'remote-sat': { type: 'string' },
  'push-msat': { type: 'string' },
  'amount-msat': { type: 'string' },
  payments: { type: 'string' },
  breach: { type: 'boolean' },
  force: { type: 'boolean' },
  'max-contribution-sat': { type: 'string' },
  'to-self-delay': { type: 'string' },
  signer: { type: 'string' },
  'key-socket': { type: 'string' },
  'key-serial': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${HELP}`);
    return 2;
  }
  const [command] = parsed.positionals;
  const flags = parsed.values as Flags;
  if (flags['help'] || !command) {
    process.stdout.write(HELP);
    return flags['help'] ? 0 : 2;
  }
  try {
    // The fastest secp256k1 backend that passes its self-test (TRICKLE_SECP256K1 forces one).
    chooseSecp256k1();
    switch (command) {
      case 'init':
        return await init(flags);
      case 'wallet':
        return await wallet(flags);
      case 'provider':
        return await provider(flags);
      case 'pay':
        return await pay(flags);
      case 'status':
        return await status(flags);
      case 'close':
        return await close(flags);
      case 'peer':
        return await peer(flags);
      case 'rsmc':
        return await rsmc(parsed.positionals[1], flags);
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (error) {
    if (error instanceof UsageError || error instanceof ChainFlagError) {
      process.stderr.write(`${error.message}\n\n${HELP}`);
      return 2;
    }
    const code = (error as { code?: string }).code;
    process.stderr.write(`trickle ${command}: ${code ? `${code}: ` : ''}${(error as Error).message}\n`);
    if (flags['json']) process.stdout.write(`${jsonLine({ event: 'error', code, message: (error as Error).message })}\n`);
    return 1;
  }
}

async function init(flags: Flags): Promise<number> {
  const keys = await loadKeys(required(flags, 'data-dir'), { create: true });
  const out = emitter(flags);
  const info = { event: 'init', nodeId: keys.identity.nodeId, walletScript: bytesToHex(keys.walletScript) };
  out.event(info, `node id        ${info.nodeId}\nwallet script  ${info.walletScript}`);
  return 0;
}

/** The wallet's receive address and balance, read from the chain (bitcoind: after scanning blocks). */
async function wallet(flags: Flags): Promise<number> {
  const out = emitter(flags);
  const dataDir = required(flags, 'data-dir');
  const keys = await loadKeys(dataDir, { create: false });
  const options = chainOptions(flags);
  const chain = await connectChain(options.chain);
  const store = await LmdbStore.open({ path: join(dataDir, 'channels') });
  try {
    const network = chain.network === 'mainnet' ? networks.bitcoin : chain.network === 'regtest' ? networks.regtest : networks.testnet;
    const receive = btcAddress.fromOutputScript(keys.walletScript, network);
    const { change } = await deviceWalletScripts(keys.signer);
    const birthHeight = await walletBirthHeight(store, chain, options.walletBirthHeight);
    const source = await chain.utxoSource({ store, scripts: [keys.walletScript, change], birthHeight, onProgress: catchUpProgress(out) });
    const w = await DeviceWallet.open({ signer: keys.signer, source, chain: chain.chain, store });
    const balance = await w.balance();
    out.event({ event: 'wallet', chain: chain.kind, network: chain.network, address: receive, walletScript: bytesToHex(keys.walletScript), ...balance },
      `address   ${receive} (${chain.network})\nspendable ${balance.spendableSat} sat; unconfirmed ${balance.unconfirmedSat}, immature ${balance.immatureSat}, locked ${balance.lockedSat}`);
    return 0;
  } finally {
    chain.close();
    await store.close();
  }
}

async function provider(flags: Flags): Promise<number> {
  const out = emitter(flags);
  const offer: PayeeOffer = {
    serviceId: typeof flags['service'] === 'string' ? flags['service'] : 'hotspot',
    unit: typeof flags['unit'] === 'string' ? flags['unit'] : 'MB',
    tariffMsatPerUnit: bigintFlag(flags, 'tariff-msat', 1000n),
    creditWindowUnits: bigintFlag(flags, 'window', 1000n),
    minCapacitySat: bigintFlag(flags, 'min-capacity-sat', 10_000n),
    maxCapacitySat: bigintFlag(flags, 'max-capacity-sat', 100_000_000n),
  };
  const serveRate = flags['serve-rate'] === undefined ? undefined : bigintFlag(flags, 'serve-rate', 0n);
  const guards = new Map<string, { guard: ServiceGuard; meter: SimulatedMeter }>();
  const guardFor = (channel: OnewayChannel): void => {
    if (serveRate === undefined || guards.has(channel.id) || channel.phase !== 'open') return;
    const meter = new SimulatedMeter({ unit: offer.unit, unitsPerSecond: serveRate, paused: true });
    const gate = new CallbackGate({ onOpen: () => meter.resume(), onPause: () => meter.pause() });
    const tariff = channel.service.tariffMsatPerUnit;
    const guard = startServiceGuard({ meter, gate, paidUnits: () => channel.paidMsat / tariff, unit: offer.unit, pollIntervalMs: 50 });
    guards.set(channel.id, { guard, meter });
  };
  // Registered before stored channels resume, so a close confirmed while we were away is told too.
  const onEvent = (channel: OnewayChannel, event: ChannelEvent): void => {
    if (event.type === 'payment') guards.get(channel.id)?.guard.notifyPaid();
    if (event.type === 'phase' && event.phase === 'open') guardFor(channel);
    reportEvent(out, channel, event);
    if (event.type === 'closed' || (event.type === 'phase' && event.phase === 'closing')) {
      const entry = guards.get(channel.id);
      if (entry) {
        const snap = entry.guard.snapshot();
        out.event({ event: 'served', channelId: channel.id, servedUnits: snap.servedUnits, paidUnits: snap.paidUnits, unit: offer.unit },
          `served ${snap.servedUnits} ${offer.unit}, paid for ${snap.paidUnits}`);
      }
    }
  };
  const local = await startLocalNode({
    dataDir: required(flags, 'data-dir'),
    brokerUrl: required(flags, 'broker'),
    ...chainOptions(flags),
    ...signerOptions(flags),
    offers: [offer],
    node: { onEvent },
    log: logTo(out),
    onScanProgress: catchUpProgress(out),
  });
  for (const channel of local.node.channels()) guardFor(channel);
  out.event({ event: 'ready', nodeId: local.keys.identity.nodeId, offer, secp256k1: ecdsaBackend().name }, `provider ${local.keys.identity.nodeId} selling ${offer.serviceId} at ${offer.tariffMsatPerUnit} msat/${offer.unit}`);
  await waitForSignal();
  for (const { guard } of guards.values()) await guard.stop();
  await local.close();
  return 0;
}

function reportEvent(out: Emitter, channel: OnewayChannel, event: ChannelEvent): void {
  const base = { channelId: channel.id, role: channel.role };
  switch (event.type) {
    case 'payment':
      // Per-payment lines only in JSON mode: a stream makes thousands.
      if (out.json) out.event({ event: 'payment', ...base, number: event.number, amountMsat: event.amountMsat });
      return;
    case 'phase':
      out.event({ event: 'phase', ...base, phase: event.phase }, `channel ${channel.id.slice(0, 16)}… ${event.phase}`);
      return;
    case 'closed':
      out.event({ event: 'closed', ...base, outcome: event.outcome },
        `channel ${channel.id.slice(0, 16)}… ${event.outcome.kind} in ${event.outcome.txid} (payee ${event.outcome.payeeValueSat} sat)`);
      return;
    case 'rejected':
    case 'failed':
      out.event({ event: event.type, ...base, code: event.code, message: event.message }, `channel ${channel.id.slice(0, 16)}… ${event.type}: ${event.code}`);
      return;
  }
}

async function pay(flags: Flags): Promise<number> {
  const out = emitter(flags);
  const providerId = required(flags, 'provider');
  if (!isNodeId(providerId)) throw new UsageError('--provider expects a node id (66 hex characters)');
  const units = bigintFlag(flags, 'units', 0n);
  if (units <= 0n) throw new UsageError('--units must be positive');
  const started = performance.now();
  const local = await startLocalNode({
    dataDir: required(flags, 'data-dir'),
    brokerUrl: required(flags, 'broker'),
    ...chainOptions(flags),
    ...signerOptions(flags),
    // Registered before stored channels resume, so a close confirmed while we were away is told too.
    node: {
      payTimeoutMs: intFlag(flags, 'pay-timeout-ms', 60_000),
      openTimeoutMs: positiveIntFlag(flags, 'open-timeout-ms', 600_000),
      onEvent: (channel, event) => reportEvent(out, channel, event),
    },
    log: logTo(out),
    onScanProgress: catchUpProgress(out),
  });
  try {
    // Resume the live channel with this provider if there is one (after a restart), else open one.
    let channel = local.node.channels().find((c) => c.role === 'payer' && c.peer === providerId && isLive(c.snapshot()));
    if (channel) {
      out.event({ event: 'resume', channelId: channel.id, phase: channel.phase, signedMsat: channel.signedMsat }, `resuming channel ${channel.id.slice(0, 16)}… (${channel.phase})`);
      if (channel.phase !== 'closing') await channel.waitUntilOpen();
    } else {
      const offer = await local.node.offerOf(providerId);
      const capacitySat = bigintFlag(flags, 'capacity-sat', ((units * offer.tariffMsatPerUnit) / 1000n) * 11n / 10n + 10_000n);
      out.event({ event: 'opening', provider: providerId, capacitySat }, `opening a ${capacitySat} sat channel to ${providerId.slice(0, 16)}…`);
      channel = await local.node.open(providerId, { capacitySat, expiryBlocks: intFlag(flags, 'expiry-blocks', 144) });
    }
    const fundingTxid = channel.fundingTxid;
    const service = channel.service;
    const alreadyPaidUnits = channel.signedMsat / service.tariffMsatPerUnit;
    const remaining = units > alreadyPaidUnits ? units - alreadyPaidUnits : 0n;
    const bytesBefore = frameBytes(local);
    const paymentsBefore = channel.payments;
    let progress: StreamProgress | undefined;
    let streamError: Error | undefined;
    if (remaining > 0n && channel.phase === 'open') {
      const window = service.creditWindowUnits;
      const step = bigintFlag(flags, 'step', window >= 10n ? window / 10n : window > 1n ? window / 2n : 1n);
      // Simulated consumption that, like a real provider's gate, only flows while it is paid for.
      const meter = new SimulatedMeter({ unit: service.unit, unitsPerSecond: bigintFlag(flags, 'rate', 5n), paused: true });
      const bar = new ProgressBar(process.stderr, remaining);
      const stream = channel.stream(meter, { untilUnits: remaining, stepUnits: step, pollIntervalMs: 20 });
      const gate = new CallbackGate({ onOpen: () => meter.resume(), onPause: () => meter.pause() });
      const providerGate = startServiceGuard({ meter, gate, paidUnits: () => stream.progress().paidUnits, unit: service.unit, pollIntervalMs: 20 });
      stream.onProgress((p) => {
        providerGate.notifyPaid();
        bar.update(p);
      });
      try {
        progress = await stream.done;
      } catch (error) {
        streamError = error as Error;
        progress = stream.progress();
      }
      await providerGate.stop();
      bar.finish();
      if (streamError) out.event({ event: 'stream-failed', message: streamError.message }, `payments stopped: ${streamError.message}`);
    }
    const streamPayments = Number(channel.payments - paymentsBefore);
    const wireBytes = frameBytes(local) - bytesBefore;
    let outcome;
    if (!flags['no-close']) {
      out.event({ event: 'closing', channelId: channel.id }, 'closing: asking the provider to settle (refund at expiry if it does not)');
      outcome = await channel.close();
    }
    const summary = {
      event: 'summary',
      nodeId: local.keys.identity.nodeId,
      channelId: channel.id,
      fundingTxid,
      capacitySat: channel.capacitySat,
      expiryHeight: channel.expiryHeight,
      unit: service.unit,
      tariffMsatPerUnit: service.tariffMsatPerUnit,
      consumedUnits: progress?.consumedUnits ?? 0n,
      paidMsat: channel.paidMsat,
      signedMsat: channel.signedMsat,
      payments: channel.payments,
      streamPayments,
      wireBytesPerPayment: streamPayments > 0 ? Math.round(wireBytes / streamPayments) : 0,
      outcome,
      streamError: streamError?.message,
      durationMs: Math.round(performance.now() - started),
    };
    out.event(summary, `paid ${channel.paidMsat} msat in ${channel.payments} payments; ${outcome ? `${outcome.kind} in ${outcome.txid}` : 'channel left open'}`);
    return streamError && !outcome ? 1 : 0;
  } finally {
    await local.close();
  }
}

async function status(flags: Flags): Promise<number> {
  const out = emitter(flags);
  const dataDir = required(flags, 'data-dir');
  const keys = await loadKeys(dataDir, { create: false });
  const store = await LmdbStore.open({ path: join(dataDir, 'channels') });
  const channels: Array<Record<string, unknown>> = [];
  try {
    for (const entry of await store.list(RECORD_PREFIX)) {
      let r: OnewayRecord;
      try {
        r = decodeRecord(entry.value);
      } catch (error) {
        channels.push({ kind: 'oneway', key: entry.key, error: (error as Error).message });
        continue;
      }
      channels.push({
        kind: 'oneway',
        channelId: bytesToHex(r.channelId ?? r.tempChannelId),
        role: r.role,
        phase: r.phase,
        peer: r.peer,
        capacitySat: r.capacitySat,
        expiryHeight: r.expiryHeight,
        service: r.service,
        payments: r.role === 'payer' ? r.acked.number : r.payment.number,
        paidMsat: r.role === 'payer' ? r.acked.amountMsat : r.payment.amountMsat,
        signedMsat: r.payment.amountMsat,
        fundingTxid: r.fundingOutpoint?.txid,
        outcome: r.outcome,
        failure: r.failure,
      });
    }
    channels.push(...(await rsmcStatusRows(store)));
  } finally {
    await store.close();
  }
  if (out.json) out.event({ event: 'status', nodeId: keys.identity.nodeId, channels });
  else {
    process.stdout.write(`node ${keys.identity.nodeId}: ${channels.length} channel(s)\n`);
    for (const c of channels) {
      const id = `${String(c['channelId'] ?? c['key']).slice(0, 16)}…`;
      if (c['error'] !== undefined) process.stdout.write(`  ${id} ${c['kind']} unreadable: ${c['error']}\n`);
      else if (c['kind'] === 'oneway') {
        process.stdout.write(`  ${id} one-way ${c['role']} ${c['phase']} paid ${c['paidMsat']} msat in ${c['payments']} payments, capacity ${c['capacitySat']} sat\n`);
      } else {
        const b = c['balances'] as { localMsat: bigint; remoteMsat: bigint } | undefined;
        process.stdout.write(`  ${id} revocable ${c['role']} ${c['phase']} capacity ${c['capacitySat']} sat` +
          `${b ? `, ours ${b.localMsat / 1000n} sat, the peer's ${b.remoteMsat / 1000n} sat` : ''}, ${c['updatesSent']} updates sent, ${c['updatesReceived']} received\n`);
      }
    }
  }
  return 0;
}

async function close(flags: Flags): Promise<number> {
  const out = emitter(flags);
  const local = await startLocalNode({
    dataDir: required(flags, 'data-dir'),
    brokerUrl: required(flags, 'broker'),
    ...chainOptions(flags),
    ...signerOptions(flags),
    log: logTo(out),
    onScanProgress: catchUpProgress(out),
  });
  try {
    const wanted = flags['channel'];
    const targets = local.node.channels().filter((c) => isLive(c.snapshot()) && (wanted === undefined || c.id === wanted));
    if (targets.length === 0) throw new Error(wanted ? `no live channel ${String(wanted)}` : 'no live channel');
    const outcomes = [];
    for (const channel of targets) {
      const outcome = await channel.close();
      outcomes.push({ channelId: channel.id, outcome });
      out.event({ event: 'closed', channelId: channel.id, outcome }, `${channel.id.slice(0, 16)}… ${outcome?.kind ?? 'abandoned'}`);
    }
    out.event({ event: 'summary', outcomes });
    return 0;
  } finally {
    await local.close();
  }
}

// Run when executed directly (the package bin or `tsx src/cli/main.ts`).
if (process.argv[1] && /[\\/]cli[\\/]main\.(ts|js)$/.test(process.argv[1])) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error) => {
      process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
      process.exit(1);
    },
  );
}
