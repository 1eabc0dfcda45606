/**
 * The checks of a revocable-channel crash run (./crash-rsmc.ts): a dead peer's store against its trace
 * and the other peer's (after every kill), and everything at the end — records, traces, what each process
 * reported, the payments made, and every spend of the funding output on the simnet.
 */
import { Transaction } from 'bitcoinjs-lib';
import { bytesToHex } from '../../src/bytes.js';
import { decodeRecord, RECORD_PREFIX } from '../../src/channel/rsmc/state.js';
import type { RsmcRecord } from '../../src/channel/rsmc/types.js';
import type { Event, Life } from './crash-process.js';
import { big, ending, readRecords, readTrace, traceOnDisk, type RunContext } from './crash-common.js';

export type Name = 'A' | 'B';

export interface Peer {
  name: Name;
  dir: string;
  trace: string;
  nodeId: string;
  lives: Life[];
  life: Life;
  /** Its record is closed, by its store when it last died or by its trace (a channel closed while the peer starts is reported by no event). */
  closedOnDisk: boolean;
}

export interface Payment {
  from: Name;
  amountMsat: bigint;
  /** The payer's update id, when the request reported the payment complete. */
  id: bigint | undefined;
  completed: boolean;
  /** Why it is uncertain (the request was cut short or failed). */
  error?: string;
}

/**
 * A dead peer's record of the channel as it left it on disk, checked against its trace and the other
 * peer's: nothing it committed is lost, it does not hold a commitment the other has the revocation of,
 * its balances sum to the capacity, it does not think itself stale. Notes whether the record is closed.
 */
export async function checkOnDisk(p: Peer, other: Peer, channelId: string | undefined, violation: (text: string) => void): Promise<void> {
  let records: RsmcRecord[];
  try {
    records = await readRecords(p.dir, RECORD_PREFIX, decodeRecord);
  } catch (error) {
    return violation(`peer ${p.name}'s store does not load after a kill: ${(error as Error).message}`);
  }
  // The channel: by id once it is known, else the one the dead peer committed last (by temporary id,
  // which both peers share).
  const myTrace = await readTrace(p.trace);
  const tempId = channelId ? undefined : (myTrace.at(-1)?.['tempChannelId'] as string | undefined);
  const record = pickRecord(records, channelId, tempId);
  const channelTempId = record ? bytesToHex(record.tempChannelId) : tempId;
  const ofChannel = (lines: Event[]): Event[] => (channelTempId ? lines.filter((l) => l['tempChannelId'] === channelTempId) : []);
  const mine = lastCommits(ofChannel(myTrace));
  const theirs = lastCommits(ofChannel(await readTrace(other.trace)));
  if (!record) {
    if (mine.local !== undefined) violation(`peer ${p.name} committed commitment ${mine.local} but has no channel on disk`);
    return;
  }
  const local = record.localCommit?.number;
  const what = `peer ${p.name} (${ending(p.life)})`;
  if (mine.local !== undefined && (local === undefined || local < mine.local)) violation(`${what} committed its commitment ${mine.local} but reloads ${local ?? 'none'}`);
  if (mine.remote !== undefined && (record.remoteCommit === undefined || record.remoteCommit.number < mine.remote)) {
    violation(`${what} committed the peer's commitment ${mine.remote} but reloads ${record.remoteCommit?.number ?? 'none'}`);
  }
  if (local !== undefined && theirs.remote !== undefined && local < theirs.remote) {
    violation(`${what} reloads its commitment ${local}, which peer ${other.name} holds the revocation of (its current remote commitment is ${theirs.remote}): a revoked state`);
  }
  await traceOnDisk(p.trace, { phase: record.phase, tempChannelId: record.tempChannelId, localCommit: record.localCommit, remoteCommit: record.remoteCommit, remoteNext: record.remoteNext });
  if (record.stale) violation(`${what} marked its channel stale (it lost state)`);
  const spec = record.localCommit?.spec;
  if (spec && spec.localMsat + spec.remoteMsat !== record.fundingSat * 1000n) {
    violation(`${what}: balances ${spec.localMsat} + ${spec.remoteMsat} msat ≠ capacity ${record.fundingSat} sat`);
  }
  p.closedOnDisk = record.phase === 'closed';
}

