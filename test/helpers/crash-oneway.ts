/**
 * One crash-harness run of a one-way channel (./crash-harness.ts): a `trickle provider` (payee) and a
 * `trickle pay` (payer) process on the harness's broker and simnet. The payer opens a channel, buys
 * `units` one unit per payment and closes; meanwhile either side is SIGKILLed — by its crash hook at a
 * persist reason or sent message chosen for the phase the run is in, or by the harness at a random
 * moment — and restarted from its data directory, until the run has had its injections. Then the run
 * finishes (the payer's `pay` resumes and closes, the provider settles) and everything is checked:
 *
 *  - no acknowledged payment lost: whenever the payee died, what it had on disk was at least every
 *    amount the payer had seen acknowledged, and at least what it had committed (its trace);
 *  - none counted twice: the payment numbers the payee committed (trace) and reported (events) strictly
 *    increase across all its lives, and each is the amount the payer signed for that number;
 *  - the payer never signed two amounts for one payment number (its trace: every payment-signed commit,
 *    i.e. every signature that could have left the process — persist before send);
 *  - settlement (docs/protocol.md §3.3): the payee settles with the latest payment it stored, which after
 *    the resume exchange is the payer's latest signed one — so the amount settled is the last amount the
 *    payer signed (also its last acknowledged one: `pay` closes only once every payment is acknowledged)
 *    and exactly what it bought; every funding spend ever broadcast pays the payee at least the largest
 *    acknowledged amount and at most the largest signed one; on chain payee + payer change + fee =
 *    capacity, each output to the script agreed at open.
 */
import { join } from 'node:path';
import { Transaction } from 'bitcoinjs-lib';
import { bytesToHex } from '../../src/bytes.js';
import { loadKeys } from '../../src/cli/setup.js';
import { decodeRecord, RECORD_PREFIX, type OnewayRecord, type PayerRecord } from '../../src/channel/oneway/state.js';
import { spawnTrickle, type Event, type Life } from './crash-process.js';
import { big, crashSpec, debug, ending, RandomKills, readRecords, readTrace, stuckReason, traceOnDisk, type CrashPoint, type Injection, type RunContext, type RunStats } from './crash-common.js';

const TARIFF_MSAT = 100_000n; // 100 sat a unit: every settlement output is far above dust
const WALLET_SAT = 1_000_000n;

type Phase = 'opening' | 'paying' | 'closing';
const PHASES: readonly Phase[] = ['opening', 'paying', 'closing'];

/** Crash points by side and phase; `maxNth` of per-payment points is filled in from the payments left. */
function points(side: 'payer' | 'payee', phase: Phase, paymentsLeft: number): CrashPoint[] {
  const per = Math.max(1, paymentsLeft);
  const table: Record<'payer' | 'payee', Record<Phase, CrashPoint[]>> = {
    payer: {
      opening: [
        { at: 'proposed', maxNth: 1 }, { at: 'accepted', maxNth: 1 }, { at: 'refund-held', maxNth: 1 },
        { at: 'funding-signed', maxNth: 1 }, { at: 'funded', maxNth: 1 }, { at: 'open', maxNth: 1 },
        { at: 'sent:oneway_propose', maxNth: 1 }, { at: 'sent:oneway_refund_request', maxNth: 1 }, { at: 'sent:oneway_funded', maxNth: 1 },
      ],
      paying: [{ at: 'payment-signed', maxNth: per }, { at: 'sent:oneway_pay', maxNth: per }, { at: 'sent:oneway_resume', maxNth: 2 }],
      closing: [{ at: 'closing', maxNth: 1 }, { at: 'closed', maxNth: 1 }, { at: 'sent:oneway_close_request', maxNth: 1 }],
    },
    payee: {
      opening: [
        { at: 'accepted', maxNth: 1 }, { at: 'refund-signed', maxNth: 1 }, { at: 'funded', maxNth: 1 }, { at: 'open', maxNth: 1 },
        { at: 'sent:oneway_accept', maxNth: 1 }, { at: 'sent:oneway_refund_signed', maxNth: 1 }, { at: 'sent:oneway_ready', maxNth: 1 },
      ],
      paying: [{ at: 'payment-accepted', maxNth: per }, { at: 'sent:oneway_pay_ack', maxNth: per }, { at: 'sent:oneway_resume', maxNth: 2 }],
      closing: [{ at: 'closing', maxNth: 1 }, { at: 'closed', maxNth: 1 }, { at: 'sent:oneway_settled', maxNth: 1 }],
    },
  };
  // A life started in one phase can die in a later one; the phase at hand weighs double.
  const from = PHASES.indexOf(phase);
  return PHASES.slice(from).flatMap((p, i) => (i === 0 ? [...table[side][p], ...table[side][p]] : table[side][p]));
}

