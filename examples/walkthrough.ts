/**
 * `npm start`: a walk-through on the in-process simnet. Funds channel outputs and broadcasts every
 * transaction type of both channel kinds, printing what the chain accepted and rejected, and why.
 * (The pay-per-gigabyte demo over MQTT replaces this once the one-way channel protocol exists.)
 */
import { asExpected, runWalkthrough } from './scenarios.js';

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
process.exitCode = surprises === 0 ? 0 : 1;
