/**
 * The child side of the provider rig's IPC (bench/provider-child.ts, bench/provider-payers.ts), speaking
 * the protocol of bench/lib.ts's Child: requests `{ id, cmd, ...args }`, answers `{ id, ok, result }` or
 * `{ id, ok: false, error }`; `{ cmd: 'exit' }` runs the child's cleanup, then exits. Kept apart from
 * bench/lib.ts so a child does not load the parent's broker and process machinery into the memory it
 * reports.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export type Handler = (args: Record<string, unknown>) => unknown;

/**
 * With TRICKLE_BENCH_PROFILE_DIR set, the child records a CPU profile from start to exit and writes it
 * there as `<name>-<pid>.cpuprofile` (open it in Chrome DevTools): where a rig's time goes.
 */
function startProfile(name: string): (() => Promise<void>) | undefined {
  const dir = process.env['TRICKLE_BENCH_PROFILE_DIR'];
  if (!dir) return undefined;
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.start');
  return () =>
    new Promise((resolve) => {
      session.post('Profiler.stop', (error, result) => {
        if (!error) writeFileSync(join(dir, `${name}-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
        resolve();
      });
    });
}

/** Answer requests from the parent until it says exit (or goes away). */
export function serve(name: string, handlers: Record<string, Handler>, cleanup: () => Promise<void>): void {
  const stopProfile = startProfile(name);
  let exiting = false;
  const exit = async (code: number): Promise<void> => {
    if (exiting) return;
    exiting = true;
    try {
      await Promise.race([cleanup(), new Promise((resolve) => setTimeout(resolve, 5_000))]);
      await stopProfile?.();
    } finally {
      process.exit(code);
    }
  };
  process.on('disconnect', () => void exit(0)); // the parent died: do not outlive it
  process.on('message', (raw) => {
    const { id, cmd, ...args } = raw as { id: number; cmd: string } & Record<string, unknown>;
    if (cmd === 'exit') {
      void exit(0);
      return;
    }
    const handler = handlers[cmd];
    void (async () => {
      try {
        if (!handler) throw new Error(`unknown command ${cmd}`);
        const result = await handler(args);
        process.send?.({ id, ok: true, result });
      } catch (error) {
        process.send?.({ id, ok: false, error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
      }
    })();
  });
}

let gcFn: (() => void) | undefined;

/** process.memoryUsage() in MB, after a full garbage collection when `gc` is set (live heap, not garbage). */
export function memoryMb(gc: boolean): { rssMb: number; heapUsedMb: number; heapTotalMb: number; externalMb: number; arrayBuffersMb: number } {
  if (gc) {
    if (!gcFn) {
      // Without --expose-gc on the command line (lib's Child forks with no execArgv).
      setFlagsFromString('--expose-gc');
      gcFn = runInNewContext('gc') as () => void;
    }
    gcFn();
  }
  const m = process.memoryUsage();
  const mb = (bytes: number): number => bytes / (1024 * 1024);
  return { rssMb: mb(m.rss), heapUsedMb: mb(m.heapUsed), heapTotalMb: mb(m.heapTotal), externalMb: mb(m.external), arrayBuffersMb: mb(m.arrayBuffers) };
}

/** User + system CPU time of this process so far, in ms. */
export function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}
