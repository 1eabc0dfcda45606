/**
 * Penalty (justice) transaction: once a peer has revealed the per-commitment secret of a state and then
 * broadcasts it, every output that would have been theirs — to_local, offered and received HTLC outputs,
 * and outputs of their HTLC-timeout/success transactions — is swept at once with revocationprivkey
 * (BOLT 3 §Revoked commitment / §13 of bolt3-facts). No delay applies to the revocation branches.
 */
import type { OutPoint } from '../../chain/port.js';
import type { KeyLocator, SignContext, Signer } from '../../signer/port.js';
import { TxBuildError } from '../../errors.js';
import { DUMMY_SIGNATURE, signInput } from '../tx.js';
import { equalBytes } from '../../bytes.js';
import { deriveRevocationPublicKey, perCommitmentPoint } from './keys.js';
import { buildSweepTransaction, type SweepTransaction } from './sweep.js';
import { htlcRevocationWitness, toLocalRevocationWitness } from './witnesses.js';

export type RevokedOutputKind = 'to_local' | 'offered_htlc' | 'received_htlc' | 'htlc_tx_output';

export interface RevokedOutput {
  kind: RevokedOutputKind;
  outpoint: OutPoint;
  valueSat: bigint;
  witnessScript: Uint8Array;
}

export interface PenaltyTransaction extends SweepTransaction {
  outputs: RevokedOutput[];
  revocationPubkey: Uint8Array;
}

function isHtlcOutput(kind: RevokedOutputKind): boolean {
  return kind === 'offered_htlc' || kind === 'received_htlc';
}

/** Build the penalty sweeping `outputs` (all revoked under the same revocationpubkey) to `destinationScript`. */
export function buildPenaltyTransaction(
  outputs: RevokedOutput[],
  revocationPubkey: Uint8Array,
  destinationScript: Uint8Array,
  feeratePerKw: bigint,
): PenaltyTransaction {
  if (outputs.length === 0) throw new TxBuildError('BAD_PARAMETER', 'outputs', 'no revoked output to sweep');
  const sweep = buildSweepTransaction(
    outputs.map((o) => ({
      outpoint: o.outpoint,
      valueSat: o.valueSat,
      // Revocation branches carry no CSV/CLTV: final sequence, valid immediately.
      sequence: 0xffffffff,
      witnessPlaceholder: isHtlcOutput(o.kind)
        ? htlcRevocationWitness(DUMMY_SIGNATURE, revocationPubkey, o.witnessScript)
        : toLocalRevocationWitness(DUMMY_SIGNATURE, o.witnessScript),
    })),
    destinationScript,
    feeratePerKw,
  );
  return { ...sweep, outputs, revocationPubkey };
}

/**
 * Sign every input with revocationprivkey, derived inside the signer from our revocation basepoint
 * secret and the per-commitment secret the peer revealed, and set the witnesses.
 */
export async function signPenaltyTransaction(
  signer: Signer,
  revocationBasepointKey: KeyLocator,
  revealedPerCommitmentSecret: Uint8Array,
  penalty: PenaltyTransaction,
  context?: SignContext,
): Promise<void> {
  // A wrong secret would yield a penalty that only fails at broadcast, possibly after the delay ran out.
  const revocationBasepoint = await signer.getPublicKey(revocationBasepointKey);
  const expected = deriveRevocationPublicKey(revocationBasepoint, perCommitmentPoint(revealedPerCommitmentSecret));
  if (!equalBytes(expected, penalty.revocationPubkey)) {
    throw new TxBuildError(
      'KEY_MISMATCH',
      'revealedPerCommitmentSecret',
      'with this revocation basepoint it does not produce the revocation key of the outputs',
    );
  }
  for (const [i, o] of penalty.outputs.entries()) {
    const sig = await signInput(signer, penalty.tx, {
      key: revocationBasepointKey,
      tweak: { kind: 'revocation', perCommitmentSecret: revealedPerCommitmentSecret },
      ...(context ? { context } : {}),
      inputIndex: i,
      scriptCode: o.witnessScript,
      valueSat: o.valueSat,
    });
    penalty.tx.setWitness(
      i,
      isHtlcOutput(o.kind)
        ? htlcRevocationWitness(sig, penalty.revocationPubkey, o.witnessScript)
        : toLocalRevocationWitness(sig, o.witnessScript),
    );
  }
}
