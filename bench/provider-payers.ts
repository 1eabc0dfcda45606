/**
 * Payers for the provider rig (bench/provider-rig.ts): many devices in one process, each with its own
 * identity, MQTT connection, Messenger (Noise sessions), software signer, DeviceWallet, MemoryStore and
 * OnewayNode — what a provider holds a channel with. Three shortcuts keep the load generator's own costs
 * (which no single real device pays) from starving the provider on a small machine:
 * - their messengers watch no one's presence (`presence: 'watched'`; N devices in one process would otherwise
 *   verify N² status signatures); the terms come from the parent instead of the provider's announcement;
 * - they share one SimnetClient (polling every second) and do not watch their funding outputs (the rig
 *   never closes a channel; N watches would cost N getSpend requests per poll);
 * - their stores are MemoryStores.
 *
 * Commands: start {brokerUrl, chainUrl, first, count, fundSat} (creates the payers and funds each wallet
 * from the faucet; the parent mines); open {provider, service, capacitySat, expiryBlocks, concurrency};
 * pay {ms, incrementMsat} → acknowledged payments and latency quantiles; memory {gc}.
 */
import { hmacSha256 } from '../src/crypto/hash.js';
import { chooseSecp256k1 } from '../src/crypto/native.js';
import type { ChainSource } from '../src/chain/port.js';
import { SimnetClient } from '../src/chain/simnet-client.js';
import { OnewayNode } from '../src/channel/oneway/node.js';
import type { OnewayChannel } from '../src/channel/oneway/channel.js';
import type { ServiceTerms } from '../src/channel/oneway/state.js';
import type { Messenger } from '../src/node/messenger.js';
import { p2wpkhOutput } from '../src/onchain/script.js';
import { softwareIdentity, type NodeIdentity } from '../src/session/identity.js';
import { SoftwareSigner } from '../src/signer/software.js';
import { MemoryStore } from '../src/store/memory.js';
import { startMqttMessenger } from '../src/transport/mqtt/node.js';
import { DeviceWallet } from '../src/wallet/device-wallet.js';
import { SimnetUtxoSource } from '../src/wallet/utxo-source.js';
import { cpuMs, memoryMb, serve } from './provider-ipc.js';

chooseSecp256k1();

interface Payer {
  identity: NodeIdentity;
  messenger: Messenger;
  node: OnewayNode;
  channel: OnewayChannel | undefined;
}

const payers: Payer[] = [];
let chain: SimnetClient | undefined;
const encoder = new TextEncoder();

/** Deterministic keys per device index, distinct from every other rig party. */
function keysOf(index: number): { identity: NodeIdentity; signer: SoftwareSigner } {
  const seed = hmacSha256(encoder.encode('trickle bench payer'), encoder.encode(String(index)));
  return { identity: softwareIdentity(hmacSha256(seed, encoder.encode('identity'))), signer: SoftwareSigner.fromSeed(hmacSha256(seed, encoder.encode('signer'))) };
}

/** Run `task` over `items` with at most `limit` at a time. */
async function pool<T>(items: T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) await task(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

serve(
  'payers',
  {
    async start(args) {
      const url = String(args['brokerUrl']);
      const first = Number(args['first']);
      const count = Number(args['count']);
      const fundSat = args['fundSat'] as bigint;
      const client = new SimnetClient(String(args['chainUrl']), { pollIntervalMs: 1000 });
      chain = client;
      const unwatched: ChainSource = new Proxy(client, {
        get(target, prop) {
          if (prop === 'watchOutpoint') return () => undefined;
          const value = Reflect.get(target, prop, target) as unknown;
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
        },
      });
      const indexes = Array.from({ length: count }, (_, i) => first + i);
      await pool(indexes, 25, async (index) => {
        const { identity, signer } = keysOf(index);
        const store = new MemoryStore();
        const messenger = await startMqttMessenger({ url, identity, protocolVersion: 4, presence: 'watched' });
        const wallet = await DeviceWallet.open({ signer, source: new SimnetUtxoSource(client), chain: client, store });
        const node = await OnewayNode.start({ messenger, chain: unwatched, store, signer, wallet, payTimeoutMs: 120_000 });
        await client.faucet(p2wpkhOutput(await signer.getPublicKey({ family: 'wallet', index: 0 })), fundSat);
        payers.push({ identity, messenger, node, channel: undefined });
      });
      return { started: payers.length };
    },

    async open(args) {
      const provider = String(args['provider']);
      const service = args['service'] as ServiceTerms;
      const errors: string[] = [];
      const t0 = performance.now();
      await pool(payers, Number(args['concurrency'] ?? 20), async (payer) => {
        try {
          payer.channel = await payer.node.open(provider, { capacitySat: args['capacitySat'] as bigint, expiryBlocks: Number(args['expiryBlocks']), service });
        } catch (error) {
          errors.push((error as Error).message);
        }
      });
      return { opened: payers.filter((p) => p.channel?.phase === 'open').length, errors: errors.slice(0, 5), failed: errors.length, ms: performance.now() - t0 };
    },

    async pay(args) {
      const ms = Number(args['ms']);
      const increment = args['incrementMsat'] as bigint;
      const deadline = performance.now() + ms;
      const latencies: number[] = [];
      const errors: string[] = [];
      let failed = 0;
      const t0 = performance.now();
      await Promise.all(
        payers.map(async (payer) => {
          const channel = payer.channel;
          if (!channel) return;
          while (performance.now() < deadline) {
            const t = performance.now();
            try {
              await channel.pay(increment);
              latencies.push(performance.now() - t);
            } catch (error) {
              failed++;
              if (errors.length < 5) errors.push((error as Error).message);
              await new Promise((resolve) => setTimeout(resolve, 100));
            }
          }
        }),
      );
      const elapsedMs = performance.now() - t0;
      latencies.sort((a, b) => a - b);
      return { payments: latencies.length, elapsedMs, failed, errors, p50Ms: quantile(latencies, 0.5), p99Ms: quantile(latencies, 0.99) };
    },

    memory: (args) => memoryMb(args['gc'] === true),
    /** CPU time of this process so far (user + system), for utilisation over a window. */
    cpu: () => cpuMs(),
  },
  async () => {
    await pool(payers, 50, async (payer) => {
      await payer.node.stop();
      await payer.messenger.stop();
    });
    chain?.close();
  },
);
