/**
 * Child-process entry for the crash harness (./crash-harness.ts): the `trickle` CLI itself, bundled once
 * with ./bundle.ts so that each of the hundreds of restarts starts in a fraction of tsx's time. (The CLI's
 * own entry runs only when its file is named cli/main; a bundle is not.)
 */
import { main } from '../../src/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
