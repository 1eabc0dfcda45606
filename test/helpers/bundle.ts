/**
 * Bundle a TypeScript entry into one ES module for child processes that are started many times (the crash
 * harness restarts a party hundreds of times, the bench measures cold start and RSS): `node bundle.mjs`
 * starts in a fraction of the time `node --import tsx entry.ts` takes and carries no loader thread.
 * Packages stay external, so the bundle must live under the repository to resolve them from
 * node_modules; it goes to node_modules/.cache/trickle/.
 */
import { build } from 'esbuild';
import { mkdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const OUT_DIR = join(REPO_ROOT, 'node_modules', '.cache', 'trickle');
const built = new Map<string, Promise<string>>();

/** Path of a bundled copy of `entry` (absolute, or relative to the repository), built once per process. */
export function bundleEntry(entry: string): Promise<string> {
  const source = entry.startsWith('/') ? entry : join(REPO_ROOT, entry);
  let out = built.get(source);
  if (!out) {
    out = (async () => {
      await mkdir(OUT_DIR, { recursive: true });
      const outfile = join(OUT_DIR, `${basename(source).replace(/\.ts$/, '')}-${process.pid}.mjs`);
      await build({
        entryPoints: [source],
        outfile,
        bundle: true,
        platform: 'node',
        format: 'esm',
        target: 'node20',
        packages: 'external',
        sourcemap: 'inline',
        logLevel: 'error',
      });
      return outfile;
    })();
    built.set(source, out);
  }
  return out;
}
