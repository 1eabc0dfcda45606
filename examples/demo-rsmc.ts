/**
 * The demo's revocable-channel scenarios (`npm start -- --scenario rsmc|breach`): two `trickle peer`
 * processes, A and B, on the demo's broker and chain, driven by `trickle rsmc` commands exactly as a
 * user would type them (each a process of its own, talking to its peer through the peer's control
 * socket).
 *
 *  - rsmc: A opens a channel of 200,000 sat of its own and asks B to add 100,000 (dual funding); A pays
 *    B 10 × 2,000 sat, B pays A 5 × 1,500 sat; A closes cooperatively. One funding and one closing
 *    transaction; B gets its balance exactly, A its balance less the closing fee (the opener pays it).
 *  - breach: the same channel; A pays B 10 × 2,000 sat (B: 120,000). B keeps its current commitment,
 *    pays A 3 × 30,000 sat — which revokes it — and broadcasts it (`trickle rsmc pay --breach`, a
 *    demo-only flag). A's watcher sees the revoked commitment in the mempool and spends B's to_local
 *    with the revocation key at once; A also sweeps its own to_remote. B gets nothing.
 *
 * Both peers impose a to_self_delay of 12 blocks and need 1 confirmation. A answers a breach at its
 * first sighting (in the mempool), long before B could sweep its to_local: 12 blocks later.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hexToBytes } from '../src/bytes.js';
import { startEmbeddedBroker } from '../src/transport/mqtt/broker.js';
import { child, exited, feeOf, lines, startDemoChain, startDemoKey, type DemoChainOptions, type DemoSigner, type Summary } from './demo-support.js';

const LOCAL_SAT = 200_000n;
const REMOTE_SAT = 100_000n;
const WALLET_SAT = 1_000_000n;
const TO_SELF_DELAY = '12';
const WAIT_MS = 90_000;

type Event = Record<string, unknown>;

/** A long-running `trickle peer` and the JSON lines it printed so far. */
interface Peer {
  name: 'A' | 'B';
  dataDir: string;
  proc: ChildProcess;
  events: Event[];
  waitFor(predicate: (e: Event) => boolean, what: string): Promise<Event>;
}

function startPeer(name: 'A' | 'B', dataDir: string, args: string[]): Peer {
  const proc = child(['peer', '--data-dir', dataDir, ...args]);
  const events: Event[] = [];
  const waiters = new Set<() => void>();
  lines(proc, (e) => {
    events.push(e);
    for (const w of [...waiters]) w();
  });
  proc.once('exit', () => {
    for (const w of [...waiters]) w();
  });
  return {
    name,
    dataDir,
    proc,
    events,
    waitFor(predicate, what) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`peer ${name}: timed out waiting for ${what}`));
        }, WAIT_MS);
        const check = (): void => {
          const found = events.find(predicate);
          if (found || proc.exitCode !== null || proc.signalCode !== null) {
            clearTimeout(timer);
            waiters.delete(check);
            if (found) resolve(found);
            else reject(new Error(`peer ${name} exited (${proc.exitCode ?? proc.signalCode}) before ${what}`));
          }
        };
        waiters.add(check);
        check();
      });
    },
  };
}

/** Run a one-shot `trickle` command to completion; its JSON lines, or an error with its error line. */
async function trickle(args: string[]): Promise<Event[]> {
  const proc = child([...args, '--json']);
  const events: Event[] = [];
  lines(proc, (e) => events.push(e));
  const code = await new Promise<number | null>((resolve) => proc.once('close', (c) => resolve(c)));
  if (code !== 0) {
    const error = events.find((e) => e['event'] === 'error');
    throw new Error(`trickle ${args.slice(0, 2).join(' ')} exited with ${code}${error ? `: ${String(error['code'])}: ${String(error['message'])}` : ''}`);
  }
  return events;
}

function last(events: Event[], name: string): Event {
  const found = events.filter((e) => e['event'] === name).pop();
  if (!found) throw new Error(`no "${name}" line`);
  return found;
}

const sat = (value: unknown): string => BigInt(String(value)).toLocaleString('en-US');

