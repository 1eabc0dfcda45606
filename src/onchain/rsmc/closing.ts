/**
 * Cooperative closing transaction (BOLT 3 §Closing Transaction, closing_signed flavour): version 2,
 * locktime 0, the funding input with a final sequence, one output per side to its shutdown script,
 * amounts floored to sat, the fee taken from the opener, outputs below the dust limit dropped, and the
 * outputs sorted (BIP 69). No delay: both parties sign it.
 */
import { Transaction } from 'bitcoinjs-lib';
import { msat, msatToSatFloor, sat } from '../../amounts.js';
import { TxBuildError } from '../../errors.js';
import type { OutPoint } from '../../chain/port.js';
import { assertOutPoint, compareOutputs, txidToHash, weightWithWitnesses } from '../tx.js';
import { fundingScript, fundingWitnessPlaceholder } from '../funding.js';

export interface ClosingParams {
  fundingOutpoint: OutPoint;
  fundingValueSat: bigint;
  localFundingPubkey: Uint8Array;
  remoteFundingPubkey: Uint8Array;
  localScript: Uint8Array;
  remoteScript: Uint8Array;
  toLocalMsat: bigint;
  toRemoteMsat: bigint;
  /** The negotiated fee (closing_signed fee_satoshis), paid by the opener. */
  feeSat: bigint;
  localIsOpener: boolean;
  dustLimitSat: bigint;
}

export interface ClosingTransaction {
  tx: Transaction;
  toLocalSat: bigint;
  toRemoteSat: bigint;
  /** Actual fee: negotiated fee + msat remainders + any output dropped as dust. */
  actualFeeSat: bigint;
  fundingScript: Uint8Array;
}

export function buildClosingTransaction(p: ClosingParams): ClosingTransaction {
  assertOutPoint(p.fundingOutpoint, 'fundingOutpoint');
  sat(p.fundingValueSat, 'fundingValueSat');
  sat(p.feeSat, 'feeSat');
  sat(p.dustLimitSat, 'dustLimitSat');
  if (msat(p.toLocalMsat, 'toLocalMsat') + msat(p.toRemoteMsat, 'toRemoteMsat') !== p.fundingValueSat * 1000n) {
    throw new TxBuildError('BAD_PARAMETER', 'toLocalMsat', 'balances must add up to the funding value');
  }
  let toLocalSat = msatToSatFloor(p.toLocalMsat);
  let toRemoteSat = msatToSatFloor(p.toRemoteMsat);
  const openerSat = p.localIsOpener ? toLocalSat : toRemoteSat;
  if (openerSat < p.feeSat) throw new TxBuildError('FEE_EXCEEDS_VALUE', 'feeSat', 'opener balance does not cover the fee');
  if (p.localIsOpener) toLocalSat -= p.feeSat;
  else toRemoteSat -= p.feeSat;
  const outputs = [
    { valueSat: toLocalSat, script: p.localScript, side: 'local' as const },
    { valueSat: toRemoteSat, script: p.remoteScript, side: 'remote' as const },
  ].filter((o) => o.valueSat >= p.dustLimitSat && o.valueSat > 0n);
  if (outputs.length === 0) throw new TxBuildError('DUST_OUTPUT', 'toLocalMsat', 'closing would have no output');
  outputs.sort(compareOutputs);

  const tx = new Transaction();
  tx.version = 2;
  tx.locktime = 0;
  tx.addInput(txidToHash(p.fundingOutpoint.txid), p.fundingOutpoint.vout, 0xffffffff);
  for (const o of outputs) tx.addOutput(o.script, o.valueSat);
  const paid = outputs.reduce((s, o) => s + o.valueSat, 0n);
  return {
    tx,
    toLocalSat: outputs.find((o) => o.side === 'local')?.valueSat ?? 0n,
    toRemoteSat: outputs.find((o) => o.side === 'remote')?.valueSat ?? 0n,
    actualFeeSat: p.fundingValueSat - paid,
    fundingScript: fundingScript(p.localFundingPubkey, p.remoteFundingPubkey),
  };
}

/** Weight of a closing transaction with both outputs, once signed: the basis of fee proposals. */
export function closingWeight(p: Pick<ClosingParams, 'fundingOutpoint' | 'localFundingPubkey' | 'remoteFundingPubkey' | 'localScript' | 'remoteScript'>): number {
  const tx = new Transaction();
  tx.version = 2;
  tx.addInput(txidToHash(p.fundingOutpoint.txid), p.fundingOutpoint.vout, 0xffffffff);
  tx.addOutput(p.localScript, 0n);
  tx.addOutput(p.remoteScript, 0n);
  return weightWithWitnesses(tx, [fundingWitnessPlaceholder(fundingScript(p.localFundingPubkey, p.remoteFundingPubkey))]);
}
