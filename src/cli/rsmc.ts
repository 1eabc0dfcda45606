/**
 * `trickle peer` and `trickle rsmc`: revocable (RSMC, BOLT 2/3) channels from the shell.
 *
 *   trickle peer       --data-dir D --broker U <chain> [--max-contribution-sat N] [--to-self-delay N]
 *   trickle rsmc open  --data-dir D --peer ID --local-sat N [--remote-sat N] [--push-msat N]
 *   trickle rsmc pay   --data-dir D [--channel ID] --amount-msat N [--payments K] [--breach]
 *   trickle rsmc close --data-dir D [--channel ID] [--force]
 *
 * `trickle peer` runs the node and stays up: it accepts channels (adding up to --max-contribution-sat of
 * its own when the opener asks: dual funding), pays and is paid, and watches the chain — a revoked
 * commitment is punished as soon as it is seen. It owns its data directory; `trickle rsmc` asks it to
 * act over a Unix socket in that directory (<data-dir>/rsmc.sock; the directory is 0700, so only its
 * owner connects; ./control.ts) and prints what happens as it happens. This is the lightningd /
 * lightning-cli split: one process holds the channel records and the sessions, so two processes never
 * drive one channel.
 */
import { Transaction } from 'bitcoinjs-lib';
import type { RsmcChannel } from '../channel/rsmc/channel.js';
import { isLive } from '../channel/rsmc/machine.js';
import type { RsmcNode } from '../channel/rsmc/node.js';
import { decodeRecord, RECORD_PREFIX } from '../channel/rsmc/state.js';
import type { RsmcEvent, RsmcOutcome, SpendKind } from '../channel/rsmc/types.js';
import type { Store } from '../store/port.js';
import { isNodeId } from '../transport/port.js';
import { bytesToHex } from '../bytes.js';
import {
  bigintFlag,
  catchUpProgress,
  chainOptions,
  signerOptions,
  emitter,
  frameBytes,
  grouped,
  intFlag,
  logTo,
  positiveIntFlag,
  required,
  UsageError,
  waitForSignal,
  type Emitter,
  type Flags,
} from './common.js';
import { callControl, codeOf, CommandError, listenControl, type Reply } from './control.js';
import { startLocalNode, type LocalNode } from './setup.js';

export const CONTROL_SOCKET = 'rsmc.sock';
/** BOLT 2 recommends at most 2016 blocks (two weeks); our own policy accepts no more. */
const MAX_TO_SELF_DELAY = 2016;

export const RSMC_HELP = `Revocable (RSMC) channels — both sides pay:
  trickle peer       --data-dir DIR --broker URL CHAIN [--max-contribution-sat N] [--to-self-delay N] [--json]
  trickle rsmc open  --data-dir DIR --peer NODE_ID --local-sat N [--remote-sat N] [--push-msat N] [--json]
  trickle rsmc pay   --data-dir DIR [--channel ID] --amount-msat N [--payments K] [--breach] [--json]
  trickle rsmc close --data-dir DIR [--channel ID] [--force] [--json]

  peer runs the node and stays up (until SIGINT/SIGTERM): it accepts channels, pays and is paid, and
  punishes a revoked commitment as soon as it is seen. rsmc asks the peer running on the same --data-dir
  to act (through DIR/rsmc.sock) and prints what happens; it needs no broker or chain flags.
Peer options: --max-contribution-sat N  add up to N sat of its own when an opener asks (dual funding;
  default 0); --to-self-delay N  blocks the other side's share waits after it closes unilaterally
  (default 144, at most ${MAX_TO_SELF_DELAY}); --min-depth and --close-depth as below; --pay-timeout-ms (default 60000);
  --open-timeout-ms  abandon an open the other side left unfinished, while that loses nothing (default 600000).
rsmc open: --local-sat N of yours; --remote-sat N asked of the peer (it adds up to its
  --max-contribution-sat); --push-msat N given to the peer at open. Returns once the channel is open.
rsmc pay: --amount-msat N per payment, --payments K (default 1), one after the other, each irrevocably
  in both commitments before the next. --channel ID when the peer has several live channels.
rsmc close: cooperative (shutdown, closing_signed) unless --force broadcasts our commitment (our share
  then waits out the other side's --to-self-delay). Returns with the on-chain outcome.
--breach (DEMO ONLY, simnet or regtest): keep the current signed commitment, make the payments (which
  revoke it), then broadcast it — cheating. The other side's watcher takes the whole channel with a
  penalty. Needs --payments 2 or more: the peer is sure to hold the revocation of a state only once a
  later payment has completed.
`;

