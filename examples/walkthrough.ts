/**
 * `npm start`: a walk-through on embedded defaults. First the messaging layer: an in-process
 * MQTT broker, a signed service announcement, and encrypted messages over a BOLT 8 session.
 * Then the in-process simnet: every transaction type of both channel kinds, printing what the
 * chain accepted and rejected, and why. (The pay-per-gigabyte demo over MQTT replaces the
 * second half once the one-way channel protocol exists.)
 */
import { runMessaging } from './messaging.js';
import { asExpected, runWalkthrough } from './scenarios.js';

console.log('== messaging over MQTT');
const messaging = await runMessaging();
for (const line of messaging.lines) console.log(`   ${messaging.ok ? '✓' : '✗'} ${line}`);

const steps = await runWalkthrough();
let scenario = '';
let surprises = 0;
for (const step of steps) {
  if (step.scenario !== scenario) {
    scenario = step.scenario;
    console.log(`\n== ${scenario}`);
  }
  if (!step.result) {
    console.log(`   · ${step.step}${step.note ? `: ${step.note}` : ''}`);
    continue;
  }
  const verdict = step.result.accepted ? 'ACCEPTED' : `REJECTED  ${step.result.reason}`;
  const ok = asExpected(step);
  if (!ok) surprises++;
  console.log(`   ${ok ? '✓' : '✗'} ${step.step}\n       ${verdict}  [${step.result.txid.slice(0, 16)}…]`);
}
console.log(`\n${steps.filter((s) => s.result).length} broadcasts, ${surprises === 0 ? 'every outcome as expected' : `${surprises} UNEXPECTED outcome(s)`}.`);
process.exitCode = surprises === 0 && messaging.ok ? 0 : 1;
