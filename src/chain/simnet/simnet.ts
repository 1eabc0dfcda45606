/**
 * Simnet: an embedded, deterministic regtest-like chain implementing the ChainSource port. Everything is
 * in-process (no timers, no I/O, no randomness): blocks are mined on demand, coins come from a faucet,
 * and broadcast applies Bitcoin Core's mempool acceptance rules with Core's reject reasons, verifying
 * scripts with an independent interpreter (bitcore-lib, see interpreter.ts).
 *
 * Acceptance order (Core's MemPoolAccept::PreChecks order; the first failing rule is reported):
 *   1. decode ('tx-decode-failed'); CheckTransaction: vin-empty, vout-empty, oversize, output value
 *      range, duplicate inputs, null prevouts ('coinbase' for a coinbase-shaped tx);
 *   2. already known: 'txn-already-in-mempool' (same txid), 'txn-already-known' (confirmed);
 *   3. policy: 'version' (1 and 2; v3/TRUC is not modelled), 'tx-size', 'scriptpubkey', 'dust'
 *      (OP_RETURN exempt), 'tx-size-small' (non-witness size < 65 bytes);
 *   4. nLockTime finality for the next block ('non-final', Core's IsFinalTx with BIP 113 MTP);
 *   5. inputs: 'txn-mempool-conflict' (no RBF) or 'bad-txns-inputs-missingorspent';
 *   6. BIP 68 relative locks ('non-BIP68-final');
 *   7. values: 'bad-txns-in-belowout', then the minimum relay fee ('min relay fee not met');
 *   8. scripts under standard flags ('mandatory-script-verify-flag-failed (<Core's message>)').
 * Reasons are Core's bare reject reasons, without Core's ", <debug detail>" suffix.
 *
 * Blocks are real serialisations (rawBlock): an 80-byte header whose double SHA-256 is the block hash
 * (regtest bits, no proof of work), a coinbase first (BIP 34 height, BIP 141 witness commitment, and
 * the regtest subsidy when mine() is given a coinbaseScript; such outputs need 100 confirmations,
 * 'bad-txns-premature-spend-of-coinbase'), then the block's transactions.
 *
 * Reorgs: invalidateBlock(hash) disconnects a block and every later one, as Core's invalidateblock;
 * their transactions go back to the mempool when still acceptable, and a 'reorg' event is emitted.
 * evict(txid) drops a mempool transaction and its descendants (a conflicting spend that won elsewhere).
 *
 * Simplifications (deliberate): faucet coins are coinbase-shaped but exempt from coinbase maturity and
 * sit after the block's coinbase; coinbases take no fees; sigop cost does not enter vsize; no mempool
 * size limit or eviction; a tx with the same txid as a mempool tx is 'txn-already-in-mempool' even if
 * its witness differs.
 */
import { Block, Transaction } from 'bitcoinjs-lib';
import type {
  BroadcastResult, ChainEvent, ChainSource, OutPoint, RejectCode, SpendInfo, TxOut, TxStatus, UtxoStatus,
} from '../port.js';
import { bytesToHex, concatBytes, hexToBytes, reverseBytes } from '../../bytes.js';
import { MAX_MONEY_SAT, sat } from '../../amounts.js';
import { compileScript, dustThresholdSat, p2wpkhOutput, scriptNumber, witnessVersion } from '../../onchain/script.js';
import { hashToTxid } from '../../onchain/tx.js';
import { verifyInput, type InputVerdict } from './interpreter.js';

/** Default block-time origin (2023-11-14T22:13:20Z); any fixed value keeps runs deterministic. */
export const DEFAULT_START_TIME = 1_700_000_000;
const BLOCK_INTERVAL_SEC = 600;
const LOCKTIME_THRESHOLD = 500_000_000; // nLockTime below this is a height, else a UNIX time
const SEQUENCE_FINAL = 0xffffffff;
// BIP 68 sequence fields.
const SEQUENCE_LOCKTIME_DISABLE_FLAG = 0x80000000;
const SEQUENCE_LOCKTIME_TYPE_FLAG = 1 << 22;
const SEQUENCE_LOCKTIME_MASK = 0x0000ffff;
const SEQUENCE_LOCKTIME_GRANULARITY = 9; // time locks count units of 512 seconds
const MAX_BLOCK_WEIGHT = 4_000_000;
const MAX_SCRIPT_SIZE = 10_000;
const MAX_STANDARD_TX_WEIGHT = 400_000;
const MIN_STANDARD_TX_NONWITNESS_SIZE = 65;
// Core 28 also relays version 3 (TRUC), but only under TRUC's extra rules, which simnet does not model.
const TX_MAX_STANDARD_VERSION = 2;
const MAX_LISTENER_ERRORS = 100;
const COINBASE_MATURITY = 100;
const REGTEST_HALVING_INTERVAL = 150;
const INITIAL_SUBSIDY_SAT = 50n * 100_000_000n;
const REGTEST_BITS = 0x207fffff;
const BLOCK_VERSION = 0x20000000;
const COINBASE_TAG = new TextEncoder().encode('/trickle-simnet/');

