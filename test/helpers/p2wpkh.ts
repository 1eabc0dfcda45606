/**
 * Real, signed P2WPKH spends for chain tests: keys of a SoftwareSigner (family 'wallet'), transactions
 * built with bitcoinjs-lib and signed through the Signer port (BIP 143), so every backend verifies them.
 */
import { Transaction } from 'bitcoinjs-lib';
import type { BroadcastResult, OutPoint } from '../../src/chain/port.js';
import { hexToBytes, reverseBytes } from '../../src/bytes.js';
import { SoftwareSigner } from '../../src/signer/software.js';
import { encodeScriptSignature, p2wpkhOutput, p2wpkhScriptCode } from '../../src/onchain/script.js';

export interface SpendInput {
  outpoint: OutPoint;
  valueSat: bigint;
  sequence?: number;
  /** Key that owns the coin (default 0); `signWith` signs with another key (a bad signature). */
  key?: number;
  signWith?: number;
}

export class P2wpkhKeys {
  readonly signer: SoftwareSigner;
  readonly pubkeys: Uint8Array[];
  readonly scripts: Uint8Array[];

  private constructor(signer: SoftwareSigner, pubkeys: Uint8Array[]) {
    this.signer = signer;
    this.pubkeys = pubkeys;
    this.scripts = pubkeys.map(p2wpkhOutput);
  }

  static async create(seedByte: number, count = 3): Promise<P2wpkhKeys> {
    const signer = SoftwareSigner.fromSeed(new Uint8Array(32).fill(seedByte));
    const pubkeys = await Promise.all(Array.from({ length: count }, (_, index) => signer.getPublicKey({ family: 'wallet', index })));
    return new P2wpkhKeys(signer, pubkeys);
  }

  /** A signed spend: witness [DER sig + SIGHASH_ALL, pubkey] per input. */
  async spend(
    inputs: SpendInput[],
    outputs: Array<{ script: Uint8Array; valueSat: bigint }>,
    opts: { version?: number; locktime?: number } = {},
  ): Promise<Uint8Array> {
    const tx = new Transaction();
    tx.version = opts.version ?? 2;
    tx.locktime = opts.locktime ?? 0;
    for (const i of inputs) tx.addInput(reverseBytes(hexToBytes(i.outpoint.txid)), i.outpoint.vout, i.sequence ?? 0xfffffffd);
    for (const o of outputs) tx.addOutput(o.script, o.valueSat);
    const unsigned = tx.toBuffer();
    for (const [inputIndex, i] of inputs.entries()) {
      const pubkey = this.pubkeys[i.key ?? 0]!;
      const sig = await this.signer.signInput({
        key: { family: 'wallet', index: i.signWith ?? i.key ?? 0 },
        tx: unsigned,
        inputIndex,
        scriptCode: p2wpkhScriptCode(pubkey),
        valueSat: i.valueSat,
      });
      tx.setWitness(inputIndex, [encodeScriptSignature(sig), pubkey]);
    }
    return tx.toBuffer();
  }
}

export function txidOf(raw: Uint8Array): string {
  return Transaction.fromBuffer(raw).getId();
}

export function rejected(result: BroadcastResult): { code: string; reason: string; txid: string } {
  if (result.accepted) throw new Error(`expected a rejection, got acceptance of ${result.txid}`);
  return result;
}

export function accepted(result: BroadcastResult): string {
  if (!result.accepted) throw new Error(`rejected: ${result.code} (${result.reason})`);
  return result.txid;
}
