/**
 * Section 3 (revocable channels between two processes) and section 4 (wire bytes, both channel kinds).
 *
 * Two peer processes (bench/party.ts with the RSMC runtime, durable LMDB, aedes), A funds a channel to B
 * and pays. One RsmcChannel.pay() resolves when A holds B's signature on A's new commitment, i.e. after
 * A → B update_transfer + commitment_signed and B → A revoke_and_ack + commitment_signed; A's own
 * revoke_and_ack goes out then and is not waited for (src/channel/rsmc/machine.ts onCommitmentSigned). That
 * is one full update: both commitments signed and both old ones revoked.
 */
import { hexToBytes } from '../src/bytes.js';
import type { NodeInit, PhaseResult } from './party.js';
import { measureCrypto, type CryptoResults } from './crypto.js';
import { checkPhase, cpuPer, cryptoMs, DATA_FRAME_OVERHEAD, idleCpu, measured, onewayWireFigures, opsText, slowestSteps, traced, WINDOW, type Delta, type IdleCpu } from './oneway.js';
import {
  measureBroker,
  measureLmdb,
  breakdownText,
  quantile,
  removeDir,
  round,
  sleep,
  spawnParty,
  startChain,
  startCountingBroker,
  tempDir,
  unmeasured,
  withChildren,
  type BenchOptions,
  type Breakdown,
  type BrokerCeiling,
  type Figure,
  type LmdbCeiling,
  type Section,
} from './lib.js';
import { encodeMessage } from '../src/wire/index.js';

const AMOUNT_MSAT = 1000n;
const LOCAL_SAT = 2_000_000n;

export interface RsmcRun {
  crypto: CryptoResults;
  lmdb: LmdbCeiling;
  broker: BrokerCeiling;
  sequential: { result: { samplesMs: number[]; elapsedMs: number }; d: Delta; breakdown: Breakdown | undefined };
  windowed: { result: PhaseResult; d: Delta };
  idle: IdleCpu;
}

let memo: Promise<RsmcRun> | undefined;

export function runRsmc(opts: BenchOptions): Promise<RsmcRun> {
  memo ??= (async () => {
    const crypto = await measureCrypto(opts);
    const lmdb = await measureLmdb(opts);
    const countingBroker = await startCountingBroker();
    const chain = await startChain();
    const dirs = [tempDir('rsmc-a'), tempDir('rsmc-b')];
    try {
      return await withChildren(async (own) => {
        const broker = await measureBroker(countingBroker.url, opts);
        const a = own(await spawnParty('rsmc A', 'node'));
        const b = own(await spawnParty('rsmc B', 'node'));
        const init = (dataDir: string): NodeInit => ({ dataDir, brokerUrl: countingBroker.url, simnetUrl: chain.url, payee: false, rsmc: true });
        type InitResult = { nodeId: string; walletScriptHex: string };
        const [ia, ib] = await Promise.all([a.request<InitResult>('init', { init: init(dirs[0]!) }), b.request<InitResult>('init', { init: init(dirs[1]!) })]);
        await chain.simnet.faucet(hexToBytes(ia.walletScriptHex), LOCAL_SAT * 2n);
        await chain.simnet.mine(1);
        opts.log('rsmc: opening a channel A → B');
        const { channelId } = await a.request<{ channelId: string }>('rsmc-open', { peer: ib.nodeId, localSat: LOCAL_SAT }, 120_000);
        await b.request('rsmc-wait-open', { channelId }, 70_000);
        await sleep(1000);
        const idle = await idleCpu(a, b, countingBroker, opts.quick ? 2000 : 5000);
        const seq = (count: number, maxMs: number) => a.request<{ samplesMs: number[]; elapsedMs: number }>('pay-sequential', { kind: 'rsmc', amountMsat: AMOUNT_MSAT, count, maxMs }, 300_000);
        opts.log('rsmc: warm-up');
        await seq(opts.quick ? 50 : 200, 3000);
        opts.log('rsmc: updates one at a time');
        const traced1 = await measured(a, b, countingBroker, () => traced(a, b, ['A', 'B'], () => seq(opts.quick ? 300 : 1500, opts.quick ? 5000 : 30_000)));
        const sequential = { result: traced1.result.result, d: traced1.d, breakdown: traced1.result.breakdown };
        opts.log(`rsmc: ${WINDOW} pay() outstanding`);
        const windowed = await measured(a, b, countingBroker, () =>
          a.request<PhaseResult>('pay-window', { kind: 'rsmc', amountMsat: AMOUNT_MSAT, window: WINDOW, durationMs: opts.quick ? 3000 : 10_000 }, 300_000),
        );
        checkPhase('rsmc windowed', windowed.result);
        return { crypto, lmdb, broker, sequential, windowed, idle };
      });
    } finally {
      await chain.close();
      await countingBroker.close();
      for (const d of dirs) removeDir(d);
    }
  })();
  return memo;
}

