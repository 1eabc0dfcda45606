/**
 * [W-8] The message type table: the integer sent under key 1 for each message (docs/protocol.md §3).
 * Grouped by family, with room in each group. Version 1 assigns even codes only, leaving odd codes for
 * message types a receiver may ignore, should the session layer adopt BOLT 1's "it's OK to be odd" for
 * types as well as for fields. A code, once assigned, is never reused for another meaning.
 */
export const MESSAGE_TYPE_CODES = {
  // session (session.ts) and errors (errors.ts)
  init: 2,
  ping: 4,
  pong: 6,
  error: 8,
  warning: 10,
  // one-way (Spillman) channel: open (oneway-open.ts), pay (update.ts), close (close.ts)
  oneway_propose: 20,
  oneway_accept: 22,
  oneway_refund_request: 24,
  oneway_refund_signed: 26,
  oneway_funded: 28,
  oneway_ready: 30,
  oneway_pay: 32,
  oneway_pay_ack: 34,
  oneway_resume: 36,
  oneway_close_request: 38,
  oneway_settled: 40,
  // RSMC channel (BOLT 2 shapes): open (rsmc-open.ts), update (update.ts), close (close.ts)
  open_channel: 48,
  accept_channel: 50,
  funding_contribution: 52,
  funding_created: 54,
  funding_signed: 56,
  funding_tx_signatures: 58,
  channel_ready: 60,
  update_add_htlc: 64,
  update_fulfill_htlc: 66,
  update_fail_htlc: 68,
  update_fee: 70,
  commitment_signed: 72,
  revoke_and_ack: 74,
  channel_reestablish: 76,
  update_transfer: 78,
  shutdown: 80,
  closing_signed: 82,
  // signed announcements (announce.ts)
  service_announcement: 96,
  node_status: 98,
} as const;

export type WireMessageType = keyof typeof MESSAGE_TYPE_CODES;
