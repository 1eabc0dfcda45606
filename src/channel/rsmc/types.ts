/**
 * Shared vocabulary of the revocable (RSMC) channel: the durable record each side keeps, what goes into
 * the pure machine (./machine.ts) and what comes out (effects the runtime, ./node.ts, executes in order).
 *
 * Amounts in a commitment's `spec` are always from OUR point of view (`localMsat` is ours, `remoteMsat`
 * the peer's) whichever side's commitment it is; the builders in ./commitments.ts map them onto BOLT 3's
 * to_local / to_remote of the commitment's owner.
 *
 * Updates follow BOLT 2's commitment_signed / revoke_and_ack life cycle, with each side's changes in three
 * lists (the same model as eclair's `LocalChanges` / `RemoteChanges`):
 *  - our changes: `proposed` (sent, in no commitment_signed yet) → `signed` (in the peer's next commitment,
 *    which we signed) → `acked` (the peer revoked its previous commitment) → gone once they are also in our
 *    own commitment (the peer signed it and we revoked our previous one);
 *  - the peer's changes: `proposed` (received) → `acked` (in our commitment, which the peer signed, and we
 *    revoked the previous one) → `signed` (we signed the peer's next commitment with them) → gone once the
 *    peer revoked.
 */
import type { BroadcastResult, OutPoint, UtxoStatus } from '../../chain/port.js';
import type { PerCommitmentSecretStoreJSON } from '../../onchain/rsmc/shachain.js';
import type { WalletCoin } from '../../onchain/funding.js';
import type { NodeId } from '../../transport/port.js';
import type { WireMessage } from '../../wire/index.js';
import type { RsmcErrorCode } from './errors.js';

/** One side's channel parameters and basepoints (BOLT 2 open_channel / accept_channel). */
export interface PartyConfig {
  fundingPubkey: Uint8Array;
  revocationBasepoint: Uint8Array;
  paymentBasepoint: Uint8Array;
  delayedPaymentBasepoint: Uint8Array;
  htlcBasepoint: Uint8Array;
  /** This side's dust limit: applies to this side's own commitment. */
  dustLimitSat: bigint;
  /** What this side requires the OTHER side to keep in the channel (BOLT 2 channel_reserve_satoshis). */
  channelReserveSat: bigint;
  /** The delay this side imposes on the OTHER side's to_local output (BOLT 2 to_self_delay). */
  toSelfDelay: number;
  htlcMinimumMsat: bigint;
  maxHtlcValueInFlightMsat: bigint;
  maxAcceptedHtlcs: number;
}

/** A side's public keys for one channel (all from the signer, index `keyIndex` of each family). */
export type Basepoints = Pick<PartyConfig, 'fundingPubkey' | 'revocationBasepoint' | 'paymentBasepoint' | 'delayedPaymentBasepoint' | 'htlcBasepoint'>;

/** Balances of one commitment, from our point of view. Always localMsat + remoteMsat = capacity × 1000. */
export interface Spec {
  localMsat: bigint;
  remoteMsat: bigint;
}

/**
 * One update. Trickle's direct payment (`update_transfer`, docs/protocol.md §3.5) moves `amountMsat` from
 * the proposer's balance to the other side's. `id` counts each side's updates from 0 (BOLT 2 style).
 */
export interface Change {
  kind: 'transfer';
  id: bigint;
  amountMsat: bigint;
  /** Local only (never sent, never trusted after a restart): which pay() call asked for it. */
  ref?: number;
}

export interface LocalChanges {
  proposed: Change[];
  signed: Change[];
  acked: Change[];
}

export interface RemoteChanges {
  proposed: Change[];
  acked: Change[];
  signed: Change[];
}

/** Our current commitment: the peer's signature on it lets us broadcast it. */
export interface LocalCommit {
  number: bigint;
  spec: Spec;
  /** The peer's 64-byte compact signature on the funding input of this commitment. */
  remoteSignature: Uint8Array;
  /** Its txid (display order), to recognise it on chain. */
  txid: string;
}

/** The peer's current commitment (it holds our signature). */
export interface RemoteCommit {
  number: bigint;
  spec: Spec;
  /** The peer's per-commitment point for `number`. */
  point: Uint8Array;
  txid: string;
}

/** The peer's next commitment: signed by us, waiting for the peer's revoke_and_ack. */
export interface RemoteNextCommit extends RemoteCommit {
  /** Our 64-byte compact signature as sent (retransmitted byte for byte after a reconnect). */
  signature: Uint8Array;
  /**
   * localCommit.number when we signed it: if we later revoked that commitment, the revoke_and_ack was sent
   * after this commitment_signed (the order matters when both are retransmitted; BOLT 2 reestablish).
   */
  localCommitNumberAtSigning: bigint;
}

