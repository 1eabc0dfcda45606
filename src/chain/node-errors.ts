/**
 * Bitcoin Core's answers to sendrawtransaction, as the same rejection shape the Simnet returns
 * (port.ts BroadcastResult). Esplora relays the same errors inside its HTTP 400 body, so both adapters
 * share this. Codes from Core's src/rpc/protocol.h; messages from src/node/transaction.cpp (BroadcastTransaction)
 * and src/util/error.cpp (TransactionErrorString):
 *   -22 RPC_DESERIALIZATION_ERROR     'TX decode failed…'
 *   -25 RPC_TRANSACTION_ERROR         'Inputs missing or spent' (Core >= 0.21; 'Missing inputs' before),
 *                                     'Fee exceeds maximum configured by user…'
 *   -26 RPC_TRANSACTION_REJECTED      the mempool's reject string: 'non-BIP68-final',
 *                                     'mandatory-script-verify-flag-failed (Signature must be zero…)',
 *                                     'min relay fee not met, 110 < 141', …
 *   -27 RPC_TRANSACTION_ALREADY_IN_CHAIN 'Transaction outputs already in utxo set' (Core >= 25;
 *                                     'Transaction already in block chain' before)
 * A transaction already in the mempool is not an error for Core: it answers with the txid.
 */
import type { RejectCode } from './port.js';

export const RPC_DESERIALIZATION_ERROR = -22;
export const RPC_TRANSACTION_ERROR = -25;
export const RPC_TRANSACTION_REJECTED = -26;
export const RPC_TRANSACTION_ALREADY_IN_CHAIN = -27;

export interface NodeRejection {
  code: RejectCode;
  /** The node's message, bounded; it is the reject string for -26. */
  reason: string;
}

/** Codes recognised at the start of a -26 reject string (the rest of RejectCode has its own RPC code). */
const MEMPOOL_REASONS: readonly RejectCode[] = [
  'non-final',
  'non-BIP68-final',
  'mandatory-script-verify-flag-failed',
  'bad-txns-inputs-missingorspent',
  'txn-mempool-conflict',
  'bad-txns-in-belowout',
  'txn-already-known',
  'txn-already-in-mempool',
  'bad-txns-vin-empty',
  'bad-txns-vout-empty',
  'bad-txns-inputs-duplicate',
  'dust',
];

const MAX_REASON_CHARS = 500;

/**
 * The rejection a sendrawtransaction error means, or undefined when the error is not about the
 * transaction (e.g. -28 warming up, -32601 no such method): those are chain errors, not rejections.
 */
export function rejectionFromNodeError(rpcCode: number, message: string): NodeRejection | undefined {
  const reason = String(message).slice(0, MAX_REASON_CHARS);
  switch (rpcCode) {
    case RPC_DESERIALIZATION_ERROR:
      return { code: 'tx-decode-failed', reason };
    case RPC_TRANSACTION_ALREADY_IN_CHAIN:
      return { code: 'txn-already-known', reason };
    case RPC_TRANSACTION_ERROR:
      return { code: /missing|missingorspent/i.test(reason) ? 'bad-txns-inputs-missingorspent' : 'other', reason };
    case RPC_TRANSACTION_REJECTED: {
      // The reject reason is the first word; Core may append ", <debug>" or " (<script error>)".
      const word = /^[A-Za-z0-9-]+/.exec(reason)?.[0] ?? '';
      const code = MEMPOOL_REASONS.find((c) => c === word) ?? 'other';
      return { code, reason };
    }
    default:
      return undefined;
  }
}

/**
 * The error Core would answer for a rejection (used by the simnet-backed bitcoind and Esplora
 * servers), or undefined for 'txn-already-in-mempool', which Core answers with the txid.
 */
export function nodeErrorForRejection(rejection: NodeRejection): { code: number; message: string } | undefined {
  switch (rejection.code) {
    case 'txn-already-in-mempool':
      return undefined;
    case 'tx-decode-failed':
      return { code: RPC_DESERIALIZATION_ERROR, message: 'TX decode failed. Make sure the tx has at least one input.' };
    case 'bad-txns-inputs-missingorspent':
      return { code: RPC_TRANSACTION_ERROR, message: 'Inputs missing or spent' };
    case 'txn-already-known':
      return { code: RPC_TRANSACTION_ALREADY_IN_CHAIN, message: 'Transaction outputs already in utxo set' };
    default:
      return { code: RPC_TRANSACTION_REJECTED, message: rejection.reason };
  }
}
