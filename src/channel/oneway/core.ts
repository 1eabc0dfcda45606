/**
 * Shared vocabulary of the one-way channel state machines (./payer.ts, ./payee.ts): what goes in
 * (peer messages, chain observations, signatures, commands) and what comes out (effects the runtime
 * executes in order). The machines do no I/O: `persist` comes before every `send` whose content depends
 * on the new state, so "persist before you speak" is visible in — and testable on — their output.
 */
import type { BroadcastResult, OutPoint, SpendInfo, UtxoStatus } from '../../chain/port.js';
import type { WireMessage } from '../../wire/index.js';
import { CHANNEL_WIRE_CODES, type ChannelErrorCode } from './errors.js';
import type { ChannelOutcome, OnewayRecord } from './state.js';

export type SignPurpose = 'refund' | 'payment' | 'settlement' | 'refund-spend';

/** Why a record is being committed; the runtime's fault hooks (crash tests) key on it. */
export type PersistReason =
  | 'proposed'
  | 'accepted'
  | 'refund-held'
  | 'funding-signed'
  | 'funded'
  | 'open'
  | 'payment-signed'
  | 'payment-acked'
  | 'payment-accepted'
  | 'refund-signed'
  | 'closing'
  | 'closed'
  | 'failed'
  | 'aborted';

export type ChannelEvent =
  | { type: 'phase'; phase: OnewayRecord['phase'] }
  /** Payee: a payment was stored. Payer: a payment was acknowledged. */
  | { type: 'payment'; number: bigint; amountMsat: bigint; incrementMsat: bigint }
  | { type: 'rejected'; code: ChannelErrorCode; message: string }
  | { type: 'failed'; code: ChannelErrorCode; message: string }
  | { type: 'closed'; outcome: ChannelOutcome };

export type Effect =
  | { kind: 'persist'; reason: PersistReason }
  | { kind: 'send'; message: WireMessage }
  /** Sign input 0 (the funding output) of `tx` with our funding key; answer with a 'signed' input. */
  | { kind: 'sign'; purpose: SignPurpose; tx: Uint8Array; /** Echoed back with the signature (payments). */ amountMsat?: bigint }
  /** Payer: sign its wallet inputs of the stored funding transaction; answer with 'funding-signed'. */
  | { kind: 'sign-funding' }
  /** Payer: choose wallet coins for the funding; answer with 'coins'. */
  | { kind: 'select-coins'; amountSat: bigint }
  /** Payer: give the wallet back the coins of a funding that was never broadcast (an abandoned open). */
  | { kind: 'release-coins' }
  | { kind: 'broadcast'; purpose: 'funding' | 'refund' | 'settlement'; tx: Uint8Array }
  | { kind: 'watch'; outpoint: OutPoint }
  /** Look the funding output up on chain; answer with 'funding-status'. */
  | { kind: 'check-funding' }
  | { kind: 'event'; event: ChannelEvent };

export type ChainInput =
  | { kind: 'block'; height: number }
  | { kind: 'funding-status'; utxo: UtxoStatus | undefined; tipHeight: number }
  /** The funding output's spend confirmed; `tx` is the spending transaction. */
  | { kind: 'funding-spent'; spend: SpendInfo; tx: Uint8Array }
  | { kind: 'broadcast-result'; purpose: 'funding' | 'refund' | 'settlement'; result: BroadcastResult };

export interface Step<R> {
  record: R;
  effects: Effect[];
}

/** A message refused: the record is unchanged, the peer gets a `warning` with our code, we get an event. */
export function rejection<R extends OnewayRecord>(record: R, code: ChannelErrorCode, message: string): Step<R> {
  const channelId = record.channelId ?? record.tempChannelId;
  return {
    record,
    effects: [
      { kind: 'send', message: { type: 'warning', channelId, code: CHANNEL_WIRE_CODES[code], message } },
      { kind: 'event', event: { type: 'rejected', code, message } },
    ],
  };
}

export function unchanged<R>(record: R): Step<R> {
  return { record, effects: [] };
}

/** Broadcast results that mean "the transaction is (already) out there". */
export function broadcastSucceeded(result: BroadcastResult): boolean {
  return result.accepted || result.code === 'txn-already-in-mempool' || result.code === 'txn-already-known';
}