export async function runRsmcDemo(options: { scenario: 'rsmc' | 'breach'; quiet: boolean; signer?: DemoSigner; chain?: DemoChainOptions }): Promise<Summary> {
  const started = performance.now();
  const say = (text: string): void => {
    if (!options.quiet) process.stderr.write(`${text}\n`);
  };
  const breach = options.scenario === 'breach';
  const work = await mkdtemp(join(tmpdir(), 'trickle-demo-'));
  const broker = await startEmbeddedBroker();
  say(`broker ${broker.url}`);
  const chain = await startDemoChain(options.chain ?? { kind: 'simnet' }, say);
  const peers: Peer[] = [];
  // With --signer emulator, A (the opener, who pays first) signs on the Trickle key's emulator.
  const key = options.signer === 'emulator' ? await startDemoKey(work, say) : undefined;
  try {
    // Two nodes, each with a funded wallet.
    const ids: Record<'A' | 'B', { dir: string; nodeId: string; birthFlags: string[] }> = {} as never;
    for (const name of ['A', 'B'] as const) {
      const dir = join(work, name.toLowerCase());
      const init = last(await trickle(['init', '--data-dir', dir]), 'init');
      const birthFlags = await chain.deviceFlags();
      await chain.fund(hexToBytes(String(init['walletScript'])), WALLET_SAT);
      ids[name] = { dir, nodeId: String(init['nodeId']), birthFlags };
    }
    say(`A ${ids.A.nodeId.slice(0, 16)}… and B ${ids.B.nodeId.slice(0, 16)}… funded on ${chain.label}`);

    const common = ['--broker', broker.url, ...chain.flags, '--to-self-delay', TO_SELF_DELAY, '--min-depth', '1', '--close-depth', '1',
      '--max-contribution-sat', REMOTE_SAT.toString(), '--json'];
    for (const name of ['A', 'B'] as const) peers.push(startPeer(name, ids[name].dir, [...ids[name].birthFlags, ...(name === 'A' ? key?.flags ?? [] : []), ...common]));
    const [a, b] = peers as [Peer, Peer];
    await Promise.all(peers.map((p) => p.waitFor((e) => e['event'] === 'ready', 'ready')));
    say(`$ trickle peer --data-dir a …   and   $ trickle peer --data-dir b …   (each adds up to ${sat(REMOTE_SAT)} sat to a channel it is asked to fund)`);

    say(`$ trickle rsmc open --data-dir a --peer ${ids.B.nodeId.slice(0, 16)}… --local-sat ${LOCAL_SAT} --remote-sat ${REMOTE_SAT}`);
    const opened = last(await trickle(['rsmc', 'open', '--data-dir', a.dataDir, '--peer', ids.B.nodeId,
      '--local-sat', LOCAL_SAT.toString(), '--remote-sat', REMOTE_SAT.toString()]), 'opened');
    const channelId = String(opened['channelId']);
    const fundingTxid = String(opened['fundingTxid']);
    say(`  channel ${channelId.slice(0, 16)}… open: ${sat(opened['capacitySat'])} sat (A ${sat(opened['localFundingSat'])}, B ${sat(opened['remoteFundingSat'])}), funding ${fundingTxid.slice(0, 16)}…`);

    const pays: Event[] = [];
    const pay = async (from: Peer, amountMsat: bigint, payments: number, extra: string[] = []): Promise<Event[]> => {
      say(`$ trickle rsmc pay --data-dir ${from.name.toLowerCase()} --amount-msat ${amountMsat} --payments ${payments}${extra.length ? ` ${extra.join(' ')}` : ''}`);
      const events = await trickle(['rsmc', 'pay', '--data-dir', from.dataDir, '--amount-msat', amountMsat.toString(), '--payments', String(payments), ...extra]);
      const summary = last(events, 'summary');
      pays.push(summary);
      const balances = summary['balances'] as Record<string, string>;
      say(`  ${from.name} paid ${payments} × ${sat(amountMsat / 1000n)} sat; ${from.name} now holds ${sat(BigInt(balances['localMsat']!) / 1000n)} sat, ` +
        `${from === a ? 'B' : 'A'} ${sat(BigInt(balances['remoteMsat']!) / 1000n)} sat`);
      return events;
    };

    await pay(a, 2_000_000n, 10);
    if (!breach) {
      await pay(b, 1_500_000n, 5);
      say('$ trickle rsmc close --data-dir a');
      const closed = last(await trickle(['rsmc', 'close', '--data-dir', a.dataDir]), 'closed');
      say(`  cooperative close ${String((closed['outcome'] as Event)['closingTxid']).slice(0, 16)}…`);
    } else {
      say('B now cheats: it keeps its commitment (120,000 sat of its own), pays A 90,000 sat, then broadcasts the old state');
      const events = await pay(b, 30_000_000n, 3, ['--breach']);
      say(`  B broadcast the revoked commitment ${String(last(events, 'breach-broadcast')['txid']).slice(0, 16)}…`);
    }
    const closedA = await a.waitFor((e) => e['event'] === 'closed' && e['channelId'] === channelId, 'the close');
    const closedB = await b.waitFor((e) => e['event'] === 'closed' && e['channelId'] === channelId, 'the close');
    const outcomeA = closedA['outcome'] as Event;
    const outcomeB = closedB['outcome'] as Event;
    if (breach) say(`  A's watcher: ${String(outcomeA['kind'])}; A received ${sat(outcomeA['localReceivedSat'])} sat, B ${sat(outcomeB['localReceivedSat'])} sat`);
    else say(`  A received ${sat(outcomeA['localReceivedSat'])} sat, B ${sat(outcomeB['localReceivedSat'])} sat on chain`);

    // What the chain says: every transaction of the channel, confirmed, and the fees they paid.
    const resolutionTxids = [closedA, closedB].flatMap((c) => (c['resolutions'] as Event[]).map((r) => String(r['txid'])));
    const txids = [...new Set([fundingTxid, String(outcomeA['closingTxid']), ...resolutionTxids])];
    const confirmed: string[] = [];
    let feesSat = 0n;
    for (const txid of txids) {
      const status = await chain.reader.getTransaction(txid);
      if (!status || status.blockHeight === undefined) continue;
      confirmed.push(txid);
      feesSat += await feeOf(chain.reader, status.tx);
    }
    const payments = pays.reduce((n, p) => n + Number(p['payments']), 0);
    const wireBytes = pays.reduce((n, p) => n + Number(p['wireBytes']), 0);
    const summary: Summary = {
      scenario: options.scenario,
      chain: chain.label,
      outcome: outcomeA['kind'] as Summary['outcome'],
      onchainTxs: confirmed.length,
      txids: confirmed,
      payments,
      paidMsat: pays.reduce((n, p) => n + BigInt(String(p['paidMsat'])), 0n).toString(),
      payeeReceivedSat: null,
      feesSat: feesSat.toString(),
      wireBytesPerPayment: payments > 0 ? Math.round(wireBytes / payments) : 0,
      durationMs: Math.round(performance.now() - started),
      units: null,
      unit: null,
      providerServedUnits: null,
      providerPaidUnits: null,
      providerId: ids.B.nodeId,
      deviceId: ids.A.nodeId,
      capacitySat: String(opened['capacitySat']),
      fundingSat: { a: String(opened['localFundingSat']), b: String(opened['remoteFundingSat']) },
      updates: Number(closedA['updatesSent']) + Number(closedA['updatesReceived']),
      updatesSent: { a: Number(closedA['updatesSent']), b: Number(closedA['updatesReceived']) },
      finalBalancesSat: { a: String(outcomeA['localReceivedSat']), b: String(outcomeB['localReceivedSat']) },
      ...(breach && { cheaterReceivedSat: String(outcomeB['localReceivedSat']) }),
      signer: options.signer ?? 'software',
      ...(key && { keySerial: key.serial, keyRefusals: key.refusals() }),
    };
    return summary;
  } finally {
    for (const p of peers) {
      if (p.proc.exitCode === null && p.proc.signalCode === null) {
        p.proc.kill('SIGTERM');
        await exited(p.proc);
      }
    }
    await key?.close();
    await chain.close();
    await broker.close();
    await rm(work, { recursive: true, force: true });
  }
}

