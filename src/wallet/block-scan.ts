/**
 * A UtxoSource for bitcoind, which keeps no address index: scan every block from the wallet's birth
 * height for outputs paying the wallet's scripts and inputs spending them. Progress, the coins found and
 * undo data for the last `keepBlocks` blocks are stored, so a restart resumes where it stopped and a
 * reorganisation is undone back to the fork; one deeper than the undo data rescans from the birth height.
 *
 * Stored under `prefix` (default 'wallet/scan/'), compact JSON, amounts as decimal strings:
 *   state                 {"v":1,"birth":<height>,"scripts":["<hex>",…],"height":<last scanned>}
 *   utxo/<txid>:<vout>    {"v":"<sat>","s":<script index>,"h":<height>,"c":<1 if coinbase else 0>}
 *   undo/<height, 10 digits>  {"hash":"<block hash>","a":["<txid>:<vout>",…],"s":[["<txid>:<vout>",<utxo>],…]}
 * A value that does not read back exactly so is CORRUPT_WALLET_STATE, never a guess. A change of birth
 * height or scripts discards the stored scan and starts again.
 *
 * Only confirmed coins are seen; the scanner knows nothing of the mempool.
 *
 * @example
 * const { receive, change } = await deviceWalletScripts(signer);
 * const source = await BlockScanUtxoSource.open({ blocks: bitcoind, scripts: [receive, change], birthHeight: 840_000, store });
 * const wallet = await DeviceWallet.open({ signer, source, chain: bitcoind, store });
 */
import type { Transaction } from 'bitcoinjs-lib';
import { ChainClientError } from '../chain/errors.js';
import { MAX_MONEY_SAT } from '../amounts.js';
import { bytesToHex } from '../bytes.js';
import { hashToTxid } from '../onchain/tx.js';
import type { Store, StoreWrite } from '../store/port.js';
import { WalletError } from './device-wallet.js';
import { assertScripts, type UtxoSource, type WalletUtxo } from './utxo-source.js';

export interface ScannedBlock {
  height: number;
  /** Display (byte-reversed) hex. */
  hash: string;
  /**
   * The previous block's hash. Optional, but a source that gives it lets the scanner notice a reorg
   * that happens while it is scanning; without it a reorg is noticed only at the next sync.
   */
  prevHash?: string;
  /** In block order; the first is the coinbase. */
  txs: Transaction[];
}

export interface BlockSource {
  tipHeight(): Promise<number>;
  block(height: number): Promise<ScannedBlock>;
  /** The hash of the best chain's block at `height`; saves fetching whole blocks to check for reorgs. */
  blockHash?(height: number): Promise<string>;
}

export interface BlockScanOptions {
  blocks: BlockSource;
  /** The scripts to look for (e.g. the device wallet's receive and change scripts). */
  scripts: Uint8Array[];
  /** First block that can hold the wallet's coins. */
  birthHeight: number;
  store: Store;
  /** Called after each block while catching up; exceptions it throws are ignored. */
  onProgress?: (progress: { height: number; tipHeight: number }) => void;
  /** Blocks of undo data kept for reorgs (default 100). */
  keepBlocks?: number;
  /** Blocks scanned per store commit (default 100). */
  batchBlocks?: number;
  /** Store key prefix (default 'wallet/scan/'). */
  prefix?: string;
}

interface ScanUtxo {
  valueSat: bigint;
  /** Index into the scanner's scripts. */
  script: number;
  height: number;
  coinbase: boolean;
}

interface UndoRecord {
  height: number;
  hash: string;
  /** Our outputs this block created. */
  added: string[];
  /** Our coins this block spent, as they were. */
  spent: Array<[string, ScanUtxo]>;
}

/** Restarts of one sync when the blocks it fetches do not link (a reorg racing the scan). */
const MAX_RESTARTS = 10;
const HASH = /^[0-9a-f]{64}$/;
const OUTPOINT = /^([0-9a-f]{64}):(0|[1-9][0-9]{0,9})$/;
const HEIGHT_DIGITS = 10;
const noop = (): void => {};