/** The record of the channel, by channel id or else by temporary id. */
function pickRecord(records: RsmcRecord[], channelId: string | undefined, tempChannelId?: string): RsmcRecord | undefined {
  if (channelId) return records.find((r) => r.channelId && bytesToHex(r.channelId) === channelId);
  return records.find((r) => bytesToHex(r.tempChannelId) === tempChannelId);
}

/** The last committed commitment numbers in a trace (ours, and the peer's current one we hold). */
function lastCommits(trace: Event[]): { local: bigint | undefined; remote: bigint | undefined } {
  let local: bigint | undefined;
  let remote: bigint | undefined;
  for (const line of trace) {
    const l = big((line['localCommit'] as Event | undefined)?.['number']);
    const r = big((line['remoteCommit'] as Event | undefined)?.['number']);
    if (l !== undefined) local = l;
    if (r !== undefined) remote = r;
  }
  return { local, remote };
}

export interface FinalInput {
  ctx: RunContext;
  violation: (text: string) => void;
  peers: Record<Name, Peer>;
  channelId: string;
  payments: Payment[];
  pushMsat: bigint;
  force: boolean;
  closer: Name;
  /** The run got to the end (not given up as stuck): the channel must be closed. */
  complete: boolean;
}

export async function finalChecks(f: FinalInput): Promise<void> {
  const { violation, peers } = f;
  const records = {} as Record<Name, RsmcRecord>;
  // Commitments by txid, from both traces: whose, which number, and each side's latest.
  const commitments = new Map<string, { owner: Name; number: bigint }>();
  const latest = {} as Record<Name, bigint>;
  for (const name of ['A', 'B'] as const) {
    const p = peers[name];
    let record: RsmcRecord | undefined;
    try {
      record = pickRecord(await readRecords(p.dir, RECORD_PREFIX, decodeRecord), f.channelId);
    } catch (error) {
      return violation(`peer ${name}'s store does not load at the end: ${(error as Error).message}`);
    }
    if (!record) {
      if (f.complete) violation(`peer ${name} has no record of channel ${f.channelId}`);
      return;
    }
    records[name] = record;
    const tempId = bytesToHex(record.tempChannelId);
    const trace = (await readTrace(p.trace)).filter((l) => l['tempChannelId'] === tempId);
    const stored = new Map<bigint, string>();
    const signed = new Map<bigint, string>();
    let previous = -1n;
    for (const line of trace) {
      const local = line['localCommit'] as Event | undefined;
      const next = line['remoteNext'] as Event | undefined;
      if (local) {
        const n = big(local['number'])!;
        const txid = String(local['txid']);
        if (stored.has(n) && stored.get(n) !== txid) violation(`peer ${name} stored two different commitments numbered ${n}: ${stored.get(n)} and ${txid}`);
        if (n < previous) violation(`peer ${name}'s commitment went back from ${previous} to ${n}`);
        previous = n;
        stored.set(n, txid);
        commitments.set(txid, { owner: name, number: n });
      }
      if (next) {
        const n = big(next['number'])!;
        const txid = String(next['txid']);
        if (signed.has(n) && signed.get(n) !== txid) violation(`peer ${name} signed two different commitments numbered ${n} for its peer: ${signed.get(n)} and ${txid}`);
        signed.set(n, txid);
      }
    }
    latest[name] = record.localCommit?.number ?? 0n;
    if (record.localCommit) commitments.set(record.localCommit.txid, { owner: name, number: record.localCommit.number });
    // What each life reported: no revoked or unplaceable commitment seen, no payment reported twice.
    const received = new Set<string>();
    for (const life of p.lives) {
      for (const e of life.events) {
        if (e['channelId'] !== f.channelId) continue;
        if (e['event'] === 'closing' && !['cooperative', 'local-latest', 'remote-latest'].includes(String(e['kind']))) {
          violation(`peer ${name} (${life.name}) saw a funding spend of kind ${String(e['kind'])} (${String(e['txid'])})`);
        }
        if (e['event'] === 'payment-received') {
          const id = String(e['id']);
          if (received.has(id)) violation(`peer ${name} reported payment ${id} received twice`);
          received.add(id);
        }
      }
    }
  }
  const a = records.A;
  const b = records.B;
  const outpoint = a.fundingOutpoint;
  // Whatever happened, no revoked commitment of either side was ever handed to the chain.
  for (const attempt of outpoint ? f.ctx.broadcasts.spending(outpoint) : []) {
    const c = commitments.get(attempt.txid);
    if (c && c.number !== latest[c.owner]) {
      violation(`peer ${c.owner}'s commitment ${c.number} was broadcast (${attempt.txid}, ${attempt.accepted ? 'accepted' : 'refused'}); its latest is ${latest[c.owner]}: a revoked state`);
    }
  }
  if (!f.complete) return;
  const capacityMsat = a.fundingSat * 1000n;
  if (a.phase !== 'closed' || b.phase !== 'closed') violation(`not closed at the end: A ${a.phase}, B ${b.phase}`);
  const sa = a.localCommit?.spec;
  const sb = b.localCommit?.spec;
  if (!sa || !sb) return violation('a peer has no commitment at the end');
  // B's balance in the state that closed the channel. A unilateral close may come in the middle of an
  // update, when the two latest commitments differ: the closer's is on chain (checked below), and the
  // other side must know it, as its own latest or as the closer's current or next commitment.
  let finalB: bigint;
  if (!f.force) {
    if (sa.localMsat !== sb.remoteMsat || sa.remoteMsat !== sb.localMsat) {
      violation(`the sides disagree at the end: A holds ${sa.localMsat}/${sa.remoteMsat}, B ${sb.localMsat}/${sb.remoteMsat} msat (local/remote)`);
    }
    finalB = sb.localMsat;
  } else {
    const closer = records[f.closer];
    const other = f.closer === 'A' ? b : a;
    const onChain = closer.localCommit!.spec;
    const known = [other.localCommit?.spec && { localMsat: other.localCommit.spec.localMsat, remoteMsat: other.localCommit.spec.remoteMsat }, other.remoteCommit?.spec, other.remoteNext?.spec];
    if (!known.some((k) => k && k.localMsat === onChain.remoteMsat && k.remoteMsat === onChain.localMsat)) {
      violation(`the commitment ${f.closer} closed with (${onChain.localMsat}/${onChain.remoteMsat} msat, local/remote) is not a state its peer knows`);
    }
    finalB = f.closer === 'B' ? onChain.localMsat : onChain.remoteMsat;
  }
  if (sa.localMsat + sa.remoteMsat !== capacityMsat) violation(`A's balances ${sa.localMsat} + ${sa.remoteMsat} msat ≠ capacity ${a.fundingSat} sat`);
  if (sb.localMsat + sb.remoteMsat !== capacityMsat) violation(`B's balances ${sb.localMsat} + ${sb.remoteMsat} msat ≠ capacity ${b.fundingSat} sat`);
  if (a.sentCount !== b.receivedCount || a.receivedCount !== b.sentCount) {
    violation(`update counts disagree: A sent ${a.sentCount} received ${a.receivedCount}, B sent ${b.sentCount} received ${b.receivedCount}`);
  }

  // Every completed payment exactly once; of the cut-short ones, some subset.
  const initialB = b.localFundingSat * 1000n + f.pushMsat;
  const net = (list: Payment[]) => list.reduce((s, x) => s + (x.from === 'A' ? x.amountMsat : -x.amountMsat), 0n);
  const done = f.payments.filter((x) => x.completed);
  const unsure = f.payments.filter((x) => !x.completed);
  const rest = finalB - initialB - net(done);
  const countsFit = (subset: Payment[]) => {
    const fromA = done.filter((x) => x.from === 'A').length + subset.filter((x) => x.from === 'A').length;
    const fromB = done.filter((x) => x.from === 'B').length + subset.filter((x) => x.from === 'B').length;
    return BigInt(fromA) === a.sentCount && BigInt(fromB) === b.sentCount;
  };
  if (!someSubset(unsure, (s) => net(s) === rest && countsFit(s))) {
    violation(`the final balances do not account for the payments: B ends with ${finalB} msat, started with ${initialB}; ` +
      `${done.length} completed (net A→B ${net(done)}), ${unsure.length} cut short (${unsure.map((x) => `${x.from}:${x.amountMsat}:${x.error?.trim().slice(0, 40)}`).join(', ')}); ` +
      `updates sent A ${a.sentCount}, B ${b.sentCount}`);
  }

  // The chain: the funding output's one spend, and every spend of it anybody tried.
  if (!outpoint) return violation('A has no funding outpoint');
  const spend = await f.ctx.simnet.getSpend(outpoint);
  const status = spend && (await f.ctx.simnet.getTransaction(spend.txid));
  if (!spend || !status || status.blockHeight === undefined) return violation(`the funding output ${outpoint.txid}:${outpoint.vout} is not spent in a block`);
  for (const [name, r] of [['A', a], ['B', b]] as const) {
    if (r.outcome?.closingTxid !== spend.txid) violation(`peer ${name}'s outcome names ${r.outcome?.closingTxid ?? 'nothing'}, the funding was spent by ${spend.txid}`);
    const kind = f.force ? 'unilateral-close' : 'cooperative-close';
    if (r.outcome && r.outcome.kind !== kind) violation(`peer ${name}'s outcome is ${r.outcome.kind}, expected ${kind}`);
  }
  const c = commitments.get(spend.txid);
  if (f.force) {
    if (!c || c.owner !== f.closer || c.number !== latest[f.closer]) {
      violation(`the unilateral close ${spend.txid} is not ${f.closer}'s latest commitment ${latest[f.closer]} (${c ? `${c.owner}'s ${c.number}` : 'unknown'})`);
    }
    return;
  }
  if (c) return violation(`a commitment (${c.owner}'s ${c.number}) closed the channel, not the cooperative transaction`);
  const tx = Transaction.fromBuffer(Buffer.from(status.tx));
  const paid = (script: Uint8Array) => tx.outs.filter((o) => bytesToHex(o.script) === bytesToHex(script)).reduce((s, o) => s + o.value, 0n);
  const toA = paid(a.shutdown?.localScript ?? a.payoutScript);
  const toB = paid(b.shutdown?.localScript ?? b.payoutScript);
  // Each side's balance floored to sat, the opener paying the agreed fee; the msat lost to flooring
  // (under 1 sat each, so 0 or 1 sat together) goes to the miner too.
  const agreedFee = sa.localMsat / 1000n - toA;
  const rounding = a.fundingSat - sa.localMsat / 1000n - sb.localMsat / 1000n;
  if (toB !== sb.localMsat / 1000n) violation(`the closing transaction pays B ${toB} sat; its balance is ${sb.localMsat} msat`);
  if (agreedFee <= 0n || agreedFee > 5_000n || toA + toB + agreedFee + rounding !== a.fundingSat) {
    violation(`the closing transaction pays A ${toA} sat (fee ${agreedFee} + ${rounding} rounding); A's balance is ${sa.localMsat} msat, capacity ${a.fundingSat} sat`);
  }
  if (tx.outs.length !== 2) violation(`the closing transaction has ${tx.outs.length} outputs`);
}

/** Whether some subset of `items` satisfies `ok` (few items: every subset is tried). */
function someSubset<T>(items: T[], ok: (subset: T[]) => boolean): boolean {
  if (items.length > 16) return true; // too many to try; the counts and the other checks still hold
  for (let mask = 0; mask < 1 << items.length; mask++) {
    if (ok(items.filter((_, i) => (mask >> i) & 1))) return true;
  }
  return false;
}