type Request =
  | { command: 'open'; peer: string; localSat: string; remoteSat: string; pushMsat: string }
  | { command: 'pay'; channel: string | null; amountMsat: string; payments: number; breach: boolean }
  | { command: 'close'; channel: string | null; force: boolean };

// ---------------------------------------------------------------------------------------------------
// trickle peer

export async function peer(flags: Flags): Promise<number> {
  const out = emitter(flags);
  const dataDir = required(flags, 'data-dir');
  const brokerUrl = required(flags, 'broker');
  const chain = chainOptions(flags);
  const toSelfDelay = flags['to-self-delay'] === undefined ? undefined : intFlag(flags, 'to-self-delay', 0);
  if (toSelfDelay !== undefined && (toSelfDelay < 1 || toSelfDelay > MAX_TO_SELF_DELAY)) {
    throw new UsageError(`--to-self-delay expects 1 to ${MAX_TO_SELF_DELAY} blocks`);
  }
  const maxContributionSat = bigintFlag(flags, 'max-contribution-sat', 0n);
  const payTimeoutMs = flags['pay-timeout-ms'] === undefined ? undefined : intFlag(flags, 'pay-timeout-ms', 0);
  if (payTimeoutMs === 0) throw new UsageError('--pay-timeout-ms must be positive');
  const openTimeoutMs = flags['open-timeout-ms'] === undefined ? undefined : positiveIntFlag(flags, 'open-timeout-ms', 1);

  const control = await listenControl(dataDir, CONTROL_SOCKET);
  let local: LocalNode;
  try {
    local = await startLocalNode({
      dataDir,
      brokerUrl,
      ...chain,
      ...signerOptions(flags),
      rsmc: {
        policy: { maxContributionSat, ...(toSelfDelay !== undefined && { toSelfDelay }) },
        // Registered before stored channels resume, so a close confirmed while we were away is told too.
        node: {
          onEvent: (channel, event) => reportEvent(out, channel, event),
          ...(payTimeoutMs !== undefined && { payTimeoutMs }),
          ...(openTimeoutMs !== undefined && { openTimeoutMs }),
        },
      },
      log: logTo(out),
      onScanProgress: catchUpProgress(out),
    });
  } catch (error) {
    await control.close();
    throw error;
  }
  const node = local.rsmc!;
  control.serve((request, reply) => runCommand(local, node, parseRequest(request), reply));
  const { policy } = node;
  const live = node.channels().filter((c) => isLive(c.snapshot()));
  out.event(
    {
      event: 'ready',
      nodeId: node.nodeId,
      socket: control.path,
      policy: { maxContributionSat: policy.maxContributionSat, toSelfDelay: policy.toSelfDelay, minimumDepth: policy.minimumDepth },
      channels: live.map(channelInfo),
    },
    `peer ${node.nodeId} ready: ${live.length} live channel(s); adds up to ${grouped(policy.maxContributionSat)} sat to a channel; to_self_delay ${policy.toSelfDelay} blocks\n` +
      `control: trickle rsmc open|pay|close --data-dir ${dataDir} …`,
  );
  await waitForSignal();
  await control.close();
  await local.close();
  return 0;
}

/** What the peer does when `trickle rsmc` asks. */
async function runCommand(local: LocalNode, node: RsmcNode, request: Request, reply: Reply): Promise<void> {
  switch (request.command) {
    case 'open': {
      const params = { localSat: BigInt(request.localSat), remoteSat: BigInt(request.remoteSat), pushMsat: BigInt(request.pushMsat) };
      reply.event(
        { event: 'opening', peer: request.peer, ...params },
        `opening a channel to ${short(request.peer)}: ${grouped(params.localSat)} sat of ours` +
          (params.remoteSat > 0n ? `, asking the peer to add up to ${grouped(params.remoteSat)} sat` : ''),
      );
      const channel = await node.openRsmc(request.peer, params);
      const info = channelInfo(channel);
      reply.event({ event: 'opened', ...info }, `channel ${short(channel.id)} open: ${describeFunding(channel)}; funding ${info.fundingTxid}`);
      return;
    }
    case 'pay':
      return pay(local, pickChannel(node, request.channel), request, reply);
    case 'close': {
      const channel = pickChannel(node, request.channel);
      const cooperative = !request.force;
      reply.event(
        { event: 'closing', channelId: channel.id, cooperative },
        cooperative
          ? `closing ${short(channel.id)} cooperatively (shutdown, closing_signed)`
          : `closing ${short(channel.id)} unilaterally: our commitment goes on chain; our share waits out the peer's delay`,
      );
      const outcome = await channel.close({ cooperative });
      reply.event(closedEvent(channel, outcome), closedText(channel, outcome));
      return;
    }
  }
}

