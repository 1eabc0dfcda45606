/**
 * One crash-harness run of a revocable (RSMC) channel (./crash-harness.ts): two `trickle peer` processes,
 * A (opener) and B (accepter, sometimes adding funds), driven over their control sockets exactly as
 * `trickle rsmc open|pay|close` would. A opens; single payments go both ways (now and then two at once,
 * crossing); one side closes, cooperatively or (sometimes) by broadcasting its commitment. Meanwhile either
 * peer is SIGKILLed — by its crash hook at a persist reason or sent message of the phase at hand, or by
 * the harness at a random moment — and restarted from its data directory. Checked:
 *
 *  - whenever a peer died, what it reloads is at least what it had committed (its trace: commitment
 *    numbers never go back), its balances sum to the capacity, it does not think itself stale, and its
 *    current commitment is not one the other peer already holds the revocation of (that peer's remote
 *    commitment number is not above it) — so it could never broadcast a revoked state;
 *  - neither peer ever signed (trace: remoteNext) or stored (localCommit) two different commitments with
 *    one number;
 *  - after each payment made alone, the payer's balances are the mirror of the payee's when it reports the
 *    payment; at the end both records agree (balances mirrored and summing to the capacity, update counts
 *    mirrored, the same closing transaction);
 *  - every payment reported complete is in the final balances exactly once: the final balance moved by
 *    the completed payments plus some subset of the ones whose request was cut short (a payment in
 *    flight when its payer died may still complete; BOLT 2), and the update counts agree with that;
 *  - on chain: every funding spend anybody broadcast is the cooperative closing transaction or the
 *    broadcaster's latest commitment, never an older (revoked) one; neither peer ever saw a revoked or
 *    unknown commitment; the confirmed spend pays each side its final balance (the opener paying the fee)
 *    or, for a unilateral close, is the closer's latest commitment; both outcomes name it.
 *
 * The checks themselves are in ./crash-rsmc-checks.ts.
 */
import { join } from 'node:path';
import { loadKeys } from '../../src/cli/setup.js';
import { callControl } from '../../src/cli/control.js';
import { CONTROL_SOCKET } from '../../src/cli/rsmc.js';
import { spawnTrickle, type Event, type Life } from './crash-process.js';
import { big, crashSpec, debug, ending, RandomKills, readTrace, stuckReason, type CrashPoint, type Injection, type RunContext, type RunStats } from './crash-common.js';
import { checkOnDisk, finalChecks, type Name, type Payment, type Peer } from './crash-rsmc-checks.js';

const WALLET_SAT = 1_000_000n;
const LOCAL_SAT = 200_000n;
/** An open with no news from either peer this long is stalled (a liveness violation; it is abandoned). */
const OPEN_STALL_MS = 15_000;
/** Kept out of reach of payments: reserve, the opener's commitment fee, what may be in flight. */
const MARGIN_MSAT = 30_000_000n;

type Phase = 'opening' | 'paying' | 'closing';
const PHASES: readonly Phase[] = ['opening', 'paying', 'closing'];

