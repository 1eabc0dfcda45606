/**
 * An embedded MQTT 3.1.1 broker (aedes over node:net) for tests, demos and single-host
 * setups. It listens on loopback unless told otherwise, keeps its state in memory only
 * (sessions, queued QoS 1 messages and retained messages are lost on close), logs nothing,
 * and close() tears down every socket so a test process can exit by itself.
 *
 * aedes 1.x speaks MQTT 3.1 and 3.1.1 only: a CONNECT with protocol level 5 is refused with
 * return code 1, "unacceptable protocol version" [MQTT-3.1.2-2]. Use mosquitto for MQTT 5.
 *
 * @example
 * const broker = await startEmbeddedBroker();          // 127.0.0.1, random port
 * const t = new MqttTransport({ url: broker.url, protocolVersion: 4, ... });
 * ...
 * await broker.close();
 */
import { createServer, type Server, type Socket } from 'node:net';
import { Aedes } from 'aedes';

export interface EmbeddedBrokerOptions {
  /** TCP port; 0 (the default) picks a free one. */
  port?: number;
  /** Address to bind; loopback by default so nothing is exposed by accident. */
  host?: string;
}

export interface EmbeddedBroker {
  /** `mqtt://host:port`, ready for mqtt.js. */
  readonly url: string;
  readonly port: number;
  readonly host: string;
  /** Close the listener, every client socket and the aedes instance. Idempotent. */
  close(): Promise<void>;
}

export async function startEmbeddedBroker(opts: EmbeddedBrokerOptions = {}): Promise<EmbeddedBroker> {
  const host = opts.host ?? '127.0.0.1';
  const requestedPort = opts.port ?? 0;
  if (!Number.isInteger(requestedPort) || requestedPort < 0 || requestedPort > 65535) {
    throw new RangeError(`"port" expected an integer in 0..65535, got ${String(opts.port)}`);
  }
  if (typeof host !== 'string' || host === '') throw new TypeError('"host" expected a non-empty string');

  const aedes = await Aedes.createBroker();
  // aedes emits these for every misbehaving or vanished client; they are routine for a broker
  // and must not become unhandled 'error' events or console noise.
  aedes.on('clientError', () => {});
  aedes.on('connectionError', () => {});

  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    // A reset from a dying client is normal; aedes also listens, this just keeps it quiet.
    socket.on('error', () => {});
    socket.setNoDelay(true); // small frames that wait for answers: no Nagle delay (see transport.ts)
    aedes.handle(socket);
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(requestedPort, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    throw err;
  }
  server.on('error', () => {});

  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('embedded broker: no TCP address');
  const port = address.port;
  const urlHost = host.includes(':') ? `[${host}]` : host;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      // server.close() only stops accepting; live MQTT connections would keep it (and the
      // process) open, so end them here. Their clients see an abrupt close, like a crash.
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await serverClosed;
    })();
    return closing;
  };

  return { url: `mqtt://${urlHost}:${port}`, port, host, close };
}