export type RsmcRole = 'opener' | 'accepter';

export type RsmcPhase =
  /** Opener: open_channel sent. Accepter: accept_channel sent. */
  | 'negotiating'
  /** Dual funding: contributions being exchanged. */
  | 'contributing'
  /** Opener: funding_created sent, waiting for funding_signed. Accepter: funding_signed sent. */
  | 'funding_signed'
  /** The funding transaction is (or will be) broadcast; waiting for depth and channel_ready. */
  | 'awaiting_ready'
  | 'open'
  /** shutdown sent or received: no new updates; closing_signed negotiation when nothing is pending. */
  | 'shutting_down'
  /** A transaction spending the funding output is broadcast or confirmed; resolving outputs. */
  | 'closing'
  | 'closed'
  /** Abandoned before any money was committed. */
  | 'aborted';

/** A wallet coin our side puts into the funding transaction. */
export interface FundingInputRecord {
  coin: WalletCoin;
}

/** An input the peer contributes to a dual-funded funding transaction (as it told us). */
export interface RemoteInputRecord {
  outpoint: OutPoint;
  valueSat: bigint;
  script: Uint8Array;
}

export interface ShutdownState {
  /** Where our share goes. */
  localScript: Uint8Array;
  remoteScript: Uint8Array | undefined;
  sent: boolean;
  /** The last fee we proposed in closing_signed, and our signature at that fee. */
  lastProposedFeeSat: bigint | undefined;
  lastProposedSignature: Uint8Array | undefined;
  /** The last fee the peer proposed, with its signature. */
  lastReceived: { feeSat: bigint; signature: Uint8Array } | undefined;
}

export type RsmcOutcomeKind = 'cooperative-close' | 'unilateral-close' | 'penalty';

/** A transaction this side broadcast to resolve the channel on chain (sweeps, penalty, commitment, closing). */
export interface ResolutionTx {
  purpose: ResolutionPurpose;
  txid: string;
  tx: Uint8Array;
  /** The output(s) it spends. */
  spends: OutPoint[];
  /** Sent to our scripts. */
  valueSat: bigint;
  confirmedHeight: number | undefined;
}

export type ResolutionPurpose = 'commitment' | 'closing' | 'to-local-sweep' | 'to-remote-sweep' | 'penalty';

/** What the funding spend turned out to be (./onchain.ts classifyFundingSpend). */
export type SpendKind =
  | 'cooperative'
  /** Our latest commitment. */
  | 'local-latest'
  /** One of our own older, revoked commitments (we must never broadcast one; a restored backup can). */
  | 'local-revoked'
  /** The peer's current (or next, not yet revoked) commitment. */
  | 'remote-latest'
  /** A commitment the peer revoked: punish it. */
  | 'remote-revoked'
  /** A commitment we cannot place (we lost state): sweep whatever pays our static payment key. */
  | 'remote-unknown'
  | 'unknown';

export interface ClosingState {
  kind: SpendKind;
  /** The funding spend. */
  txid: string;
  /** Its serialisation (to classify it again when a late revocation arrives, and to check sweeps). */
  tx: Uint8Array;
  /** Commitment number of a commitment spend. */
  commitmentNumber: bigint | undefined;
  confirmedHeight: number | undefined;
  /** Outputs of the funding spend that are ours to sweep and not swept yet (to_local after the delay, to_remote, revoked to_local). */
  pending: PendingOutput[];
  resolutions: ResolutionTx[];
  /** Sent directly to our scripts by the funding spend (a cooperative close's output). */
  directSat: bigint;
}

export interface PendingOutput {
  purpose: 'to-local-sweep' | 'to-remote-sweep' | 'penalty';
  outpoint: OutPoint;
  valueSat: bigint;
  /** Height from which the sweep is valid (to_local: confirmation height + to_self_delay). */
  validFromHeight: number | undefined;
}

export interface RsmcOutcome {
  kind: RsmcOutcomeKind;
  /** The funding spend. */
  closingTxid: string;
  blockHeight: number;
  /** What reached our own scripts on chain, after sweeps and their fees. */
  localReceivedSat: bigint;
  /** Our balance in the channel's last state (before fees), for the record. */
  localBalanceMsat: bigint;
}

