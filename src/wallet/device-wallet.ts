/**
 * The device wallet: a minimal P2WPKH wallet that funds channels. Two keys of the signer (family
 * 'wallet': index 0 receives, index 1 takes change), coins listed by a UtxoSource, fee-aware coin
 * selection that matches buildFundingTransaction (src/onchain/funding.ts) weight for weight, and coin
 * locks that are durable before any funding transaction can be built from them (house style, practice 2).
 *
 * @example
 * const wallet = await DeviceWallet.open({ signer, source: new SimnetUtxoSource(simnet), chain: simnet, store });
 * const { coins, changeScript } = await wallet.selectCoins(100_000n, 2500n);
 * // … build and broadcast the funding transaction; if the open fails:
 * await wallet.release(coins.map((c) => c.outpoint));
 */
import type { ChainSource, OutPoint } from '../chain/port.js';
import { ChainClientError } from '../chain/errors.js';
import { MAX_MONEY_SAT } from '../amounts.js';
import { equalBytes } from '../bytes.js';
import { p2wpkhOutput } from '../onchain/script.js';
import { COMMON_WEIGHT, P2WPKH_INPUT_WEIGHT, outputWeight, satPerVbFromPerKw, type WalletCoin } from '../onchain/funding.js';
import type { KeyLocator, Signer } from '../signer/port.js';
import type { Store, StoreWrite } from '../store/port.js';
import { COINBASE_MATURITY, type UtxoSource, type WalletUtxo } from './utxo-source.js';

/** What a payer's channel runtime needs from a wallet. */
export interface FundingWallet {
  /**
   * Coins for a funding transaction of `amountSat` at `feeratePerKw` (the funding builder adds the fee
   * and returns change). Wallets that know the funding weights choose enough for the fee at that rate;
   * without a rate they use their own estimate. The chosen coins are reserved.
   */
  selectCoins(amountSat: bigint, feeratePerKw?: bigint): Promise<{ coins: WalletCoin[]; changeScript: Uint8Array }>;
  /** The fee rate this wallet wants a funding transaction to pay, if it has an opinion. */
  fundingFeeratePerKw?(): Promise<bigint>;
  /** Where refunds, change and payouts go. */
  payoutScript(): Promise<Uint8Array>;
  /**
   * Mark coins as taken (e.g. by a stored, not yet broadcast funding transaction), or free them again.
   * A wallet that persists locks returns a promise that resolves once they are durable.
   */
  reserve(outpoints: OutPoint[]): void | Promise<void>;
  release(outpoints: OutPoint[]): void | Promise<void>;
}

/**
 * - INSUFFICIENT_FUNDS: not enough spendable coins; `funds` has the figures. Add funds, wait for
 *   confirmations or maturity, or ask for less.
 * - NO_FEE_ESTIMATE: the chain has no fee estimate and no fallback was configured; retry later or
 *   configure `fallbackFeeratePerKw`.
 * - CORRUPT_WALLET_STATE: stored wallet data is unreadable; nothing was guessed. Inspect or delete the
 *   named keys (the block scanner then rescans from its birth height).
 */
export type WalletErrorCode = 'INSUFFICIENT_FUNDS' | 'NO_FEE_ESTIMATE' | 'CORRUPT_WALLET_STATE';

export interface FundsFigures {
  /** Confirmed (to the wallet's minimum), mature, unlocked. */
  spendableSat: bigint;
  /** Amount plus the funding fee for the coins that would be used. */
  neededSat: bigint;
  /** Below the minimum confirmations. */
  unconfirmedSat: bigint;
  /** Coinbase outputs younger than 100 blocks. */
  immatureSat: bigint;
  /** Reserved for other funding transactions. */
  lockedSat: bigint;
}

