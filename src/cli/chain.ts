/**
 * Which chain a `trickle` process (and the demo) talks to, from command-line flags:
 *
 *   --chain simnet   --simnet-url URL                 the simnet server (tests, the demo; default)
 *   --chain bitcoind --rpc-url URL [--rpc-user U --rpc-pass P | --rpc-cookie FILE]
 *   --chain esplora  --esplora-url URL --network N   (N: regtest, signet, testnet or mainnet)
 *
 * Each gives a ChainSource and the wallet's way of finding its coins: the simnet's script index,
 * a block scan from the wallet's birth height for bitcoind (no address index there), Esplora's
 * /address/:addr/utxo. For compatibility `--chain <URL>` still means a simnet server at URL.
 */
import { readFile } from 'node:fs/promises';
import type { ChainSource } from '../chain/port.js';
import { SimnetClient } from '../chain/simnet-client.js';
import { BitcoindChain, type BitcoindAuth } from '../chain/bitcoind/index.js';
import { EsploraChain } from '../chain/esplora/index.js';
import type { Store } from '../store/port.js';
import { BlockScanUtxoSource } from '../wallet/block-scan.js';
import { EsploraUtxoSource, SimnetUtxoSource, type UtxoSource } from '../wallet/utxo-source.js';

export type Network = 'regtest' | 'signet' | 'testnet' | 'mainnet';
const NETWORKS: readonly Network[] = ['regtest', 'signet', 'testnet', 'mainnet'];

export type ChainChoice =
  | { kind: 'simnet'; url: string }
  | { kind: 'bitcoind'; url: string; auth: BitcoindAuth | undefined; network: Network | undefined }
  | { kind: 'esplora'; url: string; network: Network };

/** A flag combination that cannot work; the CLI prints it with the usage. */
export class ChainFlagError extends Error {}

type Flags = Record<string, string | boolean | undefined>;