function points(name: Name, phase: Phase, dual: boolean, paymentsLeft: number): CrashPoint[] {
  const per = Math.max(1, paymentsLeft);
  // The opener stores the channel first when its coins are chosen ('contributed'); a single-funded
  // accepter stores nothing before funding_created ('funding-signed').
  const opening: CrashPoint[] = name === 'A'
    ? [{ at: 'contributed', maxNth: 1 }, { at: 'funding-created', maxNth: 1 }, { at: 'funding-signed', maxNth: 1 }, { at: 'sent:open_channel', maxNth: 1 }, { at: 'sent:funding_created', maxNth: 1 }]
    : [{ at: 'funding-signed', maxNth: 1 }, { at: 'sent:accept_channel', maxNth: 1 }, { at: 'sent:funding_signed', maxNth: 1 }];
  if (dual) {
    opening.push({ at: 'funding-tx-signed', maxNth: 1 }, { at: 'sent:funding_contribution', maxNth: 1 }, { at: 'sent:funding_tx_signatures', maxNth: 1 });
    if (name === 'B') opening.push({ at: 'accepted', maxNth: 1 }, { at: 'contributed', maxNth: 1 });
  }
  opening.push({ at: 'ready', maxNth: 1 }, { at: 'sent:channel_ready', maxNth: 1 });
  const table: Record<Phase, CrashPoint[]> = {
    opening,
    paying: [
      { at: 'commitment-signed', maxNth: per }, { at: 'commitment-received', maxNth: per }, { at: 'revocation-received', maxNth: per },
      { at: 'sent:update_transfer', maxNth: Math.ceil(per / 2) }, { at: 'sent:commitment_signed', maxNth: per }, { at: 'sent:revoke_and_ack', maxNth: per },
      { at: 'sent:channel_reestablish', maxNth: 2 },
    ],
    closing: [
      { at: 'shutdown', maxNth: 1 }, { at: 'closing-signed', maxNth: 2 }, { at: 'closing', maxNth: 1 }, { at: 'closed', maxNth: 1 },
      { at: 'sent:shutdown', maxNth: 1 }, { at: 'sent:closing_signed', maxNth: 2 },
    ],
  };
  const from = PHASES.indexOf(phase);
  return PHASES.slice(from).flatMap((p, i) => (i === 0 ? [...table[p], ...table[p]] : table[p]));
}

class Stuck extends Error {}
/** The run cannot go on (already reported). */
class Abort extends Error {}