async function pay(local: LocalNode, channel: RsmcChannel, request: Extract<Request, { command: 'pay' }>, reply: Reply): Promise<void> {
  const started = performance.now();
  const amountMsat = BigInt(request.amountMsat);
  if (!isLive(channel.snapshot())) throw new CommandError('CHANNEL_CLOSED', `channel ${channel.id} is ${channel.phase}`);
  await channel.waitUntilOpen();
  let staged: Uint8Array | undefined;
  if (request.breach) {
    if (local.chain.network !== 'regtest') {
      throw new CommandError('BREACH_REFUSED', '--breach is for demonstrations on simnet or regtest only: it hands the channel to the peer');
    }
    staged = await channel.signedLocalCommitment();
    const txid = Transaction.fromBuffer(Buffer.from(staged)).getId();
    reply.event(
      { event: 'breach-staged', channelId: channel.id, txid, balances: channel.balances },
      `DEMO: kept our current commitment ${short(txid)} (ours: ${satText(channel.balances!.localMsat)} sat) to broadcast after paying, when it is revoked`,
    );
  }
  const bytesBefore = frameBytes(local);
  for (let i = 1; i <= request.payments; i++) {
    let receipt;
    try {
      receipt = await channel.pay(amountMsat);
    } catch (error) {
      throw new CommandError(codeOf(error) ?? 'PAYMENT_FAILED', `payment ${i} of ${request.payments} failed: ${(error as Error).message}`);
    }
    reply.event({ event: 'payment', channelId: channel.id, number: i, id: receipt.id, amountMsat });
  }
  const balances = channel.balances!;
  const wireBytes = frameBytes(local) - bytesBefore;
  reply.event(
    {
      event: 'summary',
      channelId: channel.id,
      payments: request.payments,
      paidMsat: amountMsat * BigInt(request.payments),
      balances,
      updatesSent: channel.snapshot().sentCount,
      updatesReceived: channel.snapshot().receivedCount,
      wireBytes,
      wireBytesPerPayment: Math.round(wireBytes / request.payments),
      durationMs: Math.round(performance.now() - started),
    },
    `paid ${request.payments} × ${satText(amountMsat)} sat; balances: ours ${satText(balances.localMsat)} sat, the peer's ${satText(balances.remoteMsat)} sat`,
  );
  if (!staged) return;
  const result = await local.chain.chain.broadcast(staged);
  if (!result.accepted) throw new CommandError('BREACH_REJECTED', `the chain refused the revoked commitment: ${result.reason}`);
  reply.event(
    { event: 'breach-broadcast', channelId: channel.id, txid: result.txid },
    `DEMO: broadcast the revoked commitment ${result.txid}; the peer can now take the whole channel`,
  );
  const outcome = await channel.waitForOutcome();
  reply.event(closedEvent(channel, outcome), closedText(channel, outcome));
}

/** The channel named by `id`, else the only live one. */
function pickChannel(node: RsmcNode, id: string | null): RsmcChannel {
  if (id !== null) {
    const channel = node.channel(id);
    if (!channel) throw new CommandError('NO_CHANNEL', `no channel ${id}`);
    return channel;
  }
  let live = node.channels().filter((c) => isLive(c.snapshot()));
  if (live.length === 0) throw new CommandError('NO_CHANNEL', 'no live channel (open one with trickle rsmc open)');
  // An open that never completed (the peer went away) does not make the choice ambiguous.
  if (live.length > 1 && live.filter((c) => c.phase === 'open').length === 1) live = live.filter((c) => c.phase === 'open');
  if (live.length > 1) throw new CommandError('SEVERAL_CHANNELS', `${live.length} live channels: pass --channel ID (${live.map((c) => short(c.id)).join(', ')})`);
  return live[0]!;
}

