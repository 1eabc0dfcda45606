/**
 * One suite, every broker: brokerFactories() yields the embedded aedes broker always and a
 * mosquitto process when the binary is installed, behind one small TestBroker interface.
 * Also a loopback TCP proxy that can cut a client's connection without telling the broker
 * first — how tests make a broker see a client "die" (and publish its Last Will).
 *
 * @example
 * for (const factory of brokerFactories({ includeSkipped: true })) {
 *   test(`frames over ${factory.name}`, { skip: factory.skip }, async (t) => {
 *     const broker = await factory.start();
 *     t.after(() => broker.stop());
 *     ...
 *   });
 * }
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/transport/mqtt/broker.js';
import { mosquittoPasswdPath, mosquittoPath, startMosquitto } from './mosquitto.js';

export type BrokerName = 'aedes' | 'mosquitto';

export interface TestBroker {
  readonly name: BrokerName;
  readonly url: string;
  readonly port: number;
  /** Whether sessions, queued messages and retained messages survive restart(). */
  readonly keepsStateAcrossRestart: boolean;
  /**
   * Stop the broker (clients see their connections close), run `whileDown` if given, and
   * start it again on the same port. aedes comes back empty; mosquitto reloads its database.
   */
  restart(whileDown?: () => Promise<void> | void): Promise<void>;
  stop(): Promise<void>;
}

export interface BrokerFactory {
  readonly name: BrokerName;
  /** Set when this broker cannot run here; pass to test(name, { skip }, ...). */
  readonly skip: string | undefined;
  start(): Promise<TestBroker>;
}

/**
 * Why mosquitto tests are skipped, or undefined when the binary is installed (and, with
 * `auth`, mosquitto_passwd too).
 */
export function mosquittoSkipReason(opts: { auth?: boolean } = {}): string | undefined {
  if (mosquittoPath() === undefined) return 'mosquitto not installed — skipped';
  if (opts.auth && mosquittoPasswdPath() === undefined) return 'mosquitto_passwd not installed — skipped';
  return undefined;
}

export async function startAedesBroker(): Promise<TestBroker> {
  let current: EmbeddedBroker = await startEmbeddedBroker();
  const port = current.port;
  let stopped = false;
  return {
    name: 'aedes',
    url: current.url,
    port,
    keepsStateAcrossRestart: false,
    async restart(whileDown) {
      if (stopped) throw new Error('aedes: restart() after stop()');
      await current.close();
      await whileDown?.();
      // The port was just released by our own listener (SO_REUSEADDR is the Node default);
      // retry briefly in case a reconnecting client's socket races us.
      for (let attempt = 0; ; attempt++) {
        try {
          current = await startEmbeddedBroker({ port });
          return;
        } catch (err) {
          if (attempt >= 5 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    },
    async stop() {
      stopped = true;
      await current.close();
    },
  };
}

export async function startMosquittoBroker(): Promise<TestBroker> {
  // Persistence on: the deployment we model keeps sessions across a broker restart.
  const broker = await startMosquitto({ persistence: true });
  return {
    name: 'mosquitto',
    url: broker.url,
    port: broker.port,
    keepsStateAcrossRestart: true,
    restart: (whileDown) => broker.restart(whileDown),
    stop: () => broker.stop(),
  };
}

/**
 * aedes always, mosquitto when installed. With `includeSkipped`, brokers that cannot run are
 * listed too, with `skip` set, so a suite can report them as skipped instead of leaving them out.
 */
export function brokerFactories(opts: { includeSkipped?: boolean } = {}): BrokerFactory[] {
  const all: BrokerFactory[] = [
    { name: 'aedes', skip: undefined, start: startAedesBroker },
    { name: 'mosquitto', skip: mosquittoSkipReason(), start: startMosquittoBroker },
  ];
  return opts.includeSkipped ? all : all.filter((f) => f.skip === undefined);
}

export interface TcpProxy {
  /** mqtt://127.0.0.1:<proxy port> */
  readonly url: string;
  /** Destroy every connection through the proxy; new ones are still accepted. */
  cut(): void;
  /** cut() and stop accepting: clients' reconnects are refused until reopen(). */
  block(): Promise<void>;
  reopen(): Promise<void>;
  close(): Promise<void>;
}

/** A loopback proxy to `targetPort`; closing its sockets is a network failure to both ends. */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  const handle = (inbound: Socket): void => {
    const outbound = connect({ host: '127.0.0.1', port: targetPort });
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    inbound.pipe(outbound);
    outbound.pipe(inbound);
    inbound.once('close', () => outbound.destroy());
    outbound.once('close', () => inbound.destroy());
  };
  let server: Server | undefined;
  let port = 0;
  const listen = async (): Promise<void> => {
    const s = createServer(handle);
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => resolve());
    });
    const address = s.address();
    if (address === null || typeof address === 'string') throw new Error('proxy: no address');
    port = address.port;
    server = s;
  };
  const cut = (): void => {
    for (const s of sockets) s.destroy();
  };
  const block = async (): Promise<void> => {
    const s = server;
    server = undefined;
    cut();
    if (s !== undefined) await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  await listen();
  return {
    url: `mqtt://127.0.0.1:${port}`,
    cut,
    block,
    reopen: async () => {
      if (server === undefined) await listen();
    },
    close: block,
  };
}