const ms = (x: number): number => round(x, 3);

/** Sum of two sides' counts. */
function both(d: Delta): Record<string, number> | undefined {
  if (!d.crypto) return undefined;
  const out: Record<string, number> = {};
  for (const side of [d.crypto.a, d.crypto.b]) for (const [k, v] of Object.entries(side)) out[k] = (out[k] ?? 0) + v;
  return out;
}

/**
 * The floor of one update: the broker round trip (pay() waits for A → B → A). What else the update costs —
 * both sides' curve work and LMDB commits, counted — is given in the text as a back-to-back sum, an
 * estimate only: that work can hide in the round trip's waits (delayed ACKs).
 */
function floorOf(r: RsmcRun, d: Delta, per: number, q: 'p50' | 'p99'): { ms: number; serialMs?: number; text: string } {
  const rt = q === 'p50' ? r.broker.p50Ms : r.broker.p99Ms;
  const head = `broker round trip ${q} ${ms(rt)} ms (150 B QoS 1 ping-pong; an update needs at least A → B → A)`;
  const curve = cryptoMs(both(d), per, r.crypto.inUse);
  if (curve === undefined || d.aTxns === null || d.bTxns === null) return { ms: rt, text: head };
  const commits = (d.aTxns + d.bTxns) / per;
  const commit = q === 'p50' ? r.lmdb.sequential.p50Ms : r.lmdb.sequential.p99Ms;
  const serialMs = rt + curve + commits * commit;
  return {
    ms: rt,
    serialMs,
    text: `${head}; with the curve work ${ms(curve)} ms (A: ${opsText(d.crypto!.a, per)}; B: ${opsText(d.crypto!.b, per)}) and ${round(commits, 2)} LMDB commits × ${ms(commit)} ms back to back, ${ms(serialMs)} ms`,
  };
}