export class WalletError extends Error {
  override readonly name = 'WalletError';
  constructor(
    readonly code: WalletErrorCode,
    message: string,
    /** With INSUFFICIENT_FUNDS from DeviceWallet. */
    readonly funds?: FundsFigures,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export interface WalletBalance {
  spendableSat: bigint;
  unconfirmedSat: bigint;
  immatureSat: bigint;
  lockedSat: bigint;
}

export interface DeviceWalletOptions {
  signer: Signer;
  source: UtxoSource;
  /** Fee estimates, and the tip height for expiring locks of spent coins. */
  chain: Pick<ChainSource, 'estimateFeeratePerKw' | 'tipHeight'>;
  /** Where coin locks are kept; without one they last as long as the object. */
  store?: Store;
  /** Confirmations a coin needs to be spent (default 1; 0 also spends unconfirmed coins, which may vanish). */
  minConfirmations?: number;
  /** Confirmation target for fundingFeeratePerKw (default 6). */
  feeTargetBlocks?: number;
  /** Clamp for the chain's estimate (defaults 253 and 25000 sat/kW; 253 is the relay minimum, BOLT 3). */
  feeFloorPerKw?: bigint;
  feeCeilingPerKw?: bigint;
  /** Used (clamped) when the chain has no estimate; without it such an open fails with NO_FEE_ESTIMATE. */
  fallbackFeeratePerKw?: bigint;
  /** Blocks a locked coin must stay unlisted (spent) before its lock is dropped (default 6). */
  lockExpiryBlocks?: number;
}

/** The wallet's two keys. */
export const RECEIVE_KEY: KeyLocator = Object.freeze({ family: 'wallet', index: 0 });
export const CHANGE_KEY: KeyLocator = Object.freeze({ family: 'wallet', index: 1 });

/** Store keys: `wallet/lock/<txid>:<vout>`. */
export const LOCK_PREFIX = 'wallet/lock/';
const LOCK_VALUE = new TextEncoder().encode('{"v":1}');
const LOCK_KEY = /^wallet\/lock\/([0-9a-f]{64}):(0|[1-9][0-9]{0,9})$/;

/** The relay minimum as BOLT 3 states it (253 sat/kW covers rounding of 1 sat/vB). */
export const MIN_FEERATE_PER_KW = 253n;

// The opener's fixed weight as buildFundingTransaction counts it (BIP 141): the common fields and the
// P2WSH funding output (34-byte script). The test "fee matches buildFundingTransaction" pins it.
const FIXED_WEIGHT = COMMON_WEIGHT + outputWeight(new Uint8Array(34));

/**
 * The fee a single-funded funding transaction with `inputCount` P2WPKH inputs and no change pays at
 * `feeratePerKw`: the least its inputs must hold beyond the amount (buildFundingTransaction's rule).
 */
export function fundingFeeSat(inputCount: number, feeratePerKw: bigint): bigint {
  const weight = FIXED_WEIGHT + inputCount * P2WPKH_INPUT_WEIGHT;
  return BigInt(Math.ceil(weight / 4)) * satPerVbFromPerKw(feeratePerKw);
}

/** The P2WPKH receive and change scripts of a signer's wallet keys (e.g. to set up a block scanner). */
export async function deviceWalletScripts(signer: Signer): Promise<{ receive: Uint8Array; change: Uint8Array }> {
  return {
    receive: p2wpkhOutput(await signer.getPublicKey(RECEIVE_KEY)),
    change: p2wpkhOutput(await signer.getPublicKey(CHANGE_KEY)),
  };
}

interface OwnKey {
  key: KeyLocator;
  pubkey: Uint8Array;
  script: Uint8Array;
}

interface Lock {
  /** Tip height when the coin was first seen missing from a listing (in memory only). */
  absentSince: number | undefined;
}

interface Classified {
  spendable: Array<WalletUtxo & { own: OwnKey }>;
  balance: WalletBalance;
}

const noop = (): void => {};

export class DeviceWallet implements FundingWallet {
  readonly #source: UtxoSource;
  readonly #chain: Pick<ChainSource, 'estimateFeeratePerKw' | 'tipHeight'>;
  readonly #store: Store | undefined;
  readonly #minConfirmations: number;
  readonly #feeTargetBlocks: number;
  readonly #feeFloorPerKw: bigint;
  readonly #feeCeilingPerKw: bigint;
  readonly #fallbackFeeratePerKw: bigint | undefined;
  readonly #lockExpiryBlocks: number;
  readonly #receive: OwnKey;
  readonly #change: OwnKey;
  /** "txid:vout" → lock. The in-memory truth; #dirty names keys whose stored state may differ. */
  readonly #locks = new Map<string, Lock>();
  readonly #dirty = new Set<string>();
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(options: DeviceWalletOptions, receive: OwnKey, change: OwnKey) {
    this.#source = options.source;
    this.#chain = options.chain;
    this.#store = options.store;
    this.#minConfirmations = options.minConfirmations ?? 1;
    this.#feeTargetBlocks = options.feeTargetBlocks ?? 6;
    this.#feeFloorPerKw = options.feeFloorPerKw ?? MIN_FEERATE_PER_KW;
    this.#feeCeilingPerKw = options.feeCeilingPerKw ?? 25_000n;
    this.#fallbackFeeratePerKw = options.fallbackFeeratePerKw;
    this.#lockExpiryBlocks = options.lockExpiryBlocks ?? 6;
    this.#receive = receive;
    this.#change = change;
  }

  /** Derive the keys and load the persisted coin locks (CORRUPT_WALLET_STATE if one is unreadable). */
  static async open(options: DeviceWalletOptions): Promise<DeviceWallet> {
    checkOptions(options);
    const own = async (key: KeyLocator): Promise<OwnKey> => {
      const pubkey = await options.signer.getPublicKey(key);
      return { key, pubkey: Uint8Array.from(pubkey), script: p2wpkhOutput(pubkey) };
    };
    const wallet = new DeviceWallet(options, await own(RECEIVE_KEY), await own(CHANGE_KEY));
    if (options.store) {
      for (const entry of await options.store.list(LOCK_PREFIX)) {
        const match = LOCK_KEY.exec(entry.key);
        if (!match || Number(match[2]) > 0xffffffff || !equalBytes(entry.value, LOCK_VALUE)) {
          throw new WalletError('CORRUPT_WALLET_STATE', `stored coin lock ${JSON.stringify(entry.key)} is unreadable`);
        }
        wallet.#locks.set(`${match[1]}:${match[2]}`, { absentSince: undefined });
      }
    }
    return wallet;
  }

  /** P2WPKH of wallet key 0: where deposits go. */
  receiveScript(): Uint8Array {
    return Uint8Array.from(this.#receive.script);
  }

  /** P2WPKH of wallet key 1: where funding change goes. */
  changeScript(): Uint8Array {
    return Uint8Array.from(this.#change.script);
  }

  /** Every script the wallet owns coins under (what a UtxoSource is asked about). */
  scripts(): Uint8Array[] {
    return [this.receiveScript(), this.changeScript()];
  }

  async payoutScript(): Promise<Uint8Array> {
    return this.receiveScript();
  }

  /** Outpoints currently locked, as "txid:vout", sorted. */
  lockedOutpoints(): string[] {
    return [...this.#locks.keys()].sort();
  }

  /**
   * The chain's estimate for `feeTargetBlocks`, clamped to [feeFloorPerKw, feeCeilingPerKw].
   *
   * With no estimate (a fresh node, regtest) there is no safe rate to invent: the floor may never
   * confirm, leaving the payer's coins stuck in an unconfirmed funding transaction, and the ceiling
   * overpays silently. So this throws NO_FEE_ESTIMATE unless the operator configured
   * `fallbackFeeratePerKw`, which is then used (clamped like an estimate).
   */
  async fundingFeeratePerKw(): Promise<bigint> {
    let estimate: bigint;
    try {
      estimate = await this.#chain.estimateFeeratePerKw(this.#feeTargetBlocks);
    } catch (error) {
      if (!(error instanceof ChainClientError && error.code === 'CHAIN_NO_FEE_ESTIMATE')) throw error;
      if (this.#fallbackFeeratePerKw === undefined) {
        throw new WalletError('NO_FEE_ESTIMATE', 'the chain has no fee estimate and no fallbackFeeratePerKw is configured', undefined, { cause: error });
      }
      estimate = this.#fallbackFeeratePerKw;
    }
    if (typeof estimate !== 'bigint') throw new ChainClientError('CHAIN_BAD_RESPONSE', 'estimateFeeratePerKw: expected a bigint');
    if (estimate < this.#feeFloorPerKw) return this.#feeFloorPerKw;
    if (estimate > this.#feeCeilingPerKw) return this.#feeCeilingPerKw;
    return estimate;
  }

  /**
   * Choose coins for a funding transaction of `amountSat` at `feeratePerKw` (default: fundingFeeratePerKw())
   * and lock them; the locks are durable before this resolves. The coins cover the amount plus the fee
   * buildFundingTransaction charges for them: the single smallest coin that does, else the largest coins
   * first until they do. Change goes to changeScript().
   */
  async selectCoins(amountSat: bigint, feeratePerKw?: bigint): Promise<{ coins: WalletCoin[]; changeScript: Uint8Array }> {
    if (typeof amountSat !== 'bigint') throw new TypeError('"amountSat" expected a bigint');
    if (amountSat <= 0n || amountSat > MAX_MONEY_SAT) throw new RangeError('"amountSat" expected a positive amount up to 21e14 sat');
    if (feeratePerKw !== undefined) {
      if (typeof feeratePerKw !== 'bigint') throw new TypeError('"feeratePerKw" expected a bigint');
      if (feeratePerKw < 0n) throw new RangeError('"feeratePerKw" must not be negative');
    }
    const rate = feeratePerKw ?? (await this.fundingFeeratePerKw());
    return this.#exclusive(async () => {
      const { spendable, balance } = await this.#listAndClassify();
      const chosen = chooseCoins(spendable, amountSat, rate);
      if (!chosen) {
        const neededSat = amountSat + fundingFeeSat(Math.max(1, spendable.length), rate);
        throw new WalletError(
          'INSUFFICIENT_FUNDS',
          `need ${neededSat} sat (amount ${amountSat} + funding fee), have ${balance.spendableSat} sat spendable` +
            ` (${balance.unconfirmedSat} unconfirmed, ${balance.immatureSat} immature, ${balance.lockedSat} locked)`,
          { ...balance, neededSat },
        );
      }
      const keys = chosen.map((c) => outpointKey(c.outpoint));
      for (const key of keys) this.#lock(key);
      try {
        await this.#persist();
      } catch (error) {
        // Never hand out coins whose locks may not be stored; the next commit deletes them if this one landed.
        for (const key of keys) this.#unlock(key);
        throw error;
      }
      return {
        coins: chosen.map((c) => ({ outpoint: { ...c.outpoint }, valueSat: c.valueSat, pubkey: Uint8Array.from(c.own.pubkey), key: { ...c.own.key } })),
        changeScript: this.changeScript(),
      };
    });
  }

  /**
   * Lock coins (e.g. those of a stored funding transaction after a restart). Takes effect at once; the
   * promise resolves when the locks are stored. A failed store is retried by the next commit.
   */
  reserve(outpoints: OutPoint[]): Promise<void> {
    const keys = checkOutpoints(outpoints);
    for (const key of keys) this.#lock(key);
    return this.#persistSoon();
  }

  /** Unlock coins (e.g. of an open that failed before its funding transaction was broadcast). */
  release(outpoints: OutPoint[]): Promise<void> {
    const keys = checkOutpoints(outpoints);
    for (const key of keys) this.#unlock(key);
    return this.#persistSoon();
  }

  /** What the wallet holds, by spendability. A locked coin counts only as locked. */
  async balance(): Promise<WalletBalance> {
    return this.#exclusive(async () => {
      const { balance } = await this.#listAndClassify();
      // Expired locks are deleted from the store here; if that fails they stay dirty for the next commit.
      await this.#persist().catch(noop);
      return balance;
    });
  }

  // ---- internals ----

  #lock(key: string): void {
    this.#locks.set(key, { absentSince: undefined });
    this.#dirty.add(key);
  }

  #unlock(key: string): void {
    this.#locks.delete(key);
    this.#dirty.add(key);
  }

  #persistSoon(): Promise<void> {
    const done = this.#exclusive(() => this.#persist());
    // Callers that do not wait (the FundingWallet port allows void) must not crash the process on a
    // store failure: the lock already holds in memory, and the dirty key is written by the next commit.
    done.catch(noop);
    return done;
  }

