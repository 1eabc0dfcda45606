/**
 * The shared ChainSource contract (test/helpers/chain-contract.ts) on every backend: the in-process
 * Simnet, SimnetClient over the simnet server, and the bitcoind and Esplora adapters against loopback
 * servers that answer as bitcoind's JSON-RPC and Esplora's REST API do, backed by a Simnet.
 */
import { Simnet } from '../src/chain/simnet/simnet.js';
import { serveSimnet } from '../src/chain/simnet/server.js';
import { SimnetClient } from '../src/chain/simnet-client.js';
import { serveBitcoindRpc } from '../src/chain/simnet/bitcoind-server.js';
import { BitcoindChain } from '../src/chain/bitcoind/index.js';
import { serveEsplora } from '../src/chain/simnet/esplora-server.js';
import { EsploraChain } from '../src/chain/esplora/index.js';
import type { ChainSource } from '../src/chain/port.js';
import { chainContract, type ChainHarness } from './helpers/chain-contract.js';

/** A polling backend over a loopback server: events are brought up to date by one poll. */
function polled(simnet: Simnet, server: { close(): Promise<void> }, chain: ChainSource & { poll(): Promise<void>; close(): void }): ChainHarness {
  return {
    chain,
    simnet,
    sync: () => chain.poll(),
    close: async () => {
      chain.close();
      await server.close();
    },
  };
}

chainContract(
  'in-process Simnet',
  async () => {
    const simnet = new Simnet();
    return { chain: simnet, simnet, sync: async () => {}, close: async () => {} };
  },
  { seesForeignMempoolSpends: true, reportsEarlierSpends: false },
);

chainContract(
  'SimnetClient over the simnet server',
  async () => {
    const simnet = new Simnet();
    const server = await serveSimnet(simnet);
    const client = new SimnetClient(server.url, { pollIntervalMs: 60_000 });
    return polled(simnet, server, client);
  },
  { seesForeignMempoolSpends: true, reportsEarlierSpends: true },
);

chainContract(
  'bitcoind JSON-RPC against a simnet-backed bitcoind',
  async () => {
    const simnet = new Simnet();
    const server = await serveBitcoindRpc(simnet, { auth: { user: 'trickle', password: 'contract-suite' } });
    const chain = await BitcoindChain.connect({ url: server.url, auth: { user: 'trickle', password: 'contract-suite' }, network: 'regtest', pollIntervalMs: 60_000 });
    return polled(simnet, server, chain);
  },
  { seesForeignMempoolSpends: false, reportsEarlierSpends: true },
);

chainContract(
  'Esplora REST against a simnet-backed Esplora',
  async () => {
    const simnet = new Simnet();
    const server = await serveEsplora(simnet, { network: 'regtest' });
    const chain = new EsploraChain({ url: server.url, network: 'regtest', pollIntervalMs: 60_000, retry: { attempts: 1 } });
    return polled(simnet, server, chain);
  },
  { seesForeignMempoolSpends: true, reportsEarlierSpends: true },
);