function reportEvent(out: Emitter, channel: RsmcChannel, event: RsmcEvent): void {
  const base = { channelId: channel.id, role: channel.role };
  const id = short(channel.id);
  switch (event.type) {
    case 'phase':
      if (event.phase === 'open') out.event({ event: 'phase', ...channelInfo(channel) }, `channel ${id} open: ${describeFunding(channel)}`);
      // 'closed' is told by the closed event that follows, with the outcome.
      else out.event({ event: 'phase', ...base, phase: event.phase }, event.phase === 'closed' ? undefined : `channel ${id} ${event.phase}`);
      return;
    case 'payment-sent':
    case 'payment-received': {
      const sent = event.type === 'payment-sent';
      const b = channel.balances;
      out.event({ event: event.type, ...base, id: event.id, amountMsat: event.amountMsat, balances: b },
        `channel ${id}: ${sent ? 'paid' : 'received'} ${satText(event.amountMsat)} sat${b ? ` (ours now ${satText(b.localMsat)} sat)` : ''}`);
      return;
    }
    case 'payment-failed':
      out.event({ event: event.type, ...base, ref: event.ref, code: event.code, message: event.message }, `channel ${id}: a payment failed: ${event.code}`);
      return;
    case 'revoked':
      // One per update: only in JSON mode.
      if (out.json) out.event({ event: 'revoked', ...base, commitmentNumber: event.commitment.number });
      return;
    case 'rejected':
    case 'failed':
      out.event({ event: event.type, ...base, code: event.code, message: event.message }, `channel ${id} ${event.type}: ${event.code}: ${event.message}`);
      return;
    case 'closing':
      out.event({ event: 'closing', ...base, kind: event.kind, txid: event.txid }, `channel ${id}: ${SPEND_TEXT[event.kind]} (${event.txid})`);
      return;
    case 'closed':
      out.event(closedEvent(channel, event.outcome), closedText(channel, event.outcome));
      return;
  }
}

const SPEND_TEXT: Record<SpendKind, string> = {
  cooperative: 'the cooperative closing transaction is out',
  'local-latest': 'our commitment is out; our share waits out the delay',
  'local-revoked': 'a REVOKED commitment of ours is out: the peer can take our share',
  'remote-latest': "the peer's commitment is out; sweeping our share",
  'remote-revoked': 'the peer broadcast a REVOKED commitment: taking all of it with a penalty',
  'remote-unknown': "a commitment of the peer's we cannot place is out; sweeping what pays us",
  unknown: 'the funding output was spent by a transaction we cannot place',
};

function channelInfo(channel: RsmcChannel) {
  const r = channel.snapshot();
  return {
    channelId: channel.id,
    peer: channel.peer,
    role: channel.role,
    phase: channel.phase,
    capacitySat: channel.capacitySat,
    localFundingSat: r.localFundingSat,
    remoteFundingSat: r.remoteFundingSat,
    pushMsat: r.pushMsat,
    fundingTxid: channel.fundingTxid,
    balances: channel.balances ?? null,
    updatesSent: r.sentCount,
    updatesReceived: r.receivedCount,
  };
}

function closedEvent(channel: RsmcChannel, outcome: RsmcOutcome): Record<string, unknown> {
  const r = channel.snapshot();
  return {
    event: 'closed',
    channelId: channel.id,
    role: channel.role,
    outcome,
    updatesSent: r.sentCount,
    updatesReceived: r.receivedCount,
    // What this side put on chain to collect its share (sweeps, a penalty): the fees are theirs.
    resolutions: (r.closing?.resolutions ?? []).map((x) => ({ purpose: x.purpose, txid: x.txid, valueSat: x.valueSat, confirmedHeight: x.confirmedHeight ?? null })),
  };
}

function closedText(channel: RsmcChannel, outcome: RsmcOutcome): string {
  return `channel ${short(channel.id)} closed (${outcome.kind}, ${outcome.closingTxid}): ${grouped(outcome.localReceivedSat)} sat reached our wallet`;
}

function describeFunding(channel: RsmcChannel): string {
  const r = channel.snapshot();
  return `${grouped(channel.capacitySat)} sat (ours ${grouped(r.localFundingSat)}, the peer's ${grouped(r.remoteFundingSat)})`;
}

// ---------------------------------------------------------------------------------------------------
// trickle rsmc