export async function runOneway(ctx: RunContext): Promise<RunStats> {
  const { rng } = ctx;
  // Long enough for several kills while payments flow (a restart takes a second or two).
  const units = rng.int(40, 120);
  const rate = rng.pick([10, 20, 40]);
  const targetMsat = BigInt(units) * TARIFF_MSAT;
  const payerDir = join(ctx.dir, 'payer');
  const payeeDir = join(ctx.dir, 'payee');
  const payerTrace = join(ctx.dir, 'payer.trace');
  const payeeTrace = join(ctx.dir, 'payee.trace');
  const label = `one-way run ${ctx.index} (seed ${ctx.seed}, ${units} units)`;
  const violation = (text: string): void => ctx.violation(`${label}: ${text}`);

  // Seeds made here, not by a `trickle init` process: the same keys, a process start saved.
  const payerKeys = await loadKeys(payerDir, { create: true });
  const payeeKeys = await loadKeys(payeeDir, { create: true });
  const payeeId = payeeKeys.identity.nodeId;
  await ctx.simnet.faucet(payerKeys.walletScript, WALLET_SAT);

  const common = ['--broker', ctx.brokerUrl, ...ctx.chainFlags];
  const payeeArgs = ['provider', '--data-dir', payeeDir, '--unit', 'reading', '--tariff-msat', TARIFF_MSAT.toString(), '--window', '4', ...common];
  const payerArgs = ['pay', '--data-dir', payerDir, '--provider', payeeId, '--units', String(units), '--step', '1', '--rate', String(rate), '--expiry-blocks', '1000', ...common];
  // A payer that died once its close had begun finishes with `trickle close`: `pay` again would find the
  // channel closed when it loads (if the settlement confirmed meanwhile) and buy the units a second time.
  const closeArgs = ['close', '--data-dir', payerDir, ...common];

  const injections: Injection[] = [];
  const payerLives: Life[] = [];
  const payeeLives: Life[] = [];

  const ackedMsat = (): bigint => {
    let max = 0n;
    for (const life of payerLives) for (const e of life.events) if (e['event'] === 'payment') max = maxOf(max, big(e['amountMsat']) ?? 0n);
    return max;
  };
  const phase = (): Phase => {
    const all = [...payerLives, ...payeeLives].flatMap((l) => l.events);
    if (all.some((e) => e['event'] === 'closing' || (e['event'] === 'phase' && (e['phase'] === 'closing' || e['phase'] === 'closed')))) return 'closing';
    if (all.some((e) => (e['event'] === 'phase' && e['phase'] === 'open') || e['event'] === 'payment' || e['event'] === 'resume')) return 'paying';
    return 'opening';
  };
  // The stream pays ahead to keep the credit window (4 units) full: about one payment per 3 to 4 units.
  const paymentsLeft = (): number => Math.ceil((units - Number(ackedMsat() / TARIFF_MSAT)) / 3);

  /** Start a life of `side`, armed with a crash hook while the run still wants injections. */
  const start = async (side: 'payer' | 'payee', args = side === 'payer' ? payerArgs : payeeArgs): Promise<Life> => {
    const lives = side === 'payer' ? payerLives : payeeLives;
    const crashAt = injections.length < ctx.targetInjections && rng.chance(0.65) ? crashSpec(rng, points(side, phase(), paymentsLeft())) : undefined;
    const life = await spawnTrickle(`${side}#${lives.length + 1}${args[0] === 'close' ? ' (close)' : ''}`, args,
      { TRICKLE_CRASH_AT: crashAt, TRICKLE_TRACE: side === 'payer' ? payerTrace : payeeTrace }, ctx.pulse);
    lives.push(life);
    debug(ctx, `start ${life.name} (pid ${life.pid})${crashAt ? ` armed at ${crashAt}` : ''} in phase ${phase()}`);
    void life.exit.then(() => debug(ctx, `${life.name} ${ending(life)}`));
    return life;
  };

  let payee = await start('payee');
  let payer: Life | undefined;
  let payerDone = false;
  let payeeClosedOnDisk = false;
  let summary: Event | undefined;
  let complete = true;
  const randomKills = new RandomKills(ctx, () => [payee, ...(payer && !payerDone ? [payer] : [])], () => injections.length);
  try {
    for (;;) {
      const why = stuckReason(ctx, [...payerLives, ...payeeLives]);
      if (why) {
        complete = false;
        violation(`stuck: ${why} (phase ${phase()}, ${injections.length} kills); ` +
          `payer ${payer ? `${payer.name} ${ending(payer)}: ${lastEvents(payer)}` : 'not started'}; payee ${payee.name} ${ending(payee)}: ${lastEvents(payee)}` +
          `\n  payer stderr: ${payer?.tail(6) ?? ''}\n  payee stderr: ${payee.tail(6)}`);
        break;
      }
      if (!payee.running && payee.exited) {
        if (!payee.crashed) violation(`the payee exited on its own (${ending(payee)}): ${payee.tail()}`);
        else injections.push({ side: 'payee', at: payee.killedByParent ? 'random' : payee.crashAt! });
        const record = await checkOnDisk('payee', payeeDir, payeeTrace, violation);
        const acked = ackedMsat();
        if (acked > 0n && (!record || record.payment.amountMsat < acked)) {
          violation(`acknowledged payment lost: the payee (${ending(payee)}) has ${record?.payment.amountMsat ?? 'no channel'} msat on disk, the payer holds an ack for ${acked} msat`);
        }
        payeeClosedOnDisk = record?.phase === 'closed';
        payee = await start('payee');
      }
      if (!payer && payee.find((e) => e['event'] === 'ready')) payer = await start('payer');
      if (payer && !payerDone && !payer.running && payer.exited) {
        if (payer.crashed) {
          injections.push({ side: 'payer', at: payer.killedByParent ? 'random' : payer.crashAt! });
          const record = await checkOnDisk('payer', payerDir, payerTrace, violation);
          if (record?.phase === 'closed') payerDone = true;
          else payer = await start('payer', record?.phase === 'closing' ? closeArgs : payerArgs);
        } else if (payer.name.endsWith('(close)')) {
          // `trickle close` ends 0 with the outcome, or 1 with "no live channel" if the channel closed as it loaded.
          payerDone = true;
          const closedOnLoad = payer.find((e) => e['event'] === 'error' && /no live channel/.test(String(e['message'])));
          if (!payer.find((e) => e['event'] === 'closed') && !closedOnLoad) violation(`the payer's close ended with ${ending(payer)}: ${payer.tail()}`);
        } else {
          payerDone = true;
          summary = payer.find((e) => e['event'] === 'summary');
          if (payer.exited.code !== 0 || !summary) violation(`the payer's pay ended with ${ending(payer)} and ${summary ? 'a' : 'no'} summary: ${payer.tail()}`);
        }
      }
      // Closed: said so, or committed it (a channel that closes while the provider starts is closed before
      // the CLI listens for events, so no line is printed for it; the trace has the commit).
      if (payerDone && !payeeClosedOnDisk && !payee.find((e) => e['event'] === 'closed')) {
        payeeClosedOnDisk = (await readTrace(payeeTrace)).some((l) => l['phase'] === 'closed');
      }
      const payeeClosed = payeeClosedOnDisk || payee.find((e) => e['event'] === 'closed') !== undefined;
      if (payerDone && payeeClosed) break;
      randomKills.tick();
      await ctx.pulse.wait(250);
    }
  } finally {
    randomKills.stop();
    await Promise.all([payee.stop(), payer?.stop()]);
  }

  await finalChecks({ ctx, violation, units, targetMsat, payerDir, payeeDir, payerTrace, payeeTrace, payerLives, payeeLives, summary, acked: ackedMsat(), complete });
  return { label: `${units} units at ${rate}/s`, injections, payments: units, lives: [...payeeLives, ...payerLives] };
}