export async function runRsmc(ctx: RunContext): Promise<RunStats> {
  const { rng } = ctx;
  const dual = rng.chance(0.5);
  const remoteSat = dual ? BigInt(rng.int(50, 150)) * 1000n : 0n;
  const pushMsat = rng.chance(0.6) ? BigInt(rng.int(20_000, 80_000)) * 1000n + BigInt(rng.int(0, 999)) : 0n;
  const paymentsWanted = rng.int(16, 48);
  const force = rng.chance(0.2);
  const closer: Name = rng.chance(0.5) ? 'A' : 'B';
  const what = `${dual ? 'dual-funded' : 'single-funded'}, ${paymentsWanted} payments, ${force ? 'unilateral' : 'cooperative'} close by ${closer}`;
  const label = `rsmc run ${ctx.index} (seed ${ctx.seed}, ${what})`;
  const violation = (text: string): void => ctx.violation(`${label}: ${text}`);

  const peers = {} as Record<Name, Peer>;
  for (const name of ['A', 'B'] as const) {
    const dir = join(ctx.dir, name.toLowerCase());
    const keys = await loadKeys(dir, { create: true });
    await ctx.simnet.faucet(keys.walletScript, WALLET_SAT);
    peers[name] = { name, dir, trace: join(ctx.dir, `${name}.trace`), nodeId: keys.identity.nodeId, lives: [], life: undefined as unknown as Life, closedOnDisk: false };
  }
  const other = (p: Peer): Peer => (p.name === 'A' ? peers.B : peers.A);
  const peerArgs = (p: Peer): string[] => ['peer', '--data-dir', p.dir, '--broker', ctx.brokerUrl, ...ctx.chainFlags,
    '--to-self-delay', '6', '--min-depth', '1', '--close-depth', '1', '--max-contribution-sat', '150000'];

  const injections: Injection[] = [];
  const payments: Payment[] = [];
  let phase = 'opening' as Phase;
  let channelId: string | undefined;
  let mining = false;
  let finished = false;
  /** False once the run is given up: the checks that need a closed channel are skipped. */
  let complete = true;

  const start = async (p: Peer): Promise<Life> => {
    const crashAt = injections.length < ctx.targetInjections && rng.chance(0.65)
      ? crashSpec(rng, points(p.name, phase, dual, paymentsWanted - payments.length))
      : undefined;
    const life = await spawnTrickle(`${p.name}#${p.lives.length + 1}`, peerArgs(p), { TRICKLE_CRASH_AT: crashAt, TRICKLE_TRACE: p.trace }, ctx.pulse);
    p.lives.push(life);
    p.life = life;
    debug(ctx, `start ${life.name} (pid ${life.pid})${crashAt ? ` armed at ${crashAt}` : ''} in phase ${phase}`);
    void life.exit.then(() => debug(ctx, `${life.name} ${ending(life)}`));
    return life;
  };
  /** The peer's record of the channel is closed (it said so, or its store did when it last died). */
  const closedFor = (p: Peer): boolean => p.closedOnDisk || p.life.find((e) => e['event'] === 'closed' && e['channelId'] === channelId) !== undefined;
  const randomKills = new RandomKills(ctx, () => [peers.A.life, peers.B.life], () => injections.length);

  const onDeath = async (p: Peer): Promise<void> => {
    if (!p.life.crashed) violation(`peer ${p.name} exited on its own (${ending(p.life)}): ${p.life.tail()}`);
    else injections.push({ side: p.name, at: p.life.killedByParent ? 'random' : p.life.crashAt! });
    await checkOnDisk(p, other(p), channelId, violation);
  };

  // The supervisor: restarts the dead, keeps blocks coming during a unilateral close.
  await start(peers.A);
  await start(peers.B);
  const supervise = (async () => {
    try {
      while (!finished) {
        for (const p of [peers.A, peers.B]) {
          if (p.life.running || !p.life.exited) continue;
          await onDeath(p);
          await start(p);
        }
        if (phase === 'closing') {
          // A channel that closes while its peer starts is closed before the CLI listens for events: no
          // 'closed' line is printed for it, but its trace has the commit.
          for (const p of [peers.A, peers.B]) {
            if (!closedFor(p)) p.closedOnDisk = (await readTrace(p.trace)).some((l) => l['channelId'] === channelId && l['phase'] === 'closed');
          }
        }
        if (phase === 'closing' && closedFor(peers.A) && closedFor(peers.B)) randomKills.stop();
        else randomKills.tick();
        if (mining) await ctx.simnet.mine(1);
        await ctx.pulse.wait(mining ? 120 : 250);
      }
    } catch (error) {
      violation(`the harness's supervisor failed: ${(error as Error).stack ?? String(error)}`);
    }
  })();

  /** A stall: nothing printed by either peer for `ms`; then `onStall` runs (until it says it acted). */
  interface Stall {
    ms: number;
    onStall(): Promise<boolean>;
  }
  const quietForMs = (): number => performance.now() - Math.max(...[...peers.A.lives, ...peers.B.lives].map((l) => l.lastActivityMs));
  const waitUntil = async (predicate: () => boolean, what: string, stall?: Stall): Promise<void> => {
    let stalled = false;
    while (!predicate()) {
      const why = stuckReason(ctx, [...peers.A.lives, ...peers.B.lives]);
      if (why) throw new Stuck(`${what}: ${why}`);
      if (stall && !stalled && quietForMs() > stall.ms) {
        stalled = await stall.onStall();
        if (stalled) continue;
      }
      await ctx.pulse.wait(250);
    }
  };
  const ready = (p: Peer): boolean => p.life.running && p.life.find((e) => e['event'] === 'ready') !== undefined;

  /**
   * One control request to a peer's current life. Cut short (`interrupted`) if that life dies; then it
   * returns once the death is seen, so the caller's next request goes to the next life.
   */
  const request = async (p: Peer, body: Record<string, unknown>, stall?: Stall): Promise<{ events: Event[]; error?: string; interrupted?: boolean }> => {
    await waitUntil(() => ready(p), `peer ${p.name} ready`);
    const life = p.life;
    const events: Event[] = [];
    debug(ctx, `${life.name} ← ${JSON.stringify(body)}`);
    let settled = false;
    const call = callControl(p.dir, CONTROL_SOCKET, body, { json: true, event: (e) => void events.push(e) }).finally(() => {
      settled = true;
      ctx.pulse.notify();
    });
    call.catch(() => undefined); // awaited below, unless the run is given up first
    try {
      await waitUntil(() => settled, `peer ${p.name} to answer ${String(body['command'])}`, stall);
      await call;
      debug(ctx, `${life.name} → ${events.map((e) => e['event']).join(',')}`);
      return { events };
    } catch (error) {
      if (error instanceof Stuck || error instanceof Abort) throw error;
      const code = (error as { code?: string }).code ?? '';
      const text = `${code} ${(error as Error).message}`;
      debug(ctx, `${life.name} → ${events.map((e) => e['event']).join(',')} error ${text}`);
      if (['PEER_GONE', 'NO_PEER', 'ECONNRESET', 'ECONNREFUSED', 'EPIPE'].includes(code)) {
        // The life is dying (its socket went away): wait until it is gone. A live one that hung up is a bug.
        const until = performance.now() + 10_000;
        while (life.running && performance.now() < until) await ctx.pulse.wait(100);
        if (life.running) violation(`peer ${p.name} (${life.name}) hung up on a ${String(body['command'])} request and is still running: ${text}`);
        return { events, error: text, interrupted: true };
      }
      return { events, error: text };
    }
  };

  // Balances as far as the completed payments tell (for choosing amounts the payer can afford).
  const balanceMsat: Record<Name, bigint> = { A: LOCAL_SAT * 1000n - pushMsat, B: remoteSat * 1000n + pushMsat };
  const uncertainMsat = (): bigint => payments.filter((x) => !x.completed).reduce((s, x) => s + x.amountMsat, 0n);

  /** One payment from `from` (undefined if it cannot afford one), and the payer's summary if it completed. */
  const pay = async (from: Name): Promise<{ payment: Payment; summary: Event | undefined } | undefined> => {
    const p = peers[from];
    const room = balanceMsat[from] - MARGIN_MSAT - uncertainMsat();
    if (room < 1_000_000n) return undefined;
    let amountMsat = BigInt(rng.int(500, 4_000)) * 1000n + BigInt(rng.int(0, 999));
    if (amountMsat > room) amountMsat = room;
    const payment: Payment = { from, amountMsat, id: undefined, completed: false };
    payments.push(payment);
    const res = await request(p, { command: 'pay', channel: channelId, amountMsat: amountMsat.toString(), payments: 1, breach: false });
    const done = res.events.find((e) => e['event'] === 'payment');
    if (done) {
      payment.completed = true;
      payment.id = big(done['id']);
      balanceMsat[from] -= amountMsat;
      balanceMsat[from === 'A' ? 'B' : 'A'] += amountMsat;
    } else payment.error = res.error ?? 'no payment reported';
    return { payment, summary: res.events.find((e) => e['event'] === 'summary') };
  };

  /** The payee's view when it reported the payment mirrors the payer's right after it (a payment made alone). */
  const checkAgreement = async (payment: Payment, payerSummary: Event | undefined): Promise<void> => {
    if (!payment.completed || !payerSummary) return;
    const payee = peers[payment.from === 'A' ? 'B' : 'A'];
    const life = payee.life;
    const matches = (e: Event): boolean => e['event'] === 'payment-received' && big(e['id']) === payment.id && e['channelId'] === channelId;
    const until = performance.now() + 5_000;
    while (life.running && !life.find(matches) && performance.now() < until) await ctx.pulse.wait(200);
    const seen = life.find(matches);
    if (!seen) return; // the payee died (or was reported by an earlier life): nothing to compare
    const mine = payerSummary['balances'] as Event;
    const theirs = seen['balances'] as Event;
    if (big(mine['localMsat']) !== big(theirs['remoteMsat']) || big(mine['remoteMsat']) !== big(theirs['localMsat'])) {
      violation(`after payment ${payment.id} from ${payment.from} the sides disagree: payer ${JSON.stringify(mine)}, payee ${JSON.stringify(theirs)}`);
    }
  };

  try {
    // Open (again, if the opener died before its channel was stored, or if the open stalled).
    let abandoned = false;
    let failedOpens = 0;
    const abandon: Stall = {
      ms: OPEN_STALL_MS,
      onStall: async () => {
        // Liveness: an open that neither completes nor fails. What a user would do: give it up (a close
        // abandons an open that has not reached the chain) and open again. With no channel under way yet
        // A is still reaching B (a handshake backs off up to 30 s): the run's own limits apply.
        const pending = pendingOpens(peers.A);
        if (pending.size === 0) return false;
        violation(`liveness: the open made no progress for ${OPEN_STALL_MS} ms (A: ${describe(pending)}; B: ${describe(pendingOpens(peers.B))}; ` +
          `kills so far ${injections.map((i) => `${i.side}@${i.at}`).join(' ')})`);
        abandoned = true;
        await abandonOpens();
        return true;
      },
    };
    /** Abandon every open A has under way; one that cannot be (it has a commitment: it is being funded) ends the run. */
    const abandonOpens = async (): Promise<void> => {
      for (const [id, phase] of pendingOpens(peers.A)) {
        const res = await request(peers.A, { command: 'close', channel: id, force: false });
        debug(ctx, `abandoned the open ${id.slice(0, 16)}…: ${res.error ?? 'closed'}`);
        if (res.interrupted || /abandoned/.test(res.error ?? '')) continue;
        // Known by its temporary id when last heard of, it has been funded under its channel id since.
        if (phase !== 'funding_signed' && /BAD_STATE/.test(res.error ?? '')) continue;
        violation(`liveness: A cannot abandon its open ${id.slice(0, 16)}… (${phase}) either, and its coins stay reserved: ${res.error ?? 'no answer'}`);
        throw new Abort();
      }
    };
    while (!channelId) {
      abandoned = false;
      const res = await request(peers.A, { command: 'open', peer: peers.B.nodeId, localSat: LOCAL_SAT.toString(), remoteSat: remoteSat.toString(), pushMsat: pushMsat.toString() }, abandon);
      const opened = res.events.find((e) => e['event'] === 'opened');
      if (opened) {
        channelId = String(opened['channelId']);
        break;
      }
      if (abandoned) continue;
      if (!res.interrupted) {
        // The session with B was replaced mid-open (B restarted): the open fails and may be tried again.
        // Or B lost the open in a restart, or abandoned it, and told A so: A gave it up.
        if (/disconnected while opening|does not know this open|peer error STOPPED/.test(res.error ?? '') && ++failedOpens < 10) continue;
        const pending = pendingOpens(peers.A);
        if (/INSUFFICIENT_FUNDS/.test(res.error ?? '') && pending.size > 0 && ++failedOpens < 10) {
          // An earlier open that never finished still holds the wallet's coins.
          violation(`liveness: an earlier open still holds A's coins (${describe(pending)}): ${res.error}`);
          await abandonOpens();
          continue;
        }
        const theirs = pendingOpens(peers.B);
        if (/peer error INSUFFICIENT_FUNDS/.test(res.error ?? '') && theirs.size > 0) {
          // B's coins are held by an earlier stalled open of its own (only B could abandon it, and it cannot
          // once it has signed: the stall this run already reported).
          violation(`liveness: an earlier open still holds B's coins (${describe(theirs)}): ${res.error}`);
          throw new Abort();
        }
        // With no open under way that holds them, the coins are locked by nothing: a leak.
        violation(`the open failed: ${res.error} (A opening: ${describe(pending)}; B opening: ${describe(theirs)})`);
        throw new Abort();
      }
      // The opener died: its channel goes on from where it was stored, if it was stored (and is abandoned
      // if the open cannot go on). It is named by its temporary id until funded: wait for it to open.
      await waitUntil(() => ready(peers.A), 'peer A back after an interrupted open');
      const firstLife = peers.A.lives.length - 1;
      const live = (peers.A.life.find((e) => e['event'] === 'ready')!['channels'] as Event[]) ?? [];
      if (live.length === 0) continue;
      let outcome: Event | undefined;
      await waitUntil(() => {
        const events = peers.A.lives.slice(firstLife).flatMap((l) => [
          ...l.events.filter((e) => e['event'] === 'phase' && (e['phase'] === 'open' || e['phase'] === 'aborted')),
          ...l.events.filter((e) => e['event'] === 'ready').flatMap((e) => (e['channels'] as Event[]).filter((c) => c['phase'] === 'open')),
        ]);
        outcome = events[0];
        return abandoned || outcome !== undefined || (peers.A.life.find((e) => e['event'] === 'ready')?.['channels'] as Event[] | undefined)?.length === 0;
      }, 'the interrupted open to complete', abandon);
      if (outcome?.['phase'] === 'open') channelId = String(outcome['channelId']);
    }
    phase = 'paying';

    // Payments: mostly one at a time, sometimes two crossing.
    while (payments.length < paymentsWanted) {
      if (rng.chance(0.15)) {
        const both = await Promise.all([pay('A'), pay('B')]);
        if (both.every((x) => x === undefined)) break;
        continue;
      }
      const from: Name = rng.chance(0.5) ? 'A' : 'B';
      const made = (await pay(from)) ?? (await pay(from === 'A' ? 'B' : 'A'));
      if (!made) break; // neither can afford more
      await checkAgreement(made.payment, made.summary);
    }
    phase = 'closing';

    // Close (again, if the closer died before the close got anywhere).
    mining = force;
    for (;;) {
      const res = await request(peers[closer], { command: 'close', channel: channelId, force });
      if (res.events.some((e) => e['event'] === 'closed')) break;
      if (!res.interrupted) {
        // Closing already (a cooperative close signed before the closer died): wait for it.
        if (!/BAD_STATE/.test(res.error ?? '')) violation(`the close failed: ${res.error}`);
        break;
      }
    }
    await waitUntil(() => closedFor(peers.A) && closedFor(peers.B), 'both peers closed');
  } catch (error) {
    if (error instanceof Abort) return { label: what, injections, payments: payments.length, lives: [...peers.A.lives, ...peers.B.lives] };
    if (!(error instanceof Stuck)) throw error;
    complete = false;
    violation(`stuck waiting for ${error.message} (phase ${phase}, ${injections.length} kills, ${payments.length} payments); ` +
      `A ${peers.A.life.name} ${ending(peers.A.life)}: ${lastEvents(peers.A.life)}; B ${peers.B.life.name} ${ending(peers.B.life)}: ${lastEvents(peers.B.life)}` +
      `\n  A stderr: ${peers.A.life.tail(6)}\n  B stderr: ${peers.B.life.tail(6)}`);
    for (const p of [peers.A, peers.B]) {
      debug(ctx, `${p.name} trace: ${(await readTrace(p.trace)).map((l) => `${String(l['reason'])}/${String(l['phase'])}`).join(' ')}`);
      for (const life of p.lives) debug(ctx, `${life.name}: ${life.events.map((e) => JSON.stringify(e).slice(0, 200)).join('\n    ')}`);
    }
  } finally {
    finished = true;
    randomKills.stop();
    await supervise;
    await Promise.all([peers.A.life.stop(), peers.B.life.stop()]);
  }

  if (channelId) await finalChecks({ ctx, violation, peers, channelId, payments, pushMsat, force, closer, complete });
  return { label: what, injections, payments: payments.length, lives: [...peers.A.lives, ...peers.B.lives] };
}

function describe(opens: Map<string, string>): string {
  return opens.size === 0 ? 'no channel opening' : [...opens].map(([id, phase]) => `${id.slice(0, 16)}… ${phase}`).join(', ');
}

/** The channels a peer's current life is still opening (by what it said: ready, then phase events), id → phase. */
function pendingOpens(p: Peer): Map<string, string> {
  const phases = new Map<string, string>();
  for (const e of p.life.events) {
    if (e['event'] === 'ready') for (const c of e['channels'] as Event[]) phases.set(String(c['channelId']), String(c['phase']));
    if (e['event'] === 'phase') phases.set(String(e['channelId']), String(e['phase']));
  }
  for (const [id, phase] of phases) if (!['negotiating', 'contributing', 'funding_signed'].includes(phase)) phases.delete(id);
  return phases;
}

function lastEvents(life: Life): string {
  return life.events.filter((e) => e['event'] !== 'log').slice(-3).map((e) => JSON.stringify(e).slice(0, 160)).join(' | ');
}