export async function rsmc(subcommand: string | undefined, flags: Flags): Promise<number> {
  if (subcommand !== 'open' && subcommand !== 'pay' && subcommand !== 'close') {
    throw new UsageError(subcommand ? `unknown command "rsmc ${subcommand}"` : 'trickle rsmc needs a command: open, pay or close');
  }
  const out = emitter(flags);
  const dataDir = required(flags, 'data-dir');
  const onlyWith: Record<string, string> = {
    peer: 'open', 'local-sat': 'open', 'remote-sat': 'open', 'push-msat': 'open',
    'amount-msat': 'pay', payments: 'pay', breach: 'pay', force: 'close',
  };
  for (const [flag, command] of Object.entries(onlyWith)) {
    if (flags[flag] !== undefined && subcommand !== command) throw new UsageError(`--${flag} goes with trickle rsmc ${command}`);
  }
  const channel = typeof flags['channel'] === 'string' ? flags['channel'] : null;
  let request: Request;
  switch (subcommand) {
    case 'open': {
      const peerId = required(flags, 'peer');
      if (!isNodeId(peerId)) throw new UsageError('--peer expects a node id (66 hex characters)');
      const localSat = bigintFlag(flags, 'local-sat', 0n);
      if (localSat === 0n) throw new UsageError('--local-sat N is required: the sat of yours the channel starts with');
      if (channel !== null) throw new UsageError('--channel does not go with trickle rsmc open');
      request = {
        command: 'open',
        peer: peerId,
        localSat: localSat.toString(),
        remoteSat: bigintFlag(flags, 'remote-sat', 0n).toString(),
        pushMsat: bigintFlag(flags, 'push-msat', 0n).toString(),
      };
      break;
    }
    case 'pay': {
      const amountMsat = bigintFlag(flags, 'amount-msat', 0n);
      if (amountMsat === 0n) throw new UsageError('--amount-msat N is required (positive)');
      const payments = intFlag(flags, 'payments', 1);
      if (payments < 1) throw new UsageError('--payments must be at least 1');
      const breach = flags['breach'] === true;
      if (breach && payments < 2) throw new UsageError('--breach needs --payments 2 or more (see trickle --help)');
      request = { command: 'pay', channel, amountMsat: amountMsat.toString(), payments, breach };
      break;
    }
    case 'close':
      request = { command: 'close', channel, force: flags['force'] === true };
      break;
  }
  await callControl(dataDir, CONTROL_SOCKET, request, out);
  return 0;
}

/** A request from the control socket, checked field by field. */
function parseRequest(value: unknown): Request {
  const bad = (what: string): never => {
    throw new CommandError('BAD_REQUEST', `bad request: ${what}`);
  };
  if (typeof value !== 'object' || value === null) return bad('not an object');
  const v = value as Record<string, unknown>;
  const amount = (name: string, positive: boolean): string => {
    const x = v[name];
    if (typeof x !== 'string' || !/^\d{1,20}$/.test(x) || (positive && BigInt(x) === 0n)) return bad(`"${name}" expected a ${positive ? 'positive' : 'non-negative'} integer string`);
    return x;
  };
  const channel = v['channel'] ?? null;
  if (channel !== null && typeof channel !== 'string') return bad('"channel" expected a string');
  switch (v['command']) {
    case 'open':
      if (!isNodeId(v['peer'])) return bad('"peer" expected a node id');
      return { command: 'open', peer: v['peer'], localSat: amount('localSat', true), remoteSat: amount('remoteSat', false), pushMsat: amount('pushMsat', false) };
    case 'pay': {
      const payments = v['payments'];
      if (typeof payments !== 'number' || !Number.isSafeInteger(payments) || payments < 1) return bad('"payments" expected a positive integer');
      if (typeof v['breach'] !== 'boolean') return bad('"breach" expected a boolean');
      return { command: 'pay', channel, amountMsat: amount('amountMsat', true), payments, breach: v['breach'] };
    }
    case 'close':
      if (typeof v['force'] !== 'boolean') return bad('"force" expected a boolean');
      return { command: 'close', channel, force: v['force'] };
    default:
      return bad('"command" expected open, pay or close');
  }
}

// ---------------------------------------------------------------------------------------------------
// trickle status

/** The stored revocable channels, for `trickle status` (read from the store; no peer needed). */
export async function rsmcStatusRows(store: Store): Promise<Array<Record<string, unknown>>> {
  const rows: Array<Record<string, unknown>> = [];
  for (const entry of await store.list(RECORD_PREFIX)) {
    try {
      const r = decodeRecord(entry.value);
      rows.push({
        kind: 'rsmc',
        channelId: bytesToHex(r.channelId ?? r.tempChannelId),
        role: r.role,
        phase: r.phase,
        peer: r.peer,
        capacitySat: r.fundingSat,
        localFundingSat: r.localFundingSat,
        remoteFundingSat: r.remoteFundingSat,
        balances: r.localCommit?.spec,
        updatesSent: r.sentCount,
        updatesReceived: r.receivedCount,
        fundingTxid: r.fundingOutpoint?.txid,
        outcome: r.outcome,
        failure: r.failure,
      });
    } catch (error) {
      rows.push({ kind: 'rsmc', key: entry.key, error: (error as Error).message });
    }
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------------

function short(id: string): string {
  return `${id.slice(0, 16)}…`;
}

/** msat as sat, with up to three decimals. */
function satText(msat: bigint): string {
  const whole = grouped(msat / 1000n);
  const rest = msat % 1000n;
  return rest === 0n ? whole : `${whole}.${rest.toString().padStart(3, '0').replace(/0+$/, '')}`;
}