export class BlockScanUtxoSource implements UtxoSource {
  readonly #blocks: BlockSource;
  readonly #scripts: Uint8Array[];
  readonly #scriptIndex = new Map<string, number>();
  readonly #birth: number;
  readonly #store: Store;
  readonly #onProgress: ((progress: { height: number; tipHeight: number }) => void) | undefined;
  readonly #keep: number;
  readonly #batch: number;
  readonly #prefix: string;

  /** Last scanned height (birth - 1 before the first block). */
  #height: number;
  readonly #utxos = new Map<string, ScanUtxo>();
  /** Ascending, contiguous, ending at #height; at most #keep records. */
  #undo: UndoRecord[] = [];
  readonly #dirtyUtxos = new Set<string>();
  readonly #dirtyUndo = new Set<number>();
  /** Stored keys of a discarded scan (other birth height or scripts), deleted by the next commit. */
  readonly #obsolete = new Set<string>();
  #dirty = false;
  /** A commit failed: memory is ahead of the store, so reload before scanning again. */
  #stale = false;
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(options: BlockScanOptions) {
    this.#blocks = options.blocks;
    this.#scripts = options.scripts.map((s) => Uint8Array.from(s));
    this.#scripts.forEach((s, i) => {
      if (!this.#scriptIndex.has(bytesToHex(s))) this.#scriptIndex.set(bytesToHex(s), i);
    });
    this.#birth = options.birthHeight;
    this.#store = options.store;
    this.#onProgress = options.onProgress;
    this.#keep = options.keepBlocks ?? 100;
    this.#batch = options.batchBlocks ?? 100;
    this.#prefix = options.prefix ?? 'wallet/scan/';
    this.#height = this.#birth - 1;
  }

  /** Load the stored scan (CORRUPT_WALLET_STATE if unreadable). Scanning waits for the first sync. */
  static async open(options: BlockScanOptions): Promise<BlockScanUtxoSource> {
    checkOptions(options);
    const scanner = new BlockScanUtxoSource(options);
    await scanner.#load();
    return scanner;
  }

  /** Last scanned height (birthHeight - 1 before any block). */
  get scannedHeight(): number {
    return this.#height;
  }

  /** Catch up with the chain's tip, undoing reorganised blocks; resolves to the last scanned block. */
  sync(): Promise<{ height: number; hash: string | undefined }> {
    return this.#exclusive(async () => {
      await this.#sync();
      return { height: this.#height, hash: this.#undo.at(-1)?.hash };
    });
  }

  /** Sync to the tip, then the coins paying `scripts` (each must be one given at construction). */
  async listUnspent(scripts: Uint8Array[]): Promise<WalletUtxo[]> {
    assertScripts(scripts);
    const wanted = new Set<number>();
    scripts.forEach((s, i) => {
      const index = this.#scriptIndex.get(bytesToHex(s));
      if (index === undefined) throw new RangeError(`"scripts[${i}]" is not one of the scanner's scripts`);
      wanted.add(index);
    });
    return this.#exclusive(async () => {
      await this.#sync();
      const found: WalletUtxo[] = [];
      for (const [key, u] of this.#utxos) {
        // Stored indexes point at the first copy of a script listed twice.
        if (!wanted.has(this.#scriptIndex.get(bytesToHex(this.#scripts[u.script]!))!)) continue;
        const [txid, vout] = key.split(':') as [string, string];
        found.push({
          outpoint: { txid, vout: Number(vout) },
          valueSat: u.valueSat,
          script: Uint8Array.from(this.#scripts[u.script]!),
          blockHeight: u.height,
          confirmations: this.#height - u.height + 1,
          coinbase: u.coinbase,
        });
      }
      return found;
    });
  }

  // ---- scanning ----

  /**
   * Reorgs racing the scan: the hash at the tip height is read when a sync starts and read again before
   * every commit. A reorg below that height changes it (a block hash commits to all history), so blocks
   * fetched from two different chains are never committed: what was scanned since the last commit is
   * dropped and the sync starts over from the store. A source giving prevHash lets this be noticed at
   * the first block that does not link.
   */
  async #sync(): Promise<void> {
    for (let attempt = 0; attempt <= MAX_RESTARTS; attempt++) {
      if (this.#stale) await this.#load();
      const tip = await this.#blocks.tipHeight();
      if (!Number.isSafeInteger(tip) || tip < 0) throw new ChainClientError('CHAIN_BAD_RESPONSE', 'tipHeight: expected an integer >= 0');
      const tipHash = tip >= this.#birth ? await this.#hashAt(tip) : undefined;
      await this.#rewindToChain(tip, tipHash);
      let scanned = 0;
      let consistent = true;
      for (let h = this.#height + 1; h <= tip && consistent; h++) {
        const block = await this.#blocks.block(h);
        checkBlock(block, h);
        const previous = this.#undo.at(-1);
        if (block.prevHash !== undefined && previous && previous.height === h - 1 && block.prevHash !== previous.hash) {
          consistent = false;
          break;
        }
        this.#apply(block);
        if (++scanned >= this.#batch) {
          consistent = (await this.#hashAt(tip)) === tipHash;
          if (consistent) await this.#commit();
          scanned = 0;
        }
        try {
          this.#onProgress?.({ height: h, tipHeight: tip });
        } catch {
          // A progress display must not stop the scan.
        }
      }
      if (consistent && scanned > 0) consistent = (await this.#hashAt(tip)) === tipHash;
      if (consistent) {
        await this.#commit();
        return;
      }
      this.#stale = true; // the chain changed under us: drop the uncommitted blocks, find the fork again
    }
    throw new ChainClientError('CHAIN_BAD_RESPONSE', `the chain kept changing during ${MAX_RESTARTS + 1} attempts to scan it`);
  }

  /** Undo the blocks no longer in the best chain, whose tip is `tipHash` at `tip`. */
  async #rewindToChain(tip: number, tipHash: string | undefined): Promise<void> {
    if (this.#height < this.#birth) return;
    let fork: number | undefined;
    for (let i = this.#undo.length - 1; i >= 0; i--) {
      const record = this.#undo[i]!;
      if (record.height > tip) continue; // the chain is shorter now: certainly disconnected
      const hash = record.height === tip ? tipHash : await this.#hashAt(record.height);
      if (hash === record.hash) {
        fork = record.height;
        break;
      }
    }
    if (fork === this.#height) return;
    if (fork === undefined) {
      this.#reset(); // deeper than our undo data: rescan from the birth height
      return;
    }
    while (this.#height > fork) this.#undoTip();
  }

  async #hashAt(height: number): Promise<string> {
    let hash: string;
    if (this.#blocks.blockHash) {
      hash = await this.#blocks.blockHash(height);
    } else {
      const block = await this.#blocks.block(height);
      checkBlock(block, height);
      hash = block.hash;
    }
    if (typeof hash !== 'string' || !HASH.test(hash)) throw new ChainClientError('CHAIN_BAD_RESPONSE', `block hash at ${height}: expected 64 lowercase hex characters`);
    return hash;
  }

  #apply(block: ScannedBlock): void {
    const record: UndoRecord = { height: block.height, hash: block.hash, added: [], spent: [] };
    block.txs.forEach((tx, i) => {
      if (i > 0) {
        for (const input of tx.ins) {
          const key = `${hashToTxid(input.hash)}:${input.index}`;
          const coin = this.#utxos.get(key);
          if (!coin) continue;
          record.spent.push([key, coin]);
          this.#utxos.delete(key);
          this.#dirtyUtxos.add(key);
        }
      }
      const txid = tx.getId();
      tx.outs.forEach((out, vout) => {
        const script = this.#scriptIndex.get(bytesToHex(out.script));
        if (script === undefined) return;
        if (typeof out.value !== 'bigint' || out.value < 0n || out.value > MAX_MONEY_SAT) {
          throw new ChainClientError('CHAIN_BAD_RESPONSE', `block ${block.height}: output ${txid}:${vout} has an invalid value`);
        }
        const key = `${txid}:${vout}`;
        this.#utxos.set(key, { valueSat: out.value, script, height: block.height, coinbase: i === 0 });
        record.added.push(key);
        this.#dirtyUtxos.add(key);
      });
    });
    this.#undo.push(record);
    this.#dirtyUndo.add(record.height);
    while (this.#undo.length > this.#keep) this.#dirtyUndo.add(this.#undo.shift()!.height);
    this.#height = block.height;
    this.#dirty = true;
  }

  #undoTip(): void {
    const record = this.#undo.pop()!;
    // Restore first, then remove: a coin created and spent in the same block is in both lists.
    for (const [key, coin] of record.spent) {
      this.#utxos.set(key, coin);
      this.#dirtyUtxos.add(key);
    }
    for (const key of record.added) {
      this.#utxos.delete(key);
      this.#dirtyUtxos.add(key);
    }
    this.#dirtyUndo.add(record.height);
    this.#height = record.height - 1;
    this.#dirty = true;
  }

  #reset(): void {
    for (const key of this.#utxos.keys()) this.#dirtyUtxos.add(key);
    for (const record of this.#undo) this.#dirtyUndo.add(record.height);
    this.#utxos.clear();
    this.#undo = [];
    this.#height = this.#birth - 1;
    this.#dirty = true;
  }

  // ---- persistence ----

  async #commit(): Promise<void> {
    if (!this.#dirty && this.#obsolete.size === 0) return;
    const writes: StoreWrite[] = [...this.#obsolete].map((key) => ({ key, value: undefined }));
    for (const key of this.#dirtyUtxos) {
      const coin = this.#utxos.get(key);
      writes.push({ key: `${this.#prefix}utxo/${key}`, value: coin && json(encodeUtxo(coin)) });
    }
    const first = this.#undo[0]?.height ?? 0;
    for (const height of this.#dirtyUndo) {
      const record = this.#undo[height - first];
      const value = record && record.height === height ? json({ hash: record.hash, a: record.added, s: record.spent.map(([k, c]) => [k, encodeUtxo(c)]) }) : undefined;
      writes.push({ key: `${this.#prefix}undo/${String(height).padStart(HEIGHT_DIGITS, '0')}`, value });
    }
    writes.push({
      key: `${this.#prefix}state`,
      value: json({ v: 1, birth: this.#birth, scripts: this.#scripts.map(bytesToHex), height: this.#height }),
    });
    try {
      await this.#store.commit(writes);
    } catch (error) {
      this.#stale = true;
      throw error;
    }
    this.#obsolete.clear();
    this.#dirtyUtxos.clear();
    this.#dirtyUndo.clear();
    this.#dirty = false;
  }

  async #load(): Promise<void> {
    this.#utxos.clear();
    this.#undo = [];
    this.#dirtyUtxos.clear();
    this.#dirtyUndo.clear();
    this.#obsolete.clear();
    this.#dirty = false;
    this.#height = this.#birth - 1;
    const entries = await this.#store.list(this.#prefix);
    this.#stale = false;
    const stateKey = `${this.#prefix}state`;
    const stateEntry = entries.find((e) => e.key === stateKey);
    if (!stateEntry) {
      if (entries.length > 0) corrupt(entries[0]!.key, 'scan data without a scan state');
      return;
    }
    const state = readState(stateEntry.value, stateKey);
    if (state.birth !== this.#birth || state.scripts.join() !== this.#scripts.map(bytesToHex).join()) {
      // Scanned for another wallet configuration: start again rather than miss coins.
      for (const e of entries) this.#obsolete.add(e.key);
      return;
    }
    if (state.height < this.#birth - 1) corrupt(stateKey, 'height below the birth height');
    const utxoPrefix = `${this.#prefix}utxo/`;
    const undoPrefix = `${this.#prefix}undo/`;
    for (const { key, value } of entries) {
      if (key === stateKey) continue;
      if (key.startsWith(utxoPrefix)) {
        const outpoint = key.slice(utxoPrefix.length);
        checkOutpointKey(outpoint, key);
        const coin = readUtxo(parse(value, key), key, this.#scripts.length);
        if (coin.height < this.#birth || coin.height > state.height) corrupt(key, 'height outside the scanned range');
        this.#utxos.set(outpoint, coin);
      } else if (key.startsWith(undoPrefix)) {
        const digits = key.slice(undoPrefix.length);
        if (!/^[0-9]{10}$/.test(digits)) corrupt(key, 'bad height');
        this.#undo.push(readUndo(parse(value, key), key, Number(digits), this.#scripts.length));
      } else {
        corrupt(key, 'unknown key');
      }
    }
    // Keys are listed in ascending order and heights zero-padded, so #undo is ascending.
    if (state.height >= this.#birth) {
      if (this.#undo.length === 0) corrupt(stateKey, 'no undo data for the scanned blocks');
      this.#undo.forEach((r, i) => {
        if (r.height !== state.height - (this.#undo.length - 1 - i) || r.height < this.#birth) {
          corrupt(`${undoPrefix}${String(r.height).padStart(HEIGHT_DIGITS, '0')}`, 'undo data does not end at the scanned height without gaps');
        }
      });
    } else if (this.#undo.length > 0) {
      corrupt(stateKey, 'undo data without scanned blocks');
    }
    this.#height = state.height;
    // keepBlocks may have been lowered since: drop the surplus with the next commit.
    while (this.#undo.length > this.#keep) {
      this.#dirtyUndo.add(this.#undo.shift()!.height);
      this.#dirty = true;
    }
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn, fn);
    this.#tail = run.catch(noop);
    return run;
  }
}

// ---- validation and encoding ----

function checkOptions(o: BlockScanOptions): void {
  if (!o || typeof o !== 'object') throw new TypeError('"options" expected an object');
  if (!o.blocks || typeof o.blocks.tipHeight !== 'function' || typeof o.blocks.block !== 'function') {
    throw new TypeError('"blocks" expected a BlockSource (tipHeight, block)');
  }
  assertScripts(o.scripts);
  if (o.scripts.length === 0) throw new RangeError('"scripts" must not be empty');
  if (!Number.isSafeInteger(o.birthHeight) || o.birthHeight < 0) throw new RangeError('"birthHeight" expected an integer >= 0');
  if (!o.store || typeof o.store.commit !== 'function') throw new TypeError('"store" expected a Store');
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw new TypeError('"onProgress" expected a function');
  for (const field of ['keepBlocks', 'batchBlocks'] as const) {
    const v = o[field];
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 1)) throw new RangeError(`"${field}" expected an integer >= 1`);
  }
  if (o.prefix !== undefined && (typeof o.prefix !== 'string' || o.prefix.length === 0)) throw new TypeError('"prefix" expected a non-empty string');
}

function checkBlock(block: ScannedBlock, height: number): void {
  const where = `block ${height}`;
  if (!block || typeof block !== 'object') throw new ChainClientError('CHAIN_BAD_RESPONSE', `${where}: expected an object`);
  if (block.height !== height) throw new ChainClientError('CHAIN_BAD_RESPONSE', `${where}: the source returned height ${String(block.height)}`);
  if (typeof block.hash !== 'string' || !HASH.test(block.hash)) throw new ChainClientError('CHAIN_BAD_RESPONSE', `${where}: bad hash`);
  if (block.prevHash !== undefined && (typeof block.prevHash !== 'string' || !HASH.test(block.prevHash))) {
    throw new ChainClientError('CHAIN_BAD_RESPONSE', `${where}: bad prevHash`);
  }
  if (!Array.isArray(block.txs) || block.txs.some((tx) => !tx || !Array.isArray(tx.ins) || !Array.isArray(tx.outs) || typeof tx.getId !== 'function')) {
    throw new ChainClientError('CHAIN_BAD_RESPONSE', `${where}: expected transactions`);
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

function json(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

function corrupt(key: string, why: string): never {
  throw new WalletError('CORRUPT_WALLET_STATE', `stored scan value ${JSON.stringify(key)} is unreadable: ${why}`);
}

function parse(value: Uint8Array, key: string): unknown {
  try {
    return JSON.parse(decoder.decode(value));
  } catch {
    return corrupt(key, 'not JSON');
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function hasExactly(v: Record<string, unknown>, keys: string[]): boolean {
  const own = Object.keys(v);
  return own.length === keys.length && keys.every((k) => Object.hasOwn(v, k));
}

function isHeight(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function checkOutpointKey(outpoint: unknown, key: string): asserts outpoint is string {
  const match = typeof outpoint === 'string' ? OUTPOINT.exec(outpoint) : null;
  if (!match || Number(match[2]) > 0xffffffff) corrupt(key, `bad outpoint ${JSON.stringify(outpoint)}`);
}

function readState(value: Uint8Array, key: string): { birth: number; scripts: string[]; height: number } {
  const v = parse(value, key);
  if (!isRecord(v) || !hasExactly(v, ['v', 'birth', 'scripts', 'height']) || v['v'] !== 1) corrupt(key, 'unknown shape or version');
  const { birth, scripts, height } = v;
  if (!isHeight(birth)) corrupt(key, 'bad birth height');
  if (!(typeof height === 'number' && Number.isSafeInteger(height) && height >= -1)) corrupt(key, 'bad height');
  if (!Array.isArray(scripts) || scripts.length === 0 || !scripts.every((s) => typeof s === 'string' && /^([0-9a-f]{2})+$/.test(s))) {
    corrupt(key, 'bad scripts');
  }
  return { birth, scripts: scripts as string[], height };
}

function encodeUtxo(c: ScanUtxo): { v: string; s: number; h: number; c: 0 | 1 } {
  return { v: c.valueSat.toString(), s: c.script, h: c.height, c: c.coinbase ? 1 : 0 };
}

function readUtxo(v: unknown, key: string, scriptCount: number): ScanUtxo {
  if (!isRecord(v) || !hasExactly(v, ['v', 's', 'h', 'c'])) corrupt(key, 'unknown coin shape');
  const { v: value, s, h, c } = v;
  if (typeof value !== 'string' || !/^(0|[1-9][0-9]{0,15})$/.test(value) || BigInt(value) > MAX_MONEY_SAT) corrupt(key, 'bad value');
  if (!(typeof s === 'number' && Number.isSafeInteger(s) && s >= 0 && s < scriptCount)) corrupt(key, 'bad script index');
  if (!isHeight(h)) corrupt(key, 'bad height');
  if (c !== 0 && c !== 1) corrupt(key, 'bad coinbase flag');
  return { valueSat: BigInt(value), script: s, height: h, coinbase: c === 1 };
}

function readUndo(v: unknown, key: string, height: number, scriptCount: number): UndoRecord {
  if (!isRecord(v) || !hasExactly(v, ['hash', 'a', 's'])) corrupt(key, 'unknown undo shape');
  const { hash, a, s } = v;
  if (typeof hash !== 'string' || !HASH.test(hash)) corrupt(key, 'bad block hash');
  if (!Array.isArray(a)) corrupt(key, 'bad added list');
  for (const outpoint of a) checkOutpointKey(outpoint, key);
  if (!Array.isArray(s)) corrupt(key, 'bad spent list');
  const spent = s.map((entry): [string, ScanUtxo] => {
    if (!Array.isArray(entry) || entry.length !== 2) corrupt(key, 'bad spent entry');
    const [outpoint, coin] = entry as [unknown, unknown];
    checkOutpointKey(outpoint, key);
    const utxo = readUtxo(coin, key, scriptCount);
    if (utxo.height > height) corrupt(key, 'spent coin younger than its block');
    return [outpoint, utxo];
  });
  return { height, hash, added: a as string[], spent };
}
