/**
 * RsmcNode's open timeout: a peer that vanishes in the middle of an open no longer holds our coins for
 * ever. After openTimeoutMs an open that can still be abandoned (nothing of ours can reach the chain) is
 * aborted with TIMEOUT, its coins released and the peer told; the machine test checks every step of the
 * open, these check the node's timer on real nodes (in-memory broker, Simnet), opener and accepter. The
 * timing node runs on a ManualClock, so the test moves time and nothing depends on the machine's speed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../src/clock.js';
import { RsmcError } from '../src/channel/rsmc/errors.js';
import type { RsmcChannel } from '../src/channel/rsmc/channel.js';
import { until } from './helpers/session-nodes.js';
import { memoryNet, settle, startRsmcPair, type RsmcParty } from './helpers/rsmc-parties.js';

const OPEN_TIMEOUT_MS = 60_000;

async function lockedSat(party: RsmcParty): Promise<bigint> {
  return (await party.wallet.balance()).lockedSat;
}

function onlyChannel(party: RsmcParty): RsmcChannel | undefined {
  return party.node.channels()[0];
}

test('an opener whose peer vanished after accept_channel abandons the open after openTimeoutMs, counted from its restart, and releases its coins', async () => {
  const clock = new ManualClock();
  const pair = await startRsmcPair({ net: memoryNet(), nodeA: { clock, openTimeoutMs: OPEN_TIMEOUT_MS } });
  pair.b.process.killAfterSend('accept_channel');
  const opening = pair.a.node.openRsmc(pair.b.nodeId, { localSat: 200_000n });
  const outcome = opening.then(() => 'opened', (error: unknown) => error);
  await pair.b.process.killed;

  // A goes on alone: its coins are chosen and reserved, funding_created goes out, nobody answers.
  await until(() => onlyChannel(pair.a)?.phase === 'funding_signed', 'A sent funding_created');
  assert.ok((await lockedSat(pair.a)) > 0n, 'A reserved its funding coins');
  clock.advance(OPEN_TIMEOUT_MS / 2);

  // A restarts meanwhile (a disconnect does not end an open past funding_created): the stored open is
  // timed again from the restart, its coins reserved again.
  await pair.a.restart();
  const error = await outcome;
  assert.ok(error instanceof RsmcError, String(error));
  assert.equal(error.code, 'STOPPED', 'the open() of the first process ends with it');
  assert.equal(onlyChannel(pair.a)?.phase, 'funding_signed');
  assert.ok((await lockedSat(pair.a)) > 0n);
  const waiting = onlyChannel(pair.a)!.waitUntilOpen().then(() => 'opened', (e: unknown) => e);
  clock.advance(OPEN_TIMEOUT_MS - 1);
  await settle(50);
  assert.equal(onlyChannel(pair.a)?.phase, 'funding_signed', 'timed from the restart, not before the timeout');

  clock.advance(1);
  const timedOut = await waiting;
  assert.ok(timedOut instanceof RsmcError, String(timedOut));
  assert.equal(timedOut.code, 'TIMEOUT');
  const channel = onlyChannel(pair.a)!;
  assert.equal(channel.phase, 'aborted');
  assert.equal((await pair.a.stored(channel)).phase, 'aborted', 'the abandonment is durable');
  assert.equal(await lockedSat(pair.a), 0n, 'the coins are free again');
  assert.equal(pair.a.chain.broadcasts.length, 0, 'nothing reached the chain');
  assert.ok(pair.a.eventsOf('failed').some((e) => e.code === 'TIMEOUT'));

  await pair.stop();
});

test('a dual-funding accepter whose opener vanished abandons the open after openTimeoutMs and releases the coins it contributed', async () => {
  const clock = new ManualClock();
  const pair = await startRsmcPair({ net: memoryNet(), nodeB: { clock, openTimeoutMs: OPEN_TIMEOUT_MS } });
  pair.a.process.killAfterSend('funding_contribution');
  void pair.a.node.openRsmc(pair.b.nodeId, { localSat: 200_000n, remoteSat: 100_000n }).catch(() => undefined);
  await pair.a.process.killed;

  await until(() => (onlyChannel(pair.b)?.snapshot().localInputs.length ?? 0) > 0, 'B contributed its coins');
  assert.ok((await lockedSat(pair.b)) > 0n, 'B reserved its contribution');
  clock.advance(OPEN_TIMEOUT_MS);
  await until(() => onlyChannel(pair.b)?.phase === 'aborted', 'B abandoned the open');
  const channel = onlyChannel(pair.b)!;
  assert.equal(channel.failure?.code, 'TIMEOUT');
  assert.equal((await pair.b.stored(channel)).phase, 'aborted');
  assert.equal(await lockedSat(pair.b), 0n, 'the contribution is free again');
  assert.equal(pair.b.chain.broadcasts.length, 0);
  await pair.stop();
});

test('a completed open leaves no open timer behind: the channel stays open and pays long after openTimeoutMs', async () => {
  const clockA = new ManualClock();
  const clockB = new ManualClock();
  const pair = await startRsmcPair({
    net: memoryNet(),
    nodeA: { clock: clockA, openTimeoutMs: OPEN_TIMEOUT_MS },
    nodeB: { clock: clockB, openTimeoutMs: OPEN_TIMEOUT_MS },
  });
  const opening = pair.a.node.openRsmc(pair.b.nodeId, { localSat: 200_000n });
  await until(() => pair.chain.mempool().length > 0, 'the funding broadcast');
  await pair.mine(1);
  const a = await opening;
  assert.equal(clockA.pendingTimers + clockB.pendingTimers, 0, 'no timer left on either node');
  clockA.advance(10 * OPEN_TIMEOUT_MS);
  clockB.advance(10 * OPEN_TIMEOUT_MS);
  await settle(50);
  assert.equal(a.phase, 'open');
  assert.equal(pair.b.channel(a.id).phase, 'open');
  await a.pay(1_000_000n);
  assert.equal(pair.a.eventsOf('failed').length + pair.b.eventsOf('failed').length, 0);
  await pair.stop();
});
