/**
 * The provider of the 1,000-channel rig (bench/provider-rig.ts), in a process of its own: `trickle
 * provider`'s wiring (src/cli/setup.ts startLocalNode: seed and keys in a data directory, LmdbStore, the
 * served simnet through SimnetClient, DeviceWallet, MQTT messenger, OnewayNode selling one service), spoken
 * to over IPC (bench/provider-ipc.ts). It only accepts channels and payments; the payers are elsewhere.
 *
 * Commands: start {brokerUrl, chainUrl, dataDir} → {nodeId, offer, backend}; memory {gc} → MB figures;
 * stats → open channels, payments stored, CPU time, store counters, log and session counts; verify {ms} → ECDSA verifies/s of
 * the backend in use, in this process.
 */
import { chooseSecp256k1 } from '../src/crypto/native.js';
import { ecdsaBackend } from '../src/crypto/backend.js';
import { sha256 } from '../src/crypto/hash.js';
import { startLocalNode, type LocalNode } from '../src/cli/setup.js';
import type { PayeeOffer } from '../src/channel/oneway/payee.js';
import { cpuMs, memoryMb, serve } from './provider-ipc.js';

// TRICKLE_SECP256K1 (passed through by the parent) forces a backend; by default the fastest self-tested one.
const backend = chooseSecp256k1();

const PROVIDER_OFFER: PayeeOffer = {
  serviceId: 'bench',
  unit: 'MB',
  tariffMsatPerUnit: 1000n,
  creditWindowUnits: 100n,
  minCapacitySat: 10_000n,
  maxCapacitySat: 10_000_000n,
};

let local: LocalNode | undefined;
const logCounts: Record<string, number> = {};

function node(): LocalNode {
  if (!local) throw new Error('not started');
  return local;
}

serve(
  'provider',
  {
    async start(args) {
      local = await startLocalNode({
        dataDir: String(args['dataDir']),
        brokerUrl: String(args['brokerUrl']),
        chain: { kind: 'simnet', url: String(args['chainUrl']) },
        offers: [PROVIDER_OFFER],
        log: (entry) => {
          const key = `${entry.level}:${entry.code ?? entry.msg.slice(0, 40)}`;
          logCounts[key] = (logCounts[key] ?? 0) + 1;
        },
      });
      return { nodeId: local.messenger.nodeId, offer: PROVIDER_OFFER, backend: backend.description };
    },
    memory: (args) => memoryMb(args['gc'] === true),
    stats() {
      const n = node();
      let open = 0;
      let payments = 0;
      for (const channel of n.node.channels()) {
        if (channel.phase === 'open') open++;
        payments += Number(channel.payments);
      }
      return { open, payments, cpuMs: cpuMs(), store: n.store.stats(), log: { ...logCounts }, session: n.messenger.stats().session };
    },
    verify(args) {
      const ms = Number(args['ms'] ?? 1000);
      const b = ecdsaBackend();
      const secret = sha256(new TextEncoder().encode('bench verify key'));
      const digest = sha256(new TextEncoder().encode('bench verify digest'));
      const pubkey = b.publicKey(secret);
      const signature = b.sign(digest, secret);
      const warm = performance.now() + Math.min(200, ms / 5);
      while (performance.now() < warm) b.verify(signature, digest, pubkey);
      let n = 0;
      const start = performance.now();
      let now = start;
      do {
        for (let i = 0; i < 16; i++) if (!b.verify(signature, digest, pubkey)) throw new Error('verify failed');
        n += 16;
        now = performance.now();
      } while (now - start < ms);
      return { perSec: (n * 1000) / (now - start), backend: b.description };
    },
  },
  async () => {
    await local?.close();
  },
);
