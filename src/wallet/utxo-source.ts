/**
 * Where a wallet's coins come from: the UtxoSource port and its adapters for the simnet (in-process or
 * over HTTP) and Esplora. bitcoind, which has no address index, is served by the block scanner
 * (block-scan.ts).
 *
 * @example
 * const source = new SimnetUtxoSource(simnet);
 * const coins = await source.listUnspent([receiveScript, changeScript]);
 */
import { Transaction } from 'bitcoinjs-lib';
import type { OutPoint, TxStatus, UtxoStatus } from '../chain/port.js';
import { ChainClientError } from '../chain/errors.js';

/** An unspent output paying one of the wallet's scripts. */
export interface WalletUtxo {
  outpoint: OutPoint;
  valueSat: bigint;
  /** The output script (one of the scripts asked about). */
  script: Uint8Array;
  /** Height of the block that created it, undefined while unconfirmed. */
  blockHeight: number | undefined;
  /** 0 while unconfirmed, 1 in the tip block, … */
  confirmations: number;
  /**
   * A coinbase output, subject to the 100-block maturity rule. Sources may report false once a coin has
   * 100 confirmations (maturity no longer matters), never before.
   */
  coinbase: boolean;
}

export interface UtxoSource {
  /** Unspent outputs paying any of `scripts`. */
  listUnspent(scripts: Uint8Array[]): Promise<WalletUtxo[]>;
}

/** Consensus rule: a coinbase output is spendable in a block 100 above its own (Core's COINBASE_MATURITY). */
export const COINBASE_MATURITY = 100;

/** What SimnetUtxoSource needs: both the in-process Simnet and SimnetClient fit. */
export interface SimnetUtxoChain {
  utxosForScript(
    script: Uint8Array,
  ): Promise<Array<UtxoStatus & { outpoint: OutPoint; coinbase?: boolean }>> | Array<UtxoStatus & { outpoint: OutPoint; coinbase?: boolean }>;
}

/** Coins from the simnet's script index (confirmed and mempool outputs not spent in the mempool). */
export class SimnetUtxoSource implements UtxoSource {
  readonly #chain: SimnetUtxoChain;

  constructor(chain: SimnetUtxoChain) {
    if (!chain || typeof chain.utxosForScript !== 'function') throw new TypeError('"chain" expected an object with utxosForScript');
    this.#chain = chain;
  }

  async listUnspent(scripts: Uint8Array[]): Promise<WalletUtxo[]> {
    assertScripts(scripts);
    const found: WalletUtxo[] = [];
    for (const script of scripts) {
      for (const u of await this.#chain.utxosForScript(script)) {
        found.push({
          outpoint: { txid: u.outpoint.txid, vout: u.outpoint.vout },
          valueSat: u.output.valueSat,
          script: Uint8Array.from(script),
          blockHeight: u.blockHeight,
          confirmations: u.confirmations,
          // Older simnets report no coinbase flag: their only coinbase-shaped coins are faucet coins, exempt from maturity.
          coinbase: u.coinbase === true,
        });
      }
    }
    return found;
  }
}

/** The Esplora adapter's methods this source uses. */
export interface EsploraUtxoApi {
  addressOf(script: Uint8Array): string;
  addressUtxos(address: string): Promise<Array<{ outpoint: OutPoint; valueSat: bigint; blockHeight: number | undefined }>>;
  tipHeight(): Promise<number>;
  getTransaction(txid: string): Promise<TxStatus | undefined>;
}

/** Bound on the coinbase cache; a device wallet sees far fewer funding txids than this. */
const MAX_CACHED_TXIDS = 10_000;

/**
 * Coins from an Esplora server's address index. Esplora's UTXO list does not say whether a coin is a
 * coinbase output, so for coins young enough for maturity to matter the transaction is fetched once and
 * checked for a null prevout.
 */
export class EsploraUtxoSource implements UtxoSource {
  readonly #esplora: EsploraUtxoApi;
  /** txid → is a coinbase transaction (a txid commits to the transaction, so this never goes stale). */
  readonly #coinbase = new Map<string, boolean>();

  constructor(esplora: EsploraUtxoApi) {
    for (const m of ['addressOf', 'addressUtxos', 'tipHeight', 'getTransaction'] as const) {
      if (!esplora || typeof esplora[m] !== 'function') throw new TypeError(`"esplora" expected an object with ${m}`);
    }
    this.#esplora = esplora;
  }

  async listUnspent(scripts: Uint8Array[]): Promise<WalletUtxo[]> {
    assertScripts(scripts);
    const listed: Array<{ script: Uint8Array; outpoint: OutPoint; valueSat: bigint; blockHeight: number | undefined }> = [];
    for (const script of scripts) {
      for (const u of await this.#esplora.addressUtxos(this.#esplora.addressOf(script))) {
        listed.push({ script, outpoint: u.outpoint, valueSat: u.valueSat, blockHeight: u.blockHeight });
      }
    }
    // The tip is read after the lists, so a listed coin's block is normally at or below it.
    const tip = await this.#esplora.tipHeight();
    const found: WalletUtxo[] = [];
    for (const u of listed) {
      // A coin in a block above the tip we read means the servers behind Esplora disagree for a moment:
      // count it as 1 confirmation, the fewest a confirmed coin can have.
      const confirmations = u.blockHeight === undefined ? 0 : Math.max(1, tip - u.blockHeight + 1);
      // Coinbase transactions are never in the mempool, and past maturity the flag no longer matters.
      const coinbase = u.blockHeight !== undefined && confirmations < COINBASE_MATURITY && (await this.#isCoinbase(u.outpoint.txid));
      found.push({
        outpoint: { txid: u.outpoint.txid, vout: u.outpoint.vout },
        valueSat: u.valueSat,
        script: Uint8Array.from(u.script),
        blockHeight: u.blockHeight,
        confirmations,
        coinbase,
      });
    }
    return found;
  }

  async #isCoinbase(txid: string): Promise<boolean> {
    const cached = this.#coinbase.get(txid);
    if (cached !== undefined) return cached;
    const status = await this.#esplora.getTransaction(txid);
    // Listed but not found: the server is mid-reorg. Treat it as an immature coinbase (unspendable for
    // now) rather than guess it spendable, and ask again next time.
    if (!status) return true;
    let tx: Transaction;
    try {
      tx = Transaction.fromBuffer(status.tx);
    } catch (cause) {
      throw new ChainClientError('CHAIN_BAD_RESPONSE', `transaction ${txid}: undecodable`, { cause });
    }
    if (tx.getId() !== txid) throw new ChainClientError('CHAIN_BAD_RESPONSE', `transaction ${txid}: the server returned ${tx.getId()}`);
    const coinbase = tx.isCoinbase();
    if (this.#coinbase.size >= MAX_CACHED_TXIDS) this.#coinbase.clear();
    this.#coinbase.set(txid, coinbase);
    return coinbase;
  }
}

/** @internal */
export function assertScripts(scripts: Uint8Array[]): void {
  if (!Array.isArray(scripts)) throw new TypeError('"scripts" expected an array of Uint8Array');
  scripts.forEach((s, i) => {
    if (!(s instanceof Uint8Array)) throw new TypeError(`"scripts[${i}]" expected a Uint8Array`);
  });
}
