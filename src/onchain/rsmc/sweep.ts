/**
 * Second-stage spends of commitment outputs that pay to one destination: the owner's delayed sweep of
 * to_local (or of an HTLC-timeout/success output) after to_self_delay (BIP 68 / BIP 112), and the
 * generic sweep builder the penalty transaction uses. Fees from weight at feerate_per_kw, measured with
 * worst-case (73-byte) signatures.
 */
import { Transaction } from 'bitcoinjs-lib';
import { feeForWeight, sat } from '../../amounts.js';
import { TxBuildError } from '../../errors.js';
import type { OutPoint } from '../../chain/port.js';
import type { KeyLocator, SignContext, Signer } from '../../signer/port.js';
import { dustThresholdSat } from '../script.js';
import { assertOutPoint, DUMMY_SIGNATURE, signInput, txidToHash, weightWithWitnesses } from '../tx.js';
import { assertToSelfDelay } from './scripts.js';
import { derivePublicKey } from './keys.js';
import { equalBytes } from '../../bytes.js';
import { script as bscript } from 'bitcoinjs-lib';
import { toLocalDelayedWitness } from './witnesses.js';

export interface SweepInput {
  outpoint: OutPoint;
  valueSat: bigint;
  sequence: number;
  /** A witness of worst-case size, to measure weight before signing. */
  witnessPlaceholder: Uint8Array[];
}

export interface SweepTransaction {
  tx: Transaction;
  feeSat: bigint;
  outputValueSat: bigint;
}

/** One transaction spending `inputs` to `destinationScript`, paying feerate_per_kw on its signed weight. */
export function buildSweepTransaction(
  inputs: SweepInput[],
  destinationScript: Uint8Array,
  feeratePerKw: bigint,
  locktime = 0,
): SweepTransaction {
  if (inputs.length === 0) throw new TxBuildError('BAD_PARAMETER', 'inputs', 'nothing to sweep');
  sat(feeratePerKw, 'feeratePerKw');
  const tx = new Transaction();
  tx.version = 2;
  tx.locktime = locktime;
  let totalSat = 0n;
  inputs.forEach((input, i) => {
    assertOutPoint(input.outpoint, `inputs[${i}].outpoint`);
    totalSat += sat(input.valueSat, `inputs[${i}].valueSat`);
    tx.addInput(txidToHash(input.outpoint.txid), input.outpoint.vout, input.sequence);
  });
  tx.addOutput(destinationScript, 0n);
  const feeSat = feeForWeight(feeratePerKw, weightWithWitnesses(tx, inputs.map((i) => i.witnessPlaceholder)));
  const outputValueSat = totalSat - feeSat;
  if (outputValueSat < dustThresholdSat(destinationScript)) {
    throw new TxBuildError('FEE_EXCEEDS_VALUE', 'inputs', `sweep of ${totalSat} sat leaves dust after a ${feeSat} sat fee`);
  }
  tx.outs[0]!.value = outputValueSat;
  return { tx, feeSat, outputValueSat };
}

export interface DelayedOutput {
  outpoint: OutPoint;
  valueSat: bigint;
  /** The to_local-style witness script (to_local, or an HTLC-timeout/success output). */
  witnessScript: Uint8Array;
  toSelfDelay: number;
}

/** The owner's sweep of a delayed output: input nSequence = to_self_delay, so it is valid only after that many blocks. */
export function buildDelayedSweep(
  output: DelayedOutput,
  destinationScript: Uint8Array,
  feeratePerKw: bigint,
): SweepTransaction {
  assertToSelfDelay(output.toSelfDelay);
  return buildSweepTransaction(
    [
      {
        outpoint: output.outpoint,
        valueSat: output.valueSat,
        sequence: output.toSelfDelay,
        witnessPlaceholder: toLocalDelayedWitness(DUMMY_SIGNATURE, output.witnessScript),
      },
    ],
    destinationScript,
    feeratePerKw,
  );
}

/**
 * Sign a delayed sweep with local_delayed_privkey (the delayed payment basepoint secret tweaked by the
 * commitment's per-commitment point) and set its witness.
 */
export async function signDelayedSweep(
  signer: Signer,
  delayedBasepointKey: KeyLocator,
  perCommitmentPoint: Uint8Array,
  sweep: SweepTransaction,
  output: DelayedOutput,
  context?: SignContext,
): Promise<void> {
  // to_local layout (BOLT 3): OP_IF <rev> OP_ELSE <delay> OP_CSV OP_DROP <local_delayedpubkey> OP_ENDIF OP_CHECKSIG.
  const scriptDelayedKey = bscript.decompile(output.witnessScript)?.[6];
  const expected = derivePublicKey(await signer.getPublicKey(delayedBasepointKey), perCommitmentPoint);
  if (!(scriptDelayedKey instanceof Uint8Array) || !equalBytes(scriptDelayedKey, expected)) {
    throw new TxBuildError('KEY_MISMATCH', 'perCommitmentPoint', 'the derived delayed key is not the one in the witness script');
  }
  const sig = await signInput(signer, sweep.tx, {
    key: delayedBasepointKey,
    tweak: { kind: 'perCommitment', perCommitmentPoint },
    ...(context ? { context } : {}),
    inputIndex: 0,
    scriptCode: output.witnessScript,
    valueSat: output.valueSat,
  });
  sweep.tx.setWitness(0, toLocalDelayedWitness(sig, output.witnessScript));
}
