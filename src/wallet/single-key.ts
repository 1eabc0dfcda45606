/**
 * The smallest wallet a payer needs to fund channels: one P2WPKH key of the signer (family 'wallet'),
 * coins listed by whatever knows the chain (the simnet, later an indexer), largest first. Coins handed
 * out for a funding transaction are reserved until released, so two opens never pick the same coin.
 * Issue 5 brings a full wallet; this one is honest about being single-key.
 */
import type { OutPoint } from '../chain/port.js';
import { p2wpkhOutput } from '../onchain/script.js';
import type { WalletCoin } from '../onchain/funding.js';
import type { KeyLocator, Signer } from '../signer/port.js';

/** What a payer's channel runtime needs from a wallet. */
export interface FundingWallet {
  /** Coins worth more than `amountSat` (the funding builder adds the fee and returns change). */
  selectCoins(amountSat: bigint): Promise<{ coins: WalletCoin[]; changeScript: Uint8Array }>;
  /** Where refunds, change and payouts go. */
  payoutScript(): Promise<Uint8Array>;
  /** Mark coins as taken (e.g. by a stored, not yet broadcast funding transaction). */
  reserve(outpoints: OutPoint[]): void;
  release(outpoints: OutPoint[]): void;
}

export interface ListedCoin {
  outpoint: OutPoint;
  valueSat: bigint;
}

export class WalletError extends Error {
  override readonly name = 'WalletError';
  constructor(readonly code: 'INSUFFICIENT_FUNDS', message: string) {
    super(message);
  }
}

/** Room for the funding fee on top of the amount when choosing coins (the builder computes the real fee). */
const FEE_ALLOWANCE_SAT = 20_000n;

export class SingleKeyWallet implements FundingWallet {
  readonly #signer: Signer;
  readonly #key: KeyLocator;
  readonly #listUnspent: (script: Uint8Array) => Promise<ListedCoin[]>;
  readonly #reserved = new Set<string>();
  #pubkey: Uint8Array | undefined;

  constructor(options: { signer: Signer; listUnspent: (script: Uint8Array) => Promise<ListedCoin[]>; keyIndex?: number }) {
    this.#signer = options.signer;
    this.#key = { family: 'wallet', index: options.keyIndex ?? 0 };
    this.#listUnspent = options.listUnspent;
  }

  async pubkey(): Promise<Uint8Array> {
    this.#pubkey ??= await this.#signer.getPublicKey(this.#key);
    return this.#pubkey;
  }

  async payoutScript(): Promise<Uint8Array> {
    return p2wpkhOutput(await this.pubkey());
  }

  async balanceSat(): Promise<bigint> {
    const coins = await this.#available();
    return coins.reduce((sum, c) => sum + c.valueSat, 0n);
  }

  async selectCoins(amountSat: bigint): Promise<{ coins: WalletCoin[]; changeScript: Uint8Array }> {
    const pubkey = await this.pubkey();
    const available = (await this.#available()).sort((a, b) => (a.valueSat < b.valueSat ? 1 : a.valueSat > b.valueSat ? -1 : 0));
    const chosen: WalletCoin[] = [];
    let total = 0n;
    for (const coin of available) {
      if (total >= amountSat + FEE_ALLOWANCE_SAT) break;
      chosen.push({ outpoint: coin.outpoint, valueSat: coin.valueSat, pubkey, key: this.#key });
      total += coin.valueSat;
    }
    if (total < amountSat + FEE_ALLOWANCE_SAT) {
      throw new WalletError('INSUFFICIENT_FUNDS', `wallet holds ${total} sat spendable, need about ${amountSat + FEE_ALLOWANCE_SAT}`);
    }
    this.reserve(chosen.map((c) => c.outpoint));
    return { coins: chosen, changeScript: p2wpkhOutput(pubkey) };
  }

  reserve(outpoints: OutPoint[]): void {
    for (const o of outpoints) this.#reserved.add(`${o.txid}:${o.vout}`);
  }

  release(outpoints: OutPoint[]): void {
    for (const o of outpoints) this.#reserved.delete(`${o.txid}:${o.vout}`);
  }

  async #available(): Promise<ListedCoin[]> {
    const listed = await this.#listUnspent(p2wpkhOutput(await this.pubkey()));
    return listed.filter((c) => !this.#reserved.has(`${c.outpoint.txid}:${c.outpoint.vout}`));
  }
}
