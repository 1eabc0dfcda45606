/** The messaging half of `npm start` (examples/messaging.ts) runs end to end on the embedded broker. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runMessaging } from '../examples/messaging.js';

test('npm start: announcement discovered, 200 messages over a BOLT 8 session on the embedded broker', async () => {
  const report = await runMessaging(200);
  assert.ok(report.ok, report.lines.join('\n'));
  assert.match(report.lines.at(-1)!, /200\/200 encrypted messages delivered once each, in order/);
});
