/**
 * What the simnet's loopback servers (serveSimnet, serveBitcoindRpc, serveEsplora) share: they refuse a
 * non-loopback address unless told otherwise (anyone who reaches them can mine and mint coins), and
 * they listen and report their URL the same way.
 */
import type { Server } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';

export interface ListenOptions {
  /** Default '127.0.0.1'. */
  host?: string;
  /** Default 0: a free port. */
  port?: number;
  allowRemote?: boolean;
}

/** Check the options before anything is created: RangeError for a remote host or a bad port. */
export function checkListenOptions(options: ListenOptions): { host: string; port: number } {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 0;
  if (!isLoopback(host) && options.allowRemote !== true) {
    throw new RangeError(`"host" ${host} is not loopback; a simnet serves only loopback unless allowRemote: true`);
  }
  if (!Number.isSafeInteger(port) || port < 0 || port > 65535) throw new RangeError('"port" expected an integer 0..65535');
  return { host, port };
}

/** Listen and return the server's URL, e.g. http://127.0.0.1:40123 (IPv6 hosts in brackets). */
export async function listen(server: Server, host: string, port: number): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  const v6 = host.toLowerCase();
  return v6 === '::1' || v6 === '0:0:0:0:0:0:0:1' || v6.startsWith('::ffff:127.');
}
