/**
 * Revocable (RSMC, BOLT 2/3) channels: the pure machine, its record and codec, and the runtime that
 * drives it. Names that would clash with the one-way channel's exports (both are re-exported from the
 * package root) carry an `Rsmc` prefix here: isRsmcLive, encodeRsmcRecord, decodeRsmcRecord,
 * rsmcRecordKey, RSMC_RECORD_PREFIX, RsmcFundingInputRecord.
 */
export * from './errors.js';
export type {
  Basepoints,
  Change,
  ClosingState,
  FundingInputRecord as RsmcFundingInputRecord,
  LocalChanges,
  LocalCommit,
  PartyConfig,
  PendingOutput,
  RemoteChanges,
  RemoteCommit,
  RemoteInputRecord,
  RemoteNextCommit,
  ResolutionPurpose,
  ResolutionTx,
  RsmcBroadcastPurpose,
  RsmcContext,
  RsmcEffect,
  RsmcEvent,
  RsmcInput,
  RsmcOutcome,
  RsmcOutcomeKind,
  RsmcPersistReason,
  RsmcPhase,
  RsmcPolicy,
  RsmcRecord,
  RsmcRole,
  RsmcStep,
  ShutdownState,
  Spec,
  SpendKind,
} from './types.js';
export {
  decodeRecord as decodeRsmcRecord,
  encodeRecord as encodeRsmcRecord,
  MAX_RECORD_BYTES as MAX_RSMC_RECORD_BYTES,
  RECORD_PREFIX as RSMC_RECORD_PREFIX,
  recordKey as rsmcRecordKey,
} from './state.js';
export {
  accepterStart,
  DEFAULT_RSMC_POLICY,
  isLive as isRsmcLive,
  openerStart,
  rsmcStep,
  type AccepterParams,
  type OpenerParams,
} from './machine.js';
export type { WatchtowerEntry } from './onchain.js';
export { RsmcChannel, type RsmcPaymentReceipt } from './channel.js';
export {
  createPeer,
  RSMC_KEY_INDEX_BASE,
  RsmcNode,
  type RsmcChannelSlot,
  type RsmcHooks,
  type RsmcLogEntry,
  type RsmcNodeOptions,
  type RsmcOpenParams,
} from './node.js';
