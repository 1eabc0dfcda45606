/**
 * Funding: the 2-of-2 P2WSH output both channel types stand on (BOLT 3 §Funding Transaction Output),
 * a funding-transaction builder from P2WPKH coins with change, single- or dual-funded, and the 2-of-2
 * witness used by every transaction that spends the funding output.
 */
import { Transaction } from 'bitcoinjs-lib';
import { compareBytes, equalBytes } from '../bytes.js';
import { sat } from '../amounts.js';
import { TxBuildError } from '../errors.js';
import type { OutPoint } from '../chain/port.js';
import type { KeyLocator, Signer } from '../signer/port.js';
import {
  assertPubkey,
  compileScript,
  decodeScriptSignature,
  dustThresholdSat,
  SIGHASH_ALL,
  opcodes,
  p2wpkhScriptCode,
  p2wshOutput,
} from './script.js';
import {
  assertOutPoint,
  compareOutpoints,
  compareOutputs,
  DUMMY_SIGNATURE,
  feeForWeightAtSatPerVb,
  hashToTxid,
  signInput,
  txidToHash,
} from './tx.js';
import { segwitV0Sighash } from './sighash.js';
import { verifyDigest } from '../crypto/secp256k1.js';

/** `2 <pubkey1> <pubkey2> 2 OP_CHECKMULTISIG` with the keys sorted ascending (BOLT 3). */
export function fundingScript(pubkeyA: Uint8Array, pubkeyB: Uint8Array): Uint8Array {
  assertPubkey(pubkeyA, 'pubkeyA');
  assertPubkey(pubkeyB, 'pubkeyB');
  if (equalBytes(pubkeyA, pubkeyB)) throw new TxBuildError('BAD_PUBKEY', 'pubkeyB', 'the two funding keys must differ');
  const [first, second] = sortPubkeys(pubkeyA, pubkeyB);
  return compileScript([opcodes.OP_2, first, second, opcodes.OP_2, opcodes.OP_CHECKMULTISIG]);
}

export function fundingOutputScript(pubkeyA: Uint8Array, pubkeyB: Uint8Array): Uint8Array {
  return p2wshOutput(fundingScript(pubkeyA, pubkeyB));
}

function sortPubkeys(a: Uint8Array, b: Uint8Array): [Uint8Array, Uint8Array] {
  return compareBytes(a, b) < 0 ? [a, b] : [b, a];
}

/**
 * Witness spending the funding output: `0 <sig for pubkey1> <sig for pubkey2> <script>`, signatures in the
 * order of the sorted keys (the leading empty item is CHECKMULTISIG's dummy, NULLDUMMY).
 */
export function fundingWitness(
  pubkeyA: Uint8Array,
  signatureA: Uint8Array,
  pubkeyB: Uint8Array,
  signatureB: Uint8Array,
): Uint8Array[] {
  const script = fundingScript(pubkeyA, pubkeyB);
  const aFirst = compareBytes(pubkeyA, pubkeyB) < 0;
  return aFirst
    ? [new Uint8Array(0), signatureA, signatureB, script]
    : [new Uint8Array(0), signatureB, signatureA, script];
}

/** A witness of worst-case size for weight estimates of spends of `script` (signature order does not matter). */
export function fundingWitnessPlaceholder(script: Uint8Array): Uint8Array[] {
  return [new Uint8Array(0), DUMMY_SIGNATURE, DUMMY_SIGNATURE, script];
}

/** A P2WPKH coin a party funds from. */
export interface WalletCoin {
  outpoint: OutPoint;
  valueSat: bigint;
  pubkey: Uint8Array;
  /** Where the signer finds the key. */
  key: KeyLocator;
}

export interface FundingContribution {
  coins: WalletCoin[];
  /** What this party puts into the channel. */
  amountSat: bigint;
  /** Where this party's change goes; dropped (to fee) when below dust. */
  changeScript: Uint8Array;
}

export interface FundingRequest {
  fundingPubkeys: [Uint8Array, Uint8Array];
  /** One contribution (single-funded) or two (dual-funded); contribution 0 is the opener. */
  contributions: FundingContribution[];
  feerateSatPerVb: bigint;
}

export interface FundingInputInfo {
  /** Index into `contributions`: who owns and signs this input. */
  owner: number;
  coin: WalletCoin;
}