export const rsmcSection: Section = {
  name: '3. RSMC',
  async run(opts) {
    const r = await runRsmc(opts);
    const s = r.sequential;
    const n = s.d.payments;
    const rate = (s.result.samplesMs.length * 1000) / s.result.elapsedMs;
    const p50 = quantile(s.result.samplesMs, 0.5);
    const p99 = quantile(s.result.samplesMs, 0.99);
    const figures: Figure[] = [];
    const floor50 = floorOf(r, s.d, n, 'p50');
    const floor99 = floorOf(r, s.d, n, 'p99');
    const updates: Figure = {
      key: 'rsmcUpdatesPerSec',
      label: `RSMC full updates/s, one pay() at a time (update_transfer + commitment_signed + revoke_and_ack both ways; pay() resolves when A holds B's signature on its new commitment), ${s.result.samplesMs.length} updates, durable LMDB, aedes`,
      value: round(rate),
      unit: 'updates/s',
      target: { op: '>=', value: 500 },
    };
    updates.ceiling = { key: 'rsmcFloorUpdatesPerSec', label: `1 / ${floor50.text}`, value: round(1000 / floor50.ms), unit: 'updates/s' };
    if (rate < 500) {
      const cpu = cpuPer(s.d, r.idle, n);
      updates.why =
        `an update took ${ms(1000 / rate)} ms on average, of which the broker round trip alone is ${ms(r.broker.p50Ms)} ms (p50)` +
        (floor50.serialMs !== undefined ? `; all its steps back to back would take ${ms(floor50.serialMs)} ms` : '') +
        `; CPU per update beyond idle: A ${ms(cpu.a)} ms, B ${ms(cpu.b)} ms; ${slowestSteps(s.breakdown)}`;
    }
    figures.push(updates);
    figures.push(
      {
        key: 'rsmcP50Ms',
        label: `RSMC update round trip p50 (pay() → resolved), one at a time; where it goes: ${breakdownText(s.breakdown)}`,
        value: ms(p50),
        unit: 'ms',
        ceiling: { key: 'rsmcFloorP50Ms', label: floor50.text, value: ms(floor50.ms), unit: 'ms' },
      },
      {
        key: 'rsmcP99Ms',
        label: 'RSMC update round trip p99, one at a time',
        value: ms(p99),
        unit: 'ms',
        ceiling: { key: 'rsmcFloorP99Ms', label: floor99.text, value: ms(floor99.ms), unit: 'ms' },
      },
    );
    const w = r.windowed;
    const wRate = (w.result.payments * 1000) / w.result.elapsedMs;
    const exchanges = w.d.commitments;
    const perExchange = exchanges ? w.d.payments / exchanges : undefined;
    const curvePerExchange = exchanges ? cryptoMs(both(w.d), exchanges, r.crypto.inUse) : undefined;
    figures.push({
      key: 'rsmcPaymentsPerSecWindowed',
      label: `RSMC payments/s with ${WINDOW} pay() outstanding (batched into commitment exchanges${perExchange ? `: ${round(perExchange, 3)} payments per exchange` : ''})`,
      value: round(wRate),
      unit: 'payments/s',
      ...(curvePerExchange && perExchange
        ? { ceiling: { key: 'rsmcCurveBoundPaymentsPerSec', label: `curve work alone: ${ms(curvePerExchange)} ms per exchange (both sides, counted, at the backend's rates) × ${round(perExchange, 3)} payments per exchange`, value: round((1000 / curvePerExchange) * perExchange), unit: 'payments/s' } }
        : {}),
    });
    if (exchanges !== null) {
      const fl = floorOf(r, w.d, exchanges, 'p50');
      figures.push({
        key: 'rsmcCommitmentsPerSecWindowed',
        label: `RSMC commitment exchanges/s in that phase (A's commitment number advancing)`,
        value: round((exchanges * 1000) / w.result.elapsedMs),
        unit: 'exchanges/s',
        ceiling: { key: 'rsmcFloorCommitmentsPerSec', label: `1 / ${fl.text} (A sends its next commitment_signed only after B's revoke_and_ack)`, value: round(1000 / fl.ms), unit: 'exchanges/s' },
      });
    }
    const counts = both(s.d);
    if (counts && n > 0) {
      figures.push(
        { key: 'rsmcSignsPerUpdate', label: 'ECDSA signatures per update, both sides (counted calls to the backend)', value: round(counts.sign! / n, 3), unit: 'signs' },
        { key: 'rsmcVerifiesPerUpdate', label: 'ECDSA verifications per update, both sides (counted)', value: round(counts.verify! / n, 3), unit: 'verifies' },
        {
          key: 'rsmcPointOpsPerUpdate',
          label: 'point operations per update, both sides (k·G, k·P, P+Q; counted): key derivations and per-commitment points',
          value: round((counts.publicKey! + counts.pointMultiply! + counts.pointAdd!) / n, 3),
          unit: 'ops',
        },
        { key: 'rsmcCurveMsPerUpdate', label: `curve work per update, both sides, at the measured rates of ${r.crypto.backend.description}`, value: ms(cryptoMs(counts, n, r.crypto.inUse)!), unit: 'ms' },
      );
    }
    if (s.d.aTxns !== null && s.d.bTxns !== null && n > 0) {
      figures.push({
        key: 'rsmcFsyncsPerUpdate',
        label: `LMDB write transactions per RSMC update, A + B, one at a time (A ${round(s.d.aTxns / n, 3)}, B ${round(s.d.bTxns / n, 3)})`,
        value: round((s.d.aTxns + s.d.bTxns) / n, 3),
        unit: 'fsyncs',
      });
      if (w.d.aTxns !== null && w.d.bTxns !== null && w.d.payments > 0) {
        figures.push({ key: 'rsmcFsyncsPerPaymentWindowed', label: `the same per payment with ${WINDOW} outstanding`, value: round((w.d.aTxns + w.d.bTxns) / w.d.payments, 3), unit: 'fsyncs' });
      }
    } else {
      figures.push(unmeasured({ key: 'rsmcFsyncsPerUpdate', label: 'LMDB write transactions per RSMC update', unit: 'fsyncs' }, 'LmdbStore.stats() is not available'));
    }
    return figures;
  },
};