function str(flags: Flags, name: string): string | undefined {
  const v = flags[name];
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

export const CHAIN_HELP = `Chain options (every command that goes online):
  --chain simnet --simnet-url URL      the simnet server started by the demo or the tests (default kind)
  --chain bitcoind --rpc-url URL       a bitcoind (or compatible) node's JSON-RPC, e.g. http://127.0.0.1:18443
      --rpc-user U --rpc-pass P        basic auth, or
      --rpc-cookie FILE                the node's .cookie file (re-read when the node restarts)
  --chain esplora --esplora-url URL --network regtest|signet|testnet|mainnet
                                       an Esplora REST API, e.g. https://blockstream.info/api
  --network N                          with bitcoind: refuse a node on another network
  --wallet-birth-height N              bitcoind: first block to scan for the wallet's coins (kept after
                                       the first run; default 0 on regtest, tip - 2016 elsewhere)
  --close-depth N                      confirmations before a channel's outcome is final (default 1 on
                                       simnet and regtest, 3 elsewhere); --min-depth N likewise for the
                                       funding depth a provider or a peer requires
  --fallback-feerate-per-kw N          fee rate when the node has no estimate (default 2500 on simnet and
                                       regtest; none elsewhere: opening then fails rather than guess)
`;

export function chainChoice(flags: Flags): ChainChoice {
  const kind = str(flags, 'chain') ?? 'simnet';
  const network = str(flags, 'network');
  if (network !== undefined && !NETWORKS.includes(network as Network)) throw new ChainFlagError('--network expects regtest, signet, testnet or mainnet');
  if (/^https?:\/\//.test(kind)) return { kind: 'simnet', url: kind };
  switch (kind) {
    case 'simnet': {
      const url = str(flags, 'simnet-url');
      if (!url) throw new ChainFlagError('--chain simnet needs --simnet-url');
      return { kind, url };
    }
    case 'bitcoind': {
      const url = str(flags, 'rpc-url');
      if (!url) throw new ChainFlagError('--chain bitcoind needs --rpc-url');
      const user = str(flags, 'rpc-user');
      const password = str(flags, 'rpc-pass');
      const cookieFile = str(flags, 'rpc-cookie');
      if ((user === undefined) !== (password === undefined)) throw new ChainFlagError('--rpc-user and --rpc-pass go together');
      if (user !== undefined && cookieFile !== undefined) throw new ChainFlagError('use --rpc-user/--rpc-pass or --rpc-cookie, not both');
      const auth = cookieFile !== undefined ? { cookieFile } : user !== undefined ? { user, password: password! } : undefined;
      return { kind, url, auth, network: network as Network | undefined };
    }
    case 'esplora': {
      const url = str(flags, 'esplora-url');
      if (!url) throw new ChainFlagError('--chain esplora needs --esplora-url');
      if (!network) throw new ChainFlagError('--chain esplora needs --network (addresses differ between networks)');
      return { kind, url, network: network as Network };
    }
    default:
      throw new ChainFlagError(`--chain expects simnet, bitcoind or esplora, not "${kind}"`);
  }
}

export interface ChainConnection {
  kind: ChainChoice['kind'];
  /** The simnet is regtest-like. */
  network: Network;
  chain: ChainSource;
  /** Where the wallet finds its coins; `store` keeps a block scan's progress. */
  utxoSource(options: { store: Store; scripts: Uint8Array[]; birthHeight: number; onProgress?: (p: { height: number; tipHeight: number }) => void }): Promise<UtxoSource>;
  /** The connected concrete client, for what a ChainSource does not cover (mining on regtest). */
  client: SimnetClient | BitcoindChain | EsploraChain;
  close(): void;
}

export interface ConnectOptions {
  pollIntervalMs?: number;
  fallbackFeeratePerKw?: bigint;
  onError?: (error: unknown) => void;
  onProgress?: (p: { height: number; tipHeight: number }) => void;
}

/** Connect to the chosen chain (bitcoind: checks the network and the credentials now). */
export async function connectChain(choice: ChainChoice, options: ConnectOptions = {}): Promise<ChainConnection> {
  const common = {
    ...(options.onError && { onError: options.onError }),
    ...(options.onProgress && { onProgress: options.onProgress }),
  };
  switch (choice.kind) {
    case 'simnet': {
      const client = new SimnetClient(choice.url, { pollIntervalMs: options.pollIntervalMs ?? 100, ...(options.onError && { onError: options.onError }) });
      return {
        kind: 'simnet', network: 'regtest', chain: client, client,
        utxoSource: async () => new SimnetUtxoSource(client),
        close: () => client.close(),
      };
    }
    case 'bitcoind': {
      if (choice.auth && 'cookieFile' in choice.auth) await readFile(choice.auth.cookieFile); // a clear ENOENT now rather than later
      const client = await BitcoindChain.connect({
        url: choice.url,
        ...(choice.auth && { auth: choice.auth }),
        ...(choice.network && { network: choice.network }),
        pollIntervalMs: options.pollIntervalMs ?? 1000,
        retry: { attempts: 3 },
        ...(options.fallbackFeeratePerKw !== undefined && { fallbackFeeratePerKw: options.fallbackFeeratePerKw }),
        ...common,
      });
      return {
        kind: 'bitcoind', network: client.network, chain: client, client,
        utxoSource: ({ store, scripts, birthHeight, onProgress }) =>
          BlockScanUtxoSource.open({ blocks: client, store, scripts, birthHeight, ...(onProgress && { onProgress }) }),
        close: () => client.close(),
      };
    }
    case 'esplora': {
      const client = new EsploraChain({
        url: choice.url,
        network: choice.network,
        pollIntervalMs: options.pollIntervalMs ?? 2000,
        ...(options.fallbackFeeratePerKw !== undefined && { fallbackFeeratePerKw: options.fallbackFeeratePerKw }),
        ...common,
      });
      await client.tipHeight(); // reachable and answering as Esplora, or a clear error now
      return {
        kind: 'esplora', network: choice.network, chain: client, client,
        utxoSource: async () => new EsploraUtxoSource(client),
        close: () => client.close(),
      };
    }
  }
}