export interface FundingTransaction {
  /** Unsigned: the txid (and so the funding outpoint) is final before anyone signs. */
  tx: Transaction;
  fundingOutpoint: OutPoint;
  fundingValueSat: bigint;
  fundingScript: Uint8Array;
  inputs: FundingInputInfo[];
  /** Fee each contribution pays, in the order of `contributions`. */
  feeSat: bigint[];
  /** Change each contribution receives (0 when none or dropped as dust). */
  changeSat: bigint[];
}

// Weights (BIP 141): a P2WPKH input is 41 non-witness bytes and a witness of
// count + <73-byte sig> + <33-byte key>; a P2WSH output 43 bytes; common fields 10 bytes + marker/flag.
export const P2WPKH_INPUT_WEIGHT = 41 * 4 + (1 + 1 + 73 + 1 + 33);
export const COMMON_WEIGHT = 10 * 4 + 2;

export function outputWeight(script: Uint8Array): number {
  return (8 + 1 + script.length) * 4;
}

/** sat/vB from BOLT's sat per 1000 weight units, rounded up (the funding builder takes sat/vB). */
export function satPerVbFromPerKw(feeratePerKw: bigint): bigint {
  return (feeratePerKw + 249n) / 250n;
}

/**
 * Build the funding transaction. Each party pays for its own inputs and change output at the fee rate;
 * the opener also pays the common fields and the funding output (BOLT 2 interactive-tx fee rule).
 * Inputs and outputs are sorted (BIP 69) so both parties build the identical transaction.
 */
export function buildFundingTransaction(request: FundingRequest): FundingTransaction {
  const { contributions } = request;
  if (contributions.length !== 1 && contributions.length !== 2) {
    throw new TxBuildError('BAD_PARAMETER', 'contributions', 'expected one (single-funded) or two (dual-funded)');
  }
  const feerate = sat(request.feerateSatPerVb, 'feerateSatPerVb');
  const script = fundingScript(request.fundingPubkeys[0], request.fundingPubkeys[1]);
  const fundingSpk = p2wshOutput(script);

  const seen = new Set<string>();
  const inputs: FundingInputInfo[] = [];
  const feeSat: bigint[] = [];
  const changeSat: bigint[] = [];
  const changeOutputs: Array<{ owner: number; script: Uint8Array; valueSat: bigint }> = [];
  let fundingValueSat = 0n;

  contributions.forEach((c, owner) => {
    const amount = sat(c.amountSat, `contributions[${owner}].amountSat`);
    if (c.coins.length === 0) throw new TxBuildError('INSUFFICIENT_FUNDS', `contributions[${owner}].coins`, 'no coins');
    let inSat = 0n;
    c.coins.forEach((coin, i) => {
      assertOutPoint(coin.outpoint, `contributions[${owner}].coins[${i}].outpoint`);
      assertPubkey(coin.pubkey, `contributions[${owner}].coins[${i}].pubkey`);
      const id = `${coin.outpoint.txid}:${coin.outpoint.vout}`;
      if (seen.has(id)) throw new TxBuildError('DUPLICATE_INPUT', `contributions[${owner}].coins[${i}]`, `${id} used twice`);
      seen.add(id);
      inSat += sat(coin.valueSat, `contributions[${owner}].coins[${i}].valueSat`);
      inputs.push({ owner, coin });
    });
    let weight = c.coins.length * P2WPKH_INPUT_WEIGHT;
    if (owner === 0) weight += COMMON_WEIGHT + outputWeight(fundingSpk);
    const feeWithoutChange = feeForWeightAtSatPerVb(weight, feerate);
    const feeWithChange = feeForWeightAtSatPerVb(weight + outputWeight(c.changeScript), feerate);
    if (inSat < amount + feeWithoutChange) {
      throw new TxBuildError(
        'INSUFFICIENT_FUNDS',
        `contributions[${owner}].coins`,
        `coins hold ${inSat} sat, need ${amount + feeWithoutChange} sat (amount + fee)`,
      );
    }
    const change = inSat - amount - feeWithChange;
    if (change >= dustThresholdSat(c.changeScript)) {
      changeOutputs.push({ owner, script: c.changeScript, valueSat: change });
      feeSat.push(feeWithChange);
      changeSat.push(change);
    } else {
      // Change below dust is not created: it goes to the fee.
      feeSat.push(inSat - amount);
      changeSat.push(0n);
    }
    fundingValueSat += amount;
  });
  if (fundingValueSat < dustThresholdSat(fundingSpk)) {
    throw new TxBuildError('DUST_OUTPUT', 'contributions.amountSat', 'funding output would be dust');
  }

  inputs.sort((a, b) => compareOutpoints(a.coin.outpoint, b.coin.outpoint));
  const outputs = [{ script: fundingSpk, valueSat: fundingValueSat, isFunding: true }, ...changeOutputs.map((o) => ({ ...o, isFunding: false }))];
  outputs.sort(compareOutputs);

  const tx = new Transaction();
  tx.version = 2;
  tx.locktime = 0;
  for (const input of inputs) {
    // 0xfffffffd: final for locktime, opts in to replacement, no relative lock.
    tx.addInput(txidToHash(input.coin.outpoint.txid), input.coin.outpoint.vout, 0xfffffffd);
  }
  for (const o of outputs) tx.addOutput(o.script, o.valueSat);
  const vout = outputs.findIndex((o) => o.isFunding);
  return {
    tx,
    fundingOutpoint: { txid: hashToTxid(tx.getHash()), vout },
    fundingValueSat,
    fundingScript: script,
    inputs,
    feeSat,
    changeSat,
  };
}