/** The dead side's record: loads, and holds at least the last state it committed (its trace). */
async function checkOnDisk(side: 'payer' | 'payee', dir: string, tracePath: string, violation: (t: string) => void): Promise<OnewayRecord | undefined> {
  let records: OnewayRecord[];
  try {
    records = await readRecords(dir, RECORD_PREFIX, decodeRecord);
  } catch (error) {
    violation(`the ${side}'s store does not load after a kill: ${(error as Error).message}`);
    return undefined;
  }
  const trace = await readTrace(tracePath);
  const last = trace.at(-1);
  if (records.length > 1) violation(`the ${side} has ${records.length} channels on disk, the run opened one`);
  const record = records[0];
  if (record) await traceOnDisk(tracePath, { role: record.role, phase: record.phase, tempChannelId: record.tempChannelId, payment: { number: record.payment.number, amountMsat: record.payment.amountMsat } });
  if (last) {
    const committed = big((last['payment'] as Event | undefined)?.['number']) ?? 0n;
    if (!record) violation(`the ${side} committed '${String(last['reason'])}' but has no channel on disk`);
    else if (record.payment.number < committed) {
      violation(`the ${side} committed payment ${committed} ('${String(last['reason'])}') but reloads payment ${record.payment.number}`);
    }
  }
  return record;
}