export interface SimnetOptions {
  /** Timestamp of the genesis block; block h is stamped startTime + 600*h. Must be >= 500000000. */
  startTime?: number;
  /** What estimateFeeratePerKw returns for every target; default 2500 sat/kW (10 sat/vB). */
  feeratePerKw?: bigint;
  /** Minimum relay fee in sat per 1000 vbytes, as Core's -minrelaytxfee; default 1000 (1 sat/vB); 0 disables. */
  minRelayFeeSatPerKvB?: bigint;
}

export interface SimnetBlock {
  height: number;
  /** Display (byte-reversed) hex, like txids. */
  hash: string;
  prevHash: string;
  time: number;
  medianTimePast: number;
  /** The block's transactions after its coinbase. */
  txids: string[];
  coinbaseTxid: string;
}

export interface SimnetUtxo extends UtxoStatus {
  outpoint: OutPoint;
  /** A mined coinbase output, spendable only at 100 confirmations (faucet coins are not). */
  coinbase: boolean;
}

export interface MineOptions {
  /** Pay each block's subsidy (regtest schedule: 50 BTC, halving every 150 blocks) to this script. */
  coinbaseScript?: Uint8Array;
}

interface Coin {
  output: TxOut;
  height: number;
  /** Mined coinbase output: subject to coinbase maturity. */
  coinbase: boolean;
}

interface TxEntry {
  raw: Uint8Array;
  tx: Transaction;
  txid: string;
  /** undefined while in the mempool. */
  height: number | undefined;
}

interface BlockRecord {
  height: number;
  hash: string;
  prevHash: string;
  time: number;
  /** The block's transactions, coinbase first. */
  txids: string[];
  /** The serialised 80-byte header (its double SHA-256 is the hash). */
  header: Uint8Array;
  /** Undo data for invalidateBlock: the confirmed coins this block spent. */
  spentCoins: Array<{ key: string; coin: Coin }>;
}

type Rejection = { code: RejectCode; reason: string };

export class Simnet implements ChainSource {
  readonly #startTime: number;
  #feeratePerKw: bigint;
  readonly #minRelayFeeSatPerKvB: bigint;
  readonly #blocks: BlockRecord[] = [];
  /** Every known tx, confirmed or in the mempool. */
  readonly #txs = new Map<string, TxEntry>();
  /** Insertion order is a valid topological order: a tx enters only after its mempool parents. */
  readonly #mempool = new Map<string, TxEntry>();
  /** Confirmed, unspent, spendable outputs (the UTXO set), keyed "txid:vout". */
  readonly #coins = new Map<string, Coin>();
  readonly #mempoolSpends = new Map<string, SpendInfo>();
  readonly #chainSpends = new Map<string, SpendInfo>();
  readonly #watched = new Set<string>();
  readonly #listeners = new Set<(event: ChainEvent) => void>();
  readonly #queue: ChainEvent[] = [];
  #draining = false;
  readonly #listenerErrors: unknown[] = [];
  #faucetCounter = 0;
  /** Makes every coinbase (so every block) unique, even at a height mined again after a reorg. */
  #blockCounter = 0;
  readonly #blockHeights = new Map<string, number>();

  constructor(options: SimnetOptions = {}) {
    const startTime = options.startTime ?? DEFAULT_START_TIME;
    if (!Number.isSafeInteger(startTime) || startTime < LOCKTIME_THRESHOLD || startTime > 0xffffffff - 1e9) {
      throw new RangeError('"startTime" expected an integer UNIX time >= 500000000');
    }
    const feerate = options.feeratePerKw ?? 2500n;
    const minRelay = options.minRelayFeeSatPerKvB ?? 1000n;
    if (typeof feerate !== 'bigint' || feerate < 0n) throw new RangeError('"feeratePerKw" expected a bigint >= 0');
    if (typeof minRelay !== 'bigint' || minRelay < 0n) throw new RangeError('"minRelayFeeSatPerKvB" expected a bigint >= 0');
    this.#startTime = startTime;
    this.#feeratePerKw = feerate;
    this.#minRelayFeeSatPerKvB = minRelay;
    this.#connectBlock([], undefined); // genesis, height 0
  }

  // ---- ChainSource -------------------------------------------------------------------------------

  async tipHeight(): Promise<number> {
    return this.#tip();
  }

