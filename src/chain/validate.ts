/**
 * Checks every chain adapter shares: arguments from the caller (programmer misuse: TypeError) and
 * answers from a server (untrusted: ChainClientError CHAIN_BAD_RESPONSE naming the field), including
 * the one check that lets a raw block from an untrusted server be believed.
 */
import { Block, Transaction } from 'bitcoinjs-lib';
import { equalBytes } from '../bytes.js';
import { badResponse } from './errors.js';
import type { OutPoint } from './port.js';

// ---- Arguments -------------------------------------------------------------------------------------

/** A txid or block hash in display hex, lowercased. */
export function txidArg(value: string, field = 'txid'): string {
  if (typeof value !== 'string' || !/^[0-9a-fA-F]{64}$/.test(value)) throw new TypeError(`"${field}" expected 64 hex characters`);
  return value.toLowerCase();
}

export function outpointArg(value: OutPoint): OutPoint {
  if (!value || !Number.isSafeInteger(value.vout) || value.vout < 0 || value.vout > 0xffffffff) {
    throw new TypeError('"outpoint" expected { txid, vout } with vout a uint32');
  }
  return { txid: txidArg(value.txid, 'outpoint.txid'), vout: value.vout };
}

// ---- Answers ---------------------------------------------------------------------------------------

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function object(value: unknown, path: string): Record<string, unknown> {
  if (!isObject(value)) throw badResponse(path, 'an object');
  return value;
}

export function uint(value: unknown, path: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw badResponse(path, 'an integer >= 0');
  return value;
}

/** A serialised transaction with nothing after it. */
export function parseTransaction(raw: Uint8Array, path: string): Transaction {
  try {
    const tx = Transaction.fromBuffer(raw);
    if (tx.byteLength() !== raw.length) throw new Error('trailing bytes');
    return tx;
  } catch {
    throw badResponse(path, 'a serialized transaction');
  }
}

/**
 * A raw block from a server, believed only if it is the block `id` and commits to what it carries:
 * its header hashes to `id`, its transactions match the merkle root (and are not a CVE-2012-2459
 * duplicate list), nothing follows them, and witness data matches the coinbase's BIP 141 commitment
 * (witnesses are outside the merkle root; a made-up one could carry a false HTLC preimage).
 */
export function parseCheckedBlock(raw: Uint8Array, id: string, path: string): Block {
  let block: Block;
  try {
    block = Block.fromBuffer(raw);
  } catch {
    throw badResponse(path, 'a serialized block');
  }
  if (!block.transactions || block.transactions.length === 0 || block.byteLength() !== raw.length) {
    throw badResponse(path, 'a serialized block with transactions and nothing after them');
  }
  if (block.getId() !== id) throw badResponse(path, `the block ${id} (its header hashes to ${block.getId()})`);
  const mutated = { value: false };
  const root = Block.calculateMerkleRoot(block.transactions, false, mutated);
  if (mutated.value || !equalBytes(root, block.merkleRoot!)) throw badResponse(path, 'transactions matching the merkle root');
  if (block.hasWitnessCommit() ? !block.checkTxRoots() : block.hasWitness()) {
    throw badResponse(path, 'witness data matching the witness commitment');
  }
  return block;
}
