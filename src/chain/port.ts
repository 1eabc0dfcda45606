/**
 * The ChainSource port: what channels need from a Bitcoin chain. Implemented by the in-process simnet
 * (src/chain/simnet) and later by bitcoind JSON-RPC and Esplora adapters; every adapter returns the same
 * shapes, including rejections carrying Bitcoin Core's reject reason.
 */

/** A transaction output reference; `txid` in the usual display (byte-reversed) hex. */
export interface OutPoint {
  txid: string;
  vout: number;
}

export interface TxOut {
  valueSat: bigint;
  script: Uint8Array;
}

/** Bitcoin Core's reject reasons that Trickle distinguishes; anything else is 'other'. */
export type RejectCode =
  | 'non-final'
  | 'non-BIP68-final'
  | 'mandatory-script-verify-flag-failed'
  | 'bad-txns-inputs-missingorspent'
  | 'txn-mempool-conflict'
  | 'bad-txns-in-belowout'
  | 'txn-already-known'
  | 'txn-already-in-mempool'
  | 'bad-txns-vin-empty'
  | 'bad-txns-vout-empty'
  | 'bad-txns-inputs-duplicate'
  | 'dust'
  | 'tx-decode-failed'
  | 'other';

export type BroadcastResult =
  | { accepted: true; txid: string }
  /** `reason` is the full reject string, e.g. 'mandatory-script-verify-flag-failed (Locktime requirement not satisfied)'. */
  | { accepted: false; txid: string; code: RejectCode; reason: string };

export interface TxStatus {
  /** Raw serialised transaction (with witnesses). */
  tx: Uint8Array;
  /** Block height it confirmed at, or undefined while in the mempool. */
  blockHeight: number | undefined;
  /** 0 in the mempool, 1 in the tip block, … */
  confirmations: number;
}

export interface UtxoStatus {
  output: TxOut;
  /** Height of the block that created it, or undefined for an unconfirmed output. */
  blockHeight: number | undefined;
  confirmations: number;
}

export interface SpendInfo {
  /** The spending transaction. */
  txid: string;
  inputIndex: number;
  /** Confirmation height, or undefined while the spend is in the mempool. */
  blockHeight: number | undefined;
}

export type ChainEvent =
  | { type: 'block'; height: number; hash: string }
  /**
   * A reorganisation: the blocks above `forkHeight` (listed in `disconnected`, highest first) are no
   * longer in the best chain. Whatever was seen confirmed above forkHeight may be back in the mempool
   * or gone: re-check it (getSpend, getUtxo, getTransaction). 'block' events for the new chain's
   * blocks follow, from forkHeight + 1 up, and watched spends are reported again as they now stand.
   */
  | { type: 'reorg'; forkHeight: number; disconnected: Array<{ height: number; hash: string }> }
  /** A watched outpoint was spent: seen in the mempool (blockHeight undefined) and again when confirmed. */
  | { type: 'spent'; outpoint: OutPoint; spend: SpendInfo };

export interface ChainSource {
  tipHeight(): Promise<number>;
  broadcast(tx: Uint8Array): Promise<BroadcastResult>;
  getTransaction(txid: string): Promise<TxStatus | undefined>;
  /** The output if it exists and is unspent (confirmed or in the mempool, as bitcoind's gettxout with mempool). */
  getUtxo(outpoint: OutPoint): Promise<UtxoStatus | undefined>;
  /** Who spent an outpoint, if anyone has (mempool or chain). */
  getSpend(outpoint: OutPoint): Promise<SpendInfo | undefined>;
  /** Fee rate for confirmation within `targetBlocks`, in sat per 1000 weight units (BOLT's feerate_per_kw). */
  estimateFeeratePerKw(targetBlocks: number): Promise<bigint>;
  /** Ask for 'spent' events for this outpoint. */
  watchOutpoint(outpoint: OutPoint): void;
  /** Listen to events; returns an unsubscribe function. */
  subscribe(listener: (event: ChainEvent) => void): () => void;
}