export interface RsmcRecord {
  role: RsmcRole;
  phase: RsmcPhase;
  peer: NodeId;
  tempChannelId: Uint8Array;
  channelId: Uint8Array | undefined;
  /** Index of every key of this channel (families funding, payment, delayed, htlc, revocation, commitment). */
  keyIndex: number;
  local: PartyConfig;
  remote: PartyConfig | undefined;
  /** Opener's contribution + accepter's contribution. */
  fundingSat: bigint;
  localFundingSat: bigint;
  remoteFundingSat: bigint;
  /** Opener → accepter at open (BOLT 2 push_msat). */
  pushMsat: bigint;
  /** The commitment fee rate (fixed for the channel's life: Trickle sends no update_fee). */
  feeratePerKw: bigint;
  minimumDepth: number;
  fundingOutpoint: OutPoint | undefined;
  /** The funding transaction: unsigned until both commitment signatures are held, then with our witnesses (and the peer's, when dual-funded). */
  fundingTx: Uint8Array | undefined;
  localInputs: FundingInputRecord[];
  localChangeScript: Uint8Array | undefined;
  remoteInputs: RemoteInputRecord[];
  remoteChangeScript: Uint8Array | undefined;
  /** Dual funding: the peer's witnesses arrived (or, single-funded, none are needed). */
  remoteWitnessesReceived: boolean;
  fundingBroadcast: boolean;
  localCommit: LocalCommit | undefined;
  remoteCommit: RemoteCommit | undefined;
  remoteNext: RemoteNextCommit | undefined;
  /** The peer's per-commitment point for remoteCommit.number + 1 (from channel_ready / revoke_and_ack); before remoteCommit exists, its point for commitment 0. */
  remoteNextPoint: Uint8Array | undefined;
  /** Our per-commitment point for localCommit.number (for commitment 0 before localCommit exists). */
  localCurrentPoint: Uint8Array;
  /** Our per-commitment point for localCommit.number + 1 (point 1 before localCommit exists; refreshed from the signer on load). */
  localNextPoint: Uint8Array | undefined;
  /** Our signature on the peer's commitment 0, as sent in funding_created / funding_signed (retransmitted after a reconnect). */
  openingSignature: Uint8Array | undefined;
  localChanges: LocalChanges;
  remoteChanges: RemoteChanges;
  /** Our updates that ever went into a commitment_signed we sent: the id of our next update after `proposed`. */
  localUpdateCount: bigint;
  /** The peer's updates that went into a commitment_signed it sent. */
  remoteUpdateCount: bigint;
  /** Per-commitment secrets the peer revealed (BOLT 3 compact store). */
  remoteSecrets: PerCommitmentSecretStoreJSON;
  readySent: boolean;
  readyReceived: boolean;
  /** Updates fully committed on both sides, counted per direction. */
  sentCount: bigint;
  receivedCount: bigint;
  shutdown: ShutdownState | undefined;
  /** Our payout script (sweeps, cooperative close). */
  payoutScript: Uint8Array;
  closing: ClosingState | undefined;
  outcome: RsmcOutcome | undefined;
  failure: { code: RsmcErrorCode; message: string } | undefined;
  /** We proved (channel_reestablish) that our state is older than the peer's: never broadcast our commitment. */
  stale: boolean;
  /**
   * Transient (reset by the `disconnected` input, which the runtime feeds on load): channel_reestablish
   * sent and the peer's received in this session. No update or commitment is sent before both.
   */
  reestablishSent: boolean;
  reestablishReceived: boolean;
}

/** Why a record is committed; the crash tests kill the process at each. */
export type RsmcPersistReason =
  | 'opened'
  | 'accepted'
  | 'contributed'
  | 'funding-created'
  | 'funding-signed'
  | 'funding-tx-signed'
  | 'ready'
  | 'commitment-signed'
  | 'commitment-received'
  | 'revocation-received'
  | 'shutdown'
  | 'closing-signed'
  | 'closing'
  | 'resolved'
  | 'closed'
  | 'failed'
  | 'aborted';

export type RsmcEvent =
  | { type: 'phase'; phase: RsmcPhase }
  /** An update is irrevocably in both sides' commitments. */
  | { type: 'payment-sent'; id: bigint; amountMsat: bigint; ref?: number }
  | { type: 'payment-received'; id: bigint; amountMsat: bigint }
  /** Our pay() could not be proposed or was dropped by a reconnect before it was signed. */
  | { type: 'payment-failed'; ref: number; code: RsmcErrorCode; message: string }
  /**
   * The peer revoked `commitment` (its secret is now in record.remoteSecrets): if it is ever broadcast we
   * punish it. Carries the revoked commitment so a watchtower entry can be built from it.
   */
  | { type: 'revoked'; commitment: RemoteCommit }
  | { type: 'rejected'; code: RsmcErrorCode; message: string }
  | { type: 'failed'; code: RsmcErrorCode; message: string }
  | { type: 'closing'; kind: SpendKind; txid: string }
  | { type: 'closed'; outcome: RsmcOutcome };

export type RsmcBroadcastPurpose = 'funding' | ResolutionPurpose;

