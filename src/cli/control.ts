/**
 * The control socket of a long-running `trickle` process: a Unix socket in its data directory through
 * which short-lived commands ask it to act (`trickle peer` and `trickle rsmc`, ./rsmc.ts). The
 * directory is 0700 and the socket 0600: only their owner connects.
 *
 * Protocol, one request per connection: the client sends one JSON line; the server answers with lines
 * `{"event": {…}, "human": "…"}` as things happen and a last line `{"done": true}` or
 * `{"done": true, "error": {"code": …, "message": …}}`. A client that goes away early does not stop
 * what it asked for.
 */
import { chmod, mkdir, unlink } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { jsonLine, type Emitter } from './common.js';

const MAX_REQUEST_BYTES = 16 * 1024;

/** A failure the server reports, or a failure to reach it: printed as `trickle <command>: CODE: message`. */
export class CommandError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Where the handler reports progress; its result is the last event. */
export type Reply = Pick<Emitter, 'event'>;

/** Handles one request (the parsed JSON line); throws to answer with an error. */
export type ControlHandler = (request: unknown, reply: Reply) => Promise<void>;

export interface ControlServer {
  path: string;
  /** Start answering requests (until then they are refused as STARTING). */
  serve(handler: ControlHandler): void;
  close(): Promise<void>;
}

export function controlPath(dataDir: string, name: string): string {
  return join(dataDir, name);
}

/**
 * Claim `<dataDir>/<name>`: refused (PEER_RUNNING) if a process answers on it; a stale socket left by a
 * killed process is removed. Claim it before opening the data directory's store and sessions.
 */
export async function listenControl(dataDir: string, name: string): Promise<ControlServer> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const path = controlPath(dataDir, name);
  const running = () => new CommandError('PEER_RUNNING', `a trickle peer already runs on ${dataDir}`);
  if (await answers(path)) throw running();
  await unlink(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
  let handler: ControlHandler | undefined;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    serveConnection(socket, () => handler);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'EADDRINUSE' ? running() : new Error(`cannot listen on ${path}: ${error.message}`)),
    );
    server.listen(path, () => resolve());
  });
  await chmod(path, 0o600);
  return {
    path,
    serve: (h) => {
      handler = h;
    },
    async close() {
      const closed = new Promise((resolve) => server.close(resolve));
      for (const socket of sockets) socket.destroy();
      await closed;
      await unlink(path).catch(() => undefined);
    },
  };
}

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** One request per connection; nothing a client sends can take the server down. */
function serveConnection(socket: Socket, handler: () => ControlHandler | undefined): void {
  socket.on('error', () => undefined);
  socket.setEncoding('utf8');
  const write = (line: Record<string, unknown>): void => {
    if (!socket.destroyed && socket.writable) socket.write(`${jsonLine(line)}\n`);
  };
  let buffer = '';
  const onData = (chunk: string): void => {
    buffer += chunk;
    const end = buffer.indexOf('\n');
    if (end < 0 && buffer.length <= MAX_REQUEST_BYTES) return;
    socket.off('data', onData);
    void (async () => {
      try {
        if (end < 0) throw new CommandError('BAD_REQUEST', 'request too long');
        const h = handler();
        if (!h) throw new CommandError('STARTING', 'the peer is still starting; try again in a moment');
        let request: unknown;
        try {
          request = JSON.parse(buffer.slice(0, end));
        } catch {
          throw new CommandError('BAD_REQUEST', 'the request is not JSON');
        }
        await h(request, { event: (value, human) => write({ event: value, ...(human !== undefined && { human }) }) });
        write({ done: true });
      } catch (error) {
        write({ done: true, error: { code: codeOf(error) ?? 'FAILED', message: (error as Error).message } });
      }
      socket.end();
    })();
  };
  socket.on('data', onData);
}

/** Send one request to the process serving `<dataDir>/<name>` and print its answer as it comes. */
export async function callControl(dataDir: string, name: string, request: unknown, out: Emitter): Promise<void> {
  const socket = connect(controlPath(dataDir, name));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', (error: NodeJS.ErrnoException) => {
      reject(error.code === 'ENOENT' || error.code === 'ECONNREFUSED'
        ? new CommandError('NO_PEER', `no trickle peer runs on ${dataDir}: start one with trickle peer --data-dir ${dataDir} --broker URL CHAIN`)
        : error);
    });
  });
  socket.on('error', () => undefined); // a dropped connection ends the loop below
  socket.write(`${jsonLine(request)}\n`);
  let done: { error?: { code?: string; message?: string } } | undefined;
  for await (const line of createInterface({ input: socket })) {
    let message: { done?: true; error?: { code?: string; message?: string }; event?: Record<string, unknown>; human?: string };
    try {
      message = JSON.parse(line) as typeof message;
    } catch {
      throw new CommandError('BAD_ANSWER', 'the peer answered something that is not JSON');
    }
    if (message.done) {
      done = message;
      break;
    }
    if (message.event) out.event(message.event, message.human);
  }
  socket.destroy();
  if (!done) throw new CommandError('PEER_GONE', 'the peer closed the connection before answering (see its output)');
  if (done.error) throw new CommandError(done.error.code ?? 'FAILED', done.error.message ?? 'failed');
}

export function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}