interface FinalInput {
  ctx: RunContext;
  violation: (text: string) => void;
  units: number;
  targetMsat: bigint;
  payerDir: string;
  payeeDir: string;
  payerTrace: string;
  payeeTrace: string;
  payerLives: Life[];
  payeeLives: Life[];
  summary: Event | undefined;
  acked: bigint;
  /** The run got to the end (not given up as stuck): the channel must be settled. */
  complete: boolean;
}

async function finalChecks(f: FinalInput): Promise<void> {
  const { violation } = f;
  // What the payer signed: every committed payment (a signature leaves only after its commit), from its
  // trace and what it had on disk whenever it died.
  const signed = new Map<bigint, bigint>();
  let maxSigned = 0n;
  for (const line of await readTrace(f.payerTrace)) {
    const p = line['payment'] as Event | undefined;
    const number = big(p?.['number']);
    const amount = big(p?.['amountMsat']);
    if (number === undefined || amount === undefined || number === 0n) continue;
    const before = signed.get(number);
    if (before !== undefined && before !== amount) violation(`the payer signed payment ${number} twice, for ${before} and for ${amount} msat`);
    signed.set(number, amount);
    maxSigned = maxOf(maxSigned, amount);
  }

  // None counted twice: committed (trace) and reported (events) payment numbers strictly increase.
  const committed = (await readTrace(f.payeeTrace)).filter((l) => l['reason'] === 'payment-accepted')
    .map((l) => ({ number: big((l['payment'] as Event)['number'])!, amount: big((l['payment'] as Event)['amountMsat'])! }));
  const reported = f.payeeLives.flatMap((l) => l.events.filter((e) => e['event'] === 'payment').map((e) => ({ number: big(e['number'])!, amount: big(e['amountMsat'])! })));
  for (const [what, list] of [['committed', committed], ['reported', reported]] as const) {
    for (let i = 1; i < list.length; i++) {
      if (list[i]!.number <= list[i - 1]!.number) {
        violation(`the payee ${what} payment ${list[i]!.number} after payment ${list[i - 1]!.number}: counted twice (${list.map((p) => p.number).join(',')})`);
        break;
      }
    }
    for (const p of list) {
      const s = signed.get(p.number);
      if (s !== p.amount) violation(`the payee ${what} payment ${p.number} for ${p.amount} msat; the payer signed ${s ?? 'no such payment'}`);
    }
  }

  if (!f.complete) return;
  let payer: PayerRecord | undefined;
  let payee: OnewayRecord | undefined;
  try {
    payer = (await readRecords(f.payerDir, RECORD_PREFIX, decodeRecord))[0] as PayerRecord | undefined;
    payee = (await readRecords(f.payeeDir, RECORD_PREFIX, decodeRecord))[0];
  } catch (error) {
    violation(`a store does not load at the end: ${(error as Error).message}`);
  }
  if (!payer || !payee) {
    violation(`no channel on disk at the end (payer ${payer ? 'has one' : 'none'}, payee ${payee ? 'has one' : 'none'})`);
    return;
  }
  if (payer.phase !== 'closed' || payee.phase !== 'closed') violation(`not closed at the end: payer ${payer.phase}, payee ${payee.phase}`);
  if (payer.payment.amountMsat !== f.targetMsat) violation(`the payer signed ${payer.payment.amountMsat} msat in all, it bought ${f.targetMsat}`);
  if (maxSigned !== payer.payment.amountMsat) violation(`the payer's latest signed payment on disk (${payer.payment.amountMsat} msat) is not the largest it signed (${maxSigned})`);
  if (payee.payment.amountMsat !== payer.payment.amountMsat || payee.payment.number !== payer.payment.number) {
    violation(`the payee settled on payment ${payee.payment.number} (${payee.payment.amountMsat} msat), the payer's last signed is ${payer.payment.number} (${payer.payment.amountMsat} msat)`);
  }
  if (f.acked > payee.payment.amountMsat) violation(`acknowledged ${f.acked} msat but the payee's final payment is ${payee.payment.amountMsat}`);
  if (f.summary) {
    const s = f.summary;
    const outcome = s['outcome'] as Event | undefined;
    if (big(s['paidMsat']) !== f.targetMsat || big(s['signedMsat']) !== f.targetMsat) {
      violation(`the payer's summary says paid ${String(s['paidMsat'])}, signed ${String(s['signedMsat'])}; it bought ${f.targetMsat}`);
    }
    if (outcome?.['kind'] !== 'settled' || big(outcome['payeeValueSat']) !== f.targetMsat / 1000n) {
      violation(`the payer's summary outcome is ${JSON.stringify(outcome)}; expected settled paying ${f.targetMsat / 1000n} sat`);
    }
  }

  // The chain: the one spend of the funding output, and every spend anyone tried to broadcast.
  const outpoint = payer.fundingOutpoint;
  if (!outpoint) return violation('the payer has no funding outpoint');
  const spend = await f.ctx.simnet.getSpend(outpoint);
  const status = spend && (await f.ctx.simnet.getTransaction(spend.txid));
  if (!spend || !status || status.blockHeight === undefined) return violation(`the funding output ${outpoint.txid}:${outpoint.vout} is not spent in a block`);
  const tx = Transaction.fromBuffer(Buffer.from(status.tx));
  const payeeScript = bytesToHex(payee.payeePayoutScript ?? new Uint8Array());
  const payerScript = bytesToHex(payer.payerRefundScript);
  const toPayee = tx.outs.filter((o) => bytesToHex(o.script) === payeeScript).reduce((s, o) => s + o.value, 0n);
  const toPayer = tx.outs.filter((o) => bytesToHex(o.script) === payerScript).reduce((s, o) => s + o.value, 0n);
  const outSum = tx.outs.reduce((s, o) => s + o.value, 0n);
  const fee = payer.capacitySat - outSum;
  if (toPayee !== f.targetMsat / 1000n) violation(`the settlement pays the payee ${toPayee} sat, it was paid ${f.targetMsat / 1000n}`);
  if (toPayee + toPayer !== outSum) violation(`the settlement has outputs to neither side (${outSum - toPayee - toPayer} sat)`);
  if (fee <= 0n || fee > 5_000n) violation(`the settlement's fee is ${fee} sat (capacity ${payer.capacitySat}, outputs ${outSum})`);
  if (payee.outcome && (payee.outcome.payeeValueSat + payee.outcome.payerValueSat + payee.outcome.feeSat !== payer.capacitySat || payee.outcome.txid !== spend.txid)) {
    violation(`the payee's outcome ${JSON.stringify(payee.outcome, (_k, v) => (typeof v === 'bigint' ? String(v) : v))} does not add up to the capacity ${payer.capacitySat} in ${spend.txid}`);
  }
  for (const attempt of f.ctx.broadcasts.spending(outpoint)) {
    const pays = attempt.tx.outs.filter((o) => bytesToHex(o.script) === payeeScript).reduce((s, o) => s + o.value, 0n);
    if (pays < f.acked / 1000n || pays > maxSigned / 1000n) {
      violation(`a funding spend ${attempt.txid} (${attempt.accepted ? 'accepted' : 'refused'}) pays the payee ${pays} sat: acknowledged ${f.acked} msat, signed at most ${maxSigned}`);
    }
  }
}

function maxOf(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

function lastEvents(life: Life): string {
  return life.events.filter((e) => e['event'] !== 'log').slice(-3).map((e) => JSON.stringify(e).slice(0, 160)).join(' | ');
}
