/** What a confirmed spend of the funding output means for each side. */
import { Transaction } from 'bitcoinjs-lib';
import { equalBytes } from '../../bytes.js';
import type { SpendInfo } from '../../chain/port.js';
import type { ChannelOutcome, OnewayRecord } from './state.js';
import { refundTransaction } from './terms.js';

export function outcomeOfSpend(record: OnewayRecord, spend: SpendInfo, rawTx: Uint8Array): ChannelOutcome {
  const tx = Transaction.fromBuffer(rawTx);
  let payeeValueSat = 0n;
  let payerValueSat = 0n;
  let outSat = 0n;
  for (const out of tx.outs) {
    outSat += out.value;
    if (record.payeePayoutScript && equalBytes(out.script, record.payeePayoutScript)) payeeValueSat += out.value;
    else if (equalBytes(out.script, record.payerRefundScript)) payerValueSat += out.value;
  }
  const isRefund = tx.getId() === refundTransaction(record).getId();
  return {
    kind: isRefund ? 'refunded' : 'settled',
    txid: spend.txid,
    blockHeight: spend.blockHeight ?? 0,
    payeeValueSat,
    payerValueSat,
    feeSat: record.capacitySat - outSat,
  };
}