/**
 * The least one update carries (src/wire/update.ts): update_transfer (channel id 32, id 8, amount 8),
 * two commitment_signed (channel id 32, signature 64) and two revoke_and_ack (channel id 32, secret 32,
 * next point 33), each message with a 16-byte AEAD tag.
 */
const RSMC_MIN_UPDATE_BYTES = 32 + 8 + 8 + 2 * (32 + 64) + 2 * (32 + 32 + 33) + 5 * 16;

function rsmcFrameBytes(): number {
  const channelId = new Uint8Array(32).fill(0xab);
  const sizes = [
    encodeMessage({ type: 'update_transfer', channelId, id: 5_000n, amountMsat: 1000n }).length,
    2 * encodeMessage({ type: 'commitment_signed', channelId, signature: new Uint8Array(64).fill(1), htlcSignatures: [] }).length,
    2 * encodeMessage({ type: 'revoke_and_ack', channelId, perCommitmentSecret: new Uint8Array(32).fill(2), nextPerCommitmentPoint: Uint8Array.from([2, ...new Uint8Array(32).fill(3)]) }).length,
  ];
  return sizes.reduce((x, y) => x + y, 0) + 5 * DATA_FRAME_OVERHEAD;
}

export const wireSection: Section = {
  name: '4. wire',
  async run(opts) {
    const figures = await onewayWireFigures(opts);
    const r = await runRsmc(opts);
    const frames = rsmcFrameBytes();
    const ceiling = {
      key: 'rsmcWireMinBytesPerUpdate',
      label: `least an update carries: update_transfer + 2 commitment_signed + 2 revoke_and_ack, fields only, + 16 B AEAD tag each (as frames here: ${frames} B)`,
      value: RSMC_MIN_UPDATE_BYTES,
      unit: 'B',
    };
    const perExchange = r.windowed.d.commitments ? r.windowed.d.payments / r.windowed.d.commitments : undefined;
    const batchedCeiling = perExchange && {
      key: 'rsmcWireMinBytesPerPaymentWindowed',
      label: `least per payment when ${round(perExchange, 3)} payments share an exchange: an update_transfer each (48 + 16 B) + the exchange's 2 commitment_signed and 2 revoke_and_ack (450 B with tags) shared`,
      value: round(48 + 16 + (RSMC_MIN_UPDATE_BYTES - 48 - 16) / perExchange),
      unit: 'B',
    };
    for (const [key, phase, what, c] of [
      ['rsmcWireBytesPerUpdate', r.sequential, 'bytes on the wire per RSMC update, one at a time', ceiling],
      ['rsmcWireBytesPerPaymentWindowed', r.windowed, `bytes on the wire per RSMC payment, ${WINDOW} outstanding (batched)`, batchedCeiling],
    ] as const) {
      const d = phase.d;
      if (d.payloadBytes === null || d.payments === 0) {
        figures.push(unmeasured({ key, label: what, unit: 'B' }, 'the broker could not count'));
        continue;
      }
      figures.push({
        key,
        label: `${what}: MQTT PUBLISH payloads clients sent to aedes (session ACKs included), ${round(d.publishes! / d.payments, 3)} publishes each`,
        value: round(d.payloadBytes / d.payments),
        unit: 'B',
        ...(c ? { ceiling: c } : {}),
      });
    }
    return figures;
  },
};
