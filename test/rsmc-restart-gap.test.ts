/**
 * A restarted RSMC node whose peer's session comes up before the channel runtime listens (found by the
 * issue 8 bench): the peer's channel_reestablish reached no one, the node never sent its own, and every
 * pay() timed out. Holding the messenger's inbound frames until the runtime has started (what
 * startLocalNode does) makes the session, and the reestablish, wait for it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { memoryNet, openChannel, startRsmcPair, untilQuiescent } from './helpers/rsmc-parties.js';

test('restart with a gap before the node starts: with inbound held, both sides reestablish and pay', async () => {
  const pair = await startRsmcPair({ net: memoryNet(), nodeA: { payTimeoutMs: 5_000 }, nodeB: { payTimeoutMs: 5_000 } });
  const { a } = await openChannel(pair, { localSat: 200_000n, remoteSat: 100_000n });
  for (let i = 0; i < 5; i++) await a.pay(1_000n);
  await pair.stop();
  await pair.b.start({ holdInbound: true, gapMs: 50 }); // B's messenger is up first and A connects to it
  const nodeA = await pair.a.start({ holdInbound: true, gapMs: 50 });
  const a2 = nodeA.channel(a.id)!;
  await a2.pay(2_000n);
  await pair.b.channel(a.id).pay(500n);
  await untilQuiescent(a2, pair.b.channel(a.id));
  assert.equal(a2.snapshot().localCommit?.spec.remoteMsat, pair.b.channel(a.id).snapshot().localCommit?.spec.localMsat);
  await pair.stop();
});