/**
 * Sign this party's inputs of a funding transaction (P2WPKH, SIGHASH_ALL) and set their witnesses on
 * `funding.tx`. In a dual-funded open each party calls it for its own `owner` index.
 */
export async function signFundingInputs(funding: FundingTransaction, owner: number, signer: Signer): Promise<void> {
  for (let i = 0; i < funding.inputs.length; i++) {
    const input = funding.inputs[i]!;
    if (input.owner !== owner) continue;
    const pubkey = await signer.getPublicKey(input.coin.key);
    if (!equalBytes(pubkey, input.coin.pubkey)) {
      throw new TxBuildError('BAD_PUBKEY', `inputs[${i}].coin.key`, 'signer key does not match the coin');
    }
    const signature = await signInput(signer, funding.tx, {
      key: input.coin.key,
      inputIndex: i,
      scriptCode: p2wpkhScriptCode(pubkey),
      valueSat: input.coin.valueSat,
    });
    funding.tx.setWitness(i, [signature, pubkey]);
  }
}

/** Everything needed to sign or check a spend of the funding output (always input 0 of the spend). */
export interface FundingSpendContext {
  fundingScript: Uint8Array;
  fundingValueSat: bigint;
}

/** Our signature (DER + SIGHASH_ALL) on input 0 of a funding spend. */
export function signFundingSpend(
  signer: Signer,
  key: KeyLocator,
  tx: Transaction,
  context: FundingSpendContext,
): Promise<Uint8Array> {
  return signInput(signer, tx, {
    key,
    inputIndex: 0,
    scriptCode: context.fundingScript,
    valueSat: context.fundingValueSat,
  });
}

/**
 * Check a counterparty's signature (DER + sighash byte) on input 0 of a funding spend. Only SIGHASH_ALL
 * is accepted: any other type would let the holder change what was signed. False on a bad signature.
 */
export function verifyFundingSpendSignature(
  tx: Transaction,
  context: FundingSpendContext,
  pubkey: Uint8Array,
  scriptSignature: Uint8Array,
): boolean {
  return verifyInputSignature(tx, 0, context.fundingScript, context.fundingValueSat, pubkey, scriptSignature);
}

/** Verify an in-script signature for a segwit v0 input, requiring SIGHASH_ALL. */
export function verifyInputSignature(
  tx: Transaction,
  inputIndex: number,
  scriptCode: Uint8Array,
  valueSat: bigint,
  pubkey: Uint8Array,
  scriptSignature: Uint8Array,
): boolean {
  let decoded;
  try {
    decoded = decodeScriptSignature(scriptSignature);
  } catch {
    return false;
  }
  if (decoded.sighashType !== SIGHASH_ALL) return false;
  const digest = segwitV0Sighash(tx, inputIndex, scriptCode, valueSat, SIGHASH_ALL);
  return verifyDigest(decoded.signature, digest, pubkey);
}
