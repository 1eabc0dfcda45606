/** One-way (Spillman) channels: the pure machines, their records, and the runtime that drives them. */
export * from './errors.js';
export * from './state.js';
export * from './core.js';
export { deriveChannelId, satPerVbFromPerKw, isStandardPayoutScript } from './terms.js';
export { DEFAULT_PAYEE_POLICY, payeeOnPropose, payeeStep, type PayeeInput, type PayeeOffer, type PayeePolicy, type ProposalContext, type ProposalResult } from './payee.js';
export { DEFAULT_PAYER_POLICY, payerPropose, payerStep, payerHeadroomMsat, type PayerInput, type PayerPolicy, type ProposalParams } from './payer.js';
export { OnewayChannel, type PaymentReceipt } from './channel.js';
export { OnewayNode, createPayer, createPayee, isLive, type OnewayHooks, type OnewayLogEntry, type OnewayNodeOptions, type OpenParams } from './node.js';