  async broadcast(tx: Uint8Array): Promise<BroadcastResult> {
    let raw: Uint8Array;
    let parsed: Transaction;
    try {
      if (!(tx instanceof Uint8Array)) throw new TypeError('not bytes');
      raw = Uint8Array.from(tx); // our own copy: the caller may reuse its buffer
      parsed = Transaction.fromBuffer(raw);
    } catch {
      return { accepted: false, txid: '', code: 'tx-decode-failed', reason: 'TX decode failed' };
    }
    const txid = parsed.getId();
    let rejection: Rejection | undefined;
    try {
      rejection = this.#check(parsed, raw, txid);
    } catch (e) {
      // Safety net: a check that cannot run rejects (never accept unchecked) and never throws to the caller.
      rejection = other(`simnet check error: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (rejection) return { accepted: false, txid, ...rejection };

    // Accept: state first, then events, so listeners see a consistent chain.
    const entry: TxEntry = { raw, tx: parsed, txid, height: undefined };
    this.#txs.set(txid, entry);
    this.#mempool.set(txid, entry);
    parsed.ins.forEach((input, inputIndex) => {
      const key = outpointKey(prevoutOf(input));
      this.#mempoolSpends.set(key, { txid, inputIndex, blockHeight: undefined });
      if (this.#watched.has(key)) this.#emitSpent(key, { txid, inputIndex, blockHeight: undefined });
    });
    this.#flush();
    return { accepted: true, txid };
  }

  async getTransaction(txid: string): Promise<TxStatus | undefined> {
    const entry = this.#txs.get(normaliseTxid(txid));
    if (!entry) return undefined;
    return { tx: Uint8Array.from(entry.raw), blockHeight: entry.height, confirmations: this.#confirmations(entry.height) };
  }

  async getUtxo(outpoint: OutPoint): Promise<UtxoStatus | undefined> {
    const coin = this.#unspent(outpointKey(outpoint));
    if (!coin) return undefined;
    return { output: copyOut(coin.output), blockHeight: coin.height, confirmations: this.#confirmations(coin.height) };
  }

  async getSpend(outpoint: OutPoint): Promise<SpendInfo | undefined> {
    const key = outpointKey(outpoint);
    const spend = this.#mempoolSpends.get(key) ?? this.#chainSpends.get(key);
    return spend ? { ...spend } : undefined;
  }

  async estimateFeeratePerKw(targetBlocks: number): Promise<bigint> {
    if (!Number.isSafeInteger(targetBlocks) || targetBlocks < 1) throw new RangeError('"targetBlocks" expected an integer >= 1');
    return this.#feeratePerKw;
  }

  /** Later spends produce events; an earlier spend does not, so check getSpend after watching. */
  watchOutpoint(outpoint: OutPoint): void {
    this.#watched.add(outpointKey(outpoint));
  }

  subscribe(listener: (event: ChainEvent) => void): () => void {
    if (typeof listener !== 'function') throw new TypeError('"listener" expected a function');
    const wrapper = (event: ChainEvent): void => listener(event); // distinct identity per subscription
    this.#listeners.add(wrapper);
    return () => {
      this.#listeners.delete(wrapper);
    };
  }

  // ---- Simnet controls ---------------------------------------------------------------------------

  /**
   * Mine `count` blocks. Each block confirms the whole mempool as it is at that moment (so the first
   * block takes everything; later ones take whatever listeners broadcast meanwhile). Returns block hashes.
   */
  async mine(count = 1, options: MineOptions = {}): Promise<string[]> {
    if (!Number.isSafeInteger(count) || count < 0) throw new RangeError('"count" expected an integer >= 0');
    const coinbaseScript = options.coinbaseScript;
    if (coinbaseScript !== undefined && (!(coinbaseScript instanceof Uint8Array) || isUnspendable(coinbaseScript))) {
      throw new TypeError('"coinbaseScript" expected a spendable output script');
    }
    const hashes: string[] = [];
    for (let i = 0; i < count; i++) {
      hashes.push(this.#connectBlock([...this.#mempool.values()], coinbaseScript).hash);
      this.#flush();
    }
    return hashes;
  }

  /**
   * Create a confirmed coin: a coinbase-shaped tx (null prevout; scriptSig pushes the height and a
   * counter so every txid is unique) paying `outputScript`, mined alone in a new block. The mempool is
   * left as it is. Faucet coins are exempt from coinbase maturity: spendable at once.
   */
  async faucet(outputScript: Uint8Array, valueSat: bigint): Promise<OutPoint> {
    if (!(outputScript instanceof Uint8Array)) throw new TypeError('"outputScript" expected a Uint8Array');
    if (isUnspendable(outputScript)) throw new RangeError('"outputScript" is unspendable (OP_RETURN or oversize)');
    const value = sat(valueSat);
    const height = this.#tip() + 1;
    const tx = new Transaction();
    tx.version = 2;
    const scriptSig = compileScript([scriptNumber(height), scriptNumber(this.#faucetCounter++)]);
    tx.addInput(new Uint8Array(32), 0xffffffff, SEQUENCE_FINAL, scriptSig);
    tx.addOutput(Uint8Array.from(outputScript), value);
    const txid = tx.getId();
    const entry: TxEntry = { raw: tx.toBuffer(), tx, txid, height: undefined };
    this.#txs.set(txid, entry);
    this.#connectBlock([entry], undefined);
    this.#flush();
    return { txid, vout: 0 };
  }

  /** faucet() to the P2WPKH output of a compressed public key. */
  async faucetToPubkey(pubkey: Uint8Array, valueSat: bigint): Promise<OutPoint> {
    return this.faucet(p2wpkhOutput(pubkey), valueSat);
  }

  /** Change what estimateFeeratePerKw reports (e.g. to exercise update_fee). */
  setFeeratePerKw(feeratePerKw: bigint): void {
    if (typeof feeratePerKw !== 'bigint' || feeratePerKw < 0n) throw new RangeError('"feeratePerKw" expected a bigint >= 0');
    this.#feeratePerKw = feeratePerKw;
  }

  // ---- Read helpers ------------------------------------------------------------------------------

  /** Mempool txids, parents before children. */
  mempool(): string[] {
    return [...this.#mempool.keys()];
  }

  getBlock(height: number): SimnetBlock | undefined {
    const b = this.#blocks[height];
    if (!Number.isSafeInteger(height) || !b) return undefined;
    return {
      height, hash: b.hash, prevHash: b.prevHash, time: b.time, medianTimePast: this.medianTimePast(height),
      txids: b.txids.slice(1), coinbaseTxid: b.txids[0]!,
    };
  }

  /** A block of the best chain by its hash (display hex). */
  getBlockByHash(hash: string): SimnetBlock | undefined {
    const height = typeof hash === 'string' ? this.#blockHeights.get(hash.toLowerCase()) : undefined;
    return height === undefined ? undefined : this.getBlock(height);
  }

  /** The serialised block (header, then coinbase and transactions with witnesses) of the best chain. */
  rawBlock(hashOrHeight: string | number): Uint8Array | undefined {
    const height = typeof hashOrHeight === 'number' ? hashOrHeight : this.#blockHeights.get(String(hashOrHeight).toLowerCase());
    const b = height === undefined ? undefined : this.#blocks[height];
    if (!b) return undefined;
    const txs = b.txids.map((t) => this.#txs.get(t)!.raw);
    return concatBytes(b.header, compactSize(txs.length), ...txs);
  }

  /** True for a coinbase of a mined block (subject to maturity); false for faucet transactions. */
  isMinedCoinbase(txid: string): boolean {
    const entry = this.#txs.get(normaliseTxid(txid));
    return entry !== undefined && entry.height !== undefined && this.#blocks[entry.height]?.txids[0] === entry.txid;
  }

  /**
   * Disconnect the block `hash` and every block after it, as Core's invalidateblock (a reorganisation
   * once new blocks are mined). Their transactions return to the mempool if still acceptable, in chain
   * order; coinbases and whatever no longer fits are dropped. Emits one 'reorg' event, then a mempool
   * 'spent' event for each watched outpoint whose spend went back to the mempool.
   */
  invalidateBlock(hash: string): void {
    const height = this.#blockHeights.get(normaliseTxid(hash));
    if (height === undefined) throw new RangeError('"hash" is not a block of the best chain');
    if (height === 0) throw new RangeError('the genesis block cannot be invalidated');
    const disconnected: Array<{ height: number; hash: string }> = [];
    const returning: TxEntry[][] = [];
    for (let h = this.#tip(); h >= height; h--) {
      const block = this.#blocks.pop()!;
      this.#blockHeights.delete(block.hash);
      disconnected.push({ height: h, hash: block.hash });
      // Restore what the block spent, then remove what it created (which also removes the coins it
      // both created and spent).
      for (const { key, coin } of block.spentCoins) {
        this.#coins.set(key, coin);
        this.#chainSpends.delete(key);
      }
      for (const txid of block.txids) {
        const entry = this.#txs.get(txid)!;
        entry.tx.outs.forEach((_, vout) => this.#coins.delete(`${txid}:${vout}`));
        entry.height = undefined;
      }
      const [coinbaseTxid, ...rest] = block.txids;
      this.#txs.delete(coinbaseTxid!);
      returning.unshift(rest.map((t) => this.#txs.get(t)!));
    }
    // Back to the mempool, in chain order and before what was already there (so parents stay ahead of
    // children), through the usual acceptance rules: Core re-runs them too and drops what fails.
    const previous = [...this.#mempool.values()];
    const previousSpends = new Map(this.#mempoolSpends);
    this.#mempool.clear();
    this.#mempoolSpends.clear();
    const respent: Array<[string, SpendInfo]> = [];
    for (const entry of [...returning.flat(), ...previous]) {
      this.#txs.delete(entry.txid);
      if (isFaucetShaped(entry.tx)) continue; // faucet coins existed only in their block
      let rejection: Rejection | undefined;
      try {
        rejection = this.#check(entry.tx, entry.raw, entry.txid);
      } catch {
        rejection = other('simnet check error');
      }
      if (rejection) continue;
      this.#txs.set(entry.txid, entry);
      this.#mempool.set(entry.txid, entry);
      entry.tx.ins.forEach((input, inputIndex) => {
        const key = outpointKey(prevoutOf(input));
        const spend = { txid: entry.txid, inputIndex, blockHeight: undefined };
        this.#mempoolSpends.set(key, spend);
        const before = previousSpends.get(key);
        if (this.#watched.has(key) && !(before && before.txid === spend.txid)) respent.push([key, spend]);
      });
    }
    this.#emit({ type: 'reorg', forkHeight: height - 1, disconnected });
    for (const [key, spend] of respent) this.#emitSpent(key, spend);
    this.#flush();
  }

  /** Drop a mempool transaction and its mempool descendants; returns their txids (empty if not in the mempool). */
  evict(txid: string): string[] {
    const root = normaliseTxid(txid);
    if (!this.#mempool.has(root)) return [];
    const dropped: string[] = [];
    const drop = (id: string): void => {
      const entry = this.#mempool.get(id);
      if (!entry) return;
      this.#mempool.delete(id);
      this.#txs.delete(id);
      dropped.push(id);
      for (const input of entry.tx.ins) this.#mempoolSpends.delete(outpointKey(prevoutOf(input)));
      entry.tx.outs.forEach((_, vout) => {
        const child = this.#mempoolSpends.get(`${id}:${vout}`);
        if (child) drop(child.txid);
      });
    };
    drop(root);
    return dropped;
  }

  /** BIP 113 median-time-past: median of the times of block `height` and its (up to) 10 predecessors. */
  medianTimePast(height = this.#tip()): number {
    if (!Number.isSafeInteger(height) || height < 0 || height > this.#tip()) throw new RangeError('"height" out of range');
    const times: number[] = [];
    for (let h = height; h >= 0 && times.length < 11; h--) times.push(this.#blocks[h]!.time);
    times.sort((a, b) => a - b);
    return times[Math.floor(times.length / 2)]!; // Core: pbegin[(pend - pbegin) / 2]
  }

  /** Unspent outputs (confirmed or mempool, not spent in the mempool) paying exactly `script`. */
  utxosForScript(script: Uint8Array): SimnetUtxo[] {
    const hex = bytesToHex(script);
    const found: SimnetUtxo[] = [];
    const consider = (txid: string, vout: number, output: TxOut): void => {
      const coin = bytesToHex(output.script) === hex ? this.#unspent(`${txid}:${vout}`) : undefined;
      if (coin) {
        found.push({ outpoint: { txid, vout }, output: copyOut(coin.output), blockHeight: coin.height, confirmations: this.#confirmations(coin.height), coinbase: coin.coinbase });
      }
    };
    for (const [key, coin] of this.#coins) {
      const [txid, vout] = key.split(':') as [string, string];
      consider(txid, Number(vout), coin.output);
    }
    for (const entry of this.#mempool.values()) {
      entry.tx.outs.forEach((o, vout) => consider(entry.txid, vout, { valueSat: o.value, script: o.script }));
    }
    return found;
  }

  /** Errors thrown by listeners (the most recent 100); they never interrupt the chain. */
  listenerErrors(): unknown[] {
    return [...this.#listenerErrors];
  }

  // ---- Internals ---------------------------------------------------------------------------------

  #tip(): number {
    return this.#blocks.length - 1;
  }

  #confirmations(height: number | undefined): number {
    return height === undefined ? 0 : this.#tip() - height + 1;
  }

  /** The coin at `key` if it exists and nothing (confirmed or mempool) spends it; height undefined if unconfirmed. */
  #unspent(key: string): { output: TxOut; height: number | undefined; coinbase: boolean } | undefined {
    if (this.#mempoolSpends.has(key)) return undefined;
    const coin = this.#coins.get(key);
    if (coin) return coin;
    const [txid, vout] = key.split(':') as [string, string];
    const out = this.#mempool.get(txid)?.tx.outs[Number(vout)];
    if (!out || isUnspendable(out.script)) return undefined;
    return { output: { valueSat: out.value, script: out.script }, height: undefined, coinbase: false };
  }

  /** Every acceptance rule, in the order of the module doc. undefined = acceptable. */
  #check(tx: Transaction, raw: Uint8Array, txid: string): Rejection | undefined {
    // 1. Context-free consensus checks (Core's CheckTransaction).
    if (tx.ins.length === 0) return reject('bad-txns-vin-empty');
    if (tx.outs.length === 0) return reject('bad-txns-vout-empty');
    if (tx.byteLength(false) * 4 > MAX_BLOCK_WEIGHT) return other('bad-txns-oversize');
    let valueOut = 0n;
    for (const out of tx.outs) {
      if (out.value < 0n) return other('bad-txns-vout-negative');
      if (out.value > MAX_MONEY_SAT) return other('bad-txns-vout-toolarge');
      valueOut += out.value;
      if (valueOut > MAX_MONEY_SAT) return other('bad-txns-txouttotal-toolarge');
    }
    const prevouts = tx.ins.map(prevoutOf);
    const keys = prevouts.map(outpointKey);
    if (new Set(keys).size !== keys.length) return reject('bad-txns-inputs-duplicate');
    const isNull = tx.ins.map((i) => i.index === 0xffffffff && i.hash.every((b) => b === 0));
    if (tx.ins.length === 1 && isNull[0]) return other('coinbase');
    if (isNull.some(Boolean)) return other('bad-txns-prevout-null');

    // 2. Already known.
    if (this.#mempool.has(txid)) return reject('txn-already-in-mempool');
    if (this.#txs.has(txid)) return reject('txn-already-known');

    // 3. Policy (Core's IsStandardTx subset, then PreChecks' minimum size).
    if (tx.version < 1 || tx.version > TX_MAX_STANDARD_VERSION) return other('version');
    if (tx.weight() > MAX_STANDARD_TX_WEIGHT) return other('tx-size');
    if (!tx.outs.every((o) => isStandardOutput(o.script))) return other('scriptpubkey');
    if (tx.outs.some((o) => o.value < dustThresholdSat(o.script))) return reject('dust');
    if (tx.byteLength(false) < MIN_STANDARD_TX_NONWITNESS_SIZE) return other('tx-size-small');

    // 4. nLockTime must be final in the next block (Core's CheckFinalTxAtTip → IsFinalTx(tx, tip+1, MTP)).
    const nextHeight = this.#tip() + 1;
    const tipMtp = this.medianTimePast();
    if (!isFinalTx(tx, nextHeight, tipMtp)) return reject('non-final');

    // 5. Inputs exist and are unspent. A mempool spend is a conflict (we do no RBF).
    const coins: Array<{ output: TxOut; height: number | undefined }> = [];
    for (const key of keys) {
      if (this.#mempoolSpends.has(key)) return reject('txn-mempool-conflict');
      const coin = this.#unspent(key);
      if (!coin) return reject('bad-txns-inputs-missingorspent');
      // Core's CheckTxInputs: a coinbase output needs COINBASE_MATURITY confirmations at the spending height.
      if (coin.coinbase && nextHeight - coin.height! < COINBASE_MATURITY) return other('bad-txns-premature-spend-of-coinbase');
      coins.push(coin);
    }

    // 6. BIP 68 relative lock-times (Core's CalculateSequenceLocks + EvaluateSequenceLocks at the tip).
    // Core compares the version as unsigned; bitcoinjs already reads it as uint32.
    if (tx.version >= 2) {
      for (const [i, input] of tx.ins.entries()) {
        const seq = input.sequence;
        if ((seq & SEQUENCE_LOCKTIME_DISABLE_FLAG) !== 0) continue;
        // An unconfirmed parent counts as confirming in the next block.
        const coinHeight = coins[i]!.height ?? nextHeight;
        const value = seq & SEQUENCE_LOCKTIME_MASK;
        if ((seq & SEQUENCE_LOCKTIME_TYPE_FLAG) !== 0) {
          // Time lock: measured from the MTP of the block before the coin's block.
          const minTime = this.medianTimePast(Math.max(coinHeight - 1, 0)) + (value << SEQUENCE_LOCKTIME_GRANULARITY) - 1;
          if (minTime >= tipMtp) return reject('non-BIP68-final');
        } else {
          const minHeight = coinHeight + value - 1;
          if (minHeight >= nextHeight) return reject('non-BIP68-final');
        }
      }
    }

    // 7. Values (Core's CheckTxInputs), then the minimum relay fee (Core's CheckFeeRate).
    const valueIn = coins.reduce((sum, c) => sum + c.output.valueSat, 0n);
    if (valueIn < valueOut) return reject('bad-txns-in-belowout');
    const vsize = BigInt(Math.ceil(tx.weight() / 4));
    const minFee = (this.#minRelayFeeSatPerKvB * vsize + 999n) / 1000n; // Core rounds the required fee up
    if (valueIn - valueOut < minFee) return other('min relay fee not met');

    // 8. Scripts, every input, standard flags.
    for (const [i, coin] of coins.entries()) {
      let verdict: InputVerdict;
      try {
        verdict = verifyInput(raw, i, coin.output);
      } catch (e) {
        // The interpreter could not even run (e.g. its own parser refused the tx): never accept unverified.
        return other(`script verification error: ${(e as Error)?.message ?? String(e)}`);
      }
      if (!verdict.valid) {
        return { code: 'mandatory-script-verify-flag-failed', reason: `mandatory-script-verify-flag-failed (${verdict.message})` };
      }
    }
    return undefined;
  }

  /**
   * Append a block confirming `entries` (parents before children) after a new coinbase paying the
   * subsidy to `coinbaseScript` (if given); update UTXO set, spends, queue events.
   */
  #connectBlock(entries: TxEntry[], coinbaseScript: Uint8Array | undefined): BlockRecord {
    const height = this.#blocks.length;
    const prevHash = height === 0 ? '00'.repeat(32) : this.#blocks[height - 1]!.hash;
    const time = this.#startTime + height * BLOCK_INTERVAL_SEC;
    const coinbase = this.#coinbase(height, coinbaseScript, entries);
    const coinbaseEntry: TxEntry = { raw: coinbase.toBuffer(), tx: coinbase, txid: coinbase.getId(), height: undefined };
    this.#txs.set(coinbaseEntry.txid, coinbaseEntry);
    const header = new Block();
    header.version = BLOCK_VERSION;
    header.prevHash = reverseBytes(hexToBytes(prevHash));
    header.merkleRoot = Block.calculateMerkleRoot([coinbase, ...entries.map((e) => e.tx)]);
    header.timestamp = time;
    header.bits = REGTEST_BITS;
    header.nonce = 0;
    const hash = header.getId();
    const block: BlockRecord = {
      height, hash, prevHash, time, txids: [coinbaseEntry.txid, ...entries.map((e) => e.txid)], header: header.toBuffer(true), spentCoins: [],
    };
    this.#blocks.push(block);
    this.#blockHeights.set(hash, height);

    const spentEvents: Array<[string, SpendInfo]> = [];
    for (const entry of [coinbaseEntry, ...entries]) {
      const isCoinbase = entry === coinbaseEntry;
      if (!isCoinbase && !isFaucetShaped(entry.tx)) {
        entry.tx.ins.forEach((input, inputIndex) => {
          const key = outpointKey(prevoutOf(input));
          const coin = this.#coins.get(key);
          // Invariant: acceptance checked the input, and parents are connected before children.
          if (!coin) throw new Error(`simnet invariant broken: ${entry.txid} spends missing ${key}`);
          this.#coins.delete(key);
          block.spentCoins.push({ key, coin });
          this.#mempoolSpends.delete(key);
          const spend: SpendInfo = { txid: entry.txid, inputIndex, blockHeight: height };
          this.#chainSpends.set(key, spend);
          if (this.#watched.has(key)) spentEvents.push([key, spend]);
        });
      }
      entry.tx.outs.forEach((out, vout) => {
        if (isUnspendable(out.script)) return; // Core never adds provably unspendable outputs to the UTXO set
        this.#coins.set(`${entry.txid}:${vout}`, { output: { valueSat: out.value, script: out.script }, height, coinbase: isCoinbase });
      });
      entry.height = height;
      this.#mempool.delete(entry.txid);
    }
    for (const [key, spend] of spentEvents) this.#emitSpent(key, spend);
    if (height > 0) this.#emit({ type: 'block', height, hash });
    return block;
  }

  /**
   * The block's coinbase: BIP 34 height and a unique counter in the scriptSig, the subsidy to
   * `script` if given, and the BIP 141 witness commitment over `entries` (coinbase wtxid zero,
   * witness reserved value zero).
   */
  #coinbase(height: number, script: Uint8Array | undefined, entries: TxEntry[]): Transaction {
    const tx = new Transaction();
    tx.version = 2;
    tx.addInput(new Uint8Array(32), 0xffffffff, SEQUENCE_FINAL, compileScript([scriptNumber(height), scriptNumber(this.#blockCounter++), COINBASE_TAG]));
    tx.setWitness(0, [new Uint8Array(32)]);
    const halvings = Math.floor(height / REGTEST_HALVING_INTERVAL);
    if (script) tx.addOutput(Uint8Array.from(script), halvings >= 64 ? 0n : INITIAL_SUBSIDY_SAT >> BigInt(halvings));
    const commitmentIndex = tx.addOutput(new Uint8Array(38), 0n);
    const witnessRoot = Block.calculateMerkleRoot([tx, ...entries.map((e) => e.tx)], true);
    tx.outs[commitmentIndex]!.script = concatBytes(Uint8Array.of(0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed), witnessRoot);
    return tx;
  }

  #emitSpent(key: string, spend: SpendInfo): void {
    const [txid, vout] = key.split(':') as [string, string];
    this.#emit({ type: 'spent', outpoint: { txid, vout: Number(vout) }, spend: { ...spend } });
  }

  #emit(event: ChainEvent): void {
    this.#queue.push(event);
  }

  /**
   * Deliver queued events in order. Re-entrant calls (a listener that broadcasts or mines) only queue,
   * so every listener sees events in chain order. A throwing listener is recorded and skipped.
   */
  #flush(): void {
    if (this.#draining) return;
    this.#draining = true;
    try {
      for (let event = this.#queue.shift(); event; event = this.#queue.shift()) {
        for (const listener of [...this.#listeners]) {
          try {
            listener(event);
          } catch (e) {
            this.#listenerErrors.push(e);
            if (this.#listenerErrors.length > MAX_LISTENER_ERRORS) this.#listenerErrors.shift();
          }
        }
      }
    } finally {
      this.#draining = false;
    }
  }
}

/** Core's IsFinalTx: final if locktime is 0, or already passed (height or BIP 113 time), or all inputs are SEQUENCE_FINAL. */
function isFinalTx(tx: Transaction, blockHeight: number, blockTime: number): boolean {
  if (tx.locktime === 0) return true;
  if (tx.locktime < (tx.locktime < LOCKTIME_THRESHOLD ? blockHeight : blockTime)) return true;
  return tx.ins.every((i) => i.sequence === SEQUENCE_FINAL);
}

/**
 * Core's standard output types: P2PKH, P2SH, P2PK, witness v0 (20/32-byte) and v1+ programs, OP_RETURN
 * (whose size limit differs across Core versions and is not modelled). Bare multisig is refused.
 */
function isStandardOutput(s: Uint8Array): boolean {
  const last = s[s.length - 1];
  if (s[0] === 0x6a) return true;
  if (s.length === 25 && s[0] === 0x76 && s[1] === 0xa9 && s[2] === 0x14 && s[23] === 0x88 && last === 0xac) return true;
  if (s.length === 23 && s[0] === 0xa9 && s[1] === 0x14 && last === 0x87) return true;
  if (((s.length === 35 && s[0] === 33) || (s.length === 67 && s[0] === 65)) && last === 0xac) return true;
  const version = witnessVersion(s);
  return version === 0 ? s.length === 22 || s.length === 34 : version > 0;
}

/** OP_RETURN or over the script size limit: Core's CScript::IsUnspendable. */
function isUnspendable(script: Uint8Array): boolean {
  return (script.length > 0 && script[0] === 0x6a) || script.length > MAX_SCRIPT_SIZE;
}

/** A faucet transaction: coinbase-shaped (one null prevout) but outside the coinbase position. */
function isFaucetShaped(tx: Transaction): boolean {
  return tx.ins.length === 1 && tx.ins[0]!.index === 0xffffffff && tx.ins[0]!.hash.every((b) => b === 0);
}

/** Bitcoin's CompactSize length prefix. */
function compactSize(n: number): Uint8Array {
  if (n < 0xfd) return Uint8Array.of(n);
  if (n <= 0xffff) return Uint8Array.of(0xfd, n & 0xff, n >> 8);
  const out = new Uint8Array(5);
  out[0] = 0xfe;
  new DataView(out.buffer).setUint32(1, n, true);
  return out;
}

function prevoutOf(input: { hash: Uint8Array; index: number }): OutPoint {
  return { txid: hashToTxid(input.hash), vout: input.index };
}

function normaliseTxid(txid: string): string {
  if (typeof txid !== 'string' || !/^[0-9a-fA-F]{64}$/.test(txid)) throw new TypeError('"txid" expected 64 hex characters');
  return txid.toLowerCase();
}

function outpointKey(outpoint: OutPoint): string {
  if (!outpoint || !Number.isSafeInteger(outpoint.vout) || outpoint.vout < 0 || outpoint.vout > 0xffffffff) {
    throw new TypeError('"outpoint" expected { txid, vout } with vout a uint32');
  }
  return `${normaliseTxid(outpoint.txid)}:${outpoint.vout}`;
}

function copyOut(out: TxOut): TxOut {
  return { valueSat: out.valueSat, script: Uint8Array.from(out.script) };
}

function reject(code: Exclude<RejectCode, 'other' | 'mandatory-script-verify-flag-failed' | 'tx-decode-failed'>): Rejection {
  return { code, reason: code };
}

function other(reason: string): Rejection {
  return { code: 'other', reason };
}