export function printRsmcSummary(s: Summary): void {
  const f = s.finalBalancesSat!;
  const fundingFee = BigInt(s.capacitySat!) - BigInt(f.a) - BigInt(f.b);
  process.stdout.write(`
Summary (${s.scenario}, ${s.chain})
  outcome               ${s.outcome}${s.scenario === 'breach' ? ' — B broadcast a revoked state; A\'s watcher took B\'s share' : ''}
  channel               ${sat(s.capacitySat)} sat, dual-funded: A ${sat(s.fundingSat!.a)}, B ${sat(s.fundingSat!.b)}
  off-chain payments    ${s.payments} (A → B ${s.updatesSent!.a}, B → A ${s.updatesSent!.b}), ${sat(BigInt(s.paidMsat) / 1000n)} sat in all
  final balances        A ${sat(f.a)} sat, B ${sat(f.b)} sat on chain (together ${sat(fundingFee)} sat less than the capacity: fees)
${s.cheaterReceivedSat !== undefined ? `  the cheater (B) got   ${sat(s.cheaterReceivedSat)} sat\n` : ''}  on-chain transactions ${s.onchainTxs}  (${s.txids.map((t) => t.slice(0, 16) + '…').join(', ')})
  fees                  ${sat(s.feesSat)} sat (funding + ${s.scenario === 'breach' ? 'revoked commitment + penalty + sweep' : 'closing'})
  wire bytes / payment  ${s.wireBytesPerPayment}
  duration              ${(s.durationMs / 1000).toFixed(1)} s
`);
}