export type RsmcEffect =
  | { kind: 'persist'; reason: RsmcPersistReason }
  | { kind: 'send'; message: WireMessage }
  /**
   * Sign the funding input of the peer's commitment `number` (the machine rebuilds it from the record when
   * the answer comes): answer with `commitment-signature`.
   */
  /** The peer's commitment `number` with balances `spec` (our view), built with the peer's `point`. */
  | { kind: 'sign-remote-commitment'; number: bigint; spec: Spec; point: Uint8Array; tx: Uint8Array }
  /** Reveal our secret for commitment `number` (now revoked) with our point for `number + 2`: answer `secret-released`. */
  | { kind: 'release-secret'; number: bigint }
  /** Choose wallet coins worth `amountSat` plus fees: answer `coins` / `coins-failed`. */
  | { kind: 'select-coins'; amountSat: bigint }
  /** Sign our inputs of the stored funding transaction: answer `funding-inputs-signed`. */
  | { kind: 'sign-funding-inputs' }
  | { kind: 'release-coins' }
  /** Sign our funding input of the closing transaction at `feeSat`: answer `closing-signature`. */
  | { kind: 'sign-closing'; feeSat: bigint; tx: Uint8Array }
  /** Add our signature to our latest commitment and broadcast it (unilateral close). */
  | { kind: 'broadcast-commitment' }
  | { kind: 'broadcast'; purpose: RsmcBroadcastPurpose; tx: Uint8Array }
  /** Build, sign and broadcast what resolves a pending output (./onchain.ts): penalty, to_local or to_remote sweep. */
  | { kind: 'resolve'; output: PendingOutput }
  | { kind: 'watch'; outpoint: OutPoint }
  /** Look the funding output up: answer `funding-status`. */
  | { kind: 'check-funding' }
  | { kind: 'event'; event: RsmcEvent };

export interface RsmcStep {
  record: RsmcRecord;
  effects: RsmcEffect[];
}

export type RsmcInput =
  | { kind: 'message'; message: WireMessage }
  /** The session with the peer is (re)established: send channel_reestablish. */
  | { kind: 'connected' }
  /** The session dropped (or the node restarted): forget unsigned updates (BOLT 2). */
  | { kind: 'disconnected' }
  /** Command: pay `amountMsat` to the peer. */
  | { kind: 'pay'; amountMsat: bigint; ref: number }
  /** Command: close. Cooperative sends shutdown; otherwise broadcast our commitment. */
  | { kind: 'close'; cooperative: boolean }
  /** The open did not get past the point of no return within the node's openTimeoutMs (see abandonableOpen). */
  | { kind: 'open-timeout'; afterMs: number }
  | { kind: 'commitment-signature'; number: bigint; signature: Uint8Array }
  | { kind: 'secret-released'; number: bigint; secret: Uint8Array; nextPoint: Uint8Array }
  | { kind: 'coins'; coins: WalletCoin[]; changeScript: Uint8Array }
  | { kind: 'coins-failed'; message: string }
  /** Our witnesses for our inputs, in funding-input order of our coins. */
  | { kind: 'funding-inputs-signed'; tx: Uint8Array }
  | { kind: 'closing-signature'; feeSat: bigint; signature: Uint8Array }
  | { kind: 'block'; height: number }
  | { kind: 'funding-status'; utxo: UtxoStatus | undefined; tipHeight: number }
  /** The funding output's spending transaction (mempool: height undefined; ignored once a spend confirmed). */
  | { kind: 'funding-spent'; tx: Uint8Array; height: number | undefined }
  /** An output we were resolving was spent (by our resolution or by someone else). */
  | { kind: 'output-spent'; outpoint: OutPoint; txid: string; tx: Uint8Array; height: number | undefined }
  | { kind: 'broadcast-result'; purpose: RsmcBroadcastPurpose; txid: string; result: BroadcastResult }
  /** A resolution transaction was built and broadcast by the runtime (recorded so a restart rebroadcasts it). */
  | { kind: 'resolution'; resolution: ResolutionTx };

export interface RsmcContext {
  tipHeight: number;
  policy: RsmcPolicy;
}

/** What a node accepts and asks for. */
export interface RsmcPolicy {
  /** Delay we impose on the peer's to_local (BOLT 2 to_self_delay). */
  toSelfDelay: number;
  /** The largest delay we accept on our own to_local. */
  maxToSelfDelay: number;
  dustLimitSat: bigint;
  /** Reserve we require of the peer, as parts per million of the capacity (at least our dust limit). */
  reservePpm: number;
  minimumDepth: number;
  maxMinimumDepth: number;
  minFundingSat: bigint;
  maxFundingSat: bigint;
  minFeeratePerKw: bigint;
  maxFeeratePerKw: bigint;
  /** Accepter: how much of its own funds it adds when the opener asks for `requestedSat` (dual funding). */
  maxContributionSat: bigint;
}
