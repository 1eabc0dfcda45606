/**
 * What every `trickle` command needs: the node's secret material in its data directory, the LMDB store,
 * the chain client, the MQTT messenger and the one-way channel runtime, wired together. Also the crash
 * hooks the crash tests use (TRICKLE_CRASH_AT), which do nothing unless that variable is set.
 */
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bytesToHex, hexToBytes } from '../bytes.js';
import { hmacSha256 } from '../crypto/hash.js';
import { isValidSecretKey } from '../crypto/secp256k1.js';
import { SimnetClient } from '../chain/simnet-client.js';
import { OnewayNode, type OnewayHooks, type OnewayNodeOptions } from '../channel/oneway/node.js';
import type { PayeeOffer } from '../channel/oneway/payee.js';
import type { Messenger } from '../node/messenger.js';
import { p2wpkhOutput } from '../onchain/script.js';
import { softwareIdentity, type NodeIdentity } from '../session/identity.js';
import { SoftwareSigner } from '../signer/software.js';
import { LmdbStore } from '../store/lmdb.js';
import { startMqttMessenger } from '../transport/mqtt/node.js';
import { SingleKeyWallet } from '../wallet/single-key.js';

const encoder = new TextEncoder();

export interface NodeKeys {
  identity: NodeIdentity;
  signer: SoftwareSigner;
  walletScript: Uint8Array;
}

/** Create (mode 0600) or read the 32-byte seed in `<dataDir>/seed`; keys are derived from it. */
export async function loadKeys(dataDir: string, options: { create: boolean }): Promise<NodeKeys> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, 'seed');
  let seed: Uint8Array;
  try {
    const text = (await readFile(path, 'utf8')).trim();
    if (!/^[0-9a-f]{64}$/.test(text)) throw new Error(`${path} is not 64 hex characters`);
    seed = hexToBytes(text);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || !options.create) throw error;
    seed = crypto.getRandomValues(new Uint8Array(32));
    await writeFile(path, `${bytesToHex(seed)}\n`, { mode: 0o600, flag: 'wx' });
    await chmod(path, 0o600);
  }
  // Separate keys for the node identity and the channel signer, both from the one seed.
  let identitySecret = hmacSha256(seed, encoder.encode('trickle/node-identity'));
  for (let i = 0; !isValidSecretKey(identitySecret); i++) identitySecret = hmacSha256(seed, encoder.encode(`trickle/node-identity/${i}`));
  const signer = SoftwareSigner.fromSeed(hmacSha256(seed, encoder.encode('trickle/channel-signer')));
  const walletScript = p2wpkhOutput(await signer.getPublicKey({ family: 'wallet', index: 0 }));
  return { identity: softwareIdentity(identitySecret), signer, walletScript };
}

/**
 * Test hook: TRICKLE_CRASH_AT="<persist reason>[:n]" kills this process with SIGKILL right after the
 * n-th (default 1st) durable commit with that reason; "sent:<message type>[:n]" right after the n-th
 * such message was handed to the broker. Used by test/oneway-crash.test.ts; unset in normal use.
 */
export function crashHooksFromEnv(env: NodeJS.ProcessEnv = process.env): OnewayHooks | undefined {
  const spec = env['TRICKLE_CRASH_AT'];
  if (!spec) return undefined;
  const parts = spec.split(':');
  const sent = parts[0] === 'sent';
  const what = sent ? parts[1] : parts[0];
  const nth = Number(parts[sent ? 2 : 1] ?? '1');
  let seen = 0;
  const hit = (): void => {
    if (++seen === nth) process.kill(process.pid, 'SIGKILL');
  };
  return sent
    ? { afterSend: (message) => void (message.type === what && hit()) }
    : { afterPersist: (reason) => void (reason === what && hit()) };
}

export interface LocalNode {
  keys: NodeKeys;
  messenger: Messenger;
  chain: SimnetClient;
  store: LmdbStore;
  wallet: SingleKeyWallet;
  node: OnewayNode;
  close(): Promise<void>;
}

export interface LocalNodeOptions {
  dataDir: string;
  brokerUrl: string;
  chainUrl: string;
  offers?: PayeeOffer[];
  node?: Partial<OnewayNodeOptions>;
  log?: OnewayNodeOptions['log'];
}

/** Open the data directory and bring the node online (MQTT, chain, channels resumed). */
export async function startLocalNode(options: LocalNodeOptions): Promise<LocalNode> {
  const keys = await loadKeys(options.dataDir, { create: true });
  const store = await LmdbStore.open({ path: join(options.dataDir, 'channels') });
  const chain = new SimnetClient(options.chainUrl, { pollIntervalMs: 100 });
  let messenger: Messenger | undefined;
  try {
    messenger = await startMqttMessenger({ url: options.brokerUrl, identity: keys.identity });
    const wallet = new SingleKeyWallet({
      signer: keys.signer,
      listUnspent: async (script) => (await chain.utxosForScript(script)).map((u) => ({ outpoint: u.outpoint, valueSat: u.output.valueSat })),
    });
    const hooks = crashHooksFromEnv();
    const node = await OnewayNode.start({
      messenger,
      chain,
      store,
      signer: keys.signer,
      wallet,
      ...(options.offers ? { offers: options.offers } : {}),
      ...(hooks ? { hooks } : {}),
      ...(options.log ? { log: options.log } : {}),
      ...options.node,
    });
    if (options.offers) await messenger.announce(options.offers);
    const m = messenger;
    return {
      keys,
      messenger: m,
      chain,
      store,
      wallet,
      node,
      async close() {
        await node.stop();
        await m.stop();
        chain.close();
        await store.close();
      },
    };
  } catch (error) {
    await messenger?.stop().catch(() => undefined);
    chain.close();
    await store.close();
    throw error;
  }
}