  /** Write every dirty lock as it now stands, in one commit. */
  async #persist(): Promise<void> {
    if (!this.#store || this.#dirty.size === 0) return;
    const keys = [...this.#dirty];
    this.#dirty.clear();
    const writes: StoreWrite[] = keys.map((k) => ({ key: LOCK_PREFIX + k, value: this.#locks.has(k) ? LOCK_VALUE : undefined }));
    try {
      await this.#store.commit(writes);
    } catch (error) {
      for (const k of keys) this.#dirty.add(k);
      throw error;
    }
  }

  async #listAndClassify(): Promise<Classified> {
    const listed = await this.#source.listUnspent(this.scripts());
    const tip = await this.#chain.tipHeight();
    const byKey = new Map<string, WalletUtxo & { own: OwnKey }>();
    for (const u of listed) {
      // Only coins we can sign for; the source answers for our scripts, but never trust that blindly.
      if (!(u.script instanceof Uint8Array) || !u.outpoint || typeof u.outpoint.txid !== 'string' || !Number.isInteger(u.outpoint.vout)) continue;
      const own = equalBytes(u.script, this.#receive.script) ? this.#receive : equalBytes(u.script, this.#change.script) ? this.#change : undefined;
      if (!own) continue;
      if (typeof u.valueSat !== 'bigint' || u.valueSat <= 0n || u.valueSat > MAX_MONEY_SAT) continue;
      if (!Number.isSafeInteger(u.confirmations) || u.confirmations < 0) continue;
      byKey.set(outpointKey(u.outpoint), { ...u, own });
    }
    this.#expireLocks(byKey, tip);

    const balance: WalletBalance = { spendableSat: 0n, unconfirmedSat: 0n, immatureSat: 0n, lockedSat: 0n };
    const spendable: Array<WalletUtxo & { own: OwnKey }> = [];
    for (const [key, u] of byKey) {
      if (this.#locks.has(key)) balance.lockedSat += u.valueSat;
      else if (u.coinbase && u.confirmations < COINBASE_MATURITY) balance.immatureSat += u.valueSat;
      else if (u.confirmations < this.#minConfirmations) balance.unconfirmedSat += u.valueSat;
      else {
        balance.spendableSat += u.valueSat;
        spendable.push(u);
      }
    }
    return { spendable, balance };
  }

  /**
   * Drop the locks of coins the source no longer lists once they have stayed away for lockExpiryBlocks:
   * a coin missing from one listing may only be spent in the mempool (and could come back if that
   * transaction is evicted), so it stays locked until its spend is buried.
   */
  #expireLocks(listed: Map<string, unknown>, tip: number): void {
    for (const [key, lock] of this.#locks) {
      if (listed.has(key)) lock.absentSince = undefined;
      else if (lock.absentSince === undefined) lock.absentSince = tip;
      else if (tip - lock.absentSince >= this.#lockExpiryBlocks) this.#unlock(key);
    }
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn, fn);
    this.#tail = run.catch(noop);
    return run;
  }
}

/**
 * Fee-aware choice among spendable coins: the single smallest coin that covers amount + fee for one
 * input; else the largest coins first until they cover amount + fee for that many inputs. Coins worth
 * no more than the fee of their own input are never added. undefined only when no set of the coins
 * covers it (the k largest coins are the best k, so trying each k in turn is exhaustive).
 */
function chooseCoins<C extends { outpoint: OutPoint; valueSat: bigint }>(coins: C[], amountSat: bigint, feeratePerKw: bigint): C[] | undefined {
  const ascending = [...coins].sort(byValueThenOutpoint);
  const single = ascending.find((c) => c.valueSat >= amountSat + fundingFeeSat(1, feeratePerKw));
  if (single) return [single];
  // Adding an input adds 273 WU, which rounds to 68 or 69 vB: a coin worth no more than 68 vB of fee
  // cannot bring the total closer to covering, nor can any smaller one after it.
  const inputFeeSat = 68n * satPerVbFromPerKw(feeratePerKw);
  const chosen: C[] = [];
  let total = 0n;
  for (const coin of ascending.reverse()) {
    if (coin.valueSat <= inputFeeSat) break; // the rest are smaller still
    chosen.push(coin);
    total += coin.valueSat;
    if (total >= amountSat + fundingFeeSat(chosen.length, feeratePerKw)) return chosen;
  }
  return undefined;
}

function byValueThenOutpoint(a: { outpoint: OutPoint; valueSat: bigint }, b: { outpoint: OutPoint; valueSat: bigint }): number {
  if (a.valueSat !== b.valueSat) return a.valueSat < b.valueSat ? -1 : 1;
  if (a.outpoint.txid !== b.outpoint.txid) return a.outpoint.txid < b.outpoint.txid ? -1 : 1;
  return a.outpoint.vout - b.outpoint.vout;
}

function outpointKey(o: OutPoint): string {
  return `${o.txid}:${o.vout}`;
}

function checkOutpoints(outpoints: OutPoint[]): string[] {
  if (!Array.isArray(outpoints)) throw new TypeError('"outpoints" expected an array');
  return outpoints.map((o, i) => {
    if (!o || typeof o.txid !== 'string' || !/^[0-9a-f]{64}$/.test(o.txid)) throw new TypeError(`"outpoints[${i}].txid" expected 64 lowercase hex characters`);
    if (!Number.isInteger(o.vout) || o.vout < 0 || o.vout > 0xffffffff) throw new RangeError(`"outpoints[${i}].vout" expected a uint32`);
    return outpointKey(o);
  });
}

function checkOptions(o: DeviceWalletOptions): void {
  if (!o || typeof o !== 'object') throw new TypeError('"options" expected an object');
  if (!o.signer || typeof o.signer.getPublicKey !== 'function') throw new TypeError('"signer" expected a Signer');
  if (!o.source || typeof o.source.listUnspent !== 'function') throw new TypeError('"source" expected a UtxoSource');
  if (!o.chain || typeof o.chain.estimateFeeratePerKw !== 'function' || typeof o.chain.tipHeight !== 'function') {
    throw new TypeError('"chain" expected estimateFeeratePerKw and tipHeight');
  }
  const int = (v: number | undefined, field: string, min: number): void => {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < min)) throw new RangeError(`"${field}" expected an integer >= ${min}`);
  };
  int(o.minConfirmations, 'minConfirmations', 0);
  int(o.feeTargetBlocks, 'feeTargetBlocks', 1);
  int(o.lockExpiryBlocks, 'lockExpiryBlocks', 1);
  const rate = (v: bigint | undefined, field: string): void => {
    if (v === undefined) return;
    if (typeof v !== 'bigint') throw new TypeError(`"${field}" expected a bigint`);
    if (v < MIN_FEERATE_PER_KW) throw new RangeError(`"${field}" is below the relay minimum of ${MIN_FEERATE_PER_KW} sat/kW`);
  };
  rate(o.feeFloorPerKw, 'feeFloorPerKw');
  rate(o.feeCeilingPerKw, 'feeCeilingPerKw');
  rate(o.fallbackFeeratePerKw, 'fallbackFeeratePerKw');
  if ((o.feeFloorPerKw ?? MIN_FEERATE_PER_KW) > (o.feeCeilingPerKw ?? 25_000n)) {
    throw new RangeError('"feeFloorPerKw" must not exceed "feeCeilingPerKw"');
  }
}
